//! Filters, DNs and sizes: typed errors, the connection still usable.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filters_and_dns_are_typed_errors_and_the_connection_stays_usable() {
    init_tracing();
    let server = slapd(10);
    let admin = Credential::simple(server.root_dn(), server.root_pw());
    let pool = builder().server(server.url()).build().unwrap();
    search_user(&pool, 1).await.unwrap();
    let searches_before = ops_initiated(&server, "Search").await;

    // Invalid filters are refused before anything is sent.
    for filter in [
        "(uid=user1",
        "uid=user1)",
        "(&(uid=a)",
        "(uid=a)(uid=b)",
        "(uid=a))",
        "",
        "(=x)",
        "(uid~x)",
        "(uid=\\zz)",
    ] {
        let err = within(
            "a search with an invalid filter",
            Duration::from_secs(1),
            pool.search(Slapd::people_base(), Scope::OneLevel, filter, &["uid"]),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidRequest(m) if m.contains("filter")),
            "{filter:?}: {err:?}"
        );
        let err = pool
            .streaming_search(Slapd::people_base(), Scope::OneLevel, filter, &["uid"])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidRequest(m) if m.contains("filter")),
            "streaming {filter:?}: {err:?}"
        );
    }
    // The monitor's own search is the only one slapd saw.
    assert_eq!(
        ops_initiated(&server, "Search").await - searches_before,
        1,
        "no invalid filter reached the server"
    );

    // Invalid DNs: the server's typed answer.
    let err = pool
        .search("not a DN", Scope::Base, "(objectClass=*)", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Ldap(s) if s.rc == 34),
        "invalidDNSyntax: {err:?}"
    );
    assert!(err.to_string().contains("invalidDNSyntax"), "{err}");
    let err = pool.compare("=,=", "uid", "x").await.unwrap_err();
    assert_eq!(err.rc(), Some(34), "{err}");
    let writer = pool.with_credential(admin);
    let err = writer.delete("no DN at all").await.unwrap_err();
    assert_eq!(err.rc(), Some(34), "{err}");
    let err = writer
        .modify_dn(
            &Slapd::user_dn(9),
            "not an RDN",
            true,
            Some(Slapd::people_base()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.rc(), Some(34), "{err}");
    let err = pool
        .search(
            "uid=nobody,ou=people,dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Ldap(s) if s.rc == 32 && s.matched.eq_ignore_ascii_case(Slapd::people_base())),
        "noSuchObject naming the matched DN: {err:?}"
    );

    // Results are not failures: one read connection and one write
    // connection, never replaced, nothing marked down.
    search_user(&pool, 2).await.unwrap();
    let status = pool.status();
    assert_eq!(status.counters.opens, 2, "{status:?}");
    assert_eq!(status.counters.lost, 0, "{status:?}");
    assert!(!is_down(&pool, &server.url()));
    pool.shutdown().await;
}

/// A search over the server's size limit is `Error::Ldap` with
/// sizeLimitExceeded (no partial list); a streaming search yields the
/// entries the server sent and then the same error. The connection stays
/// in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_size_limit_is_a_typed_result_and_the_connection_stays_usable() {
    init_tracing();
    let server = Slapd::builder()
        .users(20)
        .sizelimit(5)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let pool = builder().server(server.url()).build().unwrap();
    search_user(&pool, 1).await.unwrap();
    let conns_before = server.monitor_connections().await.unwrap();

    let err = within(
        "a search over the size limit",
        Duration::from_secs(5),
        pool.search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"]),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Ldap(s) if s.rc == 4),
        "sizeLimitExceeded: {err:?}"
    );
    assert!(err.to_string().contains("sizeLimitExceeded"), "{err}");

    let mut stream = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    let mut entries = 0;
    let last = loop {
        match stream.next_entry().await {
            Some(Ok(_)) => entries += 1,
            other => break other,
        }
    };
    assert_eq!(entries, 5, "the server's limit");
    assert!(
        matches!(&last, Some(Err(Error::Ldap(s))) if s.rc == 4),
        "then sizeLimitExceeded: {last:?}"
    );
    assert!(stream.next_entry().await.is_none(), "and the stream ends");

    // Within the limit it works, on the same connection.
    for i in 0..5 {
        search_user(&pool, i).await.unwrap();
    }
    let found = pool
        .search(
            Slapd::people_base(),
            Scope::OneLevel,
            "(|(uid=user1)(uid=user2))",
            &["uid"],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    // The same connection serves on; the paged retry of the capped search
    // had a connection of its own, closed after it.
    let before: Vec<u64> = conns_before.iter().map(|c| c.number).collect();
    eventually_async(
        "only the shared connection is left",
        Duration::from_secs(5),
        || async {
            let now = server.monitor_connections().await.unwrap();
            now.iter().map(|c| c.number).collect::<Vec<_>>() == before
        },
    )
    .await;
    // The root DN has no limit: the limit is the server's, not the pool's.
    let root = pool.with_credential(Credential::simple(server.root_dn(), server.root_pw()));
    let all = root
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(pool.status().counters.lost, 0);
    pool.shutdown().await;
}
