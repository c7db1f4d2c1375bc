//! Behaviour 15 end to end: after `fork()`, a child that uses the pool opens
//! its own connection and never touches (or unbinds) the parent's.
//!
//! Alone in its test binary so that no other test's threads exist when it forks.

#![allow(unsafe_code)]

mod common;

use std::time::Duration;

use common::builder;
use ldapmux_blocking::{Pool, Scope};
use ldapmux_harness::Slapd;

/// Runs a harness query on a private runtime, dropped before the fork so no
/// runtime thread exists then.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn search_one(pool: &Pool, i: usize) -> bool {
    let filter = format!("(uid={})", Slapd::user_uid(i));
    matches!(pool.search(Slapd::people_base(), Scope::OneLevel, &filter, &["cn"]), Ok(e) if e.len() == 1)
}

#[test]
fn b15_a_forked_child_opens_its_own_connection_and_leaves_the_parents_alone() {
    let server = Slapd::builder()
        .users(10)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"));
    let pool = Pool::new(builder().server(server.url())).unwrap();
    assert!(search_one(&pool, 1));
    assert_eq!(pool.status().counters.opens, 1);
    let parent_conns = block_on(server.monitor_connections()).unwrap();
    assert_eq!(parent_conns.len(), 1);
    let total_before = block_on(server.monitor_total_connections()).unwrap();

    // SAFETY: the child only uses the pool (which rebuilds itself) and exits
    // with _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ok = search_one(&pool, 2) && {
            let s = pool.status();
            s.counters.opens == 1 && s.generations.len() == 1
        };
        let code = if ok { 0 } else { 1 };
        // Leave without running destructors: the pool in the child drops
        // nothing of the parent's anyway, but the test harness's do.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's search on its own connection failed (status {status})"
    );

    // The child's connection was its own: one more accepted by slapd (plus the monitor query's).
    let total_after = block_on(server.monitor_total_connections()).unwrap();
    assert_eq!(
        total_after - total_before - 1,
        1,
        "the child opened exactly one connection"
    );
    // The parent's connection is untouched: still open and still used.
    assert!(search_one(&pool, 3));
    assert_eq!(
        pool.status().counters.opens,
        1,
        "the parent did not have to reconnect"
    );
    let still = block_on(server.monitor_connections()).unwrap();
    assert!(
        still.iter().any(|c| c.number == parent_conns[0].number),
        "the parent's connection survived: {still:?}"
    );
    assert_eq!(pool.shutdown(), 0);
    server
        .wait_current_connections_blocking(0, Duration::from_secs(5))
        .unwrap();
}
