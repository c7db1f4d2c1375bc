//! The builder's DNS SRV settings and [`PoolBuilder::build_discovered`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::discovery::{Discovery, Running};
use super::lookup::{lookup, resolver};
use super::schedule::Schedule;
use super::{SrvConfig, SrvService, SrvStatus};
use crate::{BuildError, Pool, PoolBuilder};

impl PoolBuilder {
    /// Finds the servers in DNS: the SRV records of `_ldap._tcp.<domain>`
    /// (or `_ldaps._tcp`, [`PoolBuilder::dns_srv_service`]). Build with
    /// [`PoolBuilder::build_discovered`]; the plain [`PoolBuilder::build`]
    /// refuses, as it cannot wait for the first answer. Servers must not
    /// also be listed by hand.
    pub fn dns_srv(mut self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        match &mut self.srv {
            Some(c) => c.domain = domain,
            None => self.srv = Some(SrvConfig::new(domain)),
        }
        self
    }

    /// Whether this builder finds its servers in DNS ([`PoolBuilder::dns_srv`]):
    /// then it is built with [`PoolBuilder::build_discovered`].
    pub fn uses_dns_srv(&self) -> bool {
        self.srv.is_some()
    }

    fn srv_mut(&mut self) -> &mut SrvConfig {
        self.srv
            .get_or_insert_with(|| SrvConfig::new(String::new()))
    }

    /// Which records to ask for (default [`SrvService::Ldap`]).
    pub fn dns_srv_service(mut self, service: SrvService) -> Self {
        self.srv_mut().service = service;
        self
    }

    /// Ask this name server (UDP, then TCP for long answers) instead of the
    /// system's (`/etc/resolv.conf`), e.g. `127.0.0.1:5353`.
    pub fn dns_server(mut self, addr: SocketAddr) -> Self {
        self.srv_mut().name_server = Some(addr);
        self
    }

    /// The answer is looked up again when its TTL (the smallest of its
    /// records') runs out, but no sooner than `floor` and no later than
    /// `ceiling` (default 30 s and 1 h).
    pub fn dns_refresh(mut self, floor: Duration, ceiling: Duration) -> Self {
        let c = self.srv_mut();
        c.refresh_min = floor;
        c.refresh_max = ceiling;
        self
    }

    /// After a listed server is marked down, the answer is looked up again
    /// at once, but never sooner than `floor` after the previous lookup; a
    /// failed lookup is retried after `floor`, doubling up to the refresh
    /// ceiling (default 5 s).
    pub fn dns_failure_refresh(mut self, floor: Duration) -> Self {
        self.srv_mut().failure_floor = floor;
        self
    }

    /// Bound on one lookup, retries included (default 5 s).
    pub fn dns_timeout(mut self, d: Duration) -> Self {
        self.srv_mut().lookup_timeout = d;
        self
    }

    /// Looks the servers up ([`PoolBuilder::dns_srv`]), builds the pool
    /// with them as its preferred servers in RFC 2782 order, and starts the
    /// task that follows the answer. Fails with [`BuildError::Discovery`]
    /// if the first lookup fails or gives no usable server (nothing to
    /// start with), and like [`PoolBuilder::build`] for the rest.
    pub async fn build_discovered(mut self) -> Result<Pool, BuildError> {
        let Some(cfg) = self.srv.take() else {
            return Err(BuildError::InvalidField {
                field: "dns_srv",
                reason: "build_discovered() needs dns_srv(domain)".into(),
            });
        };
        let name = cfg.check()?;
        if self.has_servers() {
            return Err(listed_by_hand());
        }
        // Template for every generation: all but the servers. Checked now,
        // with a placeholder server, so that a bad setting fails here and
        // not at the first change of the answer.
        self.settings_with_placeholder()?;
        let runtime = match self.runtime_handle() {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        let resolver = resolver(&cfg).map_err(BuildError::Discovery)?;
        let mut rng = fastrand::Rng::with_seed(self.seed_or_default() ^ 0x5352_565f_4c44_4150);
        let answer = lookup(&resolver, &name, &cfg).await;
        let now = Instant::now();
        let answer = answer.map_err(BuildError::Discovery)?;
        let ordered = answer
            .order(&mut rng, cfg.service)
            .map_err(BuildError::Discovery)?;
        let pool = self.clone().with_urls(&ordered.urls).build_static()?;
        let mut schedule = Schedule::new(&cfg, now);
        schedule.resolved(now, answer.ttl);
        tracing::info!(name = %name, servers = ?ordered.urls, ttl = ?answer.ttl, "servers discovered through DNS SRV");
        let status = Arc::new(Mutex::new(SrvStatus {
            name: name.to_ascii(),
            servers: ordered.urls.clone(),
            records: ordered.records.clone(),
            lookups: 1,
            lookup_failures: 0,
            changes: 0,
            failure_lookups: 0,
            last_error: None,
            next_lookup_in: Some(schedule.next().saturating_duration_since(now)),
            running: true,
        }));
        let template = Arc::new(Mutex::new(self));
        let state = Running {
            pool: pool.weak_pool(),
            template: template.clone(),
            cfg: cfg.clone(),
            name,
            resolver,
            rng,
            schedule,
            current: answer,
            notices: pool.notices(),
            urls: ordered.urls,
            status: status.clone(),
        };
        let task = runtime.spawn(state.run()).abort_handle();
        pool.set_discovery(Discovery {
            task,
            status,
            template,
            cfg,
        });
        Ok(pool)
    }
}

/// A builder that follows DNS also lists servers by hand: one source only.
pub(super) fn listed_by_hand() -> BuildError {
    BuildError::InvalidField {
        field: "dns_srv",
        reason: "the servers come from DNS: do not also list servers".into(),
    }
}

impl PoolBuilder {
    /// This builder with `urls` as its preferred servers, in order.
    pub(super) fn with_urls(self, urls: &[String]) -> PoolBuilder {
        urls.iter().fold(self, |b, u| b.preferred_server(u.clone()))
    }

    /// Checks the settings other than the servers.
    pub(super) fn settings_with_placeholder(&self) -> Result<(), BuildError> {
        self.clone()
            .preferred_server("ldap://placeholder.invalid")
            .settings()
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_build_refuses_and_build_discovered_needs_a_domain() {
        let e = PoolBuilder::new()
            .dns_srv("example.test")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("build_discovered"), "{e}");
        let e = PoolBuilder::new()
            .server("ldap://127.0.0.1:1")
            .build_discovered()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("dns_srv"), "{e}");
        let e = PoolBuilder::new()
            .dns_srv("example.test")
            .server("ldap://127.0.0.1:1")
            .build_discovered()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("do not also list servers"), "{e}");
    }
}
