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

/// What [`ProxyMode::Garbage`] sends: an HTTP error, which an LDAP client's BER
/// decoder rejects as soon as it has read it (a complete element that is not a
/// `SEQUENCE`).
pub const GARBAGE: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: not-an-ldap-server\r\n\
Content-Type: text/plain\r\nContent-Length: 26\r\n\r\nthis is not an LDAP server";

/// What the proxy does with a connection's traffic; see the [`FaultProxy`] docs
/// for the effect of each mode set now and at a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// Pass bytes both ways unchanged (and release held requests).
    #[default]
    Forward,
    /// Read and discard what the client sends, never answer: the client sees a
    /// server that hangs with TCP up. New connections are not even forwarded to
    /// the server; data the server sends on existing ones is discarded.
    Blackhole,
    /// One shot, for [`FaultProxy::set_mode`]: the next request any client sends is
    /// forwarded to the server; the proxy waits for the server's answer (up to 5 s),
    /// discards it and resets the client (RST). So the client sees its request
    /// fail while the server has done the work: the "unknown outcome" case. Then
    /// the mode is back to `Forward`. Given to [`FaultProxy::set_conn_mode`], the
    /// same for that connection's next request.
    CutAfterRequest,
    /// Reset (RST): new connections are reset at accept; existing connections are
    /// reset when this mode is set.
    Refuse,
    /// Orderly close (FIN) of the client side: new connections are closed at
    /// accept; existing ones when this mode is set. The server side is closed too.
    Close,
    /// Stop reading from the client while TCP stays up: its requests are held
    /// (never forwarded) and, past 64 KiB, its writes back up. Server bytes still
    /// reach the client. Setting another mode releases the held requests to it.
    StallReads,
    /// Stop reading from the server while TCP stays up: its answers back
    /// up in the sockets until its own writes block (a client that does not
    /// read). Requests are still forwarded. Setting another mode reads on.
    StallServer,
    /// Forward server→client bytes one byte per interval (a slow-loris server).
    Drip(Duration),
    /// Send [`GARBAGE`] (non-LDAP bytes) to the client: at once when set, or in
    /// place of the answer to the request it takes effect at. Forward otherwise.
    Garbage,
    /// Hold each server→client chunk for this long before forwarding it.
    Delay(Duration),
    /// Send [`NOTICE_OF_DISCONNECTION`] to the client, then close (FIN) both
    /// sides, as a server that announces its close (Active Directory past
    /// `MaxConnIdleTime`): at once when set (at accept for a new
    /// connection), or in place of forwarding the request it takes effect at.
    Notice,
}

/// What [`ProxyMode::Notice`] sends: an LDAP Notice of Disconnection (RFC
/// 4511 §4.4.1), message ID 0, `unavailable` (52), "closing".
pub const NOTICE_OF_DISCONNECTION: &[u8] = &[
    0x30, 0x2b, // LDAPMessage
    0x02, 0x01, 0x00, // messageID 0
    0x78, 0x26, // [APPLICATION 24] ExtendedResponse
    0x0a, 0x01, 0x34, // resultCode unavailable (52)
    0x04, 0x00, // matchedDN ""
    0x04, 0x07, b'c', b'l', b'o', b's', b'i', b'n', b'g', // diagnosticMessage
    0x8a, 0x16, // [10] responseName
    b'1', b'.', b'3', b'.', b'6', b'.', b'1', b'.', b'4', b'.', b'1', b'.', b'1', b'4', b'6', b'6',
    b'.', b'2', b'0', b'0', b'3', b'6',
];

impl ProxyMode {
    /// `Refuse` under the name of what it does.
    pub const RESET: ProxyMode = ProxyMode::Refuse;
}

/// The protocol operation of an LDAP request (RFC 4511 §4.2–4.12), as framed by
/// the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    /// BindRequest `[APPLICATION 0]`.
    Bind,
    /// UnbindRequest `[APPLICATION 2]`.
    Unbind,
    /// SearchRequest `[APPLICATION 3]`.
    Search,
    /// ModifyRequest `[APPLICATION 6]`.
    Modify,
    /// AddRequest `[APPLICATION 8]`.
    Add,
    /// DelRequest `[APPLICATION 10]`.
    Delete,
    /// ModifyDNRequest `[APPLICATION 12]`.
    ModifyDn,
    /// CompareRequest `[APPLICATION 14]`.
    Compare,
    /// AbandonRequest `[APPLICATION 16]`.
    Abandon,
    /// ExtendedRequest `[APPLICATION 23]`.
    Extended,
    /// Anything else, including bytes that do not frame as LDAP.
    Other,
}

impl RequestKind {
    fn from_tag(tag: u8) -> RequestKind {
        match tag {
            0x60 => RequestKind::Bind,
            0x42 => RequestKind::Unbind,
            0x63 => RequestKind::Search,
            0x66 => RequestKind::Modify,
            0x68 => RequestKind::Add,
            0x4a => RequestKind::Delete,
            0x6c => RequestKind::ModifyDn,
            0x6e => RequestKind::Compare,
            0x50 => RequestKind::Abandon,
            0x77 => RequestKind::Extended,
            _ => RequestKind::Other,
        }
    }
}

/// Whether `kind` matches the request matcher `want` (`None`: any request).
fn matches(want: Option<RequestKind>, kind: RequestKind) -> bool {
    want.is_none_or(|w| w == kind)
}

/// The id of one proxied connection, unique per proxy, in accept order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyConnId(pub u64);

impl std::fmt::Display for ProxyConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proxy-conn#{}", self.0)
    }
}

/// A live proxied connection, as [`FaultProxy::connections`] shows it.
#[derive(Clone, Debug)]
pub struct ProxyConn {
    /// Its id.
    pub id: ProxyConnId,
    /// When it was accepted.
    pub accepted_at: Instant,
    /// Its mode now.
    pub mode: ProxyMode,
    /// Requests it has sent (framed, counted when read from the client).
    pub requests: u64,
    /// Bytes forwarded to the server.
    pub bytes_to_server: u64,
    /// Bytes written to the client (garbage included).
    pub bytes_to_client: u64,
}

/// One request read from a client.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The connection it came on.
    pub conn: ProxyConnId,
    /// Its operation.
    pub kind: RequestKind,
    /// When the proxy had read all of it.
    pub at: Instant,
    /// The whole LDAP message (or the unframed chunk, for `Other`).
    pub bytes: Vec<u8>,
}

impl RequestRecord {
    /// Whether the message contains `needle` (a DN, a filter value …).
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.bytes.windows(needle.len()).any(|w| w == needle)
    }
}

/// A one-shot fault armed by [`FaultProxy::arm_next_request`]; says which
/// connection it hit.
#[derive(Debug)]
pub struct Armed {
    fired: watch::Receiver<Option<ProxyConnId>>,
}

impl Armed {
    /// The connection the fault took effect on, if it has.
    pub fn conn(&self) -> Option<ProxyConnId> {
        *self.fired.borrow()
    }

    /// Waits (at most `within`) until the fault took effect; returns the
    /// connection. `TimedOut` names the wait; `BrokenPipe` if the proxy is gone.
    pub async fn wait(&mut self, within: Duration) -> io::Result<ProxyConnId> {
        match tokio::time::timeout(within, self.fired.wait_for(Option::is_some)).await {
            Ok(Ok(id)) => Ok(id.expect("waited for Some")),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the fault was disarmed (replaced by another, or the proxy dropped) before it took effect",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no matching request reached the proxy within {within:?}"),
            )),
        }
    }
}

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
        if !armed.as_ref().is_some_and(|a| matches(a.kind, kind)) {
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
    /// request written after this call is never forwarded.
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
                .filter(|(k, _)| matches(kind, **k))
                .map(|(_, n)| *n)
                .sum();
            return usize::try_from(n).unwrap_or(usize::MAX);
        }
        log.records
            .iter()
            .filter(|r| matches(kind, r.kind) && r.contains(needle))
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

/// Sleeps until `at`; never completes for `None`.
async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// How one connection ends.
enum End {
    /// A peer closed or failed: drop both sides.
    Closed,
    /// Orderly close of the client side (FIN), server side dropped.
    Fin,
    /// Reset the client; reset the server too.
    Reset,
}

/// Splits the client's byte stream into LDAP messages.
#[derive(Default)]
struct Framer {
    buf: Vec<u8>,
    /// The stream did not frame as LDAP: pass bytes on as they come.
    opaque: bool,
}

impl Framer {
    /// The next complete message and its kind, if any.
    fn next(&mut self) -> Option<(Vec<u8>, RequestKind)> {
        if self.buf.is_empty() {
            return None;
        }
        if !self.opaque {
            match frame_len(&self.buf) {
                Framed::Complete(len) => {
                    let rest = self.buf.split_off(len);
                    let msg = std::mem::replace(&mut self.buf, rest);
                    let kind = message_kind(&msg);
                    return Some((msg, kind));
                }
                Framed::Incomplete => return None,
                Framed::NotLdap => self.opaque = true,
            }
        }
        Some((std::mem::take(&mut self.buf), RequestKind::Other))
    }
}

enum Framed {
    Complete(usize),
    Incomplete,
    NotLdap,
}

/// The length of the BER `SEQUENCE` at the start of `buf`.
fn frame_len(buf: &[u8]) -> Framed {
    if buf[0] != 0x30 {
        return Framed::NotLdap;
    }
    let Some(&first) = buf.get(1) else {
        return Framed::Incomplete;
    };
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Framed::NotLdap; // indefinite or absurd length
        }
        let Some(bytes) = buf.get(2..2 + n) else {
            return Framed::Incomplete;
        };
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + n, len)
    };
    if len > MAX_FRAME {
        return Framed::NotLdap;
    }
    if buf.len() < header + len {
        Framed::Incomplete
    } else {
        Framed::Complete(header + len)
    }
}

/// The protocol operation of a complete LDAP message: after the header and
/// the message id (an INTEGER).
fn message_kind(msg: &[u8]) -> RequestKind {
    let header = if msg[1] < 0x80 {
        2
    } else {
        2 + usize::from(msg[1] & 0x7f)
    };
    let body = &msg[header..];
    match body {
        [0x02, id_len, rest @ ..] if *id_len < 0x80 => rest
            .get(usize::from(*id_len))
            .map_or(RequestKind::Other, |tag| RequestKind::from_tag(*tag)),
        _ => RequestKind::Other,
    }
}

/// A request read from the client, not yet forwarded.
struct Frame {
    bytes: Vec<u8>,
    kind: RequestKind,
    /// Triggers were already checked for it (a held request being released).
    checked: bool,
}

/// Server bytes waiting to be written to the client.
struct Out {
    due: Instant,
    data: Vec<u8>,
    pos: usize,
    /// Written one byte per this interval.
    drip: Option<Duration>,
}

/// One proxied connection.
struct Conn {
    id: ProxyConnId,
    shared: Arc<Shared>,
    stats: Arc<ConnStats>,
    client: TcpStream,
    server: Option<TcpStream>,
    /// The mode in force (also in `current`, for `connections()`).
    mode: ProxyMode,
    current: Arc<Mutex<ProxyMode>>,
    /// Modes set from outside.
    mode_rx: watch::Receiver<ProxyMode>,
    reset: watch::Receiver<u64>,
    framer: Framer,
    /// Requests read from the client and not forwarded yet (held while stalled).
    inbox: VecDeque<Frame>,
    inbox_bytes: usize,
    out: VecDeque<Out>,
    server_eof: bool,
    garbage_next_answer: bool,
    /// `CutAfterRequest` given to this connection: cut at its next request.
    cut_next: bool,
    request_fault_fired: bool,
}

impl Conn {
    async fn serve(mut self) {
        let _ = self.client.set_nodelay(true);
        let end = self.run().await;
        match end {
            End::Closed => {}
            End::Fin => {
                self.server = None;
                let _ = self.client.shutdown().await;
                // Read (and drop) until the client closes too, so that unread
                // bytes do not turn the close into a reset.
                let mut buf = vec![0u8; BUF_SIZE];
                let drain =
                    async { while matches!(self.client.read(&mut buf).await, Ok(n) if n > 0) {} };
                tokio::select! {
                    biased;
                    _ = self.reset.changed() => rst(self.client),
                    _ = tokio::time::timeout(FIN_DRAIN, drain) => {}
                }
            }
            End::Reset => {
                if let Some(s) = self.server.take() {
                    rst(s);
                }
                rst(self.client);
            }
        }
    }

    async fn run(&mut self) -> End {
        self.mode_rx.mark_unchanged();
        let initial = self.mode;
        self.set(ProxyMode::Forward);
        match initial {
            // Connected lazily, or never.
            ProxyMode::Blackhole
            | ProxyMode::StallReads
            | ProxyMode::Refuse
            | ProxyMode::Close
            | ProxyMode::Notice => {}
            _ => {
                if let Err(end) = self.ensure_server().await {
                    return end;
                }
            }
        }
        if let Some(end) = self.enter_now(initial).await {
            return end;
        }
        let mut cbuf = vec![0u8; BUF_SIZE];
        let mut sbuf = vec![0u8; BUF_SIZE];
        loop {
            if let Some(end) = self.process_inbox().await {
                return end;
            }
            let read_client = if self.mode == ProxyMode::StallReads {
                self.inbox_bytes < STALL_HOLD_LIMIT
            } else {
                self.inbox.is_empty()
            };
            let read_server =
                self.server.is_some() && !self.server_eof && self.mode != ProxyMode::StallServer;
            let next_out = self.out.front().map(|o| o.due);
            tokio::select! {
                biased;
                // A reset, or the proxy was dropped (sender gone): either way, RST.
                _ = self.reset.changed() => return End::Reset,
                changed = self.mode_rx.changed() => {
                    if changed.is_err() {
                        return End::Reset;
                    }
                    let mode = *self.mode_rx.borrow_and_update();
                    if let Some(end) = self.enter_now(mode).await {
                        return end;
                    }
                }
                read = self.client.read(&mut cbuf), if read_client => {
                    let n = match read {
                        Ok(0) | Err(_) => return End::Closed,
                        Ok(n) => n,
                    };
                    self.framer.buf.extend_from_slice(&cbuf[..n]);
                    while let Some((bytes, kind)) = self.framer.next() {
                        self.shared.record(self.id, kind, &bytes);
                        self.stats.requests.fetch_add(1, Ordering::SeqCst);
                        self.inbox_bytes += bytes.len();
                        self.inbox.push_back(Frame { bytes, kind, checked: false });
                    }
                }
                read = read_opt(&mut self.server, &mut sbuf), if read_server => {
                    match read {
                        Ok(0) | Err(_) => {
                            self.server_eof = true;
                            if self.out.is_empty() {
                                return End::Closed;
                            }
                        }
                        Ok(n) => {
                            let data = sbuf[..n].to_vec();
                            if let Some(end) = self.on_server_data(data).await {
                                return end;
                            }
                        }
                    }
                }
                _ = sleep_opt(next_out) => {
                    if let Some(end) = self.flush_due().await {
                        return end;
                    }
                    if self.server_eof && self.out.is_empty() {
                        return End::Closed;
                    }
                }
            }
        }
    }

    /// Puts `mode` in force.
    fn set(&mut self, mode: ProxyMode) {
        self.mode = mode;
        *lock(&self.current) = mode;
    }

    /// `mode` set on this connection now.
    async fn enter_now(&mut self, mode: ProxyMode) -> Option<End> {
        match mode {
            ProxyMode::Refuse => return Some(End::Reset),
            ProxyMode::Close => return Some(End::Fin),
            ProxyMode::CutAfterRequest => {
                self.cut_next = true;
                self.set(ProxyMode::Forward);
                return None;
            }
            ProxyMode::Garbage => {
                self.set(mode);
                return self.write_client(GARBAGE).await;
            }
            ProxyMode::Notice => {
                return Some(
                    self.write_client(NOTICE_OF_DISCONNECTION)
                        .await
                        .unwrap_or(End::Fin),
                );
            }
            ProxyMode::Drip(_) | ProxyMode::Delay(_) | ProxyMode::StallServer => {}
            ProxyMode::Blackhole => self.out.clear(),
            ProxyMode::Forward | ProxyMode::StallReads => {
                // Full speed again for what is queued.
                let now = Instant::now();
                for o in &mut self.out {
                    o.due = now;
                    o.drip = None;
                }
            }
        }
        self.set(mode);
        None
    }

    /// Handles the requests read so far, unless stalled.
    async fn process_inbox(&mut self) -> Option<End> {
        while self.mode != ProxyMode::StallReads {
            let mut frame = self.inbox.pop_front()?;
            self.inbox_bytes -= frame.bytes.len();
            if !frame.checked {
                frame.checked = true;
                if let Some((mode, fired)) = self.trigger(frame.kind) {
                    if let Some(end) = self.enter_at_request(mode, frame, fired).await {
                        return Some(end);
                    }
                    continue;
                }
            }
            match self.mode {
                ProxyMode::Blackhole => {}
                _ => {
                    if let Some(end) = self.send_to_server(&frame.bytes).await {
                        return Some(end);
                    }
                }
            }
        }
        None
    }

    /// The mode a request of `kind` switches this connection to, if any, and
    /// whom to tell once it did.
    fn trigger(&mut self, kind: RequestKind) -> Option<(ProxyMode, Option<Fired>)> {
        if self.cut_next {
            self.cut_next = false;
            return Some((ProxyMode::Refuse, None));
        }
        if let Some((mode, fired)) = self.shared.claim_arm(kind) {
            return Some((mode, Some(fired)));
        }
        if !self.request_fault_fired {
            let fault = *lock(&self.shared.request_fault);
            if let Some((want, mode)) = fault
                && matches(want, kind)
            {
                self.request_fault_fired = true;
                return Some((mode, None));
            }
        }
        None
    }

    /// `mode` takes effect at the request `frame`; `fired` is told once it did
    /// (after the switch, so that a mode set in answer is not overwritten).
    async fn enter_at_request(
        &mut self,
        mode: ProxyMode,
        frame: Frame,
        fired: Option<Fired>,
    ) -> Option<End> {
        let id = self.id;
        let tell = move || {
            if let Some(f) = fired {
                f.send_replace(Some(id));
            }
        };
        match mode {
            ProxyMode::Notice => {
                tell();
                Some(
                    self.write_client(NOTICE_OF_DISCONNECTION)
                        .await
                        .unwrap_or(End::Fin),
                )
            }
            ProxyMode::Refuse | ProxyMode::CutAfterRequest | ProxyMode::Close => {
                let end = self.send_to_server(&frame.bytes).await;
                tell();
                if end.is_some() {
                    return end;
                }
                // Let the server finish (its answer proves the request was
                // processed), swallow the answer, then cut the client.
                if let Some(s) = self.server.as_mut() {
                    let mut buf = vec![0u8; BUF_SIZE];
                    let _ = tokio::time::timeout(CUT_ANSWER_WAIT, s.read(&mut buf)).await;
                }
                Some(if mode == ProxyMode::Close {
                    End::Fin
                } else {
                    End::Reset
                })
            }
            ProxyMode::Blackhole => {
                self.set(mode);
                tell();
                None
            }
            ProxyMode::StallReads => {
                self.set(mode);
                self.inbox_bytes += frame.bytes.len();
                self.inbox.push_front(frame);
                tell();
                None
            }
            ProxyMode::Garbage => {
                self.set(mode);
                self.garbage_next_answer = true;
                tell();
                self.send_to_server(&frame.bytes).await
            }
            ProxyMode::Drip(_)
            | ProxyMode::Delay(_)
            | ProxyMode::Forward
            | ProxyMode::StallServer => {
                self.set(mode);
                tell();
                self.send_to_server(&frame.bytes).await
            }
        }
    }

    /// Connects to the target if not yet connected.
    async fn ensure_server(&mut self) -> Result<(), End> {
        if self.server.is_none() {
            match connect_target(self.shared.target).await {
                Ok(s) => self.server = Some(s),
                Err(_) => return Err(End::Reset),
            }
        }
        Ok(())
    }

    /// Forwards client bytes to the server (connecting first if needed).
    async fn send_to_server(&mut self, data: &[u8]) -> Option<End> {
        if let Err(end) = self.ensure_server().await {
            return Some(end);
        }
        let server = self.server.as_mut().expect("connected above");
        let end = write_or_reset(server, data, &mut self.reset).await;
        if end.is_none() {
            self.stats
                .to_server
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        end
    }

    /// Server bytes, handled according to the mode.
    async fn on_server_data(&mut self, data: Vec<u8>) -> Option<End> {
        let data = if std::mem::take(&mut self.garbage_next_answer) {
            GARBAGE.to_vec()
        } else {
            data
        };
        let now = Instant::now();
        match self.mode {
            ProxyMode::Blackhole => None,
            ProxyMode::Drip(every) => {
                let due = self.out.back().map_or(now, |o| o.due.max(now)) + every;
                self.out.push_back(Out {
                    due,
                    data,
                    pos: 0,
                    drip: Some(every),
                });
                None
            }
            ProxyMode::Delay(d) => {
                self.out.push_back(Out {
                    due: now + d,
                    data,
                    pos: 0,
                    drip: None,
                });
                None
            }
            _ if !self.out.is_empty() => {
                // Keep the order behind what is still queued.
                let due = self.out.back().map_or(now, |o| o.due);
                self.out.push_back(Out {
                    due,
                    data,
                    pos: 0,
                    drip: None,
                });
                None
            }
            _ => self.write_client(&data).await,
        }
    }

    /// Writes the queued server bytes that are due (one byte of a dripping chunk).
    async fn flush_due(&mut self) -> Option<End> {
        let now = Instant::now();
        while self.out.front().is_some_and(|o| o.due <= now) {
            let mut front = self.out.pop_front().expect("checked");
            match front.drip {
                Some(every) => {
                    let byte = [front.data[front.pos]];
                    front.pos += 1;
                    if front.pos < front.data.len() {
                        front.due = now + every;
                        self.out.push_front(front);
                    } else if let Some(next) = self.out.front_mut() {
                        next.due = next.due.max(now + every);
                    }
                    return self.write_client(&byte).await;
                }
                None => {
                    if let Some(end) = self.write_client(&front.data[front.pos..]).await {
                        return Some(end);
                    }
                }
            }
        }
        None
    }

    async fn write_client(&mut self, data: &[u8]) -> Option<End> {
        let end = write_or_reset(&mut self.client, data, &mut self.reset).await;
        if end.is_none() {
            self.stats
                .to_client
                .fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        end
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
            Err(_) => Some(End::Closed),
        },
    }
}

#[cfg(test)]
mod tests {
    //! The modes against a loopback echo server.

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    /// An echo server on 127.0.0.1; returns its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; BUF_SIZE];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn proxy() -> FaultProxy {
        FaultProxy::start(echo_server().await).await.unwrap()
    }

    async fn connect(p: &FaultProxy) -> TcpStream {
        let s = TcpStream::connect(p.addr()).await.unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// An LDAP-shaped message: SEQUENCE { INTEGER id, [op tag] body }.
    fn ldap_msg(id: u8, op_tag: u8, body: &[u8]) -> Vec<u8> {
        let mut inner = vec![0x02, 0x01, id, op_tag, body.len() as u8];
        inner.extend_from_slice(body);
        let mut msg = vec![0x30, inner.len() as u8];
        msg.extend_from_slice(&inner);
        msg
    }

    fn search(id: u8, body: &[u8]) -> Vec<u8> {
        ldap_msg(id, 0x63, body)
    }

    fn bind(id: u8) -> Vec<u8> {
        ldap_msg(id, 0x60, b"cn=x")
    }

    /// Reads exactly `n` bytes within `WAIT`.
    async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        tokio::time::timeout(WAIT, s.read_exact(&mut buf))
            .await
            .expect("read timed out")
            .expect("read failed");
        buf
    }

    /// Asserts nothing arrives on `s` for `d` (the connection stays up).
    async fn nothing_for(s: &mut TcpStream, d: Duration) {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(d, s.read(&mut buf)).await {
            Err(_) => {}
            Ok(r) => panic!("expected silence, got {r:?} {:?}", &buf[..4]),
        }
    }

    /// What the next read sees: data, EOF (FIN) or an error (RST).
    async fn read_outcome(s: &mut TcpStream) -> io::Result<usize> {
        let mut buf = [0u8; 256];
        tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .expect("no EOF or error within the wait")
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn forward_frames_counts_and_timestamps() {
        let p = proxy().await;
        let before = Instant::now();
        let mut c = connect(&p).await;
        let mut msgs = search(1, b"(uid=user1)");
        msgs.extend(bind(2));
        // Split a message across two writes: still framed as one.
        c.write_all(&msgs[..3]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.write_all(&msgs[3..]).await.unwrap();
        assert_eq!(read_n(&mut c, msgs.len()).await, msgs);
        assert_eq!(p.accepted(), 1);
        assert_eq!(p.accepted_since(before), 1);
        assert_eq!(p.accept_times().len(), 1);
        assert_eq!(p.request_count(Some(RequestKind::Search), b""), 1);
        assert_eq!(p.request_count(Some(RequestKind::Search), b"uid=user1"), 1);
        assert_eq!(p.request_count(Some(RequestKind::Search), b"uid=user2"), 0);
        assert_eq!(p.request_count(Some(RequestKind::Bind), b""), 1);
        assert_eq!(p.request_count(None, b""), 2);
        let conns = p.connections();
        assert_eq!(conns.len(), 1);
        assert_eq!(conns[0].requests, 2);
        assert_eq!(conns[0].bytes_to_server, msgs.len() as u64);
        assert_eq!(conns[0].bytes_to_client, msgs.len() as u64);
        assert_eq!(conns[0].mode, ProxyMode::Forward);
        // Non-LDAP bytes pass unframed.
        let mut d = connect(&p).await;
        d.write_all(b"hello").await.unwrap();
        assert_eq!(read_n(&mut d, 5).await, b"hello");
        assert_eq!(p.request_count(Some(RequestKind::Other), b"hello"), 1);
        drop((c, d));
        eventually("connections closed", || p.live() == 0).await;
        assert!(p.connections().is_empty());
    }

    #[tokio::test]
    async fn reset_and_close_at_accept_and_per_connection() {
        let p = proxy().await;
        // Reset at accept: RST.
        p.set_mode(ProxyMode::RESET);
        let mut c = connect(&p).await;
        let err = read_outcome(&mut c).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        // Close at accept: FIN (EOF, not an error).
        p.set_mode(ProxyMode::Close);
        let mut c = connect(&p).await;
        assert_eq!(read_outcome(&mut c).await.unwrap(), 0, "EOF");
        drop(c);
        eventually("the closed connections are gone", || p.live() == 0).await;
        // Per connection: only the chosen one closes.
        p.set_mode(ProxyMode::Forward);
        let mut a = connect(&p).await;
        let mut b = connect(&p).await;
        a.write_all(b"a").await.unwrap();
        b.write_all(b"b").await.unwrap();
        read_n(&mut a, 1).await;
        read_n(&mut b, 1).await;
        let ids: Vec<_> = p.connections().iter().map(|c| c.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(p.set_conn_mode(ids[0], ProxyMode::Close));
        assert_eq!(read_outcome(&mut a).await.unwrap(), 0, "a got FIN");
        drop(a);
        b.write_all(b"still").await.unwrap();
        assert_eq!(read_n(&mut b, 5).await, b"still");
        assert!(p.set_conn_mode(ids[1], ProxyMode::Refuse));
        let err = read_outcome(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        eventually("connections gone", || p.live() == 0).await;
        assert!(!p.set_conn_mode(ids[0], ProxyMode::Forward), "gone");
    }

    #[tokio::test]
    async fn stall_reads_holds_requests_backs_up_writes_and_releases() {
        let p = proxy().await;
        let mut c = connect(&p).await;
        let warm = search(1, b"warm");
        c.write_all(&warm).await.unwrap();
        read_n(&mut c, warm.len()).await;
        let id = p.connections()[0].id;
        p.set_conn_mode(id, ProxyMode::StallReads);
        eventually("stalled", || {
            p.connections()[0].mode == ProxyMode::StallReads
        })
        .await;
        let msg = search(3, b"held");
        c.write_all(&msg).await.unwrap();
        nothing_for(&mut c, Duration::from_millis(200)).await;
        assert_eq!(
            p.request_count(Some(RequestKind::Search), b"held"),
            1,
            "seen"
        );
        assert_eq!(
            p.connections()[0].bytes_to_server,
            warm.len() as u64,
            "but not forwarded"
        );
        // Released: the held request goes through.
        p.set_conn_mode(id, ProxyMode::Forward);
        assert_eq!(read_n(&mut c, msg.len()).await, msg);

        // Writes back up: 32 MiB cannot all be buffered, and TCP stays up.
        p.set_conn_mode(id, ProxyMode::StallReads);
        eventually("stalled", || {
            p.connections()[0].mode == ProxyMode::StallReads
        })
        .await;
        let (mut rd, mut wr) = c.into_split();
        let writer = tokio::spawn(async move {
            let big = vec![0u8; 32 * 1024 * 1024];
            wr.write_all(&big).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!writer.is_finished(), "the client's writes back up");
        let sent = p.connections()[0].bytes_to_server;
        assert_eq!(
            sent,
            (warm.len() + msg.len()) as u64,
            "nothing more forwarded"
        );
        let mut buf = [0u8; 8];
        assert!(
            tokio::time::timeout(Duration::from_millis(100), rd.read(&mut buf))
                .await
                .is_err(),
            "no EOF, no reset: TCP is up"
        );
        writer.abort();
        drop(rd);
        // Closing the proxy side resets what is left.
        p.reset_all();
        eventually("gone", || p.live() == 0).await;
    }

    #[tokio::test]
    async fn blackhole_discards_both_ways() {
        let p = proxy().await;
        p.set_mode(ProxyMode::Blackhole);
        let mut c = connect(&p).await;
        c.write_all(&search(1, b"lost")).await.unwrap();
        nothing_for(&mut c, Duration::from_millis(200)).await;
        assert_eq!(p.request_count(Some(RequestKind::Search), b"lost"), 1);
        assert_eq!(p.connections()[0].bytes_to_server, 0);
        p.set_mode(ProxyMode::Forward);
        c.write_all(b"back").await.unwrap();
        assert_eq!(read_n(&mut c, 4).await, b"back", "forwarding again");
    }

    #[tokio::test]
    async fn drip_sends_one_byte_per_interval() {
        let p = proxy().await;
        let mut c = connect(&p).await;
        let id = {
            c.write_all(b"w").await.unwrap();
            read_n(&mut c, 1).await;
            p.connections()[0].id
        };
        let every = Duration::from_millis(30);
        p.set_conn_mode(id, ProxyMode::Drip(every));
        eventually("dripping", || {
            p.connections()[0].mode == ProxyMode::Drip(every)
        })
        .await;
        let t = Instant::now();
        c.write_all(b"0123456789").await.unwrap();
        let mut got = Vec::new();
        let mut reads = 0;
        while got.len() < 10 {
            let mut buf = [0u8; 16];
            let n = tokio::time::timeout(WAIT, c.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
            reads += 1;
        }
        assert_eq!(got, b"0123456789");
        // Ten bytes at one per 30 ms cannot arrive sooner than 300 ms.
        assert!(t.elapsed() >= every * 10, "{:?}", t.elapsed());
        assert!(reads >= 2, "bytes came in pieces");
    }

    #[tokio::test]
    async fn delay_holds_each_answer() {
        let p = proxy().await;
        let d = Duration::from_millis(150);
        p.set_mode(ProxyMode::Delay(d));
        let mut c = connect(&p).await;
        let t = Instant::now();
        c.write_all(b"ping").await.unwrap();
        assert_eq!(read_n(&mut c, 4).await, b"ping");
        assert!(t.elapsed() >= d, "{:?}", t.elapsed());
        p.set_mode(ProxyMode::Forward);
        c.write_all(b"pong").await.unwrap();
        assert_eq!(read_n(&mut c, 4).await, b"pong");
    }

    #[tokio::test]
    async fn garbage_now_and_in_place_of_an_answer() {
        let p = proxy().await;
        let mut c = connect(&p).await;
        let warm = search(1, b"warm");
        c.write_all(&warm).await.unwrap();
        read_n(&mut c, warm.len()).await;
        let id = p.connections()[0].id;
        p.set_conn_mode(id, ProxyMode::Garbage);
        assert_eq!(read_n(&mut c, GARBAGE.len()).await, GARBAGE, "sent at once");
        // At a request: the answer is replaced.
        let mut armed = p.arm_next_request(Some(RequestKind::Search), ProxyMode::Garbage);
        assert_eq!(armed.conn(), None);
        let msg = search(4, b"(cn=*)");
        c.write_all(&msg).await.unwrap();
        assert_eq!(read_n(&mut c, GARBAGE.len()).await, GARBAGE);
        assert_eq!(armed.wait(WAIT).await.unwrap(), id);
        // Then forwarding.
        c.write_all(&msg).await.unwrap();
        assert_eq!(read_n(&mut c, msg.len()).await, msg);
    }

    #[tokio::test]
    async fn notice_sends_a_notice_of_disconnection_then_closes() {
        let p = proxy().await;
        let mut c = connect(&p).await;
        let warm = search(1, b"warm");
        c.write_all(&warm).await.unwrap();
        read_n(&mut c, warm.len()).await;
        let id = p.connections()[0].id;
        p.set_conn_mode(id, ProxyMode::Notice);
        assert_eq!(
            read_n(&mut c, NOTICE_OF_DISCONNECTION.len()).await,
            NOTICE_OF_DISCONNECTION
        );
        let mut rest = Vec::new();
        let n = tokio::time::timeout(WAIT, c.read_to_end(&mut rest))
            .await
            .expect("closed within the wait")
            .expect("an orderly close, not a reset");
        assert_eq!(n, 0, "nothing after the notice: {rest:?}");
        // Its BER lengths add up: one LDAPMessage, nothing trailing.
        assert_eq!(
            usize::from(NOTICE_OF_DISCONNECTION[1]) + 2,
            NOTICE_OF_DISCONNECTION.len()
        );
        assert_eq!(
            usize::from(NOTICE_OF_DISCONNECTION[6]) + 7,
            NOTICE_OF_DISCONNECTION.len()
        );
    }

    #[tokio::test]
    async fn armed_faults_hit_one_request_and_request_faults_every_connection() {
        let p = proxy().await;
        let mut a = connect(&p).await;
        let mut b = connect(&p).await;
        // One shot: the first bind (on b) is cut after the server answered.
        let mut armed = p.arm_next_request(Some(RequestKind::Bind), ProxyMode::Refuse);
        a.write_all(&search(1, b"s")).await.unwrap();
        read_n(&mut a, search(1, b"s").len()).await;
        b.write_all(&bind(1)).await.unwrap();
        let err = read_outcome(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        let hit = armed.wait(WAIT).await.unwrap();
        assert!(!p.connections().iter().any(|c| c.id == hit), "b is gone");
        a.write_all(&bind(2)).await.unwrap();
        assert_eq!(read_n(&mut a, bind(2).len()).await, bind(2), "one shot");

        // Every connection, at its first bind: FIN after the answer.
        p.set_request_fault(Some(RequestKind::Bind), ProxyMode::Close);
        for _ in 0..2 {
            let mut c = connect(&p).await;
            c.write_all(&search(1, b"s")).await.unwrap();
            read_n(&mut c, search(1, b"s").len()).await;
            c.write_all(&bind(2)).await.unwrap();
            assert_eq!(
                read_outcome(&mut c).await.unwrap(),
                0,
                "FIN, answer swallowed"
            );
        }
        // a already sent a bind before the fault was set, but this is its first
        // bind since: it is closed too.
        a.write_all(&bind(3)).await.unwrap();
        assert_eq!(read_outcome(&mut a).await.unwrap(), 0);
        p.clear_request_fault();
        let mut c = connect(&p).await;
        c.write_all(&bind(1)).await.unwrap();
        assert_eq!(read_n(&mut c, bind(1).len()).await, bind(1), "cleared");

        // Hold a request, then release it.
        let mut armed = p.arm_next_request(Some(RequestKind::Search), ProxyMode::StallReads);
        c.write_all(&search(9, b"hold")).await.unwrap();
        let id = armed.wait(WAIT).await.unwrap();
        nothing_for(&mut c, Duration::from_millis(100)).await;
        p.set_conn_mode(id, ProxyMode::Forward);
        assert_eq!(
            read_n(&mut c, search(9, b"hold").len()).await,
            search(9, b"hold")
        );
        assert_eq!(p.request_count(Some(RequestKind::Search), b"hold"), 1);
    }

    #[tokio::test]
    async fn cut_after_request_is_one_shot_and_reported() {
        let p = proxy().await;
        let mut c = connect(&p).await;
        p.set_mode(ProxyMode::CutAfterRequest);
        assert_eq!(p.mode(), ProxyMode::CutAfterRequest);
        c.write_all(b"anything").await.unwrap();
        let err = read_outcome(&mut c).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
        assert_eq!(p.mode(), ProxyMode::Forward, "one shot");
        let mut d = connect(&p).await;
        d.write_all(b"ok").await.unwrap();
        assert_eq!(read_n(&mut d, 2).await, b"ok");
        // Disarmed by another set_mode.
        p.set_mode(ProxyMode::CutAfterRequest);
        p.set_mode(ProxyMode::Forward);
        d.write_all(b"ok").await.unwrap();
        assert_eq!(read_n(&mut d, 2).await, b"ok");
    }

    #[tokio::test]
    async fn frame_lengths() {
        assert!(matches!(frame_len(&[0x30]), Framed::Incomplete));
        assert!(matches!(frame_len(&[0x30, 0x03, 2, 1]), Framed::Incomplete));
        assert!(matches!(frame_len(&[0x30, 0x01, 2]), Framed::Complete(3)));
        assert!(matches!(
            frame_len(&[0x30, 0x81, 1, 2]),
            Framed::Complete(4)
        ));
        assert!(matches!(frame_len(&[0x30, 0x82, 1]), Framed::Incomplete));
        assert!(matches!(frame_len(&[0x30, 0x80]), Framed::NotLdap));
        assert!(matches!(frame_len(b"GET /"), Framed::NotLdap));
        assert_eq!(message_kind(&search(1, b"x")), RequestKind::Search);
        assert_eq!(message_kind(&ldap_msg(1, 0x42, b"")), RequestKind::Unbind);
        assert_eq!(message_kind(&[0x30, 0x01, 0x05]), RequestKind::Other);
    }
}
