//! Inputs to the core, other than [`Pool::handle_acquire`](crate::Pool::handle_acquire)
//! and [`Pool::handle_timeout`](crate::Pool::handle_timeout).

use crate::{Config, ConnError, ConnId, ServerId, UserId};

/// Something that happened outside the core.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Event {
    /// The adapter opened connection `conn` and bound it with its credential
    /// (answer to [`Action::Open`](crate::Action::Open)).
    ConnOpened {
        /// The connection.
        conn: ConnId,
    },
    /// The adapter could not open or bind `conn`.
    ConnOpenFailed {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: ConnError,
    },
    /// The adapter noticed `conn` died while no user reported it (for example
    /// its reader task ended on an idle connection).
    ConnLost {
        /// The connection.
        conn: ConnId,
        /// Why.
        error: ConnError,
    },
    /// `user` finished with its connection, successfully or with an ordinary
    /// LDAP result (the connection is fine).
    Release {
        /// The user.
        user: UserId,
    },
    /// `user` saw its connection die under it. The core answers with an
    /// [`Action::Fail`](crate::Action::Fail) saying whether another try is worth it.
    ConnBroken {
        /// The user.
        user: UserId,
        /// What the adapter saw.
        error: ConnError,
        /// Whether the user's request may have reached the server. A write
        /// whose request may have been sent is never retried (RFC 4511: its
        /// outcome is unknown).
        request_sent: bool,
    },
    /// `user` gave up (its future was dropped). It gets no further action.
    Cancel {
        /// The user.
        user: UserId,
    },
    /// A getent `user` asks for its next entry. The core answers with
    /// [`Action::Resume`](crate::Action::Resume), or with the saved error if
    /// the connection died meanwhile.
    GetNext {
        /// The user.
        user: UserId,
    },
    /// A status feed says `server` is down.
    ServerDown {
        /// The server.
        server: ServerId,
    },
    /// A status feed says `server` is up.
    ServerUp {
        /// The server.
        server: ServerId,
    },
    /// Answer to [`Action::Probe`](crate::Action::Probe).
    ProbeResult {
        /// The server probed.
        server: ServerId,
        /// Whether it answered.
        ok: bool,
    },
    /// A new configuration is in force: start a new generation.
    Reload(Box<Config>),
    /// A new server list (DNS SRV discovery, say): like [`Event::Reload`],
    /// but when the new configuration differs from the current one in its
    /// servers only, connections that are open or opening to a server the new
    /// list still has (referral connections excepted) move to the new
    /// generation with their users instead of draining. Any other difference:
    /// exactly [`Event::Reload`].
    ReloadServers(Box<Config>),
    /// Close everything and refuse every later request.
    Shutdown,
    /// This is a child process after `fork`: the parent's connections must not
    /// be used or closed from here.
    Forked,
    /// The LDAP library cannot run several operations on one connection: from
    /// now on every connection takes one user.
    MultiplexUnsupported,
}

impl Event {
    /// The event's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ConnOpened { .. } => "ConnOpened",
            Event::ConnOpenFailed { .. } => "ConnOpenFailed",
            Event::ConnLost { .. } => "ConnLost",
            Event::Release { .. } => "Release",
            Event::ConnBroken { .. } => "ConnBroken",
            Event::Cancel { .. } => "Cancel",
            Event::GetNext { .. } => "GetNext",
            Event::ServerDown { .. } => "ServerDown",
            Event::ServerUp { .. } => "ServerUp",
            Event::ProbeResult { .. } => "ProbeResult",
            Event::Reload(_) => "Reload",
            Event::ReloadServers(_) => "ReloadServers",
            Event::Shutdown => "Shutdown",
            Event::Forked => "Forked",
            Event::MultiplexUnsupported => "MultiplexUnsupported",
        }
    }
}
