//! Referrals against real slapd: a `referral` object (RFC 3296) in the
//! scope of a search makes slapd answer a search continuation reference.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{builder, init_tracing, slapd};
use futures_util::StreamExt;
use ldapmux::{Credential, ReferralError, Scope, SearchOptions};
use ldapmux_harness::Slapd;

/// A continuation reference is not an entry: ldap3's `SearchEntry::construct`
/// panics on one, which took down the caller's task. The pool keeps
/// references apart; the entries around them arrive as before, paged or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_continuation_references_are_kept_apart_from_the_entries() {
    init_tracing();
    let server = slapd(50);
    let scratch = Slapd::scratch_base();
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let referral = format!("ou=elsewhere,{scratch}");
    let target = format!("ldap://127.0.0.1:1/ou=elsewhere,{scratch}");
    common::add_referral(&server, &referral, &target).await;
    for page_size in [Some(500), Some(10), None] {
        pool.reload(
            builder()
                .server(server.url())
                .credential(Credential::simple(server.root_dn(), server.root_pw()))
                .page_size(page_size),
        )
        .unwrap();
        // search pages only when asked (or capped): ask, so both kinds
        // of answer meet the reference.
        let found = pool
            .search_with(
                "dc=example,dc=com",
                Scope::Subtree,
                "(objectClass=*)",
                &["1.1"],
                &SearchOptions::new().page_size(page_size),
            )
            .await
            .unwrap()
            .entries;
        let dns: HashSet<_> = found.iter().map(|e| e.dn.as_str()).collect();
        assert_eq!(dns.len(), found.len(), "{page_size:?}: no entry twice");
        assert!(dns.contains(Slapd::user_dn(49).as_str()), "{page_size:?}");
        assert!(
            !dns.contains(referral.as_str()),
            "{page_size:?}: a reference is no entry"
        );
        let streamed: Vec<_> = pool
            .streaming_search(
                "dc=example,dc=com",
                Scope::Subtree,
                "(objectClass=*)",
                &["1.1"],
            )
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(
            streamed.len(),
            found.len(),
            "{page_size:?}: the same entries streamed"
        );
        assert!(streamed.iter().all(Result::is_ok), "{page_size:?}");
    }
    pool.shutdown().await;
}

/// The bound identities of the client connections `server` has open, as
/// its monitor lists them (the monitor's own query connection left out).
async fn identities_on(server: &Slapd) -> Vec<String> {
    let conns = server.monitor_connections().await.unwrap();
    conns.into_iter().map(|c| c.authz_dn).collect()
}

/// A continuation reference from A into B's people: returned as data and
/// not followed by default; followed when asked, on a referral connection
/// of its own to B, bound anonymously because B is not configured, and
/// with the pool's credential once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_into_another_server_is_followed_only_when_asked_and_never_with_the_password_unless_listed()
 {
    init_tracing();
    let a = slapd(5);
    let b = slapd(50);
    let scratch = Slapd::scratch_base();
    let into_b = format!("{}/{}", b.url(), Slapd::people_base());
    common::add_referral(&a, &format!("ou=away,{scratch}"), &into_b).await;
    let root = Credential::simple(a.root_dn(), a.root_pw());
    let pool = builder()
        .server(a.url())
        .credential(root.clone())
        .build()
        .unwrap();
    let filter = "(uid=user4*)";
    let attrs = ["uid"];
    let base = "dc=example,dc=com";

    let found = pool
        .search_with(base, Scope::Subtree, filter, &attrs, &SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(found.entries.len(), 1, "A's user4 only");
    // slapd adds the scope it would search there (`??sub`).
    assert_eq!(found.referrals.len(), 1, "{:?}", found.referrals);
    assert!(
        found.referrals[0].starts_with(&into_b),
        "the reference, as data: {:?}",
        found.referrals
    );
    assert!(identities_on(&b).await.is_empty(), "nothing went to B");

    let follow = SearchOptions::new().follow_referrals(3);
    let found = pool
        .search_with(base, Scope::Subtree, filter, &attrs, &follow)
        .await
        .unwrap();
    // A's user4, then B's user4 and user40–49.
    assert_eq!(
        found.entries.len(),
        1 + 11,
        "{:?}",
        found.entries.iter().map(|e| &e.dn).collect::<Vec<_>>()
    );
    assert!(found.referrals.is_empty(), "followed, not returned");
    let on_b = identities_on(&b).await;
    assert_eq!(
        on_b,
        [String::new()],
        "one connection to B, anonymous: B is not configured"
    );
    let referral_conns: Vec<_> = pool
        .connections()
        .into_iter()
        .filter(|c| c.referral)
        .collect();
    assert_eq!(referral_conns.len(), 1, "a referral connection of its own");
    assert_ne!(
        pool.server_url(referral_conns[0].server).as_deref(),
        Some(a.url().as_str()),
        "to B"
    );
    pool.shutdown().await;

    // B configured (a backup of A): the referral connection is bound with
    // the pool's credential.
    let listed = builder()
        .preferred_server(a.url())
        .server(b.url())
        .credential(root)
        .build()
        .unwrap();
    let found = listed
        .search_with(base, Scope::Subtree, filter, &attrs, &follow)
        .await
        .unwrap();
    assert_eq!(found.entries.len(), 12);
    // (The first pool's anonymous connection may take a moment to leave.)
    let root_dn = a.root_dn().to_owned();
    common::eventually_async(
        "B sees one connection, bound as the pool's DN",
        Duration::from_secs(5),
        || {
            let (b, root_dn) = (&b, root_dn.clone());
            async move { identities_on(b).await == [root_dn] }
        },
    )
    .await;
    listed.shutdown().await;
}

/// A referral result (the base is a referral object) is `Error::Ldap` with
/// the URLs by default; a loop between two servers, a hop limit and a URL
/// that is not LDAP each end with a typed error naming the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_loops_hop_limits_and_non_ldap_urls_are_typed_errors() {
    init_tracing();
    let a = slapd(5);
    let b = slapd(5);
    let scratch = Slapd::scratch_base();
    let looped = format!("ou=loop,{scratch}");
    common::add_referral(&a, &looped, &format!("{}/{looped}", b.url())).await;
    common::add_referral(&b, &looped, &format!("{}/{looped}", a.url())).await;
    let web = format!("ou=web,{scratch}");
    common::add_referral(&a, &web, "http://127.0.0.1:1/somewhere").await;
    let pool = builder().server(a.url()).build().unwrap();
    let search = |base: String, options: SearchOptions| {
        let pool = pool.clone();
        async move {
            pool.search_with(&base, Scope::Base, "(objectClass=*)", &["1.1"], &options)
                .await
        }
    };

    let e = search(looped.clone(), SearchOptions::new())
        .await
        .unwrap_err();
    match &e {
        ldapmux::Error::Ldap(s) => {
            assert_eq!(s.rc, 10, "{e}");
            assert_eq!(s.referrals.len(), 1, "{:?}", s.referrals);
            assert!(
                s.referrals[0].starts_with(&format!("{}/{looped}", b.url())),
                "{:?}",
                s.referrals
            );
        }
        other => panic!("{other}"),
    }
    let e = search(looped.clone(), SearchOptions::new().follow_referrals(5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            ldapmux::Error::Referral {
                reason: ReferralError::Loop,
                ..
            }
        ),
        "{e}"
    );
    let e = search(looped.clone(), SearchOptions::new().follow_referrals(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            ldapmux::Error::Referral {
                reason: ReferralError::TooManyHops(1),
                ..
            }
        ),
        "{e}"
    );
    let e = search(web.clone(), SearchOptions::new().follow_referrals(5))
        .await
        .unwrap_err();
    match &e {
        ldapmux::Error::Referral {
            url,
            reason: ReferralError::NotLdap,
        } => {
            assert!(url.starts_with("http://"), "{e}")
        }
        other => panic!("{other}"),
    }
    // Streams and leases give references back; following them is refused.
    let e = pool
        .streaming_search_with(
            scratch,
            Scope::Subtree,
            "(objectClass=*)",
            &[],
            &SearchOptions::new().follow_referrals(1),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ldapmux::Error::InvalidRequest(_)), "{e}");
    // And the pool serves on.
    common::search_user(&pool, 1).await.unwrap();
    pool.shutdown().await;
}
