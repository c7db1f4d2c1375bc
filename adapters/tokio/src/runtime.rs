//! The runtime side of the driver: opens, binds, watches, closes and probes
//! connections on tokio, and runs the pool's one timer. Every method of
//! [`Io`] is called without the driver's lock, and only spawns or touches
//! this module's own table, so none of them blocks the caller.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ldap3::Ldap;
use ldapmux_core::{
    CloseReason, ConnError, ConnErrorKind, ConnId, CredKey, Event, Health, Instant, Purpose,
    ServerId,
};
use ldapmux_driver::{Clock, Driver, Io, OpenRequest};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::builder::Settings;
use crate::connect::{self, Opened};
use crate::credential::CredTable;
use crate::metrics::{self, Closed, ConnLabels, Publisher};
use crate::url::ServerUrl;

/// A connection as the runtime holds it.
enum Slot {
    /// Being opened by a task.
    Opening(AbortHandle),
    /// Open and bound; users clone `ldap`.
    Open {
        ldap: Ldap,
        server: ServerId,
        drive: AbortHandle,
        labels: ConnLabels,
    },
}

/// State shared by the pool handle, the [`Io`] given to the driver, and the
/// tasks they spawn.
pub(crate) struct Shared {
    pub(crate) handle: tokio::runtime::Handle,
    /// Set right after the driver is made; taken when the pool is dropped,
    /// which breaks the driver → io → driver cycle.
    driver: Mutex<Option<Driver>>,
    conns: Mutex<HashMap<ConnId, Slot>>,
    settings: RwLock<Arc<Settings>>,
    pub(crate) creds: CredTable,
    /// Woken when the pool's next deadline moved earlier than the one the
    /// timer task sleeps until.
    timer: Notify,
    /// The deadline the timer task sleeps until (`None`: no deadline). Lock
    /// order: this, then the driver's lock (through `next_timeout`).
    sleeping_until: Mutex<Option<Instant>>,
    /// The instant the core's clock counts from.
    epoch: std::time::Instant,
    /// Sockets whose driving task still runs.
    sockets: AtomicUsize,
    sockets_changed: Notify,
    /// Servers with a liveness check in flight.
    suspects: Mutex<HashSet<ServerId>>,
    /// Credentials a server refused, by server address (lower case) and
    /// credential key: binds with them are held back (see [`Refusal`]).
    refused: Mutex<HashMap<(String, CredKey), Refusal>>,
    /// Publishes the gauges and the core's counters.
    pub(crate) metrics: Publisher,
}

/// A credential a server refused. Until `until` no bind with it is sent to
/// that server: opens fail at once with the saved error. After that, one
/// open at a time (`trying`) may bind again; another refusal doubles the
/// hold (probe backoff min, doubling to max). So wrong credentials cost at
/// most one bind per backoff period, however many callers use them, and
/// never a lockout storm. A successful bind forgets the refusal.
struct Refusal {
    until: tokio::time::Instant,
    backoff: Duration,
    trying: bool,
    error: ConnError,
}

/// Clears [`Refusal::trying`] if the open that set it ends without a verdict
/// (its task aborted, or a failure that says nothing about the credential).
struct TryingGuard<'a> {
    shared: &'a Shared,
    key: Option<(String, CredKey)>,
}

impl Drop for TryingGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take()
            && let Some(r) = lock(&self.shared.refused).get_mut(&key)
        {
            r.trying = false;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(settings: Arc<Settings>, handle: tokio::runtime::Handle) -> Arc<Shared> {
        Arc::new(Shared {
            handle,
            driver: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            settings: RwLock::new(settings),
            creds: CredTable::default(),
            timer: Notify::new(),
            sleeping_until: Mutex::new(None),
            epoch: std::time::Instant::now(),
            sockets: AtomicUsize::new(0),
            sockets_changed: Notify::new(),
            suspects: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashMap::new()),
            metrics: Publisher::default(),
        })
    }

    pub(crate) fn attach(&self, driver: Driver) {
        *lock(&self.driver) = Some(driver);
    }

    pub(crate) fn detach(&self) -> Option<Driver> {
        lock(&self.driver).take()
    }

    fn driver(&self) -> Option<Driver> {
        lock(&self.driver).clone()
    }

    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_settings(&self, settings: Arc<Settings>) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    /// Publishes the gauges and the core's counters now (no-op once the
    /// pool is dropped).
    pub(crate) fn publish_metrics(&self) {
        if let Some(driver) = self.driver() {
            self.metrics.publish(
                &self.settings().metrics,
                &driver,
                &self.creds,
                self.open_sockets(),
            );
        }
    }

    /// Publishes the metrics every `PoolBuilder::metrics_interval` (read
    /// again each time, so a reload can change or stop it). Ends when the
    /// pool is dropped.
    pub(crate) async fn run_metrics(self: Arc<Self>) {
        while let Some(every) = self.settings().metrics.interval {
            tokio::time::sleep(every).await;
            if self.driver().is_none() {
                return;
            }
            self.publish_metrics();
        }
    }

    /// The core's clock.
    pub(crate) fn clock(self: &Arc<Self>) -> EpochClock {
        EpochClock { epoch: self.epoch }
    }

    /// A tokio instant on the core's scale.
    pub(crate) fn to_core(&self, at: tokio::time::Instant) -> Instant {
        let nanos = at
            .into_std()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.epoch + Duration::from_nanos(at.as_nanos()))
    }

    /// The handle to run an operation on `conn`, and its server.
    pub(crate) fn ldap(&self, conn: ConnId) -> Option<(Ldap, ServerId)> {
        match lock(&self.conns).get(&conn)? {
            Slot::Open { ldap, server, .. } => Some((ldap.clone(), *server)),
            Slot::Opening(_) => None,
        }
    }

    /// Open sockets (0 once everything is closed).
    pub(crate) fn open_sockets(&self) -> usize {
        self.sockets.load(Ordering::SeqCst)
    }

    /// Waits until every socket is closed or `within` passes; returns how
    /// many are still open.
    pub(crate) async fn wait_sockets_closed(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.sockets_changed.notified();
            let open = self.open_sockets();
            if open == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.open_sockets();
            }
        }
    }

    fn url_of(&self, settings: &Settings, addr: &str) -> Option<ServerUrl> {
        settings
            .url(addr)
            .cloned()
            .or_else(|| ServerUrl::parse(addr).ok())
    }

    /// An operation timed out on a connection to `server`: is the server
    /// alive? A fresh connection must read the root DSE within the connect
    /// timeout, or the server is reported down (a frozen slapd keeps
    /// accepting TCP, so only an answer counts).
    pub(crate) fn suspect(self: &Arc<Self>, server: ServerId, addr: String) {
        if !lock(&self.suspects).insert(server) {
            return;
        }
        let shared = self.clone();
        self.handle.spawn(async move {
            let alive = shared.answers(&addr).await;
            lock(&shared.suspects).remove(&server);
            if alive {
                tracing::info!(%server, addr, "liveness check after a timeout: server answers");
            } else if let Some(driver) = shared.driver() {
                tracing::warn!(%server, addr, "liveness check after a timeout failed: server down");
                let _ = driver.event(Event::ServerDown { server });
                log_health(&driver, server);
            }
        });
    }

    /// Whether a bind with `key` may be sent now. `Err`: the credential was
    /// refused and is held back; the saved refusal. `Ok(guard)`: go ahead
    /// (the guard marks a previously refused credential as being tried).
    fn may_bind(&self, key: (String, CredKey)) -> Result<TryingGuard<'_>, ConnError> {
        let mut refused = lock(&self.refused);
        let Some(r) = refused.get_mut(&key) else {
            return Ok(TryingGuard {
                shared: self,
                key: None,
            });
        };
        let left = r
            .until
            .saturating_duration_since(tokio::time::Instant::now());
        if r.trying || !left.is_zero() {
            return Err(ConnError::new(
                ConnErrorKind::InvalidCredentials,
                format!(
                    "{} (held back: not sent again for {left:?})",
                    r.error.message
                ),
            ));
        }
        r.trying = true;
        Ok(TryingGuard {
            shared: self,
            key: Some(key),
        })
    }

    /// Records the outcome of a bind with `key` (see [`Refusal`]).
    fn note_bind(
        &self,
        settings: &Settings,
        key: (String, CredKey),
        result: &Result<Opened, ConnError>,
    ) {
        let mut refused = lock(&self.refused);
        match result {
            Ok(_) => {
                refused.remove(&key);
            }
            Err(error) if error.kind == ConnErrorKind::InvalidCredentials => {
                let (min, max) = (
                    settings.core.probe_backoff_min,
                    settings.core.probe_backoff_max,
                );
                let now = tokio::time::Instant::now();
                let backoff = match refused.get(&key) {
                    // Refused again soon after the last hold: back off further.
                    Some(r) if now <= r.until + max => (r.backoff * 2).min(max),
                    _ => min,
                };
                refused.insert(
                    key,
                    Refusal {
                        until: now + backoff,
                        backoff,
                        trying: false,
                        error: error.clone(),
                    },
                );
            }
            Err(_) => {}
        }
    }

    async fn open(self: Arc<Self>, req: OpenRequest) {
        let settings = self.settings();
        let mut held = false;
        let result = match (self.url_of(&settings, &req.addr), self.creds.get(req.cred)) {
            (Some(url), Some(cred)) => {
                let bind_anonymous = req.purpose != Purpose::Private;
                let sends_bind = bind_anonymous || matches!(cred, crate::Credential::Simple { .. });
                let key = (req.addr.to_ascii_lowercase(), req.cred);
                match sends_bind.then(|| self.may_bind(key.clone())).transpose() {
                    Err(error) => {
                        held = true;
                        Err(error)
                    }
                    Ok(_guard) => {
                        let result = match tokio::time::timeout(
                            settings.core.connect_timeout,
                            connect::open(&settings, &url, &cred, bind_anonymous),
                        )
                        .await
                        {
                            Ok(r) => r,
                            Err(_) => Err(ConnError::new(
                                ConnErrorKind::Timeout,
                                format!(
                                    "connect + bind took longer than {:?}",
                                    settings.core.connect_timeout
                                ),
                            )),
                        };
                        if sends_bind {
                            self.note_bind(&settings, key, &result);
                        }
                        result
                    }
                }
            }
            (None, _) => Err(ConnError::new(
                ConnErrorKind::Io,
                format!("not an LDAP URL: {}", req.addr),
            )),
            (_, None) => Err(ConnError::new(
                ConnErrorKind::InvalidCredentials,
                "unknown credential",
            )),
        };
        let mcfg = &settings.metrics;
        match &result {
            Ok(_) => {}
            Err(_) if held => {}
            Err(error) => metrics::record_connect_failure(mcfg, &req.addr, error.kind),
        }
        let Some(driver) = self.driver() else { return };
        match result {
            Ok(Opened { ldap, drive }) => {
                let labels = ConnLabels::new(
                    mcfg,
                    &req.addr,
                    req.cred,
                    self.creds.dn(req.cred).as_deref(),
                    req.purpose,
                );
                metrics::record_opened(mcfg, &labels);
                {
                    let mut conns = lock(&self.conns);
                    if !matches!(conns.get(&req.conn), Some(Slot::Opening(_))) {
                        // Closed while opening: this socket is no one's.
                        drop(conns);
                        metrics::record_closed(mcfg, &labels, Closed::Unwanted);
                        close_socket(ldap, drive.abort_handle());
                        return;
                    }
                    self.sockets.fetch_add(1, Ordering::SeqCst);
                    conns.insert(
                        req.conn,
                        Slot::Open {
                            ldap,
                            server: req.server,
                            drive: drive.abort_handle(),
                            labels,
                        },
                    );
                }
                let shared = self.clone();
                let conn = req.conn;
                self.handle
                    .spawn(async move { shared.watch(conn, drive).await });
                tracing::debug!(conn = %req.conn, server = %req.server, addr = req.addr, cred = %req.cred, purpose = ?req.purpose, "connection open and bound");
                let _ = driver.conn_opened(req.conn);
            }
            Err(error) => {
                lock(&self.conns).remove(&req.conn);
                if held {
                    tracing::debug!(conn = %req.conn, server = %req.server, addr = req.addr, %error, "connection not opened: its credential was refused");
                } else {
                    tracing::warn!(conn = %req.conn, server = %req.server, addr = req.addr, %error, "connection failed to open");
                }
                let was_down = is_down(&driver, req.server);
                let _ = driver.conn_open_failed(req.conn, error);
                if !was_down {
                    log_health(&driver, req.server);
                }
            }
        }
    }

    /// Waits for the connection's driving task to end; if the pool still
    /// counts on the connection, tells it at once (`ConnLost`).
    async fn watch(
        self: Arc<Self>,
        conn: ConnId,
        drive: tokio::task::JoinHandle<ldap3::result::Result<()>>,
    ) {
        let outcome = drive.await;
        self.sockets.fetch_sub(1, Ordering::SeqCst);
        self.sockets_changed.notify_waiters();
        let Some(Slot::Open { labels, .. }) = lock(&self.conns).remove(&conn) else {
            return;
        };
        metrics::record_closed(&self.settings().metrics, &labels, Closed::Lost);
        let cause = match outcome {
            Ok(Ok(())) => "server closed the connection".to_owned(),
            Ok(Err(e)) => connect::classify(&e).message,
            Err(e) => format!("connection task ended: {e}"),
        };
        tracing::warn!(%conn, cause, "connection lost");
        if let Some(driver) = self.driver() {
            let _ = driver.conn_lost(conn, ConnError::new(ConnErrorKind::Io, cause));
        }
    }

    /// Whether `addr` answers: a fresh connection reads the root DSE within
    /// the connect timeout (the probe of a down server, and the liveness
    /// check of a suspect one).
    async fn answers(&self, addr: &str) -> bool {
        let settings = self.settings();
        let Some(url) = self.url_of(&settings, addr) else {
            return false;
        };
        let check = connect::probe(&settings, &url);
        matches!(
            tokio::time::timeout(settings.core.connect_timeout, check).await,
            Ok(Ok(()))
        )
    }

    async fn probe(self: Arc<Self>, server: ServerId, addr: String) {
        let ok = self.answers(&addr).await;
        tracing::info!(%server, addr, ok, "probe answered");
        if let Some(driver) = self.driver() {
            let _ = driver.probe_result(server, ok);
            if ok {
                log_health(&driver, server);
            }
        }
    }

    /// The pool's one timer: sleeps until the core's next deadline, or until
    /// told the deadline changed, and feeds `handle_timeout`. Ends when the
    /// pool is dropped.
    pub(crate) async fn run_timer(self: Arc<Self>) {
        loop {
            let notified = self.timer.notified();
            let Some(driver) = self.driver() else { return };
            let next = {
                let mut sleeping = lock(&self.sleeping_until);
                *sleeping = driver.next_timeout();
                *sleeping
            };
            drop(driver);
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(self.to_tokio(at)) => {
                            let Some(driver) = self.driver() else { return };
                            driver.on_timer();
                        }
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

fn is_down(driver: &Driver, server: ServerId) -> bool {
    matches!(
        driver.inspect(|p| p.health(server)),
        Some(Health::Down { .. })
    )
}

/// Logs a server's health after an input that may have changed it.
fn log_health(driver: &Driver, server: ServerId) {
    let (health, addr) =
        driver.inspect(|p| (p.health(server), p.server_addr(server).map(str::to_owned)));
    let addr = addr.unwrap_or_default();
    match health {
        Some(Health::Down { next_probe, .. }) => {
            tracing::warn!(%server, addr, %next_probe, "server down: its connections are closed, operations fail over")
        }
        Some(Health::Returning { until }) => {
            tracing::info!(%server, addr, %until, "server up again: fail-back after the hold-down")
        }
        Some(Health::Up) => tracing::info!(%server, addr, "server up"),
        None => {}
    }
}

/// Unbinds and closes a socket in the background (bounded: 1 s for the unbind).
fn close_socket(mut ldap: Ldap, drive: AbortHandle) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), ldap.unbind()).await;
        drop(ldap);
        // The driving task normally ends after the unbind; make sure.
        tokio::time::sleep(Duration::from_millis(50)).await;
        drive.abort();
    });
}

/// The [`Io`] handed to the driver.
pub(crate) struct TokioIo(pub(crate) Arc<Shared>);

impl Io for TokioIo {
    fn open(&self, request: OpenRequest) {
        let shared = self.0.clone();
        let mut conns = lock(&self.0.conns);
        // Spawned under the table's lock so the slot exists before the task
        // can look for it.
        let task = self.0.handle.spawn(shared.open(request.clone()));
        conns.insert(request.conn, Slot::Opening(task.abort_handle()));
    }

    fn close(&self, conn: ConnId, reason: CloseReason) {
        let slot = lock(&self.0.conns).remove(&conn);
        match slot {
            Some(Slot::Opening(task)) => task.abort(),
            Some(Slot::Open {
                ldap,
                drive,
                server,
                labels,
            }) => {
                metrics::record_closed(&self.0.settings().metrics, &labels, Closed::Core(reason));
                if reason == CloseReason::FailBack {
                    tracing::info!(%conn, %server, "fail-back: drained connection to a less preferred server closed");
                } else {
                    tracing::debug!(%conn, %server, ?reason, "closing connection");
                }
                let _guard = self.0.handle.enter();
                close_socket(ldap, drive);
            }
            None => {}
        }
    }

    fn abandon(&self, conn: ConnId) {
        // Forget it without an unbind: after fork the socket is the parent's.
        if let Some(Slot::Open { labels, .. }) = lock(&self.0.conns).remove(&conn) {
            metrics::record_closed(&self.0.settings().metrics, &labels, Closed::Forked);
        }
    }

    fn probe(&self, server: ServerId, addr: &str) {
        tracing::debug!(%server, addr, "probing server");
        self.0
            .handle
            .spawn(self.0.clone().probe(server, addr.to_owned()));
    }

    /// Wakes the timer task only if the pool's next deadline is now earlier
    /// than the one it sleeps until. A later one needs no wake-up: the task
    /// wakes at the old deadline, finds nothing due (a spurious
    /// `handle_timeout` is harmless) and sleeps again. This saves two
    /// cross-thread wake-ups per operation when a connection goes busy and
    /// idle in turn (its idle timer disarmed, then armed again).
    fn timer_changed(&self) {
        let Some(driver) = self.0.driver() else {
            return;
        };
        let sleeping = lock(&self.0.sleeping_until);
        let next = driver.next_timeout();
        let earlier = match (next, *sleeping) {
            (Some(next), Some(until)) => next < until,
            (Some(_), None) => true,
            (None, _) => false,
        };
        drop(sleeping);
        if earlier {
            self.0.timer.notify_one();
        }
    }
}

/// The core's clock: time since the pool started, on `std::time::Instant`.
#[derive(Clone, Copy)]
pub(crate) struct EpochClock {
    epoch: std::time::Instant,
}

impl Clock for EpochClock {
    fn now(&self) -> Instant {
        let nanos = self.epoch.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}
