//! What the demo's load did: operations by kind and outcome, latencies per
//! second and for the whole run, and what happened to reads around a mark
//! (the kill of the preferred server).

use hdrhistogram::Histogram;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The kinds of operation the demo's load runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `Pool::search` for one uid.
    Search,
    /// `Pool::streaming_search` read to the end.
    Enumerate,
    /// `Pool::streaming_search` of every user, paged past the server's
    /// unpaged limit, checked complete.
    Paged,
    /// `Pool::authenticate`, right or wrong password.
    Auth,
    /// `add` under `ou=scratch` as the root DN.
    Write,
}

impl OpKind {
    /// Every kind, in display order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Search,
        OpKind::Enumerate,
        OpKind::Paged,
        OpKind::Auth,
        OpKind::Write,
    ];

    /// Whether this kind is a read (a search or an enumeration).
    pub fn is_read(self) -> bool {
        matches!(self, OpKind::Search | OpKind::Enumerate | OpKind::Paged)
    }

    /// The name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Search => "search",
            OpKind::Enumerate => "enumerate",
            OpKind::Paged => "enumerate all",
            OpKind::Auth => "authenticate",
            OpKind::Write => "write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How one operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done as expected (a right password accepted, entries read, …).
    Ok,
    /// A wrong password answered `Ok(false)`: the pool worked, the password
    /// did not. Expected; not a failure.
    Rejected,
    /// An enumeration whose connection died mid-stream (its server was
    /// killed): the error is the next item and the stream ends, by design;
    /// the demo starts the enumeration again. Expected at a kill.
    Cut,
    /// A write whose connection died after it was sent (`OutcomeUnknown`,
    /// RFC 4511), or a password check whose connection died after the bind
    /// was sent (`ConnectionLost`): neither is retried, by design
    /// (docs/architecture.md). Expected at a kill.
    Unknown,
    /// Refused because the pool was shut down. Expected at the end.
    ShutDown,
    /// Anything else: a real failure.
    Failed(String),
}

/// Counts of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Succeeded.
    pub ok: u64,
    /// Wrong passwords rejected (`Ok(false)`).
    pub rejected: u64,
    /// Enumerations cut by a server death.
    pub cut: u64,
    /// Writes with unknown outcome, password checks cut after the bind was sent.
    pub unknown: u64,
    /// Refused after shutdown.
    pub shut_down: u64,
    /// Failed.
    pub failed: u64,
    /// The longest any of them took (done or not), in microseconds.
    pub max_us: u32,
}

impl KindCounts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Cut => self.cut += 1,
            Outcome::Unknown => self.unknown += 1,
            Outcome::ShutDown => self.shut_down += 1,
            Outcome::Failed(_) => self.failed += 1,
        }
    }

    fn merge(&mut self, other: &KindCounts) {
        self.ok += other.ok;
        self.rejected += other.rejected;
        self.cut += other.cut;
        self.unknown += other.unknown;
        self.shut_down += other.shut_down;
        self.failed += other.failed;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The longest any of them took.
    pub fn max(&self) -> Duration {
        Duration::from_micros(u64::from(self.max_us))
    }

    /// Operations that did their job (`ok` + `rejected`).
    pub fn done(&self) -> u64 {
        self.ok + self.rejected
    }
}

/// The operations of one interval (a second, or the whole run).
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Per kind, indexed like [`OpKind::ALL`].
    pub kinds: [KindCounts; 5],
    /// Latencies of the operations that did their job, in microseconds, to
    /// 3 significant digits (a quantile is within 0.1 % of the exact one),
    /// in bounded memory however long the run (1 µs to an hour).
    pub latencies_us: Histogram<u64>,
    /// Length of the interval.
    pub elapsed: Duration,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            kinds: Default::default(),
            // 1 µs to an hour; a longer latency counts as an hour.
            latencies_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid bounds and precision"),
            elapsed: Duration::ZERO,
        }
    }
}

impl Window {
    /// Counts of `kind`.
    pub fn kind(&self, kind: OpKind) -> &KindCounts {
        &self.kinds[kind.index()]
    }

    /// Operations that did their job.
    pub fn done(&self) -> u64 {
        self.kinds.iter().map(KindCounts::done).sum()
    }

    /// Real failures, every kind.
    pub fn failed(&self) -> u64 {
        self.kinds.iter().map(|k| k.failed).sum()
    }

    /// Real failures of reads (searches and enumerations).
    pub fn failed_reads(&self) -> u64 {
        OpKind::ALL
            .iter()
            .filter(|k| k.is_read())
            .map(|k| self.kind(*k).failed)
            .sum()
    }

    /// Operations done per second over the interval.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.done() as f64 / secs
        }
    }

    /// The `q`-quantile latency (0 < q ≤ 1), if any operation was done:
    /// the nearest rank, at the low edge of its histogram bucket.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let h = &self.latencies_us;
        (!h.is_empty()).then(|| {
            let us = h.lowest_equivalent(h.value_at_quantile(q.clamp(0.0, 1.0)));
            Duration::from_micros(us)
        })
    }

    fn merge(&mut self, other: &Window) {
        for (a, b) in self.kinds.iter_mut().zip(&other.kinds) {
            a.merge(b);
        }
        self.latencies_us
            .add(&other.latencies_us)
            .expect("every window's histogram has the same bounds");
        self.elapsed += other.elapsed;
    }
}

/// What the reads did around a mark (the kill).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AroundMark {
    /// The mark.
    pub at: Option<Instant>,
    /// The first successful read started after the mark: when it finished.
    pub first_read_ok: Option<Instant>,
    /// The slowest successful read that was in flight at the mark.
    pub slowest_across: Option<Duration>,
    /// Reads that failed after the mark.
    pub failed_reads: u64,
}

#[derive(Debug, Default)]
struct Inner {
    current: Window,
    window_start: Option<Instant>,
    total: Window,
    first_errors: Vec<(OpKind, String)>,
    mark: AroundMark,
}

/// Collects every operation of the load. Shared by the load tasks (one
/// short lock per operation) and the display (one roll per second).
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<Inner>,
}

/// How many distinct failure messages are kept for the summary.
const KEPT_ERRORS: usize = 5;

impl Recorder {
    /// An empty recorder whose first window starts at `start`.
    pub fn new(start: Instant) -> Recorder {
        let r = Recorder::default();
        r.lock().window_start = Some(start);
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one operation.
    pub fn record(&self, kind: OpKind, started: Instant, finished: Instant, outcome: Outcome) {
        let mut g = self.lock();
        let latency = finished.saturating_duration_since(started);
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        let counts = &mut g.current.kinds[kind.index()];
        counts.add(&outcome);
        counts.max_us = counts.max_us.max(us);
        let done = matches!(outcome, Outcome::Ok | Outcome::Rejected);
        if done {
            g.current.latencies_us.saturating_record(u64::from(us));
        }
        if let Outcome::Failed(message) = &outcome
            && g.first_errors.len() < KEPT_ERRORS
            && !g.first_errors.iter().any(|(_, m)| m == message)
        {
            g.first_errors.push((kind, message.clone()));
        }
        if let Some(at) = g.mark.at
            && kind.is_read()
        {
            if done && started >= at && g.mark.first_read_ok.is_none_or(|t| finished < t) {
                g.mark.first_read_ok = Some(finished);
            }
            if done && started < at && finished > at {
                g.mark.slowest_across =
                    Some(g.mark.slowest_across.unwrap_or_default().max(latency));
            }
            if matches!(outcome, Outcome::Failed(_)) && finished >= at {
                g.mark.failed_reads += 1;
            }
        }
    }

    /// Sets the mark (replacing any earlier one).
    pub fn mark(&self, at: Instant) {
        self.lock().mark = AroundMark {
            at: Some(at),
            ..AroundMark::default()
        };
    }

    /// What reads did around the mark.
    pub fn around_mark(&self) -> AroundMark {
        self.lock().mark
    }

    /// Ends the current window at `now`, adds it to the total, returns it.
    pub fn roll(&self, now: Instant) -> Window {
        let mut g = self.lock();
        let start = g.window_start.replace(now).unwrap_or(now);
        let mut window = std::mem::take(&mut g.current);
        window.elapsed = now.saturating_duration_since(start);
        g.total.merge(&window);
        window
    }

    /// Everything rolled so far.
    pub fn total(&self) -> Window {
        self.lock().total.clone()
    }

    /// Real failures so far (rolled and current window).
    pub fn failed_so_far(&self) -> u64 {
        let g = self.lock();
        g.total.failed() + g.current.failed()
    }

    /// Expected non-successes so far: cut enumerations, writes with unknown
    /// outcome, operations refused after shutdown.
    pub fn expected_so_far(&self) -> u64 {
        let g = self.lock();
        [&g.total, &g.current]
            .iter()
            .flat_map(|w| w.kinds.iter())
            .map(|k| k.cut + k.unknown + k.shut_down)
            .sum()
    }

    /// One line of totals per kind so far, for the live view.
    pub fn totals_line(&self) -> String {
        let g = self.lock();
        let mut sum = g.total.clone();
        sum.merge(&g.current);
        drop(g);
        OpKind::ALL
            .iter()
            .map(|&k| {
                let c = sum.kind(k);
                let mut s = format!("{} {}", k.name(), c.done());
                if c.rejected > 0 {
                    s.push_str(&format!(" ({} wrong passwords rejected)", c.rejected));
                }
                if c.failed > 0 {
                    s.push_str(&format!(" FAILED {}", c.failed));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }

    /// The first distinct failure messages, with their kind.
    pub fn first_errors(&self) -> Vec<(OpKind, String)> {
        self.lock().first_errors.clone()
    }
}

/// A small deterministic generator for picking users (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A value below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let window = |values: &[u64]| {
            let mut w = Window::default();
            for v in values {
                w.latencies_us.record(*v).unwrap();
            }
            w
        };
        let us = Duration::from_micros;
        assert_eq!(window(&[]).percentile(0.5), None);
        assert_eq!(window(&[7]).percentile(0.99), Some(us(7)));
        let v: Vec<u64> = (1..=100).collect();
        let w = window(&v);
        assert_eq!(w.percentile(0.5), Some(us(50)));
        assert_eq!(w.percentile(0.99), Some(us(99)));
        assert_eq!(w.percentile(1.0), Some(us(100)));
        assert_eq!(w.percentile(0.001), Some(us(1)));
        // Beyond 2 048 µs a bucket holds several values: the quantile is its
        // low edge, within 0.1 % of the exact value.
        let big = window(&[10_000, 20_000, 30_000]);
        let p50 = big.percentile(0.5).unwrap().as_micros() as f64;
        assert!((p50 - 20_000.0).abs() / 20_000.0 <= 0.001, "{p50}");
    }

    #[test]
    fn windows_roll_into_the_total() {
        let t0 = Instant::now();
        let r = Recorder::new(t0);
        let ms = Duration::from_millis;
        r.record(OpKind::Search, t0, t0 + ms(2), Outcome::Ok);
        r.record(OpKind::Auth, t0, t0 + ms(4), Outcome::Rejected);
        r.record(OpKind::Write, t0, t0 + ms(1), Outcome::Unknown);
        r.record(
            OpKind::Search,
            t0,
            t0 + ms(9),
            Outcome::Failed("boom".into()),
        );
        let w = r.roll(t0 + ms(500));
        assert_eq!(w.done(), 2);
        assert_eq!(w.failed(), 1);
        assert_eq!(w.failed_reads(), 1);
        assert_eq!(w.ops_per_sec(), 4.0);
        assert_eq!(w.percentile(0.5), Some(ms(2)));
        assert_eq!(w.percentile(0.99), Some(ms(4)));
        r.record(
            OpKind::Write,
            t0,
            t0 + ms(1),
            Outcome::Failed("boom".into()),
        );
        let w2 = r.roll(t0 + ms(1000));
        assert_eq!(w2.failed_reads(), 0);
        assert_eq!(w2.failed(), 1);
        let total = r.total();
        assert_eq!(total.elapsed, ms(1000));
        assert_eq!(total.kind(OpKind::Write).unknown, 1);
        assert_eq!(total.kind(OpKind::Write).failed, 1);
        assert_eq!(total.kind(OpKind::Search).max(), ms(9));
        assert_eq!(total.kind(OpKind::Auth).rejected, 1);
        assert_eq!(r.first_errors(), vec![(OpKind::Search, "boom".to_owned())]);
    }

    #[test]
    fn reads_around_the_mark() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let r = Recorder::new(t0);
        r.record(OpKind::Search, t0, t0 + ms(1), Outcome::Ok);
        assert_eq!(r.around_mark(), AroundMark::default());
        let kill = t0 + ms(100);
        r.mark(kill);
        // In flight across the kill, retried: slow but fine.
        r.record(OpKind::Search, kill - ms(1), kill + ms(30), Outcome::Ok);
        // Started after, answered.
        r.record(OpKind::Search, kill + ms(2), kill + ms(5), Outcome::Ok);
        r.record(OpKind::Search, kill + ms(1), kill + ms(8), Outcome::Ok);
        r.record(OpKind::Write, kill + ms(1), kill + ms(2), Outcome::Unknown);
        let m = r.around_mark();
        assert_eq!(m.first_read_ok, Some(kill + ms(5)));
        assert_eq!(m.slowest_across, Some(ms(31)));
        assert_eq!(m.failed_reads, 0);
        r.record(
            OpKind::Enumerate,
            kill,
            kill + ms(3),
            Outcome::Failed("x".into()),
        );
        assert_eq!(r.around_mark().failed_reads, 1);
    }

    #[test]
    fn rng_stays_in_range_and_spreads() {
        let mut rng = Rng::new(42);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10)] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        assert_eq!(Rng::new(1).below(1), 0);
    }
}
