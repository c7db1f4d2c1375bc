//! The blocking adapter end to end: many threads at once, one small runtime,
//! timeouts, enumeration, authentication.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::builder;
use ldapmux_blocking::{Credential, Password, Pool, Scope};
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
    let status = pool.status().unwrap();
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
    );
    assert!(
        !pool
            .authenticate(&Slapd::user_dn(7), &Password::new("nope"))
            .unwrap()
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
