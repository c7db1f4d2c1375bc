//! Bad input end to end: malformed server lists and URLs, unknown schemes,
//! wrong bind credentials, invalid filters and DNs, oversized results, a
//! server that does not speak LDAP, and TLS that cannot be verified or is
//! not there. Each gives a typed error naming its cause, within its
//! timeout, and the same pool keeps serving other users.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use ldapmux::{BuildError, ConnErrorKind, Credential, Error, Password, Scope};
use ldapmux::{ConfigError, PoolError as CoreError};
use ldapmux_harness::{Slapd, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The connect timeout of [`common::builder`].
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack for a loaded 2-core machine on top of a timeout.
const SLACK: Duration = Duration::from_secs(2);

/// Runs `f`, asserting it ends within `within`; returns its output.
async fn within<T>(what: &str, within: Duration, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = tokio::time::timeout(within, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not end within {within:?}"));
    assert!(
        start.elapsed() <= within,
        "{what}: took {:?}",
        start.elapsed()
    );
    out
}

fn assert_pool_error(e: &Error, kind: ConnErrorKind, what: &str) {
    assert!(
        matches!(e, Error::Pool { source: CoreError::ConnectFailed { cause, .. }, .. } if cause.kind == kind),
        "{what}: expected ConnectFailed with {kind:?}, got {e:?}"
    );
    assert_eq!(e.conn_error_kind(), Some(kind), "{what}: {e}");
    // The message names the server by its URL, never by the core's id.
    let Error::Pool {
        server: Some(url), ..
    } = e
    else {
        panic!("{what}: no server URL in {e:?}");
    };
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("could not connect to {url}")),
        "{what}: {shown}"
    );
    assert!(!shown.contains(" s0"), "{what}: {shown}");
}

// ----------------------------------------------------------------------
// Server lists and URLs
// ----------------------------------------------------------------------

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

// ----------------------------------------------------------------------
// Wrong credentials
// ----------------------------------------------------------------------

/// 40 callers hammer the server with a wrong password for 2 s while another
/// user of the same pool searches. The callers get `InvalidCredentials`
/// (each within the connect timeout), the server is not marked down, the
/// other user never fails, and slapd sees at most one bind attempt per
/// backoff period for the wrong credential, not one per caller or call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_give_a_typed_error_and_at_most_one_bind_per_backoff_period() {
    init_tracing();
    let server = slapd(20);
    let backoff = Duration::from_millis(250);
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(
            Slapd::user_dn(1),
            Slapd::user_password(1),
        ))
        .probe_backoff(backoff, Duration::from_secs(1))
        .build()
        .unwrap();
    // The good user's connection exists before the storm (1 bind).
    search_user(&pool, 1).await.unwrap();
    let wrong = pool.with_credential(Credential::simple(
        Slapd::user_dn(2),
        "Wrong-Password-for-user2",
    ));
    let binds_before = ops_initiated(&server, "Bind").await;
    let good = Load::start(&pool, 4, 20);

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let window = Duration::from_secs(2);
    let started = Instant::now();
    let callers: Vec<_> = (0..40)
        .map(|_| {
            let (wrong, stop, calls) = (wrong.clone(), stop.clone(), calls.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let err = within(
                        "a whoami with a wrong password",
                        CONNECT_TIMEOUT + SLACK,
                        wrong.whoami(),
                    )
                    .await
                    .unwrap_err();
                    assert!(
                        matches!(
                            err,
                            Error::Pool {
                                source: CoreError::InvalidCredentials { .. },
                                ..
                            }
                        ),
                        "{err:?}"
                    );
                    assert_eq!(
                        err.conn_error_kind(),
                        Some(ConnErrorKind::InvalidCredentials)
                    );
                    assert!(err.to_string().contains("rejected the credential"), "{err}");
                    calls.fetch_add(1, Ordering::SeqCst);
                    // Yield so that 40 callers on 2 threads share them fairly.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();
    // A right password for the same DN still works during the storm: it is
    // another credential, with its own connection.
    let right = pool.with_credential(Credential::simple(
        Slapd::user_dn(2),
        Slapd::user_password(2),
    ));
    assert_eq!(
        right.whoami().await.unwrap().to_lowercase(),
        format!("dn:{}", Slapd::user_dn(2).to_lowercase())
    );
    let tally = good.stop().await;
    let binds = ops_initiated(&server, "Bind").await - binds_before - 1; // minus `right`'s bind
    let calls = calls.load(Ordering::SeqCst);
    let allowed = 1 + elapsed.as_millis() as u64 / backoff.as_millis() as u64;
    eprintln!("{binds} binds for {calls} calls in {elapsed:?} (allowed {allowed})");
    assert!(
        binds >= 1,
        "the wrong password was tried on the server at least once"
    );
    assert!(
        binds <= allowed,
        "{binds} bind attempts in {elapsed:?} with a backoff of {backoff:?} (at most {allowed}); {calls} calls"
    );
    assert!(
        calls >= 40,
        "every caller got its answer at least once ({calls} calls)"
    );
    assert_eq!(
        tally.failed(),
        0,
        "the other user was served: {:?}",
        tally.first_errors()
    );
    assert!(tally.ok() > 0);
    assert!(
        !is_down(&pool, &server.url()),
        "a refused credential says nothing about the server"
    );
    pool.shutdown().await;
}

/// A bind DN that is not a DN (the server answers invalidDNSyntax) is a
/// credential problem: the caller gets `InvalidCredentials`, the server is
/// not marked down, and the other users' connections are not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_bind_dn_is_a_credential_error_that_leaves_the_server_up() {
    init_tracing();
    let server = slapd(10);
    let pool = builder().server(server.url()).build().unwrap();
    let mut held = pool.lease(ldapmux::LeaseKind::Read).await.unwrap();
    let before = server.monitor_connections().await.unwrap();
    assert_eq!(before.len(), 1);

    let err = within(
        "a whoami bound with a malformed DN",
        CONNECT_TIMEOUT + SLACK,
        pool.with_credential(Credential::simple("this is not a DN", "pw"))
            .whoami(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Pool {
                source: CoreError::InvalidCredentials { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        !is_down(&pool, &server.url()),
        "the server answered: it is up"
    );
    // The held lease's connection survived, and new users are served on it.
    assert_eq!(held.whoami().await.unwrap(), "");
    search_user(&pool, 3).await.unwrap();
    assert_eq!(pool.status().conns, 1, "the pool kept its one connection");
    // The server's view: the refused connection's socket is closed in the
    // background, so slapd may list it for a moment; within a bounded wait
    // only the first connection is left, never a new one.
    let numbers =
        |list: &[ldapmux_harness::MonitorConn]| list.iter().map(|c| c.number).collect::<Vec<_>>();
    let mut after = server.monitor_connections().await.unwrap();
    for _ in 0..40 {
        if numbers(&after) == numbers(&before) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = server.monitor_connections().await.unwrap();
    }
    assert_eq!(
        numbers(&after),
        numbers(&before),
        "the same single connection serves on"
    );
    // A password check with a malformed DN: a typed LDAP result, not "wrong password".
    let err = pool
        .authenticate("this is not a DN", &Password::new("pw"))
        .await
        .unwrap_err();
    assert_eq!(err.rc(), Some(34), "invalidDNSyntax: {err}");
    assert!(err.to_string().contains("invalidDNSyntax"), "{err}");
    drop(held);
    pool.shutdown().await;
}

// ----------------------------------------------------------------------
// Filters, DNs, sizes
// ----------------------------------------------------------------------

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

// ----------------------------------------------------------------------
// A server that is not an LDAP server
// ----------------------------------------------------------------------

/// What a fake server does with each connection it accepts.
#[derive(Clone, Copy, Debug)]
enum Fake {
    /// Writes these bytes (an HTTP answer, say) and closes.
    Says(&'static str),
    /// Writes `n` bytes of noise (a fixed pseudo-random sequence), then
    /// keeps the connection open and silent.
    Noise(usize),
    /// Reads and never answers.
    Silent,
    /// Closes at once.
    Hangs,
}

/// A loopback TCP server that is not an LDAP server. Dropping it stops the
/// listener and every connection it holds.
struct FakeServer {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    async fn start(fake: Fake) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                conns.spawn(async move {
                    match fake {
                        Fake::Says(bytes) => {
                            let _ = sock.write_all(bytes.as_bytes()).await;
                            let _ = sock.shutdown().await;
                        }
                        Fake::Noise(n) => {
                            let mut x = 0x9e37_79b9_u32;
                            let noise: Vec<u8> = (0..n)
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 17;
                                    x ^= x << 5;
                                    x as u8
                                })
                                .collect();
                            let _ = sock.write_all(&noise).await;
                            let mut sink = [0u8; 1024];
                            while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
                        }
                        Fake::Silent => {
                            let mut sink = [0u8; 1024];
                            while matches!(sock.read(&mut sink).await, Ok(n) if n > 0) {}
                        }
                        Fake::Hangs => drop(sock),
                    }
                });
            }
        });
        FakeServer {
            addr,
            accepted,
            task,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Four servers that are not LDAP servers, each preferred over a real
/// slapd in its pool: a pinned operation gets `ConnectFailed` with the
/// cause within the connect timeout; unpinned operations fail over to
/// slapd; and users pinned to slapd are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_speak_ldap_gives_a_typed_error_within_the_connect_timeout() {
    init_tracing();
    let good = slapd(20);
    for (fake, kind, says) in [
        (
            Fake::Says("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            ConnErrorKind::Io,
            "",
        ),
        (Fake::Noise(64 * 1024), ConnErrorKind::Io, "decoding error"),
        (Fake::Hangs, ConnErrorKind::Io, ""),
        (Fake::Silent, ConnErrorKind::Timeout, "Timeout: "),
    ] {
        let bogus = FakeServer::start(fake).await;
        let pool = builder()
            .preferred_server(bogus.url("ldap"))
            .server(good.url())
            .build()
            .unwrap();
        let on_good = pool.with_server(good.url());
        search_user(&on_good, 0).await.unwrap();
        let load = Load::start(&on_good, 2, 20);

        let err = within(
            &format!("{fake:?}: a search pinned to it"),
            CONNECT_TIMEOUT + SLACK,
            search_user(&pool.with_server(bogus.url("ldap")), 1),
        )
        .await
        .unwrap_err();
        eprintln!("{fake:?}: {err}");
        assert_pool_error(&err, kind, &format!("{fake:?}"));
        assert!(
            err.to_string().contains(says),
            "{fake:?}: names the cause: {err}"
        );
        assert!(bogus.accepted.load(Ordering::SeqCst) >= 1, "{fake:?}");
        // The bogus server is down for the pool; unpinned users go to slapd.
        assert!(is_down(&pool, &bogus.url("ldap")), "{fake:?}");
        within(
            "an unpinned search after the bogus server failed",
            CONNECT_TIMEOUT + SLACK,
            search_user(&pool, 2),
        )
        .await
        .unwrap();
        load.wait_ok(20, Duration::from_secs(10)).await;
        let tally = load.stop().await;
        assert_eq!(
            tally.failed(),
            0,
            "{fake:?}: users of slapd were served: {:?}",
            tally.first_errors()
        );
        pool.shutdown().await;
    }
}

// ----------------------------------------------------------------------
// TLS
// ----------------------------------------------------------------------

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
