//! The runtime side of the driver: opens, binds, watches, closes and probes
//! connections on tokio, and runs the pool's one timer. Every method of
//! [`Io`] is called without the driver's lock, and only spawns or touches
//! this module's own table, so none of them blocks the caller.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ldap3::Ldap;
use ldapmux_core::{
    CloseReason, ConnError, ConnErrorKind, ConnId, Health, Instant, Purpose, ServerId,
};
use ldapmux_driver::shell::{Cell, ConnTable, Slot, TimerGate};
use ldapmux_driver::{Clock, Driver, Io, OpenRequest};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::builder::Settings;
use crate::connect::{self, Opened};
use crate::credential::CredTable;
use crate::metrics::{self, Closed, ConnLabels, Publisher};
use crate::paging::Paging;
use crate::url::ServerUrl;

/// Notices kept for a slow listener (beyond, it sees `Lagged`).
const NOTICES: usize = 64;

/// What the pool tells server discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The core marked the server at this address down.
    MarkedDown(String),
}

/// How long an operation that found its connection dead waits for the
/// connection's watch to read what came before the end ([`Shared::settle`]).
const SETTLE_WAIT: Duration = Duration::from_millis(250);

/// An open, bound connection as the runtime holds it; users clone `ldap`.
struct OpenConn {
    ldap: Ldap,
    server: ServerId,
    drive: AbortHandle,
    labels: ConnLabels,
    /// True once its watch has read everything the server sent before the
    /// socket ended (a Notice of Disconnection included).
    settled: tokio::sync::watch::Receiver<bool>,
}

/// State shared by the pool handle, the [`Io`] given to the driver, and the
/// tasks they spawn. Its locks are the driver crate's
/// ([`ldapmux_driver::shell`]), which loom checks; this module holds none of
/// its own.
pub(crate) struct Shared {
    pub(crate) handle: tokio::runtime::Handle,
    /// Set right after the driver is made; taken when the pool is dropped,
    /// which breaks the driver → io → driver cycle.
    driver: Cell<Option<Driver>>,
    conns: ConnTable<AbortHandle, OpenConn>,
    settings: Cell<Arc<Settings>>,
    pub(crate) creds: CredTable,
    /// Woken (a kept permit) when the pool's next deadline moved earlier
    /// than the one the timer task sleeps until ([`TimerGate`]).
    timer: Notify,
    /// The deadline the timer task sleeps until.
    gate: TimerGate,
    /// The instant the core's clock counts from.
    epoch: std::time::Instant,
    /// Sockets whose driving task still runs.
    sockets: AtomicUsize,
    sockets_changed: Notify,
    /// The pool's notices, for server discovery: a server marked down.
    notices: tokio::sync::broadcast::Sender<Notice>,
    /// Publishes the gauges and the core's counters.
    pub(crate) metrics: Publisher,
    /// Which servers page searches (their root DSE, read once per
    /// generation).
    pub(crate) paging: crate::paging::Support,
}

impl Shared {
    pub(crate) fn new(settings: Arc<Settings>, handle: tokio::runtime::Handle) -> Arc<Shared> {
        Arc::new(Shared {
            handle,
            driver: Cell::new(None),
            conns: ConnTable::default(),
            settings: Cell::new(settings),
            creds: CredTable::default(),
            timer: Notify::new(),
            gate: TimerGate::default(),
            epoch: std::time::Instant::now(),
            sockets: AtomicUsize::new(0),
            sockets_changed: Notify::new(),
            notices: tokio::sync::broadcast::channel(NOTICES).0,
            metrics: Publisher::default(),
            paging: crate::paging::Support::default(),
        })
    }

    /// Notices from now on (see [`Notice`]).
    pub(crate) fn notices(&self) -> tokio::sync::broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Tells listeners, if any.
    pub(crate) fn notify(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    pub(crate) fn attach(&self, driver: Driver) {
        self.driver.replace(Some(driver));
    }

    pub(crate) fn detach(&self) -> Option<Driver> {
        self.driver.replace(None)
    }

    fn driver(&self) -> Option<Driver> {
        self.driver.get()
    }

    pub(crate) fn settings(&self) -> Arc<Settings> {
        self.settings.get()
    }

    /// A new generation's settings (a reload): what the root DSEs said is
    /// read again, since a server may have changed meanwhile.
    pub(crate) fn set_settings(&self, settings: Arc<Settings>) {
        self.settings.replace(settings);
        self.paging.forget();
    }

    /// How a search on `server` pages under `settings`.
    pub(crate) fn paging<'a>(&'a self, settings: &Settings, server: ServerId) -> Paging<'a> {
        Paging {
            support: &self.paging,
            server,
            stop_within: settings.core.connect_timeout,
        }
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
        self.conns.with_open(conn, |c| (c.ldap.clone(), c.server))
    }

    /// An operation found `conn` dead: waits (briefly) until its watch has
    /// read what the server sent before the end, so that a Notice of
    /// Disconnection reaches the core before the operation's report does
    /// (the notice makes the death expected: no sibling drained, no one
    /// suspected). The socket has ended, so this is a matter of the watch
    /// task being scheduled, not of the network.
    pub(crate) async fn settle(&self, conn: ConnId) {
        let Some(mut settled) = self.conns.with_open(conn, |c| c.settled.clone()) else {
            return;
        };
        let _ = tokio::time::timeout(SETTLE_WAIT, settled.wait_for(|done| *done)).await;
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

    async fn open(self: Arc<Self>, req: OpenRequest) {
        let settings = self.settings();
        // A credential a server refused is held back by the core (no
        // `Open` is asked for it during its hold-down): every open is sent.
        let result = match (self.url_of(&settings, &req.addr), self.creds.get(req.cred)) {
            (Some(url), Some(cred)) => {
                // A private or bind connection is opened unbound: its user's
                // bind is the operation.
                let bind_anonymous = req.purpose.is_shared();
                // A shared read connection learns, as part of opening, whether
                // its server pages (its root DSE, once per server and
                // generation): a server that cannot answer it is one that
                // cannot be connected to, and an enumeration's first request
                // is its own search.
                let learn = req.purpose == Purpose::Read && settings.page_size.is_some();
                let open = async {
                    let mut opened = connect::open(&settings, &url, &cred, bind_anonymous).await?;
                    if learn && let Err(e) = self.paging.learn(req.server, &mut opened.ldap).await {
                        opened.drive.abort();
                        return Err(connect::classify(&e));
                    }
                    Ok(opened)
                };
                match tokio::time::timeout(settings.core.connect_timeout, open).await {
                    Ok(r) => r,
                    Err(_) => Err(ConnError::new(
                        ConnErrorKind::Timeout,
                        format!(
                            "connect + bind took longer than {:?}",
                            settings.core.connect_timeout
                        ),
                    )),
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
        if let Err(error) = &result {
            metrics::record_connect_failure(mcfg, &req.addr, error.kind);
        }
        let Some(driver) = self.driver() else { return };
        match result {
            Ok(Opened {
                ldap,
                drive,
                expires_at,
                notices,
            }) => {
                let labels = ConnLabels::new(
                    mcfg,
                    &req.addr,
                    req.cred,
                    self.creds.dn(req.cred).as_deref(),
                    req.purpose,
                );
                metrics::record_opened(mcfg, &labels);
                let (settle_tx, settled) = tokio::sync::watch::channel(false);
                let open = OpenConn {
                    ldap,
                    server: req.server,
                    drive: drive.abort_handle(),
                    labels,
                    settled,
                };
                let counted = || {
                    self.sockets.fetch_add(1, Ordering::SeqCst);
                };
                if let Err(open) = self.conns.opened(req.conn, open, counted) {
                    // Closed while opening: this socket is no one's.
                    metrics::record_closed(mcfg, &open.labels, Closed::Unwanted);
                    close_socket(open.ldap, open.drive);
                    return;
                }
                let shared = self.clone();
                let conn = req.conn;
                self.handle
                    .spawn(async move { shared.watch(conn, drive, notices, settle_tx).await });
                tracing::debug!(conn = %req.conn, server = %req.server, addr = req.addr, cred = %req.cred, purpose = ?req.purpose, "connection open and bound");
                let _ = driver.conn_opened(req.conn);
                // Retiring it before its credentials end is the core's
                // decision (its margin, its timer).
                if let Some(at) = expires_at {
                    let at = self.to_core(tokio::time::Instant::from_std(at));
                    let _ = driver.conn_expires(conn, at);
                }
            }
            Err(error) => {
                self.conns.failed(req.conn);
                tracing::warn!(conn = %req.conn, server = %req.server, addr = req.addr, %error, "connection failed to open");
                let was_down = is_down(&driver, req.server);
                let _ = driver.conn_open_failed(req.conn, error);
                if !was_down {
                    log_health(&driver, req.server);
                }
            }
        }
    }

    /// Waits for the connection's driving task to end; if the pool still
    /// counts on the connection, tells it at once (`ConnLost`). Meanwhile a
    /// Notice of Disconnection from the server tells the core the
    /// connection is going away (`ConnClosing`): no new users, and its end
    /// is no sign about the server.
    async fn watch(
        self: Arc<Self>,
        conn: ConnId,
        mut drive: tokio::task::JoinHandle<ldap3::result::Result<()>>,
        mut notices: connect::Notices,
        settled: tokio::sync::watch::Sender<bool>,
    ) {
        let outcome = loop {
            tokio::select! {
                biased;
                Some((op, _)) = notices.recv() => self.on_unsolicited(conn, &op),
                outcome = &mut drive => break outcome,
            }
        };
        // A notice right before the close (the usual order) is in the
        // channel before the driving task sees the end of the stream.
        while let Ok((op, _)) = notices.try_recv() {
            self.on_unsolicited(conn, &op);
        }
        settled.send_replace(true);
        self.sockets.fetch_sub(1, Ordering::SeqCst);
        self.sockets_changed.notify_waiters();
        let Some(Slot::Open(OpenConn { labels, .. })) = self.conns.take(conn) else {
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

    /// An unsolicited notification arrived on `conn`.
    fn on_unsolicited(&self, conn: ConnId, op: &ldap3::asn1::Tag) {
        let Some(notice) = crate::notice::Unsolicited::read(op) else {
            tracing::warn!(%conn, "unsolicited message that is not an extended response, ignored");
            return;
        };
        if !notice.is_disconnection() {
            tracing::info!(%conn, name = ?notice.name, "unsolicited notification ignored");
            return;
        }
        tracing::info!(%conn, rc = ?notice.rc, text = notice.text, "the server announced it is closing the connection");
        if let Some(driver) = self.driver() {
            let _ = driver.conn_closing(conn);
        }
    }

    /// Whether `addr` answers: a fresh connection reads the root DSE within
    /// the connect timeout. The core asks for it ([`Io::probe`]) for a down
    /// server, for a returning one during its hold-down, and to check one
    /// that is up after an operation on it timed out (a frozen slapd keeps
    /// accepting TCP, so only an answer counts); the core weighs the verdict.
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
            let next = self.gate.plan(&driver);
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
        // `Unknown`, never reached: nothing heard from it, nothing to log.
        _ => {}
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
        let conn = request.conn;
        self.0.conns.opening(conn, || {
            self.0.handle.spawn(shared.open(request)).abort_handle()
        });
    }

    fn close(&self, conn: ConnId, reason: CloseReason) {
        match self.0.conns.take(conn) {
            Some(Slot::Opening(task)) => task.abort(),
            Some(Slot::Open(OpenConn {
                ldap,
                drive,
                server,
                labels,
                ..
            })) => {
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
        if let Some(Slot::Open(OpenConn { labels, .. })) = self.0.conns.take(conn) {
            metrics::record_closed(&self.0.settings().metrics, &labels, Closed::Forked);
        }
    }

    fn server_marked_down(&self, server: ServerId, addr: &str) {
        tracing::debug!(%server, addr, "server marked down: notice to discovery");
        self.0.notify(Notice::MarkedDown(addr.to_owned()));
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
        if self.0.gate.must_wake(&driver) {
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
