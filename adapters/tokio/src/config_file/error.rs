//! [`ConfigFileError`]: what is wrong with a configuration file, named by
//! file, line and key.

use std::path::PathBuf;

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
