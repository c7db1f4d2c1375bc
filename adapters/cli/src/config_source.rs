//! Where a pool's configuration comes from: a file (TOML when its name ends
//! in `.toml`, an OpenLDAP `ldap.conf` otherwise) or the `LDAPCONF` /
//! `LDAPURI` environment variables — read exactly as the library reads them
//! ([`ConfigFile`]), so that what `check` and `status` show is what an
//! application using the same file would get.

use std::fmt;
use std::path::{Path, PathBuf};

use ldapmux::{ConfigFile, ConfigFileError};

/// A configuration to read, and to read again on SIGHUP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// An ldapmux TOML file ([`ConfigFile::read_toml`]).
    Toml(PathBuf),
    /// An OpenLDAP `ldap.conf` ([`ConfigFile::read_ldap_conf`]).
    LdapConf(PathBuf),
    /// `LDAPCONF` / `LDAPURI` ([`ConfigFile::from_env`]).
    Env,
}

impl ConfigSource {
    /// The source for `--config FILE`: TOML if the name ends in `.toml`
    /// (any case), `ldap.conf` syntax otherwise.
    pub fn file(path: impl Into<PathBuf>) -> ConfigSource {
        let path = path.into();
        if is_toml(&path) {
            ConfigSource::Toml(path)
        } else {
            ConfigSource::LdapConf(path)
        }
    }

    /// The source chosen on the command line: `--config FILE`, `--env`, or
    /// neither (`None`).
    pub fn from_args(config: Option<&Path>, env: bool) -> Option<ConfigSource> {
        match (config, env) {
            (Some(path), _) => Some(ConfigSource::file(path)),
            (None, true) => Some(ConfigSource::Env),
            (None, false) => None,
        }
    }

    /// Reads it (again). The error names the file, line and key.
    pub fn load(&self) -> Result<ConfigFile, ConfigFileError> {
        match self {
            ConfigSource::Toml(path) => ConfigFile::read_toml(path),
            ConfigSource::LdapConf(path) => ConfigFile::read_ldap_conf(path),
            ConfigSource::Env => ConfigFile::from_env(),
        }
    }
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Toml(p) => write!(f, "{} (ldapmux TOML)", p.display()),
            ConfigSource::LdapConf(p) => write!(f, "{} (ldap.conf)", p.display()),
            ConfigSource::Env => f.write_str("the environment (LDAPCONF / LDAPURI)"),
        }
    }
}

fn is_toml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_decides_the_syntax() {
        assert_eq!(
            ConfigSource::file("/etc/ldapmux/pool.TOML"),
            ConfigSource::Toml("/etc/ldapmux/pool.TOML".into())
        );
        assert_eq!(
            ConfigSource::file("/etc/ldap/ldap.conf"),
            ConfigSource::LdapConf("/etc/ldap/ldap.conf".into())
        );
        assert_eq!(ConfigSource::from_args(None, true), Some(ConfigSource::Env));
        assert_eq!(ConfigSource::from_args(None, false), None);
    }

    #[test]
    fn a_missing_file_is_a_typed_error_naming_it() {
        let err = ConfigSource::file("/nonexistent/ldapmux-x.toml")
            .load()
            .unwrap_err();
        assert!(matches!(err, ConfigFileError::Read { .. }), "{err:?}");
        assert!(err.to_string().starts_with("/nonexistent/ldapmux-x.toml:"));
    }
}
