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

#[path = "../common/mod.rs"]
mod common;
mod matrix;
mod run;

use run::run_cell;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, init_tracing, is_down, person, server_status};
use futures_util::StreamExt;
use ldapmux::status::Health;
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
/// The set-up's warm connection opens, and its server is trusted, within this.
const WARM_WITHIN: Duration = Duration::from_secs(15);
/// Once the fault is gone, the pool serves again within this.
const SERVE_AGAIN: Duration = Duration::from_secs(8);
/// Cells of one fault run at once (each has its own slapd, proxy and pool).
const PARALLEL: usize = 5;
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
