//! Configuration files: an OpenLDAP `ldap.conf`, the `LDAPCONF` / `LDAPURI`
//! environment variables, and a TOML file that is a [`PoolConfig`] as
//! written. Each source gives some keys of a [`PoolConfig`]; later sources
//! override earlier ones key by key; [`PoolConfig::check`] judges the result
//! and its errors are mapped back to the file, line and key that gave the
//! value.

mod error;
mod ldap_conf;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

pub use error::ConfigFileError;

use crate::{BuildError, Password, PoolBuilder, PoolConfig, SrvService};

/// Where a key was given, for errors found after every source is read.
#[derive(Clone, Debug)]
enum Origin {
    File {
        path: PathBuf,
        line: usize,
        /// The key as written (`NETWORK_TIMEOUT`, `op_timeout`).
        key: String,
    },
    Env(&'static str),
}

impl Origin {
    fn bad(&self, reason: String) -> ConfigFileError {
        match self {
            Origin::File { path, line, key } => ConfigFileError::BadValue {
                path: path.clone(),
                line: *line,
                key: key.clone(),
                reason,
            },
            Origin::Env(var) => ConfigFileError::Env { var, reason },
        }
    }
    fn unsupported(&self, reason: &str) -> ConfigFileError {
        match self {
            Origin::File { path, line, key } => ConfigFileError::Unsupported {
                path: path.clone(),
                line: *line,
                key: key.clone(),
                reason: reason.to_owned(),
            },
            Origin::Env(var) => ConfigFileError::Env {
                var,
                reason: reason.to_owned(),
            },
        }
    }
    fn incomplete(&self, reason: String) -> ConfigFileError {
        match self {
            Origin::File { path, line, key } => ConfigFileError::Incomplete {
                path: path.clone(),
                line: *line,
                key: key.clone(),
                reason,
            },
            Origin::Env(var) => ConfigFileError::Env { var, reason },
        }
    }
}

/// A [`PoolConfig`] read from `ldap.conf`, the environment and/or a TOML
/// file, with the bind password read from its file, ready to build a pool
/// ([`ConfigFile::builder`]). Its `Debug` never shows the password.
///
/// Reading a file and building a pool are two steps with two error types:
/// [`ConfigFileError`] names the file, line and key of a value
/// [`PoolConfig::check`] refuses; the [`BuildError`] of
/// [`PoolBuilder::build`] then covers what only building can tell (no
/// server at all, an unreadable CA file).
///
/// # TOML
///
/// The file is a [`PoolConfig`] as written: its table lists every key, type
/// and default. One more key, `ldap_conf`, names an `ldap.conf` read first;
/// the TOML keys override it key by key (`dns_srv` also replaces `URI`).
/// Relative paths in a TOML file are relative to that file's directory.
///
/// # `ldap.conf`
///
/// One setting a line, `KEY value`; blank lines and lines starting with `#`
/// are skipped; keys are case-insensitive (as libldap); the value is the rest
/// of the line without surrounding white space. A key given twice: the last
/// one wins. `TLS_CACERT` is used as written (as libldap does).
///
/// | key | sets |
/// | --- | --- |
/// | `URI` | `uri` (space- or comma-separated URLs) |
/// | `BASE` | `base` (not a pool setting: operations take a base) |
/// | `BINDDN` | `bind_dn` (needs `bind_password_file` from the TOML file) |
/// | `SASL_MECH` | `sasl_mech`: `EXTERNAL` or `GSSAPI` (other mechanisms are refused) |
/// | `TLS_CERT`, `TLS_KEY` | `tls_cert_file`, `tls_key_file`: the client certificate of SASL EXTERNAL |
/// | `TLS_CACERT` | `tls_ca_file` |
/// | `TLS_REQCERT` | `tls_verify`: `never` is `false`; `demand`, `hard`, and also `allow`, `try` (treated as the stricter `demand`) are `true` |
/// | `NETWORK_TIMEOUT` | `connect_timeout` (whole seconds) |
/// | `TIMEOUT` | `op_timeout` (whole seconds) |
/// | `PAGESIZE` | `page_size`: entries per page, or `off` (nslcd.conf's name; libldap ignores it) |
/// | `REFERRALS` | nothing: `off` accepted; `on` refused (a search follows referrals only when it asks: `SearchOptions::follow_referrals`) |
///
/// Other `SASL_*` keys, `GSSAPI_*`, other `TLS_*` keys (CRLs,
/// cipher suites, …), `HOST`, `PORT`, `SIZELIMIT`, `TIMELIMIT`, `DEREF` and
/// the `KEEPALIVE_*` keys are refused with [`ConfigFileError::Unsupported`]
/// rather than ignored: a setting the file's author relies on never silently
/// has no effect. Any other key is [`ConfigFileError::UnknownKey`].
///
/// # Credentials
///
/// A bind DN without a password file, or a password file without a bind DN,
/// is an error ([`ConfigFileError::Incomplete`]): the pool never falls back
/// to an anonymous bind the file did not ask for. Passwords are never read
/// from `ldap.conf` or TOML values, only from the password file, and its
/// content never appears in a `Debug` output or an error.
#[derive(Clone, Default)]
pub struct ConfigFile {
    /// The keys the sources gave, as TOML values (`ldap.conf` keys
    /// translated), later sources overriding earlier ones.
    given: toml::Table,
    /// Where each key of `given` came from.
    origins: BTreeMap<String, Origin>,
    /// The defaults with `given` on top.
    config: PoolConfig,
    password: Option<Password>,
    files: Vec<PathBuf>,
}

/// The keys that make up the credential: a file giving either of the first
/// two gives the credential.
const CREDENTIAL_KEYS: [&str; 5] = [
    "bind_dn",
    "sasl_mech",
    "bind_password_file",
    "tls_cert_file",
    "tls_key_file",
];

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile")
            .field("files", &self.files)
            .field("config", &self.config)
            .field("password", &self.password)
            .finish()
    }
}

impl ConfigFile {
    /// Reads an OpenLDAP `ldap.conf`.
    pub fn read_ldap_conf(path: impl AsRef<Path>) -> Result<ConfigFile, ConfigFileError> {
        let mut cfg = ConfigFile::default();
        cfg.merge_ldap_conf(path.as_ref())?;
        cfg.finish()
    }

    /// Reads an ldapmux TOML file (and the `ldap.conf` it names, first).
    pub fn read_toml(path: impl AsRef<Path>) -> Result<ConfigFile, ConfigFileError> {
        let mut cfg = ConfigFile::default();
        cfg.merge_toml(path.as_ref())?;
        cfg.finish()
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
            let urls = split_uri_list(uri).map_err(|reason| ConfigFileError::Env {
                var: "LDAPURI",
                reason,
            })?;
            let list = urls.into_iter().map(toml::Value::String).collect();
            cfg.give("uri", toml::Value::Array(list), Origin::Env("LDAPURI"));
        }
        cfg.finish()
    }

    /// The configuration read, defaults included.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// The search base (`BASE` / `base`), if given. Not a pool setting:
    /// pass it to the operations.
    pub fn base(&self) -> Option<&str> {
        self.config.base.as_deref()
    }

    /// The bind DN, if given. Never the password.
    pub fn bind_dn(&self) -> Option<&str> {
        self.config.bind_dn.as_deref()
    }

    /// The servers in the order the pool tries them, each with whether it
    /// is preferred ([`PoolConfig::servers`]).
    pub fn servers(&self) -> Vec<(&str, bool)> {
        self.config.servers()
    }

    /// The domain whose SRV records give the servers (`dns_srv`), if set.
    pub fn dns_srv(&self) -> Option<&str> {
        self.config.dns_srv.as_deref()
    }

    /// Which SRV records (`dns_srv_service`; `ldap` unless given).
    pub fn dns_srv_service(&self) -> SrvService {
        self.config.dns_srv_service.unwrap_or_default()
    }

    /// The name server to ask (`dns_server`), if not the system's.
    pub fn dns_server(&self) -> Option<std::net::SocketAddr> {
        self.config.dns_server
    }

    /// The files read, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The password file (`bind_password_file`), if given.
    pub fn password_file(&self) -> Option<&PathBuf> {
        self.config.bind_password_file.as_ref()
    }

    /// The CA file (`TLS_CACERT` / `tls_ca_file`), if given.
    pub fn ca_file(&self) -> Option<&PathBuf> {
        self.config.tls_ca_file.as_ref()
    }

    /// A builder with the defaults and these settings.
    pub fn builder(&self) -> PoolBuilder {
        PoolBuilder::from_config(self.config.clone()).with_password(self.password.clone())
    }

    /// Builds the pool these settings describe: following DNS SRV
    /// ([`SrvPoolBuilder::build`](crate::SrvPoolBuilder::build)) when they
    /// name a `dns_srv` domain, with the listed servers otherwise. (Without
    /// the `dns-srv` feature a `dns_srv` domain is refused, naming the key.)
    pub async fn build(&self) -> Result<crate::Pool, BuildError> {
        #[cfg(feature = "dns-srv")]
        return match self.builder().into_dns_srv() {
            Ok(srv) => srv.build().await,
            Err(listed) => listed.build(),
        };
        #[cfg(not(feature = "dns-srv"))]
        self.builder().build()
    }

    /// Applies these settings to `b`: the keys the files give replace the
    /// builder's values; the others keep them.
    pub fn apply(&self, b: PoolBuilder) -> PoolBuilder {
        let mut table = b.config().to_table();
        let gives_servers = ["uri", "preferred", "dns_srv"]
            .iter()
            .any(|k| self.given.contains_key(*k));
        if gives_servers {
            for k in [
                "uri",
                "preferred",
                "dns_srv",
                "dns_srv_service",
                "dns_server",
            ] {
                table.remove(k);
            }
        }
        let gives_credential = CREDENTIAL_KEYS[..2]
            .iter()
            .any(|k| self.given.contains_key(*k));
        if gives_credential {
            // The file's credential replaces the builder's whole.
            for k in CREDENTIAL_KEYS {
                table.remove(k);
            }
        }
        for (k, v) in &self.config.to_table() {
            if self.given.contains_key(k) {
                table.insert(k.clone(), v.clone());
            }
        }
        let config = PoolConfig::deserialize(table)
            .expect("two valid configurations merge into a valid one");
        let b = b.with_config(config);
        if gives_credential {
            b.with_password(self.password.clone())
        } else {
            b
        }
    }

    /// Records `value` for `key`, overriding an earlier source.
    fn give(&mut self, key: &str, value: toml::Value, origin: Origin) {
        self.given.insert(key.to_owned(), value);
        self.origins.insert(key.to_owned(), origin);
    }

    /// The error for `e`, at the key that gave the value it is about, if a
    /// source gave it; `None` for an error about something no source gave
    /// (no server at all): building reports that.
    fn at(&self, e: &BuildError) -> Option<&Origin> {
        self.origins.get(e.field()?)
    }

    /// Builds the configuration from what was given, reads the password
    /// file and checks everything, errors naming where the value was given.
    fn finish(mut self) -> Result<ConfigFile, ConfigFileError> {
        // Every TOML value was deserialized alone as it was read, and the
        // ldap.conf and environment values are made by this module's own
        // parsers: together they always make a PoolConfig.
        self.config = PoolConfig::deserialize(self.given.clone())
            .expect("values checked one by one as they were read");
        if let Some(file) = &self.config.bind_password_file {
            let origin = &self.origins["bind_password_file"];
            let pw = crate::secret::read_password_file(file).map_err(|reason| match origin {
                Origin::File { path, line, key } => ConfigFileError::PasswordFile {
                    path: path.clone(),
                    line: *line,
                    key: key.clone(),
                    file: file.clone(),
                    reason,
                },
                Origin::Env(var) => ConfigFileError::Env { var, reason },
            })?;
            self.password = Some(pw);
        }
        if let Err(e) = self.config.check()
            && let Some(o) = self.at(&e)
        {
            return Err(o.bad(e.to_string()));
        }
        if let Err(e) = self.builder().credential_checked()
            && let Some(o) = self.at(&e)
        {
            let reason = match e {
                BuildError::InvalidField { reason, .. } => reason,
                other => other.to_string(),
            };
            return Err(o.incomplete(reason));
        }
        Ok(self)
    }

    fn merge_toml(&mut self, path: &Path) -> Result<(), ConfigFileError> {
        let text = read_text(path)?;
        let keys: BTreeMap<Spanned<String>, toml::Value> =
            toml::from_str(&text).map_err(|e| toml_error(path, &text, &e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let origin = |key: &Spanned<String>| Origin::File {
            path: path.to_owned(),
            line: line_of(&text, key.span().start),
            key: key.get_ref().clone(),
        };
        if let Some((key, value)) = keys.iter().find(|(k, _)| k.get_ref() == "ldap_conf") {
            let Some(conf) = value.as_str() else {
                return Err(origin(key).bad("expected a path (a string)".into()));
            };
            self.merge_ldap_conf(&dir.join(conf))?;
        }
        self.files.push(path.to_owned());
        let lists_servers = keys
            .keys()
            .any(|k| matches!(k.get_ref().as_str(), "uri" | "preferred"));
        for (key, value) in keys {
            let name = key.get_ref().as_str();
            if name == "ldap_conf" {
                continue;
            }
            let at = origin(&key);
            // Each key alone, so that an error names it.
            let mut one = toml::Table::new();
            one.insert(name.to_owned(), value.clone());
            if let Err(e) = PoolConfig::deserialize(one) {
                let msg = e.message().trim().to_owned();
                return Err(if msg.starts_with("unknown field") {
                    ConfigFileError::UnknownKey {
                        path: path.to_owned(),
                        line: line_of(&text, key.span().start),
                        key: name.to_owned(),
                    }
                } else {
                    at.bad(msg)
                });
            }
            let value = match (name, value) {
                ("uri" | "preferred", toml::Value::Array(a)) if a.is_empty() => {
                    return Err(at.bad("no URL".into()));
                }
                ("bind_password_file" | "tls_ca_file", toml::Value::String(p)) => {
                    toml::Value::String(dir.join(p).display().to_string())
                }
                (_, v) => v,
            };
            if name == "dns_srv" && !lists_servers {
                // DNS replaces URI from ldap.conf, as every TOML key overrides it.
                self.given.remove("uri");
                self.given.remove("preferred");
            }
            self.give(name, value, at);
        }
        Ok(())
    }
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

/// A space- or comma-separated list of URLs (`URI`, `LDAPURI`); the URLs
/// themselves are judged by [`PoolConfig::check`].
fn split_uri_list(value: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err("no URL".into());
    }
    Ok(urls)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// A TOML syntax error as a typed error, with the line from its span.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigFileError {
    ConfigFileError::Syntax {
        path: path.to_owned(),
        line: line_of(text, e.span().map_or(0, |s| s.start)),
        reason: e.message().trim().to_owned(),
    }
}

#[cfg(test)]
mod tests;
