//! Behaviours 1–5 and 14 end to end: sharing, matching, coalescing, caps,
//! idle close and no-multiplexing, each checked against slapd's own monitor
//! (or WhoAmI) rather than the pool's statistics.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ldapmux::{Credential, LeaseKind, Password, Scope};
use ldapmux_harness::Slapd;

/// Behaviour 1: 200 concurrent searches on one server share connections:
/// at most ceil(200 / cap) are opened, and slapd saw exactly the ones the
/// pool says it opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b01_sharing_200_concurrent_searches_use_the_connections_the_cap_implies() {
    init_tracing();
    let server = slapd(200);
    let cap = 16u32;
    let pool = builder()
        .server(server.url())
        .max_users_per_connection(cap)
        .build()
        .unwrap();
    let (results, slapd_saw) = connections_opened_during(&server, async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { search_user(&pool, i).await })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    })
    .await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "every search succeeds: {failed:?}");
    let opened = pool.status().counters.opens;
    assert!(
        opened >= 1 && opened <= u64::from(200_u32.div_ceil(cap)),
        "opened {opened} connections for 200 users at cap {cap}"
    );
    assert_eq!(
        slapd_saw, opened,
        "slapd accepted exactly the connections the pool opened"
    );
    assert_eq!(
        server.monitor_current_connections().await.unwrap(),
        opened,
        "they stay open, shared"
    );
    assert_eq!(pool.shutdown().await, 0);
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
}

/// Behaviour 2 (and 1 for AUTH): every pooled connection is bound with the
/// credential its user asked for, checked with WhoAmI on each; a pinned
/// server is the only one used; AUTH users never share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b02_matching_by_server_and_credential_checked_with_whoami() {
    init_tracing();
    let a = slapd(10);
    let b = slapd(10);
    let alice = Credential::simple(Slapd::user_dn(1), Slapd::user_password(1));
    let bob = Credential::simple(Slapd::user_dn(2), Slapd::user_password(2));
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .credential(alice.clone())
        .max_users_per_connection(2)
        .build()
        .unwrap();
    let as_bob = pool.with_credential(bob.clone());
    let anonymous = pool.with_credential(Credential::Anonymous);
    let on_b = pool.with_server(b.url());

    // Hold 6 leases per identity at once: 3 connections each at cap 2.
    let mut guards = Vec::new();
    for (handle, want) in [
        (&pool, Some(Slapd::user_dn(1))),
        (&as_bob, Some(Slapd::user_dn(2))),
        (&anonymous, None),
    ] {
        for _ in 0..6 {
            let mut g = handle.lease(LeaseKind::Read).await.unwrap();
            let who = g.whoami().await.unwrap().to_lowercase();
            match &want {
                Some(dn) => assert_eq!(
                    who,
                    format!("dn:{}", dn.to_lowercase()),
                    "connection {:?}",
                    g.conn()
                ),
                None => assert_eq!(who, "", "an anonymous connection is anonymous"),
            }
            assert_eq!(
                g.server_url(),
                a.url(),
                "unpinned users use the preferred server"
            );
            guards.push(g);
        }
    }
    let conns: HashSet<_> = guards.iter().map(|g| g.conn()).collect();
    assert_eq!(
        conns.len(),
        9,
        "3 identities x 6 users at cap 2 = 9 connections, none shared across identities"
    );
    let mut pinned = on_b.lease(LeaseKind::Read).await.unwrap();
    assert_eq!(
        pinned.server_url(),
        b.url(),
        "a user that names a server only gets that server"
    );
    assert_eq!(
        pinned.whoami().await.unwrap().to_lowercase(),
        format!("dn:{}", Slapd::user_dn(1).to_lowercase())
    );

    // slapd agrees: 9 connections on A bound as alice / bob / anonymous (3 each).
    let seen = a.monitor_connections().await.unwrap();
    let bound_as = |dn: &str| {
        seen.iter()
            .filter(|c| c.authz_dn.eq_ignore_ascii_case(dn))
            .count()
    };
    assert_eq!(
        (
            bound_as(&Slapd::user_dn(1)),
            bound_as(&Slapd::user_dn(2)),
            bound_as("")
        ),
        (3, 3, 3),
        "{seen:?}"
    );
    drop(guards);
    drop(pinned);

    // AUTH: 10 tasks checking passwords at once share the server's bind
    // connections, one check at a time on each: at most the bind set opens.
    let opens_before = pool.status().counters.opens;
    let checks: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let ok = pool
                    .authenticate(&Slapd::user_dn(i), &Password::new(Slapd::user_password(i)))
                    .await
                    .unwrap();
                let wrong = pool
                    .authenticate(&Slapd::user_dn(i), &Password::new("not-the-password"))
                    .await
                    .unwrap();
                (ok, wrong)
            })
        })
        .collect();
    for c in checks {
        assert_eq!(
            c.await.unwrap(),
            (
                ldapmux::AuthOutcome::ACCEPTED,
                ldapmux::AuthOutcome::InvalidCredentials
            ),
            "right password accepted, wrong one refused"
        );
    }
    let bind_conns = pool.status().counters.opens - opens_before;
    assert!(
        (1..=u64::from(ldapmux::PoolConfig::default().bind_conns_per_server)).contains(&bind_conns),
        "20 checks on {bind_conns} bind connections"
    );
    assert!(
        matches!(
            pool.authenticate(&Slapd::user_dn(1), &Password::new(""))
                .await,
            Err(ldapmux::Error::InvalidRequest(_))
        ),
        "an empty password is refused before it reaches the server"
    );
    // The bind connections stay for the next check, beside the shared ones.
    a.wait_current_connections(9 + bind_conns, Duration::from_secs(5))
        .await
        .unwrap();
    pool.shutdown().await;
}

/// Behaviour 3: a storm of 500 first requests while the server is slow to
/// answer opens exactly ceil(500 / cap) connections (later users wait for the
/// ones being opened), and every request then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b03_a_storm_of_500_first_requests_opens_exactly_what_the_caps_allow() {
    init_tracing();
    let server = slapd(500);
    let pool = builder()
        .server(server.url())
        .connect_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let before = server.monitor_total_connections().await.unwrap();
    // Frozen, slapd accepts TCP but answers nothing: every connection stays
    // "opening" until it thaws, so all 500 requests arrive before any opens.
    server.freeze();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { search_user(&pool, i).await })
        })
        .collect();
    eventually(
        "500 users waiting in the pool",
        Duration::from_secs(10),
        || pool.status().users == 500,
    )
    .await;
    let status = pool.status();
    assert_eq!(
        status.conns, 8,
        "500 users at 64 per connection: 8 connections being opened"
    );
    server.thaw();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let after = server.monitor_total_connections().await.unwrap();
    assert_eq!(
        after - before - 1,
        8,
        "slapd accepted exactly 8 connections from the pool"
    );
    assert_eq!(pool.status().counters.opens, 8);
    pool.shutdown().await;
}

/// Behaviour 4: with 2 users per connection and 3 connections per server, 20
/// leases held at once get 6 slots; the rest queue (FIFO) and are served as
/// slots free up. slapd never sees more than 3 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b04_user_cap_and_per_server_limit_queue_the_rest() {
    init_tracing();
    let server = slapd(10);
    let pool = builder()
        .server(server.url())
        .max_users_per_connection(2)
        .max_connections_per_server(3)
        .build()
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (pool, tx) = (pool.clone(), tx.clone());
            tokio::spawn(async move {
                let guard = pool.lease(LeaseKind::Read).await.unwrap();
                tx.send(guard).unwrap();
            })
        })
        .collect();
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    eventually(
        "14 users queued behind the limit",
        Duration::from_secs(5),
        || pool.status().queued == 14,
    )
    .await;
    assert!(
        rx.try_recv().is_err(),
        "no 7th lease while 6 slots are held"
    );
    assert_eq!(server.monitor_current_connections().await.unwrap(), 3);
    let mut per_conn = std::collections::HashMap::new();
    for g in &held {
        *per_conn.entry(g.conn()).or_insert(0) += 1;
    }
    assert!(
        per_conn.values().all(|&n| n == 2),
        "2 users on each of 3 connections: {per_conn:?}"
    );
    // Release them one by one: every queued user gets a slot.
    let mut served = held.len();
    while served < 20 {
        held.remove(0);
        held.push(
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
        served += 1;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        server.monitor_current_connections().await.unwrap(),
        3,
        "never more than 3 connections"
    );
    assert_eq!(pool.status().counters.opens, 3);
    drop(held);
    pool.shutdown().await;
}

/// Behaviour 5: an idle write connection is closed after the write idle
/// timeout, not before; read connections follow their own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b05_an_idle_write_connection_closes_after_the_idle_timeout() {
    init_tracing();
    let server = slapd(10);
    let admin = Credential::simple(server.root_dn(), server.root_pw());
    let pool = builder()
        .server(server.url())
        .credential(admin)
        .write_idle_timeout(Duration::from_millis(800))
        .read_idle_timeout(None)
        .build()
        .unwrap();
    search_user(&pool, 1).await.unwrap();
    let dn = format!("cn=idle,{}", Slapd::scratch_base());
    let started = tokio::time::Instant::now();
    pool.add(
        &dn,
        vec![
            ("objectClass", HashSet::from(["person"])),
            ("cn", HashSet::from(["idle"])),
            ("sn", HashSet::from(["idle"])),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        server.monitor_current_connections().await.unwrap(),
        2,
        "a read and a write connection"
    );
    server
        .wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "closed no earlier than the idle timeout"
    );
    let status = pool.status();
    assert_eq!(status.conns, 1, "the read connection stays: {status:?}");
    pool.shutdown().await;
}

/// Behaviour 14: with multiplexing off every user gets its own connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b14_multiplexing_off_gives_one_user_per_connection() {
    init_tracing();
    let server = slapd(10);
    let pool = builder()
        .server(server.url())
        .multiplexing(false)
        .build()
        .unwrap();
    assert_eq!(pool.status().user_cap, 1);
    let mut guards = Vec::new();
    for _ in 0..8 {
        guards.push(pool.lease(LeaseKind::Read).await.unwrap());
    }
    let conns: HashSet<_> = guards.iter().map(|g| g.conn()).collect();
    assert_eq!(conns.len(), 8, "8 users, 8 connections");
    let listed = pool.connections();
    assert_eq!(listed.len(), 8);
    assert!(listed.iter().all(|c| c.users == 1), "{listed:?}");
    assert_eq!(server.monitor_current_connections().await.unwrap(), 8);
    drop(guards);
    // Searches still work, and reuse the idle connections one user at a time.
    for i in 0..8 {
        search_user(&pool, i).await.unwrap();
    }
    assert_eq!(pool.status().counters.opens, 8);
    let entries = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    assert_eq!(entries.len(), 10);
    pool.shutdown().await;
}
