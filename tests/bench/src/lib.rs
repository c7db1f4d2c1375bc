//! End-to-end benchmarks of ldapmux against raw ldap3, bb8 + bb8-ldap and
//! deadpool, all on the same real slapd (issue 8).
//!
//! [`run`] starts a slapd (10 000 users, `threads 4`) on loopback, measures
//! random `(uid=userN)` one-level searches at concurrency 1, 16, 64, 256 and
//! 1024 for every contender, a sweep of ldapmux's spread settings, then a
//! cold storm, first reads with a black-holed preferred server, the cost of
//! an ldaps connect + bind, and a fail-over / fail-back timeline. It prints
//! one line per contender and concurrency on stdout, then the ratio and the
//! issue's targets:
//!
//! ```text
//! contender=ldapmux_default conc=64 ops_per_s=14210 p99_ms=9.812 server_conns=1 p50_ms=4.1 failed=0 ...
//! ratio_vs_raw_min=0.91
//! targets: 7 of 10 met
//!   met    ldapmux defaults vs the best raw arrangement: ... (wanted ≥ 0.95×)
//! ```
//!
//! and, with [`BenchOptions::write_docs`], writes `benchmarks.md` and SVG
//! charts. The whole benchmark runs on its own multi-thread tokio runtime
//! (one worker per CPU) on a dedicated thread, whatever runtime calls it,
//! so figures do not depend on the caller.

mod auth;
mod contender;
mod paged;
mod plan;
mod raw;
mod report;
mod scenarios;
pub mod stats;
mod window;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ldapmux_harness::Slapd;

pub use crate::auth::{AUTH_TARGET_LDAP, AUTH_TARGET_LDAPS, AuthFigures, run_auth};
use crate::contender::Kind;
pub use crate::paged::{PagedFigures, run_paged};
pub use crate::plan::parse_pairs;
pub(crate) use crate::plan::{Plan, RAW_N_FROM_LDAPMUX};
use crate::scenarios::FailoverPlan;
pub use crate::scenarios::{Bucket, Timeline};
use crate::stats::{median, ratio};
use crate::window::Window;

/// What one benchmark run does.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A short run (≤ 2 min): ~1 s windows, one round, peers only at
    /// concurrency 64, no spread sweep; still all five concurrencies for
    /// ldapmux at its defaults and the raw arrangements.
    pub quick: bool,
    /// Only ldapmux at its defaults, the raw arrangements and the spread
    /// sweep (≤ 6 min): the figures the spread defaults are chosen from.
    /// Ignored with `quick`.
    pub sweep_only: bool,
    /// The (spread_users_per_connection, spread_connections_per_server)
    /// pairs of the sweep; `None`: [`SWEEP_PAIRS`].
    pub sweep_pairs: Option<Vec<(u32, u32)>>,
    /// Write `benchmarks.md` and the SVG charts into this directory (created if missing).
    pub write_docs: Option<PathBuf>,
    /// Print progress lines on stderr.
    pub progress: bool,
}

impl Default for BenchOptions {
    /// The full run, no documents, progress on.
    fn default() -> Self {
        Self {
            quick: false,
            sweep_only: false,
            sweep_pairs: None,
            write_docs: None,
            progress: true,
        }
    }
}

/// One contender at one concurrency (aggregated over its rounds).
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Contender name, as printed after `contender=`.
    pub contender: String,
    /// Concurrent tasks (or simultaneous requests for the cold storm).
    pub conc: usize,
    /// Successful operations per second (median over rounds).
    pub ops_per_s: f64,
    /// Median latency of successful operations, ms.
    pub p50_ms: f64,
    /// 99th percentile latency of successful operations, ms.
    pub p99_ms: f64,
    /// Operations that failed in the measuring window(s).
    pub failed: u64,
    /// Client connections slapd's monitor counted at the end of the window,
    /// while the contender still held its connections.
    pub server_conns: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Further `key=value` fields printed after the required ones.
    pub extra: Vec<(String, String)>,
}

impl Measurement {
    /// The result line: `contender=<name> conc=<N> ops_per_s=<X> p99_ms=<Y> server_conns=<Z>`
    /// followed by `p50_ms`, `failed` and the extra fields.
    pub fn line(&self) -> String {
        let mut s = format!(
            "contender={} conc={} ops_per_s={:.0} p99_ms={:.3} server_conns={} p50_ms={:.3} failed={}",
            self.contender,
            self.conc,
            self.ops_per_s,
            self.p99_ms,
            self.server_conns,
            self.p50_ms,
            self.failed
        );
        for (k, v) in &self.extra {
            s.push_str(&format!(" {k}={v}"));
        }
        s
    }

    /// An extra field by name.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a result line (`key=value` pairs separated by spaces) into a map.
/// `None` if any field is not `key=value`.
pub fn parse_line(line: &str) -> Option<BTreeMap<String, String>> {
    line.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// One target of issue 8, checked against this run's figures.
#[derive(Debug, Clone)]
pub struct TargetCheck {
    /// What is compared.
    pub name: String,
    /// The target, e.g. `≥ 0.97×`.
    pub target: String,
    /// The measured figures, per concurrency where it applies.
    pub measured: String,
    /// Whether every figure meets the target.
    pub met: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct BenchSummary {
    /// ldapmux at its defaults over the best raw arrangement (one shared
    /// connection, one per task or N connections, whichever did most with 0
    /// failed operations) at each concurrency, the minimum across
    /// concurrencies.
    pub ratio_vs_raw_min: f64,
    /// Every measurement, in the order printed.
    pub measurements: Vec<Measurement>,
    /// The targets of issue 15, met or missed (`targets: N of M met`).
    pub targets: Vec<TargetCheck>,
    /// Further checks of earlier issues (fail-over, fail-back), not counted
    /// in the targets.
    pub checks: Vec<TargetCheck>,
    /// The fail-over timeline, if it ran.
    pub timeline: Option<Timeline>,
    /// The lines printed on stdout, the final ratio line included.
    pub lines: Vec<String>,
    /// Anything unusual (leftover connections, aborted tasks).
    pub notes: Vec<String>,
    /// Files written (with [`BenchOptions::write_docs`]).
    pub docs: Vec<PathBuf>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// `/proc/loadavg` when the run started and when it ended (other work on
    /// the machine shows here).
    pub loadavg: (String, String),
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// slapd could not be started or its monitor did not answer.
    #[error("slapd: {0}")]
    Slapd(String),
    /// A contender or scenario could not be set up.
    #[error("setup: {0}")]
    Setup(String),
    /// Writing `benchmarks.md` or a chart failed.
    #[error("writing {path}: {reason}")]
    Docs {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The benchmark's own runtime or thread failed.
    #[error("runtime: {0}")]
    Runtime(String),
}

/// Runs the benchmark and prints one line per contender and concurrency on
/// stdout, then `ratio_vs_raw_min=<R>`. See the [crate documentation](crate).
pub async fn run(opts: BenchOptions) -> Result<BenchSummary, BenchError> {
    let pairs = opts.sweep_pairs.unwrap_or_else(|| SWEEP_PAIRS.to_vec());
    let plan = if opts.quick {
        Plan::quick()
    } else if opts.sweep_only {
        Plan::sweep_only(&pairs)
    } else {
        Plan::full(&pairs)
    };
    run_plan(plan, opts.write_docs, opts.progress, true).await
}

/// The (spread_users_per_connection, spread_connections_per_server) pairs
/// the spread sweep measures by default.
/// (2, 16) is the default; its neighbours show what each knob buys.
pub const SWEEP_PAIRS: [(u32, u32); 7] =
    [(2, 4), (4, 4), (2, 8), (1, 16), (2, 16), (4, 16), (8, 16)];

/// Concurrencies of the sweep: spreading only matters with several users.
const SWEEP_CONCS: [usize; 4] = [16, 64, 256, 1024];

/// Runs `plan` on a dedicated thread with its own runtime.
pub(crate) async fn run_plan(
    plan: Plan,
    write_docs: Option<PathBuf>,
    progress: bool,
    print: bool,
) -> Result<BenchSummary, BenchError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("ldapmux-bench".into())
        .spawn(move || {
            let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
                .map_err(|e| BenchError::Runtime(e.to_string()))
                .and_then(|rt| {
                    let out = rt.block_on(execute(plan, write_docs, progress, print));
                    rt.shutdown_timeout(Duration::from_secs(5));
                    out
                });
            let _ = tx.send(result);
        })
        .map_err(|e| BenchError::Runtime(e.to_string()))?;
    let result = rx
        .await
        .map_err(|_| BenchError::Runtime("the benchmark thread panicked".into()));
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    result?
}

struct Out {
    progress: bool,
    print: bool,
    lines: Vec<String>,
    started: Instant,
}

impl Out {
    fn progress(&self, msg: impl AsRef<str>) {
        if self.progress {
            eprintln!(
                "[bench {:6.1}s] {}",
                self.started.elapsed().as_secs_f64(),
                msg.as_ref()
            );
        }
    }
    fn line(&mut self, line: String) {
        if self.print {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        self.lines.push(line);
    }
}

async fn execute(
    plan: Plan,
    write_docs: Option<PathBuf>,
    progress: bool,
    print: bool,
) -> Result<BenchSummary, BenchError> {
    let mut out = Out {
        progress,
        print,
        lines: Vec::new(),
        started: Instant::now(),
    };
    let mut notes = Vec::new();
    let loadavg_start = loadavg();
    out.progress(format!("load average at start: {loadavg_start}"));
    // Before slapd starts: it inherits this process's limit.
    let nofile = raise_nofile(needed_fds(&plan));
    out.progress(format!("open files limit: {nofile}"));
    if nofile.contains("below") {
        notes.push(format!("open files limit: {nofile}"));
    }
    out.progress(format!(
        "starting slapd ({} users, threads {})",
        plan.users, plan.slapd_threads
    ));
    let (users, threads) = (plan.users, plan.slapd_threads);
    let slapd =
        tokio::task::spawn_blocking(move || Slapd::builder().users(users).threads(threads).start())
            .await
            .map_err(|e| BenchError::Runtime(e.to_string()))?
            .map_err(|e| BenchError::Slapd(e.to_string()))?;

    let mut measurements: Vec<Measurement> = Vec::new();
    let mut quiet_spent = Duration::ZERO;
    let mut rounds_of: BTreeMap<(String, usize), Vec<Measurement>> = BTreeMap::new();
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    for &conc in &plan.concs {
        for group in &plan.groups {
            if group.concs.as_ref().is_some_and(|c| !c.contains(&conc)) {
                continue;
            }
            let mut group_keys = Vec::new();
            let rounds = match group.rounds_at_1 {
                Some(r) if conc == 1 => r,
                _ => group.rounds,
            };
            for round in 0..rounds {
                let k = group.kinds.len();
                for j in 0..k {
                    let mut kind = group.kinds[(j + round) % k].clone();
                    if kind == RAW_N_FROM_LDAPMUX {
                        let n = rounds_of
                            .get(&("ldapmux_default".to_owned(), conc))
                            .and_then(|v| v.first())
                            .map_or(1, |m| m.server_conns.max(1) as usize);
                        kind = Kind::RawNConns(n);
                    }
                    let name = kind.name();
                    settings.insert(name.clone(), kind.settings());
                    let mut retried = false;
                    let (m, n) = loop {
                        let left = plan.quiet_budget.saturating_sub(quiet_spent);
                        if !left.is_zero() {
                            let (waited, share) = window::wait_quiet(
                                plan.retry_foreign_pct,
                                plan.quiet_wait.min(left),
                                slapd.pid(),
                            )
                            .await;
                            quiet_spent += waited;
                            if waited >= Duration::from_secs(1) {
                                let note = format!(
                                    "before {} conc {conc} round {round}: waited {:.1} s for other processes to quieten (last {share:.0} % of the CPU)",
                                    kind.name(),
                                    waited.as_secs_f64()
                                );
                                out.progress(&note);
                                notes.push(note);
                            }
                        }
                        let (m, n) =
                            window::measure(&slapd, plan.users, &kind, conc, plan.window, round)
                                .await?;
                        let foreign: f64 = m
                            .get("foreign_cpu_pct")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0.0);
                        if foreign > plan.retry_foreign_pct
                            && !retried
                            && out.started.elapsed() < plan.retry_budget
                        {
                            retried = true;
                            let note = format!(
                                "{} conc {conc} round {round}: other processes used {foreign:.0} % of the CPU during the window; measured again",
                                m.contender
                            );
                            out.progress(&note);
                            notes.push(note);
                            continue;
                        }
                        break (m, n);
                    };
                    out.progress(format!(
                        "round {round}: {}{}",
                        m.line(),
                        m.first_error
                            .as_ref()
                            .map_or(String::new(), |e| format!(" first_error={e:?}"))
                    ));
                    for note in &n {
                        out.progress(format!("note: {note}"));
                    }
                    notes.extend(n);
                    let key = (name, conc);
                    if !group_keys.contains(&key) {
                        group_keys.push(key.clone());
                    }
                    rounds_of.entry(key).or_default().push(m);
                }
            }
            for key in group_keys {
                let m = aggregate(&rounds_of[&key]);
                out.line(m.line());
                measurements.push(m);
            }
        }
    }

    if let Some(n) = plan.paired_latency {
        out.progress(format!("paired latency at concurrency 1: {n} pairs"));
        let (m, n) = scenarios::paired_latency(&slapd, plan.users, n).await?;
        notes.extend(n);
        out.line(m.line());
        measurements.push(m);
    }
    if let Some(n) = plan.cold_storm {
        out.progress(format!("cold storm: {n} simultaneous first requests"));
        let (m, n) = scenarios::cold_storm(&slapd, plan.users, n).await?;
        notes.extend(n);
        out.line(m.line());
        measurements.push(m);
    }
    if let Some(n) = plan.blackhole {
        out.progress(format!(
            "black-holed preferred server: {n} first reads, concurrent and sequential, racing on and off"
        ));
        let (ms, n) = scenarios::blackhole(&slapd, plan.users, n).await?;
        notes.extend(n);
        for m in ms {
            out.line(m.line());
            measurements.push(m);
        }
    }
    drop(slapd);
    if let Some((fast, slow)) = plan.connect_cost {
        out.progress("connect + bind cost (ldaps, TLS slapd)");
        for m in scenarios::connect_cost(fast, slow).await? {
            out.line(m.line());
            measurements.push(m);
        }
    }
    let mut timeline = None;
    if let Some(fp) = plan.failover {
        out.progress("fail-over / fail-back timeline (two slapd, kill -9, restart)");
        let (m, tl) = scenarios::failover(fp, plan.users).await?;
        out.line(m.line());
        measurements.push(m);
        timeline = Some(tl);
    }

    let targets = report::targets(&measurements);
    let checks = report::checks(timeline.as_ref(), plan.failover.as_ref());
    let ratio_vs_raw_min = ratio_vs_raw_min(&measurements, &plan.concs);
    out.line(format!("ratio_vs_raw_min={ratio_vs_raw_min:.3}"));
    for line in report::target_lines(&targets) {
        out.line(line);
    }
    for t in &checks {
        out.progress(format!(
            "check {}: {} {} — {}",
            t.name,
            t.target,
            if t.met { "MET" } else { "MISSED" },
            t.measured
        ));
    }
    let mut summary = BenchSummary {
        ratio_vs_raw_min,
        measurements,
        targets,
        checks,
        timeline,
        lines: std::mem::take(&mut out.lines),
        notes,
        docs: Vec::new(),
        elapsed: out.started.elapsed(),
        loadavg: (loadavg_start, loadavg()),
    };
    out.progress(format!("load average at the end: {}", summary.loadavg.1));
    if let Some(dir) = write_docs {
        out.progress(format!("writing {}", dir.display()));
        summary.docs = report::write_docs(&dir, &summary, &plan, &settings)?;
    }
    out.progress(format!("done in {:.1} s", summary.elapsed.as_secs_f64()));
    Ok(summary)
}

/// File descriptors the plan needs at most at once: every connection of the
/// largest window (both ends live in this process and in slapd) plus slack.
fn needed_fds(plan: &Plan) -> u64 {
    let top = plan.concs.iter().copied().max().unwrap_or(1).max(1000) as u64;
    2 * top + 512
}

/// Raises this process's soft `RLIMIT_NOFILE` to at least `want` (up to the
/// hard limit; never lowers it). slapd, started later as a child, inherits
/// it: its own connection table is sized from it. Says what it found and did.
fn raise_nofile(want: u64) -> String {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let cur = getrlimit(Resource::Nofile);
    let (soft, hard) = (cur.current, cur.maximum);
    let soft_n = soft.unwrap_or(u64::MAX);
    if soft_n >= want {
        return format!("soft {soft_n} (≥ {want} needed), unchanged");
    }
    let new = hard.map_or(want, |h| h.min(want.max(soft_n)));
    let set = setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(new),
            maximum: hard,
        },
    );
    match set {
        Ok(()) if new >= want => format!("raised soft from {soft_n} to {new}"),
        Ok(()) => {
            format!("raised soft from {soft_n} to {new}, below the {want} needed (hard limit)")
        }
        Err(e) => format!("soft {soft_n}, below the {want} needed; raising it failed: {e}"),
    }
}

/// The first three fields of `/proc/loadavg` (1, 5, 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Folds a contender's rounds into one measurement: medians of ops/s, p50
/// and p99; failed ops summed; the largest server connection count; the
/// first round's extra fields plus `rounds`, `ops_min` and `ops_max`.
pub(crate) fn aggregate(rounds: &[Measurement]) -> Measurement {
    let first = rounds.first().expect("at least one round").clone();
    let col = |f: fn(&Measurement) -> f64| {
        median(&rounds.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
    };
    let ops: Vec<f64> = rounds.iter().map(|m| m.ops_per_s).collect();
    // Per-operation CPU figures: the median over rounds; other fields: the first round's.
    let per_op = ["client_us_per_op", "slapd_us_per_op", "foreign_cpu_pct"];
    let mut extra: Vec<(String, String)> = first
        .extra
        .iter()
        .filter(|(k, _)| k != "round")
        .map(|(k, v)| {
            let vals: Vec<f64> = rounds
                .iter()
                .filter_map(|m| m.get(k)?.parse().ok())
                .collect();
            match median(&vals) {
                Some(x) if per_op.contains(&k.as_str()) => (k.clone(), format!("{x:.1}")),
                _ => (k.clone(), v.clone()),
            }
        })
        .collect();
    extra.push(("rounds".into(), rounds.len().to_string()));
    if rounds.len() > 1 {
        let lo = ops.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ops.iter().copied().fold(0.0, f64::max);
        extra.push(("ops_min".into(), format!("{lo:.0}")));
        extra.push(("ops_max".into(), format!("{hi:.0}")));
    }
    Measurement {
        ops_per_s: col(|m| m.ops_per_s),
        p50_ms: col(|m| m.p50_ms),
        p99_ms: col(|m| m.p99_ms),
        failed: rounds.iter().map(|m| m.failed).sum(),
        server_conns: rounds.iter().map(|m| m.server_conns).max().unwrap_or(0),
        first_error: rounds.iter().find_map(|m| m.first_error.clone()),
        extra,
        ..first
    }
}

/// Finds a measurement.
pub(crate) fn find<'a>(ms: &'a [Measurement], name: &str, conc: usize) -> Option<&'a Measurement> {
    ms.iter().find(|m| m.contender == name && m.conc == conc)
}

/// The raw arrangements the best one is chosen from.
pub(crate) const RAW_ARRANGEMENTS: [&str; 3] = ["raw_shared", "raw_per_task", "raw_n_conns"];

/// The best raw arrangement at `conc`: of raw_shared, raw_per_task and
/// raw_n_conns, those with 0 failed operations, the most ops/s.
pub(crate) fn best_raw(ms: &[Measurement], conc: usize) -> Option<&Measurement> {
    RAW_ARRANGEMENTS
        .iter()
        .filter_map(|n| find(ms, n, conc))
        .filter(|m| m.failed == 0 && m.ops_per_s.is_finite())
        .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s))
}

/// ldapmux at its defaults over the best raw arrangement ([`best_raw`]),
/// minimum over `concs` (NaN if nowhere both ran).
pub(crate) fn ratio_vs_raw_min(ms: &[Measurement], concs: &[usize]) -> f64 {
    concs
        .iter()
        .filter_map(|&c| {
            let ours = find(ms, "ldapmux_default", c)?.ops_per_s;
            ratio(ours, best_raw(ms, c)?.ops_per_s)
        })
        .fold(f64::NAN, f64::min)
}

#[cfg(test)]
mod tests;
