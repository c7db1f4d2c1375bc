//! A loopback TCP proxy that injects network faults between a client and slapd.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bound on connecting to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`ProxyMode::CutAfterRequest`] waits for the server's answer before
/// resetting the client anyway.
const CUT_ANSWER_WAIT: Duration = Duration::from_secs(5);
const BUF_SIZE: usize = 16 * 1024;

/// What the proxy does with traffic; see [`FaultProxy::set_mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Pass bytes both ways unchanged.
    #[default]
    Forward,
    /// Accept connections, read and discard what clients send, never answer: the
    /// client sees a server that hangs with TCP up. New connections are not even
    /// forwarded to the server; data the server sends on existing ones is discarded.
    Blackhole,
    /// One shot: the next chunk any client sends is forwarded to the server; the
    /// proxy waits for the server's answer (up to 5 s), discards it and resets the
    /// client (RST). So the client sees its request fail while the server has done
    /// the work: the "unknown outcome" case. Then the mode is back to `Forward`.
    CutAfterRequest,
    /// Accept connections and reset them (RST) at once; existing connections are
    /// reset when this mode is set.
    Refuse,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    accepted: AtomicU64,
    live: AtomicUsize,
}

/// A tokio TCP proxy on `127.0.0.1:0` forwarding to a loopback target.
///
/// Its tasks run on the runtime that called [`FaultProxy::start`]. Dropping it stops
/// accepting and closes every proxied connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Bumped by `reset_all`; dropped with the proxy, which tells every task to stop.
    reset: watch::Sender<u64>,
    acceptor: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`, which must be a loopback
    /// address (`InvalidInput` otherwise). Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        if !target.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("FaultProxy only forwards to loopback addresses, not {target}"),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(ProxyMode::Forward);
        let (reset, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            target,
            mode,
            accepted: AtomicU64::new(0),
            live: AtomicUsize::new(0),
        });
        let acceptor = tokio::spawn(accept_loop(listener, shared.clone(), reset.subscribe()));
        Ok(FaultProxy {
            addr,
            shared,
            reset,
            acceptor,
        })
    }

    /// `ldap://127.0.0.1:PROXYPORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.addr.port())
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Sets the mode for existing and new connections.
    pub fn set_mode(&self, mode: ProxyMode) {
        self.shared.mode.send_replace(mode);
    }

    /// The current mode (`CutAfterRequest` turns back into `Forward` once used).
    pub fn mode(&self) -> ProxyMode {
        *self.shared.mode.borrow()
    }

    /// Resets (RST, via `SO_LINGER` 0) every proxied connection, both the client and
    /// the server side. Takes effect as soon as each connection's task runs again: a
    /// request written after this call is never forwarded.
    pub fn reset_all(&self) {
        self.reset.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far (counts connect attempts, refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Proxied connections not closed yet.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Stops accepting (drops the listener); the connection tasks stop when
        // `self.reset` is dropped right after this.
        self.acceptor.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut reset: watch::Receiver<u64>) {
    loop {
        tokio::select! {
            biased;
            changed = reset.changed() => {
                if changed.is_err() {
                    return; // the proxy was dropped
                }
            }
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // Out of descriptors or similar: give the system a moment.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                shared.live.fetch_add(1, Ordering::SeqCst);
                // Made before spawning so `live` goes down even if the task never runs.
                let guard = LiveGuard(shared.clone());
                let mut reset = reset.clone();
                reset.mark_unchanged();
                tokio::spawn(async move {
                    let guard = guard;
                    serve(client, &guard.0, reset).await;
                });
            }
        }
    }
}

/// Decrements `live` when a connection task ends (also when it is dropped).
struct LiveGuard(Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Closes `stream` with an RST instead of a FIN.
fn rst(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn connect_target(target: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect to proxy target"))??;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Reads from `server` if there is one; never completes otherwise.
async fn read_opt(server: &mut Option<TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match server {
        Some(s) => s.read(buf).await,
        None => std::future::pending().await,
    }
}

/// How one connection ends.
enum End {
    /// Close both sides normally (FIN).
    Close,
    /// Reset the client; reset the server too.
    Reset,
}

async fn serve(client: TcpStream, shared: &Shared, mut reset: watch::Receiver<u64>) {
    let _ = client.set_nodelay(true);
    let mut client = client;
    let mut mode_rx = shared.mode.subscribe();
    let mut server = None;
    let initial = *mode_rx.borrow_and_update();
    match initial {
        ProxyMode::Refuse => return rst(client),
        ProxyMode::Blackhole => {}
        ProxyMode::Forward | ProxyMode::CutAfterRequest => {
            match connect_target(shared.target).await {
                Ok(s) => server = Some(s),
                Err(_) => return rst(client),
            }
        }
    }
    let end = pump(&mut client, &mut server, shared, &mut mode_rx, &mut reset).await;
    match end {
        End::Close => {}
        End::Reset => {
            rst(client);
            if let Some(s) = server {
                rst(s);
            }
        }
    }
}

/// Writes `data` to `to` unless a reset (or proxy drop) comes first.
async fn write_or_reset(
    to: &mut TcpStream,
    data: &[u8],
    reset: &mut watch::Receiver<u64>,
) -> Option<End> {
    tokio::select! {
        biased;
        _ = reset.changed() => Some(End::Reset),
        written = to.write_all(data) => match written {
            Ok(()) => None,
            Err(_) => Some(End::Close),
        },
    }
}

async fn pump(
    client: &mut TcpStream,
    server: &mut Option<TcpStream>,
    shared: &Shared,
    mode_rx: &mut watch::Receiver<ProxyMode>,
    reset: &mut watch::Receiver<u64>,
) -> End {
    let mut cbuf = vec![0u8; BUF_SIZE];
    let mut sbuf = vec![0u8; BUF_SIZE];
    loop {
        tokio::select! {
            biased;
            // A reset, or the proxy was dropped (sender gone): either way, RST.
            _ = reset.changed() => return End::Reset,
            changed = mode_rx.changed() => {
                if changed.is_err() || *mode_rx.borrow_and_update() == ProxyMode::Refuse {
                    return End::Reset;
                }
            }
            read = client.read(&mut cbuf) => {
                let n = match read {
                    Ok(0) | Err(_) => return End::Close,
                    Ok(n) => n,
                };
                let mode = *mode_rx.borrow_and_update();
                match mode {
                    ProxyMode::Blackhole => continue,
                    ProxyMode::Refuse => return End::Reset,
                    ProxyMode::Forward | ProxyMode::CutAfterRequest => {}
                }
                // Claim the one-shot cut atomically: only one connection gets it.
                let cut = mode == ProxyMode::CutAfterRequest
                    && shared.mode.send_if_modified(|m| {
                        if *m == ProxyMode::CutAfterRequest {
                            *m = ProxyMode::Forward;
                            true
                        } else {
                            false
                        }
                    });
                if cut {
                    // The claim changed the mode; do not react to our own change.
                    mode_rx.mark_unchanged();
                }
                if server.is_none() {
                    match connect_target(shared.target).await {
                        Ok(s) => *server = Some(s),
                        Err(_) => return End::Reset,
                    }
                }
                let s = server.as_mut().expect("connected above");
                if let Some(end) = write_or_reset(s, &cbuf[..n], reset).await {
                    return end;
                }
                if cut {
                    // Let the server finish (its answer proves the request was
                    // processed), swallow the answer, then reset the client.
                    let _ = tokio::time::timeout(CUT_ANSWER_WAIT, s.read(&mut sbuf)).await;
                    return End::Reset;
                }
            }
            read = read_opt(server, &mut sbuf) => {
                let n = match read {
                    Ok(0) | Err(_) => return End::Close,
                    Ok(n) => n,
                };
                match *mode_rx.borrow_and_update() {
                    ProxyMode::Blackhole => continue,
                    ProxyMode::Refuse => return End::Reset,
                    ProxyMode::Forward | ProxyMode::CutAfterRequest => {}
                }
                if let Some(end) = write_or_reset(client, &sbuf[..n], reset).await {
                    return end;
                }
            }
        }
    }
}
