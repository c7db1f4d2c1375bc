//! TLS is verified by default, and a failed StartTLS never falls back to plain text.

use super::*;

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
