//! [`PoolConfig`]: every setting of a pool in one serde type. The TOML file
//! is this type as written, `ldap.conf` keys map onto its fields
//! ([`ConfigFile`](crate::ConfigFile)), [`PoolBuilder`](crate::PoolBuilder)'s
//! setters write its fields, and [`PoolConfig::check`] is the one place that
//! judges a value.

mod check;
mod serde_forms;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ldapmux_core::{Config, Sharing};
use serde::{Deserialize, Serialize};

use crate::{SaslMech, SrvService};

/// Every setting of a pool, with the defaults a demanding user would pick.
///
/// Durations are written the human way (`"5s"`, `"250ms"`, `"1m 30s"`);
/// settings that can be turned off also take `"off"` (or `"never"`).
/// Unknown keys are refused. The defaults of the core's settings come from
/// [`ldapmux_core::Config::default`], so there is one source for each.
///
/// | key | default | meaning |
/// | --- | --- | --- |
/// | `uri` | none | the servers, in order (`ldap://`, `ldaps://`, `ldapi://` URLs) |
/// | `preferred` | none | preferred servers, in order; used first, and connections fail back to them. A URL in both lists is listed once, as preferred |
/// | `base` | none | the search base, for the application (not used by the pool) |
/// | `bind_dn` | none (anonymous) | the bind DN; its password comes from `bind_password_file` or [`PoolBuilder::credential`](crate::PoolBuilder::credential) |
/// | `bind_password_file` | none | a file holding the bind password (its content minus one trailing newline) |
/// | `sasl_mech` | none (simple or anonymous) | `"EXTERNAL"` or `"GSSAPI"`: bind with SASL instead (no `bind_dn`; docs/security.md) |
/// | `tls_cert_file`, `tls_key_file` | none | with `sasl_mech = "EXTERNAL"`: the PEM client certificate chain and its private key, presented over TLS; without them EXTERNAL binds with the Unix peer credentials of `ldapi://` |
/// | `gssapi_principal` | none (the default one) | with `sasl_mech = "GSSAPI"`: the client principal, out of the keytab or cache the process environment names (`KRB5_CLIENT_KTNAME`, `KRB5CCNAME`) |
/// | `tls_ca_file` | none | a PEM file of CA certificates to trust |
/// | `tls_system_roots` | `true` | trust the operating system's roots |
/// | `tls_verify` | `true` | verify certificates and host names (**`false` is dangerous**) |
/// | `starttls` | `false` | upgrade `ldap://` with StartTLS, never falling back to plain text |
/// | `multiplexing` | `true` | several operations per connection (`false`: one each, behaviour 14) |
/// | `sharing` | `"always"` | `"on_request"`: only operations that ask share connections |
/// | `connect_timeout` | `"5s"` | TCP connect + TLS + bind; also a liveness check's bound |
/// | `op_timeout` | `"30s"` | a whole operation, waiting and retries included |
/// | `read_idle_timeout` | `"5m"` | idle read connections close (`"off"`: never) |
/// | `write_idle_timeout` | `"1m"` | idle write connections close |
/// | `max_conn_age` | `"off"` | connections this old take no new users |
/// | `max_users_per_conn` | 64 | users sharing one connection |
/// | `max_conns_per_server` | 32 | connections per server, all kinds |
/// | `spread_users_per_conn` | 2 | a connection with this many users is busy: another opens |
/// | `spread_conns_per_server` | 16 | connections spreading opens per kind and server (1: off) |
/// | `bind_conns_per_server` | 4 | password checks' bind connections per server, each re-bound by one check at a time (0: a fresh connection per check) |
/// | `connect_race_delay` | `"200ms"` | a connect not open by then gets a rival on the next server (`"off"`) |
/// | `failback_hold_down` | `"30s"` | a server that came back must stay up this long before fail-back |
/// | `probe_backoff_min`, `probe_backoff_max` | `"1s"`, `"1m"` | probes of a down server, doubling with jitter |
/// | `jitter_seed` | from time and pid | seed of the probe and DNS jitter, for reproducible runs |
/// | `dns_srv` | none | the servers from the SRV records of this domain (excludes `uri`, `preferred`) |
/// | `dns_srv_service` | `"ldap"` | `"ldap"` or `"ldaps"` records (only with `dns_srv`) |
/// | `dns_server` | the system's | the name server to ask, `"ip:port"` (only with `dns_srv`) |
/// | `dns_refresh_min`, `dns_refresh_max` | `"30s"`, `"1h"` | the answer's TTL, clamped to these, says when to look up again |
/// | `dns_failure_refresh` | `"5s"` | soonest lookup after a server is marked down; first retry of a failed lookup |
/// | `dns_timeout` | `"5s"` | bound on one lookup |
/// | `page_size` | 500 | entries per page of a search, with the simple paged results control where the server's root DSE lists it (`"off"`: unpaged searches) |
/// | `metrics_name` | none | a `pool` label on every metric |
/// | `metrics_bind_dn_labels` | `false` | label connections with their bind DN |
/// | `metrics_credential_labels` | none | a table of bind DN → label |
/// | `metrics_interval` | `"1s"` | how often gauges are published (`"off"`: on demand) |
///
/// ```
/// let config: ldapmux::PoolConfig = toml::from_str(
///     r#"
///     preferred = ["ldap://ldap1.example.com"]
///     uri = ["ldap://ldap2.example.com"]
///     op_timeout = "10s"
///     read_idle_timeout = "off"
///     "#,
/// )?;
/// assert_eq!(config.op_timeout, std::time::Duration::from_secs(10));
/// assert_eq!(config.read_idle_timeout, None);
/// let builder = ldapmux::PoolBuilder::from_config(config);
/// # let _ = builder;
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The servers, in order.
    pub uri: Vec<String>,
    /// The preferred servers, in order.
    pub preferred: Vec<String>,
    /// The search base, for the application (the pool does not use it).
    pub base: Option<String>,
    /// The bind DN (`None`: anonymous).
    pub bind_dn: Option<String>,
    /// A file holding the bind password.
    pub bind_password_file: Option<PathBuf>,
    /// Bind with this SASL mechanism (`None`: simple bind or anonymous).
    pub sasl_mech: Option<SaslMech>,
    /// The client certificate chain (PEM) for SASL EXTERNAL over TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// The Kerberos client principal of SASL GSSAPI (`None`: the default).
    pub gssapi_principal: Option<String>,
    /// A PEM file of CA certificates to trust.
    pub tls_ca_file: Option<PathBuf>,
    /// Trust the operating system's roots.
    pub tls_system_roots: bool,
    /// Verify certificates and host names. `false` lets a man in the middle
    /// read every password.
    pub tls_verify: bool,
    /// StartTLS on `ldap://` URLs.
    pub starttls: bool,
    /// Several operations per connection.
    pub multiplexing: bool,
    /// Whether every operation shares connections or only those that ask.
    #[serde(with = "serde_forms::sharing")]
    pub sharing: Sharing,
    /// TCP connect + TLS + bind.
    #[serde(with = "serde_forms::duration")]
    pub connect_timeout: Duration,
    /// A whole operation, retries included.
    #[serde(with = "serde_forms::duration")]
    pub op_timeout: Duration,
    /// Idle read connections close after this (`None`: never).
    #[serde(with = "serde_forms::duration_or_off")]
    pub read_idle_timeout: Option<Duration>,
    /// Idle write connections close after this.
    #[serde(with = "serde_forms::duration")]
    pub write_idle_timeout: Duration,
    /// Connections this old take no new users (`None`: no limit).
    #[serde(with = "serde_forms::duration_or_off")]
    pub max_conn_age: Option<Duration>,
    /// Users sharing one connection.
    pub max_users_per_conn: u32,
    /// Connections per server, all kinds together.
    pub max_conns_per_server: u32,
    /// Users on a connection before another one is opened (spread).
    pub spread_users_per_conn: u32,
    /// Connections spreading opens per kind and server.
    pub spread_conns_per_server: u32,
    /// Bind connections per server, for password checks (0: a fresh
    /// connection per check).
    pub bind_conns_per_server: u32,
    /// Connect racing's delay (`None`: off).
    #[serde(with = "serde_forms::duration_or_off")]
    pub connect_race_delay: Option<Duration>,
    /// Fail-back hold-down.
    #[serde(with = "serde_forms::duration")]
    pub failback_hold_down: Duration,
    /// First probe of a down server.
    #[serde(with = "serde_forms::duration")]
    pub probe_backoff_min: Duration,
    /// Longest delay between probes.
    #[serde(with = "serde_forms::duration")]
    pub probe_backoff_max: Duration,
    /// Seed of the jitter (`None`: from the time and process id).
    pub jitter_seed: Option<u64>,
    /// The domain whose SRV records name the servers.
    pub dns_srv: Option<String>,
    /// Which SRV records (only with `dns_srv`; `None`: `ldap`).
    #[serde(with = "serde_forms::srv_service")]
    pub dns_srv_service: Option<SrvService>,
    /// The name server to ask (only with `dns_srv`; `None`: the system's).
    pub dns_server: Option<SocketAddr>,
    /// The answer is looked up again when its TTL runs out, but no sooner
    /// than this (only with `dns_srv`).
    #[serde(with = "serde_forms::duration")]
    pub dns_refresh_min: Duration,
    /// … and no later than this.
    #[serde(with = "serde_forms::duration")]
    pub dns_refresh_max: Duration,
    /// After a listed server is marked down the answer is looked up again,
    /// never sooner than this after the previous lookup; a failed lookup is
    /// retried after it, doubling up to `dns_refresh_max`.
    #[serde(with = "serde_forms::duration")]
    pub dns_failure_refresh: Duration,
    /// Bound on one lookup, retries included.
    #[serde(with = "serde_forms::duration")]
    pub dns_timeout: Duration,
    /// Entries per page of a search, where the server pages (`None`: unpaged).
    #[serde(with = "serde_forms::count_or_off")]
    pub page_size: Option<u32>,
    /// A `pool` label on every metric.
    pub metrics_name: Option<String>,
    /// Label connections with their bind DN.
    pub metrics_bind_dn_labels: bool,
    /// Labels for connections by bind DN (compared case-insensitively).
    pub metrics_credential_labels: BTreeMap<String, String>,
    /// How often gauges are published (`None`: only on demand).
    #[serde(with = "serde_forms::duration_or_off")]
    pub metrics_interval: Option<Duration>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let core = Config::default();
        PoolConfig {
            uri: Vec::new(),
            preferred: Vec::new(),
            base: None,
            bind_dn: None,
            bind_password_file: None,
            sasl_mech: None,
            tls_cert_file: None,
            tls_key_file: None,
            gssapi_principal: None,
            tls_ca_file: None,
            tls_system_roots: true,
            tls_verify: true,
            starttls: false,
            multiplexing: true,
            sharing: core.sharing,
            connect_timeout: core.connect_timeout,
            op_timeout: DEFAULT_OP_TIMEOUT,
            read_idle_timeout: core.read_idle_timeout,
            write_idle_timeout: core.write_idle_timeout,
            max_conn_age: core.max_conn_age,
            max_users_per_conn: core.max_users_per_conn,
            max_conns_per_server: core.max_conns_per_server,
            spread_users_per_conn: core.spread_users_per_conn,
            spread_conns_per_server: core.spread_conns_per_server,
            bind_conns_per_server: core.bind_conns_per_server,
            connect_race_delay: core.connect_race_delay,
            failback_hold_down: core.failback_hold_down,
            probe_backoff_min: core.probe_backoff_min,
            probe_backoff_max: core.probe_backoff_max,
            jitter_seed: None,
            dns_srv: None,
            dns_srv_service: None,
            dns_server: None,
            dns_refresh_min: Duration::from_secs(30),
            dns_refresh_max: Duration::from_secs(3600),
            dns_failure_refresh: Duration::from_secs(5),
            dns_timeout: Duration::from_secs(5),
            page_size: Some(DEFAULT_PAGE_SIZE),
            metrics_name: None,
            metrics_bind_dn_labels: false,
            metrics_credential_labels: BTreeMap::new(),
            metrics_interval: Some(Duration::from_secs(1)),
        }
    }
}

/// Every key with its value, as TOML writes it; a password in a server URL
/// (which [`PoolConfig::check`] refuses) is not shown.
impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Shown(String);
        impl std::fmt::Debug for Shown {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        let mut table = self.to_table();
        for key in ["uri", "preferred"] {
            if let Some(toml::Value::Array(urls)) = table.get_mut(key) {
                for u in urls.iter_mut() {
                    if let toml::Value::String(text) = u {
                        *text = crate::url::redacted(text);
                    }
                }
            }
        }
        f.write_str("PoolConfig ")?;
        f.debug_map()
            .entries(
                table
                    .iter()
                    .map(|(k, v)| (Shown(k.clone()), Shown(v.to_string()))),
            )
            .finish()
    }
}

/// The operation timeout when none is given.
pub(crate) const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(30);

/// Entries per page when none is given: OpenLDAP's default size limit
/// (500), so a page passes a server that caps unpaged searches there, and
/// half Active Directory's MaxPageSize (1 000). docs/operations.md says why.
pub(crate) const DEFAULT_PAGE_SIZE: u32 = 500;

impl PoolConfig {
    /// The servers in the order the pool tries them, each with whether it
    /// is preferred: the `preferred` list, then the `uri` entries not in it.
    pub fn servers(&self) -> Vec<(&str, bool)> {
        let mut out: Vec<(&str, bool)> =
            self.preferred.iter().map(|u| (u.as_str(), true)).collect();
        for u in &self.uri {
            if !self.preferred.iter().any(|p| check::same_url(p, u)) {
                out.push((u.as_str(), false));
            }
        }
        out
    }

    /// The core's part of this configuration (servers not included).
    pub(crate) fn core_settings(&self) -> Config {
        let mut c = Config::default();
        c.max_users_per_conn = self.max_users_per_conn;
        c.max_conns_per_server = self.max_conns_per_server;
        c.spread_users_per_conn = self.spread_users_per_conn;
        c.spread_conns_per_server = self.spread_conns_per_server;
        c.bind_conns_per_server = self.bind_conns_per_server;
        c.sharing = self.sharing;
        c.connect_timeout = self.connect_timeout;
        c.connect_race_delay = self.connect_race_delay;
        c.write_idle_timeout = self.write_idle_timeout;
        c.read_idle_timeout = self.read_idle_timeout;
        c.max_conn_age = self.max_conn_age;
        c.failback_hold_down = self.failback_hold_down;
        c.probe_backoff_min = self.probe_backoff_min;
        c.probe_backoff_max = self.probe_backoff_max;
        c
    }

    /// This configuration as a TOML table (every key, defaults included).
    pub(crate) fn to_table(&self) -> toml::Table {
        toml::Table::try_from(self).expect("a PoolConfig always serializes")
    }
}

#[cfg(test)]
mod tests;
