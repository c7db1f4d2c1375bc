//! # ldapmux-blocking: the ldapmux pool for synchronous callers
//!
//! The same pool as [`ldapmux`], for code that cannot be async: an NSS
//! module, a PAM helper, a command-line tool. Every call blocks the calling
//! thread until the operation ends or its timeout passes (the pool's
//! operation timeout, retries included). Calls are safe from many threads at
//! once; there is one small I/O runtime per pool (one thread driving every
//! connection's socket and the pool's timer), not one per connection or per
//! call, and each call runs its operation on the calling thread.
//!
//! [`Pool`] and [`ConnGuard`] have the methods of [`ldapmux::Pool`] and
//! [`ldapmux::ConnGuard`], with the same names, receivers, arguments and
//! results; the differences are that they block where those are `async`,
//! that [`Pool::streaming_search`] gives an [`Iterator`] ([`Entries`])
//! where the async pool gives a `Stream`, and that a pool starts with
//! [`Pool::new`] rather than [`PoolBuilder::build`]. Not here:
//! `ldapmux::Pool::watch` (its watcher reloads the async pool directly,
//! and the blocking pool must know every configuration it runs to rebuild
//! it after a fork; reload from the file with [`Pool::reload`]).
//!
//! **Fork safety** (behaviour 15): the pool remembers the process id it was
//! built in. The first call in a child process after `fork()` finds another
//! process id, forgets the parent's pool *without touching it* (no unbind,
//! no close: those sockets belong to the parent, and the child has none of
//! the parent's threads) and builds a fresh pool from the builder last
//! accepted ([`Pool::new`] or [`Pool::reload`]), so the child opens its own
//! connections. A [`ConnGuard`] or [`Entries`] taken before the fork is the
//! parent's: in the child it fails with `Forked`.
//!
//! ```no_run
//! use ldapmux_blocking::{Pool, PoolBuilder, Scope};
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::new(PoolBuilder::new().preferred_server("ldap://127.0.0.1:3891").server("ldap://127.0.0.1:3892"))?;
//! let entries = pool.search("ou=people,dc=example,dc=com", Scope::OneLevel, "(uid=alice)", &["uidNumber"])?;
//! println!("{} entries; {} connections", entries.len(), pool.status().conns);
//! # Ok(()) }
//! ```
//!
//! Do not call these methods from inside an async runtime: they block.
//!
//! Cargo features are ldapmux's, forwarded: `ring` (default) or `aws-lc-rs`,
//! `metrics` (default: [`Pool::publish_metrics`]), `config` (default:
//! configuration files, through [`ldapmux::ConfigFile`]) and `dns-srv`
//! (servers from DNS SRV records; `Pool::dns_srv_status`).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod entries;
mod guard;
mod instance;
mod pool;

pub use entries::Entries;
pub use guard::ConnGuard;
pub use pool::Pool;

/// The LDAP client the pool runs on, for the types its API takes
/// ([`Pool::extended`] takes an [`ldap3::exop::Exop`]).
pub use ldapmux::ldap3;
/// The pool's snapshots and the ids, phases and counters they are made of
/// (see [`ldapmux::status`]).
pub use ldapmux::status;
pub use ldapmux::{
    AuthOutcome, BuildError, ConfigError, ConnId, ConnInfo, Credential, DerefAliases, Error,
    Health, Instant, LdapStatus, LeaseKind, Mod, Password, PasswordChange, PolicyError,
    PoolBuilder, PoolError, Scope, SearchEntry, SearchOptions, SearchResults, ServerId, SrvStatus,
    Status, dn_escape, ldap_escape,
};
