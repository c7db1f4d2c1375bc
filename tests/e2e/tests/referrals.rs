//! Referrals against real slapd: a `referral` object (RFC 3296) in the
//! scope of a search makes slapd answer a search continuation reference.

mod common;

use std::collections::HashSet;

use common::{builder, init_tracing, slapd};
use futures_util::StreamExt;
use ldapmux::{Credential, Scope};
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
    pool.add(
        &referral,
        vec![
            (
                "objectClass",
                HashSet::from(["referral", "extensibleObject"]),
            ),
            ("ou", HashSet::from(["elsewhere"])),
            ("ref", HashSet::from([target.as_str()])),
        ],
    )
    .await
    .unwrap();
    for page_size in [Some(500), Some(10), None] {
        pool.reload(
            builder()
                .server(server.url())
                .credential(Credential::simple(server.root_dn(), server.root_pw()))
                .page_size(page_size),
        )
        .unwrap();
        let found = pool
            .search(
                "dc=example,dc=com",
                Scope::Subtree,
                "(objectClass=*)",
                &["1.1"],
            )
            .await
            .unwrap();
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
