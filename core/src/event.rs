//! Inputs to the core, other than [`Pool::handle_acquire`](crate::Pool::handle_acquire)
//! and [`Pool::handle_timeout`](crate::Pool::handle_timeout).

use crate::{Config, ConnError, ConnId, Instant, ServerId, UserId};

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
    /// The credential open connection `conn` was bound with expires at `at`
    /// (a Kerberos ticket's end time, say). From
    /// [`Config::credential_expiry_margin`](crate::Config::credential_expiry_margin)
    /// before `at`, or a tenth of the time left if that is less (at once if
    /// `at` has passed), the connection takes no new users; it closes with
    /// [`CloseReason::CredentialExpiring`](crate::CloseReason::CredentialExpiring)
    /// when its last user leaves. A later report for the same connection
    /// replaces the earlier one. For a connection that is not open (no
    /// longer takes users) it does nothing.
    ConnExpires {
        /// The connection.
        conn: ConnId,
        /// When its credential expires, on the core's clock.
        at: Instant,
    },
    /// The server announced it is closing `conn`: an LDAP Notice of
    /// Disconnection (RFC 4511 §4.4.1, the unsolicited notification Active
    /// Directory sends past `MaxConnIdleTime`). An open connection takes no
    /// new users and closes
    /// ([`CloseReason::ServerNotice`](crate::CloseReason::ServerNotice)) once
    /// its last user leaves; its users go on, and if the server then cuts it
    /// they fail as on any lost connection (a read is retried). Its death is
    /// expected: unlike an unexplained one it drains no sibling connection,
    /// and the server is not suspected. For a connection being opened or
    /// already closing it only marks the death as expected.
    ConnClosing {
        /// The connection.
        conn: ConnId,
    },
    /// `user` finished with its connection but cannot vouch for the state
    /// it leaves it in (a bind answered with neither success nor
    /// invalidCredentials, an answer cut off): the connection takes no new
    /// users and closes ([`CloseReason::Retired`](crate::CloseReason::Retired))
    /// once its last user leaves: at once for a bind or private connection.
    /// The server is not suspected: it answered.
    Retire {
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
            Event::Retire { .. } => "Retire",
            Event::ConnExpires { .. } => "ConnExpires",
            Event::ConnClosing { .. } => "ConnClosing",
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
