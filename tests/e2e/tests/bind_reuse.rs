//! Reused bind connections (issue 19): password checks from many tasks run
//! on the server's small set of bind connections, one check at a time on
//! each, re-bound by every check; slapd's monitor counts the connections
//! and binds, and no pooled read connection ever shows a user's identity.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use ldapmux::{AuthOutcome, Password, Pool, Purpose};
use ldapmux_harness::Slapd;

const TASKS: usize = 8;
const CHECKS: usize = 10_000;
const USERS: usize = 100;

fn bind_conns(pool: &Pool) -> usize {
    pool.connections()
        .iter()
        .filter(|c| c.purpose == Purpose::Bind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_reuse_ten_thousand_checks_from_eight_tasks_open_only_the_bind_set() {
    let server = slapd(USERS);
    let set = ldapmux::PoolConfig::default().bind_conns_per_server as u64;
    // Spreading off: the identity watcher below keeps to one read connection.
    let pool = builder()
        .server(server.url())
        .spread_connections_per_server(1)
        .build()
        .unwrap();
    search_user(&pool, 0).await.unwrap();
    let binds_before = ops_initiated(&server, "Bind").await;

    let stop = Arc::new(AtomicBool::new(false));
    let ((verdicts, identities), accepted) = connections_opened_during(&server, async {
        // Meanwhile, WhoAmI on the pool's read connection, again and again.
        let watcher = {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(pool.whoami().await.unwrap());
                }
                seen
            })
        };
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut wrong_verdicts = Vec::new();
                    for n in 0..CHECKS / TASKS {
                        let i = (t * 37 + n) % USERS;
                        let right = n % 3 != 0;
                        let pw = if right {
                            Slapd::user_password(i)
                        } else {
                            format!("not-{}", Slapd::user_password(i))
                        };
                        let got = pool
                            .authenticate(&Slapd::user_dn(i), &Password::new(pw))
                            .await
                            .unwrap();
                        let want = if right {
                            AuthOutcome::ACCEPTED
                        } else {
                            AuthOutcome::InvalidCredentials
                        };
                        if got != want {
                            wrong_verdicts.push((i, right, got));
                        }
                    }
                    wrong_verdicts
                })
            })
            .collect();
        let mut wrong = Vec::new();
        for t in tasks {
            wrong.extend(t.await.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        (wrong, watcher.await.unwrap())
    })
    .await;

    assert!(verdicts.is_empty(), "wrong verdicts: {verdicts:?}");
    assert_eq!(
        accepted, set,
        "{CHECKS} checks from {TASKS} tasks: slapd accepted the bind set's {set} connections"
    );
    assert_eq!(
        ops_initiated(&server, "Bind").await - binds_before,
        CHECKS as u64,
        "one bind per check, none for opening a bind connection"
    );
    assert!(!identities.is_empty());
    assert!(
        identities.iter().all(String::is_empty),
        "a read connection showed a user's identity: {:?}",
        identities.iter().find(|s| !s.is_empty())
    );
    // slapd's view: the read connection is anonymous; only the bind
    // connections carry a user's identity (each the last it checked).
    let conns = server.monitor_connections().await.unwrap();
    let as_users = conns.iter().filter(|c| !c.authz_dn.is_empty()).count();
    assert!(as_users <= set as usize, "{conns:?}");
    assert_eq!(conns.len(), set as usize + 1, "{conns:?}");
    assert_eq!(bind_conns(&pool), set as usize);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_reuse_an_unclear_answer_closes_the_bind_connection_a_wrong_password_does_not() {
    let server = slapd(10);
    let pool = builder()
        .server(server.url())
        .bind_connections_per_server(1)
        .build()
        .unwrap();
    let right = Password::new(Slapd::user_password(1));
    let (verdict, opened) =
        connections_opened_during(&server, pool.authenticate(&Slapd::user_dn(1), &right)).await;
    assert_eq!(verdict.unwrap(), AuthOutcome::ACCEPTED);
    assert_eq!(opened, 1);
    // A wrong password is an answer: the connection serves the next check.
    let (verdict, opened) = connections_opened_during(
        &server,
        pool.authenticate(&Slapd::user_dn(1), &Password::new("wrong")),
    )
    .await;
    assert_eq!(verdict.unwrap(), AuthOutcome::InvalidCredentials);
    assert_eq!(
        opened, 0,
        "the wrong password's check reused the connection"
    );
    // invalidDNSyntax is no verdict: the connection is retired and closed.
    let e = pool
        .authenticate("not a DN", &Password::new("pw"))
        .await
        .unwrap_err();
    assert_eq!(e.rc(), Some(34), "{e}");
    assert_eq!(bind_conns(&pool), 0, "{:?}", pool.connections());
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    let (verdict, opened) =
        connections_opened_during(&server, pool.authenticate(&Slapd::user_dn(1), &right)).await;
    assert_eq!(verdict.unwrap(), AuthOutcome::ACCEPTED);
    assert_eq!(opened, 1, "the next check opened a fresh connection");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_reuse_a_check_never_rides_a_search_connection_nor_a_search_a_bind_one() {
    let server = slapd(10);
    let pool = builder().server(server.url()).build().unwrap();
    // A bind connection bound as user2 sits idle…
    assert!(
        pool.authenticate(&Slapd::user_dn(2), &Password::new(Slapd::user_password(2)))
            .await
            .unwrap()
            .is_accepted()
    );
    assert_eq!(bind_conns(&pool), 1);
    // …and searches, WhoAmI and writes open connections of their own.
    let (who, opened) = connections_opened_during(&server, pool.whoami()).await;
    assert_eq!(who.unwrap(), "", "the search connection is anonymous");
    assert_eq!(opened, 1);
    let read = pool
        .connections()
        .into_iter()
        .find(|c| c.purpose == Purpose::Read)
        .expect("a read connection");
    // A check while the read connection sits idle opens nothing new and
    // leaves the read connection anonymous.
    let (verdict, opened) = connections_opened_during(
        &server,
        pool.authenticate(&Slapd::user_dn(3), &Password::new(Slapd::user_password(3))),
    )
    .await;
    assert!(verdict.unwrap().is_accepted());
    assert_eq!(opened, 0, "the idle bind connection served the check");
    assert_eq!(pool.whoami().await.unwrap(), "");
    assert!(pool.connections().iter().any(|c| c.id == read.id));
    pool.shutdown().await;
}
