//! The discovery settings a builder carries, and their check.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::Name;

use super::SrvService;
use crate::{BuildError, PoolConfig};

/// The discovery settings a builder carries ([`PoolBuilder::dns_srv`](crate::PoolBuilder::dns_srv)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvConfig {
    pub(super) domain: String,
    pub(super) service: SrvService,
    pub(super) name_server: Option<SocketAddr>,
    pub(super) refresh_min: Duration,
    pub(super) refresh_max: Duration,
    pub(super) failure_floor: Duration,
    pub(super) lookup_timeout: Duration,
}

impl SrvConfig {
    /// The defaults for `domain`.
    #[cfg(test)]
    pub(super) fn new(domain: String) -> SrvConfig {
        let c = PoolConfig {
            dns_srv: Some(domain),
            ..PoolConfig::default()
        };
        SrvConfig::of(&c).expect("a domain")
    }

    /// The discovery settings of `c`, if it names a `dns_srv` domain (its
    /// values judged by [`PoolConfig::check`]).
    pub(crate) fn of(c: &PoolConfig) -> Option<SrvConfig> {
        Some(SrvConfig {
            domain: c.dns_srv.clone()?,
            service: c.dns_srv_service.unwrap_or_default(),
            name_server: c.dns_server,
            refresh_min: c.dns_refresh_min,
            refresh_max: c.dns_refresh_max,
            failure_floor: c.dns_failure_refresh,
            lookup_timeout: c.dns_timeout,
        })
    }

    /// The fully qualified SRV name, e.g. `_ldap._tcp.example.com.`; a
    /// domain that is not a DNS name is an error naming `dns_srv`.
    pub(crate) fn name(&self) -> Result<Name, BuildError> {
        let domain = self.domain.trim().trim_end_matches('.');
        let bad = |reason: String| BuildError::InvalidField {
            field: "dns_srv",
            reason,
        };
        if domain.is_empty() {
            return Err(bad("empty domain".into()));
        }
        let text = format!("{}.{domain}.", self.service.label());
        let name = Name::from_ascii(&text).map_err(|e| bad(format!("{domain:?}: {e}")))?;
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srv::testing::cfg;

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        // The name: here; every other value: the one check of PoolConfig.
        let named = |c: SrvConfig| c.name().unwrap_err().field();
        assert_eq!(named(SrvConfig::new(" ".into())), Some("dns_srv"));
        assert_eq!(named(SrvConfig::new("bad..name".into())), Some("dns_srv"));
        let field = |edit: fn(&mut PoolConfig)| {
            let mut c = PoolConfig {
                dns_srv: Some("example.test".into()),
                ..PoolConfig::default()
            };
            edit(&mut c);
            c.check().unwrap_err().field()
        };
        assert_eq!(
            field(|c| c.dns_refresh_min = Duration::from_secs(7200)),
            Some("dns_refresh_max")
        );
        assert_eq!(
            field(|c| c.dns_refresh_min = Duration::ZERO),
            Some("dns_refresh_min")
        );
        assert_eq!(
            field(|c| c.dns_failure_refresh = Duration::ZERO),
            Some("dns_failure_refresh")
        );
        assert_eq!(
            field(|c| c.dns_server = Some("127.0.0.1:0".parse().unwrap())),
            Some("dns_server")
        );
        assert_eq!(cfg().name().unwrap().to_ascii(), "_ldap._tcp.example.test.");
    }
}
