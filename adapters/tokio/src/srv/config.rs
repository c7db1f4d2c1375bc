//! The discovery settings a builder carries, and their check.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::Name;

use super::SrvService;
use crate::BuildError;

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
    pub(super) fn new(domain: String) -> SrvConfig {
        SrvConfig {
            domain,
            service: SrvService::Ldap,
            name_server: None,
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(3600),
            failure_floor: Duration::from_secs(5),
            lookup_timeout: Duration::from_secs(5),
        }
    }

    /// The fully qualified SRV name, e.g. `_ldap._tcp.example.com.`.
    fn name(&self) -> Result<Name, BuildError> {
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

    /// Checks the settings; gives the name to look up.
    pub(super) fn check(&self) -> Result<Name, BuildError> {
        let bad = |field, reason: &str| {
            Err(BuildError::InvalidField {
                field,
                reason: reason.into(),
            })
        };
        if self.refresh_min.is_zero() || self.refresh_min > self.refresh_max {
            return bad(
                "dns_refresh",
                "the floor must be positive and not above the ceiling",
            );
        }
        if self.failure_floor.is_zero() {
            return bad("dns_failure_refresh", "must be positive");
        }
        if self.lookup_timeout.is_zero() {
            return bad("dns_timeout", "must be positive");
        }
        if self.name_server.is_some_and(|a| a.port() == 0) {
            return bad("dns_server", "port 0");
        }
        self.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srv::testing::cfg;

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let field = |c: SrvConfig| match c.check() {
            Err(BuildError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(SrvConfig::new(" ".into())), "dns_srv");
        assert_eq!(field(SrvConfig::new("bad..name".into())), "dns_srv");
        let mut c = cfg();
        c.refresh_min = Duration::from_secs(700);
        assert_eq!(field(c), "dns_refresh");
        let mut c = cfg();
        c.failure_floor = Duration::ZERO;
        assert_eq!(field(c), "dns_failure_refresh");
        let mut c = cfg();
        c.name_server = Some("127.0.0.1:0".parse().unwrap());
        assert_eq!(field(c), "dns_server");
        assert_eq!(
            cfg().check().unwrap().to_ascii(),
            "_ldap._tcp.example.test."
        );
    }
}
