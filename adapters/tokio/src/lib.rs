#![doc = include_str!("../README.md")]
mod builder;
mod config_file;
mod connect;
mod credential;
mod error;
mod guard;
pub mod metrics;
mod ops;
mod pool;
mod pool_config;
mod retry;
mod runtime;
mod secret;
mod srv;
mod stream;
mod tls;
mod url;
mod watch;

pub use builder::PoolBuilder;
pub use config_file::{ConfigFile, ConfigFileError};
pub use credential::Credential;
pub use error::{BuildError, Error, LdapStatus, result_name};
pub use guard::ConnGuard;
pub use pool::{LeaseKind, Pool};
pub use pool_config::PoolConfig;
pub use secret::Password;
pub use srv::{SrvError, SrvPoolBuilder, SrvRecord, SrvService, SrvStatus};
pub use stream::EntryStream;
pub use tls::TlsOptions;
pub use url::{Scheme, ServerUrl};
pub use watch::{ConfigWatch, ReloadError, WatchOptions, WatchReport};

/// The LDAP client this crate runs on, for the types its API takes
/// ([`Pool::extended`] takes an [`ldap3::exop::Exop`], entries are
/// [`ldap3::SearchEntry`]).
pub use ldap3;
pub use ldap3::{Mod, Scope, SearchEntry};
/// The core crate, for its status and error types.
pub use ldapmux_core as core;
pub use ldapmux_core::{
    Blame, ConnErrorKind, ConnInfo, ConnPhase, Health, Purpose, ServerId, ServerStatus, Sharing,
    Status,
};
