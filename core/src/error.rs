//! Errors, split by who is to blame: the server or network, the configuration,
//! the caller, or the pool's lifecycle.

use crate::{ConnId, ServerId, UserId};

/// What went wrong with a connection, as the adapter saw it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnError {
    /// The class of failure; the core acts on this.
    pub kind: ConnErrorKind,
    /// Free text for logs. Adapters must not put secrets here.
    pub message: String,
}

impl ConnError {
    /// A connection error of `kind` with a message.
    pub fn new(kind: ConnErrorKind, message: impl Into<String>) -> Self {
        ConnError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// Classes of connection failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ConnErrorKind {
    /// TCP connect refused or unreachable.
    Refused,
    /// Connect, TLS or bind did not finish in time.
    Timeout,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// The server rejected the bind credential. Says nothing about the
    /// server's health, so the server is not marked down.
    InvalidCredentials,
    /// The connection closed or reset, or the server sent garbage.
    Io,
    /// The server was reported down (by a notice or a probe).
    ServerDown,
}

impl ConnErrorKind {
    /// Whether this failure says the server is unhealthy.
    pub fn implicates_server(self) -> bool {
        !matches!(self, ConnErrorKind::InvalidCredentials)
    }
}

/// Who is to blame for an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Blame {
    /// A server or the network failed.
    Server,
    /// The configuration is wrong.
    Configuration,
    /// The caller broke the API contract.
    Caller,
    /// The pool shut down, reloaded or forked.
    Lifecycle,
}

/// Every error the core reports: in [`Action::Fail`](crate::Action::Fail) to a
/// user, or from [`Pool::handle`](crate::Pool::handle) to the caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- server / network ----
    /// The connection the user waited for could not be opened.
    #[error("could not connect to {server}: {cause}")]
    ConnectFailed {
        /// The server tried.
        server: ServerId,
        /// What the adapter saw.
        cause: ConnError,
    },
    /// The user's connection died under it.
    #[error("connection to {server} lost: {cause}")]
    ConnectionLost {
        /// The server of the lost connection.
        server: ServerId,
        /// What the adapter (or a server-down notice) reported.
        cause: ConnError,
    },
    /// The user named a server that is known to be down.
    #[error("server {server} is down")]
    ServerDown {
        /// The server.
        server: ServerId,
    },
    /// Every configured server is known to be down.
    #[error("no server is available")]
    NoServerAvailable,
    /// No connection became available before the user's deadline.
    #[error("timed out waiting for a connection")]
    AcquireTimeout,

    // ---- configuration ----
    /// The configuration given is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The server rejected the credential the connection was bound with.
    #[error("server {server} rejected the credential")]
    InvalidCredentials {
        /// The server that rejected it.
        server: ServerId,
    },

    // ---- caller misuse ----
    /// The user id is not (or no longer) known: it finished, failed or was
    /// cancelled. Harmless after a terminal action; adapters may ignore it.
    #[error("unknown or finished user {0}")]
    UnknownUser(UserId),
    /// The connection id is not (or no longer) known, e.g. the core already
    /// closed it. Adapters may ignore it for an `Opened` that raced a `Close`.
    #[error("unknown or closed connection {0}")]
    UnknownConn(ConnId),
    /// The event does not fit the object's state, e.g. `Release` of a user
    /// that was never granted a connection.
    #[error("{event} is not valid for {object} in state {state}")]
    UnexpectedEvent {
        /// The event's name.
        event: &'static str,
        /// The object, e.g. `u3`.
        object: String,
        /// The object's state.
        state: &'static str,
    },
    /// A request's `attempt` is 0 or above [`MAX_TRIES`](crate::MAX_TRIES).
    #[error("attempt {attempt} is outside 1..={max}")]
    BadAttempt {
        /// The attempt given.
        attempt: u8,
        /// The most allowed.
        max: u8,
    },
    /// The server id is not in the server table.
    #[error("unknown server {0}")]
    UnknownServer(ServerId),
    /// Too many servers were named (the table holds 65 535).
    #[error("server table is full")]
    ServerTableFull,

    // ---- lifecycle ----
    /// The pool is shut down; no connection will be handed out again.
    #[error("the connection pool is shut down")]
    ShutDown,
    /// The process forked; connections of the parent are not usable here.
    #[error("the process forked; the parent's connections were dropped")]
    Forked,
    /// The configuration was reloaded while the user waited on the old
    /// generation and the new generation could not take it.
    #[error("the configuration was reloaded")]
    Reloaded,
}

impl Error {
    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            Error::ConnectFailed { .. }
            | Error::ConnectionLost { .. }
            | Error::ServerDown { .. }
            | Error::NoServerAvailable
            | Error::AcquireTimeout => Blame::Server,
            Error::Config(_) | Error::InvalidCredentials { .. } => Blame::Configuration,
            Error::UnknownUser(_)
            | Error::UnknownConn(_)
            | Error::UnexpectedEvent { .. }
            | Error::BadAttempt { .. }
            | Error::UnknownServer(_)
            | Error::ServerTableFull => Blame::Caller,
            Error::ShutDown | Error::Forked | Error::Reloaded => Blame::Lifecycle,
        }
    }
}

/// What is wrong with a [`Config`](crate::Config).
#[derive(Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No server is configured.
    #[error("no server configured")]
    NoServers,
    /// A server address is empty.
    #[error("server {index} has an empty address")]
    EmptyServerAddress {
        /// Position in the list.
        index: usize,
    },
    /// A server appears twice (addresses compare case-insensitively).
    #[error("server {addr} is listed twice")]
    DuplicateServer {
        /// The address.
        addr: String,
    },
    /// More than 65 535 servers.
    #[error("too many servers")]
    TooManyServers,
    /// A limit that must be at least 1 is 0.
    #[error("{field} must be at least 1")]
    ZeroLimit {
        /// The field.
        field: &'static str,
    },
    /// A duration that must be positive is zero.
    #[error("{field} must be positive")]
    ZeroDuration {
        /// The field.
        field: &'static str,
    },
    /// `probe_backoff_max` is below `probe_backoff_min`.
    #[error("probe_backoff_max is below probe_backoff_min")]
    BackoffRange,
}
