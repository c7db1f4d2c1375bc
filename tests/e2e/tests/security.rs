//! Security end to end: passwords never show (Debug, Display, errors,
//! TRACE-level logs); a user never gets a connection bound as someone else,
//! under concurrency and reloads; a password check's private connection is
//! never reused; TLS is verified by default; a failed StartTLS never falls
//! back to plain text (checked on the wire and on slapd's counters).
//!
//! Every test of this binary logs at TRACE level into one in-memory buffer
//! (a process-wide subscriber), so the secrets test also checks what the
//! others logged.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ldapmux::PoolError as CoreError;
use ldapmux::{BuildError, ConnErrorKind, Credential, Error, LeaseKind, Mod, Password, Scope};
use ldapmux_harness::{ROOT_PW, Slapd, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ----------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------

/// The process-wide TRACE subscriber writing into memory (installed once).
fn capture() -> &'static Capture {
    Capture::trace()
}

/// Sets user `i`'s password (as the root DN, on a connection of its own).
async fn set_password(server: &Slapd, i: usize, password: &str) {
    let admin = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    admin
        .modify(
            &Slapd::user_dn(i),
            vec![Mod::Replace(
                "userPassword".to_owned(),
                HashSet::from([password.to_owned()]),
            )],
        )
        .await
        .unwrap();
    admin.shutdown().await;
}

fn identity(i: usize) -> String {
    format!("dn:{}", Slapd::user_dn(i).to_lowercase())
}

// ----------------------------------------------------------------------
// Secrets
// ----------------------------------------------------------------------

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

// ----------------------------------------------------------------------
// Credential isolation
// ----------------------------------------------------------------------

/// Six identities (four users, anonymous, and the pool's default credential
/// that a reload switches back and forth) plus a wrong password for a user
/// that is also in use with the right one, 4 tasks each, for 2 s: every
/// WhoAmI (through the pool and through a lease) names the caller's own
/// identity, the wrong password never succeeds, and a call started after a
/// reload returned sees the new default identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_never_gets_a_connection_bound_as_someone_else() {
    capture();
    let server = slapd(12);
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(
            Slapd::user_dn(8),
            Slapd::user_password(8),
        ))
        .max_users_per_connection(3)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Reloads begun and finished: a call that starts after `done` = k and
    // ends before `begun` = m may see the default of any reload k..=m.
    let begun = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let default_of = |reloads: u64| if reloads.is_multiple_of(2) { 8 } else { 9 };
    let checks = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    // (handle, expected identity: Some(user) / None anonymous / default).
    enum Who {
        User(usize),
        Anonymous,
        Default,
        Wrong,
    }
    let mut handles: Vec<(ldapmux::Pool, Who)> = (0..4)
        .map(|i| {
            (
                pool.with_credential(Credential::simple(
                    Slapd::user_dn(i),
                    Slapd::user_password(i),
                )),
                Who::User(i),
            )
        })
        .collect();
    handles.push((pool.with_credential(Credential::Anonymous), Who::Anonymous));
    handles.push((pool.clone(), Who::Default));
    handles.push((
        pool.with_credential(Credential::simple(Slapd::user_dn(0), "not-user0s-password")),
        Who::Wrong,
    ));
    let handles = Arc::new(handles);
    for h in 0..handles.len() {
        for t in 0..4 {
            let (handles, stop, begun, done, checks) = (
                handles.clone(),
                stop.clone(),
                begun.clone(),
                done.clone(),
                checks.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let (handle, who) = &handles[h];
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let from = done.load(Ordering::SeqCst);
                    let got = if (n + t).is_multiple_of(3) {
                        match handle.lease(LeaseKind::Read).await {
                            Ok(mut g) => g.whoami().await,
                            Err(e) => Err(e),
                        }
                    } else {
                        handle.whoami().await
                    };
                    let to = begun.load(Ordering::SeqCst);
                    match (who, got) {
                        (Who::User(i), Ok(id)) => assert_eq!(id.to_lowercase(), identity(*i)),
                        (Who::Anonymous, Ok(id)) => assert_eq!(id, ""),
                        (Who::Default, Ok(id)) => {
                            let id = id.to_lowercase();
                            assert!(
                                (from..=to).any(|r| id == identity(default_of(r))),
                                "{id} for a call between reloads {from} and {to}"
                            );
                        }
                        (Who::Wrong, Err(e)) => assert!(
                            matches!(
                                e,
                                Error::Pool {
                                    source: CoreError::InvalidCredentials { .. },
                                    ..
                                }
                            ),
                            "{e:?}"
                        ),
                        (Who::Wrong, Ok(id)) => {
                            panic!("a wrong password got a connection bound as {id}")
                        }
                        (_, Err(e)) => panic!("unexpected error: {e:?}"),
                    }
                    checks.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    // Reload the default credential back and forth while they run.
    for r in 1..=6u64 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        begun.store(r, Ordering::SeqCst);
        pool.reload(
            builder()
                .server(server.url())
                .credential(Credential::simple(
                    Slapd::user_dn(default_of(r)),
                    Slapd::user_password(default_of(r)),
                ))
                .max_users_per_connection(3),
        )
        .unwrap();
        done.store(r, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a task hung")
            .unwrap();
    }
    assert!(
        checks.load(Ordering::SeqCst) > 500,
        "enough calls were checked"
    );
    // slapd agrees: every open connection is bound as one of the identities.
    let allowed: HashSet<String> = [0, 1, 2, 3, 8, 9]
        .iter()
        .map(|&i| Slapd::user_dn(i).to_lowercase())
        .chain([String::new()])
        .collect();
    let seen = server.monitor_connections().await.unwrap();
    assert!(
        seen.iter()
            .all(|c| allowed.contains(&c.authz_dn.to_lowercase())),
        "{seen:?}"
    );
    pool.shutdown().await;
}

// ----------------------------------------------------------------------
// Private AUTH connections
// ----------------------------------------------------------------------

/// With bind connections off (`bind_connections_per_server(0)`, the
/// seed's rule): 40 password checks (right and wrong, 10 at a time) while 4
/// tasks search on the same pool: slapd accepted exactly 40 new connections
/// and saw exactly 40 binds (one per connection: each check had its own,
/// fresh connection), all 40 are closed afterwards, and every search ran on
/// the one shared connection, which is still anonymous (no check's bind
/// ever landed on it). With them on, see `bind_reuse.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_reuse_off_gives_each_check_a_connection_never_reused_nor_shared() {
    capture();
    let server = slapd(20);
    // Spreading off: the 4 searching tasks keep to one shared connection, so
    // every connection slapd accepts during the checks is a check's own.
    let pool = builder()
        .server(server.url())
        .spread_connections_per_server(1)
        .bind_connections_per_server(0)
        .build()
        .unwrap();
    search_user(&pool, 0).await.unwrap();
    let shared = server.monitor_connections().await.unwrap();
    assert_eq!(shared.len(), 1);
    let binds_before = ops_initiated(&server, "Bind").await;
    let opens_before = pool.status().counters.opens;

    let (load, accepted) = connections_opened_during(&server, async {
        let load = Load::start(&pool, 4, 20);
        for round in 0..4 {
            let checks: Vec<_> = (0..10)
                .map(|i| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let pw = if (i + round) % 2 == 0 {
                            Slapd::user_password(i)
                        } else {
                            format!("wrong-{i}")
                        };
                        let ok = pool
                            .authenticate(&Slapd::user_dn(i), &Password::new(pw))
                            .await
                            .unwrap();
                        assert_eq!(ok.is_accepted(), (i + round) % 2 == 0);
                    })
                })
                .collect();
            for c in checks {
                c.await.unwrap();
            }
        }
        load.wait_ok(50, Duration::from_secs(10)).await;
        load.stop().await
    })
    .await;
    assert_eq!(load.failed(), 0, "{:?}", load.first_errors());
    let binds = ops_initiated(&server, "Bind").await - binds_before;
    assert_eq!(
        pool.status().counters.opens - opens_before,
        40,
        "one connection per check, and no new shared one"
    );
    assert_eq!(accepted, 40, "slapd accepted one connection per check");
    assert_eq!(binds, 40, "and saw one bind per check: none reused");
    server
        .wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();
    let after = server.monitor_connections().await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].number, shared[0].number,
        "the shared connection lives on"
    );
    assert_eq!(after[0].authz_dn, "", "it is still anonymous: {after:?}");
    // Its anonymous bind, the root DSE read for paging, the first search,
    // and every search of the load: no search ran on a check's connection.
    let searches = 1 + 1 + load.ok() + load.failed();
    assert_eq!(
        after[0].ops_received,
        1 + searches,
        "every search ran on the shared connection"
    );
    assert_eq!(pool.whoami().await.unwrap(), "");
    pool.shutdown().await;
}

// ----------------------------------------------------------------------
// TLS
// ----------------------------------------------------------------------

/// A pool built without any TLS setting but the server URL (ldaps or
/// StartTLS) rejects a certificate from a private CA, and sends no bind;
/// `danger_tls_verify(true)` is the same; trusting no root at all is a
/// build error; only the CA file (or the explicit opt-out) connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_is_on_by_default() {
    capture();
    let ca = TestCa::new("private-ca");
    let server = Slapd::builder()
        .users(10)
        .tls(ca.issue(&["127.0.0.1"]), &ca)
        .start()
        .unwrap();
    let cred = Credential::simple(Slapd::user_dn(1), Slapd::user_password(1));
    for (url, starttls, explicit) in [
        (server.ldaps_url().unwrap(), false, false),
        (server.url(), true, false),
        (server.ldaps_url().unwrap(), false, true),
    ] {
        let mut b = builder()
            .server(url.clone())
            .starttls(starttls)
            .credential(cred.clone());
        if explicit {
            b = b.danger_tls_verify(true);
        }
        let pool = b.build().unwrap();
        let e = pool.whoami().await.unwrap_err();
        assert!(
            matches!(&e, Error::Pool { source: CoreError::ConnectFailed { cause, .. }, .. }
                if cause.kind == ConnErrorKind::Tls && cause.message.contains("UnknownIssuer")),
            "{url} starttls={starttls}: {e:?}"
        );
        pool.shutdown().await;
    }
    assert_eq!(
        ops_initiated(&server, "Bind").await,
        0,
        "no bind reached slapd"
    );
    let e = builder()
        .server(server.ldaps_url().unwrap())
        .tls_system_roots(false)
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::Tls(_)), "{e:?}");
    // Controls: the same server with its CA, and with the explicit opt-out.
    let ca_file = ca.write_ca_file(server.dir());
    for b in [
        builder().tls_ca_file(&ca_file),
        builder().danger_tls_verify(false),
    ] {
        let pool = b
            .server(server.ldaps_url().unwrap())
            .credential(cred.clone())
            .build()
            .unwrap();
        assert_eq!(pool.whoami().await.unwrap().to_lowercase(), identity(1));
        pool.shutdown().await;
    }
    assert_eq!(ops_initiated(&server, "Bind").await, 2);
}

/// One LDAP message read off the wire: its protocolOp tag and contents.
#[derive(Debug)]
struct Message {
    op: u8,
    body: Vec<u8>,
}

/// Reads one BER element (tag, contents) at the start of `bytes`; `None` if
/// incomplete.
fn ber(bytes: &[u8]) -> Option<(u8, &[u8], usize)> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let mut len = 0usize;
        for i in 0..n {
            len = len << 8 | *bytes.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let body = bytes.get(header..header + len)?;
    Some((tag, body, header + len))
}

/// Splits `bytes` into LDAP messages; the rest (not LDAP) is returned too.
fn ldap_messages(mut bytes: &[u8]) -> (Vec<Message>, Vec<u8>) {
    let mut messages = Vec::new();
    while let Some((0x30, body, used)) = ber(bytes) {
        let Some((0x02, _, id_len)) = ber(body) else {
            break;
        };
        let Some((op, op_body, _)) = ber(&body[id_len..]) else {
            break;
        };
        messages.push(Message {
            op,
            body: op_body.to_vec(),
        });
        bytes = &bytes[used..];
    }
    (messages, bytes.to_vec())
}

/// An ExtendedResponse with `rc` to message `id`.
fn extended_response(id: &[u8], rc: u8) -> Vec<u8> {
    let text = b"not here";
    let mut op = vec![0x0a, 0x01, rc, 0x04, 0x00, 0x04, text.len() as u8];
    op.extend_from_slice(text);
    let mut msg = vec![0x02, id.len() as u8];
    msg.extend_from_slice(id);
    msg.push(0x78);
    msg.push(op.len() as u8);
    msg.extend(op);
    let mut out = vec![0x30, msg.len() as u8];
    out.extend(msg);
    out
}

/// The bytes one connection sent.
type Recorded = Arc<Mutex<Vec<u8>>>;

/// Plain text a [`StartTlsRecorder`] sends where a TLS handshake is expected.
#[derive(Clone, Copy, Debug)]
enum Inject {
    Nothing,
    /// Right behind the StartTLS response (a man in the middle's injection).
    WithResponse(&'static [u8]),
    /// In answer to the client's next bytes (its TLS ClientHello).
    AfterHello(&'static [u8]),
}

/// A loopback server that answers the first LDAP message (a StartTLS
/// request) with result `rc`, sends `inject`, and records every byte each
/// connection sends. Dropping it stops the listener and its connections.
struct StartTlsRecorder {
    url: String,
    conns: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StartTlsRecorder {
    async fn start(rc: u8, inject: Inject) -> StartTlsRecorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let all = conns.clone();
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok((mut sock, _)) = listener.accept().await {
                let seen: Recorded = Arc::default();
                all.lock().unwrap().push(seen.clone());
                tasks.spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut answered = false;
                    loop {
                        let n = match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let reply = {
                            let mut seen = seen.lock().unwrap();
                            seen.extend_from_slice(&buf[..n]);
                            match ber(&seen) {
                                Some((0x30, body, _)) if !answered => {
                                    let (_, id, _) = ber(body).expect("a message id");
                                    let mut reply = extended_response(id, rc);
                                    if let Inject::WithResponse(plain) = inject {
                                        reply.extend_from_slice(plain);
                                    }
                                    Some(reply)
                                }
                                Some(_) if answered => match inject {
                                    Inject::AfterHello(plain) => Some(plain.to_vec()),
                                    _ => None,
                                },
                                _ => None,
                            }
                        };
                        if let Some(reply) = reply {
                            answered = true;
                            if sock.write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        StartTlsRecorder { url, conns, task }
    }

    /// What each connection sent.
    fn sent(&self) -> Vec<Vec<u8>> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect()
    }
}

impl Drop for StartTlsRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// StartTLS refused by slapd, refused by a recording server, and "accepted"
/// by a server that then answers in plain text: each is a typed TLS error;
/// the password (right for slapd) never reaches the wire; slapd counted no
/// bind and no search; the recording servers received the StartTLS request
/// and then nothing but, after an "accepted" StartTLS, a TLS handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_starttls_never_falls_back_to_plain_text() {
    capture();
    let secret = "Plain-3b9f-Text-Would-Leak";
    let ca = TestCa::new("ldapmux-test");

    // 1. slapd without TLS refuses StartTLS.
    let plain = slapd(10);
    set_password(&plain, 1, secret).await;
    let ca_file = ca.write_ca_file(plain.dir());
    let binds = ops_initiated(&plain, "Bind").await;
    let exops = ops_initiated(&plain, "Extended").await;
    let searches = ops_initiated(&plain, "Search").await;
    // A fresh pool per call: after a TLS failure the server is down for the pool.
    let pool_for = |url: &str| {
        builder()
            .server(url.to_owned())
            .starttls(true)
            .tls_ca_file(&ca_file)
            .credential(Credential::simple(Slapd::user_dn(1), secret))
            .build()
            .unwrap()
    };
    let pool = pool_for(&plain.url());
    let e = search_user(&pool, 1).await.unwrap_err();
    assert_eq!(e.conn_error_kind(), Some(ConnErrorKind::Tls), "{e}");
    assert!(e.to_string().contains("StartTLS refused"), "{e}");
    pool.shutdown().await;
    let pool = pool_for(&plain.url());
    let e = pool
        .authenticate(&Slapd::user_dn(1), &Password::new(secret))
        .await
        .unwrap_err();
    assert_eq!(e.conn_error_kind(), Some(ConnErrorKind::Tls), "{e}");
    pool.shutdown().await;
    assert_eq!(
        ops_initiated(&plain, "Search").await - searches,
        1,
        "slapd saw no search but this count's own"
    );
    assert_eq!(ops_initiated(&plain, "Bind").await, binds, "and no bind");
    assert!(
        ops_initiated(&plain, "Extended").await > exops,
        "it did see (and refuse) StartTLS"
    );

    // 2. A server that refuses StartTLS, recording what it is sent.
    // 3. One that accepts StartTLS and then answers in plain LDAP (a bind
    //    "success") where the TLS handshake should be.
    let plain_bind_ok: &[u8] = &[
        0x30, 0x0c, 0x02, 0x01, 0x02, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
    ];
    // Injected right behind the response, ldap3 has read the plain text
    // into its LDAP buffer, which it drops when TLS starts: the handshake
    // then waits for a server hello until the connect timeout.
    for (rc, inject, kinds, says) in [
        (
            2u8,
            Inject::Nothing,
            &[ConnErrorKind::Tls][..],
            "StartTLS refused",
        ),
        (
            0u8,
            Inject::AfterHello(plain_bind_ok),
            &[ConnErrorKind::Tls][..],
            "StartTLS failed",
        ),
        (
            0u8,
            Inject::WithResponse(plain_bind_ok),
            &[ConnErrorKind::Tls, ConnErrorKind::Timeout][..],
            "",
        ),
    ] {
        let recorder = StartTlsRecorder::start(rc, inject).await;
        let pool = pool_for(&recorder.url);
        let e = pool.whoami().await.unwrap_err();
        assert!(
            kinds.contains(&e.conn_error_kind().unwrap()),
            "{inject:?}: {e}"
        );
        assert!(e.to_string().contains(says), "{e}");
        pool.shutdown().await;
        let pool = pool_for(&recorder.url);
        let e = pool
            .authenticate(&Slapd::user_dn(1), &Password::new(secret))
            .await
            .unwrap_err();
        assert!(
            kinds.contains(&e.conn_error_kind().unwrap()),
            "{inject:?}: {e}"
        );
        pool.shutdown().await;
        let sent = recorder.sent();
        assert!(!sent.is_empty(), "the pool connected");
        for bytes in &sent {
            assert!(!contains(bytes, secret.as_bytes()), "the password was sent");
            let (messages, rest) = ldap_messages(bytes);
            assert!(!messages.is_empty(), "{bytes:?}");
            assert_eq!(messages[0].op, 0x77, "first an ExtendedRequest");
            assert!(contains(&messages[0].body, STARTTLS_OID), "StartTLS");
            assert!(
                messages[1..].iter().all(|m| m.op == 0x42),
                "then nothing but an unbind in plain text: {messages:?}"
            );
            if rc == 0 {
                assert!(
                    rest.is_empty() || rest[0] == 0x16,
                    "after StartTLS, a TLS handshake record: {rest:?}"
                );
            } else {
                assert!(rest.is_empty(), "{rest:?}");
            }
        }
        if rc == 0 {
            assert!(
                sent.iter()
                    .any(|b| ldap_messages(b).1.first() == Some(&0x16)),
                "a TLS handshake was attempted after the accepted StartTLS"
            );
        }
    }
}

/// StartTLS is a builder setting, never an operation on a pooled
/// connection (that would change a shared connection's state): refused
/// before anything is sent, and the pool keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_as_an_operation_is_refused_before_anything_is_sent() {
    capture();
    let server = slapd(10);
    let pool = builder().server(server.url()).build().unwrap();
    search_user(&pool, 1).await.unwrap();
    let exops = ops_initiated(&server, "Extended").await;
    let starttls = ldap3::exop::Exop {
        name: Some("1.3.6.1.4.1.1466.20037".into()),
        val: None,
    };
    let e = pool.extended(starttls.clone()).await.unwrap_err();
    assert!(
        matches!(&e, Error::InvalidRequest(m) if m.contains("StartTLS")),
        "{e:?}"
    );
    let mut guard = pool.lease(LeaseKind::Read).await.unwrap();
    let e = guard.extended(starttls).await.unwrap_err();
    assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
    assert_eq!(guard.whoami().await.unwrap(), "");
    drop(guard);
    assert_eq!(
        ops_initiated(&server, "Extended").await,
        exops + 1,
        "only the WhoAmI"
    );
    search_user(&pool, 2).await.unwrap();
    pool.shutdown().await;
}
