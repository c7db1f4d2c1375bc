//! # ldapmux-core: the connection bookkeeping of an LDAP client, without I/O
//!
//! This crate decides which LDAP connection each operation uses. It is the
//! state machine behind Solaris/illumos libsldap's `ns_connmgmt.c`, re-designed
//! as a pure function of its inputs: many operations share a few long-lived
//! connections, opening connections is coalesced, read, write and auth users
//! are kept apart, connections are matched by server and credential, a
//! preferred-server list gives fail-over and fail-back, server-down notices
//! close connections and send their users to retry, a configuration reload
//! starts a new generation while the old one drains, and shutdown fails
//! everyone cleanly.
//!
//! ## Contract
//!
//! * **Fully deterministic, no I/O.** The core opens no sockets, reads no clock,
//!   starts no threads and awaits nothing. Every input carries `now`, an
//!   [`Instant`] on the caller's clock. Backoff jitter comes from the seed given
//!   to [`Pool::new`]. The same inputs give the same outputs, byte for byte.
//! * **Inputs** are methods named `handle_*`: [`Pool::handle_acquire`] (a user
//!   asks for a connection), [`Pool::handle`] (any other [`Event`]) and
//!   [`Pool::handle_timeout`] (time passed).
//! * **Outputs** are `#[must_use]` methods named `poll_*`: [`Pool::poll_action`]
//!   gives the next [`Action`] (open, close, grant, fail, probe, …) and
//!   [`Pool::poll_timeout`] the next instant the core wants to be called back.
//! * **Single-mutation invariant.** After every input, drain `poll_action` until
//!   it returns `None` before feeding the next input, then read `poll_timeout`.
//! * **Every user ends exactly once**: each [`UserId`] returned by
//!   `handle_acquire` is woken by exactly one [`Action::Grant`] or
//!   [`Action::Fail`], or is cancelled by the caller. A granted user later ends
//!   with [`Event::Release`], [`Event::Cancel`], or [`Event::ConnBroken`]
//!   (answered by a `Fail` that says whether to retry).
//! * **Timers are hints.** Calling `handle_timeout` early, late or twice is
//!   harmless: a spurious call does nothing.
//! * **Stale ids are errors, not corruption.** An id of an object that is gone
//!   gives [`Error::UnknownUser`] or [`Error::UnknownConn`], never a panic and
//!   never another object.
//! * **Secrets never enter the core**: credentials are opaque [`CredKey`]s.
//! * **Checkable.** [`Pool::check_invariants`] verifies the reference counts and
//!   the attachment rules; the state is `Clone + Eq + Hash` so a model checker
//!   can hold the real pool as its state.
//!
//! ## The run loop
//!
//! ```
//! use std::time::Duration;
//! use ldapmux_core::{Action, Config, CredKey, Event, Instant, Pool, Request, UserKind};
//!
//! let config = Config::builder()
//!     .preferred_server("ldap://127.0.0.1:3891")
//!     .server("ldap://127.0.0.1:3892")
//!     .build()?;
//! let mut now = Instant::ZERO;
//! let mut pool = Pool::new(config, /* jitter seed */ 7, now)?;
//!
//! // 1. Feed one input.
//! let user = pool.handle_acquire(now, Request::new(UserKind::Search, CredKey::ANONYMOUS));
//! // 2. Drain every action it caused, doing the I/O each one asks for.
//! while let Some(action) = pool.poll_action() {
//!     match action {
//!         Action::Open { conn, .. } => {
//!             // ... connect and bind, then report back (a new input):
//!             pool.handle(now, Event::ConnOpened { conn })?;
//!         }
//!         Action::Grant { user: u, conn } => {
//!             assert_eq!(u, user);
//!             // ... run the search on `conn`, then:
//!             pool.handle(now, Event::Release { user: u })?;
//!         }
//!         other => println!("{other:?}"),
//!     }
//! }
//! // 3. Arm one timer for the next wake-up, and call handle_timeout then.
//! if let Some(t) = pool.poll_timeout() {
//!     now = t.at;
//!     pool.handle_timeout(now);
//!     while let Some(action) = pool.poll_action() { println!("{action:?}"); }
//! }
//! pool.check_invariants()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! (Reporting back from inside the drain loop, as above, is allowed: the
//! actions queued by the report are drained by the same loop.)
//!
//! ## The three objects (named after the seed)
//!
//! * A **generation** ([`GenId`], seed `conn_mgmt`) holds one configuration.
//!   Exactly one is current until shutdown. [`Event::Reload`] detaches it and
//!   makes a new one; a detached generation is freed when its reference count
//!   (+1 while current, +1 per user, +1 per connection) reaches zero.
//!   [`Event::ReloadServers`] does the same for a new server list, but moves
//!   the connections to servers still listed (and their users) to the new
//!   generation when nothing else changed.
//! * A **connection** ([`ConnId`], seed `conn_mt`) is `Connecting`, then `Open`,
//!   then `Draining` (no new users; closed when the last leaves) or `Broken`
//!   (died; its users see the saved error), then gone.
//! * A **user** ([`UserId`], seed `conn_user`) is `Queued` (waiting for a
//!   connection slot), `Waiting` (on an opening connection), or `Connected`.
//!
//! See `docs/state-machines.md` in the repository for the full diagrams.

mod action;
mod config;
mod conn_life;
mod conn_table;
mod counters;
mod cred_table;
mod error;
mod event;
mod events;
#[cfg(feature = "fault-hooks")]
mod faults;
mod gen_table;
mod id;
mod index;
mod info;
mod invariants;
mod lifecycle;
mod placement;
mod pool;
mod race;
mod refusal;
mod request;
mod rng;
mod server;
mod server_table;
mod slab;
mod state;
mod status_display;
mod step_checks;
mod time;
mod timers;
mod user_table;

pub use action::{Action, CloseReason, Timeout, TimerReason};
pub use config::{
    Config, ConfigBuilder, DEFAULT_BIND_CONNS_PER_SERVER, DEFAULT_CONNECT_RACE_DELAY,
    DEFAULT_MAX_CONNS_PER_SERVER, DEFAULT_MAX_USERS_PER_CONN, DEFAULT_SPREAD_CONNS_PER_SERVER,
    DEFAULT_SPREAD_USERS_PER_CONN, MAX_TRIES, ServerConfig, Sharing,
};
pub use counters::{Counters, ServerCounters};
pub use error::{Blame, ConfigError, ConnError, ConnErrorKind, Error};
pub use event::Event;
#[cfg(feature = "fault-hooks")]
pub use faults::{Fault, PolicyBug};
pub use id::{ConnId, CredKey, GenId, ServerId, UserId};
pub use info::{
    ConnInfo, ConnPhase, CredStatus, GenInfo, GenPhase, Health, ServerStatus, Status, UserInfo,
    UserPhase,
};
pub use invariants::InvariantViolation;
pub use pool::Pool;
pub use request::{Purpose, Request, UserKind};
pub use step_checks::{check_race_step, check_spread_step};
pub use time::Instant;
