//! Outputs of the core: I/O for the adapter to do, users to wake, and timers.

use crate::{ConnId, CredKey, Error, GenId, Instant, Purpose, ServerId, UserId};

/// Something the adapter must do. Drain them with
/// [`Pool::poll_action`](crate::Pool::poll_action) after every input.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Open a connection to `server`, bind it with `cred`, then report
    /// [`Event::ConnOpened`](crate::Event::ConnOpened) or
    /// [`Event::ConnOpenFailed`](crate::Event::ConnOpenFailed).
    Open {
        /// The new connection's id.
        conn: ConnId,
        /// Where to connect ([`Pool::server_addr`](crate::Pool::server_addr)).
        server: ServerId,
        /// What to bind with.
        cred: CredKey,
        /// What it is for.
        purpose: Purpose,
        /// The generation it belongs to.
        generation: GenId,
    },
    /// Close `conn` (unbind, then drop the socket). If it is still opening,
    /// abandon the attempt; a later report about it gets
    /// [`Error::UnknownConn`](crate::Error::UnknownConn), which is harmless.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
    /// Forget `conn` without touching its socket: it belongs to the parent
    /// process (after [`Event::Forked`](crate::Event::Forked)).
    Abandon {
        /// The connection.
        conn: ConnId,
    },
    /// Wake `user`: it may now run its operation on `conn`.
    Grant {
        /// The user.
        user: UserId,
        /// Its connection.
        conn: ConnId,
    },
    /// A getent `user` may read its next entry from `conn`.
    Resume {
        /// The user.
        user: UserId,
        /// Its connection.
        conn: ConnId,
    },
    /// `user` failed and is gone from the pool. If `retry` is true, another try
    /// ([`Request::retry`](crate::Request::retry)) is worth making.
    Fail {
        /// The user.
        user: UserId,
        /// What went wrong.
        error: Error,
        /// Whether a new try may succeed and is allowed (at most
        /// [`MAX_TRIES`](crate::MAX_TRIES) in all; never for a write that may
        /// have reached the server).
        retry: bool,
    },
    /// Check whether `server` answers, then report
    /// [`Event::ProbeResult`](crate::Event::ProbeResult).
    Probe {
        /// The server.
        server: ServerId,
    },
    /// A notice, no I/O to do: the pool has just marked `server` down (a
    /// down report, a failed connect or liveness check, a failed probe
    /// during a hold-down). Server discovery (DNS SRV) reacts to it by
    /// looking for other servers at once.
    ServerMarkedDown {
        /// The server.
        server: ServerId,
    },
}

/// Why a connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Idle longer than the idle timeout.
    Idle,
    /// Older than the maximum age, and its last user left.
    MaxAge,
    /// It died (reported by a user or the adapter), and its last user left.
    Broken,
    /// Its server was reported down.
    ServerDown,
    /// A more preferred server is back; its last user left.
    FailBack,
    /// The configuration was reloaded.
    Reload,
    /// The pool is shutting down.
    Shutdown,
    /// A private connection's user is done, or the user it was opening for left.
    Done,
    /// It did not open within the connect timeout.
    ConnectTimeout,
    /// It sat idle on a server at its connection limit, and a user needed a
    /// connection of another kind there: the one idle longest makes room.
    MakeRoom,
    /// It was opening to a less preferred server as a rival of a slow
    /// connect (connect racing), and the other one opened first.
    RaceLost,
    /// Another connection to its server died with an I/O error: it took no
    /// new users from then on, and its last user left.
    SiblingBroken,
    /// A user left it in a state it could not vouch for
    /// ([`Event::Retire`](crate::Event::Retire): a bind whose outcome is
    /// unclear, say); it took no new users from then on, and its last user
    /// left.
    Retired,
    /// The credential it was bound with (a Kerberos ticket) was about to
    /// expire ([`Event::ConnExpires`](crate::Event::ConnExpires)); it took
    /// no new users from then on, and its last user left.
    CredentialExpiring,
    /// Its server announced it is closing it (an LDAP Notice of
    /// Disconnection, [`Event::ConnClosing`](crate::Event::ConnClosing)); it
    /// took no new users from then on, and its last user left.
    ServerNotice,
}

/// The next instant the core wants [`Pool::handle_timeout`](crate::Pool::handle_timeout)
/// called, and why (for logs). Waking early or late is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeout {
    /// When.
    pub at: Instant,
    /// The earliest reason.
    pub reason: TimerReason,
}

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerReason {
    /// A waiting user's deadline.
    UserDeadline,
    /// An opening connection's connect timeout.
    ConnectTimeout,
    /// An idle connection's idle timeout.
    Idle,
    /// A connection's maximum age.
    MaxAge,
    /// The next probe of a down server, or of a returning one during (and
    /// at the end of) its fail-back hold-down.
    Probe,
    /// A probe's or liveness check's answer is overdue.
    ProbeOverdue,
    /// A slow connect gets a rival to the next server (connect racing).
    ConnectRace,
    /// A connection's credential is about to expire
    /// ([`Event::ConnExpires`](crate::Event::ConnExpires)).
    CredentialExpiry,
}
