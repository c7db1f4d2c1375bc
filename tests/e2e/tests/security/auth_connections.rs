//! With bind reuse off, each password check gets a connection of its own, never reused nor shared.

use super::*;

/// With bind connections off (`bind_connections_per_server(0)`, the
/// seed's rule): 40 password checks (right and wrong, 10 at a time) while 4
/// tasks search on the same pool: slapd accepted exactly 40 new connections
/// and saw exactly 40 binds (one per connection: each check had its own,
/// fresh connection), all 40 are closed afterwards, and every search ran on
/// the one shared connection, which is still anonymous (no check's bind
/// ever landed on it). With them on, see `bind_reuse.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_reuse_off_gives_each_check_a_connection_never_reused_nor_shared() {
    capture();
    let server = slapd(20);
    // Spreading off: the 4 searching tasks keep to one shared connection, so
    // every connection slapd accepts during the checks is a check's own.
    let pool = builder()
        .server(server.url())
        .spread_connections_per_server(1)
        .bind_connections_per_server(0)
        .build()
        .unwrap();
    search_user(&pool, 0).await.unwrap();
    let shared = server.monitor_connections().await.unwrap();
    assert_eq!(shared.len(), 1);
    let binds_before = ops_initiated(&server, "Bind").await;
    let opens_before = pool.status().counters.opens;

    let (load, accepted) = connections_opened_during(&server, async {
        let load = Load::start(&pool, 4, 20);
        for round in 0..4 {
            let checks: Vec<_> = (0..10)
                .map(|i| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let pw = if (i + round) % 2 == 0 {
                            Slapd::user_password(i)
                        } else {
                            format!("wrong-{i}")
                        };
                        let ok = pool
                            .authenticate(&Slapd::user_dn(i), &Password::new(pw))
                            .await
                            .unwrap();
                        assert_eq!(ok.is_accepted(), (i + round) % 2 == 0);
                    })
                })
                .collect();
            for c in checks {
                c.await.unwrap();
            }
        }
        load.wait_ok(50, Duration::from_secs(10)).await;
        load.stop().await
    })
    .await;
    assert_eq!(load.failed(), 0, "{:?}", load.first_errors());
    let binds = ops_initiated(&server, "Bind").await - binds_before;
    assert_eq!(
        pool.status().counters.opens - opens_before,
        40,
        "one connection per check, and no new shared one"
    );
    assert_eq!(accepted, 40, "slapd accepted one connection per check");
    assert_eq!(binds, 40, "and saw one bind per check: none reused");
    server
        .wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();
    let after = server.monitor_connections().await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].number, shared[0].number,
        "the shared connection lives on"
    );
    assert_eq!(after[0].authz_dn, "", "it is still anonymous: {after:?}");
    // Its anonymous bind, the root DSE read for paging, the first search,
    // and every search of the load: no search ran on a check's connection.
    let searches = 1 + 1 + load.ok() + load.failed();
    assert_eq!(
        after[0].ops_received,
        1 + searches,
        "every search ran on the shared connection"
    );
    assert_eq!(pool.whoami().await.unwrap(), "");
    pool.shutdown().await;
}
