//! [`Pool`]: the handle users hold. Every operation asks the core for a
//! connection, runs on it, and reports how it went; reads are retried on
//! another connection when the core says a retry is worth it.

use std::sync::Arc;
use std::time::Duration;

use ldap3::Ldap;
use ldapmux_core::{
    ConnError, ConnErrorKind, ConnInfo, Event, Request, ServerId, Status, UserKind,
};
use ldapmux_driver::{Driver, Lease};
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::builder::Settings;
use crate::connect::{classify, is_conn_dead, request_sent};
use crate::metrics::{self, AcquireResult, Outcome};
use crate::ops::{self, Op, Reply};
use crate::retry::{Next, Tries};
use crate::runtime::{Shared, TokioIo};
use crate::url::ServerUrl;
use crate::{BuildError, Credential, Error, PoolBuilder};

mod operations;
mod referrals;
mod reload;

/// A pool of shared LDAP connections. Cheap to clone: clones share the
/// pool. [`Pool::with_server`], [`Pool::with_credential`] and
/// [`Pool::with_timeout`] return clones whose operations are pinned or
/// bounded differently.
///
/// Dropping the last clone shuts the pool down (connections are unbound in
/// the background); [`Pool::shutdown`] does it and waits.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
    opts: Options,
}

struct Inner {
    driver: Driver,
    shared: Arc<Shared>,
    timer: AbortHandle,
    /// The task publishing the metrics, if `metrics_interval` is set.
    metrics: Option<AbortHandle>,
    /// Where the servers come from, if not from the builder (DNS SRV
    /// discovery); its task is aborted when this is dropped.
    discovery: std::sync::OnceLock<Box<dyn ServerSource>>,
}

/// A source of the pool's servers that runs beside it: DNS SRV discovery
/// (`crate::srv`). The pool holds it (dropped with the pool), stops it at
/// shutdown and sends a reload by hand through it. Defined here so that the
/// pool does not depend on the source: the source depends on the pool.
pub(crate) trait ServerSource: std::any::Any + Send + Sync {
    /// A reload by hand ([`Pool::reload`]) of a pool whose servers come
    /// from this source.
    fn reload(
        &self,
        pool: &Pool,
        builder: PoolBuilder,
        keep_listed: bool,
    ) -> Result<(), BuildError>;
    /// Stops following (the pool shuts down).
    fn stop(&self);
}

/// A handle that does not keep the pool alive, for background tasks (DNS
/// SRV discovery): `upgrade` fails once every [`Pool`] is gone.
#[derive(Clone)]
pub(crate) struct WeakPool(std::sync::Weak<Inner>);

impl WeakPool {
    pub(crate) fn upgrade(&self) -> Option<Pool> {
        self.0.upgrade().map(|inner| Pool {
            inner,
            opts: Options::default(),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.driver.shutdown();
        self.timer.abort();
        if let Some(task) = &self.metrics {
            task.abort();
        }
        self.shared.detach();
        // No one will publish again: leave no gauge at a stale value.
        self.shared.metrics.zero_all();
    }
}

/// Per-handle options.
#[derive(Clone, Default)]
struct Options {
    server: Option<String>,
    credential: Option<Credential>,
    timeout: Option<Duration>,
    /// Operations follow a referral: referral connections only.
    referral: bool,
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

/// Which connections a [`ConnGuard`](crate::ConnGuard) leases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseKind {
    /// A shared read connection (searches, compares, WhoAmI).
    Read,
    /// A shared write connection.
    Write,
}

impl Pool {
    /// A builder with sane defaults; see [`PoolBuilder`].
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    pub(crate) fn start(
        settings: Arc<Settings>,
        runtime: tokio::runtime::Handle,
        seed: u64,
    ) -> Pool {
        let shared = Shared::new(settings.clone(), runtime.clone());
        let clock = shared.clock();
        let core = ldapmux_core::Pool::new(
            settings.core.clone(),
            seed,
            ldapmux_driver::Clock::now(&clock),
        )
        .expect("settings were validated");
        let driver = Driver::new(core, TokioIo(shared.clone()), clock);
        shared.attach(driver.clone());
        if !settings.multiplex {
            let _ = driver.event(Event::MultiplexUnsupported);
        }
        let timer = runtime.spawn(shared.clone().run_timer()).abort_handle();
        metrics::describe();
        let metrics = settings
            .metrics
            .interval
            .map(|_| runtime.spawn(shared.clone().run_metrics()).abort_handle());
        tracing::info!(servers = ?settings.urls, "pool started");
        Pool {
            inner: Arc::new(Inner {
                driver,
                shared,
                timer,
                discovery: std::sync::OnceLock::new(),
                metrics,
            }),
            opts: Options::default(),
        }
    }

    /// The pool's notices from now on (a server marked down), for discovery.
    pub(crate) fn notices(&self) -> tokio::sync::broadcast::Receiver<crate::runtime::Notice> {
        self.inner.shared.notices()
    }

    pub(crate) fn weak_pool(&self) -> WeakPool {
        WeakPool(Arc::downgrade(&self.inner))
    }

    /// Attaches the source of the servers (once, right after the start).
    pub(crate) fn set_discovery(&self, source: impl ServerSource) {
        let _ = self.inner.discovery.set(Box::new(source));
    }

    /// The source of the servers, if it is a `T`.
    pub(crate) fn discovery<T: ServerSource>(&self) -> Option<&T> {
        let source: &dyn ServerSource = &**self.inner.discovery.get()?;
        (source as &dyn std::any::Any).downcast_ref()
    }

    /// The runtime the pool's tasks run on.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.inner.shared.handle
    }

    // ------------------------------------------------------------------
    // Handles with other options
    // ------------------------------------------------------------------

    /// A handle whose operations use only `url` (behaviour 2). The URL need
    /// not be configured (a referral target, say); it is checked when an
    /// operation runs.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let b = pool.with_server("ldap://127.0.0.1:3892");
    /// let root = b.search("", ldapmux::Scope::Base, "(objectClass=*)", &["namingContexts"]).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_server(&self, url: impl Into<String>) -> Pool {
        let mut p = self.clone();
        p.opts.server = Some(url.into());
        p
    }

    /// A handle whose operations run on connections bound with `credential`
    /// (never on one bound with another credential).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::Credential;
    /// let admin = pool.with_credential(Credential::simple("cn=admin,dc=example,dc=com", "admin-pw"));
    /// admin.delete("uid=bob,ou=people,dc=example,dc=com").await?;
    /// # Ok(()) }
    /// ```
    pub fn with_credential(&self, credential: Credential) -> Pool {
        let mut p = self.clone();
        p.opts.credential = Some(credential);
        p
    }

    /// A handle whose operations are bounded by `timeout` (retries included).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let quick = pool.with_timeout(std::time::Duration::from_millis(300));
    /// let me = quick.whoami().await?;
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

    /// A snapshot of the pool: servers with health, connections per server,
    /// credential and generation, users, waiters, counters.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let status = pool.status();
    /// for server in &status.servers {
    ///     println!("{} {:?}: {} connections", server.addr, server.health, server.conns);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn status(&self) -> Status {
        self.inner.driver.status()
    }

    /// Every live connection: server, credential key, purpose, generation,
    /// phase, users and waiters (for live views; walks every connection).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// for c in pool.connections() {
    ///     println!("{} on {:?}: {:?}, {} users", c.id, pool.server_url(c.server), c.phase, c.users);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn connections(&self) -> Vec<ConnInfo> {
        self.inner.driver.inspect(|p| p.conns().collect())
    }

    /// Now on the pool's clock, the scale of the instants in [`Status`]
    /// (e.g. the end of a hold-down in [`Health::Returning`]).
    ///
    /// [`Health::Returning`]: ldapmux_core::Health::Returning
    pub fn now(&self) -> ldapmux_core::Instant {
        ldapmux_driver::Clock::now(&self.inner.shared.clock())
    }

    /// Publishes the pool's gauges (connections, waiters, users, server
    /// health, open sockets) and the counters the core keeps (fail-overs,
    /// fail-backs, probes) to the installed `metrics` recorder now. A task
    /// of the pool does this every
    /// [`PoolBuilder::metrics_interval`](crate::PoolBuilder::metrics_interval);
    /// call it before reading the recorder when the figures must be current
    /// (an exporter's scrape, a test). Costs one walk of the live
    /// connections under the pool's lock. See [`crate::metrics`].
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn publish_metrics(&self) {
        self.inner.shared.publish_metrics();
    }

    /// Sockets still open (0 after [`Pool::shutdown`]): the runtime's own
    /// count, independent of the core's bookkeeping.
    pub fn open_sockets(&self) -> usize {
        self.inner.shared.open_sockets()
    }

    /// Shuts down (behaviour 12): every waiting and running operation ends
    /// with a result or [`Error::Pool`]`(ShutDown)`, every connection is
    /// unbound and closed, later operations fail at once. Returns when every
    /// socket is closed or after the connect timeout; returns how many
    /// sockets were still open then (0 normally).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let still_open = pool.shutdown().await; // every operation after this fails with "shut down"
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> usize {
        tracing::info!("pool shutting down");
        if let Some(d) = self.inner.discovery.get() {
            d.stop();
        }
        self.inner.driver.shutdown();
        let within = self.inner.shared.settings().core.connect_timeout + Duration::from_secs(1);
        let open = self.inner.shared.wait_sockets_closed(within).await;
        self.inner.shared.publish_metrics();
        open
    }

    /// Reports that an operation found `lease`'s connection dead, once the
    /// connection's watch has read what the server sent before the end
    /// ([`Shared::settle`](crate::runtime::Shared::settle)): a Notice of
    /// Disconnection reaches the core before the death does.
    pub(crate) async fn report_dead(
        &self,
        lease: Lease,
        error: ConnError,
        request_sent: bool,
    ) -> ldapmux_driver::Failure {
        self.inner.shared.settle(lease.conn()).await;
        lease.broken(error, request_sent)
    }

    /// The operation timeout for this handle.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.opts
            .timeout
            .unwrap_or_else(|| self.inner.shared.settings().op_timeout)
    }

    /// The request for a first try of `kind` from this handle, under `settings`.
    fn request(&self, settings: &Settings, kind: UserKind) -> Result<Request, Error> {
        let cred = if kind == UserKind::Auth {
            // The private connection is opened unbound; the user's bind is the operation.
            ldapmux_core::CredKey::ANONYMOUS
        } else {
            let cred = self
                .opts
                .credential
                .as_ref()
                .unwrap_or(&settings.credential);
            self.inner.shared.creds.key(cred)
        };
        let mut request = Request::new(kind, cred);
        if self.opts.referral {
            request = request.referral();
        }
        if let Some(server) = &self.opts.server {
            let url = ServerUrl::parse(server).map_err(|e| Error::InvalidRequest(e.to_string()))?;
            request = request.server(url.as_str());
        }
        Ok(request)
    }

    /// Runs one operation: acquire, run, release; retry when the pool says so.
    async fn run(&self, op: &Op<'_>) -> Result<Reply, Error> {
        let (reply, lease, _, _) = self.acquire_and_run(op).await?;
        lease.release();
        Ok(reply)
    }

    /// [`Pool::try_acquire_and_run`], counted in
    /// [`metrics::OPERATIONS_TOTAL`] by its outcome.
    pub(crate) async fn acquire_and_run(
        &self,
        op: &Op<'_>,
    ) -> Result<(Reply, Lease, Ldap, ServerId), Error> {
        // One read of the settings per operation (a read lock and an `Arc`
        // clone, contended when many tasks run operations): a reload during
        // the operation applies from the next one.
        let settings = self.inner.shared.settings();
        let result = self.try_acquire_and_run(&settings, op).await;
        let outcome = match &result {
            // A password check's verdict.
            Ok((Reply::Auth(verdict), ..)) => verdict.label(),
            Ok((Reply::PasswordChange(change), ..)) => match change {
                crate::PasswordChange::Changed => Outcome::Ok,
                crate::PasswordChange::NotAuthenticated(verdict) => verdict.label(),
                crate::PasswordChange::Refused { .. } => Outcome::PasswordRefused,
            },
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::of_error(e),
        };
        metrics::record_op(&settings.metrics, op.name(), outcome);
        result
    }

    /// Counts one operation in [`metrics::OPERATIONS_TOTAL`].
    pub(crate) fn record_op(&self, name: &'static str, outcome: Outcome) {
        metrics::record_op(&self.inner.shared.settings().metrics, name, outcome);
    }

    /// The retry loop. Returns the value with the lease still held, so the
    /// caller decides when the connection is given back.
    async fn try_acquire_and_run(
        &self,
        settings: &Settings,
        op: &Op<'_>,
    ) -> Result<(Reply, Lease, Ldap, ServerId), Error> {
        op.check()?;
        let (name, kind) = (op.name(), op.kind());
        let mcfg = &settings.metrics;
        let timeout = self.opts.timeout.unwrap_or(settings.op_timeout);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut first = self.request(settings, kind)?;
        if op.private() {
            first = first.private();
        }
        if op.pages() {
            first = first.paging();
        }
        let mut tries = Tries::new(first);
        // `server`: which server ran the operation (its URL), recorded at
        // each grant, so a subscriber sees where every operation went.
        let span = tracing::debug_span!("ldapmux.op", op = name, kind = ?kind, server = tracing::field::Empty);
        async move {
            // The operation's one timer, for its waits for a connection and
            // its run, over every try. Registered with tokio only when the
            // task first has to wait, dropped (deregistered) at the end.
            let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
            loop {
                tries.request_mut().deadline = Some(self.inner.shared.to_core(deadline));
                tracing::trace!(attempt = tries.request().attempt, "acquire");
                // Cooperative: an acquire that is answered at once (after
                // shutdown, say) still spends the task's tokio budget, so a
                // caller looping on instant errors cannot starve its runtime.
                let acquire = tokio::task::coop::cooperative(self.inner.driver.acquire(tries.request().clone()));
                let asked = std::time::Instant::now();
                let acquired = until(sleep.as_mut(), acquire).await;
                let result = match &acquired {
                    Err(_) => AcquireResult::Timeout,
                    Ok(Err(_)) => AcquireResult::Failed,
                    Ok(Ok(_)) => AcquireResult::Granted,
                };
                metrics::record_acquire(mcfg, kind, result, asked.elapsed());
                // Each way a try can fail ends here, with what the pool said.
                let failure = match acquired {
                    Err(_) => return Err(Error::Timeout { operation: name, after: timeout }),
                    Ok(Err(failure)) => failure,
                    Ok(Ok(lease)) => match self.inner.shared.ldap(lease.conn()) {
                        // Closed between the grant and now: nothing was sent.
                        None => lease.broken(ConnError::new(ConnErrorKind::Io, "connection closed before use"), false),
                        Some((mut ldap, server)) => {
                            // Only when a subscriber listens (the lookup takes the lock).
                            let span = tracing::Span::current();
                            if !span.is_disabled()
                                && let Some(url) = self.server_url(server)
                            {
                                span.record("server", url.as_str());
                            }
                            tracing::trace!(conn = %lease.conn(), %server, "granted");
                            let paging = self.inner.shared.paging(settings, server);
                            match until(sleep.as_mut(), ops::exec(op, &mut ldap, &paging)).await {
                                Ok(Ok(value)) => return Ok((value, lease, ldap, server)),
                                Ok(Err(e)) if is_conn_dead(&e) => {
                                    let sent = request_sent(&e);
                                    let error = classify(&e);
                                    if self.inner.driver.inspect(ldapmux_core::Pool::is_shut_down) {
                                        tracing::debug!(conn = %lease.conn(), %server, %error, sent, "connection closed by the shutdown under the operation");
                                    } else {
                                        tracing::warn!(conn = %lease.conn(), %server, %error, sent, "connection died under the operation");
                                    }
                                    let failure = self.report_dead(lease, error.clone(), sent).await;
                                    if kind == UserKind::Write && sent {
                                        return Err(self.outcome_unknown(name, server, error.to_string()));
                                    }
                                    failure
                                }
                                // A bind answered with neither success nor
                                // invalidCredentials leaves the connection in a
                                // state no one can vouch for: it is closed.
                                Ok(Err(e)) if kind == UserKind::Auth => {
                                    tracing::debug!(conn = %lease.conn(), %server, "bind connection retired after an unclear answer");
                                    lease.retire();
                                    return Err(ops::not_conn_error(e));
                                }
                                Ok(Err(e)) => {
                                    lease.release();
                                    return Err(ops::not_conn_error(e));
                                }
                                Err(_) => {
                                    // The server did not answer in time. Retire this
                                    // connection (no new users; closed when the others
                                    // leave); the core checks whether the server is alive.
                                    // The server is asked to stop working on it.
                                    ops::abandon_timed_out(op, &ldap);
                                    self.retire_after_timeout(lease, server, name, timeout);
                                    if kind == UserKind::Write {
                                        return Err(self.outcome_unknown(name, server, format!("no answer within {timeout:?}")));
                                    }
                                    return Err(Error::Timeout { operation: name, after: timeout });
                                }
                            }
                        }
                    },
                };
                match tries.on_failure(failure) {
                    Next::Retry(next) => {
                        tracing::debug!(attempt = next.attempt, "retrying");
                        metrics::record_retry(mcfg, name);
                    }
                    Next::GiveUp(error) => return Err(self.pool_error(error)),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// An operation on `lease` got no answer in time: retire the connection
    /// (no new users; it closes when its other users leave); the core checks
    /// whether its server is alive.
    pub(crate) fn retire_after_timeout(
        &self,
        lease: Lease,
        server: ServerId,
        name: &str,
        timeout: Duration,
    ) {
        let conn = lease.conn();
        let error = ConnError::new(
            ConnErrorKind::Timeout,
            format!("{name} got no answer within {timeout:?}"),
        );
        // The core retires the connection and, unless a check of the server
        // is already in flight, probes it (a liveness check whose failure
        // marks it down only if it did not answer meanwhile).
        let _ = lease.broken(error, true);
        tracing::warn!(%conn, %server, "operation timed out; connection retired, server checked");
    }

    /// The URL of a server the pool knows, such as the `server` of a
    /// [`ConnInfo`] from [`Pool::connections`] or a
    /// [`ServerStatus`](crate::status::ServerStatus) id.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// for c in pool.connections() {
    ///     let url = pool.server_url(c.server).unwrap_or_default();
    ///     println!("{} -> {url}", c.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn server_url(&self, server: ServerId) -> Option<String> {
        self.inner
            .driver
            .inspect(|p| p.server_addr(server).map(str::to_owned))
    }

    /// The pool's failure as an [`Error::Pool`] naming its server by URL.
    pub(crate) fn pool_error(&self, source: ldapmux_core::Error) -> Error {
        let server = crate::error::server_of(&source).and_then(|id| self.server_url(id));
        Error::Pool { source, server }
    }

    pub(crate) fn outcome_unknown(
        &self,
        operation: &'static str,
        server: ServerId,
        cause: String,
    ) -> Error {
        let server = self
            .server_url(server)
            .unwrap_or_else(|| server.to_string());
        Error::OutcomeUnknown {
            operation,
            server,
            cause,
        }
    }
}

/// The deadline passed first.
struct Elapsed;

/// Runs `fut` until it completes, or until `sleep` (an operation's deadline)
/// fires: `tokio::time::timeout_at` on a timer shared by several waits.
/// `fut` is polled first, so one that is ready at once never touches the
/// timer, as with `timeout_at`.
async fn until<F: std::future::Future>(
    mut sleep: std::pin::Pin<&mut tokio::time::Sleep>,
    fut: F,
) -> Result<F::Output, Elapsed> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(cx) {
            return std::task::Poll::Ready(Ok(v));
        }
        sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
    })
    .await
}
