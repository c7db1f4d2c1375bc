//! # ldapmux: a shared, fail-over LDAP connection pool for tokio
//!
//! Many concurrent operations share a few long-lived, bound LDAP connections
//! (on [`ldap3`] and rustls). Connects are coalesced; reads, writes and
//! password checks are kept apart; connections are matched by server and
//! credential; a preferred-server list gives fail-over and make-before-break
//! fail-back; dead connections send their reads to another server (at most 3
//! tries); writes are never retried blindly; a reload drains the old
//! configuration; shutdown fails everyone cleanly. The decisions are made by
//! the sans-IO state machine [`ldapmux_core`] behind the thread-safe
//! [`ldapmux_driver`]; this crate owns the sockets, timers and secrets.
//!
//! ```no_run
//! use ldapmux::{Credential, Password, Pool, Scope};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder()
//!     .preferred_server("ldap://127.0.0.1:3891")     // used first, failed back to
//!     .server("ldap://127.0.0.1:3892")               // used while the first is down
//!     .credential(Credential::simple("cn=reader,dc=example,dc=com", "secret"))
//!     .build()?;
//! let people = pool.search("ou=people,dc=example,dc=com", Scope::OneLevel, "(uid=alice)", &["cn"]).await?;
//! let ok = pool.authenticate("uid=alice,ou=people,dc=example,dc=com", &Password::new("alices-pw")).await?;
//! let admin = pool.with_credential(Credential::simple("cn=admin,dc=example,dc=com", "admin-pw"));
//! admin.delete("uid=bob,ou=people,dc=example,dc=com").await?;
//! let status = pool.status();
//! println!("{} entries, password ok: {ok}, {} connections", people.len(), status.conns);
//! pool.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## What each operation does
//!
//! * An operation asks the pool for a connection of its kind (read, write,
//!   or a private one for [`Pool::authenticate`]), runs, and gives the
//!   connection back. Its timeout bounds the whole call: the wait for a
//!   connection, every try, and the answer.
//! * A read whose connection dies is retried on another connection or
//!   server, at most 3 tries in all. A write whose connection died after
//!   the request may have been sent returns [`Error::OutcomeUnknown`] and is
//!   never retried (RFC 4511).
//! * An LDAP result other than success (noSuchObject, sizeLimitExceeded, …)
//!   is [`Error::Ldap`]: the server answered, nothing is marked down.
//! * An operation that times out retires its connection (no new users; it
//!   closes when its other users leave) and triggers a liveness check of its
//!   server: if a fresh connection cannot read the root DSE within the
//!   connect timeout, the server is marked down and reads move on. This is
//!   what makes a frozen server (TCP up, nothing answering) harmless.
//! * A connection is bound once, right after it opens, before anyone uses
//!   it, and never again: [`ConnGuard`] offers no bind.
//!
//! ## Configuration files
//!
//! [`PoolBuilder::from_ldap_conf`], [`PoolBuilder::from_toml`] and
//! [`PoolBuilder::from_env`] (`LDAPCONF`, `LDAPURI`) fill a builder from an
//! OpenLDAP `ldap.conf` and an ldapmux TOML file; [`ConfigFile`] lists the
//! keys, and [`ConfigFileError`] names the file, line and key of a problem.
//! [`Pool::watch`] reloads the pool when the files change (an invalid new
//! file is refused and the old configuration keeps serving), and
//! [`ConfigWatch::reload_now`] re-reads them on demand, e.g. on SIGHUP.
//!
//! ## Metrics
//!
//! The pool records counters, gauges and a histogram through the
//! [`metrics`](::metrics) facade: operations by kind and outcome, retries,
//! fail-overs and fail-backs, connections by server, credential label and
//! state, waiters, and the wait for a connection. Install any recorder
//! (e.g. a Prometheus exporter); the [`ldapmux::metrics`](crate::metrics)
//! module lists every name and label. Labels never carry a password, nor a
//! bind DN unless [`PoolBuilder::metrics_bind_dn_labels`] asks for it.
//!
//! ## Secrets and logs
//!
//! Passwords live only in this crate, in [`Password`] (redacted in `Debug`
//! and `Display`, zeroed on drop). The core sees only opaque credential
//! keys. `tracing` events (spans `ldapmux.op`; events for connection open,
//! failure, loss, close, probes, liveness checks, reload and shutdown) carry
//! connection and server ids, URLs and bind DNs, never a password.

mod builder;
mod config_file;
mod connect;
mod credential;
mod error;
mod guard;
pub mod metrics;
mod ops;
mod pool;
mod retry;
mod runtime;
mod secret;
mod srv;
mod stream;
mod tls;
mod url;
mod watch;

pub use builder::{PoolBuilder, PoolSettings};
pub use config_file::{ConfigFile, ConfigFileError};
pub use credential::Credential;
pub use error::{BuildError, Error, LdapStatus, result_name};
pub use guard::ConnGuard;
pub use pool::{LeaseKind, Pool};
pub use secret::Password;
pub use srv::{SrvError, SrvRecord, SrvService, SrvStatus};
pub use stream::EntryStream;
pub use tls::TlsOptions;
pub use url::{Scheme, ServerUrl};
pub use watch::{ConfigWatch, ReloadError, WatchOptions, WatchReport};

pub use ldap3::{Mod, Scope, SearchEntry};
/// The core crate, for its status and error types.
pub use ldapmux_core as core;
pub use ldapmux_core::{Blame, ConnErrorKind, ConnInfo, ConnPhase, Health, Sharing, Status};
