//! Which server ran an operation: every operation's `ldapmux.op` span
//! carries the URL of the server that ran it, so a `tracing` subscriber
//! shows where each operation went, before and after a fail-over.

mod common;

use common::*;

/// The `server` fields of the `ldapmux.op` spans in `log`, in order.
fn servers_in(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("ldapmux.op{") && l.contains("granted"))
        .filter_map(|l| {
            let at = l.find("server=\"")? + "server=\"".len();
            let end = l[at..].find('"')?;
            Some(l[at..at + end].to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operation_span_names_the_server_that_ran_it() {
    let capture = Capture::trace();
    let (mut a, b) = (slapd(3), slapd(3));
    let pool = builder()
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    search_user(&pool, 1).await.unwrap();
    let log = || capture.text();
    assert_eq!(servers_in(&log()), [a.url()], "{}", log());

    a.kill();
    // The read on the dead connection is retried on the backup: the span's
    // last recorded server is B's.
    search_user(&pool, 2).await.unwrap();
    let seen = servers_in(&log());
    assert_eq!(seen.last(), Some(&b.url()), "{seen:?}");
    assert!(
        seen.iter().all(|s| *s == a.url() || *s == b.url()),
        "{seen:?}"
    );
    pool.shutdown().await;
}
