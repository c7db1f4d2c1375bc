//! Server addresses: LDAP URLs checked at build time, so a typo fails
//! `build()` naming the URL instead of failing every connect later.

use std::fmt;

use crate::BuildError;

/// The transport of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `ldap://`: plain TCP, optionally upgraded with StartTLS.
    Ldap,
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldapi://`: a Unix domain socket (path %2F-encoded in the host part).
    Ldapi,
}

/// A validated server URL.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// The URL as given (the pool's server address, compared case-insensitively).
    text: String,
    scheme: Scheme,
    /// Host for `ldap`/`ldaps` (brackets of an IPv6 literal removed).
    host: String,
    port: u16,
}

impl ServerUrl {
    /// Parses and checks `text`: scheme `ldap`, `ldaps` or `ldapi`; a host
    /// for `ldap(s)`; no DN, attributes or extensions (a pool takes servers,
    /// not searches).
    pub fn parse(text: &str) -> Result<ServerUrl, BuildError> {
        let bad = |reason: &str| BuildError::InvalidUrl {
            url: redacted(text),
            reason: reason.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("empty URL"));
        }
        let parsed = url::Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
        let scheme = match parsed.scheme() {
            "ldap" => Scheme::Ldap,
            "ldaps" => Scheme::Ldaps,
            "ldapi" => Scheme::Ldapi,
            other => {
                return Err(BuildError::UnsupportedScheme {
                    url: redacted(text),
                    scheme: other.to_owned(),
                });
            }
        };
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
            return Err(bad(
                "a server URL must not carry a DN, attributes or extensions",
            ));
        }
        if parsed.username() != "" || parsed.password().is_some() {
            return Err(bad("credentials do not belong in a server URL"));
        }
        let host = parsed
            .host_str()
            .unwrap_or("")
            .trim_matches(['[', ']'])
            .to_owned();
        let port = match scheme {
            Scheme::Ldapi => {
                if parsed.port().is_some() {
                    return Err(bad("an ldapi:// URL has no port"));
                }
                0
            }
            Scheme::Ldap | Scheme::Ldaps => {
                if host.is_empty() {
                    return Err(bad("no host"));
                }
                parsed
                    .port()
                    .unwrap_or(if scheme == Scheme::Ldaps { 636 } else { 389 })
            }
        };
        Ok(ServerUrl {
            text: trimmed.to_owned(),
            scheme,
            host,
            port,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host (empty for `ldapi`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (0 for `ldapi`).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `text` with a `user:password@` part replaced by `<redacted>@`: a URL as
/// given may carry a password, and errors and `Debug` must never show one.
pub(crate) fn redacted(text: &str) -> String {
    let start = match text.find("://") {
        Some(i) => i + 3,
        None => text.find(':').map_or(0, |i| i + 1),
    };
    let rest = &text[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}<redacted>@{}", &text[..start], &rest[at + 1..]),
        None => text.to_owned(),
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_schemes_with_default_ports() {
        let u = ServerUrl::parse("ldap://127.0.0.1").unwrap();
        assert_eq!(
            (u.scheme(), u.host(), u.port()),
            (Scheme::Ldap, "127.0.0.1", 389)
        );
        let u = ServerUrl::parse("ldaps://localhost:1636/").unwrap();
        assert_eq!((u.scheme(), u.port()), (Scheme::Ldaps, 1636));
        assert_eq!(ServerUrl::parse("ldaps://h").unwrap().port(), 636);
        let u = ServerUrl::parse("ldapi://%2Ftmp%2Fslapd.sock").unwrap();
        assert_eq!(u.scheme(), Scheme::Ldapi);
        let u = ServerUrl::parse("ldap://[::1]:3890").unwrap();
        assert_eq!(u.host(), "::1");
    }

    #[test]
    fn rejects_what_is_not_a_server_naming_the_url() {
        for (text, needle) in [
            ("", "empty"),
            ("not a url", "not a url"),
            ("ldap://", "no host"),
            ("ldap://h:99999", "h:99999"),
            ("ldap://h/dc=example,dc=com", "DN"),
            ("ldap://h/??sub?(uid=x)", "DN"),
            ("ldap://user:pw@h", "credentials"),
            ("ldapi://%2Ftmp%2Fs:389", "no port"),
        ] {
            let err = ServerUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        let err = ServerUrl::parse("http://h").unwrap_err();
        assert!(
            matches!(err, BuildError::UnsupportedScheme { ref scheme, .. } if scheme == "http")
        );
        assert!(err.to_string().contains("http://h"));
    }

    #[test]
    fn a_password_in_a_url_never_shows_in_the_error() {
        for text in [
            "ldap://admin:s3cret-pw@h:389",
            "http://admin:s3cret-pw@h",
            "admin:s3cret-pw@h",
            "ldap://admin:s3cret-pw@",
        ] {
            let err = ServerUrl::parse(text).unwrap_err();
            assert!(
                !format!("{err} {err:?}").contains("s3cret"),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("<redacted>@"), "{text}: {err}");
        }
        assert_eq!(redacted("ldap://h:389/"), "ldap://h:389/");
    }
}
