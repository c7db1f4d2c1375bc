//! Behaviour 4 (per-server connection limit) with idle connections: found by
//! the soak (`soak.rs`, `LDAPMUX_SOAK_SEED=3`; see `docs/results/soak.md`).
//! A file of its own, so that it never shares a process with the soak, whose
//! leak check counts the process's file descriptors.

mod common;

use std::time::{Duration, Instant};

use ldapmux::{Credential, Password, Pool, Scope};
use ldapmux_harness::{ROOT_DN, ROOT_PW, SCRATCH_BASE, Slapd};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Operation timeout + connect timeout + slack for a loaded 2-core machine.
const BOUND: Duration = Duration::from_secs(8);

/// The soak's seed 3 ends in configuration 4 (at most 6 connections per
/// server), and after the heal six idle connections of five kinds fill the
/// preferred server. A server at its connection limit whose connections
/// are all idle must still serve a user that needs a connection of another
/// kind (another credential, or a private one for a password check), within
/// the operation timeout and without exceeding the limit on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_at_its_connection_limit_with_only_idle_connections_serves_a_new_kind() {
    common::init_tracing();
    let server = common::slapd(10);
    let pool = Pool::builder()
        .server(server.url())
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OP_TIMEOUT)
        .max_connections_per_server(2)
        .build()
        .expect("pool");
    let admin = pool.with_credential(Credential::simple(ROOT_DN, ROOT_PW));
    // Two idle connections of two kinds: the limit.
    pool.search(
        Slapd::people_base(),
        Scope::OneLevel,
        "(uid=user1)",
        &["cn"],
    )
    .await
    .expect("an anonymous read");
    admin
        .add(&format!("cn=limit,{SCRATCH_BASE}"), common::person("limit"))
        .await
        .expect("a write as the root DN");
    assert_eq!(pool.status().conns, 2);
    assert_eq!(server.monitor_current_connections().await.unwrap(), 2);

    let started = Instant::now();
    let checked = tokio::time::timeout(
        BOUND,
        pool.authenticate(&Slapd::user_dn(1), &Password::new(Slapd::user_password(1))),
    )
    .await;
    let took = started.elapsed();
    let user1 = pool.with_credential(Credential::simple(
        Slapd::user_dn(1),
        Slapd::user_password(1),
    ));
    let who = tokio::time::timeout(BOUND, user1.whoami()).await;
    let connections = pool
        .connections()
        .iter()
        .map(|c| {
            format!(
                "{} {:?} cred {} {:?} users {}",
                c.id, c.purpose, c.cred, c.phase, c.users
            )
        })
        .collect::<Vec<_>>();
    let who_ok =
        matches!(&who, Ok(Ok(dn)) if dn.eq_ignore_ascii_case(&format!("dn:{}", Slapd::user_dn(1))));
    assert!(
        matches!(&checked, Ok(Ok(v)) if v.is_accepted()) && who_ok,
        "on a server whose 2 connections are idle, a password check: {checked:?} after {took:?}; \
         WhoAmI as user1: {who:?}; the pool holds {connections:?}"
    );
    assert!(
        server.monitor_current_connections().await.unwrap() <= 2,
        "the limit of 2 connections holds on the server"
    );
    pool.shutdown().await;
}
