//! Issue 20: a server's Notice of Disconnection (RFC 4511 §4.4.1, the
//! unsolicited message Active Directory sends past `MaxConnIdleTime`) is the
//! server saying one connection is closing: the pool gives it no new users,
//! retries a read caught on it, and neither suspects the server nor drains
//! the server's other connections, as it does when a connection dies
//! unexplained. Real slapd behind the loopback proxy, which sends the notice
//! (`ProxyMode::Notice`) and closes.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ldapmux::{Credential, Mod, Pool, Scope};
use ldapmux_harness::{FaultProxy, ProxyMode, RequestKind, Slapd};

const WAIT: Duration = Duration::from_secs(5);

/// A pool on `proxy` with a warm read connection (accepted first) and a
/// warm write connection (second).
async fn warm_pool(server: &Slapd, proxy: &FaultProxy) -> Pool {
    let pool = builder()
        .server(proxy.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let found = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    assert_eq!(found.len(), 20);
    let dn = format!("uid={},{}", "user0", Slapd::people_base());
    pool.modify(
        &dn,
        vec![Mod::Replace("description", HashSet::from(["warm"]))],
    )
    .await
    .unwrap();
    assert_eq!(proxy.live(), 2, "a read and a write connection");
    pool
}

/// The read connection's id at the proxy (the first accepted).
fn read_conn(proxy: &FaultProxy) -> ldapmux_harness::ProxyConnId {
    proxy
        .connections()
        .into_iter()
        .min_by_key(|c| c.id)
        .expect("live connections")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_on_an_idle_connection_closes_it_alone_and_suspects_no_one() {
    init_tracing();
    let server = slapd(20);
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let pool = warm_pool(&server, &proxy).await;
    let lost = pool.status().counters.lost;
    proxy.set_conn_mode(read_conn(&proxy), ProxyMode::Notice);
    eventually("the pool read the notice", WAIT, || {
        pool.status().counters.notices == 1
    })
    .await;
    eventually("the proxy closed the noticed connection", WAIT, || {
        proxy.live() == 1
    })
    .await;
    // The write connection is untouched; nothing was taken for a death.
    let status = pool.status();
    assert_eq!(status.counters.lost, lost, "no connection counted lost");
    assert_eq!(status.counters.drains, 1, "only the noticed one drained");
    assert!(!is_down(&pool, &proxy.url()), "the server is not suspected");
    assert_eq!(server_status(&pool, &proxy.url()).counters.marked_down, 0);
    // Reads go on, on a new connection; the write connection still serves.
    let accepted = proxy.accepted();
    let found = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    assert_eq!(found.len(), 20);
    assert_eq!(proxy.accepted(), accepted + 1, "one new read connection");
    let dn = format!("uid={},{}", "user1", Slapd::people_base());
    pool.modify(
        &dn,
        vec![Mod::Replace("description", HashSet::from(["after"]))],
    )
    .await
    .unwrap();
    assert_eq!(
        proxy.accepted(),
        accepted + 1,
        "the write connection stayed"
    );
    pool.shutdown().await;
}

/// The control: the same connection closed without a notice (FIN) is an
/// unexplained death, and the server's other connection drains with it
/// (make before break). This is what the notice spares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_close_without_a_notice_drains_the_servers_other_connections() {
    init_tracing();
    let server = slapd(20);
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let pool = warm_pool(&server, &proxy).await;
    let lost = pool.status().counters.lost;
    proxy.set_conn_mode(read_conn(&proxy), ProxyMode::Close);
    eventually("the pool saw the connection die", WAIT, || {
        pool.status().counters.lost == lost + 1
    })
    .await;
    eventually("the write connection drained and closed", WAIT, || {
        proxy.live() == 0
    })
    .await;
    assert_eq!(pool.status().counters.notices, 0);
    pool.shutdown().await;
}

/// The notice comes instead of the answer to a search (the server closes
/// with the request unanswered): the search is retried on a new connection
/// and returns every entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_caught_by_a_notice_is_retried_and_answered() {
    init_tracing();
    let server = slapd(20);
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let pool = warm_pool(&server, &proxy).await;
    let mut armed = proxy.arm_next_request(Some(RequestKind::Search), ProxyMode::Notice);
    let found = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .expect("retried on a fresh connection");
    assert_eq!(found.len(), 20);
    armed.wait(WAIT).await.expect("the notice was sent");
    let status = pool.status();
    assert_eq!(status.counters.notices, 1);
    assert!(!is_down(&pool, &proxy.url()));
    assert_eq!(server_status(&pool, &proxy.url()).counters.marked_down, 0);
    assert_eq!(
        proxy.request_count(Some(RequestKind::Search), Slapd::people_base().as_bytes()),
        3,
        "the warm-up, the one the notice answered, the retry (the root DSE read aside)"
    );
    pool.shutdown().await;
}
