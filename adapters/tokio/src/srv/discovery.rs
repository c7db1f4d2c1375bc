//! The running discovery task, and the handle the pool keeps of it.

use std::sync::{Arc, Mutex};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::Name;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::builder::listed_by_hand;
use super::lookup::{Answer, Ordered, lookup};
use super::schedule::Schedule;
use super::{SrvConfig, SrvError, SrvStatus};
use crate::pool::{ServerSource, WeakPool};
use crate::runtime::Notice;
use crate::{BuildError, Pool, PoolBuilder};

impl Pool {
    /// What DNS SRV discovery is doing, if the pool was built with
    /// [`SrvPoolBuilder::build`](crate::SrvPoolBuilder::build): the answer in use, lookups,
    /// failures, changes and the last error.
    pub fn dns_srv_status(&self) -> Option<SrvStatus> {
        self.discovery::<Discovery>().map(Discovery::status)
    }
}

/// The discovery task of a pool; aborted when dropped (with the pool) or
/// stopped (at shutdown).
pub(crate) struct Discovery {
    pub(super) task: AbortHandle,
    pub(super) status: Arc<Mutex<SrvStatus>>,
    /// Everything but the servers, for every generation; shared with the
    /// task. Held while reloading, so a reload by hand and a new answer
    /// never interleave.
    pub(super) template: Arc<Mutex<PoolBuilder>>,
    /// The discovery settings the pool was built with.
    pub(super) cfg: SrvConfig,
}

/// The pool holds its discovery as a [`ServerSource`]: it knows nothing of
/// DNS, and this module depends on the pool, never the other way.
impl ServerSource for Discovery {
    /// A reload by hand ([`Pool::reload`], [`Pool::watch`]) of a pool that
    /// follows DNS: `builder` must carry the same discovery settings and no
    /// servers; it becomes the template of later answers, and the pool is
    /// reloaded with it and the servers of the current answer.
    fn reload(
        &self,
        pool: &Pool,
        builder: PoolBuilder,
        keep_listed: bool,
    ) -> Result<(), BuildError> {
        let refuse = |reason: String| {
            Err(BuildError::InvalidField {
                field: "dns_srv",
                reason,
            })
        };
        let Some(cfg) = SrvConfig::of(builder.config()) else {
            return refuse(
                "this pool follows DNS SRV: a new configuration must keep dns_srv \
                 (servers cannot be listed by hand)"
                    .into(),
            );
        };
        if builder.has_servers() {
            return Err(listed_by_hand());
        }
        if cfg != self.cfg {
            return refuse(format!(
                "the DNS SRV settings cannot change on a running pool (it follows {}): \
                 build a new pool",
                self.status.lock().expect("srv status").name
            ));
        }
        builder.config().check()?;
        let mut template = self.template.lock().expect("srv template");
        let urls = self.status.lock().expect("srv status").servers.clone();
        pool.reload_with(builder.clone().with_urls(&urls), keep_listed)?;
        *template = builder;
        Ok(())
    }

    fn stop(&self) {
        self.task.abort();
    }
}

impl Discovery {
    /// The status, with whether the task still runs.
    fn status(&self) -> SrvStatus {
        let mut s = self.status.lock().expect("srv status").clone();
        s.running = !self.task.is_finished();
        if !s.running {
            s.next_lookup_in = None;
        }
        s
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The state of a running discovery task.
pub(super) struct Running {
    pub(super) pool: WeakPool,
    pub(super) template: Arc<Mutex<PoolBuilder>>,
    pub(super) cfg: SrvConfig,
    pub(super) name: Name,
    pub(super) resolver: TokioResolver,
    pub(super) rng: fastrand::Rng,
    pub(super) schedule: Schedule,
    pub(super) current: Answer,
    pub(super) urls: Vec<String>,
    /// The pool's notices: a listed server marked down brings the next
    /// lookup forward (no polling).
    pub(super) notices: tokio::sync::broadcast::Receiver<Notice>,
    pub(super) status: Arc<Mutex<SrvStatus>>,
}

impl Running {
    /// Follows the answer until the pool shuts down or is dropped.
    pub(super) async fn run(mut self) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let failed = tokio::select! {
                _ = tokio::time::sleep_until(self.schedule.next()) => false,
                notice = self.notices.recv() => match notice {
                    Ok(Notice::MarkedDown(addr)) => self.urls.iter().any(|u| u.eq_ignore_ascii_case(&addr)),
                    // Notices were missed: one of them may have been ours.
                    Err(RecvError::Lagged(_)) => true,
                    // The pool is gone.
                    Err(RecvError::Closed) => return,
                },
            };
            // Hold the pool only while looking at it: a lookup must not
            // keep a dropped pool alive.
            let Some(pool) = self.pool.upgrade() else {
                return;
            };
            let shut_down = pool.status().shut_down;
            drop(pool);
            if shut_down {
                return;
            }
            let now = Instant::now();
            if failed && self.schedule.server_failed(now) {
                tracing::info!(name = %self.name, "a listed server was marked down: DNS SRV lookup brought forward");
                self.status.lock().expect("srv status").failure_lookups += 1;
            }
            if now >= self.schedule.next() {
                self.lookup_and_apply(now).await;
            }
            let next_in = self
                .schedule
                .next()
                .saturating_duration_since(Instant::now());
            self.status.lock().expect("srv status").next_lookup_in = Some(next_in);
        }
    }

    async fn lookup_and_apply(&mut self, now: Instant) {
        let result = lookup(&self.resolver, &self.name, &self.cfg).await;
        let result = result.and_then(|answer| {
            if answer.records == self.current.records {
                return Ok((answer, None));
            }
            let ordered = answer.order(&mut self.rng, self.cfg.service)?;
            Ok((answer, Some(ordered)))
        });
        let mut status = self.status.lock().expect("srv status");
        status.lookups += 1;
        match result {
            Ok((answer, changed)) => {
                self.schedule.resolved(now, answer.ttl);
                status.last_error = None;
                if let Some(ordered) = changed {
                    drop(status);
                    self.apply(answer, ordered);
                } else {
                    tracing::debug!(name = %self.name, "DNS SRV answer unchanged");
                }
            }
            Err(e) => {
                self.schedule.failed(now);
                status.lookup_failures += 1;
                tracing::warn!(error = %e, servers = ?self.urls, "DNS SRV lookup gave no servers; keeping the current ones");
                status.last_error = Some(e);
            }
        }
    }

    /// A new answer: reload keeping the connections to servers still listed.
    fn apply(&mut self, answer: Answer, ordered: Ordered) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let template = self.template.lock().expect("srv template");
        let builder = template.clone().with_urls(&ordered.urls);
        match pool.reload_with(builder, true) {
            Ok(()) => {
                tracing::info!(name = %self.name, from = ?self.urls, to = ?ordered.urls, "DNS SRV answer changed: servers reloaded");
                self.current = answer;
                self.urls = ordered.urls.clone();
                let mut status = self.status.lock().expect("srv status");
                status.changes += 1;
                status.servers = ordered.urls;
                status.records = ordered.records;
            }
            Err(e) => {
                // The template was checked at build: only the URLs can be
                // refused here. Keep the servers; try the answer again next
                // time (the current answer is unchanged).
                tracing::warn!(error = %e, "reload with the new DNS SRV answer refused; keeping the current servers");
                let mut status = self.status.lock().expect("srv status");
                status.lookup_failures += 1;
                status.last_error = Some(SrvError::NoUsableRecord {
                    name: answer.name,
                    reason: e.to_string(),
                });
            }
        }
    }
}
