//! Searches with options against real slapd: limits and controls give the
//! server's own result codes, references come back as data, escaped user
//! input finds exactly what it names, and options that cannot be sent are
//! refused before anything is.

mod common;

use std::collections::HashSet;

use common::{builder, init_tracing, ops_initiated, slapd};
use futures_util::StreamExt;
use ldapmux::ldap3::controls::{MakeCritical, PagedResults, RawControl};
use ldapmux::{Credential, Error, LeaseKind, Scope, SearchOptions, dn_escape, ldap_escape};
use ldapmux_harness::{FaultProxy, ProxyMode, Slapd};

fn rc(e: &Error) -> Option<u32> {
    match e {
        Error::Ldap(status) => Some(status.rc),
        _ => None,
    }
}

fn unknown_control(critical: bool) -> RawControl {
    RawControl {
        ctype: "1.3.6.1.4.1.55555.1.2.3".into(),
        crit: critical,
        val: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_and_unpaged_size_limits_and_an_unknown_critical_control_give_the_servers_codes() {
    init_tracing();
    let server = slapd(300);
    let pool = builder().server(server.url()).build().unwrap();
    let people = Slapd::people_base();
    for page_size in [Some(100), None] {
        let limited = SearchOptions::new().size_limit(10).page_size(page_size);
        let e = pool
            .search_with(people, Scope::OneLevel, "(uid=*)", &["uid"], &limited)
            .await
            .unwrap_err();
        assert_eq!(rc(&e), Some(4), "{page_size:?}: {e}");
        let items: Vec<_> = pool
            .streaming_search_with(people, Scope::OneLevel, "(uid=*)", &["uid"], &limited)
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(
            items.len(),
            11,
            "{page_size:?}: ten entries, then the result"
        );
        assert!(items[..10].iter().all(Result::is_ok));
        assert_eq!(rc(items[10].as_ref().unwrap_err()), Some(4));

        // Unknown and critical: refused by the server; not critical: ignored.
        let critical = SearchOptions::new()
            .control(unknown_control(true))
            .page_size(page_size);
        let e = pool
            .search_with(people, Scope::OneLevel, "(uid=user1)", &["uid"], &critical)
            .await
            .unwrap_err();
        assert_eq!(rc(&e), Some(12), "{page_size:?}: {e}");
        assert!(
            e.to_string().contains("unavailableCriticalExtension"),
            "{e}"
        );
        let ignored = SearchOptions::new()
            .control(unknown_control(false))
            .page_size(page_size);
        let found = pool
            .search_with(people, Scope::OneLevel, "(uid=user1)", &["uid"], &ignored)
            .await
            .unwrap();
        assert_eq!(found.entries.len(), 1);
        assert!(
            found.controls.is_empty(),
            "the pool's paged results control is not the caller's: {:?}",
            found.controls
        );
    }
    // Types only: names, no values.
    let found = pool
        .search_with(
            people,
            Scope::OneLevel,
            "(uid=user2)",
            &["uid", "cn"],
            &SearchOptions::new().types_only(true),
        )
        .await
        .unwrap();
    let entry = &found.entries[0];
    assert!(
        entry.attrs.contains_key("uid") && entry.attrs["uid"].is_empty(),
        "{entry:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_cannot_be_sent_are_refused_before_anything_is() {
    init_tracing();
    let server = slapd(10);
    let pool = builder().server(server.url()).build().unwrap();
    common::search_user(&pool, 1).await.unwrap();
    let searches = ops_initiated(&server, "Search").await;
    let paged = PagedResults {
        size: 5,
        cookie: vec![],
    };
    for (options, says) in [
        (SearchOptions::new().page_size(Some(0)), "page size of 0"),
        (SearchOptions::new().control(paged.critical()), "page_size"),
        (SearchOptions::new().size_limit(u32::MAX), "2^31"),
    ] {
        for stream in [false, true] {
            let e = if stream {
                pool.streaming_search_with(
                    Slapd::people_base(),
                    Scope::OneLevel,
                    "(uid=*)",
                    &[],
                    &options,
                )
                .await
                .map(|_| ())
                .unwrap_err()
            } else {
                pool.search_with(
                    Slapd::people_base(),
                    Scope::OneLevel,
                    "(uid=*)",
                    &[],
                    &options,
                )
                .await
                .map(|_| ())
                .unwrap_err()
            };
            assert!(
                matches!(&e, Error::InvalidRequest(m) if m.contains(says)),
                "{says}: {e}"
            );
        }
    }
    assert_eq!(
        ops_initiated(&server, "Search").await - searches,
        1,
        "only this count's own search reached slapd"
    );
    common::search_user(&pool, 2).await.unwrap();
    pool.shutdown().await;
}

/// Names from user input, escaped with the helpers the crate re-exports,
/// find exactly the entry they name; unescaped, the same input is an
/// invalid filter or matches what it should not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_user_input_finds_exactly_the_entry_it_names() {
    init_tracing();
    let server = slapd(10);
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let scratch = Slapd::scratch_base();
    let tricky = [
        "O'Brien (sales)*",
        "a,b+c=d",
        "back\\slash",
        "#hash ",
        "x)(cn=*",
    ];
    for (i, name) in tricky.iter().enumerate() {
        let dn = format!("cn={},{scratch}", dn_escape(*name));
        let sn = format!("escaped{i}");
        pool.add(
            &dn,
            vec![
                ("objectClass", HashSet::from(["person"])),
                ("cn", HashSet::from([*name])),
                ("sn", HashSet::from([sn.as_str()])),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("add {dn}: {e}"));
    }
    for name in tricky {
        let filter = format!("(cn={})", ldap_escape(name));
        let found = pool
            .search(scratch, Scope::OneLevel, &filter, &["cn"])
            .await
            .unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(found.len(), 1, "{filter}");
        assert_eq!(found[0].attrs["cn"], [name.to_owned()], "{filter}");
    }
    // The last one unescaped: `(cn=x)(cn=*)` is not one filter.
    let e = pool
        .search(scratch, Scope::OneLevel, "(cn=x)(cn=*)", &["cn"])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e}");
    // The first unescaped: its `*` matches as a wildcard (and the
    // parentheses break the filter).
    assert!(
        pool.search(scratch, Scope::OneLevel, "(cn=O'Brien*)", &["cn"])
            .await
            .unwrap()
            .len()
            == 1
    );
    pool.shutdown().await;
}

/// A search's continuation references come back as data with the options
/// API, from `search_with`, a stream, a lease and the blocking twin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_references_come_back_as_data_from_every_search_with_options() {
    init_tracing();
    let server = slapd(20);
    let scratch = Slapd::scratch_base();
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let url = format!("ldap://127.0.0.1:1/ou=away,{scratch}");
    common::add_referral(&server, &format!("ou=away,{scratch}"), &url).await;
    let options = SearchOptions::new();
    let all = "(objectClass=*)";
    let found = pool
        .search_with("dc=example,dc=com", Scope::Subtree, all, &["1.1"], &options)
        .await
        .unwrap();
    assert!(
        found.referrals.iter().any(|r| r.starts_with(&url)),
        "{:?}",
        found.referrals
    );
    assert!(found.entries.iter().any(|e| e.dn == Slapd::user_dn(19)));

    let mut stream = pool
        .streaming_search_with("dc=example,dc=com", Scope::Subtree, all, &["1.1"], &options)
        .await
        .unwrap();
    assert!(stream.referrals().is_empty(), "known only at the end");
    let mut n = 0;
    while let Some(entry) = stream.next_entry().await {
        entry.unwrap();
        n += 1;
    }
    assert_eq!(n, found.entries.len());
    assert_eq!(stream.referrals(), found.referrals);

    let mut lease = pool.lease(LeaseKind::Read).await.unwrap();
    let leased = lease
        .search_with("dc=example,dc=com", Scope::Subtree, all, &["1.1"], &options)
        .await
        .unwrap();
    assert_eq!(leased.referrals, found.referrals);
    drop(lease);
    pool.shutdown().await;

    let referrals = found.referrals.clone();
    let url = server.url();
    let (root_dn, root_pw) = (server.root_dn().to_owned(), server.root_pw().to_owned());
    tokio::task::spawn_blocking(move || {
        let blocking = ldapmux_blocking::Pool::new(
            ldapmux_blocking::PoolBuilder::new()
                .server(url)
                .credential(Credential::simple(root_dn, root_pw)),
        )
        .unwrap();
        let found = blocking
            .search_with(
                "dc=example,dc=com",
                Scope::Subtree,
                all,
                &["1.1"],
                &SearchOptions::new(),
            )
            .unwrap();
        assert_eq!(found.referrals, referrals);
        let mut entries = blocking
            .streaming_search_with(
                "dc=example,dc=com",
                Scope::Subtree,
                all,
                &["1.1"],
                &SearchOptions::new(),
            )
            .unwrap();
        assert_eq!(
            entries.by_ref().filter(Result::is_ok).count(),
            found.entries.len()
        );
        assert_eq!(entries.referrals(), referrals);
        blocking.shutdown();
    })
    .await
    .unwrap();
}

/// A request control with a value and a response control: server-side
/// sorting (RFC 2891, slapd's `sssvlv` overlay). The entries come back in
/// the order asked for, paged or not, and the sort's response control is
/// the caller's to read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_or_not_a_sort_control_orders_the_entries_and_its_response_comes_back() {
    init_tracing();
    let server = Slapd::builder()
        .users(120)
        .global_config("moduleload sssvlv")
        .database_config("overlay sssvlv")
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"));
    let pool = builder().server(server.url()).build().unwrap();
    // SortKeyList ::= SEQUENCE OF SEQUENCE { attributeType "uidNumber",
    // reverseOrder [1] TRUE } (uid has no ordering rule; uidNumber has).
    let mut val = vec![0x30, 0x10, 0x30, 0x0e, 0x04, 0x09];
    val.extend_from_slice(b"uidNumber");
    val.extend_from_slice(&[0x81, 0x01, 0xff]);
    let sort = RawControl {
        ctype: "1.2.840.113556.1.4.473".into(),
        crit: true,
        val: Some(val),
    };
    for page_size in [None, Some(50)] {
        let options = SearchOptions::new()
            .control(sort.clone())
            .page_size(page_size);
        let found = pool
            .search_with(
                Slapd::people_base(),
                Scope::OneLevel,
                "(uid=*)",
                &["uidNumber"],
                &options,
            )
            .await
            .unwrap_or_else(|e| panic!("{page_size:?}: {e}"));
        let numbers: Vec<u64> = found
            .entries
            .iter()
            .map(|e| e.attrs["uidNumber"][0].parse().unwrap())
            .collect();
        let mut want = numbers.clone();
        want.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(numbers.len(), 120, "{page_size:?}");
        assert_eq!(numbers, want, "{page_size:?}: descending uidNumber");
        assert_ne!(numbers.first(), numbers.last());
        let response: Vec<_> = found.controls.iter().map(|c| c.1.ctype.as_str()).collect();
        assert_eq!(
            response,
            ["1.2.840.113556.1.4.474"],
            "{page_size:?}: the sort's response"
        );
        // sortResult: SEQUENCE { sortResult ENUMERATED success (0) }
        let value = found.controls[0].1.val.as_deref().unwrap();
        assert_eq!(value, [0x30, 0x03, 0x0a, 0x01, 0x00], "{page_size:?}");
    }
    pool.shutdown().await;
}

/// The client's time limit reaches the server: slapd is held in the middle
/// of an unpaged search past the limit by a client that does not read (the
/// proxy stops reading, so slapd's writes block); read again, slapd finds
/// its time up and ends the search with timeLimitExceeded (rc 3). Without
/// the limit the same search returns every entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_off_a_time_limit_gives_the_servers_time_limit_exceeded() {
    init_tracing();
    const N: usize = 30_000;
    let server = Slapd::builder()
        .users(N)
        .groups(1)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"));
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let pool = builder()
        .server(proxy.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    common::search_user(&pool, 1).await.unwrap();
    let search = |options: SearchOptions| {
        let pool = pool.clone();
        async move {
            pool.search_with(
                Slapd::people_base(),
                Scope::OneLevel,
                "(uid=*)",
                &["*"],
                &options,
            )
            .await
        }
    };
    let limited = SearchOptions::new()
        .time_limit(std::time::Duration::from_secs(1))
        .page_size(None);
    proxy.set_live_conns_mode(ProxyMode::StallServer);
    let running = tokio::spawn(search(limited));
    // The scenario, not a wait for a result: slapd writes into sockets
    // nobody reads and blocks, for longer than the search's 1 s.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    proxy.set_live_conns_mode(ProxyMode::Forward);
    let e = match running.await.unwrap() {
        Ok(found) => panic!("{} entries, not timeLimitExceeded", found.entries.len()),
        Err(e) => e,
    };
    assert_eq!(rc(&e), Some(3), "{e}");
    assert!(e.to_string().contains("timeLimitExceeded"), "{e}");

    let all = search(SearchOptions::new().page_size(None)).await.unwrap();
    assert_eq!(all.entries.len(), N, "the same search without the limit");
    pool.shutdown().await;
}
