//! Paged enumeration (RFC 2696) against real slapd whose limits cap unpaged
//! searches at 500 entries and let paged ones through, as an administrator
//! of a large directory sets them (`limits … size.pr=500
//! size.prtotal=unlimited`), and against slapd's plain default limit.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{builder, eventually, eventually_async, init_tracing, ops_initiated};
use futures_util::StreamExt;
use ldapmux::{Error, Scope};
use ldapmux_harness::Slapd;

const USERS: usize = 10_000;

/// Unpaged anonymous searches capped at 500, paged ones unlimited.
const PAGED_LIMITS: &str =
    "limits anonymous size.soft=500 size.hard=500 size.pr=500 size.prtotal=unlimited";

fn paged_server() -> Slapd {
    Slapd::builder()
        .users(USERS)
        .groups(1)
        .database_config(PAGED_LIMITS)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"))
}

fn every_user() -> HashSet<String> {
    (0..USERS).map(Slapd::user_dn).collect()
}

async fn enumerate(pool: &ldapmux::Pool) -> Vec<Result<ldapmux::SearchEntry, Error>> {
    pool.streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .expect("the first page")
        .collect()
        .await
}

/// Each entry once, and no error: the DNs, checked against the directory.
fn distinct_dns(items: Vec<Result<ldapmux::SearchEntry, Error>>) -> HashSet<String> {
    let n = items.len();
    let dns: HashSet<String> = items
        .into_iter()
        .map(|e| e.expect("every item an entry").dn)
        .collect();
    assert_eq!(dns.len(), n, "an entry came twice");
    dns
}

fn size_limit_exceeded(e: &Error) -> bool {
    matches!(e, Error::Ldap(status) if status.rc == 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_search_and_streaming_search_return_all_10000_entries_each_once() {
    init_tracing();
    let server = paged_server();
    let pool = builder().server(server.url()).build().unwrap();

    let searches = ops_initiated(&server, "Search").await;
    let streamed = distinct_dns(enumerate(&pool).await);
    assert_eq!(streamed, every_user(), "streaming_search: every user");
    // 10 000 entries in pages of 500 (the default) are 20 searches, plus
    // the root DSE read once, plus this count's own search.
    let sent = ops_initiated(&server, "Search").await - searches;
    assert!((20 + 2..=21 + 2).contains(&sent), "{sent} searches");

    let found = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    let n = found.len();
    let found: HashSet<String> = found.into_iter().map(|e| e.dn).collect();
    assert_eq!(n, USERS, "search: no entry twice");
    assert_eq!(found, every_user(), "search: every user");

    // Pages of 250: twice the searches, the same entries.
    pool.reload(builder().server(server.url()).page_size(Some(250)))
        .unwrap();
    let searches = ops_initiated(&server, "Search").await;
    assert_eq!(distinct_dns(enumerate(&pool).await), every_user());
    let sent = ops_initiated(&server, "Search").await - searches;
    // The reload forgot the root DSE: it is read again.
    assert!((40 + 2..=41 + 2).contains(&sent), "{sent} searches");

    // Pages larger than the server's `size.pr` are the server's typed
    // refusal (adminLimitExceeded), with its reason, for every search that
    // pages; the connection stays, and a reload to a size it allows serves.
    pool.reload(builder().server(server.url()).page_size(Some(1000)))
        .unwrap();
    let e = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Ldap(s) if s.rc == 11), "{e}");
    assert!(e.to_string().contains("page size"), "{e}");
    // A search whose answer fits under the unpaged cap does not page.
    common::search_user(&pool, 7).await.unwrap();
    let lost = pool.status().counters.lost;
    pool.reload(builder().server(server.url())).unwrap();
    assert_eq!(distinct_dns(enumerate(&pool).await), every_user());
    assert_eq!(pool.status().counters.lost, lost, "no connection was lost");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_off_gets_the_servers_size_limit_after_500() {
    init_tracing();
    let server = paged_server();
    let pool = builder()
        .server(server.url())
        .page_size(None)
        .build()
        .unwrap();
    let items = enumerate(&pool).await;
    let (entries, errors): (Vec<_>, Vec<_>) = items.into_iter().partition(Result::is_ok);
    assert_eq!(entries.len(), 500, "the unpaged cap");
    assert_eq!(errors.len(), 1, "then the result");
    let e = errors.into_iter().next().unwrap().unwrap_err();
    assert!(size_limit_exceeded(&e), "{e}");
    let e = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap_err();
    assert!(size_limit_exceeded(&e), "{e}");
    assert!(e.to_string().contains("sizeLimitExceeded"), "{e}");
    pool.shutdown().await;
}

/// slapd's plain `sizelimit 500` caps paged searches in total too: paging
/// cannot pass it, and the error says the server's limit was reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_against_the_plain_default_limit_reports_the_servers_limit() {
    init_tracing();
    let server = Slapd::builder()
        .users(2_000)
        .groups(1)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"));
    let pool = builder()
        .server(server.url())
        .page_size(Some(200))
        .build()
        .unwrap();
    let items = enumerate(&pool).await;
    let errors: Vec<_> = items.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(items.len() - errors.len(), 500, "the server's total cap");
    assert_eq!(errors.len(), 1);
    assert!(size_limit_exceeded(errors[0]), "{}", errors[0]);
    assert!(errors[0].to_string().contains("sizeLimitExceeded"));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_stream_dropped_after_two_pages_is_abandoned_and_its_connection_reused() {
    init_tracing();
    let server = paged_server();
    let pool = builder()
        .server(server.url())
        .page_size(Some(100))
        .build()
        .unwrap();
    // Warm: the enumeration connection open, the root DSE read.
    assert_eq!(distinct_dns(enumerate(&pool).await).len(), USERS);
    let opens = pool.status().counters.opens;
    let abandons = ops_initiated(&server, "Abandon").await;
    let searches = ops_initiated(&server, "Search").await;
    // Each monitor read is one search of its own: counted to subtract.
    let reads = std::sync::atomic::AtomicU64::new(0);
    let read = |op: &'static str| {
        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ops_initiated(&server, op)
    };

    let mut stream = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    for _ in 0..150 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    eventually_async("slapd saw the Abandon", Duration::from_secs(5), || async {
        read("Abandon").await > abandons
    })
    .await;
    eventually(
        "the stream's connection is given back",
        Duration::from_secs(5),
        || pool.status().users == 0,
    )
    .await;
    assert_eq!(read("Abandon").await, abandons + 1, "one Abandon");
    let sent = read("Search").await - searches - reads.load(std::sync::atomic::Ordering::SeqCst);
    // Pages 1 and 2 (the Abandon's), then the page of size 0 with page 1's
    // cookie that discards the paging state.
    assert_eq!(sent, 3, "two pages and the discard");

    // The next enumeration starts afresh, on the same connection.
    assert_eq!(distinct_dns(enumerate(&pool).await), every_user());
    assert_eq!(pool.status().counters.opens, opens, "no new connection");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_kill_mid_enumeration_ends_with_the_saved_error_and_no_duplicates() {
    init_tracing();
    let mut a = paged_server();
    let b = paged_server();
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .page_size(Some(200))
        .build()
        .unwrap();
    let mut stream = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    let mut seen = HashSet::new();
    for _ in 0..450 {
        let e = stream.next().await.unwrap().unwrap();
        assert!(seen.insert(e.dn), "an entry came twice");
    }
    a.kill();
    // What was already read from the socket may still come; then the
    // saved error; then the end. Never an entry twice, never a restart.
    let mut error = None;
    let mut items = 0;
    while let Some(item) = stream.next().await {
        items += 1;
        assert!(items <= USERS, "the stream did not end");
        match item {
            Ok(e) => assert!(seen.insert(e.dn), "an entry came twice"),
            Err(e) => {
                assert!(error.is_none(), "one error, then the end");
                error = Some(e);
            }
        }
    }
    let error = error.expect("the saved error");
    assert!(
        matches!(error, Error::Pool { .. }),
        "the pool's saved error: {error}"
    );
    assert!(seen.len() < USERS, "the enumeration did not finish on A");
    // A new enumeration is served by B, in full.
    assert_eq!(distinct_dns(enumerate(&pool).await), every_user());
    pool.shutdown().await;
}

#[test]
fn paged_blocking_streaming_search_returns_every_entry_and_a_page_of_0_is_refused() {
    let server = paged_server();
    let builder = || ldapmux_blocking::PoolBuilder::new().server(server.url());
    let e = ldapmux_blocking::Pool::new(builder().page_size(Some(0))).unwrap_err();
    assert!(e.to_string().contains("page_size"), "{e}");
    let pool = ldapmux_blocking::Pool::new(builder()).unwrap();
    let entries = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .unwrap();
    let mut dns = HashSet::new();
    for entry in entries {
        assert!(dns.insert(entry.unwrap().dn), "an entry came twice");
    }
    assert_eq!(dns, every_user());
    pool.shutdown();
}

/// An operation past its deadline is abandoned on the server, so that it
/// stops working on it: a search (the pager's own Abandon, sent when the
/// search is dropped) and a compare (the pool's). slapd is frozen so the
/// answer cannot come in time; the Abandon waits in its socket and is
/// counted when it is thawed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_search_and_compare_past_their_deadline_are_abandoned_on_the_server() {
    init_tracing();
    let server = paged_server();
    let pool = builder()
        .server(server.url())
        .operation_timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    // Warm: a connection open and the root DSE read.
    common::search_user(&pool, 1).await.unwrap();
    for op in ["search", "compare"] {
        let abandons = ops_initiated(&server, "Abandon").await;
        server.freeze();
        let e = match op {
            "search" => pool
                .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
                .await
                .map(|_| ())
                .unwrap_err(),
            _ => pool
                .compare(&Slapd::user_dn(3), "uid", Slapd::user_uid(3))
                .await
                .map(|_| ())
                .unwrap_err(),
        };
        server.thaw();
        assert!(matches!(e, Error::Timeout { .. }), "{op}: {e}");
        eventually_async(
            &format!("slapd saw the {op}'s Abandon"),
            Duration::from_secs(5),
            || async { ops_initiated(&server, "Abandon").await > abandons },
        )
        .await;
        // Serving again before the next one (the timeout retired the
        // connection and had the server checked).
        eventually_async("the pool serves again", Duration::from_secs(10), || async {
            common::search_user(&pool, 2).await.is_ok()
        })
        .await;
    }
    pool.shutdown().await;
}

/// Concurrent paged searches beside an enumeration each get every entry:
/// slapd keeps one paging state per connection and answers a second paged
/// search beside the first with protocolError ("paged results cookie is
/// invalid"), so each paged `search` runs on a connection of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_searches_run_side_by_side_each_on_its_own_connection() {
    init_tracing();
    let server = paged_server();
    let pool = builder()
        .server(server.url())
        .page_size(Some(100))
        .build()
        .unwrap();
    common::search_user(&pool, 1).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            if i != 0 {
                pool.search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["1.1"])
                    .await
                    .map(|found| found.into_iter().map(|e| e.dn).collect::<Vec<_>>())
            } else {
                let items = enumerate(&pool).await;
                items.into_iter().map(|e| e.map(|e| e.dn)).collect()
            }
        }));
    }
    for task in tasks {
        let dns = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a paged search beside others: {e}"));
        let n = dns.len();
        let dns: HashSet<String> = dns.into_iter().collect();
        assert_eq!(n, USERS, "no entry twice");
        assert_eq!(dns, every_user());
    }
    // Each paged search's connection closed with it; shared ones stay.
    eventually(
        "the paged searches' connections closed",
        Duration::from_secs(5),
        || {
            pool.connections()
                .iter()
                .all(|c| c.purpose != ldapmux::status::Purpose::Private)
        },
    )
    .await;
    pool.shutdown().await;
}

/// Enumerations that would share a connection: a server keeps one paging
/// state per connection (before, the second paged stream's first page
/// invalidated the first's cookie and both ended in protocolError /
/// unwillingToPerform; sent unpaged instead, they stopped at the cap, found
/// by `make demo`), so the core puts one paging user on a connection at a
/// time. Three at once get three connections, each every entry, and the
/// connections stay: a fourth enumeration opens none. Capped at one
/// connection per server, they take turns on it, each complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_enumerations_sharing_one_connection_each_get_every_entry() {
    init_tracing();
    let server = paged_server();
    for cap in [None, Some(1)] {
        let mut b = builder().server(server.url()).page_size(Some(100));
        if let Some(n) = cap {
            b = b.max_connections_per_server(n);
        }
        let pool = b.build().unwrap();
        common::search_user(&pool, 1).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move { enumerate(&pool).await }));
        }
        for task in tasks {
            assert_eq!(distinct_dns(task.await.unwrap()), every_user());
        }
        let opens = pool.status().counters.opens;
        let want = if cap.is_some() { 1 } else { 3 };
        assert_eq!(
            opens,
            want,
            "three enumerations, cap {cap:?}: {:?}",
            pool.status().counters
        );
        // Shared read connections, kept (not private ones, closed after).
        let reads = pool
            .connections()
            .iter()
            .filter(|c| c.purpose == ldapmux::status::Purpose::Read)
            .count() as u64;
        assert_eq!(reads, want, "{:?}", pool.connections());
        assert_eq!(distinct_dns(enumerate(&pool).await), every_user());
        assert_eq!(
            pool.status().counters.opens,
            want,
            "the next enumeration reuses a connection"
        );
        pool.shutdown().await;
    }
}
