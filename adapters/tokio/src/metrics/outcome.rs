//! How an operation ended: the `outcome` label of
//! [`OPERATIONS_TOTAL`](super::OPERATIONS_TOTAL), derived from the error's
//! variant.

use ldapmux_core::ConnErrorKind;

use crate::Error;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// `OutcomeUnknown` mirrors `Error::OutcomeUnknown`.
#[allow(clippy::enum_variant_names)]
pub(crate) enum Outcome {
    Ok,
    LdapError,
    InvalidCredentials,
    AccountLocked,
    PasswordExpired,
    MustChange,
    PasswordRefused,
    Timeout,
    Unavailable,
    OutcomeUnknown,
    LeaseDead,
    InvalidRequest,
    ShutDown,
    Reloaded,
    Forked,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::LdapError => "ldap_error",
            Outcome::InvalidCredentials => "invalid_credentials",
            Outcome::AccountLocked => "account_locked",
            Outcome::PasswordExpired => "password_expired",
            Outcome::MustChange => "must_change",
            Outcome::PasswordRefused => "password_refused",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::OutcomeUnknown => "outcome_unknown",
            Outcome::LeaseDead => "lease_dead",
            Outcome::InvalidRequest => "invalid_request",
            Outcome::ShutDown => "shut_down",
            Outcome::Reloaded => "reloaded",
            Outcome::Forked => "forked",
        }
    }

    /// The outcome of an operation that failed with `error`.
    pub(crate) fn of_error(error: &Error) -> Outcome {
        use ldapmux_core::Error as Core;
        match error {
            Error::Ldap(_) => Outcome::LdapError,
            Error::OutcomeUnknown { .. } => Outcome::OutcomeUnknown,
            Error::Timeout { .. } => Outcome::Timeout,
            Error::InvalidRequest(_) => Outcome::InvalidRequest,
            Error::LeaseDead(_) => Outcome::LeaseDead,
            Error::Referral {
                reason: crate::ReferralError::Failed(e),
                ..
            } => Outcome::of_error(e),
            Error::Referral { .. } => Outcome::LdapError,
            Error::Pool { source: core, .. } => match core {
                Core::InvalidCredentials { .. } => Outcome::InvalidCredentials,
                Core::ConnectFailed { cause, .. } | Core::ConnectionLost { cause, .. }
                    if cause.kind == ConnErrorKind::InvalidCredentials =>
                {
                    Outcome::InvalidCredentials
                }
                Core::AcquireTimeout => Outcome::Timeout,
                Core::ShutDown => Outcome::ShutDown,
                Core::Reloaded => Outcome::Reloaded,
                Core::Forked => Outcome::Forked,
                other => match other.blame() {
                    ldapmux_core::Blame::Server => Outcome::Unavailable,
                    ldapmux_core::Blame::Lifecycle => Outcome::ShutDown,
                    ldapmux_core::Blame::Configuration | ldapmux_core::Blame::Caller => {
                        Outcome::InvalidRequest
                    }
                },
            },
        }
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;
    use crate::metrics::OUTCOMES;
    use crate::metrics::testing::ab;
    use ldapmux_core::ConnError;
    use std::time::Duration;

    #[test]
    fn every_error_variant_has_its_outcome() {
        use ldapmux_core::Error as Core;
        let (a, b) = ab();
        let lost = |kind| Core::ConnectionLost {
            server: a,
            cause: ConnError::new(kind, "x"),
        };
        let cases: Vec<(Error, Outcome)> = vec![
            (
                Error::Ldap(crate::LdapStatus {
                    rc: 32,
                    matched: String::new(),
                    text: "invalid credentials timeout".into(),
                    referrals: vec![],
                }),
                Outcome::LdapError,
            ),
            (
                Error::OutcomeUnknown {
                    operation: "add",
                    server: "ldap://h".into(),
                    cause: "timeout".into(),
                },
                Outcome::OutcomeUnknown,
            ),
            (
                Error::Timeout {
                    operation: "search",
                    after: Duration::from_secs(1),
                },
                Outcome::Timeout,
            ),
            (
                Error::InvalidRequest("shut down".into()),
                Outcome::InvalidRequest,
            ),
            (Error::LeaseDead("timeout".into()), Outcome::LeaseDead),
            (
                Error::Pool {
                    source: Core::InvalidCredentials { server: a },
                    server: None,
                },
                Outcome::InvalidCredentials,
            ),
            (
                Error::Pool {
                    source: Core::ConnectFailed {
                        server: a,
                        cause: ConnError::new(ConnErrorKind::InvalidCredentials, "refused"),
                    },
                    server: None,
                },
                Outcome::InvalidCredentials,
            ),
            (
                Error::Pool {
                    source: Core::ConnectFailed {
                        server: a,
                        cause: ConnError::new(ConnErrorKind::Refused, "invalid credentials"),
                    },
                    server: None,
                },
                Outcome::Unavailable,
            ),
            (
                Error::Pool {
                    source: lost(ConnErrorKind::Io),
                    server: None,
                },
                Outcome::Unavailable,
            ),
            (
                Error::Pool {
                    source: lost(ConnErrorKind::Tls),
                    server: None,
                },
                Outcome::Unavailable,
            ),
            (
                Error::Pool {
                    source: Core::ServerDown { server: b },
                    server: None,
                },
                Outcome::Unavailable,
            ),
            (
                Error::Pool {
                    source: Core::NoServerAvailable,
                    server: None,
                },
                Outcome::Unavailable,
            ),
            (
                Error::Pool {
                    source: Core::AcquireTimeout,
                    server: None,
                },
                Outcome::Timeout,
            ),
            (
                Error::Pool {
                    source: Core::ShutDown,
                    server: None,
                },
                Outcome::ShutDown,
            ),
            (
                Error::Pool {
                    source: Core::Reloaded,
                    server: None,
                },
                Outcome::Reloaded,
            ),
            (
                Error::Pool {
                    source: Core::Forked,
                    server: None,
                },
                Outcome::Forked,
            ),
            (
                Error::Pool {
                    source: Core::UnknownServer(b),
                    server: None,
                },
                Outcome::InvalidRequest,
            ),
            (
                Error::Pool {
                    source: Core::ServerTableFull,
                    server: None,
                },
                Outcome::InvalidRequest,
            ),
            (
                Error::Pool {
                    source: Core::Config(ldapmux_core::ConfigError::NoServers),
                    server: None,
                },
                Outcome::InvalidRequest,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(Outcome::of_error(&error), want, "{error:?}");
            assert!(OUTCOMES.contains(&want.as_str()), "{want:?} not listed");
        }
    }
}
