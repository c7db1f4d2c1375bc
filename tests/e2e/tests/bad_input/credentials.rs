//! Wrong and malformed credentials: typed errors, bounded binds, the server left up.

use super::*;

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
