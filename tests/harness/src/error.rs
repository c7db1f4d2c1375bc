//! The harness's error type.

use std::path::PathBuf;

/// Everything that can go wrong while running slapd or asking it questions.
///
/// Every variant's `Display` says what was attempted and what was seen, so a test
/// that fails with `.unwrap()` or `?` prints a message that can be acted upon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The OpenLDAP server binaries are not installed.
    #[error(
        "slapd not found at {}: install it with apt-get install -y slapd ldap-utils (make test does this)",
        .path.display()
    )]
    SlapdMissing {
        /// The path that was looked at.
        path: PathBuf,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// slapd (or slapadd) did not come up; `output` is what it printed.
    #[error("{reason}\n--- slapd output ---\n{output}\n--- end of slapd output ---")]
    Start {
        /// Why the start was judged to have failed.
        reason: String,
        /// slapd's (or slapadd's) stderr and stdout for this attempt, possibly truncated.
        output: String,
    },
    /// An LDAP operation of the harness itself (monitor query, entry count) failed.
    #[error("{context}: {source}")]
    Ldap {
        /// What the harness was doing.
        context: String,
        /// The ldap3 error (boxed: it is large).
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// A bounded wait ran out; the message names the last value or error seen.
    #[error("{0}")]
    Timeout(String),
    /// slapd answered, but not in the shape the harness expected.
    #[error("{0}")]
    Unexpected(String),
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> HarnessError {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn ldap(context: impl Into<String>, source: ldap3::LdapError) -> HarnessError {
        HarnessError::Ldap {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// The LDAP result code, if this is an LDAP error carrying one (e.g. 32,
    /// noSuchObject).
    pub fn ldap_result_code(&self) -> Option<u32> {
        match self {
            HarnessError::Ldap { source, .. } => match source.as_ref() {
                ldap3::LdapError::LdapResult { result } => Some(result.rc),
                _ => None,
            },
            _ => None,
        }
    }
}
