//! Fail-over, fail-back and retries; labels; gauges after a reload; waiters.

use super::*;

/// Kill the preferred server under load, then restart it: one fail-over
/// and one fail-back counted for it, retries equal to the tries beyond the
/// first, every search counted as ok, the backup's connections counted as
/// slapd accepted them and closed by the fail-back, and the gauges follow
/// (server down, then up; connections move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_failback_and_retries_are_counted() {
    init_tracing();
    let mut a = slapd(100);
    let b = slapd(100);
    let name = "failover";
    let pool = builder_named(name)
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    let (a_url, b_url) = (a.url(), b.url());
    let b_total_before = b.monitor_total_connections().await.unwrap();

    let load = Load::start(&pool, 16, 100);
    load.wait_ok(200, Duration::from_secs(20)).await;
    let m = published(&pool, name);
    assert!(m.gauge(CONNECTIONS, &[("server", &a_url), ("state", "open")]) >= 1.0);
    assert_eq!(m.gauge(CONNECTIONS, &[("server", &b_url)]), 0.0);

    a.kill();
    eventually(
        "the killed server is marked down",
        Duration::from_secs(10),
        || is_down(&pool, &a_url),
    )
    .await;
    load.wait_ok(300, Duration::from_secs(20)).await;
    let m = published(&pool, name);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a_url)]), 0.0);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &b_url)]), 1.0);
    assert_eq!(m.counter(FAILOVERS_TOTAL, &[("server", &a_url)]), 1);
    assert_eq!(m.counter(FAILOVERS_TOTAL, &[("server", &b_url)]), 0);
    assert!(m.gauge(CONNECTIONS, &[("server", &b_url), ("state", "open")]) >= 1.0);

    a.restart().unwrap();
    // Probe, hold-down (500 ms), then the backup's read connections drain.
    let pool2 = pool.clone();
    let b_url2 = b_url.clone();
    eventually(
        "the pool closed every connection to the backup",
        Duration::from_secs(15),
        move || common::server_status(&pool2, &b_url2).conns == 0,
    )
    .await;
    load.wait_ok(200, Duration::from_secs(20)).await;
    let tally = load.stop().await;
    assert_eq!(tally.failed(), 0, "{:?}", tally.first_errors());

    let m = published(&pool, name);
    let status = pool.status();
    let counters = |url: &str| {
        status
            .servers
            .iter()
            .find(|s| s.addr == url)
            .unwrap()
            .counters
            .clone()
    };
    // Fail-over and fail-back: once each, as the core counted.
    assert_eq!(m.counter(FAILOVERS_TOTAL, &[("server", &a_url)]), 1);
    assert_eq!(m.counter(FAILBACKS_TOTAL, &[("server", &a_url)]), 1);
    assert_eq!(counters(&a_url).marked_down, 1);
    assert_eq!(counters(&a_url).marked_up, 1);
    assert_eq!(
        m.counter(PROBES_TOTAL, &[("server", &a_url)]),
        counters(&a_url).probes
    );
    assert!(m.counter(PROBES_TOTAL, &[("server", &a_url)]) >= 1);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a_url)]), 1.0);

    // Every search succeeded and was counted once; the kill cost retries,
    // one per try beyond the first.
    assert_eq!(
        m.counter(OPERATIONS_TOTAL, &[("op", "search"), ("outcome", "ok")]),
        tally.ok()
    );
    assert_eq!(m.counter(OPERATIONS_TOTAL, &[]), tally.ok());
    let retries = m.counter(RETRIES_TOTAL, &[("op", "search")]);
    assert!(retries >= 1, "the kill under 16 tasks cost retries");
    let tries = m.samples(ACQUIRE_SECONDS, &[("purpose", "read")]).len() as u64;
    assert_eq!(tries, tally.ok() + retries, "tries = operations + retries");
    assert!(
        retries <= status.counters.retries_offered,
        "no more retries than the core offered"
    );
    assert!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[("server", &a_url)]) >= 1,
        "the killed server's connections are counted as closed"
    );

    // The backup: every connection the pool opened there is one slapd
    // accepted (its total counts the two monitor queries that read it, and
    // nothing else), and all were closed again by the fail-back.
    let b_total_after = b.monitor_total_connections().await.unwrap();
    let b_opened = m.counter(CONNECTIONS_OPENED_TOTAL, &[("server", &b_url)]);
    assert!(b_opened >= 1);
    assert_eq!(
        b_total_after - b_total_before - 1,
        b_opened,
        "slapd on the backup accepted what the pool opened"
    );
    assert_eq!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[("server", &b_url)]),
        b_opened
    );
    assert!(
        m.counter(
            CONNECTIONS_CLOSED_TOTAL,
            &[("server", &b_url), ("reason", "fail_back")]
        ) >= 1
    );
    b.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(m.gauge(CONNECTIONS, &[("server", &b_url)]), 0.0);
    a.wait_current_connections(
        m.gauge(CONNECTIONS, &[("server", &a_url), ("state", "open")]) as u64,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    pool.shutdown().await;
}

/// By default no label carries a bind DN or a password: the pool's
/// credential is `cred-N`, a password check's connection `anonymous`. With
/// `metrics_bind_dn_labels(true)` the DN is the label, and with
/// `metrics_credential_label` the caller's label; never a password. The
/// connections gauge per credential label equals slapd's count of
/// connections bound as that DN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_carry_no_bind_dn_or_password_unless_asked() {
    init_tracing();
    let server = slapd(10);
    let dn = Slapd::user_dn(3);
    let pw = Slapd::user_password(3);
    let checked_dn = Slapd::user_dn(4);
    let checked_pw = Slapd::user_password(4);
    let secrets = [
        dn.as_str(),
        pw.as_str(),
        checked_dn.as_str(),
        checked_pw.as_str(),
    ];

    let run = |name: &'static str, b: ldapmux::PoolBuilder| {
        let server = &server;
        let (dn, pw, checked_dn, checked_pw) = (&dn, &pw, &checked_dn, &checked_pw);
        async move {
            let pool = b
                .server(server.url())
                .credential(Credential::simple(dn.clone(), pw.clone()))
                .build()
                .unwrap();
            search_user(&pool, 1).await.unwrap();
            assert!(pool.whoami().await.unwrap().contains(dn.as_str()));
            assert!(
                pool.authenticate(checked_dn, &Password::new(checked_pw.clone()))
                    .await
                    .unwrap()
                    .is_accepted()
            );
            assert_eq!(
                pool.authenticate(checked_dn, &Password::new(format!("{pw}-wrong")))
                    .await
                    .unwrap(),
                ldapmux::AuthOutcome::InvalidCredentials
            );
            let m = published(&pool, name);
            // slapd's view: connections bound as the pool's DN.
            let bound = server
                .monitor_connections()
                .await
                .unwrap()
                .iter()
                .filter(|c| c.authz_dn.eq_ignore_ascii_case(dn))
                .count();
            (pool, m, bound)
        }
    };

    // Default: opaque labels.
    let (p1, m, bound) = run("labels-default", builder_named("labels-default")).await;
    let values = m.label_values();
    for s in secrets {
        assert!(
            !values.iter().any(|v| v.contains(s)),
            "{s:?} in a label: {values:?}"
        );
    }
    // The password checks' bind connection (opened unbound) stays open.
    assert_eq!(
        m.values_of(CONNECTIONS, "credential"),
        HashSet::from(["cred-1".to_owned(), "anonymous".to_owned()])
    );
    assert_eq!(
        m.values_of(CONNECTIONS_OPENED_TOTAL, "credential"),
        HashSet::from(["cred-1".to_owned(), "anonymous".to_owned()])
    );
    assert_eq!(
        m.gauge(CONNECTIONS, &[("credential", "cred-1"), ("state", "open")]) as usize,
        bound
    );
    assert!(bound >= 1);
    p1.shutdown().await;

    // Opted in: the pool's DN is the label; the checked DN and passwords never.
    let (p2, m, bound) = run(
        "labels-dn",
        builder_named("labels-dn").metrics_bind_dn_labels(true),
    )
    .await;
    let values = m.label_values();
    assert!(values.contains(&dn), "{values:?}");
    for s in &secrets[1..] {
        assert!(
            !values.iter().any(|v| v.contains(s)),
            "{s:?} in a label: {values:?}"
        );
    }
    assert_eq!(
        m.gauge(CONNECTIONS, &[("credential", &dn), ("state", "open")]) as usize,
        bound
    );
    p2.shutdown().await;

    // A label of the caller's choosing.
    let (p3, m, bound) = run(
        "labels-named",
        builder_named("labels-named").metrics_credential_label(dn.to_uppercase(), "reader"),
    )
    .await;
    let values = m.label_values();
    for s in secrets {
        assert!(!values.iter().any(|v| v.contains(s)), "{s:?} in a label");
    }
    assert_eq!(
        m.gauge(CONNECTIONS, &[("credential", "reader"), ("state", "open")]) as usize,
        bound
    );
    assert_eq!(
        m.counter(
            OPERATIONS_TOTAL,
            &[("op", "authenticate"), ("outcome", "invalid_credentials")]
        ),
        1
    );
    p3.shutdown().await;
}

/// Gauges follow connections away: a reload to another server sets the
/// old server's connection and health gauges to 0 (not their last value),
/// and dropping the pool sets all of its gauges to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_of_a_server_removed_by_reload_go_to_zero() {
    init_tracing();
    let a = slapd(10);
    let b = slapd(10);
    let name = "reload";
    let pool = builder_named(name).server(a.url()).build().unwrap();
    search_user(&pool, 1).await.unwrap();
    let m = published(&pool, name);
    assert_eq!(
        m.gauge(CONNECTIONS, &[("server", &a.url()), ("state", "open")]),
        1.0
    );
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a.url())]), 1.0);

    pool.reload(builder_named(name).server(b.url())).unwrap();
    search_user(&pool, 2).await.unwrap();
    // The old generation's idle connection closes once drained.
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    let a_url = a.url();
    let pool2 = pool.clone();
    eventually(
        "the pool forgot its connection to a",
        Duration::from_secs(5),
        move || common::server_status(&pool2, &a_url).conns == 0,
    )
    .await;
    let m = published(&pool, name);
    assert_eq!(
        m.gauge(CONNECTIONS, &[("server", &a.url())]),
        0.0,
        "{:?}",
        m.nonzero_gauges()
    );
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a.url())]), 0.0);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &b.url())]), 1.0);
    assert_eq!(
        m.gauge(CONNECTIONS, &[("server", &b.url()), ("state", "open")]),
        1.0
    );
    assert_eq!(
        m.counter(
            CONNECTIONS_CLOSED_TOTAL,
            &[("server", &a.url()), ("reason", "reload")]
        ),
        1
    );
    b.wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();

    drop(pool);
    let m = View::of(name);
    assert!(m.nonzero_gauges().is_empty(), "{:?}", m.nonzero_gauges());
}

/// Waiters and connecting connections are gauged: against a frozen server
/// (TCP accepted, no bind answered) with one connection of one user
/// allowed, 6 searches wait: the gauge says 6 waiters and 1 connecting
/// connection, and slapd holds exactly that one connection; after the thaw
/// every search is counted ok and the waiters gauge is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_and_connecting_connections_are_gauged() {
    init_tracing();
    let server = slapd(10);
    let name = "waiters";
    let pool = builder_named(name)
        .server(server.url())
        .connect_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(30))
        .max_connections_per_server(1)
        .max_users_per_connection(1)
        .build()
        .unwrap();
    server.freeze();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { search_user(&pool, i).await })
        })
        .collect();
    let pool2 = pool.clone();
    eventually(
        "6 searches wait for a connection",
        Duration::from_secs(10),
        move || pool2.status().users == 6,
    )
    .await;
    let m = published(&pool, name);
    assert_eq!(m.gauge(WAITERS, &[]), 6.0, "{:?}", m.nonzero_gauges());
    assert_eq!(m.gauge(CONNECTIONS, &[("state", "connecting")]), 1.0);
    assert_eq!(m.gauge(CONNECTIONS, &[("state", "open")]), 0.0);
    server.thaw();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a search ended")
            .unwrap()
            .unwrap();
    }
    let m = published(&pool, name);
    assert_eq!(m.gauge(WAITERS, &[]), 0.0);
    assert_eq!(m.gauge(CONNECTIONS, &[("state", "open")]), 1.0);
    assert_eq!(
        m.counter(OPERATIONS_TOTAL, &[("op", "search"), ("outcome", "ok")]),
        6
    );
    assert_eq!(m.counter(CONNECTIONS_OPENED_TOTAL, &[]), 1);
    server
        .wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();
    pool.shutdown().await;
}
