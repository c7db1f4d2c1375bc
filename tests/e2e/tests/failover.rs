//! Behaviours 6–13 end to end: a killed, frozen or restarted slapd, fail-over
//! and fail-back under load, enumeration across a kill, reload and shutdown
//! under load, probes. Real processes, SIGKILL / SIGSTOP, loopback only.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use ldapmux::{LeaseKind, Scope};
use ldapmux_harness::Slapd;

/// Behaviours 6, 8, 9: kill -9 of the preferred server under load. Reads in
/// flight on its connections are retried and succeed on the second server;
/// no operation fails or hangs; the dead server is marked down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b06_b08_b09_kill_under_load_reads_retry_on_the_second_server() {
    init_tracing();
    let mut a = slapd(100);
    let b = slapd(100);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    let load = Load::start(&pool, 32, 100);
    load.wait_ok(500, Duration::from_secs(20)).await;
    assert!(
        a.monitor_current_connections().await.unwrap() >= 1,
        "load runs on the preferred server"
    );
    assert_eq!(
        b.monitor_current_connections().await.unwrap(),
        0,
        "and not on the other"
    );
    a.kill();
    load.wait_ok(1000, Duration::from_secs(20)).await;
    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "no read failed across the kill: {:?}",
        tally.first_errors()
    );
    assert!(is_down(&pool, &a.url()), "the killed server is marked down");
    assert!(
        b.monitor_current_connections().await.unwrap() >= 1,
        "reads moved to the second server"
    );
    let status = pool.status();
    assert!(
        status.counters.retries_offered >= 1,
        "some reads were retried: {:?}",
        status.counters
    );
    assert_eq!(pool.shutdown().await, 0);
}

/// Behaviour 7: after the preferred server comes back (probed, then held
/// down briefly), new operations go to it and the backup's read connections
/// drain; running operations finish; no operation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b07_fail_back_after_restart_moves_new_operations_with_zero_failures() {
    init_tracing();
    let mut a = slapd(100);
    let b = slapd(100);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    a.kill();
    let load = Load::start(&pool, 16, 100);
    load.wait_ok(300, Duration::from_secs(20)).await;
    assert!(is_down(&pool, &a.url()));
    a.restart().unwrap();
    // Probe (100–400 ms backoff) + 500 ms hold-down, then make-before-break.
    let b_url = b.url();
    eventually_async(
        "the backup's connections drained after fail-back",
        Duration::from_secs(15),
        || async { b.monitor_current_connections().await.unwrap() == 0 },
    )
    .await;
    load.wait_ok(300, Duration::from_secs(20)).await;
    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "zero failed operations across fail-back: {:?}",
        tally.first_errors()
    );
    assert!(
        a.monitor_current_connections().await.unwrap() >= 1,
        "the preferred server serves again"
    );
    let g = pool.lease(LeaseKind::Read).await.unwrap();
    assert_eq!(
        g.server_url(),
        a.url(),
        "new operations go to the preferred server"
    );
    assert!(server_status(&pool, &b_url).counters.grants > 0);
    drop(g);
    pool.shutdown().await;
}

/// Behaviour 8 (hung server): SIGSTOP keeps TCP up but nothing answers.
/// Operations on it time out, the connection is retired, a liveness check
/// with the connect timeout marks the server down, and reads move to the
/// other server within operation timeout + connect timeout. Five open
/// connections to the frozen server make the liveness check necessary:
/// without it, each would have to time out in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b08_a_frozen_server_is_left_within_operation_plus_connect_timeout() {
    init_tracing();
    let a = slapd(100);
    let b = slapd(100);
    let op_timeout = Duration::from_millis(800);
    let connect_timeout = Duration::from_millis(600);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .operation_timeout(op_timeout)
        .connect_timeout(connect_timeout)
        .max_users_per_connection(1)
        .build()
        .unwrap();
    let mut warm = Vec::new();
    for _ in 0..5 {
        warm.push(pool.lease(LeaseKind::Read).await.unwrap());
    }
    drop(warm);
    assert_eq!(a.monitor_current_connections().await.unwrap(), 5);
    a.freeze();
    let frozen_at = tokio::time::Instant::now();
    let first = search_user(&pool, 2).await;
    assert!(
        matches!(first, Err(ldapmux::Error::Timeout { .. })),
        "the first read times out: {first:?}"
    );
    // From now on reads must succeed on B by op + connect timeout (+ slack for a loaded box).
    let budget = op_timeout + connect_timeout + Duration::from_millis(700);
    let mut succeeded = None;
    while frozen_at.elapsed() < budget + op_timeout {
        if search_user(&pool, 3).await.is_ok() {
            succeeded = Some(frozen_at.elapsed());
            break;
        }
    }
    let took = succeeded.expect("reads never moved off the frozen server");
    assert!(took <= budget + op_timeout, "reads moved on after {took:?}");
    assert!(is_down(&pool, &a.url()), "the frozen server is marked down");
    let g = pool.lease(LeaseKind::Read).await.unwrap();
    assert_eq!(g.server_url(), b.url());
    drop(g);
    a.thaw();
    pool.shutdown().await;
}

/// Behaviour 10: an enumeration keeps one connection; if that connection
/// dies between entries, the next item is the saved error, and the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b10_an_enumeration_across_a_server_kill_gets_the_saved_error() {
    init_tracing();
    let mut a = slapd(100);
    let b = slapd(100);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    // A full enumeration works.
    let all: Vec<_> = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(all.len(), 100);
    assert!(all.iter().all(Result::is_ok));

    let mut stream = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    let first = stream.next().await.unwrap();
    assert!(first.is_ok());
    a.kill();
    eventually(
        "the pool saw the connection die",
        Duration::from_secs(5),
        || pool.status().counters.lost >= 1,
    )
    .await;
    match stream.next().await {
        Some(Err(e)) => assert!(
            matches!(
                e,
                ldapmux::Error::Pool {
                    source: ldapmux::PoolError::ConnectionLost { .. },
                    ..
                }
            ),
            "the saved error: {e}"
        ),
        other => panic!("expected the saved error, got {other:?}"),
    }
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the error"
    );
    // A new enumeration goes to the other server.
    let again: Vec<_> = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        again.iter().filter(|e| e.is_ok()).count(),
        100,
        "{:?}",
        again.iter().find(|e| e.is_err())
    );
    pool.shutdown().await;
}

/// Behaviour 11: a reload under load starts a new generation; running
/// operations finish on the old one, which drains and is freed; new
/// connections use the new configuration; nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_reload_under_load_drains_and_frees_the_old_generation() {
    init_tracing();
    let a = slapd(100);
    let b = slapd(100);
    let pool = builder().server(a.url()).build().unwrap();
    let load = Load::start(&pool, 16, 100);
    load.wait_ok(300, Duration::from_secs(20)).await;
    let old = pool.status().current.unwrap();
    pool.reload(builder().server(b.url())).unwrap();
    let new = pool.status().current.unwrap();
    assert_ne!(old, new, "a new generation is current");
    load.wait_ok(300, Duration::from_secs(20)).await;
    generation_freed(&pool, old).await;
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        b.monitor_current_connections().await.unwrap() >= 1,
        "new connections use the new server list"
    );
    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "zero failed operations across the reload: {:?}",
        tally.first_errors()
    );
    // An invalid configuration is refused and the old one keeps serving.
    assert!(pool.reload(builder().server("ftp://nowhere")).is_err());
    search_user(&pool, 5).await.unwrap();
    pool.shutdown().await;
}

/// Behaviour 11 for a changed server list (what DNS SRV discovery sends):
/// under load, a reload that changes nothing but the servers keeps the
/// connections to servers still listed. A's connection is neither closed nor
/// reopened (slapd counts no new connection), B's drain and close, the old
/// generation is freed, and no operation fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_a_new_server_list_keeps_the_connections_to_servers_still_listed() {
    init_tracing();
    let (a, b, c) = (slapd(100), slapd(100), slapd(100));
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    let load = Load::start(&pool, 8, 100);
    load.wait_ok(200, Duration::from_secs(20)).await;
    // A read pinned to B, so B has a connection of the old generation too.
    search_user(&pool.with_server(b.url()), 3).await.unwrap();
    let a_id = server_id(&pool, &a.url());
    let on_a: Vec<_> = pool
        .connections()
        .into_iter()
        .filter(|i| i.server == a_id)
        .map(|i| i.id)
        .collect();
    assert!(!on_a.is_empty(), "the load runs on A");
    let a_opened = a.monitor_total_connections().await.unwrap();
    let old = pool.status().current.unwrap();

    pool.reload_keeping_servers(builder().preferred_server(a.url()).server(c.url()))
        .unwrap();
    let new = pool.status().current.unwrap();
    assert_ne!(old, new, "a new generation is current");
    load.wait_ok(200, Duration::from_secs(20)).await;

    let kept: Vec<_> = pool
        .connections()
        .into_iter()
        .filter(|i| on_a.contains(&i.id))
        .collect();
    assert_eq!(kept.len(), on_a.len(), "every connection to A is kept");
    assert!(
        kept.iter()
            .all(|i| i.generation == new && i.drain_reason.is_none()),
        "kept connections belong to the new generation: {kept:?}"
    );
    assert_eq!(
        a.monitor_total_connections().await.unwrap(),
        a_opened + 1,
        "A saw no new connection but this monitor query's"
    );
    b.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    generation_freed(&pool, old).await;
    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "zero failed operations across the reload: {:?}",
        tally.first_errors()
    );

    // Another credential is not a new server list: everything drains.
    let before = pool.status().current.unwrap();
    pool.reload_keeping_servers(
        builder()
            .preferred_server(a.url())
            .server(c.url())
            .credential(ldapmux::Credential::simple(a.root_dn(), a.root_pw())),
    )
    .unwrap();
    assert_ne!(pool.status().current.unwrap(), before);
    assert!(
        pool.connections()
            .iter()
            .filter(|i| on_a.contains(&i.id))
            .all(|i| i.generation == before),
        "a new credential drains the old connections"
    );
    pool.shutdown().await;
}

/// Behaviour 12: shutdown under load. Every operation ends, with a result or
/// the shutdown error, within its timeout; no socket is left open (slapd
/// shows 0 of our connections); later operations fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b12_shutdown_under_load_ends_every_operation_and_closes_everything() {
    init_tracing();
    let a = slapd(100);
    let pool = builder().server(a.url()).build().unwrap();
    let load = Load::start(&pool, 48, 100);
    load.wait_ok(300, Duration::from_secs(20)).await;
    let left_open = pool.shutdown().await;
    assert_eq!(left_open, 0, "every socket closed");
    let tally = load.stop().await; // bounded: panics if any operation hangs
    for e in tally.first_errors() {
        assert!(
            e.contains("shut down"),
            "operations end with a result or the shutdown error: {e}"
        );
    }
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    let late = search_user(&pool, 1).await;
    assert!(late.as_ref().is_err_and(|e| e.is_shut_down()), "{late:?}");
    let status = pool.status();
    assert!(
        status.shut_down && status.conns == 0 && status.users == 0,
        "{status:?}"
    );
}

/// Behaviour 13: a server that was down and is restarted is probed back to
/// health with the configured backoff, without any user traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b13_a_restarted_server_is_probed_back_to_health() {
    init_tracing();
    let mut a = slapd(10);
    let b = slapd(10);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    a.kill();
    // The first read finds A refusing, marks it down, and is served by B.
    search_user(&pool, 1).await.unwrap();
    assert!(is_down(&pool, &a.url()));
    let probes_while_down = server_status(&pool, &a.url()).counters.probes;
    eventually(
        "at least two probes of the dead server",
        Duration::from_secs(5),
        || server_status(&pool, &a.url()).counters.probes >= probes_while_down + 2,
    )
    .await;
    assert!(is_down(&pool, &a.url()), "failed probes keep it down");
    a.restart().unwrap();
    eventually(
        "the restarted server probed back up",
        Duration::from_secs(5),
        || !is_down(&pool, &a.url()),
    )
    .await;
    assert!(server_status(&pool, &a.url()).counters.marked_up >= 1);
    pool.shutdown().await;
}

/// A leased connection (`ConnGuard`) that sees its connection die reports it
/// to the pool at once: the pool stops handing it out, the guard refuses
/// further operations with `LeaseDead`, and pooled reads move on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_guard_reports_its_dead_connection_and_refuses_further_use() {
    init_tracing();
    let mut a = slapd(10);
    let b = slapd(10);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    let mut guard = pool.lease(LeaseKind::Read).await.unwrap();
    assert_eq!(
        guard
            .search(
                Slapd::people_base(),
                Scope::OneLevel,
                "(uid=user1)",
                &["cn"]
            )
            .await
            .unwrap()
            .len(),
        1
    );
    let dead_conn = guard.conn().unwrap();
    a.kill();
    let err = guard
        .search(
            Slapd::people_base(),
            Scope::OneLevel,
            "(uid=user1)",
            &["cn"],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ldapmux::Error::LeaseDead(_)), "{err}");
    assert!(
        guard
            .whoami()
            .await
            .is_err_and(|e| matches!(e, ldapmux::Error::LeaseDead(_)))
    );
    assert_eq!(
        guard.conn(),
        None,
        "the lease went back to the pool with the report"
    );
    let mut next = pool.lease(LeaseKind::Read).await.unwrap();
    assert_ne!(
        next.conn(),
        Some(dead_conn),
        "the dead connection is never handed out again"
    );
    assert_eq!(next.server_url(), b.url());
    assert_eq!(next.whoami().await.unwrap(), "");
    drop((guard, next));
    pool.shutdown().await;
}
