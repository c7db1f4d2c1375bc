//! Operation and connection counts against slapd's monitor, and a backup never needed.

use super::*;

/// A known mix of every kind of operation, some failing: the operation
/// counters equal what the test did, and per LDAP operation type what slapd
/// completed; connections opened equal what slapd accepted; the open
/// connections gauge equals slapd's current connections; the acquire
/// histogram has one sample per try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_and_connection_counts_match_slapds_monitor() {
    init_tracing();
    let server = slapd(20);
    let name = "mix";
    let pool = builder_named(name)
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let scratch = Slapd::scratch_base();
    let a = format!("cn=metrics-a,{scratch}");
    let b = format!("cn=metrics-b,{scratch}");

    let ((), saw) = measured(&server, async {
        // Reads: 5 searches found, 1 noSuchObject, 1 invalid filter (never sent).
        for i in 0..5 {
            search_user(&pool, i).await.unwrap();
        }
        let missing = pool
            .search(
                "ou=nowhere,dc=example,dc=com",
                Scope::Base,
                "(objectClass=*)",
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(missing.rc(), Some(32));
        let bad = pool
            .search(Slapd::people_base(), SCOPE, "(uid=", &[])
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::InvalidRequest(_)), "{bad}");
        // 3 compares (2 true, 1 false: all "ok").
        let dn0 = Slapd::user_dn(0);
        let uid0 = Slapd::user_uid(0);
        assert!(pool.compare(&dn0, "uid", &uid0).await.unwrap());
        assert!(pool.compare(&dn0, "uid", &uid0).await.unwrap());
        assert!(!pool.compare(&dn0, "uid", "nobody").await.unwrap());
        // 2 WhoAmI and 1 extended operation.
        assert!(pool.whoami().await.unwrap().contains(server.root_dn()));
        pool.whoami().await.unwrap();
        pool.extended(ldap3::exop::WhoAmI).await.unwrap();
        // One streaming search over 20 users.
        let mut stream = pool
            .streaming_search(Slapd::people_base(), SCOPE, "(uid=*)", &["uid"])
            .await
            .unwrap();
        let mut n = 0;
        while let Some(entry) = stream.next().await {
            entry.unwrap();
            n += 1;
        }
        assert_eq!(n, 20);
        // Writes: 2 adds (+1 entryAlreadyExists), 1 modify, 1 rename, 2 deletes.
        pool.add(&a, person("metrics-a")).await.unwrap();
        pool.add(&b, person("metrics-b")).await.unwrap();
        let exists = pool.add(&a, person("metrics-a")).await.unwrap_err();
        assert_eq!(exists.rc(), Some(68));
        pool.modify(&a, vec![Mod::Replace("sn", HashSet::from(["x"]))])
            .await
            .unwrap();
        pool.modify_dn(&b, "cn=metrics-c", true, None)
            .await
            .unwrap();
        pool.delete(&a).await.unwrap();
        pool.delete(&format!("cn=metrics-c,{scratch}"))
            .await
            .unwrap();
        // Password checks: 2 right, 1 wrong.
        for (i, right) in [(1, true), (2, true), (3, false)] {
            let pw = if right {
                Slapd::user_password(i)
            } else {
                "wrong".into()
            };
            let ok = pool
                .authenticate(&Slapd::user_dn(i), &Password::new(pw))
                .await
                .unwrap();
            assert_eq!(ok.is_accepted(), right);
        }
        // A lease: 2 searches and a WhoAmI on one connection.
        let mut g = pool.lease(LeaseKind::Read).await.unwrap();
        g.search(Slapd::people_base(), SCOPE, "(uid=user1)", &["uid"])
            .await
            .unwrap();
        g.search(Slapd::people_base(), SCOPE, "(uid=user2)", &["uid"])
            .await
            .unwrap();
        g.whoami().await.unwrap();
        drop(g);
    })
    .await;

    let m = published(&pool, name);
    let ops =
        |op: &str, outcome: &str| m.counter(OPERATIONS_TOTAL, &[("op", op), ("outcome", outcome)]);
    let sent = |op: &str| {
        m.counter(OPERATIONS_TOTAL, &[("op", op)])
            - m.counter(
                OPERATIONS_TOTAL,
                &[("op", op), ("outcome", "invalid_request")],
            )
    };
    // What the test did.
    assert_eq!(
        ops("search", "ok"),
        5 + 2,
        "5 pool searches + 2 on the lease"
    );
    assert_eq!(ops("search", "ldap_error"), 1);
    assert_eq!(ops("search", "invalid_request"), 1);
    assert_eq!(ops("compare", "ok"), 3);
    assert_eq!(ops("whoami", "ok"), 2 + 1);
    assert_eq!(ops("extended", "ok"), 1);
    assert_eq!(ops("streaming_search", "ok"), 1);
    assert_eq!(ops("add", "ok"), 2);
    assert_eq!(ops("add", "ldap_error"), 1);
    assert_eq!(ops("modify", "ok"), 1);
    assert_eq!(ops("modify_dn", "ok"), 1);
    assert_eq!(ops("delete", "ok"), 2);
    assert_eq!(ops("authenticate", "ok"), 2);
    assert_eq!(ops("authenticate", "invalid_credentials"), 1);
    assert_eq!(ops("lease", "ok"), 1);
    assert_eq!(m.counter(OPERATIONS_TOTAL, &[]), 28, "no other operation");
    for outcome in m.values_of(OPERATIONS_TOTAL, "outcome") {
        assert!(OUTCOMES.contains(&outcome.as_str()), "{outcome}");
    }
    for op in m.values_of(OPERATIONS_TOTAL, "op") {
        assert!(OPS.contains(&op.as_str()), "{op}");
    }
    assert_eq!(m.counter(RETRIES_TOTAL, &[]), 0, "nothing failed over");

    // What slapd completed, by operation type.
    let slapd = |t: &str| saw.ops.get(t).copied().unwrap_or(0);
    // And the root DSE, read once when the first read connection opened.
    assert_eq!(
        slapd("Search"),
        sent("search") + sent("streaming_search") + 1,
        "searches: slapd {:?}",
        saw.ops
    );
    assert_eq!(slapd("Compare"), sent("compare"));
    assert_eq!(slapd("Extended"), sent("whoami") + sent("extended"));
    assert_eq!(slapd("Add"), sent("add"));
    assert_eq!(slapd("Modify"), sent("modify"));
    assert_eq!(slapd("Modrdn"), sent("modify_dn"));
    assert_eq!(slapd("Delete"), sent("delete"));
    // Each shared connection binds once when it opens (the password
    // checks' bind connection opens unbound); each password check is one
    // bind, the three of them on one reused bind connection.
    let opened = m.counter(CONNECTIONS_OPENED_TOTAL, &[]);
    let bind = m.counter(CONNECTIONS_OPENED_TOTAL, &[("purpose", "bind")]);
    assert_eq!(
        bind, 1,
        "three checks, one after another, on one bind connection"
    );
    assert_eq!(
        m.counter(CONNECTIONS_OPENED_TOTAL, &[("purpose", "private")]),
        0
    );
    assert_eq!(slapd("Bind"), sent("authenticate") + opened - bind);

    // Connections: what slapd accepted is what the pool opened.
    assert_eq!(
        saw.connections, opened,
        "slapd accepted {} connections",
        saw.connections
    );
    assert!(opened >= 3, "bind, read and write connections: {opened}");
    assert_eq!(
        m.counter(
            CONNECTIONS_OPENED_TOTAL,
            &[("credential", "cred-1"), ("purpose", "read")]
        ) + m.counter(
            CONNECTIONS_OPENED_TOTAL,
            &[("credential", "cred-1"), ("purpose", "write")]
        ),
        opened - bind,
        "shared connections carry the pool credential's label"
    );
    assert_eq!(
        m.counter(
            CONNECTIONS_OPENED_TOTAL,
            &[("credential", "anonymous"), ("purpose", "bind")]
        ),
        bind
    );

    // Open connections now: the gauge, the opened-minus-closed counters and
    // slapd agree (the bind connection stays open for the next check).
    let open = m.gauge(CONNECTIONS, &[("state", "open")]);
    assert_eq!(m.gauge(CONNECTIONS, &[("purpose", "bind")]), 1.0);
    assert_eq!(
        open as u64,
        opened - m.counter(CONNECTIONS_CLOSED_TOTAL, &[])
    );
    assert_eq!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[("purpose", "bind")]),
        0
    );
    server
        .wait_current_connections(open as u64, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(m.gauge(WAITERS, &[]), 0.0);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &server.url())]), 1.0);
    // The private connections' sockets end shortly after their close.
    eventually(
        "open sockets = open connections",
        Duration::from_secs(5),
        || published(&pool, name).gauge(OPEN_SOCKETS, &[]) == open,
    )
    .await;

    // One acquire sample per try; every try was granted.
    let samples = m.samples(ACQUIRE_SECONDS, &[]);
    let pool_ops = m.counter(OPERATIONS_TOTAL, &[]) - 3; // the lease's own calls do not acquire
    assert_eq!(samples.len() as u64, pool_ops, "one acquire per operation");
    assert_eq!(
        m.samples(ACQUIRE_SECONDS, &[("result", "granted")]).len() as u64,
        pool_ops
    );
    assert_eq!(m.samples(ACQUIRE_SECONDS, &[("purpose", "bind")]).len(), 3);
    assert!(
        samples.iter().all(|s| (0.0..10.0).contains(s)),
        "{samples:?}"
    );

    // After shutdown every gauge of the pool is 0 and slapd has nothing open.
    assert_eq!(pool.shutdown().await, 0);
    let m = View::of(name);
    assert!(m.nonzero_gauges().is_empty(), "{:?}", m.nonzero_gauges());
    assert_eq!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[]),
        m.counter(CONNECTIONS_OPENED_TOTAL, &[])
    );
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
}

/// A backup the pool never needed is not claimed up (issue 17): it reports
/// `Health::Unknown` and `ldapmux_server_up` -1 until the pool reaches it;
/// the preferred server reads 1 once its connection opens, and 0 once it is
/// killed and marked down, when the fail-over to the backup makes it 1.
/// Racing is off, so no rival connect reaches the backup early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_needed_reads_unknown_until_the_pool_reaches_it() {
    init_tracing();
    let mut a = slapd(10);
    let b = slapd(10);
    let name = "unknown";
    let pool = builder_named(name)
        .preferred_server(a.url())
        .server(b.url())
        .connect_race_delay(None)
        .build()
        .unwrap();
    let (a_url, b_url) = (a.url(), b.url());
    let up = |m: &View, url: &str| m.gauge(SERVER_UP, &[("server", url)]);
    let health = |url: &str| common::server_status(&pool, url).health;
    assert_eq!(up(&published(&pool, name), &b_url), -1.0);
    assert_eq!(health(&b_url), ldapmux::Health::Unknown);

    search_user(&pool, 1).await.unwrap();
    let m = published(&pool, name);
    assert_eq!(up(&m, &a_url), 1.0);
    assert_eq!(health(&a_url), ldapmux::Health::Up);
    assert_eq!(up(&m, &b_url), -1.0, "{:?}", pool.status());
    assert_eq!(health(&b_url), ldapmux::Health::Unknown);
    let b_counters = common::server_status(&pool, &b_url).counters;
    assert_eq!((b_counters.opens, b_counters.open_failures), (0, 0));

    a.kill();
    search_user(&pool, 2).await.unwrap();
    eventually(
        "the killed server is marked down",
        Duration::from_secs(10),
        || is_down(&pool, &a_url),
    )
    .await;
    search_user(&pool, 3).await.unwrap();
    let m = published(&pool, name);
    assert_eq!(up(&m, &a_url), 0.0);
    assert_eq!(up(&m, &b_url), 1.0);
    assert_eq!(health(&b_url), ldapmux::Health::Up);
    pool.shutdown().await;
}
