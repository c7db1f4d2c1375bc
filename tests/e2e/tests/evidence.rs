//! Health decisions made by the core (issue 16), against real slapd: a late
//! liveness verdict yields to fresher answers, and a fail-back hold-down
//! means the server stayed up through it. Both misbehaved when the tokio
//! shell made these decisions on its own clock.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ldapmux::Error;
use ldapmux_harness::{FaultProxy, ProxyMode};

/// One server behind a proxy. The path stalls while a connection is idle: the
/// next search times out (1 s), and the liveness check it starts hangs in the
/// stall. The path heals and reads are answered again on a new connection;
/// the check's verdict arrives late (after its 4 s bound) and says "dead".
/// It began before the server's last answer, so the server stays up and no
/// read fails ("no server is available" for every read until a probe brought
/// it back, before issue 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_verdict_does_not_mark_a_serving_server_down() {
    init_tracing();
    let server = slapd(20);
    let proxy = FaultProxy::start(server.addr()).await.expect("proxy");
    let url = proxy.url();
    let check_bound = Duration::from_secs(4);
    let pool = builder()
        .server(url.clone())
        .operation_timeout(Duration::from_secs(1))
        .connect_timeout(check_bound)
        .build()
        .unwrap();
    search_user(&pool, 1).await.unwrap();

    proxy.set_mode(ProxyMode::Blackhole);
    let err = search_user(&pool, 2).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let checked_at = Instant::now();
    eventually("the liveness check began", Duration::from_secs(2), || {
        server_status(&pool, &url).counters.checks == 1
    })
    .await;
    // Its connection was accepted by the proxy, blackholed: it stays so (only
    // new connections are forwarded from now on) and the check hangs.
    eventually("the check's connection", Duration::from_secs(2), || {
        proxy.accepted() >= 2
    })
    .await;
    proxy.set_new_conns_mode(ProxyMode::Forward);

    // Reads until well past the check's bound: every one is answered, and
    // the server is never marked down.
    let mut reads = 0;
    while checked_at.elapsed() < check_bound + Duration::from_secs(1) {
        search_user(&pool, reads % 20)
            .await
            .unwrap_or_else(|e| panic!("read {reads} after the path healed: {e}"));
        assert!(!is_down(&pool, &url), "marked down after read {reads}");
        reads += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The verdict is due at the check's bound; a loaded machine may fire the
    // timer late, so wait for it (bounded) rather than read it at once.
    eventually(
        "the late verdict came and was overruled",
        Duration::from_secs(3),
        || server_status(&pool, &url).counters.stale_verdicts == 1,
    )
    .await;
    let counters = server_status(&pool, &url).counters;
    assert_eq!(counters.checks, 1, "one check");
    assert_eq!(counters.stale_verdicts, 1);
    assert_eq!(counters.marked_down, 0);
    assert!(reads >= 20, "{reads} reads");
    pool.shutdown().await;
}

/// A preferred server killed and restarted again and again, each time up for
/// less than its 2 s hold-down, while readers run on the backup: the pool
/// probes it through every hold-down, sees each death, and never fails back
/// onto it (before issue 16 a hold-down began at the first good probe and
/// nothing looked at the server again until it ended). Once it stays up for a
/// whole hold-down, the pool fails back once. No read fails; the backup's
/// connections are never drained and reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_preferred_server_gets_no_fail_back_until_it_stays_up_through_the_hold_down() {
    init_tracing();
    let mut a = slapd(50);
    let b = slapd(50);
    let hold = Duration::from_secs(2);
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .failback_hold_down(hold)
        .build()
        .unwrap();
    a.kill();
    let load = Load::start(&pool, 4, 50);
    load.wait_ok(100, Duration::from_secs(20)).await;
    assert!(is_down(&pool, &a.url()));
    let b_opens = server_status(&pool, &b.url()).counters.opens;
    assert!(b_opens >= 1);

    for cycle in 0..5 {
        a.restart().unwrap();
        // Back up: the pool notices (probes every 100–400 ms) and holds down.
        eventually(
            &format!("cycle {cycle}: the restarted server is returning"),
            Duration::from_secs(5),
            || {
                matches!(
                    server_status(&pool, &a.url()).health,
                    ldapmux::status::Health::Returning { .. }
                )
            },
        )
        .await;
        // Up for half the hold-down, then dead again.
        tokio::time::sleep(hold / 2).await;
        a.kill();
        eventually(
            &format!("cycle {cycle}: the dead server is down again"),
            Duration::from_secs(5),
            || is_down(&pool, &a.url()),
        )
        .await;
        assert_eq!(
            pool.status().counters.failback_warmups,
            0,
            "cycle {cycle}: no fail-back to a server that died during its hold-down"
        );
    }
    assert_eq!(
        server_status(&pool, &b.url()).counters.opens,
        b_opens,
        "the backup kept its connections"
    );

    // Now it stays up: one fail-back, after a whole hold-down.
    a.restart().unwrap();
    let restarted = Instant::now();
    eventually(
        "the fail-back to the preferred server",
        Duration::from_secs(10),
        || pool.status().counters.failback_warmups >= 1,
    )
    .await;
    assert!(
        restarted.elapsed() >= hold,
        "fail-back {:?} after the restart, before a whole hold-down of {hold:?}",
        restarted.elapsed()
    );
    load.wait_ok(100, Duration::from_secs(20)).await;
    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "no read failed: {:?}",
        tally.first_errors()
    );
    assert_eq!(pool.status().counters.failback_warmups, 1, "one fail-back");
    pool.shutdown().await;
}

/// The only server is killed; the pool marks it down and its probe backoff
/// grows (50 ms, 100 ms, … 1.6 s after five failed probes). The server comes
/// back between two scheduled probes. A read then finds every server down,
/// but the pool has not tried one for a backoff minimum: it brings the probe
/// forward and serves the read on the restarted server, instead of failing
/// it in 0 ms with "no server is available" until the next scheduled probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_server_down_a_read_brings_the_probe_forward() {
    init_tracing();
    let mut server = slapd(5);
    let url = server.url();
    let min = Duration::from_millis(50);
    let pool = builder()
        .server(url.clone())
        .connect_timeout(Duration::from_secs(1))
        .probe_backoff(min, Duration::from_secs(30))
        .build()
        .unwrap();
    search_user(&pool, 1).await.unwrap();

    server.kill();
    // A read finds it dead (its connect is refused): marked down.
    let err = search_user(&pool, 1).await.unwrap_err();
    assert!(
        is_down(&pool, &url),
        "marked down by the refused connect: {err}"
    );
    eventually("five failed probes", Duration::from_secs(10), || {
        server_status(&pool, &url).counters.probes >= 5
    })
    .await;
    let probes = server_status(&pool, &url).counters.probes;
    server.restart().unwrap();
    // Reads within a backoff minimum of a failed try fail at once by design
    // (core story `a_failed_probe_fails_its_waiters_at_once_…`); let one pass.
    tokio::time::sleep(2 * min).await;
    let asked = Instant::now();
    search_user(&pool, 2)
        .await
        .unwrap_or_else(|e| panic!("the read after the restart: {e}"));
    let took = asked.elapsed();
    let counters = server_status(&pool, &url).counters;
    assert_eq!(counters.brought_forward, 1, "one probe brought forward");
    assert_eq!(
        counters.probes,
        probes + 1,
        "served by the probe it brought forward, not a scheduled one"
    );
    assert!(took < Duration::from_secs(1), "served in {took:?}");
    pool.shutdown().await;
}
