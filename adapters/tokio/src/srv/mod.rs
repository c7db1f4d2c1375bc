//! DNS SRV discovery (RFC 2782): the servers come from `_ldap._tcp.<domain>`
//! or `_ldaps._tcp.<domain>`, ordered by priority and weight, and are looked
//! up again on a schedule and soon after a server fails. A changed answer
//! becomes [`Pool::reload_keeping_servers`](crate::Pool::reload_keeping_servers):
//! connections to servers still listed stay, the others drain (behaviour 11).
//!
//! The parts, from pure to I/O:
//!
//! * [`types`]: the public types ([`SrvService`], [`SrvRecord`],
//!   [`SrvStatus`], [`SrvError`]); [`config`]: the settings a builder carries.
//! * [`order`]: the order of one answer, from a seeded RNG.
//! * [`schedule`]: when to look up next, from instants given to it (TTL
//!   clamped to a floor and a ceiling; a failed lookup backs off; a server
//!   marked down pulls the next lookup forward, never closer than a floor to
//!   the previous one, so a flapping server or a failing DNS cannot cause a
//!   storm of queries).
//! * [`lookup`]: one query through `hickory-resolver`, and the URLs of its
//!   records.
//! * [`discovery`]: the task that ties them to a pool it holds weakly; it
//!   ends when the pool shuts down or is dropped (and is aborted then).
//! * [`builder`]: [`SrvPoolBuilder`](crate::SrvPoolBuilder), its `dns_*` settings and
//!   [`SrvPoolBuilder::build`](crate::SrvPoolBuilder::build).
//!
//! This module depends on the pool (`crate::pool`), never the other way:
//! the pool holds the discovery as a `pool::ServerSource`, a trait of its
//! own, and a discovery task holds the pool as a `pool::WeakPool`.

//!
//! Without the `dns-srv` feature only [`types`] is compiled: the
//! configuration's `dns_srv_service` key and [`BuildError::Discovery`](crate::BuildError::Discovery)
//! keep their types, and a `dns_srv` key is refused when the pool is built.

#[cfg(feature = "dns-srv")]
mod builder;
#[cfg(feature = "dns-srv")]
mod config;
#[cfg(feature = "dns-srv")]
mod discovery;
#[cfg(feature = "dns-srv")]
mod lookup;
#[cfg(feature = "dns-srv")]
mod order;
#[cfg(feature = "dns-srv")]
mod schedule;
#[cfg(all(test, feature = "dns-srv"))]
mod testing;
mod types;

#[cfg(feature = "dns-srv")]
pub use builder::SrvPoolBuilder;
#[cfg(feature = "dns-srv")]
pub(crate) use config::SrvConfig;
pub use types::{SrvError, SrvRecord, SrvService, SrvStatus};
