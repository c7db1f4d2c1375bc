//! `ldapmux demo`: three real slapd servers on loopback, a pool in front of
//! them, a mixed load, and a script (kill the preferred server, restart it,
//! reload, shut down) watched live.
//!
//! [`run`] puts the pieces together: the cluster of slapd (`cluster`), the
//! state they all share (`shared`), the load (`load`), the fault script and
//! its watcher (`script`), what is shown meanwhile (`display`) and the
//! final report (`report`), judged by `crate::view::checks`.

mod cluster;
mod display;
mod load;
mod policy;
mod report;
mod script;
mod shared;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldapmux_harness::{HarnessError, ROOT_DN, SCRATCH_BASE};
use tokio_util::sync::CancellationToken;

use crate::events::{self, EventLog};
use crate::schedule::{DemoSettings, Schedule, TooShort, secs};
use crate::stats::Recorder;
use crate::tui::{self, Tui};
use crate::view;
use display::say;
use report::SummaryInputs;
use shared::{Milestones, Shared, StopReason, pool_builder};

/// Longest run accepted (`--duration`).
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// Groups in each directory.
pub const GROUPS: usize = 10;
/// slapd worker threads.
pub const SLAPD_THREADS: u32 = 4;
/// Time kept at the end for the summary.
const FINISH_ROOM: Duration = Duration::from_millis(500);

/// What `ldapmux demo` runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoOptions {
    /// The whole run, setup included.
    pub duration: Duration,
    /// Users in each directory.
    pub users: usize,
    /// One line per second instead of the live view.
    pub plain: bool,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// slapd missing or failed to start.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    /// The run is too short for the script once the servers are up.
    #[error("{0} (setup took too long: raise --duration)")]
    TooShort(#[from] TooShort),
    /// The pool refused its configuration.
    #[error("building the pool: {0}")]
    Build(#[from] ldapmux::BuildError),
    /// The password-policy accounts could not be set up.
    #[error("setting up the password-policy accounts: {0}")]
    Policy(String),
    /// The terminal could not be set up or written.
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
}

/// How a demo run ended.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Every check passed and the script ran to its end.
    pub passed: bool,
    /// Stopped by Ctrl-C, `q` or SIGTERM.
    pub stopped_early: bool,
    /// The summary as printed.
    pub summary: String,
}

/// Runs the demo. The caller's runtime must be multi-threaded (the
/// servers are killed and restarted with `block_in_place`).
pub async fn run(opts: DemoOptions) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    ldapmux_harness::require_slapd()?;
    let log = EventLog::new();
    events::install(&log);

    let mut slapds = cluster::start(opts.users).await?;
    let (mut slapd_pids, meta) = cluster::announce(&slapds);
    let urls: Vec<String> = meta.iter().map(|m| m.url.clone()).collect();
    let policies_ready = match policy::setup(&urls).await {
        Ok(at) => at,
        Err(e) => {
            cluster::stop(slapds);
            return Err(DemoError::Policy(e));
        }
    };
    say(
        "password policies: on each server an account locked, one expired, one reset by the \
         administrator, one near its expiry, one on grace logins",
    );
    let setup = started.elapsed();
    let load_len = opts
        .duration
        .min(MAX_DURATION)
        .saturating_sub(setup + FINISH_ROOM);
    let schedule = match Schedule::new(load_len) {
        Ok(s) => s,
        Err(e) => {
            cluster::stop(slapds);
            return Err(e.into());
        }
    };
    let settings = DemoSettings::for_schedule(&schedule);
    let pool_t0 = Instant::now();
    let pool = match pool_builder(&urls, &settings, settings.user_cap).build() {
        Ok(p) => p,
        Err(e) => {
            cluster::stop(slapds);
            return Err(e.into());
        }
    };
    say(&format!(
        "pool: A preferred, then B, then C; {}",
        settings.describe()
    ));
    say(&format!(
        "script: {}; ends by itself within {}",
        schedule
            .steps()
            .iter()
            .map(|(t, s)| format!("{} at {:.1} s", s.name(), t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        secs(opts.duration)
    ));
    say(&format!(
        "load: 12 tasks searching uids, 2 enumerating, 2 authenticating (1 in 4 passwords wrong), \
         1 writing to {SCRATCH_BASE} as {ROOT_DN}"
    ));

    let t0 = Instant::now();
    let shared = Arc::new(Shared {
        t0,
        pool_t0,
        pool: pool.clone(),
        rec: Arc::new(Recorder::new(t0)),
        log: log.clone(),
        meta: Mutex::new(meta),
        milestones: Mutex::new(Milestones::default()),
        next_step: Mutex::new(schedule.steps().first().copied()),
        schedule: schedule.clone(),
        settings,
        stop_load: CancellationToken::new(),
        stop_display: CancellationToken::new(),
        stop_early: CancellationToken::new(),
        stop_reason: Mutex::new(None),
        verdicts: Mutex::new(view::Verdicts::default()),
    });

    let signals = shared::watch_signals(shared.clone());

    let live = !opts.plain && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let tui = if live { Some(Tui::start()?) } else { None };
    let keys = live.then(|| {
        let done = shared.stop_display.clone();
        let s = shared.clone();
        std::thread::spawn(move || tui::watch_keys(done, move || s.request_stop(StopReason::Key)))
    });
    let display = tokio::spawn(display::display(shared.clone(), tui));
    let watcher = tokio::spawn(script::watch(shared.clone()));
    let load = load::spawn_load(&shared, opts.users, policies_ready);

    let stopped_early =
        script::run(&shared, &schedule, t0, &mut slapds, &mut slapd_pids, &urls).await;
    load::stop(&shared, load).await;
    shared.stop_display.cancel();
    let _ = watcher.await;
    // The display task owns the terminal: it is restored when the task ends.
    let display_result = display.await;
    if let Some(k) = keys {
        let _ = k.join();
    }
    signals.abort();
    let final_status = pool.status();
    drop(pool);

    // Stop the servers and check that every slapd we started is gone.
    cluster::stop(slapds);
    let slapd_left = cluster::left_running(&slapd_pids);
    if let Ok(Err(e)) = display_result {
        return Err(e.into());
    }

    let summary = report::build_summary(
        &shared,
        SummaryInputs {
            setup,
            total: started.elapsed(),
            users: opts.users,
            status: final_status,
            slapd_pids,
            slapd_left,
            stopped_early,
        },
    );
    let checks = view::checks(&summary);
    let text = view::render_summary(&summary, &checks);
    Ok(DemoReport {
        passed: !stopped_early && checks.iter().all(|c| c.ok),
        stopped_early,
        summary: text,
    })
}
