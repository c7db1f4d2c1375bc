//! TLS that cannot be verified, or is absent: a typed TLS error.

use super::*;

/// ldaps with a CA that did not issue the certificate, a certificate for
/// another name, ldaps to a plain-text port, StartTLS to a server without
/// TLS, and ldaps/StartTLS to a server that is not LDAP: each is a typed
/// TLS error (a timeout for the silent one) within the connect timeout,
/// and users of the good server of the same pool are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_that_cannot_be_verified_or_is_absent_is_a_typed_tls_error() {
    init_tracing();
    let ca = TestCa::new("ldapmux-test");
    let other_ca = TestCa::new("someone-else");
    let tls = Slapd::builder()
        .users(10)
        .tls(ca.issue(&["127.0.0.1"]), &ca)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let for_localhost = Slapd::builder()
        .users(10)
        .tls(ca.issue(&["localhost"]), &ca)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let plain = slapd(10);
    // The good server has a certificate from a third CA that every pool
    // below also trusts, for ldaps and StartTLS alike.
    let good_ca = TestCa::new("good");
    let good = Slapd::builder()
        .users(20)
        .tls(good_ca.issue(&["127.0.0.1"]), &good_ca)
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tls.dir().to_owned();
    let both = |first: &TestCa, name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{}{}", first.ca_pem(), good_ca.ca_pem())).unwrap();
        path
    };
    let (ca_file, other_file) = (both(&ca, "right.pem"), both(&other_ca, "wrong.pem"));
    let http = FakeServer::start(Fake::Says("HTTP/1.1 400 Bad Request\r\n\r\n")).await;
    let silent = FakeServer::start(Fake::Silent).await;

    struct Case {
        what: &'static str,
        url: String,
        starttls: bool,
        ca: std::path::PathBuf,
        kind: ConnErrorKind,
        says: &'static str,
    }
    let cases = [
        Case {
            what: "ldaps with a CA that did not issue the certificate",
            url: tls.ldaps_url().unwrap(),
            starttls: false,
            ca: other_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "UnknownIssuer",
        },
        Case {
            what: "StartTLS with a CA that did not issue the certificate",
            url: tls.url(),
            starttls: true,
            ca: other_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "UnknownIssuer",
        },
        Case {
            what: "ldaps to 127.0.0.1 with a certificate for localhost",
            url: for_localhost.ldaps_url().unwrap(),
            starttls: false,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "not valid for name",
        },
        Case {
            what: "StartTLS to 127.0.0.1 with a certificate for localhost",
            url: for_localhost.url(),
            starttls: true,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "not valid for name",
        },
        Case {
            what: "ldaps to a plain-text LDAP port",
            url: plain.url().replace("ldap://", "ldaps://"),
            starttls: false,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "TLS",
        },
        Case {
            what: "StartTLS to a server without TLS",
            url: plain.url(),
            starttls: true,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "StartTLS refused",
        },
        Case {
            what: "ldaps to an HTTP server",
            url: http.url("ldaps"),
            starttls: false,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "TLS",
        },
        Case {
            what: "StartTLS to an HTTP server",
            url: http.url("ldap"),
            starttls: true,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Tls,
            says: "StartTLS",
        },
        Case {
            what: "ldaps to a server that never answers",
            url: silent.url("ldaps"),
            starttls: false,
            ca: ca_file.clone(),
            kind: ConnErrorKind::Timeout,
            says: "Timeout: ",
        },
    ];
    for case in cases {
        let what = case.what;
        let good_url = if case.starttls {
            good.url()
        } else {
            good.ldaps_url().unwrap()
        };
        let pool = builder()
            .preferred_server(case.url.clone())
            .server(good_url.clone())
            .starttls(case.starttls)
            .tls_ca_file(&case.ca)
            .credential(Credential::simple(
                Slapd::user_dn(1),
                Slapd::user_password(1),
            ))
            .build()
            .unwrap();
        let on_good = pool.with_server(good_url);
        search_user(&on_good, 0).await.unwrap();
        let load = Load::start(&on_good, 2, 20);
        let err = within(
            what,
            CONNECT_TIMEOUT + SLACK,
            search_user(&pool.with_server(case.url.clone()), 1),
        )
        .await
        .unwrap_err();
        eprintln!("{what}: {err}");
        assert_pool_error(&err, case.kind, what);
        assert!(err.to_string().contains(case.says), "{what}: {err}");
        load.wait_ok(20, Duration::from_secs(10)).await;
        let tally = load.stop().await;
        assert_eq!(
            tally.failed(),
            0,
            "{what}: users of the good server were served: {:?}",
            tally.first_errors()
        );
        pool.shutdown().await;
    }
    // Nothing reached slapd's plain-text side as a bind.
    for server in [&tls, &for_localhost, &plain] {
        assert_eq!(ops_initiated(server, "Bind").await, 0, "no bind was sent");
    }
}
