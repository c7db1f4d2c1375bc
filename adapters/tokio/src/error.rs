//! The adapter's errors: [`BuildError`] for configuration, [`Error`] for
//! operations, each variant saying who is to blame. No error ever carries a
//! password: connection errors are built from ldap3/io messages, and bind
//! failures name the DN at most.

use std::path::PathBuf;
use std::time::Duration;

pub use ldapmux_core::Blame;
use ldapmux_core::{ConfigError, ConnErrorKind};

/// The configuration given to [`PoolBuilder::build`](crate::PoolBuilder::build)
/// (or [`Pool::reload`](crate::Pool::reload)) is invalid. The
/// configuration's fault (but for [`BuildError::Discovery`], see there);
/// each variant names the field, URL or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A server URL does not parse or is not a server address.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A server URL has a scheme other than `ldap`, `ldaps`, `ldapi`.
    #[error(
        "unsupported scheme {scheme:?} in server URL {url:?} (use ldap://, ldaps:// or ldapi://)"
    )]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A field has a value the pool cannot use.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The builder field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The CA file cannot be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A TLS client certificate ([`ClientCert`](crate::ClientCert), for
    /// SASL EXTERNAL) or its private key cannot be read or parsed, or the
    /// key does not belong to the certificate. Never quotes the key.
    #[error("{field} {path}: {reason}")]
    ClientCert {
        /// The configuration key: `tls_cert_file` or `tls_key_file`.
        field: &'static str,
        /// The file (or "(PEM given in memory)").
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A GSSAPI credential cannot work in this process: the client keytab
    /// or the Kerberos configuration its environment names cannot be read.
    #[error("GSSAPI: {0}")]
    Gssapi(String),
    /// TLS is needed but no trust anchor is configured (system roots off and
    /// no CA file), or the TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The pool settings are rejected by the core (limits, durations, servers).
    #[error(transparent)]
    Core(#[from] ConfigError),
    /// `build()` was called outside a tokio runtime and no runtime handle was given.
    #[error("no tokio runtime: call build() inside a runtime or pass PoolBuilder::runtime(handle)")]
    NoRuntime,
    /// [`SrvPoolBuilder::build`](crate::SrvPoolBuilder::build):
    /// the first DNS SRV lookup gave no server. The one variant that may be
    /// the DNS server's fault rather than the configuration's:
    /// [`SrvError::blame`](crate::SrvError::blame) says which.
    #[error("DNS SRV discovery: {0}")]
    Discovery(#[source] crate::SrvError),
}

/// An LDAP result other than success, returned by the server for an
/// operation. An ordinary outcome (noSuchObject, sizeLimitExceeded, an
/// invalid filter …): the connection and the server are fine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LdapStatus {
    /// The result code (RFC 4511 appendix A), e.g. 32 for noSuchObject.
    pub rc: u32,
    /// The matched DN, if the server gave one.
    pub matched: String,
    /// The server's diagnostic text.
    pub text: String,
    /// With `referral` (rc 10): the URLs of the servers that hold the
    /// entry (RFC 4511 §4.1.10). Followed only when the search asks
    /// ([`SearchOptions::follow_referrals`](crate::SearchOptions::follow_referrals)).
    pub referrals: Vec<String>,
}

impl LdapStatus {
    /// The status of a result ldap3 read.
    pub(crate) fn of(result: ldap3::LdapResult) -> LdapStatus {
        LdapStatus {
            rc: result.rc,
            matched: result.matched,
            text: result.text,
            referrals: result.refs,
        }
    }
}

impl std::fmt::Display for LdapStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LDAP result {} ({})", self.rc, result_name(self.rc))?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// What an operation on the pool can fail with.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the server answered: an ordinary LDAP result ----
    /// The server answered with a result code other than success.
    #[error("{0}")]
    Ldap(LdapStatus),

    // ---- server / network ----
    /// The pool could not give the operation a working connection, or its
    /// connection died and the tries were used up. `source` says why
    /// (connect refused, TLS certificate rejected, no server available …);
    /// the message names the server by its URL (`server`), where the core's
    /// error names one by its id.
    #[error("{}", pool_message(source, server.as_deref()))]
    Pool {
        /// The core's reason.
        source: ldapmux_core::Error,
        /// The URL of the server the reason is about, if it names one.
        server: Option<String>,
    },
    /// A write's connection died after the request may have reached the
    /// server: it may or may not have been applied (RFC 4511 §5.3). Never
    /// retried by the pool; check the entry before trying again.
    #[error(
        "outcome unknown: the connection to {server} died after the {operation} was sent ({cause})"
    )]
    OutcomeUnknown {
        /// The operation (`add`, `modify`, …).
        operation: &'static str,
        /// The server the request went to.
        server: String,
        /// What happened to the connection.
        cause: String,
    },
    /// The operation did not finish within its timeout (retries included).
    /// The connection it ran on is retired and its server checked.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// Its timeout.
        after: Duration,
    },

    // ---- caller ----
    /// The request is malformed (an invalid filter, an empty password for
    /// `authenticate`, an empty attribute value set …). Nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A leased connection ([`ConnGuard`](crate::ConnGuard)) died earlier;
    /// acquire a new one.
    #[error("this leased connection is dead: {0}")]
    LeaseDead(String),

    // ---- the directory's data ----
    /// A referral could not be followed
    /// ([`SearchOptions::follow_referrals`](crate::SearchOptions::follow_referrals)):
    /// `url` is the referral, `reason` why.
    #[error("referral to {url}: {reason}")]
    Referral {
        /// The referral's URL, as the server sent it.
        url: String,
        /// Why it was not followed, or how following it failed.
        reason: ReferralError,
    },
}

/// Why a referral was not followed, or how following it failed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferralError {
    /// Not an `ldap://` or `ldaps://` URL with a host.
    #[error("not an ldap:// or ldaps:// URL with a host")]
    NotLdap,
    /// An LDAP URL the pool cannot follow.
    #[error("the URL has {0}")]
    Invalid(&'static str),
    /// More hops than the search allowed.
    #[error("more than {0} hops")]
    TooManyHops(u8),
    /// It asks for a search already made in this chase (a referral loop).
    #[error("a loop: that search was already made")]
    Loop,
    /// The search on the referred server failed.
    #[error("{0}")]
    Failed(Box<Error>),
}

/// The core's message with its server id (`s0`) replaced by `url`.
fn pool_message(e: &ldapmux_core::Error, url: Option<&str>) -> String {
    let text = e.to_string();
    match (server_of(e), url) {
        (Some(id), Some(url)) => {
            let id = id.to_string();
            // The id is a word of its own: the first such occurrence.
            let is_word = |at: usize| {
                let after = text[at + id.len()..].chars().next();
                let before = text[..at].chars().next_back();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            };
            match text
                .match_indices(&id)
                .map(|(at, _)| at)
                .find(|&at| is_word(at))
            {
                Some(at) => format!("{}{url}{}", &text[..at], &text[at + id.len()..]),
                None => text,
            }
        }
        _ => text,
    }
}

/// The server a core error is about, if it names one.
pub(crate) fn server_of(e: &ldapmux_core::Error) -> Option<ldapmux_core::ServerId> {
    use ldapmux_core::Error as Core;
    match e {
        Core::ConnectFailed { server, .. }
        | Core::ConnectionLost { server, .. }
        | Core::ServerDown { server }
        | Core::InvalidCredentials { server } => Some(*server),
        Core::UnknownServer(server) => Some(*server),
        _ => None,
    }
}

impl Error {
    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            Error::Ldap(_) | Error::InvalidRequest(_) | Error::LeaseDead(_) => Blame::Caller,
            Error::Pool { source, .. } => source.blame(),
            Error::OutcomeUnknown { .. } | Error::Timeout { .. } => Blame::Server,
            Error::Referral {
                reason: ReferralError::Failed(e),
                ..
            } => e.blame(),
            // The directory's data sends the search where it cannot go.
            Error::Referral { .. } => Blame::Server,
        }
    }

    /// The LDAP result code, for [`Error::Ldap`].
    pub fn rc(&self) -> Option<u32> {
        match self {
            Error::Ldap(s) => Some(s.rc),
            _ => None,
        }
    }

    /// The class of connection failure behind this error, if it is one
    /// (e.g. [`ConnErrorKind::Tls`] for a certificate that did not verify).
    pub fn conn_error_kind(&self) -> Option<ConnErrorKind> {
        match self {
            Error::Pool {
                source:
                    ldapmux_core::Error::ConnectFailed { cause, .. }
                    | ldapmux_core::Error::ConnectionLost { cause, .. },
                ..
            } => Some(cause.kind),
            Error::Pool {
                source: ldapmux_core::Error::InvalidCredentials { .. },
                ..
            } => Some(ConnErrorKind::InvalidCredentials),
            _ => None,
        }
    }

    /// Whether the pool is shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(
            self,
            Error::Pool {
                source: ldapmux_core::Error::ShutDown,
                ..
            }
        )
    }
}

/// The RFC 4511 name of a result code.
pub fn result_name(rc: u32) -> &'static str {
    match rc {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        5 => "compareFalse",
        6 => "compareTrue",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        14 => "saslBindInProgress",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        33 => "aliasProblem",
        34 => "invalidDNSyntax",
        36 => "aliasDereferencingProblem",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldapmux_core::{Config, ConnError, Instant, ServerId};

    /// The ids of a core pool's first and fourth servers.
    fn ids() -> (ServerId, ServerId) {
        let core = Config::builder()
            .server("ldap://a")
            .server("ldap://b")
            .server("ldap://c")
            .server("ldap://d")
            .build()
            .unwrap();
        let s = ldapmux_core::Pool::new(core, 1, Instant::ZERO)
            .unwrap()
            .status()
            .servers;
        (s[0].id, s[3].id)
    }

    #[test]
    fn a_pool_error_names_its_server_by_url() {
        let (first, fourth) = ids();
        let e = Error::Pool {
            source: ldapmux_core::Error::ConnectFailed {
                server: first,
                cause: ConnError::new(ConnErrorKind::Refused, "refused by s0s0"),
            },
            server: Some("ldap://ldap1.example.com:389".into()),
        };
        assert_eq!(
            e.to_string(),
            "could not connect to ldap://ldap1.example.com:389: Refused: refused by s0s0"
        );
        let down = Error::Pool {
            source: ldapmux_core::Error::ServerDown { server: fourth },
            server: Some("ldaps://b".into()),
        };
        assert_eq!(down.to_string(), "server ldaps://b is down");
        let none = Error::Pool {
            source: ldapmux_core::Error::NoServerAvailable,
            server: None,
        };
        assert_eq!(none.to_string(), "no server is available");
    }
}
