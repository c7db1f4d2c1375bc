//! The three objects the pool keeps, as enums of per-state data.

use std::sync::Arc;

use crate::{
    CloseReason, Config, ConnError, ConnId, CredKey, GenId, Instant, Purpose, ServerId, UserId,
    UserKind,
};

/// One generation (seed: `conn_mgmt`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Generation {
    pub(crate) config: Arc<Config>,
    /// Servers of `config` in the order new connections try them.
    pub(crate) servers: Vec<ServerId>,
    pub(crate) detached: bool,
    /// +1 while current, +1 per user, +1 per connection.
    pub(crate) refs: u32,
    /// Users holding a reference (kept so `status()` need not walk users).
    pub(crate) users: u32,
    /// Connections holding a reference.
    pub(crate) conns: u32,
}

/// One user (seed: `conn_user`). A user that ends is removed from the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct User {
    pub(crate) gen_id: GenId,
    pub(crate) kind: UserKind,
    pub(crate) cred: CredKey,
    pub(crate) server: Option<ServerId>,
    /// Needs a connection of its own (AUTH, `private`, or sharing off);
    /// decided when the user is placed, from the generation's configuration.
    pub(crate) private: bool,
    /// AUTH or asked for a private connection (seed `NS_LDAP_NEW_CONN`).
    pub(crate) wants_private: bool,
    /// Asked to share even when sharing is on request (seed `NS_LDAP_KEEP_CONN`).
    pub(crate) keep: bool,
    pub(crate) referral: bool,
    /// Runs a paged search on its connection ([`Request::pages`](crate::Request::pages)).
    pub(crate) pages: bool,
    pub(crate) attempt: u8,
    pub(crate) deadline: Instant,
    pub(crate) state: UserState,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UserState {
    /// Waiting for a connection slot (server connection limit reached).
    Queued,
    /// Waiting for `conn` to open (seed: `WAITING`).
    Waiting { conn: ConnId },
    /// Using `conn` (seed: `CONNECTED`). `enumerating` once a getent user asked
    /// for a next entry: from then on it is never retried.
    Connected { conn: ConnId, enumerating: bool },
}

impl UserState {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            UserState::Queued => "Queued",
            UserState::Waiting { .. } => "Waiting",
            UserState::Connected { .. } => "Connected",
        }
    }
}

impl User {
    pub(crate) fn purpose(&self) -> Purpose {
        if self.private {
            Purpose::Private
        } else {
            self.kind.purpose()
        }
    }
}

/// One connection (seed: `conn_mt`). A closed connection is removed from the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Conn {
    pub(crate) gen_id: GenId,
    pub(crate) server: ServerId,
    pub(crate) cred: CredKey,
    pub(crate) purpose: Purpose,
    pub(crate) referral: bool,
    pub(crate) state: ConnState,
    /// A user that pages holds it ([`Request::pages`](crate::Request::pages)):
    /// no second one may join.
    pub(crate) paging: bool,
    /// Its server announced it is closing it
    /// ([`Event::ConnClosing`](crate::Event::ConnClosing)): its death is
    /// expected and says nothing about the server.
    pub(crate) noticed: bool,
    /// When it stops taking users because the credential it was bound with
    /// is about to expire ([`Event::ConnExpires`](crate::Event::ConnExpires)).
    pub(crate) retire_at: Option<Instant>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ConnState {
    /// Being opened; `waiters` (in arrival order) are handed it when it opens.
    Connecting {
        waiters: Vec<UserId>,
        deadline: Instant,
        /// When connect racing starts a rival for it, if armed.
        race_at: Option<Instant>,
        /// The connection racing it to another server (connect racing):
        /// whichever opens first takes the waiters of both.
        rival: Option<ConnId>,
    },
    /// Open and taking users.
    Open {
        users: u32,
        opened: Instant,
        /// When the last user left, if none is attached now.
        idle_since: Option<Instant>,
        /// The instant of this connection's pending idle timer, if armed.
        idle_timer: Option<Instant>,
    },
    /// No new users; closed when the last one leaves (seed: `close_when_nouser`).
    Draining { users: u32, reason: CloseReason },
    /// Died; its users see `error` (seed: `CLOSING` with the saved error).
    Broken { users: u32, error: ConnError },
}

impl ConnState {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ConnState::Connecting { .. } => "Connecting",
            ConnState::Open { .. } => "Open",
            ConnState::Draining { .. } => "Draining",
            ConnState::Broken { .. } => "Broken",
        }
    }

    /// Users attached (granted), 0 while connecting.
    pub(crate) fn users(&self) -> u32 {
        match self {
            ConnState::Connecting { .. } => 0,
            ConnState::Open { users, .. }
            | ConnState::Draining { users, .. }
            | ConnState::Broken { users, .. } => *users,
        }
    }

    pub(crate) fn users_mut(&mut self) -> Option<&mut u32> {
        match self {
            ConnState::Connecting { .. } => None,
            ConnState::Open { users, .. }
            | ConnState::Draining { users, .. }
            | ConnState::Broken { users, .. } => Some(users),
        }
    }
}
