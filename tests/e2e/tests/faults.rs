//! Issue 9, "Faults": a matrix of fault × operation × moment against real
//! slapd behind the loopback fault proxy (127.0.0.1 only).
//!
//! Faults: reset (RST), FIN close, stalled reads, black hole, drip (one byte
//! per 250 ms), garbage bytes, delayed replies (150 ms), slapd SIGKILL,
//! slapd SIGSTOP. Operations: search, enumeration (`streaming_search`),
//! write (add while connecting/binding, modify-increment mid-operation and
//! idle), auth (`Pool::authenticate`). Moments: during connect (fault from
//! the accept), during bind (fault at the first BindRequest of each
//! connection; search/enumeration pools bind as a user for it), mid-operation
//! (fault at the operation's own request on a warm connection) and while
//! idle (fault on the warm connection before the operation). Auth has only
//! the first two moments: its private connection is never idle, and its one
//! request is its bind.
//!
//! Every cell (one slapd, one proxy, one pool of its own) asserts:
//! - the operation ends within operation + connect timeout + margin, with the
//!   outcome the table below expects (a result or a typed error);
//! - how many times the proxy saw the operation's request (reads: within the
//!   3-try budget, exact where the fault determines it; writes and binds:
//!   never more than once, i.e. never retried after sending) and that the
//!   pool made at most 3 tries;
//! - writes: read back on slapd directly (modify increments `uidNumber`, so a
//!   second application shows): applied exactly as the outcome implies;
//! - while the server is dead or refusing, user traffic does not cause a retry
//!   storm: connect attempts counted on the proxy stay within what the probe
//!   backoff allows;
//! - once the fault is gone the pool serves again; after `shutdown` its status
//!   shows no connection, user or generation, the proxy no live connection,
//!   and slapd's monitor none of ours.

mod common;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, eventually_async, init_tracing, is_down, person, server_status};
use futures_util::StreamExt;
use ldapmux::{Credential, Error, LeaseKind, Mod, Password, Pool, Scope};
use ldapmux_harness::{FIRST_UID, FaultProxy, ProxyMode, RequestKind, Slapd};

const OP_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Slack on every upper bound, for a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
/// Drip interval: a 14-byte bind or modify response takes ≥ 3.25 s, longer
/// than both timeouts, however fast the machine.
const DRIP: Duration = Duration::from_millis(250);
/// Reply delay: well inside both timeouts.
const DELAY: Duration = Duration::from_millis(150);
const PROBE_MIN: Duration = Duration::from_millis(200);
const PROBE_MAX: Duration = Duration::from_millis(800);
/// How long user traffic runs against a dead server in the storm check.
const STORM_WINDOW: Duration = Duration::from_millis(1200);
/// Cells of one fault run at once (each has its own slapd, proxy and pool).
const PARALLEL: usize = 7;
/// A cell that takes longer than this has hung.
const CELL_DEADLINE: Duration = Duration::from_secs(60);

/// The user whose entry the operations read, write and authenticate as.
const USER: usize = 3;
/// The user search and enumeration pools bind as in the bind moment.
const POOL_USER: usize = 1;
/// What the enumeration reads (three entries).
const ENUM_FILTER: &str = "(|(uid=user3)(uid=user4)(uid=user5))";
/// The entry the write adds in the connect and bind moments.
const ADD_CN: &str = "fault-cell-add";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Reset,
    Fin,
    Stall,
    Blackhole,
    Drip,
    Garbage,
    Delay,
    Kill,
    Freeze,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Search,
    Enumerate,
    Write,
    Auth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Moment {
    Connect,
    Bind,
    MidOp,
    Idle,
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    fault: Fault,
    op: OpKind,
    moment: Moment,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fault = match self.fault {
            Fault::Reset => "reset",
            Fault::Fin => "FIN close",
            Fault::Stall => "stall reads",
            Fault::Blackhole => "black hole",
            Fault::Drip => "drip",
            Fault::Garbage => "garbage",
            Fault::Delay => "delay",
            Fault::Kill => "slapd SIGKILL",
            Fault::Freeze => "slapd SIGSTOP",
        };
        let op = match self.op {
            OpKind::Search => "search",
            OpKind::Enumerate => "enumeration",
            OpKind::Write => self.write_name(),
            OpKind::Auth => "auth",
        };
        let moment = match self.moment {
            Moment::Connect => "during connect",
            Moment::Bind => "during bind",
            Moment::MidOp => "mid-operation",
            Moment::Idle => "while idle",
        };
        write!(f, "[{fault} × {op} × {moment}]")
    }
}

impl Cell {
    /// Writes add an entry while connecting or binding (nothing to apply
    /// twice there), and increment a counter mid-operation and idle (a
    /// second application would show).
    fn uses_add(&self) -> bool {
        matches!(self.moment, Moment::Connect | Moment::Bind)
    }

    fn write_name(&self) -> &'static str {
        if self.uses_add() {
            "write (add)"
        } else {
            "write (modify)"
        }
    }

    /// The request kind that carries the operation.
    fn request_kind(&self) -> RequestKind {
        match self.op {
            OpKind::Search | OpKind::Enumerate => RequestKind::Search,
            OpKind::Write if self.uses_add() => RequestKind::Add,
            OpKind::Write => RequestKind::Modify,
            OpKind::Auth => RequestKind::Bind,
        }
    }

    /// Bytes only the operation's request contains.
    fn marker(&self) -> Vec<u8> {
        match self.op {
            OpKind::Search => format!("user{USER}").into_bytes(),
            OpKind::Enumerate => b"user4".to_vec(),
            OpKind::Write if self.uses_add() => ADD_CN.as_bytes().to_vec(),
            OpKind::Write | OpKind::Auth => Slapd::user_dn(USER).into_bytes(),
        }
    }

    fn proxy_mode(&self) -> Option<ProxyMode> {
        Some(match self.fault {
            Fault::Reset => ProxyMode::RESET,
            Fault::Fin => ProxyMode::Close,
            Fault::Stall => ProxyMode::StallReads,
            Fault::Blackhole => ProxyMode::Blackhole,
            Fault::Drip => ProxyMode::Drip(DRIP),
            Fault::Garbage => ProxyMode::Garbage,
            Fault::Delay => ProxyMode::Delay(DELAY),
            Fault::Kill | Fault::Freeze => return None,
        })
    }

    /// Whether the server ends up dead or refusing (marked down) while the
    /// fault lasts: then the storm check runs.
    fn server_dead(&self) -> bool {
        match self.fault {
            Fault::Kill | Fault::Freeze => true,
            Fault::Delay => false,
            _ => matches!(self.moment, Moment::Connect | Moment::Bind),
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// The expected entries, the write done, or the password accepted.
    Ok,
    /// `Error::Timeout`.
    Timeout,
    /// `Error::OutcomeUnknown`.
    Unknown,
    /// `Error::Pool { source: ConnectFailed, .. }`: no connection could be opened.
    ConnectFailed,
    /// `Error::Pool { source: ConnectionLost, .. }`.
    Lost,
    /// Anything else (an assertion names it).
    Other,
}

/// How many times the proxy may see the operation's request.
#[derive(Clone, Copy, Debug)]
enum Sends {
    Exactly(usize),
    AtMost(usize),
}

/// What a cell must end with.
#[derive(Clone, Copy, Debug)]
struct Expect {
    classes: &'static [Class],
    sends: Sends,
    /// Writes: how many times slapd applied it.
    applied: Sends,
}

const fn expect(classes: &'static [Class], sends: Sends, applied: Sends) -> Expect {
    Expect {
        classes,
        sends,
        applied,
    }
}

/// The table: what each cell must end with, and why.
fn expected(c: Cell) -> Expect {
    use Class::*;
    use Fault::*;
    use Moment::*;
    use OpKind::*;
    use Sends::{AtMost, Exactly};
    let ok = expect(&[Ok], Exactly(1), Exactly(1));
    match (c.moment, c.fault, c.op) {
        // A slow but answering server: everything works, nothing is retried.
        (_, Delay, _) => ok,

        // Connect and bind faults: no connection opens, nothing is sent; the
        // server is marked down, so the retry finds no server and the first
        // error (the connect failure) is returned.
        (Connect | Bind, _, Search | Enumerate | Write) => {
            expect(&[ConnectFailed], Exactly(0), Exactly(0))
        }
        // Auth opens its private connection unbound (TCP only) and sends its
        // bind as the operation. Cut before the proxy read anything: the bind
        // was refused by a dead socket or sent into it; no answer either way.
        (Connect, Reset | Fin | Kill, Auth) => {
            expect(&[Lost, ConnectFailed], Exactly(0), Exactly(0))
        }
        (Connect, Garbage, Auth) => expect(&[Lost, ConnectFailed], AtMost(1), Exactly(0)),
        // The bind was sent and the connection died: not retried (like a write).
        (Bind, Reset | Fin | Garbage | Kill, Auth) => expect(&[Lost], Exactly(1), Exactly(0)),
        // The bind was sent and never answered.
        (Connect | Bind, Stall | Blackhole | Drip | Freeze, Auth) => {
            expect(&[Timeout], Exactly(1), Exactly(0))
        }

        // Mid-operation: the request was sent on a warm connection.
        // Reset / FIN / garbage after the server answered: a read is retried
        // on a new connection and succeeds; a write is outcome-unknown and
        // was applied once (the server answered before the cut).
        (MidOp, Reset | Fin | Garbage, Search | Enumerate) => expect(&[Ok], Exactly(2), Exactly(0)),
        (MidOp, Reset | Fin | Garbage, Write) => expect(&[Unknown], Exactly(1), Exactly(1)),
        // The request is held or discarded: no answer within the timeout; a
        // timed-out read is not retried (its budget is spent).
        (MidOp | Idle, Stall | Blackhole, Search | Enumerate) => {
            expect(&[Timeout], Exactly(1), Exactly(0))
        }
        (MidOp | Idle, Stall | Blackhole, Write) => expect(&[Unknown], Exactly(1), Exactly(0)),
        // The answer drips slower than the timeout; a write was applied.
        (MidOp | Idle, Drip, Search | Enumerate) => expect(&[Timeout], Exactly(1), Exactly(0)),
        (MidOp | Idle, Drip, Write) => expect(&[Unknown], Exactly(1), Exactly(1)),
        // slapd killed while it held the request: the read's retry finds the
        // server refusing; the write is outcome-unknown, and was not applied.
        (MidOp, Kill, Search | Enumerate) => expect(&[ConnectFailed, Lost], Exactly(1), Exactly(0)),
        (MidOp, Kill, Write) => expect(&[Unknown], Exactly(1), Exactly(0)),
        // slapd frozen with the request in its socket: no answer; after the
        // thaw slapd may still apply the write, but at most once.
        (MidOp | Idle, Freeze, Search | Enumerate) => expect(&[Timeout], Exactly(1), Exactly(0)),
        (MidOp | Idle, Freeze, Write) => expect(&[Unknown], Exactly(1), AtMost(1)),

        // Idle: the pool saw the warm connection die (it is watched) and
        // opens a new one for the operation.
        (Idle, Reset | Fin | Garbage, Search | Enumerate | Write) => ok,
        // slapd killed while idle: the new connection is refused; nothing sent.
        (Idle, Kill, Search | Enumerate | Write) => {
            expect(&[ConnectFailed], Exactly(0), Exactly(0))
        }

        (MidOp | Idle, _, Auth) => unreachable!("auth has no {:?} cells", c.moment),
    }
}

/// Every cell of one fault.
fn cells(fault: Fault) -> Vec<Cell> {
    let mut cells = Vec::new();
    for op in [
        OpKind::Search,
        OpKind::Enumerate,
        OpKind::Write,
        OpKind::Auth,
    ] {
        for moment in [Moment::Connect, Moment::Bind, Moment::MidOp, Moment::Idle] {
            if op == OpKind::Auth && matches!(moment, Moment::MidOp | Moment::Idle) {
                continue;
            }
            cells.push(Cell { fault, op, moment });
        }
    }
    cells
}

/// The outcome of one run of the operation.
#[derive(Debug)]
struct Ran {
    class: Class,
    detail: String,
    took: Duration,
}

fn classify(e: &Error) -> Class {
    match e {
        Error::Timeout { .. } => Class::Timeout,
        Error::OutcomeUnknown { .. } => Class::Unknown,
        Error::Pool {
            source: ldapmux::PoolError::ConnectFailed { .. },
            ..
        } => Class::ConnectFailed,
        Error::Pool {
            source: ldapmux::PoolError::ConnectionLost { .. },
            ..
        } => Class::Lost,
        _ => Class::Other,
    }
}

fn ran(r: Result<(), Error>, started: Instant) -> Ran {
    let took = started.elapsed();
    match r {
        Ok(()) => Ran {
            class: Class::Ok,
            detail: "ok".into(),
            took,
        },
        Err(e) => Ran {
            class: classify(&e),
            detail: format!("{e:?}"),
            took,
        },
    }
}

fn add_dn() -> String {
    format!("cn={ADD_CN},{}", Slapd::scratch_base())
}

/// The bound on one call: operation + connect timeout + margin.
fn call_bound() -> Duration {
    OP_TIMEOUT + CONNECT_TIMEOUT + MARGIN
}

/// Runs the cell's operation once; every await is bounded, and overrunning
/// a bound is itself a failure of the cell.
async fn run_op(cell: Cell, pool: Pool) -> Ran {
    let started = Instant::now();
    let bounded = |what: &'static str| {
        move |_| -> Ran {
            panic!(
                "{cell} {what} did not end within {:?} (operation {OP_TIMEOUT:?} + connect \
                 {CONNECT_TIMEOUT:?} + margin)",
                call_bound()
            )
        }
    };
    match cell.op {
        OpKind::Search => {
            let filter = format!("(uid={})", Slapd::user_uid(USER));
            let search = pool.search(Slapd::people_base(), Scope::OneLevel, &filter, &["uid"]);
            match tokio::time::timeout(call_bound(), search).await {
                Ok(Ok(entries)) if entries.len() == 1 => ran(Ok(()), started),
                Ok(Ok(entries)) => Ran {
                    class: Class::Other,
                    detail: format!("{} entries", entries.len()),
                    took: started.elapsed(),
                },
                Ok(Err(e)) => ran(Err(e), started),
                Err(e) => bounded("search")(e),
            }
        }
        OpKind::Enumerate => {
            let start =
                pool.streaming_search(Slapd::people_base(), Scope::OneLevel, ENUM_FILTER, &["uid"]);
            let mut stream = match tokio::time::timeout(call_bound(), start).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return ran(Err(e), started),
                Err(e) => return bounded("streaming_search")(e),
            };
            let mut entries = 0;
            // Each entry is bounded by the operation timeout; four items at most
            // (three entries, then the end).
            for _ in 0..4 {
                match tokio::time::timeout(OP_TIMEOUT + MARGIN, stream.next()).await {
                    Ok(Some(Ok(_))) => entries += 1,
                    Ok(Some(Err(e))) => return ran(Err(e), started),
                    Ok(None) if entries == 3 => return ran(Ok(()), started),
                    Ok(None) => {
                        return Ran {
                            class: Class::Other,
                            detail: format!("the stream ended after {entries} entries"),
                            took: started.elapsed(),
                        };
                    }
                    Err(_) => panic!(
                        "{cell} the next entry did not come within {:?}",
                        OP_TIMEOUT + MARGIN
                    ),
                }
            }
            panic!("{cell} the enumeration of 3 entries did not end");
        }
        OpKind::Write => {
            let write = async {
                if cell.uses_add() {
                    pool.add(&add_dn(), person(ADD_CN)).await
                } else {
                    let inc = Mod::Increment("uidNumber".to_owned(), "1".to_owned());
                    pool.modify(&Slapd::user_dn(USER), vec![inc]).await
                }
            };
            match tokio::time::timeout(call_bound(), write).await {
                Ok(r) => ran(r, started),
                Err(e) => bounded("write")(e),
            }
        }
        OpKind::Auth => {
            let password = Password::new(Slapd::user_password(USER));
            let dn = Slapd::user_dn(USER);
            let auth = pool.authenticate(&dn, &password);
            match tokio::time::timeout(call_bound(), auth).await {
                Ok(Ok(verdict)) if verdict.is_accepted() => ran(Ok(()), started),
                Ok(Ok(verdict)) => Ran {
                    class: Class::Other,
                    detail: format!("the right password was refused: {verdict:?}"),
                    took: started.elapsed(),
                },
                Ok(Err(e)) => ran(Err(e), started),
                Err(e) => bounded("authenticate")(e),
            }
        }
    }
}

fn pool_for(cell: Cell, proxy: &FaultProxy, seed: u64) -> Pool {
    let mut b = Pool::builder()
        .server(proxy.url())
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OP_TIMEOUT)
        .probe_backoff(PROBE_MIN, PROBE_MAX)
        .failback_hold_down(Duration::from_millis(200))
        .jitter_seed(seed);
    match cell.op {
        OpKind::Write => {
            b = b.credential(Credential::simple(
                ldapmux_harness::ROOT_DN,
                ldapmux_harness::ROOT_PW,
            ))
        }
        OpKind::Search | OpKind::Enumerate if cell.moment == Moment::Bind => {
            b = b.credential(Credential::simple(
                Slapd::user_dn(POOL_USER),
                Slapd::user_password(POOL_USER),
            ));
        }
        _ => {}
    }
    b.build().expect("pool")
}

/// Runs a blocking `Slapd` call (signals, waits for threads to stop, reaping)
/// on the blocking pool, so that it never stalls the runtime's two workers
/// and with them the timers of every cell running beside.
async fn off_runtime<T: Send + 'static>(
    mut server: Slapd,
    f: impl FnOnce(&mut Slapd) -> T + Send + 'static,
) -> (Slapd, T) {
    tokio::task::spawn_blocking(move || {
        let t = f(&mut server);
        (server, t)
    })
    .await
    .expect("blocking slapd call")
}

/// SIGKILL or SIGSTOP, off the runtime.
async fn kill_or_freeze(cell: Cell, server: Slapd) -> Slapd {
    let kill = cell.fault == Fault::Kill;
    off_runtime(server, move |s| if kill { s.kill() } else { s.freeze() })
        .await
        .0
}

async fn start_slapd() -> Slapd {
    tokio::task::spawn_blocking(|| Slapd::builder().users(10).groups(1).start())
        .await
        .expect("slapd start task")
        .unwrap_or_else(|e| panic!("starting slapd: {e}"))
}

/// Opens a warm connection of the kind the operation uses.
async fn warm(cell: Cell, pool: &Pool) {
    match cell.op {
        OpKind::Write => {
            let mut lease = tokio::time::timeout(call_bound(), pool.lease(LeaseKind::Write))
                .await
                .expect("warm lease in time")
                .unwrap_or_else(|e| panic!("{cell} warming a write connection: {e}"));
            let me = lease.whoami().await.expect("whoami");
            assert!(me.to_lowercase().contains("cn=admin"), "{cell} bound: {me}");
        }
        _ => {
            let filter = format!("(uid={})", Slapd::user_uid(POOL_USER));
            let search = pool.search(Slapd::people_base(), Scope::OneLevel, &filter, &["uid"]);
            let entries = tokio::time::timeout(call_bound(), search)
                .await
                .expect("warm search in time")
                .unwrap_or_else(|e| panic!("{cell} warming a read connection: {e}"));
            assert_eq!(entries.len(), 1);
        }
    }
}

/// How many times slapd applied the write.
async fn applied(cell: Cell, server: &Slapd) -> usize {
    if cell.uses_add() {
        return server
            .count_entries(&add_dn(), "(objectClass=*)")
            .await
            .expect("count");
    }
    let base = FIRST_UID as usize + USER;
    for k in 0..3 {
        let filter = format!("(uidNumber={})", base + k);
        if server
            .count_entries(&Slapd::user_dn(USER), &filter)
            .await
            .expect("count")
            == 1
        {
            return k;
        }
    }
    panic!(
        "{cell} uidNumber of user {USER} is neither {base}, {} nor {}",
        base + 1,
        base + 2
    );
}

fn check_sends(cell: Cell, what: &str, got: usize, want: Sends) {
    match want {
        Sends::Exactly(n) => assert_eq!(got, n, "{cell} {what}: expected exactly {n}, saw {got}"),
        Sends::AtMost(n) => assert!(got <= n, "{cell} {what}: expected at most {n}, saw {got}"),
    }
}

/// One line of the report.
struct Report {
    cell: Cell,
    class: Class,
    took: Duration,
    sends: usize,
    storm: Option<(usize, usize)>,
    total: Duration,
}

async fn run_cell(cell: Cell, seed: u64) -> Report {
    let cell_started = Instant::now();
    let expect = expected(cell);
    let mut server = start_slapd().await;
    let proxy = FaultProxy::start(server.addr()).await.expect("proxy");
    let pool = pool_for(cell, &proxy, seed);
    let url = proxy.url();

    if matches!(cell.moment, Moment::MidOp | Moment::Idle) {
        warm(cell, &pool).await;
        assert!(proxy.live() >= 1, "{cell} a warm connection");
    }
    let lost_before = pool.status().counters.lost;
    let acquires_before = pool.status().counters.acquires;

    // Arm the fault, run the operation.
    let mut hold = None;
    let mut mid_op = None;
    let mut faulted = Vec::new();
    match (cell.proxy_mode(), cell.moment) {
        (Some(mode), Moment::Connect) => proxy.set_mode(mode),
        (Some(mode), Moment::Bind) => proxy.set_request_fault(Some(RequestKind::Bind), mode),
        (Some(mode), Moment::MidOp) => {
            mid_op = Some(proxy.arm_next_request(Some(cell.request_kind()), mode));
        }
        (Some(mode), Moment::Idle) => {
            faulted = proxy.set_live_conns_mode(mode);
            assert!(!faulted.is_empty(), "{cell} no live connection to fault");
        }
        (None, Moment::Connect | Moment::Idle) => server = kill_or_freeze(cell, server).await,
        (None, Moment::Bind | Moment::MidOp) => {
            // Hold the request at the proxy, then kill or freeze slapd under it.
            let kind = if cell.moment == Moment::Bind {
                RequestKind::Bind
            } else {
                cell.request_kind()
            };
            hold = Some(proxy.arm_next_request(Some(kind), ProxyMode::StallReads));
        }
    }
    if cell.moment == Moment::Idle
        && matches!(
            cell.fault,
            Fault::Reset | Fault::Fin | Fault::Garbage | Fault::Kill
        )
    {
        // The warm connection died while idle: the pool notices on its own.
        eventually(
            &format!("{cell} the pool noticed its idle connection die"),
            Duration::from_secs(3),
            || pool.status().counters.lost > lost_before,
        )
        .await;
    }
    let op = tokio::spawn(run_op(cell, pool.clone()));
    if let Some(mut armed) = hold {
        let conn = armed
            .wait(call_bound())
            .await
            .unwrap_or_else(|e| panic!("{cell} the request never reached the proxy: {e}"));
        server = kill_or_freeze(cell, server).await;
        proxy.set_conn_mode(conn, ProxyMode::Forward);
    }
    let outcome = op
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    // The outcome, within its bound.
    assert!(
        outcome.took <= call_bound(),
        "{cell} took {:?}, more than {:?}",
        outcome.took,
        call_bound()
    );
    assert!(
        expect.classes.contains(&outcome.class),
        "{cell} expected one of {:?}, got {:?}: {}",
        expect.classes,
        outcome.class,
        outcome.detail
    );
    // Tries: the pool's own count, and what reached the wire.
    let tries = pool.status().counters.acquires - acquires_before;
    assert!(
        (1..=3).contains(&tries),
        "{cell} {tries} tries: the budget is 3"
    );
    let sends = proxy.request_count(Some(cell.request_kind()), &cell.marker());
    check_sends(
        cell,
        "requests of the operation seen by the proxy",
        sends,
        expect.sends,
    );
    if matches!(cell.op, OpKind::Write | OpKind::Auth) {
        assert!(
            sends <= 1,
            "{cell} sent {sends} times: never retried after sending"
        );
    }
    if let Some(armed) = &mid_op {
        let hit = armed
            .conn()
            .unwrap_or_else(|| panic!("{cell} the fault never met the operation's request"));
        faulted.push(hit);
    }
    if cell.fault != Fault::Delay && !faulted.is_empty() {
        // The pool closes a connection that failed or timed out under an
        // operation (and before the fault is lifted, a held request must not
        // be released to the server by the test itself).
        eventually(
            &format!("{cell} the pool closed the faulted connection"),
            Duration::from_secs(5),
            || {
                let live = proxy.connections();
                faulted.iter().all(|id| live.iter().all(|c| c.id != *id))
            },
        )
        .await;
    }

    // No retry storm against a dead server: user traffic for a while, then
    // count the connect attempts.
    let mut storm = None;
    if cell.server_dead() {
        let since = Instant::now();
        let users: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.with_timeout(Duration::from_millis(500));
                tokio::spawn(async move {
                    let mut ops = 0usize;
                    let until = Instant::now() + STORM_WINDOW;
                    while Instant::now() < until {
                        let search = pool.search(
                            Slapd::people_base(),
                            Scope::OneLevel,
                            "(uid=user2)",
                            &["uid"],
                        );
                        let _ = tokio::time::timeout(call_bound(), search).await;
                        ops += 1;
                        // Paces the load generator (not a wait for a condition).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ops
                })
            })
            .collect();
        let mut ops = 0;
        for u in users {
            ops += u.await.expect("storm user");
        }
        let window = since.elapsed();
        let attempts = proxy.accepted_since(since);
        // Probes come at least PROBE_MIN apart; a server that answers the
        // (bind-less) probe but fails binds is retried once per probe.
        let bound = 2 * (window.as_millis() / PROBE_MIN.as_millis()) as usize + 3;
        assert!(
            attempts <= bound,
            "{cell} retry storm: {attempts} connect attempts in {window:?} with {ops} operations \
             (the probe backoff allows {bound})"
        );
        assert!(
            server_status(&pool, &url).counters.marked_down >= 1,
            "{cell} the server was marked down"
        );
        storm = Some((attempts, ops));
    }

    // The fault goes away; the pool serves again.
    proxy.clear_request_fault();
    proxy.set_mode(ProxyMode::Forward);
    match cell.fault {
        Fault::Kill => {
            server = off_runtime(server, |s| s.restart().expect("restart slapd"))
                .await
                .0;
        }
        Fault::Freeze => server = off_runtime(server, |s| s.thaw()).await.0,
        _ => {}
    }
    if cell.op == OpKind::Write {
        let n = applied(cell, &server).await;
        check_sends(cell, "times slapd applied the write", n, expect.applied);
        if outcome.class == Class::Ok {
            assert_eq!(n, 1, "{cell} a successful write is applied once");
        }
    }
    let probe = pool.with_timeout(OP_TIMEOUT);
    eventually_async(
        &format!("{cell} the pool serves again after the fault"),
        Duration::from_secs(8),
        || {
            let probe = probe.clone();
            async move {
                probe
                    .search(
                        Slapd::people_base(),
                        Scope::OneLevel,
                        "(uid=user2)",
                        &["uid"],
                    )
                    .await
                    .is_ok_and(|e| e.len() == 1)
            }
        },
    )
    .await;
    if !cell.server_dead() {
        assert_eq!(
            server_status(&pool, &url).counters.marked_down,
            0,
            "{cell} a fault on one connection never marks the server down"
        );
    }
    assert!(!is_down(&pool, &url), "{cell} up again");

    // Shutdown: nothing left anywhere.
    let left = pool.shutdown().await;
    assert_eq!(left, 0, "{cell} sockets left open after shutdown");
    eventually(
        &format!("{cell} the pool's status is empty after shutdown"),
        Duration::from_secs(3),
        || {
            let s = pool.status();
            s.shut_down && s.conns == 0 && s.users == 0 && s.generations.is_empty()
        },
    )
    .await;
    eventually(
        &format!("{cell} the proxy has no live connection after shutdown"),
        Duration::from_secs(5),
        || proxy.live() == 0,
    )
    .await;
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{cell} slapd still counts our connections: {e}"));
    drop(proxy);
    // Stopping slapd and reaping it blocks: not on a worker.
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .expect("stopping slapd");

    Report {
        cell,
        class: outcome.class,
        took: outcome.took,
        sends,
        storm,
        total: cell_started.elapsed(),
    }
}

/// Runs every cell of `fault`, `PARALLEL` at a time, and fails naming every
/// failed cell.
async fn matrix(fault: Fault) {
    init_tracing();
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let runs: Vec<_> = cells(fault)
        .into_iter()
        .enumerate()
        .map(|(i, cell)| {
            let limit = limit.clone();
            let task = tokio::spawn(async move {
                let _slot = limit.acquire_owned().await.expect("semaphore");
                tokio::time::timeout(CELL_DEADLINE, run_cell(cell, 7 + i as u64)).await
            });
            (cell, task)
        })
        .collect();
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for (cell, task) in runs {
        match task.await {
            Ok(Ok(r)) => lines.push(format!(
                "{:<55} {:>13?} in {:>5} ms, sent {}, {}, cell {} ms",
                r.cell.to_string(),
                r.class,
                r.took.as_millis(),
                r.sends,
                r.storm.map_or("no storm check".into(), |(a, o)| format!(
                    "{a} connect attempts / {o} ops"
                )),
                r.total.as_millis()
            )),
            Ok(Err(_)) => failures.push(format!("{cell} did not finish within {CELL_DEADLINE:?}")),
            Err(e) => {
                let msg = e
                    .try_into_panic()
                    .ok()
                    .and_then(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    })
                    .unwrap_or_else(|| "cancelled".into());
                failures.push(format!("{cell}: {msg}"));
            }
        }
    }
    println!(
        "{fault:?}: {} cells in {:?}",
        lines.len() + failures.len(),
        started.elapsed()
    );
    for l in &lines {
        println!("  {l}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} {fault:?} cells failed:\n{}",
        failures.len(),
        failures.len() + lines.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset() {
    matrix(Fault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_close() {
    matrix(Fault::Fin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_reads() {
    matrix(Fault::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole() {
    matrix(Fault::Blackhole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drip() {
    matrix(Fault::Drip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage() {
    matrix(Fault::Garbage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay() {
    matrix(Fault::Delay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slapd_sigkill() {
    matrix(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slapd_sigstop() {
    matrix(Fault::Freeze).await;
}

/// The table covers every cell, and the auth cells that are not meaningful
/// are the only ones left out.
#[test]
fn the_matrix_has_126_cells() {
    let all: Vec<Cell> = [
        Fault::Reset,
        Fault::Fin,
        Fault::Stall,
        Fault::Blackhole,
        Fault::Drip,
        Fault::Garbage,
        Fault::Delay,
        Fault::Kill,
        Fault::Freeze,
    ]
    .into_iter()
    .flat_map(cells)
    .collect();
    assert_eq!(all.len(), 9 * (3 * 4 + 2));
    for c in all {
        let e = expected(c);
        assert!(!e.classes.is_empty(), "{c}");
    }
}
