//! What a user asks for.

use crate::{CredKey, Instant};

/// The kind of operation a user runs (the seed's `ns_conn_user_type_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserKind {
    /// One search. Shares read connections.
    Search,
    /// A getent enumeration: keeps one read connection across its entries.
    Getent,
    /// An add/modify/delete. Shares only write connections; never retried once
    /// its request may have reached the server.
    Write,
    /// A password check (`pam_ldap`): one of the server's exclusive bind
    /// connections ([`Purpose::Bind`]), re-bound by each check, or a private
    /// connection when [`Config::bind_conns_per_server`](crate::Config::bind_conns_per_server)
    /// is 0.
    Auth,
}

/// What a connection is opened for; connections are shared only within one purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Purpose {
    /// Search and getent.
    Read,
    /// Writes.
    Write,
    /// A private connection for one user that asked for one (or an AUTH
    /// user when bind connections are off); it is closed when that user is
    /// done.
    Private,
    /// A bind connection: password checks only, one at a time, each check
    /// re-binding it. It is never given to a search or write user and never
    /// to two users at once; it stays open for the next check until it idles
    /// out ([`Config::write_idle_timeout`](crate::Config::write_idle_timeout)),
    /// and there are at most
    /// [`Config::bind_conns_per_server`](crate::Config::bind_conns_per_server)
    /// per server and generation: further checks wait for one to be free.
    Bind,
}

impl Purpose {
    /// Whether users share connections of this purpose at once (read and
    /// write connections; a private one has one user, a bind connection one
    /// at a time).
    pub fn is_shared(self) -> bool {
        matches!(self, Purpose::Read | Purpose::Write)
    }
}

impl UserKind {
    /// The purpose of a shared connection this kind of user may use.
    pub fn purpose(self) -> Purpose {
        match self {
            UserKind::Search | UserKind::Getent => Purpose::Read,
            UserKind::Write => Purpose::Write,
            UserKind::Auth => Purpose::Bind,
        }
    }
}

/// A request for a connection. Build one with [`Request::new`] and the setters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// What the user will do with the connection.
    pub kind: UserKind,
    /// The credential the connection must be bound with.
    pub cred: CredKey,
    /// Only a connection to this server will do (seed: `server` argument).
    /// An address not in the configuration is added to the server table.
    pub server: Option<String>,
    /// Demand a private connection (seed: `NS_LDAP_NEW_CONN`).
    pub private: bool,
    /// Ask to share even when sharing is [`Sharing::OnRequest`](crate::Sharing)
    /// (seed: `NS_LDAP_KEEP_CONN`).
    pub keep: bool,
    /// The user follows a referral; referral users share only with each other.
    pub referral: bool,
    /// The user runs a paged search (RFC 2696) on its connection. A server
    /// keeps one paging state per connection (slapd refuses a second paged
    /// search beside the first), so the core puts at most one paging user on
    /// a connection at a time; other users share it as usual.
    pub pages: bool,
    /// Which try this is, from 1. A retry after a [`Action::Fail`](crate::Action)
    /// with `retry: true` passes the previous value plus one.
    pub attempt: u8,
    /// Give up waiting at this instant; `None` uses the configured default.
    pub deadline: Option<Instant>,
}

impl Request {
    /// A first try of `kind` with credential `cred`, any server, shared.
    pub fn new(kind: UserKind, cred: CredKey) -> Self {
        Request {
            kind,
            cred,
            server: None,
            private: false,
            keep: false,
            referral: false,
            pages: false,
            attempt: 1,
            deadline: None,
        }
    }
    /// Restricts the request to one server.
    pub fn server(mut self, addr: impl Into<String>) -> Self {
        self.server = Some(addr.into());
        self
    }
    /// Asks for a private connection.
    pub fn private(mut self) -> Self {
        self.private = true;
        self
    }
    /// Asks to share even when sharing is on request only.
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }
    /// Marks the user as following a referral.
    pub fn referral(mut self) -> Self {
        self.referral = true;
        self
    }
    /// Marks the user as running a paged search on its connection.
    pub fn paging(mut self) -> Self {
        self.pages = true;
        self
    }
    /// Sets the try number (1 for a first try).
    pub fn attempt(mut self, attempt: u8) -> Self {
        self.attempt = attempt;
        self
    }
    /// Sets the deadline for waiting.
    pub fn deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(at);
        self
    }
    /// The next try of the same request.
    pub fn retry(&self) -> Self {
        let mut next = self.clone();
        next.attempt = self.attempt.saturating_add(1);
        next.deadline = None;
        next
    }
}
