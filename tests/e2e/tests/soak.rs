//! Soak: minutes of mixed load against three real slapd on 127.0.0.1 (two of
//! them behind fault proxies) while a seeded schedule kills and restarts,
//! freezes and thaws servers, black-holes, refuses, resets and cuts proxied
//! connections, and reloads the pool's configuration.
//!
//! Load: searches, enumerations (some dropped half-way), compares, WhoAmI
//! with four credentials, password checks (right and wrong), adds of unique
//! entries and modifies adding unique values, all through one pool.
//!
//! Checks, each of which fails if the pool gets it wrong:
//! * zero hangs: every call is bounded by operation timeout + connect
//!   timeout + 5 s; outliving it is a failure (and the call is cancelled);
//!   a call that returns more than 1.5 s after its operation timeout (which
//!   bounds the whole call) is a failure too, unless the test process itself
//!   was not scheduled meanwhile (a plain thread watches for that). Servers
//!   are frozen for longer than the bound, so a pool that waited for them
//!   would be caught;
//! * right answers: entries, compare results, WhoAmI identities and password
//!   verdicts are checked; an error is accepted only if it is one a fault can
//!   cause (timeout, connect failure, lost connection, no server, and for
//!   writes "outcome unknown");
//! * writes, checked on the servers themselves with a direct root connection
//!   to each: a write the pool acknowledged exists exactly once (on all three
//!   servers together), an "outcome unknown" write at most once, a write that
//!   failed with any other error not at all, and nothing exists that was not
//!   written;
//! * after the last fault is healed and the pool sees every server up, every
//!   kind of operation succeeds (strictly: no error at all) in the
//!   configuration in force and in every other one, and every old
//!   generation is freed;
//! * zero leaks after `shutdown().await`: no socket, connection, user or
//!   generation in the pool; slapd's monitor shows none of our connections;
//!   the proxies hold none; tokio tasks and file descriptors are back to
//!   their count before the pool was built;
//! * resident memory: growth from the end of the warm-up to the end of the
//!   load is printed and must stay under 64 MiB.
//!
//! `LDAPMUX_SOAK_SECS` (default 30; 300 is the long run) and
//! `LDAPMUX_SOAK_SEED` (default: from the clock) select the run. The seed is
//! printed first and in every failure; the fault schedule (what, where,
//! when, for how long) and every task's choices are functions of it. The
//! interleaving with real I/O is not, so a replay repeats the schedule, not
//! the exact timing. Figures and findings: `docs/results/soak.md`.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ldap3::{LdapConnAsync, SearchEntry};
use ldapmux::core::Error as PoolError;
use ldapmux::{ConnErrorKind, Credential, Error, Health, Mod, Password, Pool, PoolBuilder, Scope};
use ldapmux_harness::{FIRST_UID, FaultProxy, ProxyMode, ROOT_DN, ROOT_PW, SCRATCH_BASE, Slapd};

const USERS: usize = 100;
/// The harness's default number of groups: user `i` is in group `i % 5`.
const GROUPS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack over op + connect timeout before a call counts as hung (2-core CI).
const MARGIN: Duration = Duration::from_secs(5);
/// Users with a credential of their own (WhoAmI checks).
const CRED_USERS: [usize; 3] = [1, 2, 3];
/// Resident memory may grow at most this much from warm-up to the end.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;
/// A call may return this long after its operation timeout (which bounds
/// the whole call, retries included) before it counts as late.
const LATE_SLACK: Duration = Duration::from_millis(1500);
/// Violations kept in full (the rest are counted).
const KEEP_VIOLATIONS: usize = 60;

fn hang_bound() -> Duration {
    OP_TIMEOUT + CONNECT_TIMEOUT + MARGIN
}

// ---------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------

/// splitmix64: small, deterministic, good enough to pick faults and ops.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// An independent stream for task `n`.
    fn fork(&self, n: u64) -> Rng {
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

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteOutcome {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteKind {
    /// `cn=<id>,ou=scratch`.
    Add,
    /// `description: <id>` added to a user entry.
    Modify,
}

/// One write, kept small: the soak keeps every one until the end, and its
/// own memory must not hide the pool's in the RSS figures.
#[derive(Clone, Copy, Debug)]
struct WriteRecord {
    task: u16,
    n: u32,
    kind: WriteKind,
    outcome: WriteOutcome,
    at_ms: u32,
}

impl WriteRecord {
    fn id(&self) -> String {
        write_id(self.task.into(), self.n.into())
    }
}

/// The unique name of write `n` of task `task`.
fn write_id(task: usize, n: u64) -> String {
    format!("soak-w{task}-{n}")
}

/// (operation, "ok" or an error kind).
type OutcomeKey = (&'static str, String);

struct Run {
    seed: u64,
    secs: u64,
    start: Instant,
    timeline: Mutex<Vec<(Duration, String)>>,
    violations: Mutex<(Vec<(Duration, String)>, usize)>,
    /// (operation, "ok" or error kind) → count.
    outcomes: Mutex<BTreeMap<OutcomeKey, u64>>,
    /// (operation, error kind) → when it was seen first and last.
    error_times: Mutex<BTreeMap<OutcomeKey, (Duration, Duration)>>,
    /// Slowest call per operation.
    slowest: Mutex<BTreeMap<&'static str, Duration>>,
    writes: Mutex<Vec<WriteRecord>>,
    /// Calls that returned after their timeout + `LATE_SLACK`: (op, start, took).
    late: Mutex<Vec<(&'static str, Duration, Duration)>>,
    /// Times the whole test process was not scheduled: (start, length).
    stalls: Mutex<Vec<(Duration, Duration)>>,
    /// Error kinds of failed writes (`WriteOutcome::Failed` indexes it).
    kinds: Mutex<Vec<String>>,
    /// Set once the load is over (the heal phase's errors are all violations).
    strict: AtomicBool,
    /// Set by the schedule: only writers send requests (see `FaultKind::CutWrite`).
    writes_only: AtomicBool,
}

impl Run {
    fn at(&self) -> Duration {
        self.start.elapsed()
    }

    fn event(&self, what: impl Into<String>) {
        let what = what.into();
        self.timeline.lock().unwrap().push((self.at(), what));
    }

    fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        let at = self.at();
        let mut v = self.violations.lock().unwrap();
        if v.0.len() < KEEP_VIOLATIONS {
            v.0.push((at, what));
        }
        v.1 += 1;
    }

    fn violations(&self) -> usize {
        self.violations.lock().unwrap().1
    }

    fn count(&self, op: &'static str, outcome: &str) {
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

    fn ok(&self, op: &'static str) {
        self.count(op, "ok");
    }

    fn oks(&self, op: &str) -> u64 {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|((o, k), _)| *o == op && k == "ok")
            .map(|(_, n)| n)
            .sum()
    }

    fn replay(&self) -> String {
        format!(
            "seed {seed}: replay with LDAPMUX_SOAK_SEED={seed} LDAPMUX_SOAK_SECS={secs}",
            seed = self.seed,
            secs = self.secs
        )
    }

    fn timeline_text(&self) -> String {
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
    fn fail(&self, what: &str) -> ! {
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
    async fn call<T>(
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

    /// A late call is the pool's fault unless the process itself was not
    /// scheduled for long enough while it ran: a stall seen by a plain OS
    /// thread (see `watch_stalls`) that covers the lateness. A pool that
    /// blocks its runtime or ignores its timeout stalls no other thread, so
    /// it is still caught. Returns (late calls, excused ones).
    fn judge_late(&self) -> (usize, usize) {
        let late = self.late.lock().unwrap().clone();
        let stalls = self.stalls.lock().unwrap().clone();
        let mut excused = 0;
        for &(op, start, took) in &late {
            let end = start + took;
            let stalled: Duration = stalls
                .iter()
                .map(|&(s, len)| {
                    let (from, to) = (s.max(start), (s + len).min(end));
                    to.saturating_sub(from)
                })
                .sum();
            if stalled + OP_TIMEOUT + LATE_SLACK >= took {
                excused += 1;
                self.count(op, "late-in-stall");
            } else {
                self.count(op, "LATE");
                self.violation(format!(
                    "late: {op} started at {:.3}s returned after {took:?} (the process stalled \
                     {stalled:?} meanwhile); its timeout, which bounds the whole call, is {OP_TIMEOUT:?}",
                    start.as_secs_f64()
                ));
            }
        }
        (late.len(), excused)
    }

    fn record_write(&self, task: usize, n: u64, kind: WriteKind, r: Option<Result<(), Error>>) {
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
fn classify(e: &Error, write: bool) -> (String, bool) {
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

// ---------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------

/// Handles the load tasks share.
#[derive(Clone)]
struct Handles {
    pool: Pool,
    admin: Pool,
    /// (user index, handle bound as that user).
    users: Vec<(usize, Pool)>,
}

impl Handles {
    fn new(pool: &Pool) -> Handles {
        Handles {
            pool: pool.clone(),
            admin: pool.with_credential(Credential::simple(ROOT_DN, ROOT_PW)),
            users: CRED_USERS
                .iter()
                .map(|&i| {
                    let cred = Credential::simple(Slapd::user_dn(i), Slapd::user_password(i));
                    (i, pool.with_credential(cred))
                })
                .collect(),
        }
    }
}

fn first_value<'a>(e: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

async fn search_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let i = rng.index(USERS);
    let filter = format!("(uid={})", Slapd::user_uid(i));
    let r = run
        .call(
            "search",
            false,
            h.pool.search(
                Slapd::people_base(),
                Scope::OneLevel,
                &filter,
                &["uidNumber"],
            ),
        )
        .await;
    if let Some(Ok(entries)) = r {
        let want = (FIRST_UID as usize + i).to_string();
        let got: Vec<_> = entries
            .iter()
            .map(|e| first_value(e, "uidNumber"))
            .collect();
        if got == [Some(want.as_str())] {
            run.ok("search");
        } else {
            run.violation(format!("search {filter}: wrong answer {got:?}"));
        }
    }
}

async fn compare_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let i = rng.index(USERS);
    let equal = rng.below(2) == 0;
    let value = FIRST_UID as usize + if equal { i } else { i + 1 };
    let r = run
        .call(
            "compare",
            false,
            h.pool
                .compare(&Slapd::user_dn(i), "uidNumber", value.to_string()),
        )
        .await;
    match r {
        Some(Ok(got)) if got == equal => run.ok("compare"),
        Some(Ok(got)) => run.violation(format!(
            "compare uidNumber={value} on user{i}: {got}, expected {equal}"
        )),
        _ => {}
    }
}

async fn whoami_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let c = rng.index(h.users.len() + 1);
    let (handle, want) = match c.checked_sub(1) {
        None => (&h.pool, String::new()),
        Some(k) => {
            let (i, handle) = &h.users[k];
            (handle, format!("dn:{}", Slapd::user_dn(*i)))
        }
    };
    if let Some(Ok(got)) = run.call("whoami", false, handle.whoami()).await {
        if got.eq_ignore_ascii_case(&want) {
            run.ok("whoami");
        } else {
            run.violation(format!(
                "whoami: {got:?} on a connection that must be bound as {want:?}"
            ));
        }
    }
}

async fn enumerate_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let j = rng.index(GROUPS);
    // Sometimes the caller walks away half-way (the stream is dropped).
    let stop_after = (rng.below(4) == 0).then(|| 1 + rng.index(5));
    let filter = format!("(gidNumber={})", ldapmux_harness::FIRST_GID as usize + j);
    let r = run
        .call(
            "enumerate",
            false,
            h.pool
                .streaming_search(Slapd::people_base(), Scope::OneLevel, &filter, &["uid"]),
        )
        .await;
    let Some(Ok(mut stream)) = r else { return };
    let mut seen = HashSet::new();
    loop {
        if stop_after == Some(seen.len()) {
            drop(stream);
            run.ok("enumerate");
            return;
        }
        let item = run
            .call("enumerate", false, async {
                stream.next().await.transpose()
            })
            .await;
        match item {
            None | Some(Err(_)) => return,
            Some(Ok(None)) => break,
            Some(Ok(Some(e))) => {
                let uid = first_value(&e, "uid").unwrap_or_default().to_owned();
                let i: Option<usize> = uid.strip_prefix("user").and_then(|n| n.parse().ok());
                if i.is_none_or(|i| i % GROUPS != j) || !seen.insert(uid.clone()) {
                    run.violation(format!("enumerate {filter}: unexpected entry {uid:?}"));
                    return;
                }
            }
        }
    }
    let want = (0..USERS).filter(|i| i % GROUPS == j).count();
    if seen.len() == want {
        run.ok("enumerate");
    } else {
        run.violation(format!(
            "enumerate {filter}: ended after {} entries, expected {want}",
            seen.len()
        ));
    }
}

async fn authenticate_one(run: &Run, h: &Handles, rng: &mut Rng, n: u64) {
    let i = rng.index(USERS);
    let right = rng.below(4) != 0;
    let pw = if right {
        Slapd::user_password(i)
    } else {
        format!("wrong-{n}")
    };
    let r = run
        .call(
            "authenticate",
            false,
            h.pool.authenticate(&Slapd::user_dn(i), &Password::new(pw)),
        )
        .await;
    match r {
        Some(Ok(got)) if got == right => run.ok("authenticate"),
        Some(Ok(got)) => run.violation(format!(
            "authenticate user{i} with the {} password: {got}",
            if right { "right" } else { "wrong" }
        )),
        _ => {}
    }
}

/// One write with a name used nowhere else: an add of `cn=<id>` or a modify
/// adding `description: <id>` to a user.
async fn write_one(run: &Run, h: &Handles, rng: &mut Rng, task: usize, n: u64) {
    let id = write_id(task, n);
    if rng.below(10) < 7 {
        let dn = format!("cn={id},{SCRATCH_BASE}");
        let r = run
            .call("add", true, h.admin.add(&dn, common::person(&id)))
            .await;
        if matches!(r, Some(Ok(()))) {
            run.ok("add");
        }
        run.record_write(task, n, WriteKind::Add, r);
    } else {
        let dn = Slapd::user_dn(rng.index(USERS));
        let mods = vec![Mod::Add(
            "description".to_owned(),
            HashSet::from([id.clone()]),
        )];
        let r = run.call("modify", true, h.admin.modify(&dn, mods)).await;
        if matches!(r, Some(Ok(()))) {
            run.ok("modify");
        }
        run.record_write(task, n, WriteKind::Modify, r);
    }
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Reader,
    Enumerator,
    Writer,
    Authenticator,
}

async fn load_task(
    run: Arc<Run>,
    h: Handles,
    role: Role,
    task: usize,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        if !matches!(role, Role::Writer) && run.writes_only.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        n += 1;
        match role {
            Role::Reader => match rng.below(10) {
                0..=5 => search_one(&run, &h, &mut rng).await,
                6..=7 => compare_one(&run, &h, &mut rng).await,
                _ => whoami_one(&run, &h, &mut rng).await,
            },
            Role::Enumerator => enumerate_one(&run, &h, &mut rng).await,
            Role::Writer => write_one(&run, &h, &mut rng, task, n).await,
            Role::Authenticator => authenticate_one(&run, &h, &mut rng, n).await,
        }
        // The load's own pacing: a little think time, so that three slapd,
        // the proxies and the pool share two cores without starving probes.
        let think = match role {
            Role::Writer | Role::Authenticator => rng.ms(2, 10),
            _ => rng.ms(0, 4),
        };
        tokio::time::sleep(think).await;
    }
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum FaultKind {
    /// SIGKILL, restart on the same port after a while.
    Kill,
    /// SIGSTOP, SIGCONT after a while.
    Freeze,
    /// SIGSTOP of the server the traffic goes to, for longer than the hang
    /// bound: a call that waits for it instead of timing out is caught.
    Hang,
    /// The proxy black-holes for a while.
    Blackhole,
    /// The proxy resets every connection and refuses new ones for a while.
    Refuse,
    /// The proxy resets every connection once.
    Reset,
    /// The proxy forwards the next request, swallows the answer and resets.
    Cut,
    /// Like `Cut`, with every task but the writers paused, so that the request
    /// cut is a write on the server writes go to: the server applies it, the
    /// pool must answer "outcome unknown" and must not send it again.
    CutWrite,
    /// `pool.reload` with another configuration.
    Reload,
    /// Nothing.
    Quiet,
}

const EVERY_FAULT: [FaultKind; 9] = [
    FaultKind::Kill,
    FaultKind::Freeze,
    FaultKind::Hang,
    FaultKind::Blackhole,
    FaultKind::Refuse,
    FaultKind::Reset,
    FaultKind::Cut,
    FaultKind::CutWrite,
    FaultKind::Reload,
];

#[derive(Clone, Copy, Debug)]
enum Active {
    Killed,
    Frozen,
    Proxy(ProxyMode),
}

struct Target {
    name: &'static str,
    server: Slapd,
    proxy: Option<Arc<FaultProxy>>,
    /// The fault on it and when it is healed.
    active: Option<(Active, Instant)>,
}

/// The pool's server list in each configuration a reload may switch to.
fn config(variant: usize, urls: &[String; 3], seed: u64) -> PoolBuilder {
    let base = Pool::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OP_TIMEOUT)
        .probe_backoff(Duration::from_millis(100), Duration::from_millis(800))
        .failback_hold_down(Duration::from_millis(500))
        .jitter_seed(seed);
    let [a, b, c] = urls.clone();
    match variant {
        0 => base.preferred_server(b).server(a).server(c),
        1 => base.preferred_server(a).server(b).server(c),
        2 => base.server(a).server(b).server(c),
        3 => base.preferred_server(c).server(a),
        _ => base
            .preferred_server(b)
            .preferred_server(c)
            .server(a)
            .max_users_per_connection(4)
            .max_connections_per_server(6),
    }
}
const VARIANTS: usize = 5;

/// Which configured servers (indexes into `urls`) a variant uses.
fn variant_servers(variant: usize) -> &'static [usize] {
    match variant {
        0 => &[1, 0, 2],
        1 | 2 => &[0, 1, 2],
        3 => &[2, 0],
        _ => &[1, 2, 0],
    }
}

struct Schedule {
    targets: Vec<Target>,
    variant: usize,
    done: BTreeMap<FaultKind, u32>,
    cuts_claimed: u32,
    write_cuts_claimed: u32,
}

/// Ends the fault on `t`; `true` if it was a cut that hit a request.
fn heal(run: &Run, t: &mut Target, why: &str) -> bool {
    let Some((active, _)) = t.active.take() else {
        return false;
    };
    match active {
        Active::Killed => {
            let started = Instant::now();
            match t.server.restart() {
                Ok(()) => run.event(format!(
                    "{}: restarted ({why}; {} ms)",
                    t.name,
                    started.elapsed().as_millis()
                )),
                Err(e) => run.violation(format!("{}: restart failed: {e}", t.name)),
            }
        }
        Active::Frozen => {
            t.server.thaw();
            run.event(format!("{}: thawed ({why})", t.name));
        }
        Active::Proxy(mode) => {
            let proxy = t
                .proxy
                .as_ref()
                .expect("proxy faults only on proxied servers");
            let claimed = mode == ProxyMode::CutAfterRequest && proxy.mode() == ProxyMode::Forward;
            proxy.set_mode(ProxyMode::Forward);
            let note = if mode == ProxyMode::CutAfterRequest {
                if claimed {
                    ", the cut hit a request"
                } else {
                    ", no request came"
                }
            } else {
                ""
            };
            run.event(format!("{}: proxy forwards again ({why}{note})", t.name));
            return claimed;
        }
    }
    false
}

/// Runs the fault schedule until `deadline`, then heals everything. Runs on a
/// blocking thread: kill, restart, freeze and thaw are synchronous.
fn run_schedule(
    run: &Run,
    mut s: Schedule,
    pool: &Pool,
    urls: &[String; 3],
    mut rng: Rng,
    deadline: Instant,
) -> Schedule {
    // Every kind once first, in a seeded order, so even 30 s cover them all.
    let mut first: Vec<FaultKind> = EVERY_FAULT.to_vec();
    for i in (1..first.len()).rev() {
        first.swap(i, rng.index(i + 1));
    }
    // The write cut first: configuration 0 sends writes through B's proxy.
    first.retain(|&k| k != FaultKind::CutWrite);
    first.push(FaultKind::CutWrite);
    let mut next_fault = Instant::now() + rng.ms(1000, 3000);
    loop {
        let now = Instant::now();
        for t in &mut s.targets {
            if t.active.is_some_and(|(_, until)| until <= now) && heal(run, t, "scheduled") {
                s.cuts_claimed += 1;
            }
        }
        if now >= deadline {
            break;
        }
        if now >= next_fault {
            let kind = first.pop().unwrap_or_else(|| {
                // Weighted: kills and freezes most, then proxy faults and reloads.
                match rng.below(21) {
                    0..=3 => FaultKind::Kill,
                    4..=5 => FaultKind::Freeze,
                    6 | 20 => FaultKind::Hang,
                    7..=8 => FaultKind::Blackhole,
                    9..=10 => FaultKind::Refuse,
                    11..=12 => FaultKind::Reset,
                    13 => FaultKind::Cut,
                    14 => FaultKind::CutWrite,
                    15..=17 => FaultKind::Reload,
                    _ => FaultKind::Quiet,
                }
            });
            if !inject(run, &mut s, kind, pool, urls, &mut rng) && kind != FaultKind::Reload {
                // Try this kind again next time, so the first pass covers every kind.
                if !s.done.contains_key(&kind) {
                    first.push(kind);
                }
            }
            // The first pass a little faster, so that 30 s cover every kind
            // even when a kind finds no free server and waits for the next slot.
            next_fault = now
                + if first.is_empty() {
                    rng.ms(1000, 3000)
                } else {
                    rng.ms(1000, 2000)
                };
        }
        let wake = s
            .targets
            .iter()
            .filter_map(|t| t.active.map(|(_, until)| until))
            .chain([next_fault, deadline])
            .min()
            .expect("at least two instants");
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        );
    }
    for t in &mut s.targets {
        if heal(run, t, "end of the schedule") {
            s.cuts_claimed += 1;
        }
    }
    for t in &s.targets {
        if let Some(p) = &t.proxy {
            p.set_mode(ProxyMode::Forward);
        }
    }
    run.event("schedule over: every server running, every proxy forwarding");
    s
}

impl Schedule {
    /// A target for a fault: a free server `eligible` for it. Two times in
    /// three the one the traffic goes to (the first server of the
    /// configuration that no fault holds) if it qualifies, else any.
    fn choose(&self, rng: &mut Rng, eligible: impl Fn(&Target) -> bool) -> Option<usize> {
        let free: Vec<usize> = (0..self.targets.len())
            .filter(|&i| self.targets[i].active.is_none() && eligible(&self.targets[i]))
            .collect();
        if free.is_empty() {
            return None;
        }
        if rng.below(3) < 2
            && let Some(i) = self.busy().filter(|i| free.contains(i))
        {
            return Some(i);
        }
        Some(free[rng.index(free.len())])
    }

    /// The server the traffic goes to: the first of the configuration that
    /// no fault holds.
    fn busy(&self) -> Option<usize> {
        variant_servers(self.variant)
            .iter()
            .copied()
            .find(|&i| self.targets[i].active.is_none())
    }
}

/// Injects one fault; `false` if no server could take it.
fn inject(
    run: &Run,
    s: &mut Schedule,
    kind: FaultKind,
    pool: &Pool,
    urls: &[String; 3],
    rng: &mut Rng,
) -> bool {
    let now = Instant::now();
    let proxied = |t: &Target| t.proxy.is_some();
    let done = match kind {
        FaultKind::Kill => s.choose(rng, |_| true).map(|i| {
            let hold = rng.ms(300, 3000);
            let t = &mut s.targets[i];
            run.event(format!("{}: kill -9 (restart in {hold:?})", t.name));
            t.server.kill();
            t.active = Some((Active::Killed, now + hold));
        }),
        FaultKind::Hang => s.busy().map(|i| {
            let hold = rng.ms(9_000, 12_000);
            let t = &mut s.targets[i];
            run.event(format!(
                "{}: SIGSTOP, the server in use (thaw in {hold:?})",
                t.name
            ));
            t.server.freeze();
            t.active = Some((Active::Frozen, now + hold));
        }),
        FaultKind::Freeze => s.choose(rng, |_| true).map(|i| {
            let hold = rng.ms(500, 4000);
            let t = &mut s.targets[i];
            run.event(format!("{}: SIGSTOP (thaw in {hold:?})", t.name));
            t.server.freeze();
            t.active = Some((Active::Frozen, now + hold));
        }),
        FaultKind::Blackhole | FaultKind::Refuse | FaultKind::Cut => {
            s.choose(rng, proxied).map(|i| {
                let (mode, hold) = match kind {
                    FaultKind::Blackhole if rng.below(4) == 0 => {
                        (ProxyMode::Blackhole, rng.ms(9_000, 12_000))
                    }
                    FaultKind::Blackhole => (ProxyMode::Blackhole, rng.ms(500, 3000)),
                    FaultKind::Refuse => (ProxyMode::Refuse, rng.ms(500, 3000)),
                    _ => (ProxyMode::CutAfterRequest, rng.ms(500, 2000)),
                };
                let t = &mut s.targets[i];
                run.event(format!("{}: proxy {mode:?} (for {hold:?})", t.name));
                t.proxy.as_ref().expect("proxied").set_mode(mode);
                t.active = Some((Active::Proxy(mode), now + hold));
            })
        }
        FaultKind::CutWrite => {
            // Where the writes go, if it is behind a proxy.
            let target = s.busy().filter(|&i| s.targets[i].proxy.is_some());
            target.map(|i| {
                let t = &s.targets[i];
                let proxy = t.proxy.as_ref().expect("proxied");
                run.writes_only.store(true, Ordering::SeqCst);
                // Let the reads in flight finish, then arm the cut.
                std::thread::sleep(Duration::from_millis(50));
                proxy.set_mode(ProxyMode::CutAfterRequest);
                let armed = Instant::now();
                while proxy.mode() == ProxyMode::CutAfterRequest
                    && armed.elapsed() < Duration::from_secs(1)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let claimed = proxy.mode() == ProxyMode::Forward;
                proxy.set_mode(ProxyMode::Forward);
                run.writes_only.store(false, Ordering::SeqCst);
                if claimed {
                    s.write_cuts_claimed += 1;
                }
                run.event(format!(
                    "{}: proxy cut the next request with only writers running ({})",
                    t.name,
                    if claimed {
                        "a request was cut"
                    } else {
                        "none came within 1 s"
                    }
                ));
            })
        }
        FaultKind::Reset => s.choose(rng, proxied).map(|i| {
            let t = &s.targets[i];
            run.event(format!("{}: proxy resets every connection", t.name));
            t.proxy.as_ref().expect("proxied").reset_all();
        }),
        FaultKind::Reload => {
            let next = (s.variant + 1 + rng.index(VARIANTS - 1)) % VARIANTS;
            match pool.reload(config(next, urls, run.seed)) {
                Ok(()) => {
                    s.variant = next;
                    let names: Vec<_> = variant_servers(next)
                        .iter()
                        .map(|&i| s.targets[i].name)
                        .collect();
                    run.event(format!("reload: configuration {next} (servers {names:?})"));
                    Some(())
                }
                Err(e) => {
                    run.violation(format!("reload to configuration {next} refused: {e}"));
                    None
                }
            }
        }
        FaultKind::Quiet => {
            run.event("quiet");
            Some(())
        }
    };
    if done.is_some() {
        *s.done.entry(kind).or_default() += 1;
    } else {
        run.event(format!("{kind:?}: no free target, quiet instead"));
    }
    done.is_some()
}

// ---------------------------------------------------------------------------
// Process figures
// ---------------------------------------------------------------------------

/// Records every time a plain OS thread, asking to sleep 10 ms, is not woken
/// for over 200 ms more: the machine did not run this process (here: other
/// jobs saturating the two cores). Runs until `stop`.
fn watch_stalls(run: Arc<Run>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tick = Duration::from_millis(10);
        while !stop.load(Ordering::SeqCst) {
            let before = run.at();
            std::thread::sleep(tick);
            let overslept = run.at().saturating_sub(before + tick);
            if overslept > Duration::from_millis(200) {
                run.stalls.lock().unwrap().push((before + tick, overslept));
                run.event(format!(
                    "the test process was not scheduled for {} ms",
                    overslept.as_millis()
                ));
            }
        }
    })
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Polls `check` until it returns `None` (fine) or `within` passes; returns
/// the last complaint.
async fn settle(within: Duration, mut check: impl FnMut() -> Option<String>) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let complaint = check()?;
        if Instant::now() >= deadline {
            return Some(complaint);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// Checks on the servers
// ---------------------------------------------------------------------------

/// Every soak write on one server, read with a direct root connection:
/// the `cn` of each scratch entry and each (user, description value).
async fn writes_on(url: &str) -> Result<(Vec<String>, Vec<(String, String)>), String> {
    let t = Duration::from_secs(10);
    let (conn, mut ldap) = tokio::time::timeout(t, LdapConnAsync::new(url))
        .await
        .map_err(|_| format!("connect to {url} timed out"))?
        .map_err(|e| format!("connect to {url}: {e}"))?;
    let drive = tokio::spawn(conn.drive());
    ldap.with_timeout(t)
        .simple_bind(ROOT_DN, ROOT_PW)
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("bind to {url}: {e}"))?;
    let (scratch, _) = ldap
        .with_timeout(t)
        .search(SCRATCH_BASE, Scope::OneLevel, "(objectClass=*)", vec!["cn"])
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("search {SCRATCH_BASE} on {url}: {e}"))?;
    let (people, _) = ldap
        .with_timeout(t)
        .search(
            Slapd::people_base(),
            Scope::OneLevel,
            "(description=*)",
            vec!["description"],
        )
        .await
        .and_then(|r| r.success())
        .map_err(|e| format!("search descriptions on {url}: {e}"))?;
    let _ = tokio::time::timeout(t, ldap.unbind()).await;
    let _ = tokio::time::timeout(t, drive).await;
    let adds = scratch
        .into_iter()
        .map(SearchEntry::construct)
        .flat_map(|e| e.attrs.get("cn").cloned().unwrap_or_default())
        .collect();
    let mods = people
        .into_iter()
        .map(SearchEntry::construct)
        .flat_map(|e| {
            let dn = e.dn.clone();
            e.attrs
                .get("description")
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |v| (dn.clone(), v))
        })
        .collect();
    Ok((adds, mods))
}

#[derive(Debug, Default)]
struct WriteFigures {
    ok: u64,
    unknown: u64,
    unknown_applied: u64,
    failed: u64,
    hung: u64,
}

/// Compares the client's write log with what the servers hold.
async fn check_writes(run: &Run, servers: &[(&str, String)]) -> WriteFigures {
    // id → (server, entry) places it was found.
    let mut found: HashMap<String, Vec<String>> = HashMap::new();
    for (name, url) in servers {
        let (adds, mods) = writes_on(url)
            .await
            .unwrap_or_else(|e| run.fail(&format!("reading the writes back: {e}")));
        for cn in adds {
            found.entry(cn).or_default().push(format!("{name} (add)"));
        }
        for (dn, v) in mods {
            found.entry(v).or_default().push(format!("{name} {dn}"));
        }
    }
    let writes = std::mem::take(&mut *run.writes.lock().unwrap());
    let kinds = run.kinds.lock().unwrap().clone();
    let mut figures = WriteFigures::default();
    for w in &writes {
        let id = w.id();
        let places = found.remove(&id).unwrap_or_default();
        let n = places.len();
        let at = f64::from(w.at_ms) / 1000.0;
        let what = format!("{:?} {id} (done at {at:.3}s)", w.kind);
        match w.outcome {
            WriteOutcome::Ok => {
                figures.ok += 1;
                if n != 1 {
                    run.violation(format!(
                        "{what} was acknowledged but exists {n} times: {places:?}"
                    ));
                }
            }
            WriteOutcome::Unknown => {
                figures.unknown += 1;
                figures.unknown_applied += n.min(1) as u64;
                if n > 1 {
                    run.violation(format!(
                        "{what} had an unknown outcome and exists {n} times: {places:?}"
                    ));
                }
            }
            WriteOutcome::Failed(k) => {
                let kind = &kinds[usize::from(k)];
                figures.failed += 1;
                if n != 0 {
                    run.violation(format!(
                        "{what} failed ({kind}), so was never applied, but exists: {places:?}"
                    ));
                }
            }
            WriteOutcome::Hung => {
                figures.hung += 1;
                if n > 1 {
                    run.violation(format!("{what} hung and exists {n} times: {places:?}"));
                }
            }
        }
    }
    for (id, places) in found.into_iter().filter(|(id, _)| id.starts_with("soak-")) {
        run.violation(format!("{id} exists on {places:?} but was never written"));
    }
    figures
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// Successful calls of every kind so far.
fn strict_oks(run: &Run) -> u64 {
    [
        "search",
        "enumerate",
        "compare",
        "whoami",
        "authenticate",
        "add",
        "modify",
    ]
    .iter()
    .map(|op| run.oks(op))
    .sum()
}

/// What the pool holds, to tell why operations failed.
fn pool_holds(pool: &Pool) -> String {
    let status = pool.status();
    let conns: Vec<String> = pool
        .connections()
        .iter()
        .map(|c| {
            format!(
                "{} {} {:?} cred {} {:?} users {} waiters {}",
                c.id,
                c.server,
                c.purpose,
                c.cred,
                c.phase,
                c.users,
                c.waiters.len()
            )
        })
        .collect();
    format!(
        "the pool: {} users, {} queued, servers (id, address, health, connections, users) {:?}, \
         connections:\n      {}",
        status.users,
        status.queued,
        status
            .servers
            .iter()
            .map(|s| (s.id, s.addr.clone(), s.health, s.conns, s.users))
            .collect::<Vec<_>>(),
        conns.join("\n      ")
    )
}

fn init_tracing() {
    // Faults make the pool warn a lot; RUST_LOG=warn shows it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_load_with_seeded_faults_kills_restarts_and_reloads() {
    init_tracing();
    let secs = env_u64("LDAPMUX_SOAK_SECS").unwrap_or(30).max(1);
    let seed = env_u64("LDAPMUX_SOAK_SEED").unwrap_or_else(clock_seed);
    println!(
        "soak: {secs} s, seed {seed}: replay with LDAPMUX_SOAK_SEED={seed} LDAPMUX_SOAK_SECS={secs}"
    );
    let run = Arc::new(Run {
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
    });
    let root = Rng::new(seed);
    let stalls_stop = Arc::new(AtomicBool::new(false));
    let stall_watch = watch_stalls(run.clone(), stalls_stop.clone());

    // Three servers; B and C behind fault proxies.
    let a = common::slapd(USERS);
    let b = common::slapd(USERS);
    let c = common::slapd(USERS);
    let pb = Arc::new(FaultProxy::start(b.addr()).await.expect("proxy for B"));
    let pc = Arc::new(FaultProxy::start(c.addr()).await.expect("proxy for C"));
    let urls = [a.url(), pb.url(), pc.url()];
    let direct = [("A", a.url()), ("B", b.url()), ("C", c.url())];
    run.event(format!(
        "servers: A {} direct, B {} via proxy {}, C {} via proxy {}",
        a.url(),
        b.url(),
        pb.url(),
        c.url(),
        pc.url()
    ));

    // Tasks are this test's runtime's; descriptors are the whole process's, so
    // this must stay the only test in this file (its own test binary).
    let tasks_before = alive_tasks();
    let fds_before = open_fds();
    let pool = config(0, &urls, seed).build().expect("pool");
    let handles = Handles::new(&pool);
    run.event("pool built with configuration 0 (B preferred, then A, C)");

    // Load.
    let stop = Arc::new(AtomicBool::new(false));
    let roles = [
        (Role::Reader, 6),
        (Role::Enumerator, 2),
        (Role::Writer, 2),
        (Role::Authenticator, 1),
    ];
    let mut load = Vec::new();
    for (role, n) in roles {
        for _ in 0..n {
            let task = load.len();
            load.push(tokio::spawn(load_task(
                run.clone(),
                handles.clone(),
                role,
                task,
                root.fork(task as u64),
                stop.clone(),
            )));
        }
    }

    // Resident memory, once a second.
    let warmup = Duration::from_secs((secs / 10).clamp(3, 30));
    let samples = Arc::new(Mutex::new(Vec::<(Duration, u64)>::new()));
    let sampler = {
        let (samples, stop, run) = (samples.clone(), stop.clone(), run.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                samples.lock().unwrap().push((run.at(), rss_kib()));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The pool's view of each server, into the timeline when it changes.
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (pool, run, stop) = (pool.clone(), run.clone(), watch_stop.clone());
        let names: Vec<(String, &str)> = urls.iter().cloned().zip(["A", "B", "C"]).collect();
        tokio::spawn(async move {
            let mut last: HashMap<String, &str> = HashMap::new();
            while !stop.load(Ordering::SeqCst) {
                for s in pool.status().servers {
                    let health = match s.health {
                        Health::Up => "up",
                        Health::Returning { .. } => "back up (hold-down)",
                        Health::Down { .. } => "down",
                    };
                    let before = last.insert(s.addr.clone(), health);
                    if before != Some(health) && (before.is_some() || health != "up") {
                        let name = names
                            .iter()
                            .find(|(u, _)| u.eq_ignore_ascii_case(&s.addr))
                            .map_or(s.addr.as_str(), |(_, n)| n);
                        run.event(format!("    pool: {name} {health}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Faults, until the deadline; then everything is healed.
    let schedule = Schedule {
        targets: vec![
            Target {
                name: "A",
                server: a,
                proxy: None,
                active: None,
            },
            Target {
                name: "B",
                server: b,
                proxy: Some(pb.clone()),
                active: None,
            },
            Target {
                name: "C",
                server: c,
                proxy: Some(pc.clone()),
                active: None,
            },
        ],
        variant: 0,
        done: BTreeMap::new(),
        cuts_claimed: 0,
        write_cuts_claimed: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let faults = {
        let (run, pool, urls, rng) = (run.clone(), pool.clone(), urls.clone(), root.fork(1_000));
        tokio::task::spawn_blocking(move || {
            run_schedule(&run, schedule, &pool, &urls, rng, deadline)
        })
    };
    let schedule = match tokio::time::timeout(Duration::from_secs(secs + 120), faults).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => run.fail(&format!("the fault schedule panicked: {e}")),
        Err(_) => run.fail("the fault schedule did not end"),
    };

    // Stop the load: every task must end within one bounded call.
    stop.store(true, Ordering::SeqCst);
    for task in load {
        match tokio::time::timeout(hang_bound() * 3, task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => run.fail(&format!("a load task panicked: {e}")),
            Err(_) => run.fail("a load task did not end: a call hung outside the bounds"),
        }
    }
    let rss_end = rss_kib();
    // The soak's own growing record, to tell it apart from the pool's memory.
    let log_kib = run.writes.lock().unwrap().capacity() * std::mem::size_of::<WriteRecord>() / 1024;
    let _ = sampler.await;
    let load_secs = run.at().as_secs_f64();
    run.event("load stopped");

    // The pool must see every server of its configuration up again (probes),
    // then serve every kind of operation without a single error.
    let variant = schedule.variant;
    let wanted: Vec<String> = variant_servers(variant)
        .iter()
        .map(|&i| urls[i].clone())
        .collect();
    let heal_started = Instant::now();
    let not_up = settle(Duration::from_secs(20), || {
        let status = pool.status();
        let down: Vec<_> = status
            .servers
            .iter()
            .filter(|s| wanted.iter().any(|u| s.addr.eq_ignore_ascii_case(u)))
            .filter(|s| s.health != Health::Up)
            .map(|s| format!("{} {:?}", s.addr, s.health))
            .collect();
        (!down.is_empty()).then(|| format!("{down:?}"))
    })
    .await;
    if let Some(down) = not_up {
        run.violation(format!(
            "20 s after the last fault was healed the pool still sees {down}"
        ));
    }
    run.event(format!(
        "pool sees every server up ({} ms after the heal)",
        heal_started.elapsed().as_millis()
    ));
    // Then, in the configuration in force and in every other one (reloaded
    // while idle), every kind of operation must succeed without one error.
    run.strict.store(true, Ordering::SeqCst);
    let mut rng = root.fork(2_000);
    let mut order: Vec<usize> = (0..VARIANTS).filter(|&v| v != variant).collect();
    order.insert(0, variant);
    let mut strict_ops = 0;
    for (round, &v) in order.iter().enumerate() {
        if v != variant {
            if let Err(e) = pool.reload(config(v, &urls, seed)) {
                run.violation(format!("reload to configuration {v} refused: {e}"));
                continue;
            }
            run.event(format!("reload: configuration {v}, idle"));
        }
        let before = strict_oks(&run);
        for k in 0..8u64 {
            search_one(&run, &handles, &mut rng).await;
            compare_one(&run, &handles, &mut rng).await;
            whoami_one(&run, &handles, &mut rng).await;
            write_one(&run, &handles, &mut rng, 99, round as u64 * 100 + k).await;
            if k % 4 == 0 {
                enumerate_one(&run, &handles, &mut rng).await;
                authenticate_one(&run, &handles, &mut rng, k).await;
            }
        }
        let done = strict_oks(&run) - before;
        strict_ops += done;
        if done != 36 {
            run.violation(format!(
                "after the heal, in configuration {v}, {done} of 36 operations succeeded; {}",
                pool_holds(&pool)
            ));
        }
    }
    run.event(format!(
        "after the heal: {strict_ops} operations succeeded in {} configurations",
        order.len()
    ));
    run.strict.store(false, Ordering::SeqCst);

    // Every old generation drains and is freed once the load is gone.
    if let Some(gens) = settle(Duration::from_secs(10), || {
        let g = pool.status().generations;
        (g.len() != 1).then(|| format!("{g:?}"))
    })
    .await
    {
        run.violation(format!(
            "old generations not freed 10 s after the load: {gens}"
        ));
    }
    watch_stop.store(true, Ordering::SeqCst);
    let _ = watcher.await;
    let status = pool.status();

    // Shutdown: everything closed, nothing left.
    let shutdown_started = Instant::now();
    let left_open = match tokio::time::timeout(hang_bound(), pool.shutdown()).await {
        Ok(n) => n,
        Err(_) => run.fail("shutdown().await did not return"),
    };
    let shutdown_ms = shutdown_started.elapsed().as_millis();
    run.event(format!(
        "shutdown: {left_open} sockets left, {shutdown_ms} ms"
    ));
    if left_open != 0 || pool.open_sockets() != 0 {
        run.violation(format!(
            "shutdown left {left_open} sockets ({} now)",
            pool.open_sockets()
        ));
    }
    let after = pool.status();
    if !(after.shut_down && after.conns == 0 && after.users == 0 && after.generations.is_empty()) {
        run.violation(format!(
            "after shutdown: shut_down {}, {} connections, {} users, generations {:?}",
            after.shut_down, after.conns, after.users, after.generations
        ));
    }
    drop((pool, handles));
    let targets = schedule.targets;
    for t in &targets {
        if let Err(e) = t
            .server
            .wait_current_connections(0, Duration::from_secs(10))
            .await
        {
            run.violation(format!("{}: {e}", t.name));
        }
    }
    for (name, p) in [("B", &pb), ("C", &pc)] {
        if let Some(n) = settle(Duration::from_secs(5), || {
            (p.live() != 0).then(|| p.live().to_string())
        })
        .await
        {
            run.violation(format!("proxy of {name} still holds {n} connections"));
        }
    }
    if let Some(left) = settle(Duration::from_secs(10), || {
        let (t, f) = (alive_tasks(), open_fds());
        (t != tasks_before || f != fds_before).then(|| {
            format!("{t} tasks (before the pool: {tasks_before}), {f} descriptors (before: {fds_before})")
        })
    })
    .await
    {
        run.violation(format!("after shutdown and drop: {left}"));
    }

    // The writes, on the servers themselves.
    let writes = check_writes(&run, &direct).await;

    // Figures.
    let samples = samples.lock().unwrap().clone();
    let rss_warm = samples
        .iter()
        .find(|(t, _)| *t >= warmup)
        .or(samples.last())
        .map(|&(_, k)| k)
        .unwrap_or(rss_end);
    let rss_peak = samples
        .iter()
        .map(|&(_, k)| k)
        .max()
        .unwrap_or(rss_end)
        .max(rss_end);
    let growth = rss_end as i64 - rss_warm as i64;
    let rss_half = samples
        .iter()
        .find(|(t, _)| t.as_secs() >= secs / 2)
        .map_or(rss_warm, |&(_, k)| k);
    if growth > RSS_GROWTH_LIMIT_KIB as i64 {
        run.violation(format!(
            "resident memory grew {growth} KiB from warm-up to the end (limit {RSS_GROWTH_LIMIT_KIB})"
        ));
    }
    stalls_stop.store(true, Ordering::SeqCst);
    stall_watch.join().expect("stall watcher");
    let (late, late_excused) = run.judge_late();
    let stalls = run.stalls.lock().unwrap().clone();
    let outcomes = run.outcomes.lock().unwrap().clone();
    let slowest = run.slowest.lock().unwrap().clone();
    let total_ok: u64 = outcomes
        .iter()
        .filter(|((_, k), _)| k == "ok")
        .map(|(_, n)| n)
        .sum();
    let total_err: u64 = outcomes
        .iter()
        .filter(|((_, k), _)| k != "ok")
        .map(|(_, n)| n)
        .sum();

    let mut report = String::new();
    report += &format!("soak summary ({})\n", run.replay());
    report += &format!(
        "  load {load_secs:.1} s; {total_ok} calls ok, {total_err} failed ({:.0} ok/s)\n",
        total_ok as f64 / load_secs
    );
    let mut ops: Vec<&str> = outcomes.keys().map(|(o, _)| *o).collect();
    ops.dedup();
    for op in ops {
        let kinds: Vec<String> = outcomes
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|((_, k), n)| format!("{k} {n}"))
            .collect();
        report += &format!(
            "  {op:<13} {} (slowest {:?})\n",
            kinds.join(", "),
            slowest.get(op).copied().unwrap_or_default()
        );
    }
    let error_times = run.error_times.lock().unwrap().clone();
    report += "  errors seen first / last (s):";
    for ((op, kind), (first, last)) in &error_times {
        report += &format!(
            " {op} {kind} {:.1}/{:.1};",
            first.as_secs_f64(),
            last.as_secs_f64()
        );
    }
    report += "\n";
    report += &format!(
        "  writes: {} ok, {} outcome unknown ({} of them applied), {} failed before send, {} hung\n",
        writes.ok, writes.unknown, writes.unknown_applied, writes.failed, writes.hung
    );
    report += &format!(
        "  faults: {:?}; cuts that hit a request: {}, write cuts that did: {}\n",
        schedule.done, schedule.cuts_claimed, schedule.write_cuts_claimed
    );
    let c = &status.counters;
    report += &format!(
        "  pool: {} generations, {} opens, {} open failures, {} lost, {} retries offered, marked down {:?}\n",
        c.generations,
        c.opens,
        c.open_failures,
        c.lost,
        c.retries_offered,
        status
            .servers
            .iter()
            .map(|s| s.counters.marked_down)
            .collect::<Vec<_>>()
    );
    report += &format!(
        "  RSS: {rss_warm} KiB after {warmup:?} warm-up, {rss_end} KiB at the end, peak {rss_peak} KiB, growth {growth} KiB \
         ({} KiB in the second half); the soak's own write log: {log_kib} KiB\n",
        rss_end as i64 - rss_half as i64
    );
    let step = (samples.len() / 10).max(1);
    let trend: Vec<String> = samples
        .iter()
        .step_by(step)
        .map(|(t, k)| format!("{:.0}s:{:.1}", t.as_secs_f64(), *k as f64 / 1024.0))
        .collect();
    report += &format!("  RSS trend (s:MiB): {}\n", trend.join(" "));
    report += &format!("  shutdown: {shutdown_ms} ms, {left_open} sockets left\n");
    report += &format!(
        "  calls later than timeout + {LATE_SLACK:?}: {late}, of which {late_excused} while the \
         process was not scheduled; such stalls (> 200 ms): {}, longest {:?}\n",
        stalls.len(),
        stalls.iter().map(|&(_, l)| l).max().unwrap_or_default()
    );
    println!("{report}");
    println!("timeline:\n{}", run.timeline_text());

    // Progress: a pool that fails everything cannot pass.
    for op in [
        "search",
        "enumerate",
        "compare",
        "whoami",
        "authenticate",
        "add",
        "modify",
    ] {
        if run.oks(op) < secs {
            run.violation(format!(
                "only {} {op} calls succeeded in {secs} s",
                run.oks(op)
            ));
        }
    }
    if total_ok < 100 * secs {
        run.violation(format!("only {total_ok} calls succeeded in {secs} s"));
    }
    // The faults were real: connections were lost, servers marked down, the
    // configuration reloaded, and (30 s and more) every kind was injected.
    if c.lost == 0 || status.servers.iter().all(|s| s.counters.marked_down == 0) {
        run.violation("no connection lost or no server marked down: the faults did not bite");
    }
    if secs >= 30 {
        for kind in EVERY_FAULT {
            if !schedule.done.contains_key(&kind) {
                run.violation(format!("the schedule never injected {kind:?}"));
            }
        }
        if c.generations < 2 {
            run.violation("no reload took effect");
        }
    }
    drop(targets);
    if run.violations() > 0 {
        run.fail(&format!("{} violations\n\n{report}", run.violations()));
    }
}
