//! The blocking adapter end to end: many threads at once, one small runtime,
//! timeouts, enumeration, authentication.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::builder;
use ldapmux_blocking::ldap3::exop::WhoAmI;
use ldapmux_blocking::{Credential, LeaseKind, Password, Pool, Scope, Status};
use ldapmux_harness::Slapd;

fn slapd(users: usize) -> Slapd {
    Slapd::builder()
        .users(users)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"))
}

#[test]
fn many_threads_share_a_few_connections_with_blocking_calls() {
    let server = slapd(100);
    let pool =
        Arc::new(Pool::new(builder().server(server.url()).max_users_per_connection(8)).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let filter = format!("(uid={})", Slapd::user_uid((t * 50 + i) % 100));
                    let entries = pool
                        .search(Slapd::people_base(), Scope::OneLevel, &filter, &["cn"])
                        .unwrap();
                    assert_eq!(entries.len(), 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let status = pool.status();
    // 16 threads share, never one connection each: at cap 8 two would do,
    // and spread before stack opens spares up to its target of 4 per server.
    let most = u64::from(ldapmux_core::DEFAULT_SPREAD_CONNS_PER_SERVER).max(2);
    assert!(
        status.counters.opens <= most,
        "16 threads at cap 8, spreading to {most}, need at most {most} connections: {}",
        status.counters.opens
    );
    assert_eq!(
        server.monitor_current_connections_blocking().unwrap(),
        status.counters.opens
    );

    let entries: Vec<_> = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(entries.len(), 100);
    assert!(
        pool.authenticate(&Slapd::user_dn(7), &Password::new(Slapd::user_password(7)))
            .unwrap()
            .is_accepted()
    );
    assert_eq!(
        pool.authenticate(&Slapd::user_dn(7), &Password::new("nope"))
            .unwrap(),
        ldapmux_blocking::AuthOutcome::InvalidCredentials
    );
    assert_eq!(pool.shutdown(), 0);
    server
        .wait_current_connections_blocking(0, Duration::from_secs(5))
        .unwrap();
}

#[test]
fn a_blocking_call_to_a_frozen_server_returns_within_its_timeout() {
    let server = slapd(10);
    let pool = Pool::new(
        builder()
            .server(server.url())
            .credential(Credential::simple(
                Slapd::user_dn(1),
                Slapd::user_password(1),
            ))
            .operation_timeout(Duration::from_millis(700))
            .connect_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    assert!(pool.whoami().unwrap().to_lowercase().contains("uid=user1"));
    server.freeze();
    let started = std::time::Instant::now();
    let result = pool.whoami();
    let took = started.elapsed();
    server.thaw();
    assert!(result.is_err(), "{result:?}");
    assert!(
        took < Duration::from_millis(700 + 500),
        "returned after {took:?}"
    );
}

#[test]
fn the_blocking_pool_reloads_from_two_threads_and_leases_like_the_async_one() {
    let server = slapd(10);
    let user = Credential::simple(Slapd::user_dn(1), Slapd::user_password(1));
    let pool =
        Arc::new(Pool::new(builder().server(server.url()).credential(user.clone())).unwrap());
    let search = |pool: &Pool, i: usize| {
        let filter = format!("(uid={})", Slapd::user_uid(i));
        let found = pool
            .search(Slapd::people_base(), Scope::OneLevel, &filter, &["cn"])
            .unwrap();
        assert_eq!(found.len(), 1, "{filter}");
    };
    search(&pool, 1);
    let first: Status = pool.status();
    let first_gen = first.current.expect("serving");

    // Two threads reload the one shared pool (through `&self`) while
    // searching on it; every search is served across the reloads.
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let pool = Arc::clone(&pool);
            let (url, user) = (server.url(), user.clone());
            std::thread::spawn(move || {
                for i in 0..5u32 {
                    let b = builder()
                        .server(url.clone())
                        .credential(user.clone())
                        .max_users_per_connection(4 + t * 5 + i);
                    if i % 2 == 0 {
                        pool.reload(b).unwrap();
                    } else {
                        pool.reload_keeping_servers(b).unwrap();
                    }
                    search(&pool, (t as usize * 5 + i as usize) % 10);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let status = pool.status();
    assert_ne!(status.current, Some(first_gen), "a new generation serves");
    assert!(!status.shut_down);

    // The pool itself: connections, their servers' URLs.
    let conns = pool.connections();
    assert!(!conns.is_empty(), "{status}");
    for c in &conns {
        assert_eq!(pool.server_url(c.server), Some(server.url()));
    }

    // A lease: several operations on one connection.
    let mut conn = pool.lease(LeaseKind::Read).unwrap();
    assert!(conn.conn().is_some());
    assert_eq!(conn.server_url(), server.url());
    assert_eq!(pool.server_url(conn.server()), Some(conn.server_url()));
    let me = conn.whoami().unwrap().to_lowercase();
    assert!(me.contains("uid=user1"), "{me}");
    assert_eq!(
        conn.search(&Slapd::user_dn(2), Scope::Base, "(objectClass=*)", &["cn"])
            .unwrap()
            .len(),
        1
    );
    assert!(
        conn.compare(&Slapd::user_dn(2), "uid", Slapd::user_uid(2))
            .unwrap()
    );
    let refused = conn.delete(&Slapd::user_dn(2));
    assert!(
        matches!(refused, Err(ldapmux_blocking::Error::InvalidRequest(_))),
        "a write on a read lease: {refused:?}"
    );
    drop(conn);

    // Handles with other options, and the extended operation.
    let admin = pool.with_credential(Credential::simple(server.root_dn(), server.root_pw()));
    let answer = admin.extended(WhoAmI).unwrap();
    let identity = String::from_utf8_lossy(&answer.val.unwrap_or_default()).to_lowercase();
    assert!(
        identity.contains(&server.root_dn().to_lowercase()),
        "{identity}"
    );
    let pinned = pool
        .with_server(server.url())
        .with_timeout(Duration::from_secs(2));
    assert!(
        pinned
            .whoami()
            .unwrap()
            .to_lowercase()
            .contains("uid=user1")
    );

    assert_eq!(pool.shutdown(), 0);
    assert!(pool.status().shut_down);
    server
        .wait_current_connections_blocking(0, Duration::from_secs(5))
        .unwrap();
}
