//! `ldapmux demo`: three real slapd servers on loopback, a pool in front of
//! them, a mixed load, and a script (kill the preferred server, restart it,
//! reload, shut down) watched live.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldapmux::{ConnPhase, Credential, Error, Health, Password, Pool, PoolBuilder, Scope};
use ldapmux_harness::{HarnessError, ROOT_DN, ROOT_PW, SCRATCH_BASE, Slapd};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tracing::Level;

use crate::events::{self, Event, EventLog, Source};
use crate::schedule::{DemoSettings, Schedule, Step, TooShort, secs};
use crate::stats::{OpKind, Outcome, Recorder, Rng};
use crate::tui::{self, ConnRow, LiveView, Tui};
use crate::view::{
    self, FailBack, FailOver, GenView, HealthView, ReloadView, ServerView, ShutdownView,
    StatusView, Summary,
};

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

/// The names of the three servers, in preference order.
const NAMES: [&str; 3] = ["A", "B", "C"];

/// What the script and the watcher learned, for the summary.
#[derive(Debug, Default)]
struct Milestones {
    kill_at: Option<Instant>,
    grants_at_kill: Vec<u64>,
    first_grant_elsewhere: Option<Instant>,
    restart_at: Option<Instant>,
    restart_done: Option<Instant>,
    a_grants_at_restart: u64,
    failed_at_restart: u64,
    failed_at_reload: u64,
    serving_again: Option<Instant>,
    reload: Option<ReloadView>,
    reload_at: Option<Instant>,
    old_generations: Vec<String>,
    old_drained: Option<Instant>,
    shutdown: Option<ShutdownView>,
}

/// Server metadata shown next to the pool's view of it.
#[derive(Clone, Debug)]
struct Meta {
    url: String,
    pid: Option<u32>,
}

/// What the display, the watcher and the script share.
struct Shared {
    t0: Instant,
    pool_t0: Instant,
    pool: Pool,
    rec: Arc<Recorder>,
    log: EventLog,
    meta: Mutex<Vec<Meta>>,
    milestones: Mutex<Milestones>,
    next_step: Mutex<Option<(Duration, Step)>>,
    schedule: Schedule,
    settings: DemoSettings,
    /// Set to stop the load tasks.
    stop_load: AtomicBool,
    /// Set to stop the watcher and the display.
    stop_display: Arc<AtomicBool>,
    /// Ctrl-C, `q`, SIGTERM.
    stop_early: AtomicBool,
    stop_reason: Mutex<Option<StopReason>>,
    stop_notify: Notify,
}

/// What stopped a run early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    /// `q`, Esc or Ctrl-C in the live view.
    Key,
    /// SIGINT (Ctrl-C in a terminal without the live view).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopReason {
    fn note(self) -> &'static str {
        match self {
            StopReason::Key => "stopped from the keyboard in the live view",
            StopReason::Interrupt => {
                "stopped by SIGINT (a terminal's Ctrl-C reaches slapd too: it stops at once)"
            }
            StopReason::Terminate => "stopped by SIGTERM",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn t(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.t0)
    }

    fn request_stop(&self, reason: StopReason) {
        lock(&self.stop_reason).get_or_insert(reason);
        self.stop_early.store(true, Ordering::SeqCst);
        self.stop_notify.notify_one();
    }

    fn failed_so_far(&self) -> u64 {
        self.rec.failed_so_far()
    }

    /// The pool's state now, as shown.
    fn status_view(&self) -> (StatusView, Vec<ConnRow>) {
        let status = self.pool.status();
        let conns = self.pool.connections();
        let meta = lock(&self.meta).clone();
        let core_now = self.pool_t0.elapsed();
        let servers: Vec<ServerView> = status
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| ServerView {
                name: NAMES
                    .get(i)
                    .map_or_else(|| format!("s{i}"), |n| (*n).to_owned()),
                url: s.addr.clone(),
                pid: meta.get(i).and_then(|m| m.pid),
                health: match s.health {
                    Health::Up => HealthView::Up,
                    Health::Returning { until } => HealthView::Returning {
                        left: Duration::from_nanos(until.as_nanos()).saturating_sub(core_now),
                    },
                    Health::Down { probing, .. } => HealthView::Down { probing },
                },
                conns: s.conns,
                users: s.users,
                grants: s.counters.grants,
            })
            .collect();
        let name = |i: usize| {
            servers
                .get(i)
                .map_or_else(|| format!("s{i}"), |s| s.name.clone())
        };
        let rows: Vec<ConnRow> = conns
            .iter()
            .map(|c| ConnRow {
                id: c.id.to_string(),
                server: name(c.server.index()),
                generation: c.generation.to_string(),
                purpose: format!("{:?}", c.purpose).to_lowercase(),
                phase: match &c.phase {
                    ConnPhase::Connecting => "connecting".to_owned(),
                    ConnPhase::Open => "open".to_owned(),
                    ConnPhase::Draining => "draining".to_owned(),
                    ConnPhase::Broken(_) => "broken".to_owned(),
                },
                users: c.users,
                waiters: c.waiters.len(),
            })
            .collect();
        let waiting = status.queued + rows.iter().map(|r| r.waiters).sum::<usize>();
        let view = StatusView {
            t: self.t0.elapsed(),
            failed: self.failed_so_far(),
            expected: self.rec.expected_so_far(),
            retries: status.counters.retries_offered,
            conns: status.conns,
            opened: status.counters.opens,
            waiting,
            servers,
            generations: status
                .generations
                .iter()
                .map(|g| GenView {
                    id: g.id.to_string(),
                    active: g.phase == ldapmux::core::GenPhase::Active,
                    conns: g.conns,
                    users: g.users,
                })
                .collect(),
            user_cap: status.user_cap,
            shut_down: status.shut_down,
            ..StatusView::default()
        };
        (view, rows)
    }
}

/// The builder for the three servers with the demo's settings.
fn pool_builder(urls: &[String], s: &DemoSettings, cap: u32) -> PoolBuilder {
    let mut b = Pool::builder().preferred_server(urls[0].clone());
    for url in &urls[1..] {
        b = b.server(url.clone());
    }
    b.connect_timeout(s.connect_timeout)
        .operation_timeout(s.operation_timeout)
        .failback_hold_down(s.hold_down)
        .probe_backoff(s.probe_min, s.probe_max)
        .max_users_per_connection(cap)
        .max_connections_per_server(s.conns_per_server)
        .jitter_seed(1)
}

/// Prints a line to stdout (setup and plain mode), flushing at once so a
/// pipe sees it.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the demo. The caller's runtime must be multi-threaded (the
/// servers are killed and restarted with `block_in_place`).
pub async fn run(opts: DemoOptions) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    ldapmux_harness::require_slapd()?;
    let log = EventLog::new();
    events::install(&log);

    say(&format!(
        "ldapmux demo: starting 3 slapd on 127.0.0.1 ({} users, {GROUPS} groups, threads {SLAPD_THREADS} each)…",
        view::count(opts.users as u64)
    ));
    let mut starts = Vec::new();
    for _ in 0..3 {
        let users = opts.users;
        starts.push(tokio::task::spawn_blocking(move || {
            Slapd::builder()
                .users(users)
                .groups(GROUPS)
                .threads(SLAPD_THREADS)
                .start()
        }));
    }
    let mut slapds = Vec::new();
    let mut first_err = None;
    for s in starts {
        match s.await {
            Ok(Ok(slapd)) => slapds.push(slapd),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => panic!("slapd start task: {e}"),
        }
    }
    if let Some(e) = first_err {
        tokio::task::block_in_place(|| drop(slapds));
        return Err(e.into());
    }
    let mut slapd_pids = Vec::new();
    let mut meta = Vec::new();
    for (i, s) in slapds.iter().enumerate() {
        let pid = s.pid();
        slapd_pids.extend(pid);
        meta.push(Meta { url: s.url(), pid });
        say(&format!(
            "server {}: {}  slapd pid {}{}",
            NAMES[i],
            s.url(),
            pid.map_or("?".to_owned(), |p| p.to_string()),
            if i == 0 { "  (preferred)" } else { "" }
        ));
    }
    let setup = started.elapsed();
    let load_len = opts
        .duration
        .min(MAX_DURATION)
        .saturating_sub(setup + FINISH_ROOM);
    let schedule = match Schedule::new(load_len) {
        Ok(s) => s,
        Err(e) => {
            tokio::task::block_in_place(|| drop(slapds));
            return Err(e.into());
        }
    };
    let settings = DemoSettings::for_schedule(&schedule);
    let urls: Vec<String> = meta.iter().map(|m| m.url.clone()).collect();
    let pool_t0 = Instant::now();
    let pool = match pool_builder(&urls, &settings, settings.user_cap).build() {
        Ok(p) => p,
        Err(e) => {
            tokio::task::block_in_place(|| drop(slapds));
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
        stop_load: AtomicBool::new(false),
        stop_display: Arc::new(AtomicBool::new(false)),
        stop_early: AtomicBool::new(false),
        stop_reason: Mutex::new(None),
        stop_notify: Notify::new(),
    });

    // Ctrl-C / SIGTERM stop the run early (in the live view Ctrl-C is a key).
    let signals = tokio::spawn({
        let shared = shared.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let reason = tokio::select! {
                _ = tokio::signal::ctrl_c() => StopReason::Interrupt,
                _ = async {
                    match term.as_mut() {
                        Some(t) => { t.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => StopReason::Terminate,
            };
            shared.request_stop(reason);
        }
    });

    let live = !opts.plain && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let tui = if live { Some(Tui::start()?) } else { None };
    let keys = live.then(|| {
        let done = shared.stop_display.clone();
        let s = shared.clone();
        std::thread::spawn(move || tui::watch_keys(done, move || s.request_stop(StopReason::Key)))
    });
    let display = tokio::spawn(display(shared.clone(), tui));
    let watcher = tokio::spawn(watch(shared.clone()));
    let mut load = spawn_load(&shared, opts.users);

    // The script.
    let mut stopped_early = false;
    let mut shut_down = false;
    for &(at, step) in schedule.steps() {
        *lock(&shared.next_step) = Some((at, step));
        let notified = shared.stop_notify.notified();
        if !shared.stop_early.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep_until((t0 + at).into()) => {}
                _ = notified => {}
            }
        }
        if shared.stop_early.load(Ordering::SeqCst) {
            stopped_early = true;
            break;
        }
        match step {
            Step::Kill => kill(&shared, &mut slapds[0]),
            Step::Restart => restart(&shared, &mut slapds[0], &mut slapd_pids),
            Step::Reload => reload(&shared, &urls),
            Step::Shutdown => {
                shutdown(&shared).await;
                shut_down = true;
            }
        }
    }
    *lock(&shared.next_step) = None;
    if !shut_down {
        shared
            .log
            .demo(Level::WARN, "stopped early: shutting the pool down");
        shutdown(&shared).await;
    }

    // Stop the load (every operation now fails at once with ShutDown).
    shared.stop_load.store(true, Ordering::SeqCst);
    let deadline = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = load.join_next() => if next.is_none() { break },
            _ = &mut deadline => { load.abort_all(); break; }
        }
    }
    shared.stop_display.store(true, Ordering::SeqCst);
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
    tokio::task::block_in_place(|| drop(slapds));
    let slapd_left: Vec<u32> = slapd_pids
        .iter()
        .copied()
        .filter(|&p| ldapmux_harness::process_alive(p))
        .collect();
    if let Ok(Err(e)) = display_result {
        return Err(e.into());
    }

    let summary = build_summary(
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

fn kill(shared: &Shared, a: &mut Slapd) {
    let pid = a.pid().map_or("?".to_owned(), |p| p.to_string());
    shared.log.demo(
        Level::WARN,
        format!("kill: SIGKILL the preferred server A (slapd pid {pid}) under load"),
    );
    let status = shared.pool.status();
    let at = Instant::now();
    {
        let mut m = lock(&shared.milestones);
        m.kill_at = Some(at);
        m.grants_at_kill = status.servers.iter().map(|s| s.counters.grants).collect();
    }
    shared.rec.mark(at);
    tokio::task::block_in_place(|| a.kill());
    lock(&shared.meta)[0].pid = None;
}

fn restart(shared: &Shared, a: &mut Slapd, pids: &mut Vec<u32>) {
    shared.log.demo(
        Level::INFO,
        "restart: starting A again on the same port with the same data",
    );
    let at = Instant::now();
    lock(&shared.milestones).restart_at = Some(at);
    let result = tokio::task::block_in_place(|| a.restart());
    let done = Instant::now();
    match result {
        Ok(()) => {
            let pid = a.pid();
            pids.extend(pid);
            lock(&shared.meta)[0].pid = pid;
            let grants = shared
                .pool
                .status()
                .servers
                .first()
                .map_or(0, |s| s.counters.grants);
            {
                let mut m = lock(&shared.milestones);
                m.restart_done = Some(done);
                m.a_grants_at_restart = grants;
                m.failed_at_restart = shared.failed_so_far();
            }
            shared.log.demo(
                Level::INFO,
                format!(
                    "restart: A answers again (slapd pid {}, after {}); the pool will find it with its \
                     next probe, then hold down {} before failing back",
                    pid.map_or("?".to_owned(), |p| p.to_string()),
                    secs(done - at),
                    secs(shared.settings.hold_down)
                ),
            );
        }
        Err(e) => shared
            .log
            .demo(Level::WARN, format!("restart: A failed to start: {e}")),
    }
}

fn reload(shared: &Shared, urls: &[String]) {
    let s = &shared.settings;
    let before: Vec<String> = shared
        .pool
        .status()
        .generations
        .iter()
        .map(|g| g.id.to_string())
        .collect();
    shared.log.demo(
        Level::INFO,
        format!(
            "reload: Pool::reload with {} users per connection instead of {} (a new generation; \
             the old one drains)",
            s.reload_user_cap, s.user_cap
        ),
    );
    let at = Instant::now();
    let result = shared.pool.reload(pool_builder(urls, s, s.reload_user_cap));
    let after: Vec<String> = shared
        .pool
        .status()
        .generations
        .iter()
        .map(|g| g.id.to_string())
        .collect();
    let mut m = lock(&shared.milestones);
    m.failed_at_reload = shared.failed_so_far();
    m.reload_at = Some(at);
    m.old_generations = before.clone();
    m.reload = Some(ReloadView {
        at: shared.t(at),
        from_cap: s.user_cap,
        to_cap: s.reload_user_cap,
        generations: format!("{} → {}", before.join(","), after.join(",")),
        old_drained: None,
        accepted: result.is_ok(),
    });
    if let Err(e) = result {
        drop(m);
        shared.log.demo(Level::WARN, format!("reload refused: {e}"));
    }
}

async fn shutdown(shared: &Shared) {
    shared.log.demo(
        Level::INFO,
        "shutdown: Pool::shutdown() with the load still running",
    );
    let at = Instant::now();
    let left = shared.pool.shutdown().await;
    let took = at.elapsed();
    lock(&shared.milestones).shutdown = Some(ShutdownView {
        at: shared.t(at),
        took,
        sockets_left: left,
    });
    shared.log.demo(
        Level::INFO,
        format!(
            "shutdown: done in {} ms, {left} sockets left open",
            took.as_millis()
        ),
    );
}

/// Watches the pool every 20 ms for what no event says directly: the
/// first operation served elsewhere after the kill, A serving again after
/// the restart, the old generation freed after the reload.
async fn watch(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !shared.stop_display.load(Ordering::SeqCst) {
        tick.tick().await;
        let status = shared.pool.status();
        let mut m = lock(&shared.milestones);
        if let Some(kill_at) = m.kill_at
            && m.first_grant_elsewhere.is_none()
        {
            let moved =
                status.servers.iter().enumerate().skip(1).find(|(i, s)| {
                    s.counters.grants > m.grants_at_kill.get(*i).copied().unwrap_or(0)
                });
            if let Some((i, _)) = moved {
                let now = Instant::now();
                m.first_grant_elsewhere = Some(now);
                shared.log.demo(
                    Level::INFO,
                    format!(
                        "fail-over: operations now served by {} (seen {} ms after the kill)",
                        NAMES.get(i).unwrap_or(&"?"),
                        (now - kill_at).as_millis()
                    ),
                );
            }
        }
        if let Some(done) = m.restart_done
            && m.serving_again.is_none()
            && status
                .servers
                .first()
                .is_some_and(|s| s.counters.grants > m.a_grants_at_restart)
        {
            let now = Instant::now();
            m.serving_again = Some(now);
            shared.log.demo(
                Level::INFO,
                format!(
                    "fail-back: the preferred server A serves again ({:.2} s after its restart)",
                    (now - done).as_secs_f64()
                ),
            );
        }
        if let Some(reload_at) = m.reload_at
            && m.old_drained.is_none()
            && m.reload.as_ref().is_some_and(|r| r.accepted)
        {
            let live: HashSet<String> = status
                .generations
                .iter()
                .map(|g| g.id.to_string())
                .collect();
            if !m.old_generations.iter().any(|g| live.contains(g)) {
                let now = Instant::now();
                m.old_drained = Some(now);
                shared.log.demo(
                    Level::INFO,
                    format!(
                        "reload: old generation {} drained and freed ({} ms after the reload)",
                        m.old_generations.join(","),
                        (now - reload_at).as_millis()
                    ),
                );
            }
        }
    }
}

/// The display: one status line per second and one line per event (plain),
/// or the live view redrawn four times a second.
async fn display(shared: Arc<Shared>, mut tui: Option<Tui>) -> std::io::Result<()> {
    let period = if tui.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(100)
    };
    let mut tick = tokio::time::interval(period);
    let mut cursor = 0;
    let mut next_second = 1u64;
    let mut last_second = Default::default();
    let mut history: Vec<u64> = Vec::new();
    let mut event_lines: Vec<String> = Vec::new();
    loop {
        tick.tick().await;
        let finishing = shared.stop_display.load(Ordering::SeqCst);
        let (mut status, conns) = shared.status_view();
        let (new_events, next) = shared.log.since(cursor);
        cursor = next;
        let lines = view::collapse(
            new_events
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        view::stamp(shared.t(e.at)),
                        view::describe(e, &status.servers)
                    )
                })
                .collect(),
        );
        for line in lines {
            if tui.is_none() {
                say(&line);
            }
            event_lines.push(line);
        }
        if event_lines.len() > 500 {
            event_lines.drain(..event_lines.len() - 500);
        }
        let now = Instant::now();
        let due = now >= shared.t0 + Duration::from_secs(next_second);
        if due || finishing {
            let mut w = shared.rec.roll(now);
            history.push(w.ops_per_sec().round() as u64);
            last_second = (w.ops_per_sec(), w.percentile(0.5), w.percentile(0.99));
            while shared.t0 + Duration::from_secs(next_second) <= now {
                next_second += 1;
            }
        }
        (status.ops_per_sec, status.p50, status.p99) = last_second;
        match tui.as_mut() {
            None => {
                if due || finishing {
                    say(&view::status_line(&status));
                }
            }
            Some(t) => {
                let next = *lock(&shared.next_step);
                let title = format!(
                    " ldapmux demo · {:.1} s of {:.1} s · {} ",
                    status.t.as_secs_f64(),
                    shared.schedule.length().as_secs_f64(),
                    match next {
                        Some((at, step)) =>
                            format!("next: {} at {:.1} s", step.name(), at.as_secs_f64()),
                        None => "finishing".to_owned(),
                    }
                );
                let view = LiveView {
                    title,
                    settings: shared.settings.describe(),
                    status,
                    history: history.clone(),
                    conns,
                    events: event_lines.clone(),
                    totals: shared.rec.totals_line(),
                };
                t.draw(&view)?;
            }
        }
        if finishing {
            return Ok(());
        }
    }
}

/// The load: searches, enumerations, authentications and writes, each in
/// its own tasks, until told to stop or the pool is shut down.
fn spawn_load(shared: &Arc<Shared>, users: usize) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for i in 0..12 {
        set.spawn(search_task(shared.clone(), users, 100 + i));
    }
    for i in 0..2 {
        set.spawn(enumerate_task(shared.clone(), users, 200 + i));
    }
    for i in 0..2 {
        set.spawn(auth_task(shared.clone(), users, 300 + i));
    }
    set.spawn(write_task(shared.clone()));
    set
}

/// How a pool error counts.
fn classify(e: &Error) -> Outcome {
    if e.is_shut_down() {
        Outcome::ShutDown
    } else {
        Outcome::Failed(e.to_string())
    }
}

async fn pause_after(outcome: &Outcome) {
    if matches!(outcome, Outcome::Failed(_)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn running(shared: &Shared, outcome: &Outcome) -> bool {
    !shared.stop_load.load(Ordering::SeqCst) && *outcome != Outcome::ShutDown
}

async fn search_task(shared: Arc<Shared>, users: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    loop {
        let i = rng.below(users);
        let filter = format!("(uid={})", Slapd::user_uid(i));
        let start = Instant::now();
        let r = shared
            .pool
            .search(
                Slapd::people_base(),
                Scope::OneLevel,
                &filter,
                &["cn", "uidNumber"],
            )
            .await;
        let outcome = match r {
            Ok(entries) if entries.len() == 1 => Outcome::Ok,
            Ok(entries) => Outcome::Failed(format!("{} entries for {filter}", entries.len())),
            Err(e) => classify(&e),
        };
        shared
            .rec
            .record(OpKind::Search, start, Instant::now(), outcome.clone());
        pause_after(&outcome).await;
        if !running(&shared, &outcome) {
            return;
        }
    }
}

async fn enumerate_task(shared: Arc<Shared>, users: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    loop {
        n += 1;
        // Every other enumeration lists the groups, the others a slice of
        // the people (`user42*`: user42 and user420–429).
        let (base, filter, attrs, expect) = if n.is_multiple_of(2) {
            (
                Slapd::groups_base(),
                "(objectClass=posixGroup)".to_owned(),
                vec!["cn", "gidNumber"],
                Some(GROUPS),
            )
        } else {
            let lo = (users / 100).max(1);
            let hi = (users / 10).max(lo + 1);
            let k = lo + rng.below(hi - lo);
            (
                Slapd::people_base(),
                format!("(uid=user{k}*)"),
                vec!["uid"],
                None,
            )
        };
        let start = Instant::now();
        let outcome = match shared
            .pool
            .streaming_search(base, Scope::OneLevel, &filter, &attrs)
            .await
        {
            Err(e) => classify(&e),
            Ok(mut stream) => {
                let mut count = 0usize;
                let mut outcome = Outcome::Ok;
                while let Some(item) = stream.next_entry().await {
                    match item {
                        Ok(_) => count += 1,
                        Err(e) if e.is_shut_down() => outcome = Outcome::ShutDown,
                        Err(e @ Error::Pool { source: _, .. }) => {
                            outcome = if e.conn_error_kind().is_some() {
                                Outcome::Cut
                            } else {
                                Outcome::Failed(format!("{filter} after {count} entries: {e}"))
                            }
                        }
                        Err(e) => {
                            outcome =
                                Outcome::Failed(format!("{filter} after {count} entries: {e}"))
                        }
                    }
                }
                match expect {
                    Some(want) if outcome == Outcome::Ok && count != want => {
                        Outcome::Failed(format!("{filter}: {count} entries, expected {want}"))
                    }
                    _ if outcome == Outcome::Ok && count == 0 => {
                        Outcome::Failed(format!("{filter}: no entries"))
                    }
                    _ => outcome,
                }
            }
        };
        shared
            .rec
            .record(OpKind::Enumerate, start, Instant::now(), outcome.clone());
        pause_after(&outcome).await;
        if !running(&shared, &outcome) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn auth_task(shared: Arc<Shared>, users: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    loop {
        n += 1;
        let i = rng.below(users);
        let wrong = n.is_multiple_of(4);
        let password = if wrong {
            Password::new(format!("not-{}", Slapd::user_password(i)))
        } else {
            Password::new(Slapd::user_password(i))
        };
        let start = Instant::now();
        let outcome = match shared
            .pool
            .authenticate(&Slapd::user_dn(i), &password)
            .await
        {
            Ok(true) if !wrong => Outcome::Ok,
            Ok(false) if wrong => Outcome::Rejected,
            Ok(accepted) => Outcome::Failed(format!(
                "the {} password of user{i} was {}",
                if wrong { "wrong" } else { "right" },
                if accepted { "accepted" } else { "rejected" }
            )),
            // The bind was sent and the connection died: not retried by design.
            Err(Error::Pool {
                source: ldapmux::core::Error::ConnectionLost { .. },
                ..
            }) => Outcome::Unknown,
            Err(e) => classify(&e),
        };
        shared
            .rec
            .record(OpKind::Auth, start, Instant::now(), outcome.clone());
        pause_after(&outcome).await;
        if !running(&shared, &outcome) {
            return;
        }
        // Each check opens (and closes) a private connection: keep the rate
        // modest so loopback ports are not used up by TIME_WAIT.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

static WRITE_SEQ: AtomicU64 = AtomicU64::new(0);

async fn write_task(shared: Arc<Shared>) {
    let admin = shared
        .pool
        .with_credential(Credential::simple(ROOT_DN, ROOT_PW));
    let run = std::process::id();
    loop {
        let n = WRITE_SEQ.fetch_add(1, Ordering::Relaxed);
        let cn = format!("demo-{run}-{n}");
        let dn = format!("cn={cn},{SCRATCH_BASE}");
        let attrs = vec![
            (
                "objectClass".to_owned(),
                HashSet::from(["top".to_owned(), "organizationalRole".to_owned()]),
            ),
            ("cn".to_owned(), HashSet::from([cn])),
            (
                "description".to_owned(),
                HashSet::from(["written by ldapmux demo".to_owned()]),
            ),
        ];
        let start = Instant::now();
        let outcome = match admin.add(&dn, attrs).await {
            Ok(()) => Outcome::Ok,
            Err(Error::OutcomeUnknown { .. }) => Outcome::Unknown,
            Err(e) => classify(&e),
        };
        shared
            .rec
            .record(OpKind::Write, start, Instant::now(), outcome.clone());
        pause_after(&outcome).await;
        if !running(&shared, &outcome) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct SummaryInputs {
    setup: Duration,
    total: Duration,
    users: usize,
    status: ldapmux::Status,
    slapd_pids: Vec<u32>,
    slapd_left: Vec<u32>,
    stopped_early: bool,
}

fn is_about(e: &Event, url: &str) -> bool {
    e.field("addr").is_some_and(|a| a.eq_ignore_ascii_case(url)) || e.field("server") == Some("s0")
}

fn build_summary(shared: &Shared, i: SummaryInputs) -> Summary {
    let a_url = lock(&shared.meta)[0].url.clone();
    let m = lock(&shared.milestones);
    let log = &shared.log;
    let failover = m.kill_at.map(|kill_at| {
        let down = log.first_after(kill_at, |e| {
            e.source == Source::Pool && e.message.contains("server down") && is_about(e, &a_url)
        });
        let around = shared.rec.around_mark();
        FailOver {
            kill_at: shared.t(kill_at),
            marked_down: down.map(|e| e.at - kill_at),
            first_grant_elsewhere: m.first_grant_elsewhere.map(|t| t - kill_at),
            first_read_ok: around.first_read_ok.map(|t| t - kill_at),
            slowest_across: around.slowest_across,
            failed_reads: around.failed_reads,
        }
    });
    let failback = m.restart_at.map(|restart_at| {
        let done = m.restart_done.unwrap_or(restart_at);
        let up = m.restart_done.and_then(|done| {
            log.first_after(done, |e| {
                e.source == Source::Pool
                    && e.message.starts_with("server up")
                    && is_about(e, &a_url)
            })
        });
        FailBack {
            restart_at: shared.t(restart_at),
            restart_took: done - restart_at,
            probed_up: up.map(|e| e.at.saturating_duration_since(done)),
            serving_again: m.serving_again.map(|t| t - done),
            hold_down: shared.settings.hold_down,
            failed: if m.reload_at.is_some() {
                m.failed_at_reload.saturating_sub(m.failed_at_restart)
            } else {
                shared.failed_so_far().saturating_sub(m.failed_at_restart)
            },
        }
    });
    let reload = m.reload.clone().map(|mut r| {
        r.old_drained = m
            .old_drained
            .zip(m.reload_at)
            .map(|(drained, at)| drained - at);
        r
    });
    Summary {
        setup: i.setup,
        load: m
            .shutdown
            .as_ref()
            .map_or_else(|| shared.t0.elapsed(), |s| s.at + s.took),
        total: i.total,
        users: i.users,
        ops: shared.rec.total(),
        opened: i.status.counters.opens,
        open_failures: i.status.counters.open_failures,
        lost: i.status.counters.lost,
        retries: i.status.counters.retries_offered,
        failover,
        failback,
        reload,
        shutdown: m.shutdown.clone(),
        slapd_pids: i.slapd_pids,
        slapd_left: i.slapd_left,
        stopped_early: i.stopped_early,
        stop_note: if i.stopped_early {
            lock(&shared.stop_reason).map(|r| r.note().to_owned())
        } else {
            None
        },
        first_errors: shared.rec.first_errors(),
    }
}
