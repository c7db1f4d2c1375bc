//! The run's record: seeded randomness, and what the load, the faults and
//! the checks write down as they go (timeline, violations, outcome counts,
//! every write, late calls, process stalls).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ldapmux::PoolError;
use ldapmux::{ConnErrorKind, Error};

use crate::{KEEP_VIOLATIONS, LATE_SLACK, OP_TIMEOUT, hang_bound};

/// splitmix64: small, deterministic, good enough to pick faults and ops.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The stream a seed starts.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for task `n`.
    pub fn fork(&self, n: u64) -> Rng {
        let mut r = Rng(self.0 ^ (n + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A duration from `lo` to `hi` milliseconds, both included.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Rng::new(nanos ^ u64::from(std::process::id())).next()
}

// ---------------------------------------------------------------------------
// The run's record: timeline, violations, outcome counts, writes
// ---------------------------------------------------------------------------

/// What the pool answered to one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The pool said it was applied.
    Ok,
    /// `Error::OutcomeUnknown`.
    Unknown,
    /// Any other error (its kind, an index into `Run::kinds`): the pool says
    /// it was never applied.
    Failed(u16),
    /// The call outlived its bound and was cancelled (already a violation).
    Hung,
}

/// Which of the two kinds of write the load sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// `cn=<id>,ou=scratch`.
    Add,
    /// `description: <id>` added to a user entry.
    Modify,
}

/// One write, kept small: the soak keeps every one until the end, and its
/// own memory must not hide the pool's in the RSS figures.
#[derive(Clone, Copy, Debug)]
pub struct WriteRecord {
    task: u16,
    n: u32,
    /// Add or modify.
    pub kind: WriteKind,
    /// What the pool answered.
    pub outcome: WriteOutcome,
    /// When it returned, in milliseconds since the start of the run.
    pub at_ms: u32,
}

impl WriteRecord {
    /// The unique name it wrote (see [`write_id`]).
    pub fn id(&self) -> String {
        write_id(self.task.into(), self.n.into())
    }
}

/// The unique name of write `n` of task `task`.
pub fn write_id(task: usize, n: u64) -> String {
    format!("soak-w{task}-{n}")
}

/// (operation, "ok" or an error kind).
pub type OutcomeKey = (&'static str, String);

/// The run's record, shared by the load, the fault schedule and the checks:
/// the timeline of events, the violations, outcome counts per operation,
/// every write, late calls and process stalls.
pub struct Run {
    /// The seed of the schedule and of every task's choices.
    pub seed: u64,
    /// How long the load runs, in seconds.
    pub secs: u64,
    start: Instant,
    timeline: Mutex<Vec<(Duration, String)>>,
    violations: Mutex<(Vec<(Duration, String)>, usize)>,
    /// (operation, "ok" or error kind) → count.
    pub outcomes: Mutex<BTreeMap<OutcomeKey, u64>>,
    /// (operation, error kind) → when it was seen first and last.
    pub error_times: Mutex<BTreeMap<OutcomeKey, (Duration, Duration)>>,
    /// Slowest call per operation.
    pub slowest: Mutex<BTreeMap<&'static str, Duration>>,
    /// Every write the load sent, in the order they returned.
    pub writes: Mutex<Vec<WriteRecord>>,
    /// Calls that returned after their timeout + `LATE_SLACK`: (op, start, took).
    pub late: Mutex<Vec<(&'static str, Duration, Duration)>>,
    /// Times the whole test process was not scheduled: (start, length).
    pub stalls: Mutex<Vec<(Duration, Duration)>>,
    /// Error kinds of failed writes (`WriteOutcome::Failed` indexes it).
    pub kinds: Mutex<Vec<String>>,
    /// Set once the load is over (the heal phase's errors are all violations).
    pub strict: AtomicBool,
    /// Set by the schedule: only writers send requests (see `FaultKind::CutWrite`).
    pub writes_only: AtomicBool,
}

impl Run {
    /// A run of `LDAPMUX_SOAK_SECS` (default 30) with `LDAPMUX_SOAK_SEED`
    /// (default: from the clock), starting now; prints how to replay it.
    pub fn from_env() -> Run {
        let secs = env_u64("LDAPMUX_SOAK_SECS").unwrap_or(30).max(1);
        let seed = env_u64("LDAPMUX_SOAK_SEED").unwrap_or_else(clock_seed);
        println!(
            "soak: {secs} s, seed {seed}: replay with LDAPMUX_SOAK_SEED={seed} LDAPMUX_SOAK_SECS={secs}"
        );
        Run {
            seed,
            secs,
            start: Instant::now(),
            timeline: Mutex::default(),
            violations: Mutex::default(),
            outcomes: Mutex::default(),
            error_times: Mutex::default(),
            slowest: Mutex::default(),
            writes: Mutex::default(),
            kinds: Mutex::default(),
            late: Mutex::default(),
            stalls: Mutex::default(),
            strict: AtomicBool::new(false),
            writes_only: AtomicBool::new(false),
        }
    }

    /// Time since the start of the run.
    pub fn at(&self) -> Duration {
        self.start.elapsed()
    }

    /// Adds an event to the timeline.
    pub fn event(&self, what: impl Into<String>) {
        let what = what.into();
        self.timeline.lock().unwrap().push((self.at(), what));
    }

    /// Records a violation: the test fails at the end.
    pub fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        let at = self.at();
        let mut v = self.violations.lock().unwrap();
        if v.0.len() < KEEP_VIOLATIONS {
            v.0.push((at, what));
        }
        v.1 += 1;
    }

    /// How many violations so far.
    pub fn violations(&self) -> usize {
        self.violations.lock().unwrap().1
    }

    /// Counts one outcome ("ok" or an error kind) of `op`.
    pub fn count(&self, op: &'static str, outcome: &str) {
        if outcome != "ok" {
            let at = self.at();
            self.error_times
                .lock()
                .unwrap()
                .entry((op, outcome.to_owned()))
                .and_modify(|(_, last)| *last = at)
                .or_insert((at, at));
        }
        *self
            .outcomes
            .lock()
            .unwrap()
            .entry((op, outcome.to_owned()))
            .or_default() += 1;
    }

    /// Counts one success of `op`.
    pub fn ok(&self, op: &'static str) {
        self.count(op, "ok");
    }

    /// Successes of `op` so far.
    pub fn oks(&self, op: &str) -> u64 {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|((o, k), _)| *o == op && k == "ok")
            .map(|(_, n)| n)
            .sum()
    }

    /// How to replay this run.
    pub fn replay(&self) -> String {
        format!(
            "seed {seed}: replay with LDAPMUX_SOAK_SEED={seed} LDAPMUX_SOAK_SECS={secs}",
            seed = self.seed,
            secs = self.secs
        )
    }

    /// The timeline, one event a line.
    pub fn timeline_text(&self) -> String {
        self.timeline
            .lock()
            .unwrap()
            .iter()
            .map(|(t, e)| format!("  {:>8.3}s  {e}\n", t.as_secs_f64()))
            .collect()
    }

    fn violations_text(&self) -> String {
        let v = self.violations.lock().unwrap();
        let mut s: String =
            v.0.iter()
                .map(|(t, e)| format!("  {:>8.3}s  {e}\n", t.as_secs_f64()))
                .collect();
        if v.1 > v.0.len() {
            s += &format!("  … and {} more\n", v.1 - v.0.len());
        }
        s
    }

    /// Fails the test now, with the seed, violations and timeline.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "soak failed: {what}\n{}\n\nviolations:\n{}\ntimeline:\n{}",
            self.replay(),
            self.violations_text(),
            self.timeline_text()
        )
    }

    /// Runs one call bounded by [`hang_bound`]. Counts its error kind and
    /// reports an error no fault explains (or any error once strict). `None`:
    /// the call hung and was cancelled.
    pub async fn call<T>(
        &self,
        op: &'static str,
        write: bool,
        fut: impl Future<Output = Result<T, Error>>,
    ) -> Option<Result<T, Error>> {
        let started = Instant::now();
        let result = tokio::time::timeout(hang_bound(), fut).await;
        let took = started.elapsed();
        {
            let mut slowest = self.slowest.lock().unwrap();
            let s = slowest.entry(op).or_default();
            *s = (*s).max(took);
        }
        if result.is_ok() && took > OP_TIMEOUT + LATE_SLACK {
            // Judged at the end, against the stalls of the whole process.
            let start = started.duration_since(self.start);
            self.late.lock().unwrap().push((op, start, took));
        }
        match result {
            Err(_) => {
                self.count(op, "HANG");
                self.violation(format!(
                    "hang: {op} did not return within {:?} (operation timeout {OP_TIMEOUT:?})",
                    hang_bound()
                ));
                None
            }
            Ok(r) => {
                if let Err(e) = &r {
                    self.error(op, write, e);
                }
                Some(r)
            }
        }
    }

    fn error(&self, op: &'static str, write: bool, e: &Error) {
        let (kind, explained) = classify(e, write);
        self.count(op, &kind);
        if self.strict.load(Ordering::SeqCst) {
            self.violation(format!(
                "{op} failed after every fault was healed: {kind}: {e}"
            ));
        } else if !explained {
            self.violation(format!("{op}: an error no fault explains: {kind}: {e}"));
        }
    }

    /// Records how write `n` of `task` ended (`None`: it hung).
    pub fn record_write(&self, task: usize, n: u64, kind: WriteKind, r: Option<Result<(), Error>>) {
        let outcome = match r {
            None => WriteOutcome::Hung,
            Some(Ok(())) => WriteOutcome::Ok,
            Some(Err(Error::OutcomeUnknown { .. })) => WriteOutcome::Unknown,
            Some(Err(e)) => {
                let kind = classify(&e, true).0;
                let mut kinds = self.kinds.lock().unwrap();
                let i = kinds.iter().position(|k| *k == kind).unwrap_or_else(|| {
                    kinds.push(kind);
                    kinds.len() - 1
                });
                WriteOutcome::Failed(i as u16)
            }
        };
        let at_ms = self.at().as_millis() as u32;
        self.writes.lock().unwrap().push(WriteRecord {
            task: task as u16,
            n: n as u32,
            kind,
            outcome,
            at_ms,
        });
    }
}

/// The kind of an error, and whether a fault of the soak can explain it.
pub fn classify(e: &Error, write: bool) -> (String, bool) {
    let transport = |k: ConnErrorKind| {
        matches!(
            k,
            ConnErrorKind::Refused
                | ConnErrorKind::Timeout
                | ConnErrorKind::Io
                | ConnErrorKind::ServerDown
        )
    };
    match e {
        Error::Timeout { .. } => ("timeout".into(), true),
        Error::OutcomeUnknown { .. } => ("outcome-unknown".into(), write),
        Error::Pool { source: p, .. } => match p {
            PoolError::ConnectFailed { cause, .. } => (
                format!("connect-failed/{:?}", cause.kind),
                transport(cause.kind),
            ),
            PoolError::ConnectionLost { cause, .. } => (
                format!("connection-lost/{:?}", cause.kind),
                transport(cause.kind),
            ),
            PoolError::ServerDown { .. } => ("server-down".into(), true),
            PoolError::NoServerAvailable => ("no-server-available".into(), true),
            PoolError::AcquireTimeout => ("acquire-timeout".into(), true),
            PoolError::Reloaded => ("reloaded".into(), true),
            other => (format!("pool-error ({other})"), false),
        },
        Error::Ldap(s) => (format!("ldap-rc-{}", s.rc), false),
        other => (format!("other ({other})"), false),
    }
}
