//! A server that does not speak LDAP: a typed error within the connect timeout.

use super::*;

/// What a fake server does with each connection it accepts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fake {
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
pub(crate) struct FakeServer {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    pub(crate) async fn start(fake: Fake) -> FakeServer {
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

    pub(crate) fn url(&self, scheme: &str) -> String {
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
