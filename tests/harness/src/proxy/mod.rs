//! A loopback TCP proxy that injects network faults between a client and slapd;
//! see [`FaultProxy`].

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bound on connecting to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a cut (`Refuse`/`Close` at a request, `CutAfterRequest`) waits for the
/// server's answer before cutting the client anyway.
const CUT_ANSWER_WAIT: Duration = Duration::from_secs(5);
/// How long an orderly close (`Close`) waits for the client to close its side.
const FIN_DRAIN: Duration = Duration::from_secs(5);
/// `StallReads` holds at most this many client bytes; then it stops reading.
const STALL_HOLD_LIMIT: usize = 64 * 1024;
/// Requests kept in the log (the oldest are dropped; counts are never dropped).
const REQUEST_LOG_LIMIT: usize = 10_000;
/// A declared LDAP message longer than this is not framed (passed on as it comes).
const MAX_FRAME: usize = 16 * 1024 * 1024;
const BUF_SIZE: usize = 16 * 1024;

mod conn;
mod frame;
mod modes;
mod records;
#[cfg(test)]
mod tests;

use conn::Conn;
use frame::{Frame, Framer};
use modes::request_matches;
pub use modes::{GARBAGE, NOTICE_OF_DISCONNECTION, ProxyMode, RequestKind};
pub use records::{Armed, ProxyConn, ProxyConnId, RequestRecord};

/// A one-shot fault waiting for its request.
#[derive(Debug)]
struct Arm {
    kind: Option<RequestKind>,
    mode: ProxyMode,
    fired: watch::Sender<Option<ProxyConnId>>,
    /// Armed by `set_mode(CutAfterRequest)`: firing turns the global mode back
    /// to `Forward`, and another `set_mode` disarms it.
    legacy_cut: bool,
}

#[derive(Debug, Default)]
struct ConnStats {
    requests: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
}

/// Told which connection an armed fault took effect on.
type Fired = watch::Sender<Option<ProxyConnId>>;

#[derive(Debug)]
struct ConnEntry {
    /// Commands: the mode set from outside.
    mode: watch::Sender<ProxyMode>,
    /// The mode in force, as the connection's task keeps it.
    current: Arc<Mutex<ProxyMode>>,
    accepted_at: Instant,
    stats: Arc<ConnStats>,
}

#[derive(Debug, Default)]
struct RequestLog {
    records: VecDeque<RequestRecord>,
    counts: BTreeMap<RequestKind, u64>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    /// The mode `mode()` reports and new connections start in.
    global: Mutex<ProxyMode>,
    conns: Mutex<BTreeMap<u64, ConnEntry>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    live: AtomicUsize,
    accept_times: Mutex<Vec<Instant>>,
    requests: Mutex<RequestLog>,
    request_fault: Mutex<Option<(Option<RequestKind>, ProxyMode)>>,
    armed: Mutex<Option<Arm>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Claims the one-shot arm if it matches `kind`: its mode, and whom to tell
    /// once it took effect.
    fn claim_arm(&self, kind: RequestKind) -> Option<(ProxyMode, Fired)> {
        let mut armed = lock(&self.armed);
        if !armed
            .as_ref()
            .is_some_and(|a| request_matches(a.kind, kind))
        {
            return None;
        }
        let arm = armed.take().expect("checked");
        drop(armed);
        if arm.legacy_cut {
            let mut global = lock(&self.global);
            if *global == ProxyMode::CutAfterRequest {
                *global = ProxyMode::Forward;
            }
        }
        Some((arm.mode, arm.fired))
    }

    fn record(&self, conn: ProxyConnId, kind: RequestKind, bytes: &[u8]) {
        let mut log = lock(&self.requests);
        *log.counts.entry(kind).or_default() += 1;
        if log.records.len() == REQUEST_LOG_LIMIT {
            log.records.pop_front();
        }
        log.records.push_back(RequestRecord {
            conn,
            kind,
            at: Instant::now(),
            bytes: bytes.to_vec(),
        });
    }
}

/// A tokio TCP proxy on `127.0.0.1:0` forwarding to a loopback target, with
/// faults on command.
///
/// # Model
///
/// Every accepted client connection gets an id ([`ProxyConnId`]) and a *mode*
/// ([`ProxyMode`]) of its own. A connection's mode changes in one of four ways:
///
/// | call | which connections | when |
/// | --- | --- | --- |
/// | [`FaultProxy::set_mode`] | every live one, and every new one | now, and at accept |
/// | [`FaultProxy::set_conn_mode`] | one live connection (ids from [`FaultProxy::connections`]) | now |
/// | [`FaultProxy::set_live_conns_mode`] | every live one, not new ones | now |
/// | [`FaultProxy::arm_next_request`] | the first connection that sends a matching request | at that request (one shot) |
/// | [`FaultProxy::set_request_fault`] | every connection, live or new | at its first matching request |
///
/// To match requests the proxy frames what clients send into LDAP messages
/// (BER `SEQUENCE`s) and reads each message's protocol operation
/// ([`RequestKind`]). Every request is counted and logged with its bytes
/// ([`FaultProxy::requests`], [`FaultProxy::request_count`]), so a test can
/// count how often an operation was sent ("was this write retried?"). From the
/// first bytes that do not frame as LDAP on, a connection is passed on as it
/// comes, each chunk counted as [`RequestKind::Other`]. Server-to-client bytes
/// are never parsed.
///
/// # Modes
///
/// | mode | set now / at accept | taking effect at a request |
/// | --- | --- | --- |
/// | `Forward` | pass bytes both ways; releases held requests | the request is forwarded |
/// | `Refuse` (reset) | RST both sides at once | forwarded; the server's answer (≤ 5 s) is swallowed; then RST |
/// | `Close` (FIN) | orderly close of the client side (FIN), server side closed | forwarded; answer swallowed; then FIN |
/// | `StallReads` | requests are held, never forwarded; after 64 KiB held the client is no longer read, so its writes back up; TCP stays up | the request is held |
/// | `Blackhole` | client bytes discarded; server bytes discarded | the request is discarded |
/// | `StallServer` | the server is not read: its writes back up and block; TCP stays up | forwarded; its answer is not read |
/// | `Drip(n)` | server→client bytes forwarded one byte per `n` | forwarded; its answer drips |
/// | `Garbage` | [`GARBAGE`] is written to the client at once, then forwarding | forwarded; its answer is replaced by [`GARBAGE`] |
/// | `Notice` | [`NOTICE_OF_DISCONNECTION`] is written to the client, then FIN both ways | not forwarded; the notice, then FIN |
/// | `Delay(d)` | every server→client chunk is held for `d` | forwarded; its answer is delayed |
/// | `CutAfterRequest` | one shot: like `Refuse` at the next request (see the variant) | |
///
/// Connections accepted in `Blackhole` or `StallReads` connect to the target only
/// when something is to be forwarded. A connection whose target connect fails is
/// reset. [`FaultProxy::accept_times`] timestamps every accepted connection (connect
/// attempts), [`FaultProxy::reset_all`] resets every connection whatever its mode.
///
/// Its tasks run on the runtime that called [`FaultProxy::start`]. Dropping it stops
/// accepting and resets every proxied connection.
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
        let (reset, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            target,
            global: Mutex::new(ProxyMode::Forward),
            conns: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            accept_times: Mutex::new(Vec::new()),
            requests: Mutex::new(RequestLog::default()),
            request_fault: Mutex::new(None),
            armed: Mutex::new(None),
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

    /// Sets the mode of every live connection now and of every new one at accept.
    /// `CutAfterRequest` is a one shot for the next request of any connection
    /// (live connections are set to `Forward` meanwhile); any other mode disarms a
    /// pending `CutAfterRequest`.
    pub fn set_mode(&self, mode: ProxyMode) {
        {
            let mut armed = lock(&self.shared.armed);
            if armed.as_ref().is_some_and(|a| a.legacy_cut) {
                *armed = None;
            }
            if mode == ProxyMode::CutAfterRequest {
                *armed = Some(Arm {
                    kind: None,
                    mode: ProxyMode::Refuse,
                    fired: watch::channel(None).0,
                    legacy_cut: true,
                });
            }
        }
        *lock(&self.shared.global) = mode;
        let per_conn = match mode {
            ProxyMode::CutAfterRequest => ProxyMode::Forward,
            other => other,
        };
        for entry in lock(&self.shared.conns).values() {
            entry.mode.send_replace(per_conn);
        }
    }

    /// Sets the mode of connections accepted from now on, leaving the live
    /// ones as they are (e.g. a hung connection stays hung while new ones are
    /// forwarded).
    pub fn set_new_conns_mode(&self, mode: ProxyMode) {
        *lock(&self.shared.global) = mode;
    }

    /// The mode set by [`FaultProxy::set_mode`] (`CutAfterRequest` turns back into
    /// `Forward` once used).
    pub fn mode(&self) -> ProxyMode {
        *lock(&self.shared.global)
    }

    /// Sets the mode of one live connection, now; `false` if it is gone.
    pub fn set_conn_mode(&self, id: ProxyConnId, mode: ProxyMode) -> bool {
        match lock(&self.shared.conns).get(&id.0) {
            Some(entry) => {
                entry.mode.send_replace(mode);
                true
            }
            None => false,
        }
    }

    /// Sets `mode` on every live connection now (not on new ones); returns their ids.
    pub fn set_live_conns_mode(&self, mode: ProxyMode) -> Vec<ProxyConnId> {
        lock(&self.shared.conns)
            .iter()
            .map(|(id, entry)| {
                entry.mode.send_replace(mode);
                ProxyConnId(*id)
            })
            .collect()
    }

    /// One shot: the first request matching `kind` (`None`: any request) that any
    /// connection sends from now on switches that connection to `mode`, with the
    /// request-time effect of the [`FaultProxy`] docs. Replaces a fault armed
    /// earlier and not yet used.
    pub fn arm_next_request(&self, kind: Option<RequestKind>, mode: ProxyMode) -> Armed {
        let (fired, rx) = watch::channel(None);
        *lock(&self.shared.armed) = Some(Arm {
            kind,
            mode,
            fired,
            legacy_cut: false,
        });
        Armed { fired: rx }
    }

    /// From now on every connection, live or new, switches to `mode` at its first
    /// request matching `kind` (`None`: any request). One such fault at a time.
    pub fn set_request_fault(&self, kind: Option<RequestKind>, mode: ProxyMode) {
        *lock(&self.shared.request_fault) = Some((kind, mode));
    }

    /// Removes the fault of [`FaultProxy::set_request_fault`] (modes already
    /// switched stay).
    pub fn clear_request_fault(&self) {
        *lock(&self.shared.request_fault) = None;
    }

    /// Resets (RST, via `SO_LINGER` 0) every proxied connection, both the client and
    /// the server side. Takes effect as soon as each connection's task runs again: a
    /// request written after this call is never forwarded. A connection the kernel
    /// has accepted but the proxy has not yet taken ([`FaultProxy::accepted`] does
    /// not count it yet) is not reset: wait for the count first.
    pub fn reset_all(&self) {
        self.reset.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far (counts connect attempts, refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// When each connection was accepted, in order: the connect attempts made
    /// through the proxy.
    pub fn accept_times(&self) -> Vec<Instant> {
        lock(&self.shared.accept_times).clone()
    }

    /// Connections accepted at or after `since`.
    pub fn accepted_since(&self, since: Instant) -> usize {
        lock(&self.shared.accept_times)
            .iter()
            .filter(|&&t| t >= since)
            .count()
    }

    /// Proxied connections not closed yet.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// The live connections, in accept order.
    pub fn connections(&self) -> Vec<ProxyConn> {
        lock(&self.shared.conns)
            .iter()
            .map(|(id, e)| ProxyConn {
                id: ProxyConnId(*id),
                accepted_at: e.accepted_at,
                mode: *lock(&e.current),
                requests: e.stats.requests.load(Ordering::SeqCst),
                bytes_to_server: e.stats.to_server.load(Ordering::SeqCst),
                bytes_to_client: e.stats.to_client.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// The last requests read from clients (at most 10 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests)
            .records
            .iter()
            .cloned()
            .collect()
    }

    /// Requests of `kind` (`None`: any) read so far whose message contains
    /// `needle` (empty: every one). With an empty needle this is an exact count
    /// however many requests there were; with a needle it searches the log.
    pub fn request_count(&self, kind: Option<RequestKind>, needle: &[u8]) -> usize {
        let log = lock(&self.shared.requests);
        if needle.is_empty() {
            let n: u64 = log
                .counts
                .iter()
                .filter(|(k, _)| request_matches(kind, **k))
                .map(|(_, n)| *n)
                .sum();
            return usize::try_from(n).unwrap_or(usize::MAX);
        }
        log.records
            .iter()
            .filter(|r| request_matches(kind, r.kind) && r.contains(needle))
            .count()
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
                let now = Instant::now();
                shared.live.fetch_add(1, Ordering::SeqCst);
                let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                let initial = match *lock(&shared.global) {
                    ProxyMode::CutAfterRequest => ProxyMode::Forward,
                    other => other,
                };
                let (mode_tx, mode_rx) = watch::channel(initial);
                let stats = Arc::new(ConnStats::default());
                let current = Arc::new(Mutex::new(initial));
                lock(&shared.conns).insert(id, ConnEntry {
                    mode: mode_tx,
                    current: current.clone(),
                    accepted_at: now,
                    stats: stats.clone(),
                });
                // Counted once its mode is fixed and it is in the table: a test
                // that sees it accepted and then changes modes affects it as a
                // live connection, never as one still being accepted.
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                lock(&shared.accept_times).push(now);
                // Made before spawning so `live` goes down and the entry goes away
                // even if the task never runs.
                let guard = LiveGuard { shared: shared.clone(), id };
                let mut reset = reset.clone();
                reset.mark_unchanged();
                tokio::spawn(async move {
                    let guard = guard;
                    let conn = Conn {
                        id: ProxyConnId(id),
                        shared: guard.shared.clone(),
                        stats,
                        client,
                        server: None,
                        mode: initial,
                        current,
                        mode_rx,
                        reset,
                        framer: Framer::default(),
                        inbox: VecDeque::new(),
                        inbox_bytes: 0,
                        out: VecDeque::new(),
                        server_eof: false,
                        garbage_next_answer: false,
                        cut_next: false,
                        request_fault_fired: false,
                    };
                    conn.serve().await;
                });
            }
        }
    }
}

/// Decrements `live` and forgets the connection when its task ends (also when
/// it is dropped).
struct LiveGuard {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        lock(&self.shared.conns).remove(&self.id);
        self.shared.live.fetch_sub(1, Ordering::SeqCst);
    }
}
