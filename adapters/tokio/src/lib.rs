#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Helpers shared by the optional parts (a config file's builder, DNS SRV's
// weak pool handle, metric labels) are unused in a build without them. The
// all-features build, which clippy checks with warnings denied, still finds
// dead code.
#![cfg_attr(
    not(all(feature = "metrics", feature = "config", feature = "dns-srv")),
    allow(dead_code)
)]
mod ad_password;
mod auth;
mod builder;
#[cfg(feature = "config")]
mod config_file;
mod connect;
mod credential;
mod error;
#[cfg(feature = "gssapi")]
mod gssapi;
mod guard;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
#[path = "metrics_off.rs"]
mod metrics;
mod notice;
mod ops;
mod paging;
mod pool;
mod pool_config;
mod ppolicy;
mod retry;
mod root_dse;
mod runtime;
mod search;
mod secret;
mod srv;
mod stream;
mod tls;
mod url;
#[cfg(feature = "config")]
mod watch;

pub use auth::{AuthOutcome, PasswordChange, PolicyError};
pub use builder::PoolBuilder;
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub use config_file::{ConfigFile, ConfigFileError};
pub use credential::{Credential, SaslMech};
pub use error::{BuildError, Error, LdapStatus, ReferralError, result_name};
pub use guard::ConnGuard;
pub use pool::{LeaseKind, Pool};
pub use pool_config::PoolConfig;
pub use search::{SearchOptions, SearchResults};
pub use secret::Password;
#[cfg(feature = "dns-srv")]
#[cfg_attr(docsrs, doc(cfg(feature = "dns-srv")))]
pub use srv::SrvPoolBuilder;
pub use srv::{SrvError, SrvRecord, SrvService, SrvStatus};
pub use stream::EntryStream;
pub use tls::{ClientCert, TlsOptions};
pub use url::{Scheme, ServerUrl};
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub use watch::{ConfigWatch, ReloadError, WatchOptions, WatchReport};

/// The LDAP client this crate runs on, for the types its API takes
/// ([`Pool::extended`] takes an [`ldap3::exop::Exop`], entries are
/// [`ldap3::SearchEntry`]).
pub use ldap3;
pub use ldap3::{DerefAliases, Mod, Scope, SearchEntry, dn_escape, ldap_escape};
pub use ldapmux_core::{
    Blame, ConnErrorKind, ConnId, ConnInfo, ConnPhase, Health, Instant, Purpose, ServerId,
    ServerStatus, Sharing, Status,
};

/// A setting the pool cannot run with, inside [`BuildError`].
pub use ldapmux_core::ConfigError;
/// Why the pool itself refused or failed an operation, inside
/// [`Error::Pool`] (the state machine's error, from `ldapmux-core`).
pub use ldapmux_core::Error as PoolError;

/// The pool's snapshots ([`Pool::status`], [`Pool::connections`]) and the
/// ids, phases and counters they are made of. They come from `ldapmux-core`,
/// the state machine underneath, which is otherwise not part of this API: a
/// program needs no other crate to read them.
pub mod status {
    pub use ldapmux_core::{
        CloseReason, ConnId, ConnInfo, ConnPhase, Counters, CredKey, CredStatus, GenId, GenInfo,
        GenPhase, Health, Instant, Purpose, ServerCounters, ServerId, ServerStatus, Status, UserId,
        UserInfo, UserKind, UserPhase,
    };
}
