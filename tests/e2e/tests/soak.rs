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
//!
//! The test reads as the run's story; the pieces live beside it:
//! `soak/record.rs` (the run's record and seeded randomness),
//! `soak/load.rs` (the load tasks), `soak/faults.rs` (the servers, the
//! configurations and the fault schedule), `soak/checks.rs` (every check
//! above) and `soak/figures.rs` (process figures and the summary).

#[path = "soak/checks.rs"]
mod checks;
mod common;
#[path = "soak/faults.rs"]
mod faults;
#[path = "soak/figures.rs"]
mod figures;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/record.rs"]
mod record;

use std::sync::Arc;
use std::time::Duration;

use faults::Cluster;
use figures::{Ended, HealthWatch, ProcessCounts, RssSampler, StallWatch};
use load::{Handles, Load};
use record::{Rng, Run};

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
    let run = Arc::new(Run::from_env());
    let root = Rng::new(run.seed);
    let stalls = StallWatch::start(run.clone());
    let (cluster, targets) = Cluster::start(&run).await;

    // Tasks are this test's runtime's; descriptors are the whole process's, so
    // this must stay the only test in this file (its own test binary).
    let before = ProcessCounts::now();
    let pool = faults::config(0, &cluster.urls, run.seed)
        .build()
        .expect("pool");
    let handles = Handles::new(&pool);
    run.event("pool built with configuration 0 (B preferred, then A, C)");

    // Load and faults until the deadline; then everything is healed.
    let load = Load::start(&run, &handles, &root);
    let memory = RssSampler::start(&run, load.stopped());
    let health = HealthWatch::start(&run, &pool, &cluster.urls);
    let schedule =
        faults::inject_for_the_run(&run, targets, &pool, &cluster.urls, root.fork(1_000)).await;
    load.stop(&run).await;
    let memory = memory.finish(&run).await;
    let load_secs = run.at().as_secs_f64();
    run.event("load stopped");

    // The pool recovers and serves everything, strictly.
    let variant = schedule.variant;
    checks::pool_sees_every_server_up(&run, &pool, &cluster.urls, variant).await;
    let rng = root.fork(2_000);
    checks::every_kind_succeeds_in_every_configuration(
        &run,
        &pool,
        &handles,
        &cluster.urls,
        variant,
        rng,
    )
    .await;
    checks::old_generations_freed(&run, &pool).await;
    health.stop().await;
    let status = pool.status();

    // Shutdown: everything closed, nothing left.
    let shutdown = checks::shutdown_closes_everything(&run, &pool).await;
    drop((pool, handles));
    checks::nothing_left_after_shutdown(&run, &schedule.targets, &cluster.proxies, before).await;

    // The writes on the servers themselves, memory, lateness, the summary.
    let writes = checks::writes_match_the_servers(&run, &cluster.direct).await;
    checks::memory_growth_bounded(&run, &memory);
    stalls.stop();
    let late = checks::late_calls_excused_by_stalls(&run);
    let summary = figures::summary(
        &run,
        &Ended {
            load_secs,
            writes: &writes,
            schedule: &schedule,
            status: &status,
            memory: &memory,
            shutdown: &shutdown,
            late: &late,
        },
    );
    println!("{}", summary.text);
    println!("timeline:\n{}", run.timeline_text());

    // The run meant something: progress, and faults that bit.
    checks::every_kind_made_progress(&run, summary.total_ok);
    checks::the_faults_bit(&run, &status, &schedule);
    drop(schedule);
    if run.violations() > 0 {
        run.fail(&format!(
            "{} violations\n\n{}",
            run.violations(),
            summary.text
        ));
    }
}
