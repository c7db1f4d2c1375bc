//! Writes and ordinary results end to end: LDAP results are results (the
//! server stays up), and a write whose connection dies after it was sent
//! returns "outcome unknown" and is never retried.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ldapmux::{Credential, Error, LeaseKind, Mod, Scope};
use ldapmux_harness::{FaultProxy, ProxyMode, Slapd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_round_trip_and_ordinary_results_never_mark_the_server_down() {
    init_tracing();
    let server = slapd(600);
    let admin = Credential::simple(server.root_dn(), server.root_pw());
    let pool = builder()
        .server(server.url())
        .credential(admin)
        .build()
        .unwrap();
    let dn = format!("cn=alice,{}", Slapd::scratch_base());
    pool.add(&dn, person("alice")).await.unwrap();
    pool.modify(&dn, vec![Mod::Replace("sn", HashSet::from(["Liddell"]))])
        .await
        .unwrap();
    assert!(pool.compare(&dn, "sn", "Liddell").await.unwrap());
    assert!(!pool.compare(&dn, "sn", "Smith").await.unwrap());
    pool.modify_dn(&dn, "cn=alice2", true, None).await.unwrap();
    let moved = format!("cn=alice2,{}", Slapd::scratch_base());
    assert_eq!(
        server
            .count_entries(&moved, "(objectClass=*)")
            .await
            .unwrap(),
        1
    );

    // Ordinary results: typed, and nothing is marked down.
    let exists = pool.add(&moved, person("alice2")).await.unwrap_err();
    assert_eq!(exists.rc(), Some(68), "entryAlreadyExists: {exists}");
    let missing = pool
        .delete(&format!("cn=nobody,{}", Slapd::scratch_base()))
        .await
        .unwrap_err();
    assert_eq!(missing.rc(), Some(32), "noSuchObject: {missing}");
    let missing = pool
        .search(
            "ou=nowhere,dc=example,dc=com",
            Scope::Base,
            "(objectClass=*)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(missing.rc(), Some(32));
    let bad_filter = pool
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(bad_filter, Error::InvalidRequest(_)),
        "{bad_filter}"
    );
    let anonymous = pool.with_credential(Credential::Anonymous);
    let too_many = anonymous
        .search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap_err();
    assert_eq!(
        too_many.rc(),
        Some(4),
        "sizeLimitExceeded for an anonymous search of 600 users: {too_many}"
    );
    pool.delete(&moved).await.unwrap();
    assert_eq!(
        server
            .count_entries(&moved, "(objectClass=*)")
            .await
            .unwrap(),
        0
    );

    let status = pool.status();
    assert!(
        status.servers.iter().all(|s| s.counters.marked_down == 0),
        "{:?}",
        status.servers
    );
    assert_eq!(status.counters.lost, 0);
    assert_eq!(status.counters.open_failures, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_after_send_is_outcome_unknown_and_never_retried() {
    init_tracing();
    let server = slapd(10);
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let admin = Credential::simple(server.root_dn(), server.root_pw());
    let pool = builder()
        .server(proxy.url())
        .credential(admin)
        .build()
        .unwrap();
    // Warm a write connection so the cut hits the add itself, not the bind.
    let mut warm = pool.lease(LeaseKind::Write).await.unwrap();
    assert!(
        warm.whoami()
            .await
            .unwrap()
            .to_lowercase()
            .contains("cn=admin")
    );
    drop(warm);
    let dn = format!("cn=once,{}", Slapd::scratch_base());
    proxy.set_mode(ProxyMode::CutAfterRequest);
    let accepted_before = proxy.accepted();
    let err = pool.add(&dn, person("once")).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutcomeUnknown {
                operation: "add",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        proxy.accepted(),
        accepted_before,
        "no new connection: the add was not retried"
    );
    assert_eq!(
        server.count_entries(&dn, "(objectClass=*)").await.unwrap(),
        1,
        "the server applied it exactly once"
    );
    // The pool carries on.
    let again = format!("cn=twice,{}", Slapd::scratch_base());
    pool.add(&again, person("twice")).await.unwrap();
    assert_eq!(
        server
            .count_entries(&again, "(objectClass=*)")
            .await
            .unwrap(),
        1
    );
    pool.shutdown().await;
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
}
