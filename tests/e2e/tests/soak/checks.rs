//! The checks: what the servers hold against what the pool answered, the
//! pool after the heal (every server up, every kind of operation in every
//! configuration, old generations freed), nothing left after shutdown,
//! bounded memory, calls within their timeout, and enough progress and
//! faults for the run to mean something. Each records a violation; the test
//! fails at the end if there is one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, SearchEntry};
use ldapmux::{Health, Pool, Scope, Status};
use ldapmux_harness::{FaultProxy, ROOT_DN, ROOT_PW, SCRATCH_BASE, Slapd};

use crate::faults::{self, EVERY_FAULT, Schedule, Target, VARIANTS, variant_servers};
use crate::figures::{Memory, ProcessCounts};
use crate::load::{
    Handles, authenticate_one, compare_one, enumerate_one, search_one, whoami_one, write_one,
};
use crate::record::{Rng, Run, WriteOutcome};
use crate::{LATE_SLACK, OP_TIMEOUT, RSS_GROWTH_LIMIT_KIB, hang_bound};

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

/// The writes by outcome.
#[derive(Debug, Default)]
pub struct WriteFigures {
    /// Acknowledged.
    pub ok: u64,
    /// "Outcome unknown".
    pub unknown: u64,
    /// "Outcome unknown" and found on a server.
    pub unknown_applied: u64,
    /// Failed with another error.
    pub failed: u64,
    /// Hung and cancelled.
    pub hung: u64,
}

/// Compares the client's write log with what the servers hold: a write the
/// pool acknowledged exists exactly once (on all servers together), an
/// "outcome unknown" or hung one at most once, a failed one not at all, and
/// nothing exists that was not written.
pub async fn writes_match_the_servers(run: &Run, servers: &[(&str, String)]) -> WriteFigures {
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

/// Every kind of operation the load sends.
const OPERATIONS: [&str; 7] = [
    "search",
    "enumerate",
    "compare",
    "whoami",
    "authenticate",
    "add",
    "modify",
];

/// Successful calls of every kind so far.
fn strict_oks(run: &Run) -> u64 {
    OPERATIONS.iter().map(|op| run.oks(op)).sum()
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

/// The pool must see every server of the configuration in force up again
/// (its probes) within 20 s of the last fault being healed: up, or still
/// never reached ([`Health::Unknown`], what it showed as up before issue 17),
/// never down or in its hold-down.
pub async fn pool_sees_every_server_up(run: &Run, pool: &Pool, urls: &[String; 3], variant: usize) {
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
            // A server the pool never reached (a backup no fault made it
            // need) has nothing to recover from: it is as before the load.
            .filter(|s| !matches!(s.health, Health::Up | Health::Unknown))
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
}

/// In the configuration in force and in every other one (reloaded while
/// idle), every kind of operation must succeed without one error: 36 per
/// configuration, and any error at all is a violation meanwhile.
pub async fn every_kind_succeeds_in_every_configuration(
    run: &Run,
    pool: &Pool,
    handles: &Handles,
    urls: &[String; 3],
    variant: usize,
    mut rng: Rng,
) {
    run.strict.store(true, Ordering::SeqCst);
    let mut order: Vec<usize> = (0..VARIANTS).filter(|&v| v != variant).collect();
    order.insert(0, variant);
    let mut strict_ops = 0;
    for (round, &v) in order.iter().enumerate() {
        if v != variant {
            if let Err(e) = pool.reload(faults::config(v, urls, run.seed)) {
                run.violation(format!("reload to configuration {v} refused: {e}"));
                continue;
            }
            run.event(format!("reload: configuration {v}, idle"));
        }
        let before = strict_oks(run);
        for k in 0..8u64 {
            search_one(run, handles, &mut rng).await;
            compare_one(run, handles, &mut rng).await;
            whoami_one(run, handles, &mut rng).await;
            write_one(run, handles, &mut rng, 99, round as u64 * 100 + k).await;
            if k % 4 == 0 {
                enumerate_one(run, handles, &mut rng).await;
                authenticate_one(run, handles, &mut rng, k).await;
            }
        }
        let done = strict_oks(run) - before;
        strict_ops += done;
        if done != 36 {
            run.violation(format!(
                "after the heal, in configuration {v}, {done} of 36 operations succeeded; {}",
                pool_holds(pool)
            ));
        }
    }
    run.event(format!(
        "after the heal: {strict_ops} operations succeeded in {} configurations",
        order.len()
    ));
    run.strict.store(false, Ordering::SeqCst);
}

/// Every old generation drains and is freed within 10 s once the load is gone.
pub async fn old_generations_freed(run: &Run, pool: &Pool) {
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
}

/// How the shutdown went.
pub struct Shutdown {
    /// How long `shutdown().await` took.
    pub ms: u128,
    /// Sockets it reported left open.
    pub left_open: usize,
}

/// `shutdown().await` returns within the hang bound and leaves no socket,
/// connection, user or generation in the pool.
pub async fn shutdown_closes_everything(run: &Run, pool: &Pool) -> Shutdown {
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
    Shutdown {
        ms: shutdown_ms,
        left_open,
    }
}

/// Once the pool is shut down and dropped: slapd's monitor shows none of its
/// connections, the proxies hold none, and tokio tasks and descriptors are
/// back to their count before the pool was built.
pub async fn nothing_left_after_shutdown(
    run: &Run,
    targets: &[Target],
    proxies: &[(&str, Arc<FaultProxy>)],
    before: ProcessCounts,
) {
    for t in targets {
        if let Err(e) = t
            .server
            .wait_current_connections(0, Duration::from_secs(10))
            .await
        {
            run.violation(format!("{}: {e}", t.name));
        }
    }
    for (name, p) in proxies {
        if let Some(n) = settle(Duration::from_secs(5), || {
            (p.live() != 0).then(|| p.live().to_string())
        })
        .await
        {
            run.violation(format!("proxy of {name} still holds {n} connections"));
        }
    }
    let (tasks_before, fds_before) = (before.tasks, before.fds);
    if let Some(left) = settle(Duration::from_secs(10), || {
        let ProcessCounts { tasks: t, fds: f } = ProcessCounts::now();
        (t != tasks_before || f != fds_before).then(|| {
            format!("{t} tasks (before the pool: {tasks_before}), {f} descriptors (before: {fds_before})")
        })
    })
    .await
    {
        run.violation(format!("after shutdown and drop: {left}"));
    }
}

/// Resident memory grows at most `RSS_GROWTH_LIMIT_KIB` from the warm-up to
/// the end of the load.
pub fn memory_growth_bounded(run: &Run, memory: &Memory) {
    let growth = memory.growth;
    if growth > RSS_GROWTH_LIMIT_KIB as i64 {
        run.violation(format!(
            "resident memory grew {growth} KiB from warm-up to the end (limit {RSS_GROWTH_LIMIT_KIB})"
        ));
    }
}

/// Calls that returned later than their timeout + `LATE_SLACK`.
pub struct LateCalls {
    /// All of them.
    pub late: usize,
    /// Those excused by a stall of the whole process.
    pub excused: usize,
}

/// A late call is the pool's fault unless the process itself was not
/// scheduled for long enough while it ran: a stall seen by a plain OS
/// thread (see `figures::StallWatch`) that covers the lateness. A pool that
/// blocks its runtime or ignores its timeout stalls no other thread, so
/// it is still caught. Call it once the stall watch has stopped.
pub fn late_calls_excused_by_stalls(run: &Run) -> LateCalls {
    let late = run.late.lock().unwrap().clone();
    let stalls = run.stalls.lock().unwrap().clone();
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
            run.count(op, "late-in-stall");
        } else {
            run.count(op, "LATE");
            run.violation(format!(
                "late: {op} started at {:.3}s returned after {took:?} (the process stalled \
                 {stalled:?} meanwhile); its timeout, which bounds the whole call, is {OP_TIMEOUT:?}",
                start.as_secs_f64()
            ));
        }
    }
    LateCalls {
        late: late.len(),
        excused,
    }
}

/// Progress: a pool that fails everything cannot pass. Each kind of
/// operation succeeds at least once a second, and all together 100 times.
pub fn every_kind_made_progress(run: &Run, total_ok: u64) {
    let secs = run.secs;
    for op in OPERATIONS {
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
}

/// The faults were real: connections were lost, servers marked down, the
/// configuration reloaded, and (30 s and more) every kind was injected.
pub fn the_faults_bit(run: &Run, status: &Status, schedule: &Schedule) {
    let c = &status.counters;
    if c.lost == 0 || status.servers.iter().all(|s| s.counters.marked_down == 0) {
        run.violation("no connection lost or no server marked down: the faults did not bite");
    }
    if run.secs >= 30 {
        for kind in EVERY_FAULT {
            if !schedule.done.contains_key(&kind) {
                run.violation(format!("the schedule never injected {kind:?}"));
            }
        }
        if c.generations < 2 {
            run.violation("no reload took effect");
        }
    }
}
