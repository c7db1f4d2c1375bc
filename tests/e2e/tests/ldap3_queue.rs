//! The second patch of the vendored ldap3 (`vendor/ldap3/PATCHES.md`): an
//! operation sent at the moment its connection is reset fails at once, not at
//! its timeout.
//!
//! Without the patch, a request whose send races with the connection task
//! dropping its queue stays queued with its result sender, and the operation
//! waits out its whole timeout before failing with `IdScrubSend`. Under the
//! pool that is `op_timeout` (30 s by default) lost by a read that should have
//! been retried on another connection at once. The race is microseconds wide,
//! so the test provokes it by numbers: 10 000 searches, each sent as its
//! connection is reset, not one allowed to be slow. Measured on this machine,
//! unpatched ldap3 lost 3 to 5 of them to the timeout in each of 4 runs (all
//! 4 failed), the patched one none in 5 runs (50 000 searches).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope};
use ldapmux_harness::{FaultProxy, ProxyMode};

/// Operations sent as their connection is reset.
const ROUNDS: u64 = 10_000;
/// Each operation's timeout: what a lost one waits.
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// A reset connection's operation fails within this (in microseconds to
/// milliseconds; the margin is for a loaded machine, and still well short
/// of the timeout a lost operation waits).
const PROMPT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_sent_as_its_connection_is_reset_fails_at_once() {
    let server = slapd(1);
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let mut slow = Vec::new();
    for round in 0..ROUNDS {
        proxy.set_mode(ProxyMode::Forward);
        let (conn, ldap) = LdapConnAsync::with_settings(LdapConnSettings::new(), &proxy.url())
            .await
            .unwrap_or_else(|e| panic!("round {round}: connect through the proxy: {e}"));
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        // Known to the proxy, so that `reset_all` reaches it (bounded: the
        // accept is already done in the kernel).
        let deadline = Instant::now() + OP_TIMEOUT;
        while proxy.accepted() <= round {
            assert!(Instant::now() < deadline, "round {round}: never accepted");
            tokio::task::yield_now().await;
        }
        // From now on the server's answers are dropped: only the reset can end
        // the search before its timeout (or an answer, if the switch comes
        // late: the mode reaches the connection's task asynchronously).
        proxy.set_mode(ProxyMode::Blackhole);
        let mut c = ldap.clone();
        let search = tokio::spawn(async move {
            let started = Instant::now();
            let result = c
                .with_timeout(OP_TIMEOUT)
                .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
                .await;
            (started.elapsed(), result.map(|_| ()))
        });
        // Vary where the reset lands: before, while, or after the request is sent.
        match round % 3 {
            0 => {}
            1 => tokio::task::yield_now().await,
            _ => tokio::time::sleep(Duration::from_micros(50)).await,
        }
        proxy.reset_all();
        let (took, result) = search.await.unwrap();
        if took > PROMPT {
            slow.push((round, took, format!("{result:?}")));
        }
    }
    assert!(
        slow.is_empty(),
        "operations of reset connections that waited for their timeout: {slow:?}"
    );
}
