//! Server lists and URLs: build errors naming the URL, and a malformed URL at run time.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_malformed_server_lists_and_urls_are_build_errors_naming_the_url() {
    init_tracing();
    // No server at all.
    let err = builder().build().unwrap_err();
    assert!(
        matches!(err, BuildError::Core(ConfigError::NoServers)),
        "{err:?}"
    );
    assert!(err.to_string().contains("no server"), "{err}");

    // Malformed URLs: InvalidUrl naming the URL and the reason.
    for (url, reason) in [
        ("", "empty"),
        ("   ", "empty"),
        ("127.0.0.1:389", "relative URL"),
        ("ldap//127.0.0.1:389", "relative URL"),
        ("ldap://", "no host"),
        ("ldap://:389", "host"),
        ("ldap://127.0.0.1:99999", "port"),
        ("ldap://[::1:389", "IPv6"),
        ("ldap://127.0.0.1:389/dc=example,dc=com", "DN"),
        ("ldap://127.0.0.1:389/??sub?(uid=x)", "DN"),
        ("ldapi://%2Ftmp%2Fs:389", "no port"),
    ] {
        let err = builder().server(url).build().unwrap_err();
        let BuildError::InvalidUrl {
            url: named,
            reason: why,
        } = &err
        else {
            panic!("{url:?}: expected InvalidUrl, got {err:?}");
        };
        assert_eq!(named, url, "the error carries the URL as given");
        assert!(why.contains(reason), "{url:?}: reason {why:?}");
        let shown = err.to_string();
        assert!(shown.contains(&format!("{url:?}")), "{url:?}: {shown}");
        assert!(shown.contains("invalid server URL"), "{shown}");
    }

    // Unknown schemes: UnsupportedScheme naming scheme and URL.
    for (url, scheme) in [
        ("http://127.0.0.1:389", "http"),
        ("ldapx://127.0.0.1:389", "ldapx"),
        ("cldap://127.0.0.1:389", "cldap"),
        ("localhost:389", "localhost"),
        ("file:///etc/passwd", "file"),
    ] {
        let err = builder().server(url).build().unwrap_err();
        assert!(
            matches!(&err, BuildError::UnsupportedScheme { url: u, scheme: s } if u == url && s == scheme),
            "{url:?}: {err:?}"
        );
        let shown = err.to_string();
        assert!(
            shown.contains(url) && shown.contains("ldap://, ldaps:// or ldapi://"),
            "{shown}"
        );
    }

    // One bad URL in an otherwise good list rejects the whole list.
    let err = builder()
        .preferred_server("ldap://127.0.0.1:3891")
        .server("ldap://127.0.0.1:3892")
        .server("ftp://127.0.0.1:21")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::UnsupportedScheme { url, .. } if url == "ftp://127.0.0.1:21"),
        "{err:?}"
    );
    // The same server twice (case-insensitive).
    let err = builder()
        .server("ldap://127.0.0.1:3891")
        .server("LDAP://127.0.0.1:3891")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::Core(ConfigError::DuplicateServer { addr }) if addr == "LDAP://127.0.0.1:3891"),
        "{err:?}"
    );
    assert!(err.to_string().contains("listed twice"), "{err}");

    // Other fields name themselves.
    let err = builder()
        .server("ldap://127.0.0.1:3891")
        .credential(Credential::simple("  ", "pw"))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            BuildError::InvalidField {
                field: "credential",
                ..
            }
        ),
        "{err:?}"
    );
    let err = builder()
        .server("ldap://127.0.0.1:3891")
        .credential(Credential::simple("cn=reader,dc=example,dc=com", ""))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::InvalidField { field: "credential", reason } if reason.contains("empty password")),
        "{err:?}"
    );
    let err = builder()
        .server("ldap://127.0.0.1:3891")
        .max_users_per_connection(0)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            &err,
            BuildError::Core(ConfigError::ZeroLimit {
                field: "max_users_per_conn"
            })
        ),
        "{err:?}"
    );
    let err = builder()
        .server("ldap://127.0.0.1:3891")
        .probe_backoff(Duration::from_secs(2), Duration::from_secs(1))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::Core(ConfigError::BackoffRange)),
        "{err:?}"
    );
    let err = builder()
        .server("ldaps://127.0.0.1:3891")
        .tls_ca_file("/nonexistent/ldapmux-ca.pem")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::CaFile { path, .. } if path.ends_with("ldapmux-ca.pem")),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/ldapmux-ca.pem"));
}

/// A pinned server URL that does not parse and a reload with a malformed
/// list are refused naming the URL; the same pool keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_at_run_time_is_refused_and_the_pool_keeps_serving() {
    init_tracing();
    let server = slapd(10);
    let pool = builder().server(server.url()).build().unwrap();
    search_user(&pool, 1).await.unwrap();

    for url in ["not a url", "http://127.0.0.1:389", "ldap://"] {
        let err = within(
            "a search pinned to a malformed URL",
            Duration::from_secs(1),
            pool.with_server(url).whoami(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidRequest(m) if m.contains(&format!("{url:?}"))),
            "{url:?}: {err:?}"
        );
    }
    let err = pool
        .reload(
            builder()
                .server(server.url())
                .server("gopher://127.0.0.1:70"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, BuildError::UnsupportedScheme { scheme, .. } if scheme == "gopher"),
        "{err:?}"
    );
    let err = pool.reload(builder()).unwrap_err();
    assert!(
        matches!(err, BuildError::Core(ConfigError::NoServers)),
        "{err:?}"
    );
    // The refused reloads changed nothing: same generation, same server, same connection.
    let status = pool.status();
    assert_eq!(status.servers.len(), 1, "{status:?}");
    search_user(&pool, 2).await.unwrap();
    assert_eq!(
        pool.status().counters.opens,
        1,
        "the first connection serves on"
    );
    pool.shutdown().await;
}
