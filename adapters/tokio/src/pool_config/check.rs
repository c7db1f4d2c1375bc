//! [`PoolConfig::check`]: the one place that judges a configuration's
//! values. The builder, the configuration files (which map its errors back
//! to the file, line and key) and reload all go through it.

use ldapmux_core::{Config, ConfigError, ServerConfig};

use super::PoolConfig;
use crate::url::{Scheme, ServerUrl};
use crate::{BuildError, SaslMech};

/// A configuration that passed [`PoolConfig::checked`]: the core's
/// settings with the servers, and their parsed URLs in the same order.
pub(crate) struct Checked {
    pub(crate) core: Config,
    pub(crate) urls: Vec<ServerUrl>,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> BuildError {
    BuildError::InvalidField {
        field,
        reason: reason.into(),
    }
}

impl PoolConfig {
    /// Checks every value without requiring servers (a configuration may
    /// get them from DNS, or from a later file): each URL parses, no server
    /// is listed twice, limits and durations are in range, DNS SRV keys come
    /// with `dns_srv` and exclude listed servers, a bind DN is not empty,
    /// and TLS has something to trust. The error names the field (the TOML
    /// key) or the URL.
    pub fn check(&self) -> Result<(), BuildError> {
        self.parsed_servers()?;
        self.check_dns()?;
        let core = self.core_settings();
        core.validate_settings()?;
        match self.page_size {
            Some(0) => {
                return Err(invalid(
                    "page_size",
                    "a page of 0 entries asks for none (\"off\": unpaged searches)",
                ));
            }
            Some(n) if i32::try_from(n).is_err() => {
                return Err(invalid(
                    "page_size",
                    format!("{n} is more than an LDAP size can say ({})", i32::MAX),
                ));
            }
            _ => {}
        }
        if self.op_timeout.is_zero() {
            return Err(invalid("op_timeout", "must be positive"));
        }
        if self.metrics_interval.is_some_and(|d| d.is_zero()) {
            return Err(invalid(
                "metrics_interval",
                "must be positive (\"off\": publish only on demand)",
            ));
        }
        if self.bind_dn.as_ref().is_some_and(|dn| dn.trim().is_empty()) {
            return Err(invalid(
                "bind_dn",
                "empty bind DN (leave it out for anonymous)",
            ));
        }
        self.check_sasl()?;
        let uses_tls = self.starttls
            || self.dns_srv_service == Some(crate::SrvService::Ldaps)
            || self
                .servers()
                .iter()
                .any(|(u, _)| ServerUrl::parse(u).is_ok_and(|u| u.scheme() == Scheme::Ldaps));
        if uses_tls && self.tls_verify && !self.tls_system_roots && self.tls_ca_file.is_none() {
            return Err(BuildError::Tls(
                "TLS is used but no certificate is trusted: enable system roots or give a CA file"
                    .into(),
            ));
        }
        Ok(())
    }

    /// [`check`](Self::check), then the servers a generation runs with
    /// (at least one), as the core's configuration.
    pub(crate) fn checked(&self) -> Result<Checked, BuildError> {
        self.check()?;
        let mut core = self.core_settings();
        let urls: Vec<ServerUrl> = self
            .parsed_servers()?
            .into_iter()
            .map(|(url, _)| url)
            .collect();
        let mut next_preference = 0u16;
        for (url, (_, preferred)) in urls.iter().zip(self.servers()) {
            let preference = preferred.then(|| {
                next_preference = next_preference.saturating_add(1);
                next_preference - 1
            });
            core.servers.push(ServerConfig {
                addr: url.as_str().to_owned(),
                preference,
            });
        }
        core.validate()?;
        Ok(Checked { core, urls })
    }

    /// The servers parsed, in the pool's order; a bad URL or one listed
    /// twice (within `uri` or within `preferred`) is an error naming it.
    fn parsed_servers(&self) -> Result<Vec<(ServerUrl, bool)>, BuildError> {
        for list in [&self.uri, &self.preferred] {
            let mut seen = std::collections::HashSet::new();
            for text in list.iter() {
                let url = ServerUrl::parse(text)?;
                if !seen.insert(url.as_str().to_ascii_lowercase()) {
                    return Err(BuildError::Core(ConfigError::DuplicateServer {
                        addr: url.as_str().to_owned(),
                    }));
                }
            }
        }
        self.servers()
            .into_iter()
            .map(|(u, preferred)| Ok((ServerUrl::parse(u)?, preferred)))
            .collect()
    }

    /// The SASL keys go together: a mechanism excludes a bind DN and
    /// password; a client certificate comes with its key, and only for
    /// EXTERNAL (whether the servers fit is judged with the credential, by
    /// the builder).
    fn check_sasl(&self) -> Result<(), BuildError> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "tls_cert_file",
                    "a client certificate needs its private key (tls_key_file)",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_key_file",
                    "a private key without its certificate (tls_cert_file)",
                ));
            }
            _ => {}
        }
        if self.gssapi_principal.is_some() && self.sasl_mech != Some(SaslMech::Gssapi) {
            return Err(invalid(
                "gssapi_principal",
                "a principal is only used with sasl_mech = \"GSSAPI\"",
            ));
        }
        let Some(mech) = self.sasl_mech else {
            if self.tls_cert_file.is_some() {
                return Err(invalid(
                    "tls_cert_file",
                    "a client certificate is only presented for sasl_mech = \"EXTERNAL\"",
                ));
            }
            return Ok(());
        };
        if self.bind_dn.is_some() {
            return Err(invalid(
                "bind_dn",
                format!("a SASL {mech} bind takes no bind DN: the server maps the identity"),
            ));
        }
        if self.bind_password_file.is_some() {
            return Err(invalid(
                "bind_password_file",
                format!("a SASL {mech} bind takes no password"),
            ));
        }
        if mech != SaslMech::External && self.tls_cert_file.is_some() {
            return Err(invalid(
                "tls_cert_file",
                format!("a client certificate is only presented for EXTERNAL, not {mech}"),
            ));
        }
        if mech == SaslMech::Gssapi && !cfg!(feature = "gssapi") {
            return Err(invalid(
                "sasl_mech",
                "GSSAPI needs the `gssapi` feature of ldapmux",
            ));
        }
        Ok(())
    }

    fn check_dns(&self) -> Result<(), BuildError> {
        let Some(domain) = &self.dns_srv else {
            if self.dns_srv_service.is_some() {
                return Err(invalid(
                    "dns_srv_service",
                    "only used with dns_srv, which is not set",
                ));
            }
            if self.dns_server.is_some() {
                return Err(invalid(
                    "dns_server",
                    "only used with dns_srv, which is not set",
                ));
            }
            return Ok(());
        };
        if domain.trim().trim_end_matches('.').is_empty() {
            return Err(invalid("dns_srv", "empty domain"));
        }
        if !self.uri.is_empty() || !self.preferred.is_empty() {
            return Err(invalid(
                "dns_srv",
                "the servers come from DNS: do not also list uri or preferred",
            ));
        }
        if self.dns_server.is_some_and(|a| a.port() == 0) {
            return Err(invalid("dns_server", "port 0"));
        }
        if self.dns_refresh_min.is_zero() {
            return Err(invalid("dns_refresh_min", "must be positive"));
        }
        if self.dns_refresh_min > self.dns_refresh_max {
            return Err(invalid("dns_refresh_max", "below dns_refresh_min"));
        }
        if self.dns_failure_refresh.is_zero() {
            return Err(invalid("dns_failure_refresh", "must be positive"));
        }
        if self.dns_timeout.is_zero() {
            return Err(invalid("dns_timeout", "must be positive"));
        }
        Ok(())
    }
}

/// Whether two server URLs name the same server.
pub(super) fn same_url(a: &str, b: &str) -> bool {
    match (ServerUrl::parse(a), ServerUrl::parse(b)) {
        (Ok(a), Ok(b)) => a.as_str().eq_ignore_ascii_case(b.as_str()),
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

impl BuildError {
    /// The configuration key (a [`PoolConfig`] field) this error is about,
    /// if one: what a configuration file maps back to its line.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            BuildError::InvalidField { field, .. } => Some(field),
            BuildError::InvalidUrl { .. } | BuildError::UnsupportedScheme { .. } => Some("uri"),
            BuildError::CaFile { .. } => Some("tls_ca_file"),
            BuildError::ClientCert { field, .. } => Some(field),
            BuildError::Gssapi(_) => Some("sasl_mech"),
            BuildError::Tls(_) => Some("tls_system_roots"),
            BuildError::Core(e) => match e {
                ConfigError::ZeroLimit { field } | ConfigError::ZeroDuration { field } => {
                    Some(field)
                }
                ConfigError::BackoffRange => Some("probe_backoff_max"),
                ConfigError::DuplicateServer { .. }
                | ConfigError::EmptyServerAddress { .. }
                | ConfigError::TooManyServers => Some("uri"),
                _ => None,
            },
            _ => None,
        }
    }
}
