//! [`PoolBuilder`]: every knob with a default a demanding user would pick,
//! checked as a whole by `build()`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldapmux_core::{Config, ServerConfig, Sharing};

use crate::credential::CredTable;
use crate::metrics::MetricsConfig;
use crate::tls::{self, TlsOptions};
use crate::url::{Scheme, ServerUrl};
use crate::{BuildError, Credential, Pool};

/// Builds a [`Pool`]. Servers are tried in the order given: preferred ones
/// first (in the order they were added), then the others.
///
/// | setting | default |
/// | --- | --- |
/// | credential | anonymous |
/// | connect timeout (TCP + TLS + bind) | 5 s |
/// | operation timeout (whole call, retries included) | 30 s |
/// | users per connection | 64 (slapd drops an anonymous connection with > 100 requests in flight) |
/// | connections per server | 16 |
/// | idle close: read / write connections | 300 s / 60 s |
/// | maximum connection age | none |
/// | fail-back hold-down | 30 s |
/// | probe backoff | 1 s doubling to 60 s, with jitter |
/// | TLS | system roots, verification on; StartTLS off |
/// | metrics | no `pool` label; credentials labelled `anonymous` / `cred-N`; gauges published every 1 s |
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder {
    servers: Vec<(UrlText, bool)>,
    credential: Credential,
    op_timeout: Duration,
    core: Config,
    tls: TlsOptions,
    starttls: bool,
    multiplex: bool,
    seed: Option<u64>,
    runtime: Option<tokio::runtime::Handle>,
    /// DNS SRV discovery ([`PoolBuilder::dns_srv`], in `srv.rs`).
    pub(crate) srv: Option<crate::srv::SrvConfig>,
    metrics: MetricsConfig,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        PoolBuilder {
            servers: Vec::new(),
            credential: Credential::Anonymous,
            op_timeout: Duration::from_secs(30),
            core: Config::default(),
            tls: TlsOptions::default(),
            starttls: false,
            multiplex: true,
            seed: None,
            runtime: None,
            srv: None,
            metrics: MetricsConfig::default(),
        }
    }
}

impl PoolBuilder {
    /// A builder with the defaults above and no server.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a server at the end of the preferred list: preferred servers are
    /// used first, in order, and connections fail back to them.
    pub fn preferred_server(mut self, url: impl Into<String>) -> Self {
        self.servers.push((UrlText(url.into()), true));
        self
    }
    /// Adds a server that is used when no preferred one is up.
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.servers.push((UrlText(url.into()), false));
        self
    }
    /// The credential pooled connections are bound with (default anonymous).
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }
    /// Bound on TCP connect + TLS + bind (default 5 s). Also the time a
    /// hung server gets to answer a liveness check.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.core.connect_timeout = d;
        self
    }
    /// Bound on a whole operation, waiting for a connection and retries
    /// included (default 30 s). Override per call with [`Pool::with_timeout`].
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.op_timeout = d;
        self
    }
    /// Idle read connections are closed after `d` (`None`: never). Default 300 s.
    pub fn read_idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.core.read_idle_timeout = d;
        self
    }
    /// Idle write connections are closed after `d`. Default 60 s.
    pub fn write_idle_timeout(mut self, d: Duration) -> Self {
        self.core.write_idle_timeout = d;
        self
    }
    /// Connections older than `d` take no new users and close when the last
    /// leaves (`None`: no limit, the default).
    pub fn max_connection_age(mut self, d: Option<Duration>) -> Self {
        self.core.max_conn_age = d;
        self
    }
    /// Users sharing one connection (default 64).
    pub fn max_users_per_connection(mut self, n: u32) -> Self {
        self.core.max_users_per_conn = n;
        self
    }
    /// Connections per server, all kinds together (default
    /// [`ldapmux_core::DEFAULT_MAX_CONNS_PER_SERVER`], 32); users beyond
    /// wait in FIFO order until their timeout.
    pub fn max_connections_per_server(mut self, n: u32) -> Self {
        self.core.max_conns_per_server = n;
        self
    }
    /// Spread before stack: a connection with `n` users is busy, and the
    /// next user gets another connection to the same server opened (it rides
    /// an open one meanwhile) until [`PoolBuilder::spread_connections_per_server`]
    /// connections of its kind are there. Default
    /// [`ldapmux_core::DEFAULT_SPREAD_USERS_PER_CONN`], chosen by the
    /// benchmark (`docs/results/benchmarks.md`).
    pub fn spread_users_per_connection(mut self, n: u32) -> Self {
        self.core.spread_users_per_conn = n;
        self
    }
    /// How many connections of one kind (credential, read or write) spreading
    /// opens per server before users stack up to
    /// [`PoolBuilder::max_users_per_connection`]; 1 turns spreading off.
    /// Default [`ldapmux_core::DEFAULT_SPREAD_CONNS_PER_SERVER`].
    pub fn spread_connections_per_server(mut self, n: u32) -> Self {
        self.core.spread_conns_per_server = n;
        self
    }
    /// Connect racing: a connection that has not opened after `d` while
    /// operations wait on it gets a rival opening to the next usable server,
    /// and whichever opens first serves them, so a silent preferred server
    /// costs `d`, not the connect timeout. `None` turns it off. Default
    /// [`ldapmux_core::DEFAULT_CONNECT_RACE_DELAY`].
    pub fn connect_race_delay(mut self, d: Option<Duration>) -> Self {
        self.core.connect_race_delay = d;
        self
    }
    /// How long a server that came back must stay up before connections fail
    /// back to it (default 30 s).
    pub fn failback_hold_down(mut self, d: Duration) -> Self {
        self.core.failback_hold_down = d;
        self
    }
    /// Delay before the first probe of a down server and the longest delay
    /// between probes (default 1 s and 60 s; doubling with jitter).
    pub fn probe_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.core.probe_backoff_min = min;
        self.core.probe_backoff_max = max;
        self
    }
    /// Only operations that ask for it share connections
    /// ([`Sharing::OnRequest`]); default: every read and write shares.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.core.sharing = sharing;
        self
    }
    /// `false` gives every operation its own connection (behaviour 14: for
    /// servers or proxies that cannot multiplex). Default `true`.
    pub fn multiplexing(mut self, on: bool) -> Self {
        self.multiplex = on;
        self
    }
    /// Upgrade `ldap://` connections with StartTLS; a server that refuses
    /// fails the connect, never falls back to plain text. Default off.
    pub fn starttls(mut self, on: bool) -> Self {
        self.starttls = on;
        self
    }
    /// Trust the certificates in this PEM file, in addition to the system roots.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }
    /// Trust the operating system's roots (default `true`).
    pub fn tls_system_roots(mut self, on: bool) -> Self {
        self.tls.system_roots = on;
        self
    }
    /// **Dangerous.** `false` accepts any server certificate and host name.
    /// Verification is on unless this is called with `false`.
    pub fn danger_tls_verify(mut self, verify: bool) -> Self {
        self.tls.verify = verify;
        self
    }
    /// Seed of the probe-backoff jitter (default: from the process id and
    /// time), for reproducible runs.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// The tokio runtime that runs the pool's connections and timers
    /// (default: the runtime `build()` is called in).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Adds a `pool` label with this value to every metric the pool records
    /// (see [`crate::metrics`]), so that two pools in one process are told
    /// apart. Default: no `pool` label.
    pub fn metrics_name(mut self, name: impl Into<String>) -> Self {
        self.metrics.name = Some(name.into().into());
        self
    }
    /// Labels the connections bound with the bind DN `dn` with
    /// `credential="label"` in metrics, instead of the opaque `cred-N`.
    /// DNs compare case-insensitively.
    pub fn metrics_credential_label(
        mut self,
        dn: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        self.metrics
            .cred_labels
            .push((dn.into(), label.into().into()));
        self
    }
    /// `true` labels connections with their bind DN in metrics (the
    /// `credential` label). Default `false`: bind DNs can name people and
    /// accounts, so they are labels only when asked for. Never a password.
    pub fn metrics_bind_dn_labels(mut self, on: bool) -> Self {
        self.metrics.bind_dn_labels = on;
        self
    }
    /// How often a task of the pool publishes its gauges (connections,
    /// waiters, server health) and the core's counters; `None`: only on
    /// [`Pool::publish_metrics`], reload and shutdown. Default 1 s.
    pub fn metrics_interval(mut self, every: Option<Duration>) -> Self {
        self.metrics.interval = every;
        self
    }

    /// The probe backoff bounds currently set (for configuration files that
    /// give only one of them).
    pub(crate) fn probe_backoff_bounds(&self) -> (Duration, Duration) {
        (self.core.probe_backoff_min, self.core.probe_backoff_max)
    }

    /// What this builder holds, defaults included, for tools that show an
    /// operator what a pool will run with (`ldapmux check --config`). Never
    /// a password: the credential appears as its bind DN.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            servers: self
                .servers
                .iter()
                .map(|(u, preferred)| (crate::url::redacted(&u.0), *preferred))
                .collect(),
            bind_dn: match &self.credential {
                Credential::Simple { dn, .. } => Some(dn.clone()),
                Credential::Anonymous => None,
            },
            core: self.core.clone(),
            op_timeout: self.op_timeout,
            tls: self.tls.clone(),
            starttls: self.starttls,
            multiplex: self.multiplex,
        }
    }

    /// Checks everything and starts the pool. No connection is opened until
    /// the first operation needs one.
    pub fn build(self) -> Result<Pool, BuildError> {
        if self.srv.is_some() {
            return Err(BuildError::InvalidField {
                field: "dns_srv",
                reason: "the servers come from a DNS lookup: use build_discovered().await".into(),
            });
        }
        self.build_static()
    }

    /// `build()` without the DNS SRV check (the servers are listed).
    pub(crate) fn build_static(self) -> Result<Pool, BuildError> {
        let runtime = match self.runtime.clone() {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        let seed = self.seed.unwrap_or_else(default_seed);
        let settings = self.settings()?;
        Ok(Pool::start(settings, runtime, seed))
    }

    /// Whether servers were listed by hand.
    pub(crate) fn has_servers(&self) -> bool {
        !self.servers.is_empty()
    }

    /// The runtime given with [`PoolBuilder::runtime`], if any.
    pub(crate) fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.clone()
    }

    /// The jitter seed, or one from the process id and time.
    pub(crate) fn seed_or_default(&self) -> u64 {
        self.seed.unwrap_or_else(default_seed)
    }

    /// Validates into the settings one generation runs with.
    pub(crate) fn settings(&self) -> Result<Arc<Settings>, BuildError> {
        let mut core = self.core.clone();
        core.servers.clear();
        let mut urls = Vec::with_capacity(self.servers.len());
        let mut next_preference = 0u16;
        for (text, preferred) in &self.servers {
            let url = ServerUrl::parse(&text.0)?;
            let preference = preferred.then(|| {
                next_preference = next_preference.saturating_add(1);
                next_preference - 1
            });
            core.servers.push(ServerConfig {
                addr: url.as_str().to_owned(),
                preference,
            });
            urls.push(url);
        }
        core.validate()?;
        if self.metrics.interval == Some(Duration::ZERO) {
            return Err(BuildError::InvalidField {
                field: "metrics_interval",
                reason: "must be positive (None: publish only on demand)".into(),
            });
        }
        if self.op_timeout.is_zero() {
            return Err(BuildError::InvalidField {
                field: "operation_timeout",
                reason: "must be positive".into(),
            });
        }
        if let Credential::Simple { dn, password } = &self.credential {
            if dn.trim().is_empty() {
                return Err(BuildError::InvalidField {
                    field: "credential",
                    reason: "empty bind DN (use Credential::Anonymous)".into(),
                });
            }
            if password.is_empty() {
                return Err(BuildError::InvalidField {
                    field: "credential",
                    reason: format!(
                        "empty password for {dn}: an empty simple bind is unauthenticated"
                    ),
                });
            }
        }
        let uses_tls = self.starttls || urls.iter().any(|u| u.scheme() == Scheme::Ldaps);
        if uses_tls && self.tls.verify && !self.tls.system_roots && self.tls.ca_file.is_none() {
            return Err(BuildError::Tls(
                "TLS is used but no certificate is trusted: enable system roots or give a CA file"
                    .into(),
            ));
        }
        let tls = tls::client_config(&self.tls)?;
        Ok(Arc::new(Settings {
            core,
            urls,
            credential: self.credential.clone(),
            op_timeout: self.op_timeout,
            tls,
            tls_options: self.tls.clone(),
            starttls: self.starttls,
            multiplex: self.multiplex,
            metrics: self.metrics.clone(),
        }))
    }
}

/// A server URL as given, which may carry a password (refused by `build()`):
/// its `Debug` hides one.
#[derive(Clone)]
struct UrlText(String);

impl std::fmt::Debug for UrlText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&crate::url::redacted(&self.0), f)
    }
}

/// What a [`PoolBuilder`] holds, from [`PoolBuilder::pool_settings`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolSettings {
    /// The servers as given (any password in a URL redacted), each with
    /// whether it is preferred, in the order they were added.
    pub servers: Vec<(String, bool)>,
    /// The bind DN of the pool's credential, `None` for anonymous.
    pub bind_dn: Option<String>,
    /// The core's settings: caps, timeouts, hold-down, backoff, idle
    /// timeouts (its `servers` is empty: see `servers` above).
    pub core: Config,
    /// The operation timeout (retries included).
    pub op_timeout: Duration,
    /// How certificates are checked.
    pub tls: TlsOptions,
    /// StartTLS on `ldap://` URLs.
    pub starttls: bool,
    /// Several operations per connection.
    pub multiplex: bool,
}

fn default_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// What one generation runs with: the core's configuration plus what only
/// the adapter knows (URLs, secrets, TLS).
pub(crate) struct Settings {
    pub(crate) core: Config,
    pub(crate) urls: Vec<ServerUrl>,
    pub(crate) credential: Credential,
    pub(crate) op_timeout: Duration,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// What `tls` was built from, to tell whether two generations connect alike.
    pub(crate) tls_options: TlsOptions,
    pub(crate) starttls: bool,
    pub(crate) multiplex: bool,
    pub(crate) metrics: MetricsConfig,
}

impl Settings {
    /// Whether a connection opened under `self` is one `other` would open
    /// too: same credential, TLS options, StartTLS and multiplexing (the
    /// servers and the core's settings aside). A CA file is compared by
    /// path, not content: a CA rotated in place needs a plain reload.
    pub(crate) fn connects_like(&self, other: &Settings, creds: &CredTable) -> bool {
        creds.key(&self.credential) == creds.key(&other.credential)
            && self.tls_options == other.tls_options
            && self.starttls == other.starttls
            && self.multiplex == other.multiplex
    }

    /// The parsed URL of a server address, if configured.
    pub(crate) fn url(&self, addr: &str) -> Option<&ServerUrl> {
        self.urls
            .iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_errors_name_the_field_or_url() {
        let err = PoolBuilder::new().settings().err().unwrap();
        assert!(matches!(
            err,
            BuildError::Core(ldapmux_core::ConfigError::NoServers)
        ));

        let err = PoolBuilder::new()
            .server("ldap://ok:389")
            .server("ftp://x")
            .settings()
            .err()
            .unwrap();
        assert!(err.to_string().contains("ftp://x"), "{err}");

        let err = PoolBuilder::new()
            .server("ldap://a")
            .max_users_per_connection(0)
            .settings()
            .err()
            .unwrap();
        assert!(err.to_string().contains("max_users_per_conn"), "{err}");

        let err = PoolBuilder::new()
            .server("ldap://a")
            .operation_timeout(Duration::ZERO)
            .settings()
            .err()
            .unwrap();
        assert!(err.to_string().contains("operation_timeout"), "{err}");

        let err = PoolBuilder::new()
            .server("ldap://a")
            .credential(Credential::simple("cn=admin", ""))
            .settings()
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty password"), "{err}");

        let err = PoolBuilder::new()
            .server("ldaps://a")
            .tls_system_roots(false)
            .settings()
            .err()
            .unwrap();
        assert!(matches!(err, BuildError::Tls(_)), "{err}");

        let err = PoolBuilder::new()
            .server("ldap://a")
            .metrics_interval(Some(Duration::ZERO))
            .settings()
            .err()
            .unwrap();
        assert!(err.to_string().contains("metrics_interval"), "{err}");

        let err = PoolBuilder::new()
            .server("ldap://a")
            .server("LDAP://A")
            .settings()
            .err()
            .unwrap();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn preferred_servers_keep_their_order() {
        let s = PoolBuilder::new()
            .server("ldap://c")
            .preferred_server("ldap://a")
            .preferred_server("ldap://b")
            .settings()
            .unwrap();
        let prefs: Vec<_> = s
            .core
            .servers
            .iter()
            .map(|s| (s.addr.as_str(), s.preference))
            .collect();
        assert_eq!(
            prefs,
            [
                ("ldap://c", None),
                ("ldap://a", Some(0)),
                ("ldap://b", Some(1))
            ]
        );
    }

    #[test]
    fn a_password_never_shows_in_the_builder_debug() {
        let b = PoolBuilder::new().credential(Credential::simple("cn=admin", "top-secret-pw"));
        assert!(!format!("{b:?}").contains("top-secret"));
    }
}
