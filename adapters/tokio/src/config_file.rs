//! Configuration files: an OpenLDAP `ldap.conf`, the `LDAPCONF` / `LDAPURI`
//! environment variables, and a TOML file for what `ldap.conf` cannot say.
//!
//! The keys and their mapping are documented on [`ConfigFile`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroizing;

use crate::url::ServerUrl;
use crate::{Credential, Password, PoolBuilder, SrvService};

/// A configuration file could not be used. Every variant that comes from a
/// file names the file, and the line and key where meaningful. No variant
/// ever carries the content of a password file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The configuration file cannot be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not parse (TOML syntax, a line without a key).
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A key this crate does not know.
    #[error("{}:{line}: unknown key `{key}`{}", path.display(), unknown_hint(key))]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key as written.
        key: String,
    },
    /// A key libldap knows that ldapmux cannot honour (`SASL_*`, client
    /// certificates, …): refused rather than silently ignored.
    #[error("{}:{line}: {key} is not supported: {reason}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key as written.
        key: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// A known key with a value that cannot be used.
    #[error("{}:{line}: bad value for {key}: {reason}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key as written.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The password file named by `bind_password_file` cannot be read, is
    /// empty or is not UTF-8. Its content is never shown.
    #[error("{}:{line}: {key}: password file {}: {reason}", path.display(), file.display())]
    PasswordFile {
        /// The configuration file naming the password file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key (`bind_password_file`).
        key: String,
        /// The password file.
        file: PathBuf,
        /// What is wrong (never its content).
        reason: String,
    },
    /// A setting that needs another one: a bind DN without a password file,
    /// or a password file without a bind DN.
    #[error("{}:{line}: {key}: {reason}", path.display())]
    Incomplete {
        /// The file where the setting was given.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// The key.
        key: String,
        /// What is missing.
        reason: String,
    },
    /// The environment does not configure a pool (`from_env`), or a
    /// variable has a bad value.
    #[error("environment variable {var}: {reason}")]
    Env {
        /// The variable (`LDAPCONF`, `LDAPURI`).
        var: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn unknown_hint(key: &str) -> &'static str {
    let k = key.to_ascii_lowercase();
    if k.contains("pw") || k.contains("password") || k.contains("secret") {
        " (passwords are only read from the file named by bind_password_file)"
    } else {
        ""
    }
}

/// Where a setting was given, for errors found after the whole file is read.
#[derive(Clone, Debug)]
struct Origin {
    path: PathBuf,
    line: usize,
    key: String,
}

/// Settings read from `ldap.conf`, the environment and/or a TOML file, ready
/// to be applied to a [`PoolBuilder`]. Its `Debug` never shows the password.
///
/// Reading a file ([`ConfigFile`]) and building a pool are two steps with two
/// error types: [`ConfigFileError`] names the file, line and key; the
/// [`BuildError`](crate::BuildError) of [`PoolBuilder::build`] then checks the
/// settings as a whole, as for a builder filled in by hand.
///
/// # `ldap.conf`
///
/// One setting a line, `KEY value`; blank lines and lines starting with `#`
/// are skipped; keys are case-insensitive (as libldap); the value is the rest
/// of the line without surrounding white space. A key given twice: the last
/// one wins.
///
/// | key | becomes |
/// | --- | --- |
/// | `URI` | the servers, in order (space- or comma-separated URLs) |
/// | `BASE` | [`ConfigFile::base`] (not a pool setting: operations take a base) |
/// | `BINDDN` | the bind DN (needs `bind_password_file` from the TOML file) |
/// | `TLS_CACERT` | [`PoolBuilder::tls_ca_file`] |
/// | `TLS_REQCERT` | `never`: [`PoolBuilder::danger_tls_verify`]`(false)`; `demand`, `hard`, and also `allow`, `try` (treated as the stricter `demand`): verification on |
/// | `NETWORK_TIMEOUT` | [`PoolBuilder::connect_timeout`] (whole seconds) |
/// | `TIMEOUT` | [`PoolBuilder::operation_timeout`] (whole seconds) |
/// | `REFERRALS` | `off` accepted (ldapmux never chases referrals); `on` refused |
///
/// `SASL_*`, `GSSAPI_*`, other `TLS_*` keys (client certificates, CRLs,
/// cipher suites, …), `HOST`, `PORT`, `SIZELIMIT`, `TIMELIMIT`, `DEREF` and
/// the `KEEPALIVE_*` keys are refused with [`ConfigFileError::Unsupported`]
/// rather than ignored: a setting the file's author relies on never silently
/// has no effect. Any other key is [`ConfigFileError::UnknownKey`].
///
/// # TOML
///
/// | key | type | becomes |
/// | --- | --- | --- |
/// | `ldap_conf` | path | an `ldap.conf` read first; the TOML keys override it |
/// | `uri` | array of URLs | the servers (replaces `URI`) |
/// | `preferred` | array of URLs | preferred servers, in order; a URL also in `uri`/`URI` is listed once, as preferred |
/// | `base` | string | [`ConfigFile::base`] |
/// | `bind_dn` | string | the bind DN (replaces `BINDDN`) |
/// | `bind_password_file` | path | the bind password: the file's content minus one trailing newline, non-empty |
/// | `tls_ca_file` | path | [`PoolBuilder::tls_ca_file`] |
/// | `tls_system_roots` | bool | [`PoolBuilder::tls_system_roots`] |
/// | `starttls` | bool | [`PoolBuilder::starttls`] |
/// | `max_users_per_conn` | integer | [`PoolBuilder::max_users_per_connection`] |
/// | `max_conns_per_server` | integer | [`PoolBuilder::max_connections_per_server`] |
/// | `spread_users_per_conn` | integer | [`PoolBuilder::spread_users_per_connection`] |
/// | `spread_conns_per_server` | integer | [`PoolBuilder::spread_connections_per_server`] (1: no spreading) |
/// | `connect_race_delay_ms` | integer | [`PoolBuilder::connect_race_delay`] (0: no racing) |
/// | `failback_hold_down_ms` | integer | [`PoolBuilder::failback_hold_down`] |
/// | `probe_backoff_min_ms`, `probe_backoff_max_ms` | integer | [`PoolBuilder::probe_backoff`] (a missing one keeps its default) |
/// | `connect_timeout_ms` | integer | [`PoolBuilder::connect_timeout`] |
/// | `op_timeout_ms` | integer | [`PoolBuilder::operation_timeout`] |
/// | `dns_srv` | domain | servers from the SRV records of `_ldap._tcp.<domain>` ([`PoolBuilder::dns_srv`]; build with [`PoolBuilder::build_discovered`]); replaces `URI`, and excludes `uri` / `preferred` |
/// | `dns_srv_service` | `"ldap"` or `"ldaps"` | which records ([`PoolBuilder::dns_srv_service`]; default `ldap`) |
/// | `dns_server` | `"ip:port"` | the name server to ask ([`PoolBuilder::dns_server`]; default the system's) |
///
/// Relative paths in a TOML file are relative to that file's directory;
/// `TLS_CACERT` in `ldap.conf` is used as written (as libldap does).
///
/// A bind DN without a password file, or a password file without a bind DN,
/// is an error ([`ConfigFileError::Incomplete`]): the pool never falls back
/// to an anonymous bind the file did not ask for. Passwords are never read
/// from `ldap.conf` or TOML values, only from the password file, and its
/// content never appears in a `Debug` output or an error.
#[derive(Clone, Debug, Default)]
pub struct ConfigFile {
    uris: Vec<String>,
    preferred: Vec<String>,
    base: Option<String>,
    bind_dn: Option<(String, Origin)>,
    password: Option<(Password, Origin)>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    dns_srv: Option<String>,
    dns_srv_service: Option<SrvService>,
    dns_server: Option<std::net::SocketAddr>,
    system_roots: Option<bool>,
    tls_verify: Option<bool>,
    starttls: Option<bool>,
    connect_timeout: Option<Duration>,
    op_timeout: Option<Duration>,
    max_users_per_conn: Option<u32>,
    max_conns_per_server: Option<u32>,
    spread_users_per_conn: Option<u32>,
    spread_conns_per_server: Option<u32>,
    /// `Some(None)`: racing turned off.
    connect_race_delay: Option<Option<Duration>>,
    failback_hold_down: Option<Duration>,
    probe_backoff_min: Option<Duration>,
    probe_backoff_max: Option<Duration>,
    files: Vec<PathBuf>,
}

impl ConfigFile {
    /// Reads an OpenLDAP `ldap.conf`.
    pub fn read_ldap_conf(path: impl AsRef<Path>) -> Result<ConfigFile, ConfigFileError> {
        let mut cfg = ConfigFile::default();
        cfg.merge_ldap_conf(path.as_ref())?;
        cfg.check_complete()?;
        Ok(cfg)
    }

    /// Reads an ldapmux TOML file (and the `ldap.conf` it names, first).
    pub fn read_toml(path: impl AsRef<Path>) -> Result<ConfigFile, ConfigFileError> {
        let mut cfg = ConfigFile::default();
        cfg.merge_toml(path.as_ref())?;
        cfg.check_complete()?;
        Ok(cfg)
    }

    /// As libldap: `LDAPCONF` names an `ldap.conf` to read, and `LDAPURI`
    /// gives the servers (replacing its `URI`). At least one must be set.
    /// The system-wide `ldap.conf` is not read implicitly.
    pub fn from_env() -> Result<ConfigFile, ConfigFileError> {
        let vars: HashMap<String, String> = ["LDAPCONF", "LDAPURI"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
            .collect();
        Self::from_env_map(&vars)
    }

    /// [`from_env`](Self::from_env) with the environment given as a map, for
    /// tests and for callers that keep their own environment.
    pub fn from_env_map(vars: &HashMap<String, String>) -> Result<ConfigFile, ConfigFileError> {
        let conf = vars.get("LDAPCONF").filter(|v| !v.trim().is_empty());
        let uri = vars.get("LDAPURI").filter(|v| !v.trim().is_empty());
        if conf.is_none() && uri.is_none() {
            return Err(ConfigFileError::Env {
                var: "LDAPCONF",
                reason: "neither LDAPCONF nor LDAPURI is set".into(),
            });
        }
        let mut cfg = ConfigFile::default();
        if let Some(conf) = conf {
            cfg.merge_ldap_conf(Path::new(conf))?;
        }
        if let Some(uri) = uri {
            cfg.uris = parse_uri_list(uri).map_err(|reason| ConfigFileError::Env {
                var: "LDAPURI",
                reason,
            })?;
        }
        cfg.check_complete()?;
        Ok(cfg)
    }

    /// The search base (`BASE` / `base`), if given. Not a pool setting:
    /// pass it to the operations.
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// The bind DN, if given. Never the password.
    pub fn bind_dn(&self) -> Option<&str> {
        self.bind_dn.as_ref().map(|(dn, _)| dn.as_str())
    }

    /// The servers in the order they are added to the builder, each with
    /// whether it is preferred.
    pub fn servers(&self) -> Vec<(&str, bool)> {
        let mut out: Vec<(&str, bool)> =
            self.preferred.iter().map(|u| (u.as_str(), true)).collect();
        for u in &self.uris {
            if !self.preferred.iter().any(|p| same_url(p, u)) {
                out.push((u.as_str(), false));
            }
        }
        out
    }

    /// The domain whose SRV records give the servers (`dns_srv`), if set.
    pub fn dns_srv(&self) -> Option<&str> {
        self.dns_srv.as_deref()
    }

    /// Which SRV records (`dns_srv_service`; `ldap` unless given).
    pub fn dns_srv_service(&self) -> SrvService {
        self.dns_srv_service.unwrap_or_default()
    }

    /// The name server to ask (`dns_server`), if not the system's.
    pub fn dns_server(&self) -> Option<std::net::SocketAddr> {
        self.dns_server
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The password file (`bind_password_file`), if given.
    pub fn password_file(&self) -> Option<&PathBuf> {
        self.password_file.as_ref()
    }

    /// The CA file (`TLS_CACERT` / `tls_ca_file`), if given.
    pub fn ca_file(&self) -> Option<&PathBuf> {
        self.ca_file.as_ref()
    }

    /// A builder with the defaults and these settings.
    pub fn builder(&self) -> PoolBuilder {
        self.apply(PoolBuilder::new())
    }

    /// Applies these settings to `b`; settings the files do not give keep
    /// the builder's values.
    pub fn apply(&self, mut b: PoolBuilder) -> PoolBuilder {
        for (url, preferred) in self.servers() {
            b = if preferred {
                b.preferred_server(url)
            } else {
                b.server(url)
            };
        }
        if let Some(domain) = &self.dns_srv {
            b = b.dns_srv(domain.clone());
        }
        if let Some(service) = self.dns_srv_service {
            b = b.dns_srv_service(service);
        }
        if let Some(addr) = self.dns_server {
            b = b.dns_server(addr);
        }
        if let (Some((dn, _)), Some((pw, _))) = (&self.bind_dn, &self.password) {
            b = b.credential(Credential::Simple {
                dn: dn.clone(),
                password: pw.clone(),
            });
        }
        if let Some(f) = &self.ca_file {
            b = b.tls_ca_file(f.clone());
        }
        if let Some(on) = self.system_roots {
            b = b.tls_system_roots(on);
        }
        if let Some(verify) = self.tls_verify {
            b = b.danger_tls_verify(verify);
        }
        if let Some(on) = self.starttls {
            b = b.starttls(on);
        }
        if let Some(d) = self.connect_timeout {
            b = b.connect_timeout(d);
        }
        if let Some(d) = self.op_timeout {
            b = b.operation_timeout(d);
        }
        if let Some(n) = self.max_users_per_conn {
            b = b.max_users_per_connection(n);
        }
        if let Some(n) = self.max_conns_per_server {
            b = b.max_connections_per_server(n);
        }
        if let Some(n) = self.spread_users_per_conn {
            b = b.spread_users_per_connection(n);
        }
        if let Some(n) = self.spread_conns_per_server {
            b = b.spread_connections_per_server(n);
        }
        if let Some(d) = self.connect_race_delay {
            b = b.connect_race_delay(d);
        }
        if let Some(d) = self.failback_hold_down {
            b = b.failback_hold_down(d);
        }
        if self.probe_backoff_min.is_some() || self.probe_backoff_max.is_some() {
            let (min, max) = b.probe_backoff_bounds();
            b = b.probe_backoff(
                self.probe_backoff_min.unwrap_or(min),
                self.probe_backoff_max.unwrap_or(max),
            );
        }
        b
    }

    fn check_complete(&self) -> Result<(), ConfigFileError> {
        let incomplete = |o: &Origin, reason: &str| ConfigFileError::Incomplete {
            path: o.path.clone(),
            line: o.line,
            key: o.key.clone(),
            reason: reason.to_owned(),
        };
        match (&self.bind_dn, &self.password) {
            (Some((_, o)), None) => Err(incomplete(
                o,
                "a bind DN needs a password: set bind_password_file in the ldapmux TOML file",
            )),
            (None, Some((_, o))) => Err(incomplete(
                o,
                "a password file without a bind DN: set bind_dn (or BINDDN in ldap.conf)",
            )),
            _ => Ok(()),
        }
    }

    fn merge_ldap_conf(&mut self, path: &Path) -> Result<(), ConfigFileError> {
        let text = read_text(path)?;
        self.files.push(path.to_owned());
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (key, value) = match l.find(char::is_whitespace) {
                Some(at) => (&l[..at], l[at..].trim()),
                None => (l, ""),
            };
            let upper = key.to_ascii_uppercase();
            let bad = |reason: String| ConfigFileError::BadValue {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
                reason,
            };
            let unsupported = |reason: &str| ConfigFileError::Unsupported {
                path: path.to_owned(),
                line,
                key: key.to_owned(),
                reason: reason.to_owned(),
            };
            let known = matches!(
                upper.as_str(),
                "URI"
                    | "BASE"
                    | "BINDDN"
                    | "TLS_CACERT"
                    | "TLS_REQCERT"
                    | "NETWORK_TIMEOUT"
                    | "TIMEOUT"
                    | "REFERRALS"
            );
            if known && value.is_empty() {
                return Err(bad("missing value".into()));
            }
            match upper.as_str() {
                "URI" => self.uris = parse_uri_list(value).map_err(bad)?,
                "BASE" => self.base = Some(value.to_owned()),
                "BINDDN" => {
                    self.bind_dn = Some((
                        value.to_owned(),
                        Origin {
                            path: path.to_owned(),
                            line,
                            key: key.to_owned(),
                        },
                    ))
                }
                "TLS_CACERT" => self.ca_file = Some(PathBuf::from(value)),
                "TLS_REQCERT" => {
                    self.tls_verify = Some(match value.to_ascii_lowercase().as_str() {
                        "never" => false,
                        "allow" | "try" | "demand" | "hard" => true,
                        _ => {
                            return Err(bad(format!(
                                "{value:?}: expected never, allow, try, demand or hard"
                            )));
                        }
                    })
                }
                "NETWORK_TIMEOUT" => self.connect_timeout = Some(seconds(value).map_err(bad)?),
                "TIMEOUT" => self.op_timeout = Some(seconds(value).map_err(bad)?),
                "REFERRALS" => match value.to_ascii_lowercase().as_str() {
                    "off" | "no" | "false" => {}
                    "on" | "yes" | "true" => {
                        return Err(unsupported("ldapmux never chases referrals"));
                    }
                    _ => return Err(bad(format!("{value:?}: expected on or off"))),
                },
                k if k.starts_with("SASL_") || k.starts_with("GSSAPI_") => {
                    return Err(unsupported(
                        "SASL binds are not supported; ldapmux binds with a simple bind \
                         (BINDDN and bind_password_file)",
                    ));
                }
                k if k.starts_with("TLS_") => {
                    return Err(unsupported(
                        "only TLS_CACERT and TLS_REQCERT are supported \
                         (rustls with the system roots and a CA file)",
                    ));
                }
                "HOST" | "PORT" => return Err(unsupported("use URI")),
                "SIZELIMIT"
                | "TIMELIMIT"
                | "DEREF"
                | "SOCKET_BIND_ADDRESSES"
                | "KEEPALIVE_IDLE"
                | "KEEPALIVE_PROBES"
                | "KEEPALIVE_INTERVAL"
                | "TCP_USER_TIMEOUT" => {
                    return Err(unsupported("ldapmux has no such setting"));
                }
                _ => {
                    return Err(ConfigFileError::UnknownKey {
                        path: path.to_owned(),
                        line,
                        key: key.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    fn merge_toml(&mut self, path: &Path) -> Result<(), ConfigFileError> {
        let text = read_text(path)?;
        let file: TomlFile = toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let at = |span: std::ops::Range<usize>, key: &str| Origin {
            path: path.to_owned(),
            line: line_of(&text, span.start),
            key: key.to_owned(),
        };
        let bad = |o: Origin, reason: String| ConfigFileError::BadValue {
            path: o.path,
            line: o.line,
            key: o.key,
            reason,
        };
        if let Some(conf) = &file.ldap_conf {
            self.merge_ldap_conf(&dir.join(conf.get_ref()))?;
        }
        self.files.push(path.to_owned());
        let lists_servers = file.uri.is_some() || file.preferred.is_some();
        let srv_options = [
            (
                "dns_srv_service",
                file.dns_srv_service.as_ref().map(Spanned::span),
            ),
            ("dns_server", file.dns_server.as_ref().map(Spanned::span)),
        ];
        if let Some(v) = file.uri {
            let o = at(v.span(), "uri");
            self.uris = check_urls(v.into_inner()).map_err(|r| bad(o, r))?;
        }
        if let Some(v) = file.preferred {
            let o = at(v.span(), "preferred");
            self.preferred = check_urls(v.into_inner()).map_err(|r| bad(o, r))?;
        }
        if let Some(v) = file.dns_srv {
            let o = at(v.span(), "dns_srv");
            let domain = v.into_inner();
            if domain.trim().is_empty() {
                return Err(bad(o, "empty domain".into()));
            }
            if lists_servers {
                return Err(bad(
                    o,
                    "the servers come from DNS: remove uri and preferred from this file".into(),
                ));
            }
            // Replaces URI from ldap.conf, as every TOML key overrides it.
            self.uris.clear();
            self.dns_srv = Some(domain);
        }
        if let Some(v) = file.dns_srv_service {
            let o = at(v.span(), "dns_srv_service");
            self.dns_srv_service = Some(match v.get_ref().to_ascii_lowercase().as_str() {
                "ldap" => SrvService::Ldap,
                "ldaps" => SrvService::Ldaps,
                other => return Err(bad(o, format!("{other:?}: ldap or ldaps"))),
            });
        }
        if let Some(v) = file.dns_server {
            let o = at(v.span(), "dns_server");
            let addr = v.get_ref().parse().map_err(|e| {
                bad(
                    o.clone(),
                    format!("{:?}: {e} (an ip:port such as 127.0.0.1:53)", v.get_ref()),
                )
            })?;
            self.dns_server = Some(addr);
        }
        if self.dns_srv.is_none()
            && let Some((key, Some(span))) = srv_options.into_iter().find(|(_, sp)| sp.is_some())
        {
            return Err(bad(
                at(span, key),
                "only used with dns_srv, which is not set".into(),
            ));
        }
        if let Some(v) = file.base {
            self.base = Some(v.into_inner());
        }
        if let Some(v) = file.bind_dn {
            let o = at(v.span(), "bind_dn");
            if v.get_ref().trim().is_empty() {
                return Err(bad(o, "empty bind DN".into()));
            }
            self.bind_dn = Some((v.into_inner(), o));
        }
        if let Some(v) = file.bind_password_file {
            let o = at(v.span(), "bind_password_file");
            let file = dir.join(v.get_ref());
            let pw = read_password(&file, &o)?;
            self.password = Some((pw, o));
            self.password_file = Some(file);
        }
        if let Some(v) = file.tls_ca_file {
            self.ca_file = Some(dir.join(v.get_ref()));
        }
        self.system_roots = file
            .tls_system_roots
            .map(Spanned::into_inner)
            .or(self.system_roots);
        self.starttls = file.starttls.map(Spanned::into_inner).or(self.starttls);
        let positive =
            |v: Option<Spanned<u64>>, key: &str| -> Result<Option<u64>, ConfigFileError> {
                match v {
                    Some(v) if *v.get_ref() == 0 => {
                        Err(bad(at(v.span(), key), "must be positive".into()))
                    }
                    v => Ok(v.map(Spanned::into_inner)),
                }
            };
        let ms = Duration::from_millis;
        if let Some(n) = positive(file.connect_timeout_ms, "connect_timeout_ms")? {
            self.connect_timeout = Some(ms(n));
        }
        if let Some(n) = positive(file.op_timeout_ms, "op_timeout_ms")? {
            self.op_timeout = Some(ms(n));
        }
        let count = |v: Option<Spanned<u64>>, key: &str| -> Result<Option<u32>, ConfigFileError> {
            match &v {
                Some(s) if u32::try_from(*s.get_ref()).is_err() => {
                    Err(bad(at(s.span(), key), "too large".into()))
                }
                _ => Ok(positive(v, key)?.map(|n| n as u32)),
            }
        };
        if let Some(n) = count(file.max_users_per_conn, "max_users_per_conn")? {
            self.max_users_per_conn = Some(n);
        }
        if let Some(n) = count(file.max_conns_per_server, "max_conns_per_server")? {
            self.max_conns_per_server = Some(n);
        }
        if let Some(n) = count(file.spread_users_per_conn, "spread_users_per_conn")? {
            self.spread_users_per_conn = Some(n);
        }
        if let Some(n) = count(file.spread_conns_per_server, "spread_conns_per_server")? {
            self.spread_conns_per_server = Some(n);
        }
        if let Some(v) = file.connect_race_delay_ms {
            let n = v.into_inner();
            self.connect_race_delay = Some((n > 0).then(|| ms(n)));
        }
        if let Some(v) = file.failback_hold_down_ms {
            self.failback_hold_down = Some(ms(v.into_inner()));
        }
        if let Some(n) = positive(file.probe_backoff_min_ms, "probe_backoff_min_ms")? {
            self.probe_backoff_min = Some(ms(n));
        }
        if let Some(v) = file.probe_backoff_max_ms {
            let o = at(v.span(), "probe_backoff_max_ms");
            let max = ms(v.into_inner());
            if self.probe_backoff_min.is_some_and(|min| min > max) {
                return Err(bad(o, "smaller than probe_backoff_min_ms".into()));
            }
            self.probe_backoff_max = Some(max);
        }
        Ok(())
    }
}

/// The TOML file, as written. Every value keeps its span for errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    ldap_conf: Option<Spanned<String>>,
    uri: Option<Spanned<Vec<String>>>,
    preferred: Option<Spanned<Vec<String>>>,
    base: Option<Spanned<String>>,
    bind_dn: Option<Spanned<String>>,
    bind_password_file: Option<Spanned<String>>,
    tls_ca_file: Option<Spanned<String>>,
    tls_system_roots: Option<Spanned<bool>>,
    starttls: Option<Spanned<bool>>,
    max_users_per_conn: Option<Spanned<u64>>,
    max_conns_per_server: Option<Spanned<u64>>,
    spread_users_per_conn: Option<Spanned<u64>>,
    spread_conns_per_server: Option<Spanned<u64>>,
    connect_race_delay_ms: Option<Spanned<u64>>,
    failback_hold_down_ms: Option<Spanned<u64>>,
    probe_backoff_min_ms: Option<Spanned<u64>>,
    probe_backoff_max_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    op_timeout_ms: Option<Spanned<u64>>,
    dns_srv: Option<Spanned<String>>,
    dns_srv_service: Option<Spanned<String>>,
    dns_server: Option<Spanned<String>>,
}

impl PoolBuilder {
    /// A builder from an OpenLDAP `ldap.conf` ([`ConfigFile::read_ldap_conf`]).
    pub fn from_ldap_conf(path: impl AsRef<Path>) -> Result<PoolBuilder, ConfigFileError> {
        Ok(ConfigFile::read_ldap_conf(path)?.builder())
    }
    /// A builder from an ldapmux TOML file ([`ConfigFile::read_toml`]).
    pub fn from_toml(path: impl AsRef<Path>) -> Result<PoolBuilder, ConfigFileError> {
        Ok(ConfigFile::read_toml(path)?.builder())
    }
    /// A builder from `LDAPCONF` and `LDAPURI` ([`ConfigFile::from_env`]).
    pub fn from_env() -> Result<PoolBuilder, ConfigFileError> {
        Ok(ConfigFile::from_env()?.builder())
    }
}

fn read_text(path: &Path) -> Result<String, ConfigFileError> {
    std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_password(file: &Path, o: &Origin) -> Result<Password, ConfigFileError> {
    let err = |reason: &str| ConfigFileError::PasswordFile {
        path: o.path.clone(),
        line: o.line,
        key: o.key.clone(),
        file: file.to_owned(),
        reason: reason.to_owned(),
    };
    let bytes = Zeroizing::new(std::fs::read(file).map_err(|e| err(&io_reason(&e)))?);
    let text = std::str::from_utf8(&bytes).map_err(|_| err("not UTF-8"))?;
    let text = match text.strip_suffix('\n') {
        Some(t) => t.strip_suffix('\r').unwrap_or(t),
        None => text,
    };
    if text.is_empty() {
        return Err(err("empty"));
    }
    Ok(Password::new(text.to_owned()))
}

/// An I/O error's description without anything read from the file.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "not found".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn parse_uri_list(value: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    check_urls(urls)
}

fn check_urls(urls: Vec<String>) -> Result<Vec<String>, String> {
    if urls.is_empty() {
        return Err("no URL".into());
    }
    for u in &urls {
        ServerUrl::parse(u).map_err(|e| e.to_string())?;
    }
    Ok(urls)
}

fn same_url(a: &str, b: &str) -> bool {
    match (ServerUrl::parse(a), ServerUrl::parse(b)) {
        (Ok(a), Ok(b)) => a.as_str().eq_ignore_ascii_case(b.as_str()),
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(0) => Err("must be positive".into()),
        Ok(n) => Ok(Duration::from_secs(n)),
        Err(_) => Err(format!("{value:?}: expected whole seconds")),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// A TOML error as a typed error: the line from its span, the key from
/// serde's message or from the line.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigFileError {
    let start = e.span().map_or(0, |s| s.start);
    let line = line_of(text, start);
    let msg = e.message().trim().to_owned();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        return ConfigFileError::UnknownKey {
            path: path.to_owned(),
            line,
            key: rest[..end].to_owned(),
        };
    }
    // The key of the value the span points into: the nearest `key =` at or
    // above the line (a multi-line array starts above).
    let key = text
        .lines()
        .take(line)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find_map(|l| {
            let (k, _) = l.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .then(|| k.to_owned())
        });
    match key {
        Some(key) if e.span().is_some() => ConfigFileError::BadValue {
            path: path.to_owned(),
            line,
            key,
            reason: msg,
        },
        _ => ConfigFileError::Syntax {
            path: path.to_owned(),
            line,
            reason: msg,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECRET: &str = "pw-Zebra-Quokka-4711";

    /// A fresh directory for one test, removed when dropped.
    struct TempDir(PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "ldapmux-config-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn conf(text: &str) -> Result<ConfigFile, ConfigFileError> {
        let d = dir();
        ConfigFile::read_ldap_conf(write(&d, "ldap.conf", text))
    }

    /// A TOML file next to a password file holding SECRET.
    fn toml_file(text: &str) -> (PathBuf, Result<ConfigFile, ConfigFileError>) {
        let d = dir();
        write(&d, "pw", &format!("{SECRET}\n"));
        let p = write(&d, "ldapmux.toml", text);
        let r = ConfigFile::read_toml(&p);
        (p, r)
    }

    fn assert_at(e: &ConfigFileError, file: &Path, want_line: usize, want_key: &str) {
        let (path, line, key) = match e {
            ConfigFileError::UnknownKey { path, line, key }
            | ConfigFileError::Unsupported {
                path, line, key, ..
            }
            | ConfigFileError::BadValue {
                path, line, key, ..
            }
            | ConfigFileError::PasswordFile {
                path, line, key, ..
            }
            | ConfigFileError::Incomplete {
                path, line, key, ..
            } => (path, *line, key.as_str()),
            other => panic!("no file/line/key in {other:?}"),
        };
        assert_eq!(path, file, "{e}");
        assert_eq!(line, want_line, "{e}");
        assert_eq!(key, want_key, "{e}");
        let shown = e.to_string();
        assert!(shown.contains(&file.display().to_string()), "{shown}");
        assert!(shown.contains(&format!(":{want_line}:")), "{shown}");
        assert!(shown.contains(want_key), "{shown}");
        assert!(!shown.contains(SECRET) && !format!("{e:?}").contains(SECRET));
    }

    #[test]
    fn ldap_conf_every_key_comments_blank_lines_and_case() {
        let c = conf(
            "# a comment\n\n   \n\
             uri ldap://a:389 ldaps://b:636,ldap://c\n\
             \tBase   dc=example,dc=com  \n\
             TLS_CACERT /etc/ssl/ca.pem\n\
             tls_reqcert demand\n\
             NETWORK_TIMEOUT 3\n\
             Timeout 7\n\
             REFERRALS off\n",
        )
        .unwrap();
        assert_eq!(
            c.servers(),
            [
                ("ldap://a:389", false),
                ("ldaps://b:636", false),
                ("ldap://c", false)
            ]
        );
        assert_eq!(c.base(), Some("dc=example,dc=com"));
        assert_eq!(c.ca_file.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
        assert_eq!(c.tls_verify, Some(true));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(c.op_timeout, Some(Duration::from_secs(7)));
        assert!(c.bind_dn().is_none());
        assert!(format!("{:?}", c.builder()).contains("/etc/ssl/ca.pem"));
    }

    #[test]
    fn tls_reqcert_never_only_when_explicit_and_allow_try_are_demand() {
        assert_eq!(conf("URI ldap://a\n").unwrap().tls_verify, None);
        for (v, verify) in [
            ("never", false),
            ("NEVER", false),
            ("allow", true),
            ("try", true),
            ("demand", true),
            ("hard", true),
        ] {
            let c = conf(&format!("URI ldap://a\nTLS_REQCERT {v}\n")).unwrap();
            assert_eq!(c.tls_verify, Some(verify), "{v}");
        }
    }

    #[test]
    fn ldap_conf_errors_name_file_line_and_key() {
        let cases: &[(&str, usize, &str)] = &[
            ("URI ldap://a\nFOO bar\n", 2, "FOO"),
            ("URI ldap://a\n\nSASL_MECH GSSAPI\n", 3, "SASL_MECH"),
            ("sasl_authcid x\n", 1, "sasl_authcid"),
            ("TLS_CERT /x.pem\n", 1, "TLS_CERT"),
            ("SIZELIMIT 10\n", 1, "SIZELIMIT"),
            ("REFERRALS on\n", 1, "REFERRALS"),
            ("# c\nTLS_REQCERT sometimes\n", 2, "TLS_REQCERT"),
            ("NETWORK_TIMEOUT 0\n", 1, "NETWORK_TIMEOUT"),
            ("TIMEOUT soon\n", 1, "TIMEOUT"),
            ("URI ftp://x\n", 1, "URI"),
            ("URI\n", 1, "URI"),
            ("URI ldap://a\nBINDDN cn=admin\n", 2, "BINDDN"),
        ];
        for (text, line, key) in cases {
            let d = dir();
            let p = write(&d, "ldap.conf", text);
            let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
            assert_at(&e, &p, *line, key);
        }
        let d = dir();
        let p = write(&d, "ldap.conf", "SASL_MECH EXTERNAL\n");
        assert!(matches!(
            ConfigFile::read_ldap_conf(&p).unwrap_err(),
            ConfigFileError::Unsupported { .. }
        ));
        let e = ConfigFile::read_ldap_conf(d.join("missing.conf")).unwrap_err();
        assert!(matches!(e, ConfigFileError::Read { .. }), "{e}");
        assert!(e.to_string().contains("missing.conf"), "{e}");
    }

    #[test]
    fn a_password_key_is_unknown_and_its_value_never_shown() {
        let d = dir();
        let p = write(&d, "ldap.conf", &format!("URI ldap://a\nBINDPW {SECRET}\n"));
        let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
        assert_at(&e, &p, 2, "BINDPW");
        assert!(e.to_string().contains("bind_password_file"), "{e}");
    }

    #[test]
    fn toml_every_key() {
        let (p, c) = toml_file(
            "uri = [\"ldap://a\", \"ldap://b\", \"ldap://c\"]\n\
             preferred = [\"ldap://b\"]\n\
             base = \"dc=example,dc=com\"\n\
             bind_dn = \"cn=admin,dc=example,dc=com\"\n\
             bind_password_file = \"pw\"\n\
             tls_ca_file = \"ca.pem\"\n\
             tls_system_roots = false\n\
             starttls = true\n\
             max_users_per_conn = 8\n\
             max_conns_per_server = 3\n\
             spread_users_per_conn = 2\n\
             spread_conns_per_server = 5\n\
             connect_race_delay_ms = 0\n\
             failback_hold_down_ms = 250\n\
             probe_backoff_min_ms = 20\n\
             probe_backoff_max_ms = 400\n\
             connect_timeout_ms = 1500\n\
             op_timeout_ms = 2500\n",
        );
        let c = c.unwrap();
        let d = p.parent().unwrap();
        assert_eq!(
            c.servers(),
            [("ldap://b", true), ("ldap://a", false), ("ldap://c", false)]
        );
        assert_eq!(c.base(), Some("dc=example,dc=com"));
        assert_eq!(c.bind_dn(), Some("cn=admin,dc=example,dc=com"));
        assert_eq!(c.password.as_ref().unwrap().0.expose(), SECRET);
        assert_eq!(c.ca_file, Some(d.join("ca.pem")));
        assert_eq!(c.system_roots, Some(false));
        assert_eq!(c.starttls, Some(true));
        assert_eq!(c.max_users_per_conn, Some(8));
        assert_eq!(c.max_conns_per_server, Some(3));
        assert_eq!(c.spread_users_per_conn, Some(2));
        assert_eq!(c.spread_conns_per_server, Some(5));
        assert_eq!(c.connect_race_delay, Some(None), "0 turns racing off");
        assert_eq!(c.failback_hold_down, Some(Duration::from_millis(250)));
        assert_eq!(c.probe_backoff_min, Some(Duration::from_millis(20)));
        assert_eq!(c.probe_backoff_max, Some(Duration::from_millis(400)));
        assert_eq!(c.connect_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(c.op_timeout, Some(Duration::from_millis(2500)));
        let b = c.builder();
        assert_eq!(b.probe_backoff_bounds().1, Duration::from_millis(400));
        for shown in [format!("{c:?}"), format!("{b:?}")] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains("cn=admin"), "{shown}");
        }
    }

    #[test]
    fn toml_includes_ldap_conf_and_overrides_it() {
        let d = dir();
        write(&d, "pw", &format!("{SECRET}\r\n"));
        write(
            &d,
            "ldap.conf",
            "URI ldap://x ldap://y\nBASE dc=x\nBINDDN cn=from-conf\nTIMEOUT 9\n",
        );
        let p = write(
            &d,
            "ldapmux.toml",
            "ldap_conf = \"ldap.conf\"\npreferred = [\"LDAP://Y\"]\nbind_password_file = \"pw\"\ntimeout_is_not_here = 1\n",
        );
        let e = ConfigFile::read_toml(&p).unwrap_err();
        assert_at(&e, &p, 4, "timeout_is_not_here");
        let p = write(
            &d,
            "ldapmux.toml",
            "ldap_conf = \"ldap.conf\"\npreferred = [\"LDAP://Y\"]\nbind_password_file = \"pw\"\nop_timeout_ms = 100\nprobe_backoff_max_ms = 5000\n",
        );
        let c = ConfigFile::read_toml(&p).unwrap();
        assert_eq!(c.servers(), [("LDAP://Y", true), ("ldap://x", false)]);
        assert_eq!(c.base(), Some("dc=x"));
        assert_eq!(c.bind_dn(), Some("cn=from-conf"));
        // One trailing CRLF/LF is trimmed, nothing else.
        assert_eq!(c.password.as_ref().unwrap().0.expose(), SECRET);
        assert_eq!(c.op_timeout, Some(Duration::from_millis(100)));
        assert_eq!(c.files(), [d.join("ldap.conf"), p.clone()]);
        // The missing bound keeps its default.
        assert_eq!(
            c.builder().probe_backoff_bounds(),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        c.builder().settings().unwrap();
    }

    #[test]
    fn toml_errors_name_file_line_and_key() {
        let cases: &[(&str, usize, &str)] = &[
            ("uri = [\"ldap://a\"]\nbogus = 1\n", 2, "bogus"),
            (
                "uri = [\"ldap://a\"]\nbind_password = \"x\"\n",
                2,
                "bind_password",
            ),
            (
                "uri = [\"ldap://a\"]\nmax_users_per_conn = \"many\"\n",
                2,
                "max_users_per_conn",
            ),
            (
                "uri = [\"ldap://a\"]\n\nmax_conns_per_server = 0\n",
                3,
                "max_conns_per_server",
            ),
            (
                "uri = [\"ldap://a\"]\nmax_conns_per_server = 99999999999\n",
                2,
                "max_conns_per_server",
            ),
            (
                "uri = [\"ldap://a\"]\nop_timeout_ms = -5\n",
                2,
                "op_timeout_ms",
            ),
            (
                "uri = [\"ldap://a\"]\nconnect_timeout_ms = 0\n",
                2,
                "connect_timeout_ms",
            ),
            ("uri = [\n  \"ldap://a\",\n  \"ftp://b\",\n]\n", 1, "uri"),
            ("uri = []\n", 1, "uri"),
            ("uri = [\"ldap://a\"]\nbind_dn = \"\"\n", 2, "bind_dn"),
            (
                "uri = [\"ldap://a\"]\nprobe_backoff_min_ms = 500\nprobe_backoff_max_ms = 10\n",
                3,
                "probe_backoff_max_ms",
            ),
            ("uri = [\"ldap://a\"]\nbind_dn = \"cn=a\"\n", 2, "bind_dn"),
            (
                "uri = [\"ldap://a\"]\nbind_password_file = \"pw\"\n",
                2,
                "bind_password_file",
            ),
            (
                "uri = [\"ldap://a\"]\nbind_dn = \"cn=a\"\nbind_password_file = \"nope\"\n",
                3,
                "bind_password_file",
            ),
        ];
        for (text, line, key) in cases {
            let (p, r) = toml_file(text);
            assert_at(&r.unwrap_err(), &p, *line, key);
        }
        let (p, r) = toml_file("uri = [\"ldap://a\"\n");
        match r.unwrap_err() {
            ConfigFileError::Syntax { path, line, .. }
            | ConfigFileError::BadValue { path, line, .. } => {
                assert_eq!(path, p);
                assert_eq!(line, 1);
            }
            other => panic!("{other:?}"),
        }
        let (p, r) = toml_file("ldap_conf = \"absent.conf\"\n");
        match r.unwrap_err() {
            ConfigFileError::Read { path, .. } => {
                assert_eq!(path, p.parent().unwrap().join("absent.conf"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn password_file_empty_unreadable_or_not_utf8() {
        let d = dir();
        let toml = "uri = [\"ldap://a\"]\nbind_dn = \"cn=a\"\nbind_password_file = \"pw\"\n";
        for (content, reason) in [
            (b"\n".as_slice(), "empty"),
            (b"".as_slice(), "empty"),
            (b"\xff\xfe-pw-Zebra-Quokka-4711".as_slice(), "not UTF-8"),
        ] {
            std::fs::write(d.join("pw"), content).unwrap();
            let p = write(&d, "ldapmux.toml", toml);
            let e = ConfigFile::read_toml(&p).unwrap_err();
            assert_at(&e, &p, 3, "bind_password_file");
            assert!(matches!(e, ConfigFileError::PasswordFile { .. }));
            assert!(e.to_string().contains(reason), "{e}");
            assert!(
                e.to_string().contains(&d.join("pw").display().to_string()),
                "{e}"
            );
        }
        // Only one trailing newline is removed.
        std::fs::write(d.join("pw"), format!("{SECRET}\n\n")).unwrap();
        let c = ConfigFile::read_toml(write(&d, "ldapmux.toml", toml)).unwrap();
        assert_eq!(c.password.unwrap().0.expose(), format!("{SECRET}\n"));
    }

    #[test]
    fn env_map_ldapconf_then_ldapuri() {
        let d = dir();
        let conf = write(&d, "ldap.conf", "URI ldap://from-conf\nBASE dc=env\n");
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = ConfigFile::from_env_map(&env(&[("LDAPCONF", conf.to_str().unwrap())])).unwrap();
        assert_eq!(c.servers(), [("ldap://from-conf", false)]);
        let c = ConfigFile::from_env_map(&env(&[
            ("LDAPCONF", conf.to_str().unwrap()),
            ("LDAPURI", "ldap://u1 ldap://u2"),
        ]))
        .unwrap();
        assert_eq!(c.servers(), [("ldap://u1", false), ("ldap://u2", false)]);
        assert_eq!(c.base(), Some("dc=env"));
        let c = ConfigFile::from_env_map(&env(&[("LDAPURI", "ldap://only")])).unwrap();
        assert_eq!(c.servers(), [("ldap://only", false)]);
        for (vars, var) in [
            (env(&[]), "LDAPCONF"),
            (env(&[("LDAPURI", "  ")]), "LDAPCONF"),
            (env(&[("LDAPURI", "http://x")]), "LDAPURI"),
        ] {
            match ConfigFile::from_env_map(&vars).unwrap_err() {
                ConfigFileError::Env { var: v, .. } => assert_eq!(v, var),
                other => panic!("{other:?}"),
            }
        }
        let e =
            ConfigFile::from_env_map(&env(&[("LDAPCONF", "/nonexistent/ldap.conf")])).unwrap_err();
        assert!(matches!(e, ConfigFileError::Read { .. }), "{e}");
    }
    #[test]
    fn dns_srv_keys_replace_the_uri_and_are_checked() {
        let d = dir();
        write(&d, "ldap.conf", "URI ldap://127.0.0.1:1\n");
        let p = write(
            &d,
            "ldapmux.toml",
            "ldap_conf = \"ldap.conf\"\ndns_srv = \"example.test\"\n\
             dns_srv_service = \"LDAPS\"\ndns_server = \"127.0.0.1:5353\"\n",
        );
        let cfg = ConfigFile::read_toml(&p).unwrap();
        assert_eq!(cfg.dns_srv(), Some("example.test"));
        assert!(cfg.servers().is_empty(), "DNS replaces URI");
        assert!(cfg.builder().uses_dns_srv());
        assert!(
            !ConfigFile::read_ldap_conf(d.join("ldap.conf"))
                .unwrap()
                .builder()
                .uses_dns_srv()
        );

        let (p, r) = toml_file("uri = [\"ldap://a\"]\ndns_srv = \"example.test\"\n");
        assert_at(&r.unwrap_err(), &p, 2, "dns_srv");
        let (p, r) = toml_file("dns_srv = \"example.test\"\ndns_srv_service = \"http\"\n");
        assert_at(&r.unwrap_err(), &p, 2, "dns_srv_service");
        let (p, r) = toml_file("dns_srv = \"example.test\"\ndns_server = \"localhost\"\n");
        assert_at(&r.unwrap_err(), &p, 2, "dns_server");
        let (p, r) = toml_file("uri = [\"ldap://a\"]\ndns_server = \"127.0.0.1:53\"\n");
        assert_at(&r.unwrap_err(), &p, 2, "dns_server");
        let (p, r) = toml_file("dns_srv = \" \"\n");
        assert_at(&r.unwrap_err(), &p, 1, "dns_srv");
    }
}
