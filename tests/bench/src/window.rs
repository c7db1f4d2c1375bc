//! One measuring window: warm-up, measure, sample slapd, stop, close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use ldapmux_harness::Slapd;

use crate::contender::{Handle, Kind};
use crate::stats::{ns_to_ms, percentile};
use crate::{BenchError, Measurement};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DRAIN: u8 = 2;
const STOP: u8 = 3;

/// Bound on waiting for slapd to show no client connection between contenders.
pub(crate) const SETTLE: Duration = Duration::from_secs(10);
/// Bound on a monitor query. A full run at c1024 measured a monitor search
/// queued behind 1 024 busy connections (and slapd still closing the previous
/// contender's 1 024) taking longer than 5 s; 20 s still catches a hung slapd.
const MONITOR_BOUND: Duration = Duration::from_secs(20);
/// Bound on tasks finishing their last operation after the stop.
const JOIN_BOUND: Duration = Duration::from_secs(15);

/// Lengths of one window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
}

/// What one task measured.
#[derive(Default)]
struct TaskStats {
    ok: u64,
    failed: u64,
    failed_warmup: u64,
    lat_ns: Vec<u64>,
    first_error: Option<String>,
}

/// A tiny xorshift generator: no dependency, a different stream per task.
pub(crate) struct XorShift(u64);

impl XorShift {
    pub(crate) fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Runs `kind` at `conc` against `slapd` for one window and returns what it measured.
/// `users`: how many `userN` exist.
pub(crate) async fn measure(
    slapd: &Slapd,
    users: usize,
    kind: &Kind,
    conc: usize,
    window: Window,
    round: usize,
) -> Result<(Measurement, Vec<String>), BenchError> {
    let mut notes = Vec::new();
    settle(slapd, &mut notes, &kind.name()).await;
    let total_before = bounded(slapd.monitor_total_connections()).await?;

    let handle = Handle::setup(kind, conc, slapd).await?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut tasks = Vec::with_capacity(conc);
    for i in 0..conc {
        let mut conn = handle.task(i).await;
        let phase = phase.clone();
        let seed = (round as u64) << 32 | i as u64;
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift::new(seed + 1);
            let mut st = TaskStats::default();
            let mut filter = String::with_capacity(24);
            loop {
                if phase.load(Ordering::Relaxed) == STOP {
                    break;
                }
                filter.clear();
                use std::fmt::Write as _;
                let _ = write!(filter, "(uid=user{})", rng.next() % users as u64);
                let t = Instant::now();
                let r = conn.search(&filter).await;
                let dt = t.elapsed();
                match (phase.load(Ordering::Relaxed), r) {
                    (MEASURE, Ok(())) => {
                        st.ok += 1;
                        st.lat_ns.push(dt.as_nanos() as u64);
                    }
                    (MEASURE, Err(e)) => {
                        st.failed += 1;
                        st.first_error.get_or_insert(e);
                    }
                    (WARMUP, Err(e)) => {
                        st.failed_warmup += 1;
                        st.first_error.get_or_insert(e);
                    }
                    _ => {}
                }
                if st.failed + st.failed_warmup > 0 && (st.failed + st.failed_warmup) % 64 == 1 {
                    // Errors can come back instantly: never spin a worker.
                    tokio::task::yield_now().await;
                }
            }
            st
        }));
    }

    tokio::time::sleep(window.warmup).await;
    phase.store(MEASURE, Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu0 = (cpu_ticks(None), cpu_ticks(slapd.pid()), busy_ticks());
    tokio::time::sleep(window.measure).await;
    phase.store(DRAIN, Ordering::Relaxed);
    let cpu1 = (cpu_ticks(None), cpu_ticks(slapd.pid()), busy_ticks());
    let secs = t0.elapsed().as_secs_f64();
    // The contender still holds its connections and keeps working while slapd is asked.
    let server_conns = bounded(slapd.monitor_current_connections()).await;
    let own_conns = handle.own_conns();
    phase.store(STOP, Ordering::Relaxed);

    let mut all = TaskStats::default();
    let deadline = tokio::time::Instant::now() + JOIN_BOUND;
    let mut stragglers = 0;
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok(st)) => {
                all.ok += st.ok;
                all.failed += st.failed;
                all.failed_warmup += st.failed_warmup;
                all.lat_ns.extend(st.lat_ns);
                if all.first_error.is_none() {
                    all.first_error = st.first_error;
                }
            }
            Ok(Err(e)) => notes.push(format!("{}: a task panicked: {e}", kind.name())),
            Err(_) => {
                abort.abort();
                stragglers += 1;
            }
        }
    }
    if stragglers > 0 {
        notes.push(format!(
            "{} conc {conc}: {stragglers} tasks still in an operation {JOIN_BOUND:?} after the stop, aborted",
            kind.name()
        ));
    }
    let mut extra = handle.extras().await;
    handle.teardown().await;
    // Asked while slapd is at its busiest: if it cannot answer in time, the
    // contender's own count stands in (noted), rather than losing the run.
    let server_conns = match (server_conns, own_conns) {
        (Ok(n), _) => n,
        (Err(e), Some(own)) => {
            notes.push(format!(
                "{} conc {conc}: slapd's connection count during the window: {e}; the contender's own count ({own}) is reported",
                kind.name()
            ));
            own as u64
        }
        (Err(e), None) => return Err(e),
    };
    let total_after = bounded(slapd.monitor_total_connections()).await?;
    // The window's current-connections sample and this query each opened one.
    let opened = total_after.saturating_sub(total_before).saturating_sub(2);

    all.lat_ns.sort_unstable();
    let ms = |p| percentile(&all.lat_ns, p).map_or(f64::NAN, ns_to_ms);
    // CPU used by other processes during the window, in % of the machine.
    if let (Some(a0), Some(a1), Some(b0), Some(b1), Some(c0), Some(c1)) =
        (cpu0.0, cpu1.0, cpu0.1, cpu1.1, cpu0.2, cpu1.2)
    {
        let foreign = c1.saturating_sub(c0) as f64
            - a1.saturating_sub(a0) as f64
            - b1.saturating_sub(b0) as f64;
        let capacity = secs * ticks_per_second() * cpus() as f64;
        extra.push((
            "foreign_cpu_pct".into(),
            format!("{:.0}", (foreign / capacity * 100.0).max(0.0)),
        ));
    }
    if let Some(n) = own_conns {
        extra.push(("own_conns".into(), n.to_string()));
    }
    extra.push(("opened".into(), opened.to_string()));
    // CPU time per successful operation in the window: this process (the
    // client: tasks, pool, ldap3) and slapd.
    for (key, a, b) in [
        ("client_us_per_op", cpu0.0, cpu1.0),
        ("slapd_us_per_op", cpu0.1, cpu1.1),
    ] {
        if let (Some(a), Some(b)) = (a, b)
            && all.ok > 0
        {
            let us = b.saturating_sub(a) as f64 / ticks_per_second() * 1e6 / all.ok as f64;
            extra.push((key.into(), format!("{us:.1}")));
        }
    }
    if all.failed_warmup > 0 {
        extra.push(("failed_warmup".into(), all.failed_warmup.to_string()));
    }
    extra.push(("round".into(), round.to_string()));
    let m = Measurement {
        contender: kind.name(),
        conc,
        ops_per_s: all.ok as f64 / secs,
        p50_ms: ms(50.0),
        p99_ms: ms(99.0),
        failed: all.failed,
        server_conns,
        first_error: all.first_error,
        extra,
    };
    Ok((m, notes))
}

/// Waits (bounded) until slapd shows no client connection; notes it if not.
pub(crate) async fn settle(slapd: &Slapd, notes: &mut Vec<String>, before: &str) {
    if let Err(e) = slapd.wait_current_connections(0, SETTLE).await {
        notes.push(format!("before {before}: {e}"));
    }
}

/// A monitor query, bounded.
pub(crate) async fn bounded<F>(f: F) -> Result<u64, BenchError>
where
    F: std::future::Future<Output = Result<u64, ldapmux_harness::HarnessError>>,
{
    match tokio::time::timeout(MONITOR_BOUND, f).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(BenchError::Slapd(format!("monitor query: {e}"))),
        Err(_) => Err(BenchError::Slapd(format!(
            "monitor query took longer than {MONITOR_BOUND:?}"
        ))),
    }
}

/// User + system CPU time of a process (`None`: this one) in clock ticks,
/// from `/proc/<pid>/stat` (fields 14 and 15).
pub(crate) fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    parse_cpu_ticks(&std::fs::read_to_string(path).ok()?)
}

/// utime + stime from the text of a `/proc/<pid>/stat` file.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 if unknown).
pub(crate) fn ticks_per_second() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Busy CPU time of the whole machine in clock ticks (user + nice + system +
/// steal from the first line of `/proc/stat`; interrupt time is left out, the
/// loopback traffic of the benchmark itself lands there).
pub(crate) fn busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_busy_ticks(stat.lines().next()?)
}

/// Busy ticks from the `cpu ` line of `/proc/stat`.
pub(crate) fn parse_busy_ticks(line: &str) -> Option<u64> {
    let f: Vec<u64> = line
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    Some(f.first()? + f.get(1)? + f.get(2)? + f.get(7).copied().unwrap_or(0))
}

/// CPUs available to this process.
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Share of the machine's CPU (%) other processes (not this one, not `pid`)
/// used over `over`.
pub(crate) async fn foreign_share(pid: Option<u32>, over: Duration) -> Option<f64> {
    let a = (
        busy_ticks()?,
        cpu_ticks(None)?,
        pid.and_then(|p| cpu_ticks(Some(p))),
    );
    let t = Instant::now();
    tokio::time::sleep(over).await;
    let b = (
        busy_ticks()?,
        cpu_ticks(None)?,
        pid.and_then(|p| cpu_ticks(Some(p))),
    );
    let ours = b.1.saturating_sub(a.1) + b.2.unwrap_or(0).saturating_sub(a.2.unwrap_or(0));
    let foreign = b.0.saturating_sub(a.0).saturating_sub(ours) as f64;
    let capacity = t.elapsed().as_secs_f64() * ticks_per_second() * cpus() as f64;
    Some((foreign / capacity * 100.0).max(0.0))
}

/// Waits, at most `max`, until other processes use at most `pct` % of the
/// CPU (sampled over 300 ms). Returns how long it waited and the last share seen.
pub(crate) async fn wait_quiet(pct: f64, max: Duration, pid: Option<u32>) -> (Duration, f64) {
    let start = Instant::now();
    loop {
        let share = foreign_share(pid, Duration::from_millis(300))
            .await
            .unwrap_or(0.0);
        if share <= pct || start.elapsed() >= max {
            return (start.elapsed(), share);
        }
    }
}
