//! # ldapmux-driver: the thread-safe shell around `ldapmux-core`
//!
//! [`Driver`] owns one [`ldapmux_core::Pool`] behind **exactly one lock** and
//! is what every runtime adapter reuses. It contains no runtime and no LDAP
//! library: the runtime side is the [`Io`] trait (open, close, abandon, probe,
//! timer) and a [`Clock`].
//!
//! ## Rules
//!
//! * Each input (a request, a report from the runtime, a timer) is fed to the
//!   pool under the lock, and **every** action it causes is drained under the
//!   same lock hold (the core's single-mutation invariant).
//! * The lock is released before any I/O request is handed to [`Io`], before
//!   any waiting user is woken (waker or condition variable), and before any
//!   code outside this crate runs. [`Io`] methods may therefore call back into
//!   the driver, even synchronously.
//! * The timer is pulled, not pushed: [`Io::timer_changed`] only says "look
//!   again"; the runtime reads [`Driver::next_timeout`] (under the lock, so it
//!   is always the latest deadline) and calls [`Driver::on_timer`] then.
//! * Waiting is offered as a [`Future`] ([`Driver::acquire`],
//!   any executor) and as a blocking wait with a timeout
//!   ([`Driver::acquire_blocking`]). Dropping the future, or the timeout
//!   passing, cancels the user in the pool: its slot is released, a
//!   connection granted meanwhile is released, and it is woken at most once.
//! * A granted connection is a [`Lease`]; dropping it releases the connection.
//!
//! `docs/locking.md` in the repository states the lock hierarchy that the
//! loom tests (`tests/loom_*.rs`, built with `--cfg ldapmux_loom`) check.
//!
//! ## Example
//!
//! ```
//! use std::sync::Mutex;
//! use ldapmux_core::{CloseReason, Config, ConnId, CredKey, Instant, Pool, Request, ServerId, UserKind};
//! use ldapmux_driver::{Clock, Driver, Io, OpenRequest};
//!
//! /// A runtime whose connections open when the test says so.
//! #[derive(Clone, Default)]
//! struct Fake(std::sync::Arc<Mutex<Vec<ConnId>>>);
//! impl Io for Fake {
//!     fn open(&self, r: OpenRequest) { self.0.lock().unwrap().push(r.conn) }
//!     fn close(&self, _: ConnId, _: CloseReason) {}
//!     fn abandon(&self, _: ConnId) {}
//!     fn probe(&self, _: ServerId, _: &str) {}
//!     fn timer_changed(&self) {}
//! }
//! struct Zero;
//! impl Clock for Zero { fn now(&self) -> Instant { Instant::ZERO } }
//!
//! let config = Config::builder().server("ldap://127.0.0.1:3891").build()?;
//! let fake = Fake::default();
//! let driver = Driver::new(Pool::new(config, 1, Instant::ZERO)?, fake.clone(), Zero);
//! let waiting = {
//!     let driver = driver.clone();
//!     std::thread::spawn(move || {
//!         let req = Request::new(UserKind::Search, CredKey::ANONYMOUS);
//!         driver.acquire_blocking(req, std::time::Duration::from_secs(5)).map(|lease| lease.conn())
//!     })
//! };
//! // The runtime opens the connection the pool asked for.
//! let conn = loop {
//!     if let Some(c) = fake.0.lock().unwrap().pop() { break c; }
//!     std::thread::yield_now();
//! };
//! driver.conn_opened(conn)?;
//! assert_eq!(waiting.join().unwrap()?, conn);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod acquire;
mod driver;
mod io;
mod lease;
pub mod shell;
mod sync;

pub use acquire::Acquire;
pub use driver::Driver;
pub use io::{Clock, Io, OpenRequest, SystemClock};
pub use lease::Lease;

/// A request that did not get a connection, or a lease whose connection died:
/// the pool's error and whether another try is worth making.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error} (retry {})", if *retry { "worth it" } else { "not worth it" })]
pub struct Failure {
    /// What went wrong.
    pub error: ldapmux_core::Error,
    /// Whether a new try ([`ldapmux_core::Request::retry`]) may succeed.
    pub retry: bool,
}
