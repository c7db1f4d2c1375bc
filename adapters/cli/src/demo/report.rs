//! The final report: the summary built from the milestones, the event log
//! and the recorder, for the checks the run is judged by.

use std::time::Duration;

use super::shared::{Shared, lock};
use crate::events::{Event, Source};
use crate::view::{FailBack, FailOver, Summary};

/// What the summary needs besides the shared state.
pub(super) struct SummaryInputs {
    pub(super) setup: Duration,
    pub(super) total: Duration,
    pub(super) users: usize,
    pub(super) status: ldapmux::Status,
    pub(super) slapd_pids: Vec<u32>,
    pub(super) slapd_left: Vec<u32>,
    pub(super) stopped_early: bool,
}

/// Whether a pool event is about server A (by URL or by id).
fn is_about(e: &Event, url: &str) -> bool {
    e.field("addr").is_some_and(|a| a.eq_ignore_ascii_case(url)) || e.field("server") == Some("s0")
}

/// The summary of the run, from the milestones, the event log and the recorder.
pub(super) fn build_summary(shared: &Shared, i: SummaryInputs) -> Summary {
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
        verdicts: *lock(&shared.verdicts),
        bind_opens: i.status.counters.bind_opens,
    }
}
