//! TLS end to end against slapd with a test CA: ldaps and StartTLS work with
//! the CA; a wrong CA, a wrong host name, the default roots (which do not
//! know the test CA) and a refused StartTLS are typed TLS errors, never a
//! plain-text fallback.

mod common;

use common::*;
use ldapmux::{ConnErrorKind, Credential, Error};
use ldapmux_harness::{Slapd, TestCa};

fn tls_server(ca: &TestCa, sans: &[&str]) -> Slapd {
    Slapd::builder()
        .users(10)
        .tls(ca.issue(sans), ca)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd with TLS: {e}"))
}

fn assert_tls_error(result: Result<(), Error>, what: &str) {
    match result {
        Err(e) => assert_eq!(
            e.conn_error_kind(),
            Some(ConnErrorKind::Tls),
            "{what}: a TLS error, got {e}"
        ),
        Ok(()) => panic!("{what}: the search succeeded"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldaps_and_starttls_verify_the_server_with_the_configured_ca() {
    init_tracing();
    let ca = TestCa::new("ldapmux-test");
    let server = tls_server(&ca, &["127.0.0.1"]);
    let ca_file = ca.write_ca_file(server.dir());

    let ldaps = builder()
        .server(server.ldaps_url().unwrap())
        .tls_ca_file(&ca_file)
        .build()
        .unwrap();
    search_user(&ldaps, 1).await.unwrap();
    // A bound pool over TLS: the password travels encrypted; WhoAmI proves the bind.
    let bound = ldaps.with_credential(Credential::simple(
        Slapd::user_dn(3),
        Slapd::user_password(3),
    ));
    assert_eq!(
        bound.whoami().await.unwrap().to_lowercase(),
        format!("dn:{}", Slapd::user_dn(3).to_lowercase())
    );

    let starttls = builder()
        .server(server.url())
        .starttls(true)
        .tls_ca_file(&ca_file)
        .build()
        .unwrap();
    search_user(&starttls, 2).await.unwrap();
    ldaps.shutdown().await;
    starttls.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_a_wrong_host_name_or_default_roots_give_a_typed_certificate_error() {
    init_tracing();
    let ca = TestCa::new("ldapmux-test");
    let other_ca = TestCa::new("someone-else");
    let server = tls_server(&ca, &["127.0.0.1"]);
    let wrong_name = tls_server(&ca, &["ldap.example.invalid"]);
    let dir = server.dir().to_owned();
    let (ca_file, other_file) = (ca.write_ca_file(&dir), other_ca.write_ca_file(&dir));

    let pool = builder()
        .server(server.ldaps_url().unwrap())
        .tls_ca_file(&other_file)
        .build()
        .unwrap();
    assert_tls_error(search_user(&pool, 1).await, "ldaps with the wrong CA");
    let pool = builder()
        .server(server.url())
        .starttls(true)
        .tls_ca_file(&other_file)
        .build()
        .unwrap();
    assert_tls_error(search_user(&pool, 1).await, "StartTLS with the wrong CA");
    let pool = builder()
        .server(wrong_name.ldaps_url().unwrap())
        .tls_ca_file(&ca_file)
        .build()
        .unwrap();
    assert_tls_error(
        search_user(&pool, 1).await,
        "a certificate for another host name",
    );
    // Verification is on by default: the system roots do not know the test CA.
    let pool = builder()
        .server(server.ldaps_url().unwrap())
        .build()
        .unwrap();
    assert_tls_error(
        search_user(&pool, 1).await,
        "default settings against a private CA",
    );
    // Only an explicit opt-out accepts it.
    let pool = builder()
        .server(server.ldaps_url().unwrap())
        .danger_tls_verify(false)
        .build()
        .unwrap();
    search_user(&pool, 1).await.unwrap();
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_starttls_is_an_error_never_plain_text() {
    init_tracing();
    let plain = slapd(10); // no TLS configured: slapd refuses StartTLS
    let ca = TestCa::new("ldapmux-test");
    let ca_file = ca.write_ca_file(plain.dir());
    let pool = builder()
        .server(plain.url())
        .starttls(true)
        .tls_ca_file(&ca_file)
        .credential(Credential::simple(
            Slapd::user_dn(1),
            Slapd::user_password(1),
        ))
        .build()
        .unwrap();
    assert_tls_error(
        search_user(&pool, 1).await,
        "StartTLS refused by the server",
    );
    // The bind (with its password) was never sent in clear: slapd saw no bound connection.
    let seen = plain.monitor_connections().await.unwrap();
    assert!(seen.iter().all(|c| c.authz_dn.is_empty()), "{seen:?}");
    pool.shutdown().await;
}
