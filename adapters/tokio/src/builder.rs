//! [`PoolBuilder`]: every knob with a default a demanding user would pick,
//! checked as a whole by `build()`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ldapmux_core::{Config, Sharing};

use crate::credential::CredTable;
use crate::metrics::MetricsConfig;
use crate::tls::{self, TlsOptions};
use crate::url::ServerUrl;
use crate::{BuildError, ClientCert, Credential, Password, Pool, PoolConfig, SaslMech};

/// Builds a [`Pool`]. Servers are tried in the order given: preferred ones
/// first (in the order they were added), then the others.
///
/// Every setter writes one field of the [`PoolConfig`] the builder holds
/// ([`PoolBuilder::config`]); [`PoolBuilder::from_config`] starts from one
/// (a TOML file is that type as written). The defaults and each key are in
/// [`PoolConfig`]'s table; the credential is anonymous unless given.
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until build() is called"]
pub struct PoolBuilder {
    config: PoolConfig,
    /// The password of `config.bind_dn`, when given with
    /// [`PoolBuilder::credential`] or read from a configuration file.
    password: Option<Password>,
    /// A SASL credential given with [`PoolBuilder::credential`] (its client
    /// certificate may not come from a file `config` could name).
    sasl: Option<Credential>,
    runtime: Option<tokio::runtime::Handle>,
}

impl PoolBuilder {
    /// A builder with the defaults above and no server.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a server at the end of the preferred list: preferred servers are
    /// used first, in order, and connections fail back to them.
    pub fn preferred_server(mut self, url: impl Into<String>) -> Self {
        self.config.preferred.push(url.into());
        self
    }
    /// Adds a server that is used when no preferred one is up.
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.config.uri.push(url.into());
        self
    }
    /// The credential pooled connections are bound with (default anonymous).
    ///
    /// A SASL credential replaces the configuration's `sasl_mech`,
    /// `tls_cert_file` and `tls_key_file` (`config()` shows the mechanism
    /// and the certificate file). `build()` checks that the servers fit it:
    /// [`Credential::sasl_external_tls`] needs `ldaps://` (or StartTLS),
    /// [`Credential::sasl_external_peer`] needs `ldapi://`.
    pub fn credential(mut self, credential: Credential) -> Self {
        self.config.bind_dn = None;
        self.password = None;
        self.sasl = None;
        self.config.sasl_mech = credential.sasl_mech();
        (self.config.tls_cert_file, self.config.tls_key_file) = (None, None);
        self.config.gssapi_principal = None;
        match credential {
            Credential::Simple { dn, password } => {
                self.config.bind_dn = Some(dn);
                self.password = Some(password);
            }
            Credential::Anonymous => {}
            sasl => {
                if let Some(cert) = sasl.client_cert() {
                    self.config.tls_cert_file = cert.cert_file().map(Path::to_owned);
                    self.config.tls_key_file = cert.key_file().map(Path::to_owned);
                }
                #[cfg(feature = "gssapi")]
                if let Credential::Gssapi { principal } = &sasl {
                    self.config.gssapi_principal = principal.clone();
                }
                self.sasl = Some(sasl);
            }
        }
        self.config.bind_password_file = None;
        self
    }
    /// Bound on TCP connect + TLS + bind (default 5 s). Also the time a
    /// hung server gets to answer a liveness check.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }
    /// Bound on a whole operation, waiting for a connection and retries
    /// included (default 30 s). Override per call with [`Pool::with_timeout`].
    pub fn operation_timeout(mut self, d: Duration) -> Self {
        self.config.op_timeout = d;
        self
    }
    /// Idle read connections are closed after `d` (`None`: never). Default 300 s.
    pub fn read_idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.config.read_idle_timeout = d;
        self
    }
    /// Idle write connections are closed after `d`. Default 60 s.
    pub fn write_idle_timeout(mut self, d: Duration) -> Self {
        self.config.write_idle_timeout = d;
        self
    }
    /// Connections older than `d` take no new users and close when the last
    /// leaves (`None`: no limit, the default).
    pub fn max_connection_age(mut self, d: Option<Duration>) -> Self {
        self.config.max_conn_age = d;
        self
    }
    /// Users sharing one connection (default 64).
    pub fn max_users_per_connection(mut self, n: u32) -> Self {
        self.config.max_users_per_conn = n;
        self
    }
    /// Connections per server, all kinds together (default
    /// [`ldapmux_core::DEFAULT_MAX_CONNS_PER_SERVER`], 32); users beyond
    /// wait in FIFO order until their timeout.
    pub fn max_connections_per_server(mut self, n: u32) -> Self {
        self.config.max_conns_per_server = n;
        self
    }
    /// Spread before stack: a connection with `n` users is busy, and the
    /// next user gets another connection to the same server opened (it rides
    /// an open one meanwhile) until [`PoolBuilder::spread_connections_per_server`]
    /// connections of its kind are there. Default
    /// [`ldapmux_core::DEFAULT_SPREAD_USERS_PER_CONN`], chosen by the
    /// benchmark (`docs/results/benchmarks.md`).
    pub fn spread_users_per_connection(mut self, n: u32) -> Self {
        self.config.spread_users_per_conn = n;
        self
    }
    /// How many connections of one kind (credential, read or write) spreading
    /// opens per server before users stack up to
    /// [`PoolBuilder::max_users_per_connection`]; 1 turns spreading off.
    /// Default [`ldapmux_core::DEFAULT_SPREAD_CONNS_PER_SERVER`].
    pub fn spread_connections_per_server(mut self, n: u32) -> Self {
        self.config.spread_conns_per_server = n;
        self
    }
    /// Bind connections per server: password checks
    /// ([`Pool::authenticate`](crate::Pool::authenticate),
    /// [`Pool::change_password`](crate::Pool::change_password)) reuse this
    /// many connections, each re-bound by one check at a time and never
    /// given to another operation; further checks wait for one to be free.
    /// 0: every check opens a fresh connection and closes it after (as
    /// nslcd and SSSD do). Default
    /// [`ldapmux_core::DEFAULT_BIND_CONNS_PER_SERVER`], 4.
    pub fn bind_connections_per_server(mut self, n: u32) -> Self {
        self.config.bind_conns_per_server = n;
        self
    }
    /// Connect racing: a connection that has not opened after `d` while
    /// operations wait on it gets a rival opening to the next usable server,
    /// and whichever opens first serves them, so a silent preferred server
    /// costs `d`, not the connect timeout. `None` turns it off. Default
    /// [`ldapmux_core::DEFAULT_CONNECT_RACE_DELAY`].
    pub fn connect_race_delay(mut self, d: Option<Duration>) -> Self {
        self.config.connect_race_delay = d;
        self
    }
    /// How long a server that came back must stay up before connections fail
    /// back to it (default 30 s).
    pub fn failback_hold_down(mut self, d: Duration) -> Self {
        self.config.failback_hold_down = d;
        self
    }
    /// Delay before the first probe of a down server and the longest delay
    /// between probes (default 1 s and 60 s; doubling with jitter).
    pub fn probe_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.probe_backoff_min = min;
        self.config.probe_backoff_max = max;
        self
    }
    /// Only operations that ask for it share connections
    /// ([`Sharing::OnRequest`]); default: every read and write shares.
    pub fn sharing(mut self, sharing: Sharing) -> Self {
        self.config.sharing = sharing;
        self
    }
    /// Entries per page of a search (default 500; `None`: unpaged). Searches
    /// page with the simple paged results control (RFC 2696) on servers whose
    /// root DSE lists it, one paged search per connection at a time (a
    /// server keeps one paging state per connection); a server that caps
    /// unpaged answers (Active Directory at 1 000, OpenLDAP's `limits`) then
    /// answers every entry. [`Pool::streaming_search`](crate::Pool::streaming_search)
    /// pages on its enumeration connection; [`Pool::search`](crate::Pool::search)
    /// asks unpaged first and pages, on a connection of its own, when the
    /// server answers `sizeLimitExceeded`.
    /// `Some(0)` is refused by `build()`.
    pub fn page_size(mut self, size: Option<u32>) -> Self {
        self.config.page_size = size;
        self
    }
    /// `false` gives every operation its own connection (behaviour 14: for
    /// servers or proxies that cannot multiplex). Default `true`.
    pub fn multiplexing(mut self, on: bool) -> Self {
        self.config.multiplexing = on;
        self
    }
    /// Upgrade `ldap://` connections with StartTLS; a server that refuses
    /// fails the connect, never falls back to plain text. Default off.
    pub fn starttls(mut self, on: bool) -> Self {
        self.config.starttls = on;
        self
    }
    /// Trust the certificates in this PEM file, in addition to the system roots.
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.tls_ca_file = Some(path.into());
        self
    }
    /// Trust the operating system's roots (default `true`).
    pub fn tls_system_roots(mut self, on: bool) -> Self {
        self.config.tls_system_roots = on;
        self
    }
    /// **Dangerous.** `false` accepts any server certificate and host name.
    /// Verification is on unless this is called with `false`.
    pub fn danger_tls_verify(mut self, verify: bool) -> Self {
        self.config.tls_verify = verify;
        self
    }
    /// Seed of the probe-backoff jitter (default: from the process id and
    /// time), for reproducible runs.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.config.jitter_seed = Some(seed);
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
        self.config.metrics_name = Some(name.into());
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
        self.config
            .metrics_credential_labels
            .insert(dn.into(), label.into());
        self
    }
    /// `true` labels connections with their bind DN in metrics (the
    /// `credential` label). Default `false`: bind DNs can name people and
    /// accounts, so they are labels only when asked for. Never a password.
    pub fn metrics_bind_dn_labels(mut self, on: bool) -> Self {
        self.config.metrics_bind_dn_labels = on;
        self
    }
    /// How often a task of the pool publishes its gauges (connections,
    /// waiters, server health) and the core's counters; `None`: only on
    /// [`Pool::publish_metrics`], reload and shutdown. Default 1 s.
    pub fn metrics_interval(mut self, every: Option<Duration>) -> Self {
        self.config.metrics_interval = every;
        self
    }

    /// A builder holding `config` (anonymous unless `config` names a bind
    /// DN and its `bind_password_file`).
    pub fn from_config(config: PoolConfig) -> Self {
        PoolBuilder::default().with_config(config)
    }

    /// The configuration this builder holds, defaults included: what a
    /// pool built from it runs with (`ldapmux check --config` shows it).
    /// Never a password: the credential appears as its bind DN.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// This builder with `config` in place of its own (runtime, password
    /// and discovery kept).
    pub(crate) fn with_config(mut self, config: PoolConfig) -> Self {
        self.config = config;
        self
    }

    /// The configuration, for the DNS SRV builder's setters.
    pub(crate) fn config_mut(&mut self) -> &mut PoolConfig {
        &mut self.config
    }

    /// This builder with the password of its bind DN (from a file already
    /// read by [`ConfigFile`](crate::ConfigFile)).
    /// It replaces a SASL credential given in code.
    pub(crate) fn with_password(mut self, password: Option<Password>) -> Self {
        self.password = password;
        self.sasl = None;
        self
    }

    /// Checks everything and starts the pool. No connection is opened until
    /// the first operation needs one.
    pub fn build(self) -> Result<Pool, BuildError> {
        if self.config.dns_srv.is_some() {
            // Only a configuration read as data gets here: the builder's
            // own `dns_srv` gives an SrvPoolBuilder.
            let reason = if cfg!(feature = "dns-srv") {
                "the servers come from a DNS lookup: build with \
                 SrvPoolBuilder::build().await (PoolBuilder::into_dns_srv)"
            } else {
                "the servers come from a DNS lookup, which needs the `dns-srv` \
                 feature of ldapmux"
            };
            return Err(BuildError::InvalidField {
                field: "dns_srv",
                reason: reason.into(),
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
        let seed = self.seed_or_default();
        let settings = self.settings()?;
        Ok(Pool::start(settings, runtime, seed))
    }

    /// Whether servers were listed by hand.
    pub(crate) fn has_servers(&self) -> bool {
        !self.config.uri.is_empty() || !self.config.preferred.is_empty()
    }

    /// The runtime given with [`PoolBuilder::runtime`], if any.
    pub(crate) fn runtime_handle(&self) -> Option<tokio::runtime::Handle> {
        self.runtime.clone()
    }

    /// The jitter seed, or one from the process id and time.
    pub(crate) fn seed_or_default(&self) -> u64 {
        self.config.jitter_seed.unwrap_or_else(default_seed)
    }

    /// The credential: the bind DN with its password (given, or read from
    /// `bind_password_file`), or anonymous.
    pub(crate) fn credential_checked(&self) -> Result<Credential, BuildError> {
        let c = &self.config;
        if let Some(sasl) = &self.sasl {
            return Ok(sasl.clone());
        }
        match c.sasl_mech {
            Some(SaslMech::External) => {
                let client_cert = match (&c.tls_cert_file, &c.tls_key_file) {
                    (Some(cert), Some(key)) => Some(ClientCert::from_pem_files(cert, key)?),
                    _ => None,
                };
                return Ok(Credential::SaslExternal { client_cert });
            }
            #[cfg(feature = "gssapi")]
            Some(SaslMech::Gssapi) => {
                return Ok(Credential::Gssapi {
                    principal: c.gssapi_principal.clone(),
                });
            }
            #[cfg(not(feature = "gssapi"))]
            Some(SaslMech::Gssapi) => return Err(crate::credential::gssapi_unavailable()),
            None => {}
        }
        let password = match (&self.password, &c.bind_password_file) {
            (Some(pw), _) => Some(pw.clone()),
            (None, Some(file)) => {
                Some(crate::secret::read_password_file(file).map_err(|reason| {
                    BuildError::InvalidField {
                        field: "bind_password_file",
                        reason: format!("{}: {reason}", file.display()),
                    }
                })?)
            }
            (None, None) => None,
        };
        match (&c.bind_dn, password) {
            (None, None) => Ok(Credential::Anonymous),
            (Some(dn), Some(password)) => {
                if password.is_empty() {
                    return Err(BuildError::InvalidField {
                        field: "credential",
                        reason: format!(
                            "empty password for {dn}: an empty simple bind is unauthenticated"
                        ),
                    });
                }
                Ok(Credential::Simple {
                    dn: dn.clone(),
                    password,
                })
            }
            (Some(_), None) => Err(BuildError::InvalidField {
                field: "bind_dn",
                reason: "a bind DN needs a password: set bind_password_file (or PoolBuilder::credential)".into(),
            }),
            (None, Some(_)) => Err(BuildError::InvalidField {
                field: "bind_password_file",
                reason: "a password without a bind DN: set bind_dn".into(),
            }),
        }
    }

    /// Validates into the settings one generation runs with.
    pub(crate) fn settings(&self) -> Result<Arc<Settings>, BuildError> {
        // A credential given in code is named as such.
        if let Some(dn) = &self.config.bind_dn
            && self.password.is_some()
            && dn.trim().is_empty()
        {
            return Err(BuildError::InvalidField {
                field: "credential",
                reason: "empty bind DN (use Credential::Anonymous)".into(),
            });
        }
        // A generation runs with listed servers: for a discovered pool,
        // discovery lists the answer's; the DNS keys are discovery's own
        // (judged when it is built).
        let mut c = self.config.clone();
        (c.dns_srv, c.dns_srv_service, c.dns_server) = (None, None, None);
        let checked = c.checked()?;
        let credential = self.credential_checked()?;
        let c = &self.config;
        credential.check_transport(&checked.urls, c.starttls)?;
        #[cfg(feature = "gssapi")]
        if matches!(credential, Credential::Gssapi { .. }) {
            crate::gssapi::check_environment()?;
        }
        let tls_options = TlsOptions {
            system_roots: c.tls_system_roots,
            ca_file: c.tls_ca_file.clone(),
            verify: c.tls_verify,
        };
        let tls = tls::client_config(&tls_options)?;
        let metrics = MetricsConfig::of(c);
        Ok(Arc::new(Settings {
            core: checked.core,
            urls: checked.urls,
            credential,
            op_timeout: c.op_timeout,
            tls,
            tls_options,
            starttls: c.starttls,
            multiplex: c.multiplexing,
            page_size: c.page_size.and_then(std::num::NonZeroU32::new),
            metrics,
        }))
    }
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
    /// Entries per page (`None`: unpaged searches).
    pub(crate) page_size: Option<std::num::NonZeroU32>,
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
        // Named by its configuration key (`op_timeout` in TOML).
        assert!(err.to_string().contains("op_timeout"), "{err}");

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
            // Server ids follow the order they are tried in.
            [
                ("ldap://a", Some(0)),
                ("ldap://b", Some(1)),
                ("ldap://c", None)
            ]
        );
    }

    #[test]
    fn a_password_never_shows_in_the_builder_debug() {
        let b = PoolBuilder::new().credential(Credential::simple("cn=admin", "top-secret-pw"));
        assert!(!format!("{b:?}").contains("top-secret"));
    }
}
