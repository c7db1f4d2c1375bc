//! [`Pool`]: the blocking handle. Each method has the shape of the
//! [`ldapmux::Pool`] method of the same name, blocking instead of `async`;
//! it runs the async method on the calling thread, on the pool of this
//! process (rebuilt after a fork, see the crate doc).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

#[cfg(feature = "dns-srv")]
use ldapmux::SrvStatus;
use ldapmux::status::{ConnInfo, Instant, ServerId};
use ldapmux::{BuildError, Credential, Error, PoolBuilder, Status};

use crate::instance::Instance;

mod operations;

/// A blocking, fork-safe pool. `Send + Sync` and cheap to clone: clones
/// share the pool (share it between threads as clones, in an `Arc` or in a
/// `static`). [`Pool::with_server`], [`Pool::with_credential`] and
/// [`Pool::with_timeout`] return clones whose operations are pinned or
/// bounded differently, as in [`ldapmux::Pool`].
///
/// Dropping the last clone shuts the pool down and waits for its sockets
/// to close; [`Pool::shutdown`] does it earlier.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
    opts: Options,
}

/// What every clone shares.
struct Shared {
    state: Mutex<State>,
    /// Held across a reload, so that reloads from several threads apply in
    /// one order and the builder kept (for a child after a fork) is the one
    /// the pool accepted last.
    reloading: Mutex<()>,
    /// The status the pool gave right after it started (no connection
    /// yet): the shape of [`Shared::no_pool_status`].
    started: Status,
}

struct State {
    /// The configuration last accepted: a child's pool is built from it.
    builder: PoolBuilder,
    /// `Some` until the pool is dropped.
    current: Option<Arc<Instance>>,
}

/// Per-handle options, applied to the async pool's handle for each call.
#[derive(Clone, Default)]
struct Options {
    server: Option<String>,
    credential: Option<Credential>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.opts.server)
            .field("credential", &self.opts.credential)
            .field("timeout", &self.opts.timeout)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status of a process that has no pool: a child whose own pool
    /// could not start. Shut down, nothing open, no server in use.
    fn no_pool_status(&self) -> Status {
        let mut status = self.started.clone();
        status.current = None;
        status.shut_down = true;
        status.users = 0;
        status.conns = 0;
        status.queued = 0;
        status.timers = 0;
        status.servers.clear();
        status.generations.clear();
        status.creds.clear();
        status.counters = Default::default();
        status
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(current) = state.current.take() else {
            return;
        };
        if current.forked() {
            // A child that never used the pool: the instance is the parent's.
            std::mem::forget(current);
            return;
        }
        current.block_on(current.pool.shutdown());
    }
}

impl Pool {
    /// Checks the configuration and starts the pool (no connection opens
    /// until an operation needs one). A builder that follows DNS SRV
    /// (a `dns_srv` domain, [`PoolBuilder::uses_dns_srv`]) is looked up first, as
    /// [`ldapmux::SrvPoolBuilder::build`] does. Must not be called inside an
    /// async runtime.
    ///
    /// ```no_run
    /// use ldapmux_blocking::Pool;
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::new(Pool::builder().server("ldap://127.0.0.1:3891"))?;
    /// # Ok(()) }
    /// ```
    pub fn new(builder: PoolBuilder) -> Result<Pool, BuildError> {
        let instance = Instance::build(&builder)?;
        let started = instance.pool.status();
        let state = State {
            builder,
            current: Some(Arc::new(instance)),
        };
        Ok(Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                reloading: Mutex::new(()),
                started,
            }),
            opts: Options::default(),
        })
    }

    /// A builder with sane defaults; see [`PoolBuilder`].
    ///
    /// ```no_run
    /// # fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let builder = ldapmux_blocking::Pool::builder().server("ldap://127.0.0.1:3891");
    /// let pool = ldapmux_blocking::Pool::new(builder)?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The pool of this process: after a fork, the parent's is forgotten
    /// untouched and a new one is built from the last accepted builder (an
    /// error only if that fails: the OS refused the I/O thread, a file the
    /// configuration names is gone, a DNS SRV lookup failed).
    fn instance(&self) -> Result<Arc<Instance>, BuildError> {
        let mut state = self.shared.state();
        let State { builder, current } = &mut *state;
        let current = current.as_mut().expect("present until the pool is dropped");
        if current.forked() {
            let fresh = Instance::build(builder)?;
            let parents = std::mem::replace(current, Arc::new(fresh));
            // Never drop it here: dropping would unbind and close the
            // parent's connections and join runtime threads that do not
            // exist in this process.
            std::mem::forget(parents);
        }
        Ok(current.clone())
    }

    /// [`Pool::instance`] for an operation, and the async handle with this
    /// handle's options to run it on.
    fn for_operation(&self) -> Result<(Arc<Instance>, ldapmux::Pool), Error> {
        let instance = self
            .instance()
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let mut pool = instance.pool.clone();
        if let Some(url) = &self.opts.server {
            pool = pool.with_server(url.clone());
        }
        if let Some(credential) = &self.opts.credential {
            pool = pool.with_credential(credential.clone());
        }
        if let Some(timeout) = self.opts.timeout {
            pool = pool.with_timeout(timeout);
        }
        Ok((instance, pool))
    }

    fn run<T>(&self, f: impl AsyncFnOnce(&ldapmux::Pool) -> Result<T, Error>) -> Result<T, Error> {
        let (instance, pool) = self.for_operation()?;
        instance.block_on(f(&pool))
    }

    // ------------------------------------------------------------------
    // Handles with other options
    // ------------------------------------------------------------------

    /// A handle whose operations use only `url` (see
    /// [`ldapmux::Pool::with_server`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let b = pool.with_server("ldap://127.0.0.1:3892");
    /// let root = b.search("", ldapmux_blocking::Scope::Base, "(objectClass=*)", &["namingContexts"])?;
    /// # Ok(()) }
    /// ```
    pub fn with_server(&self, url: impl Into<String>) -> Pool {
        let mut p = self.clone();
        p.opts.server = Some(url.into());
        p
    }

    /// A handle whose operations run on connections bound with `credential`
    /// (see [`ldapmux::Pool::with_credential`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::Credential;
    /// let admin = pool.with_credential(Credential::simple("cn=admin,dc=example,dc=com", "admin-pw"));
    /// admin.delete("uid=bob,ou=people,dc=example,dc=com")?;
    /// # Ok(()) }
    /// ```
    pub fn with_credential(&self, credential: Credential) -> Pool {
        let mut p = self.clone();
        p.opts.credential = Some(credential);
        p
    }

    /// A handle whose operations are bounded by `timeout`, retries included
    /// (see [`ldapmux::Pool::with_timeout`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let quick = pool.with_timeout(std::time::Duration::from_millis(300));
    /// let me = quick.whoami()?;
    /// # Ok(()) }
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> Pool {
        let mut p = self.clone();
        p.opts.timeout = Some(timeout);
        p
    }
}

impl Pool {
    // ------------------------------------------------------------------
    // The pool itself
    // ------------------------------------------------------------------

    /// A snapshot of the pool of this process (see [`ldapmux::Pool::status`]).
    ///
    /// Never an error: in the process that built the pool, and in a forked
    /// child whose own pool started, it is that pool's status. A child whose
    /// own pool could not start (see the crate doc: the OS refused its I/O
    /// thread, or a file the configuration names is gone) has no pool; it
    /// gets a status with `shut_down` set, no generation, no server and no
    /// connection, while its operations return the error (the next call
    /// tries to start the pool again).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let status = pool.status();
    /// for server in &status.servers {
    ///     println!("{} {:?}: {} connections", server.addr, server.health, server.conns);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> Status {
        match self.instance() {
            Ok(instance) => instance.pool.status(),
            Err(_) => self.shared.no_pool_status(),
        }
    }

    /// Every live connection of the pool of this process (see
    /// [`ldapmux::Pool::connections`]; none in a child without a pool, as
    /// for [`Pool::status`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// for c in pool.connections() {
    ///     println!("{} on {:?}: {:?}, {} users", c.id, pool.server_url(c.server), c.phase, c.users);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.instance()
            .map(|i| i.pool.connections())
            .unwrap_or_default()
    }

    /// Now on the pool's clock, the scale of the instants in [`Status`]
    /// (see [`ldapmux::Pool::now`]; [`Instant::ZERO`] in a child without a
    /// pool, as for [`Pool::status`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::Health;
    /// let now = pool.now();
    /// for server in &pool.status().servers {
    ///     if let Health::Returning { until } = server.health {
    ///         println!("{} back in {:?}", server.addr, until.saturating_duration_since(now));
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn now(&self) -> Instant {
        self.instance()
            .map(|i| i.pool.now())
            .unwrap_or(Instant::ZERO)
    }

    /// Publishes the pool's gauges and counters to the installed `metrics`
    /// recorder now (see [`ldapmux::Pool::publish_metrics`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.publish_metrics(); // the recorder's figures are current now
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn publish_metrics(&self) {
        if let Ok(instance) = self.instance() {
            instance.pool.publish_metrics();
        }
    }

    /// Sockets the pool of this process has open (see
    /// [`ldapmux::Pool::open_sockets`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// println!("{} sockets open", pool.open_sockets());
    /// # Ok(()) }
    /// ```
    pub fn open_sockets(&self) -> usize {
        self.instance().map(|i| i.pool.open_sockets()).unwrap_or(0)
    }

    /// Starts a new generation with a new configuration (see
    /// [`ldapmux::Pool::reload`]); a child built after a fork uses it too.
    /// Safe from several threads at once: reloads apply one after the
    /// other, and the last one applied is the configuration kept.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.reload(ldapmux_blocking::Pool::builder().server("ldap://127.0.0.1:3893"))?;
    /// # Ok(()) }
    /// ```
    pub fn reload(&self, builder: PoolBuilder) -> Result<(), BuildError> {
        self.reload_from(builder, false)
    }

    /// A reload for a changed server list that keeps the connections to
    /// servers still listed (see [`ldapmux::Pool::reload_keeping_servers`]);
    /// like [`Pool::reload`] otherwise.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.reload_keeping_servers(
    ///     ldapmux_blocking::Pool::builder().server("ldap://127.0.0.1:3891").server("ldap://127.0.0.1:3893"),
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn reload_keeping_servers(&self, builder: PoolBuilder) -> Result<(), BuildError> {
        self.reload_from(builder, true)
    }

    fn reload_from(&self, builder: PoolBuilder, keep_listed: bool) -> Result<(), BuildError> {
        let _one_at_a_time = self
            .shared
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let instance = self.instance()?;
        if keep_listed {
            instance.pool.reload_keeping_servers(builder.clone())?;
        } else {
            instance.pool.reload(builder.clone())?;
        }
        self.shared.state().builder = builder;
        Ok(())
    }

    /// Shuts the pool down and waits for its sockets to close (see
    /// [`ldapmux::Pool::shutdown`]); returns how many were still open (0
    /// normally, and in a child without a pool).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let still_open = pool.shutdown(); // every operation after this fails with "shut down"
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&self) -> usize {
        match self.instance() {
            Ok(i) => i.block_on(i.pool.shutdown()),
            Err(_) => 0,
        }
    }

    /// The URL of a server the pool knows, such as the `server` of a
    /// [`ConnInfo`] from [`Pool::connections`] (see
    /// [`ldapmux::Pool::server_url`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// for c in pool.connections() {
    ///     let url = pool.server_url(c.server).unwrap_or_default();
    ///     println!("{} -> {url}", c.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn server_url(&self, server: ServerId) -> Option<String> {
        self.instance().ok()?.pool.server_url(server)
    }

    /// What DNS SRV discovery is doing, if the pool was built from a
    /// builder whose configuration names a `dns_srv` domain (see
    /// [`ldapmux::Pool::dns_srv_status`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// if let Some(srv) = pool.dns_srv_status() {
    ///     println!("{}: {:?}, {} lookups", srv.name, srv.servers, srv.lookups);
    /// }
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "dns-srv")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dns-srv")))]
    pub fn dns_srv_status(&self) -> Option<SrvStatus> {
        self.instance().ok()?.pool.dns_srv_status()
    }
}
