//! What the driver needs from a runtime: I/O, a timer and a clock.

use ldapmux_core::{CloseReason, ConnId, CredKey, GenId, Instant, Purpose, ServerId};

/// A connection the runtime must open and bind, then report with
/// [`Driver::conn_opened`](crate::Driver::conn_opened) or
/// [`Driver::conn_open_failed`](crate::Driver::conn_open_failed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    /// The connection's id.
    pub conn: ConnId,
    /// The server's id.
    pub server: ServerId,
    /// The server's address, e.g. `ldap://127.0.0.1:3891`.
    pub addr: String,
    /// The credential to bind with (the runtime keeps the secrets).
    pub cred: CredKey,
    /// Read, write or private.
    pub purpose: Purpose,
    /// The generation the connection belongs to.
    pub generation: GenId,
}

/// The runtime side of the driver. Every method is called **without** the
/// driver's lock held, so an implementation may call back into the driver
/// (even synchronously, from inside the call).
pub trait Io: Send + Sync {
    /// Open and bind a connection; report the outcome to the driver.
    fn open(&self, request: OpenRequest);
    /// Close a connection (unbind, drop the socket). If it is still opening,
    /// abandon the attempt; reports about it later are ignored.
    fn close(&self, conn: ConnId, reason: CloseReason);
    /// Forget a connection without touching its socket (after `fork`).
    fn abandon(&self, conn: ConnId);
    /// Check whether a server answers; report with
    /// [`Driver::probe_result`](crate::Driver::probe_result).
    fn probe(&self, server: ServerId, addr: &str);
    /// The pool's next deadline changed: read
    /// [`Driver::next_timeout`](crate::Driver::next_timeout) and call
    /// [`Driver::on_timer`](crate::Driver::on_timer) then (or never, if it is
    /// `None`). Stale or repeated calls are harmless: the deadline read is
    /// always the latest.
    fn timer_changed(&self);
    /// A notice: the pool has just marked `server` down. Nothing to do for
    /// the I/O; discovery (DNS SRV) may look for other servers at once. The
    /// default ignores it.
    fn server_marked_down(&self, server: ServerId, addr: &str) {
        let _ = (server, addr);
    }
}

/// The driver's clock, on the scale of the core's [`Instant`].
///
/// Unlike [`Io`], `now` is called **with** the driver's lock held, so that
/// inputs reach the pool in time order: it must be monotonic, must not block,
/// and must not call back into the driver.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// A clock reading `std::time::Instant` relative to when it was made.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    start: std::time::Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        SystemClock {
            start: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }
}
