//! Passwords never appear in Debug, Display, errors or TRACE logs.

use super::*;

/// Binds that succeed and fail, password checks, a reload, refused and
/// timed-out connects, TLS failures, a URL carrying a password: none of the
/// passwords used shows in any `Debug` or `Display` of the pool, builder,
/// credential, errors, status, leases, streams, nor in the TRACE log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_debug_display_errors_or_trace_logs() {
    let capture = capture();
    let good = "Good-7f3a-Secret-of-user5";
    let good2 = "Second-91c4-Secret-of-user7";
    let bad = "Wrong-5d8e-Guess-for-user6";
    let bad_check = "Wrong-b2a7-Guess-in-authenticate";
    let url_secret = "Url-0c6f-Embedded-Secret";
    let tls_secret = "Tls-4e1d-Secret-never-sent";
    let secrets = [good, good2, bad, bad_check, url_secret, tls_secret, ROOT_PW];

    let server = slapd(10);
    set_password(&server, 5, good).await;
    set_password(&server, 7, good2).await;
    let mut shown: Vec<String> = Vec::new();
    let mut show = |what: String| shown.push(what);

    let b = builder()
        .server(server.url())
        .credential(Credential::simple(Slapd::user_dn(5), good));
    show(format!("{b:?}"));
    let pool = b.build().unwrap();
    assert_eq!(pool.whoami().await.unwrap().to_lowercase(), identity(5));
    search_user(&pool, 1).await.unwrap();
    let mut guard = pool.lease(LeaseKind::Read).await.unwrap();
    assert_eq!(guard.whoami().await.unwrap().to_lowercase(), identity(5));
    show(format!("{guard:?}"));
    drop(guard);
    let stream = pool
        .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["uid"])
        .await
        .unwrap();
    show(format!("{stream:?}"));
    drop(stream);

    // A refused credential, twice (the second is held back by the pool).
    let wrong = pool.with_credential(Credential::simple(Slapd::user_dn(6), bad));
    show(format!("{wrong:?}"));
    for _ in 0..2 {
        let e = wrong.whoami().await.unwrap_err();
        assert_eq!(e.conn_error_kind(), Some(ConnErrorKind::InvalidCredentials));
        show(format!("{e} {e:?} {:?}", std::error::Error::source(&e)));
    }
    // Password checks: right, wrong, malformed DN, empty.
    assert!(
        pool.authenticate(&Slapd::user_dn(5), &Password::new(good))
            .await
            .unwrap()
            .is_accepted()
    );
    assert_eq!(
        pool.authenticate(&Slapd::user_dn(5), &Password::new(bad_check))
            .await
            .unwrap(),
        ldapmux::AuthOutcome::InvalidCredentials
    );
    let e = pool
        .authenticate("no DN here", &Password::new(bad_check))
        .await
        .unwrap_err();
    show(format!("{e} {e:?}"));
    let e = pool
        .authenticate(&Slapd::user_dn(5), &Password::new(""))
        .await
        .unwrap_err();
    show(format!("{e} {e:?}"));
    // Writes as the root DN.
    let root = pool.with_credential(Credential::simple(server.root_dn(), server.root_pw()));
    root.modify(
        &Slapd::user_dn(3),
        vec![Mod::Replace("mail", HashSet::from(["x@y"]))],
    )
    .await
    .unwrap();
    show(format!("{root:?}"));

    // A reload to another credential, and refused reloads.
    pool.reload(
        builder()
            .server(server.url())
            .credential(Credential::simple(Slapd::user_dn(7), good2)),
    )
    .unwrap();
    assert_eq!(pool.whoami().await.unwrap().to_lowercase(), identity(7));
    let with_url_secret = format!("ldap://admin:{url_secret}@127.0.0.1:{}", server.port());
    let b = builder()
        .server(with_url_secret.clone())
        .credential(Credential::simple(Slapd::user_dn(7), good2));
    show(format!("{b:?}"));
    let e = pool.reload(b).unwrap_err();
    assert!(
        matches!(&e, BuildError::InvalidUrl { reason, .. } if reason.contains("credentials")),
        "{e:?}"
    );
    show(format!("{e} {e:?}"));
    let e = pool
        .with_server(with_url_secret)
        .whoami()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    show(format!("{e} {e:?}"));
    let e = builder()
        .server(format!("http://admin:{url_secret}@127.0.0.1"))
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::UnsupportedScheme { .. }), "{e:?}");
    show(format!("{e} {e:?}"));
    let e = pool
        .reload(
            builder()
                .server(server.url())
                .credential(Credential::simple(Slapd::user_dn(7), "")),
        )
        .unwrap_err();
    show(format!("{e} {e:?}"));

    // Connection failures with a password configured: refused, silent, TLS.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("ldap://{}", closed.local_addr().unwrap());
    drop(closed);
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("ldap://{}", silent.local_addr().unwrap());
    let ca = TestCa::new("ldapmux-test");
    let tls_server = Slapd::builder()
        .users(10)
        .tls(ca.issue(&["127.0.0.1"]), &ca)
        .start()
        .unwrap();
    for (url, starttls) in [
        (closed_url.as_str(), false),
        (silent_url.as_str(), false),
        (&tls_server.ldaps_url().unwrap(), false),
        (&tls_server.url(), true),
        (&server.url(), true),
    ] {
        let failing = builder()
            .server(url.to_owned())
            .starttls(starttls)
            .credential(Credential::simple(Slapd::user_dn(5), tls_secret))
            .build()
            .unwrap();
        let e = failing.whoami().await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Pool {
                    source: CoreError::ConnectFailed { .. },
                    ..
                }
            ),
            "{url}: {e:?}"
        );
        show(format!("{e} {e:?} {failing:?} {:?}", failing.status()));
        failing.shutdown().await;
    }
    drop(silent);

    show(format!("{pool:?}"));
    show(format!("{:?}", pool.status()));
    show(format!("{:?}", pool.connections()));
    show(format!("{:?}", Credential::simple("cn=x", good)));
    show(format!("{:?} {}", Password::new(good), Password::new(good)));
    pool.shutdown().await;

    let shown = shown.join("\n");
    let logs = capture.text();
    for expected in [
        "connection open and bound",
        "connection failed to open",
        "configuration reloaded",
        "ldapmux.op",
    ] {
        assert!(
            logs.contains(expected),
            "the TRACE log was captured ({expected:?} missing)"
        );
    }
    for secret in secrets {
        assert!(!shown.contains(secret), "{secret} shown in:\n{shown}");
        assert!(!logs.contains(secret), "{secret} logged");
    }
    assert!(shown.contains("<redacted>"), "{shown}");
}
