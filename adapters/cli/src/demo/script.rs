//! The fault script: SIGKILL the preferred server, restart it, reload the
//! pool, shut it down, each at its time; and the watcher that notices
//! what no event says directly (fail-over, fail-back, the old generation
//! freed).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldapmux_harness::Slapd;
use tracing::Level;

use super::shared::{NAMES, Shared, lock, pool_builder};
use crate::schedule::{Schedule, Step, secs};
use crate::view::{ReloadView, ShutdownView};

/// Runs the script's steps, each at its time after `t0`, on the servers
/// `slapds` (A first; restarts add to `pids`). Shuts the pool down if an
/// early stop cut the script short. Returns whether it was stopped early.
pub(super) async fn run(
    shared: &Shared,
    schedule: &Schedule,
    t0: Instant,
    slapds: &mut [Slapd],
    pids: &mut Vec<u32>,
    urls: &[String],
) -> bool {
    let mut stopped_early = false;
    let mut shut_down = false;
    for &(at, step) in schedule.steps() {
        *lock(&shared.next_step) = Some((at, step));
        tokio::select! {
            _ = tokio::time::sleep_until((t0 + at).into()) => {}
            _ = shared.stop_early.cancelled() => {}
        }
        if shared.stop_early.is_cancelled() {
            stopped_early = true;
            break;
        }
        match step {
            Step::Kill => kill(shared, &mut slapds[0]),
            Step::Restart => restart(shared, &mut slapds[0], pids),
            Step::Reload => reload(shared, urls),
            Step::Shutdown => {
                shutdown(shared).await;
                shut_down = true;
            }
        }
    }
    *lock(&shared.next_step) = None;
    if !shut_down {
        shared
            .log
            .demo(Level::WARN, "stopped early: shutting the pool down");
        shutdown(shared).await;
    }
    stopped_early
}

/// SIGKILL of A under load; the kill is the recorder's mark.
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

/// A started again on its port with its data; what the fail-back is timed from.
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

/// `Pool::reload` with the smaller users-per-connection cap.
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

/// `Pool::shutdown` with the load still running.
pub(super) async fn shutdown(shared: &Shared) {
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
pub(super) async fn watch(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.stop_display.cancelled() => break,
        }
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
