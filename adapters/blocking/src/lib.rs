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
//! **Fork safety** (behaviour 15): the pool remembers the process id it was
//! built in. The first call in a child process after `fork()` finds another
//! process id, forgets the parent's pool *without touching it* (no unbind,
//! no close: those sockets belong to the parent, and the child has none of
//! the parent's threads) and builds a fresh pool from the same builder, so
//! the child opens its own connections.
//!
//! ```no_run
//! use ldapmux_blocking::{Pool, PoolBuilder, Scope};
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::new(PoolBuilder::new().preferred_server("ldap://127.0.0.1:3891").server("ldap://127.0.0.1:3892"))?;
//! let entries = pool.search("ou=people,dc=example,dc=com", Scope::OneLevel, "(uid=alice)", &["uidNumber"])?;
//! println!("{} entries; {} connections", entries.len(), pool.status()?.conns);
//! # Ok(()) }
//! ```
//!
//! Do not call these methods from inside an async runtime: they block.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ldapmux::EntryStream;
pub use ldapmux::{
    BuildError, Credential, Error, LdapStatus, LeaseKind, Mod, Password, PoolBuilder, Scope,
    SearchEntry, Status,
};

/// One pool and the runtime that drives it, in the process that built them.
struct Instance {
    pid: u32,
    runtime: tokio::runtime::Runtime,
    pool: ldapmux::Pool,
}

impl Instance {
    fn build(builder: &PoolBuilder) -> Result<Instance, BuildError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ldapmux-io")
            .enable_all()
            .build()
            .map_err(|e| BuildError::InvalidField {
                field: "runtime",
                reason: e.to_string(),
            })?;
        let pool = builder.clone().runtime(runtime.handle().clone()).build()?;
        Ok(Instance {
            pid: std::process::id(),
            runtime,
            pool,
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.handle().block_on(f)
    }
}

/// A blocking, fork-safe pool. `Send + Sync`: share it between threads
/// (e.g. in an `Arc` or a `static`).
pub struct Pool {
    builder: PoolBuilder,
    /// `Some` until the pool is dropped.
    current: Mutex<Option<Arc<Instance>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Checks the configuration and starts the pool (no connection opens
    /// until an operation needs one). Must not be called inside an async
    /// runtime.
    pub fn new(builder: PoolBuilder) -> Result<Pool, BuildError> {
        let instance = Instance::build(&builder)?;
        Ok(Pool {
            builder,
            current: Mutex::new(Some(Arc::new(instance))),
        })
    }

    /// The pool of this process: after a fork, the parent's is forgotten
    /// untouched and a new one is built.
    fn instance(&self) -> Result<Arc<Instance>, Error> {
        let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let current = guard.as_mut().expect("present until the pool is dropped");
        if current.pid != std::process::id() {
            let fresh =
                Instance::build(&self.builder).map_err(|e| Error::InvalidRequest(e.to_string()))?;
            let parents = std::mem::replace(current, Arc::new(fresh));
            // Never drop it here: dropping would unbind and close the
            // parent's connections and join runtime threads that do not
            // exist in this process.
            std::mem::forget(parents);
        }
        Ok(current.clone())
    }

    fn run<T>(&self, f: impl AsyncFnOnce(&ldapmux::Pool) -> Result<T, Error>) -> Result<T, Error> {
        let instance = self.instance()?;
        instance.block_on(f(&instance.pool))
    }

    /// Searches (see [`ldapmux::Pool::search`]).
    pub fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, Error> {
        self.run(async |p| p.search(base, scope, filter, attrs).await)
    }

    /// A search read entry by entry on one connection (behaviour 10).
    pub fn streaming_search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Entries, Error> {
        let instance = self.instance()?;
        let stream =
            instance.block_on(instance.pool.streaming_search(base, scope, filter, attrs))?;
        Ok(Entries { instance, stream })
    }

    /// Compares (see [`ldapmux::Pool::compare`]).
    pub fn compare(&self, dn: &str, attr: &str, value: impl AsRef<[u8]>) -> Result<bool, Error> {
        let value = value.as_ref();
        self.run(async |p| p.compare(dn, attr, value).await)
    }

    /// Adds (see [`ldapmux::Pool::add`]: never retried once sent).
    pub fn add<S: AsRef<[u8]> + Eq + std::hash::Hash + Send>(
        &self,
        dn: &str,
        attrs: Vec<(S, HashSet<S>)>,
    ) -> Result<(), Error> {
        self.run(async |p| p.add(dn, attrs).await)
    }

    /// Modifies.
    pub fn modify<S: AsRef<[u8]> + Eq + std::hash::Hash + Send>(
        &self,
        dn: &str,
        mods: Vec<Mod<S>>,
    ) -> Result<(), Error> {
        self.run(async |p| p.modify(dn, mods).await)
    }

    /// Deletes.
    pub fn delete(&self, dn: &str) -> Result<(), Error> {
        self.run(async |p| p.delete(dn).await)
    }

    /// Renames or moves.
    pub fn modify_dn(
        &self,
        dn: &str,
        rdn: &str,
        delete_old: bool,
        new_superior: Option<&str>,
    ) -> Result<(), Error> {
        self.run(async |p| p.modify_dn(dn, rdn, delete_old, new_superior).await)
    }

    /// "Who am I?" on a pooled read connection.
    pub fn whoami(&self) -> Result<String, Error> {
        self.run(async |p| p.whoami().await)
    }

    /// Checks a password on a private connection (see
    /// [`ldapmux::Pool::authenticate`]).
    pub fn authenticate(&self, dn: &str, password: &Password) -> Result<bool, Error> {
        self.run(async |p| p.authenticate(dn, password).await)
    }

    /// A snapshot of the pool of this process (an error only if a child
    /// process could not start its own pool).
    pub fn status(&self) -> Result<Status, Error> {
        Ok(self.instance()?.pool.status())
    }

    /// Sockets the pool of this process has open.
    pub fn open_sockets(&self) -> usize {
        self.instance().map(|i| i.pool.open_sockets()).unwrap_or(0)
    }

    /// Reloads the configuration (see [`ldapmux::Pool::reload`]); a child
    /// built after a fork uses it too.
    pub fn reload(&mut self, builder: PoolBuilder) -> Result<(), BuildError> {
        let instance = self.instance().map_err(|e| BuildError::InvalidField {
            field: "reload",
            reason: e.to_string(),
        })?;
        instance.pool.reload(builder.clone())?;
        self.builder = builder;
        Ok(())
    }

    /// Shuts the pool down and waits for its sockets to close (see
    /// [`ldapmux::Pool::shutdown`]); returns how many were still open.
    pub fn shutdown(&self) -> usize {
        match self.instance() {
            Ok(i) => i.block_on(i.pool.shutdown()),
            Err(_) => 0,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let Some(current) = self
            .current
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if current.pid != std::process::id() {
            // A child that never used the pool: the instance is the parent's.
            std::mem::forget(current);
            return;
        }
        current.block_on(current.pool.shutdown());
    }
}

/// The entries of [`Pool::streaming_search`], as a blocking iterator.
pub struct Entries {
    instance: Arc<Instance>,
    stream: EntryStream,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}

impl Iterator for Entries {
    type Item = Result<SearchEntry, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.instance.pid != std::process::id() {
            return Some(Err(Error::Pool(ldapmux::core::Error::Forked)));
        }
        self.instance.block_on(self.stream.next_entry())
    }
}
