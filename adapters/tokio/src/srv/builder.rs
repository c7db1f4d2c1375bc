//! [`SrvPoolBuilder`]: a pool whose servers come from DNS SRV records. Its
//! only way out is [`SrvPoolBuilder::build`], which waits for the first
//! answer, so a pool that follows DNS is never built by the plain
//! [`PoolBuilder::build`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::discovery::{Discovery, Running};
use super::lookup::{lookup, resolver};
use super::schedule::Schedule;
use super::{SrvConfig, SrvService, SrvStatus};
use crate::{BuildError, Pool, PoolBuilder, PoolConfig};

/// Builds a [`Pool`] whose servers are the SRV records of
/// `_ldap._tcp.<domain>` (or `_ldaps._tcp`), ordered as RFC 2782 says and
/// looked up again on a schedule. Made by [`PoolBuilder::dns_srv`], which
/// keeps every other setting of the builder; each DNS setter writes one
/// `dns_*` key of its [`PoolConfig`].
///
/// ```no_run
/// # async fn f() -> Result<(), ldapmux::BuildError> {
/// let pool = ldapmux::Pool::builder()
///     .operation_timeout(std::time::Duration::from_secs(10))
///     .dns_srv("example.com")
///     .dns_srv_service(ldapmux::SrvService::Ldaps)
///     .build()
///     .await?;
/// # let _ = pool; Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build().await is called"]
pub struct SrvPoolBuilder {
    builder: PoolBuilder,
}

impl PoolBuilder {
    /// Finds the servers in DNS: the SRV records of `_ldap._tcp.<domain>`
    /// (or `_ldaps._tcp`, [`SrvPoolBuilder::dns_srv_service`]). Servers
    /// must not also be listed by hand.
    pub fn dns_srv(mut self, domain: impl Into<String>) -> SrvPoolBuilder {
        self.config_mut().dns_srv = Some(domain.into());
        SrvPoolBuilder { builder: self }
    }

    /// Whether this builder's configuration names a `dns_srv` domain (read
    /// from a file, say): then it is built through [`PoolBuilder::into_dns_srv`].
    pub fn uses_dns_srv(&self) -> bool {
        self.config().dns_srv.is_some()
    }

    /// A builder whose configuration names a `dns_srv` domain (from a
    /// configuration file, say) as the [`SrvPoolBuilder`] it is; `Err`
    /// gives the builder back when its servers are listed.
    // The builder given back by value, once per pool: not worth a box.
    #[allow(clippy::result_large_err)]
    pub fn into_dns_srv(self) -> Result<SrvPoolBuilder, PoolBuilder> {
        if self.config().dns_srv.is_some() {
            Ok(SrvPoolBuilder { builder: self })
        } else {
            Err(self)
        }
    }
}

impl SrvPoolBuilder {
    /// Which records to ask for (default [`SrvService::Ldap`]).
    pub fn dns_srv_service(mut self, service: SrvService) -> Self {
        self.builder.config_mut().dns_srv_service = Some(service);
        self
    }

    /// Ask this name server (UDP, then TCP for long answers) instead of the
    /// system's (`/etc/resolv.conf`), e.g. `127.0.0.1:5353`.
    pub fn dns_server(mut self, addr: SocketAddr) -> Self {
        self.builder.config_mut().dns_server = Some(addr);
        self
    }

    /// The answer is looked up again when its TTL (the smallest of its
    /// records') runs out, but no sooner than `floor` and no later than
    /// `ceiling` (default 30 s and 1 h).
    pub fn dns_refresh(mut self, floor: Duration, ceiling: Duration) -> Self {
        let c = self.builder.config_mut();
        (c.dns_refresh_min, c.dns_refresh_max) = (floor, ceiling);
        self
    }

    /// After a listed server is marked down, the answer is looked up again
    /// at once, but never sooner than `floor` after the previous lookup; a
    /// failed lookup is retried after `floor`, doubling up to the refresh
    /// ceiling (default 5 s).
    pub fn dns_failure_refresh(mut self, floor: Duration) -> Self {
        self.builder.config_mut().dns_failure_refresh = floor;
        self
    }

    /// Bound on one lookup, retries included (default 5 s).
    pub fn dns_timeout(mut self, d: Duration) -> Self {
        self.builder.config_mut().dns_timeout = d;
        self
    }

    /// The configuration this builder holds, defaults included.
    pub fn config(&self) -> &PoolConfig {
        self.builder.config()
    }

    /// Looks the servers up, builds the pool with them as its preferred
    /// servers in RFC 2782 order, and starts the task that follows the
    /// answer. Fails with [`BuildError::Discovery`] if the first lookup
    /// fails or gives no usable server (nothing to start with), and like
    /// [`PoolBuilder::build`] for the rest; every setting is checked before
    /// the lookup ([`PoolConfig::check`]).
    pub async fn build(self) -> Result<Pool, BuildError> {
        let builder = self.builder;
        if builder.has_servers() {
            return Err(listed_by_hand());
        }
        builder.config().check()?;
        let cfg = SrvConfig::of(builder.config()).expect("an SrvPoolBuilder names a domain");
        let name = cfg.name()?;
        let runtime = match builder.runtime_handle() {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        let resolver = resolver(&cfg).map_err(BuildError::Discovery)?;
        let mut rng = fastrand::Rng::with_seed(builder.seed_or_default() ^ 0x5352_565f_4c44_4150);
        let answer = lookup(&resolver, &name, &cfg).await;
        let now = Instant::now();
        let answer = answer.map_err(BuildError::Discovery)?;
        let ordered = answer
            .order(&mut rng, cfg.service)
            .map_err(BuildError::Discovery)?;
        let pool = builder.clone().with_urls(&ordered.urls).build_static()?;
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
        let template = Arc::new(Mutex::new(builder));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_build_refuses_a_dns_configuration_and_servers_are_one_source() {
        let config = PoolConfig {
            dns_srv: Some("example.test".into()),
            ..PoolConfig::default()
        };
        let e = PoolBuilder::from_config(config.clone())
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("SrvPoolBuilder"), "{e}");
        assert!(PoolBuilder::from_config(config).into_dns_srv().is_ok());
        assert!(PoolBuilder::new().into_dns_srv().is_err());
        let e = PoolBuilder::new()
            .server("ldap://127.0.0.1:1")
            .dns_srv("example.test")
            .build()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("do not also list servers"), "{e}");
        // Every setting is judged before any lookup: a bad one fails at once.
        let e = PoolBuilder::new()
            .dns_srv("example.test")
            .dns_timeout(Duration::ZERO)
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("dns_timeout"), "{e}");
        let e = PoolBuilder::new()
            .dns_srv("bad..name")
            .build()
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("dns_srv"), "{e}");
    }
}
