//! What the script, the watcher, the display and the load share: the pool,
//! the recorder, the event log, the milestones the summary is built from,
//! and how a run is stopped early.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldapmux::{ConnPhase, Health, Pool, PoolBuilder};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::events::EventLog;
use crate::schedule::{DemoSettings, Schedule, Step};
use crate::stats::Recorder;
use crate::tui::ConnRow;
use crate::view::{
    GenView, HealthView, ReloadView, ServerView, ShutdownView, StatusView, Verdicts,
};

/// The names of the three servers, in preference order.
pub(super) const NAMES: [&str; 3] = ["A", "B", "C"];

/// What the script and the watcher learned, for the summary.
#[derive(Debug, Default)]
pub(super) struct Milestones {
    pub(super) kill_at: Option<Instant>,
    pub(super) grants_at_kill: Vec<u64>,
    pub(super) first_grant_elsewhere: Option<Instant>,
    pub(super) restart_at: Option<Instant>,
    pub(super) restart_done: Option<Instant>,
    pub(super) a_grants_at_restart: u64,
    pub(super) failed_at_restart: u64,
    pub(super) failed_at_reload: u64,
    pub(super) serving_again: Option<Instant>,
    pub(super) reload: Option<ReloadView>,
    pub(super) reload_at: Option<Instant>,
    pub(super) old_generations: Vec<String>,
    pub(super) old_drained: Option<Instant>,
    pub(super) shutdown: Option<ShutdownView>,
}

/// Server metadata shown next to the pool's view of it.
#[derive(Clone, Debug)]
pub(super) struct Meta {
    pub(super) url: String,
    pub(super) pid: Option<u32>,
}

/// What the display, the watcher and the script share.
pub(super) struct Shared {
    pub(super) t0: Instant,
    pub(super) pool_t0: Instant,
    pub(super) pool: Pool,
    pub(super) rec: Arc<Recorder>,
    pub(super) log: EventLog,
    pub(super) meta: Mutex<Vec<Meta>>,
    pub(super) milestones: Mutex<Milestones>,
    pub(super) next_step: Mutex<Option<(Duration, Step)>>,
    pub(super) schedule: Schedule,
    pub(super) settings: DemoSettings,
    /// Cancelled to stop the load tasks.
    pub(super) stop_load: CancellationToken,
    /// Cancelled to stop the watcher, the display and the key reader.
    pub(super) stop_display: CancellationToken,
    /// Cancelled by Ctrl-C, `q`, SIGTERM (the reason in `stop_reason`).
    pub(super) stop_early: CancellationToken,
    pub(super) stop_reason: Mutex<Option<StopReason>>,
    /// Password checks' verdicts, as the servers sent them.
    pub(super) verdicts: Mutex<Verdicts>,
}

/// What stopped a run early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StopReason {
    /// `q`, Esc or Ctrl-C in the live view.
    Key,
    /// SIGINT (Ctrl-C in a terminal without the live view).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopReason {
    pub(super) fn note(self) -> &'static str {
        match self {
            StopReason::Key => "stopped from the keyboard in the live view",
            StopReason::Interrupt => {
                "stopped by SIGINT (a terminal's Ctrl-C reaches slapd too: it stops at once)"
            }
            StopReason::Terminate => "stopped by SIGTERM",
        }
    }
}

/// Locks `m`, even if a panicking holder poisoned it.
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Counts a password check's verdict.
    pub(super) fn tally(&self, verdict: &ldapmux::AuthOutcome) {
        lock(&self.verdicts).count(verdict);
    }

    pub(super) fn t(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.t0)
    }

    pub(super) fn request_stop(&self, reason: StopReason) {
        lock(&self.stop_reason).get_or_insert(reason);
        self.stop_early.cancel();
    }

    pub(super) fn failed_so_far(&self) -> u64 {
        self.rec.failed_so_far()
    }

    /// The pool's state now, as shown.
    pub(super) fn status_view(&self) -> (StatusView, Vec<ConnRow>) {
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
                    Health::Unknown => HealthView::Unknown,
                    Health::Up => HealthView::Up,
                    Health::Returning { until } => HealthView::Returning {
                        left: Duration::from_nanos(until.as_nanos()).saturating_sub(core_now),
                    },
                    Health::Down { probing, .. } => HealthView::Down { probing },
                    // A health this demo does not know yet: shown as unknown.
                    _ => HealthView::Unknown,
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
                    active: g.phase == ldapmux::status::GenPhase::Active,
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
pub(super) fn pool_builder(urls: &[String], s: &DemoSettings, cap: u32) -> PoolBuilder {
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

/// Ctrl-C / SIGTERM stop the run early (in the live view Ctrl-C is a key).
pub(super) fn watch_signals(shared: Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
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
    })
}
