//! Bind credentials and the table that gives each distinct one its own
//! [`CredKey`], the only thing the core ever sees of a credential.

use std::fmt;
use std::sync::Mutex;

use ldapmux_core::CredKey;

use serde::{Deserialize, Serialize};

use crate::url::{Scheme, ServerUrl};
use crate::{BuildError, ClientCert, Password};

/// What a pooled connection is bound with.
///
/// Two credentials share connections only if they are the same identity:
/// the same DN and password, the same mechanism and client certificate.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credential {
    /// No bind (the connection stays anonymous).
    #[default]
    Anonymous,
    /// A simple bind with a DN and a password.
    Simple {
        /// The bind DN.
        dn: String,
        /// The password.
        password: Password,
    },
    /// A SASL EXTERNAL bind (RFC 4422 appendix A): the server takes the
    /// identity the transport established. With `client_cert`, the TLS
    /// client certificate presented on `ldaps://` or StartTLS connections;
    /// without, the process's Unix user and group on `ldapi://` (slapd:
    /// `gidNumber=G+uidNumber=U,cn=peercred,cn=external,cn=auth`).
    SaslExternal {
        /// The client certificate (`None`: the peer credentials of an
        /// `ldapi://` socket).
        client_cert: Option<ClientCert>,
    },
    /// A SASL GSSAPI bind (Kerberos V5, the `gssapi` feature) to the
    /// service `ldap/<server host>`, with the Kerberos credentials of the
    /// process environment (`KRB5_CLIENT_KTNAME`, `KRB5CCNAME`: see
    /// docs/security.md). Connections are retired before the credentials'
    /// tickets end.
    #[cfg(feature = "gssapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gssapi")))]
    Gssapi {
        /// The client principal (`None`: the default one of the keytab or
        /// credential cache).
        principal: Option<String>,
    },
}

/// A SASL mechanism a pool can bind with (the `sasl_mech` configuration
/// key, `SASL_MECH` in `ldap.conf`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SaslMech {
    /// `EXTERNAL`: the TLS client certificate (`tls_cert_file`,
    /// `tls_key_file`) or, on `ldapi://`, the Unix peer credentials.
    #[serde(rename = "EXTERNAL", alias = "external")]
    External,
    /// `GSSAPI`: Kerberos V5 (the `gssapi` feature of ldapmux).
    #[serde(rename = "GSSAPI", alias = "gssapi")]
    Gssapi,
}

impl SaslMech {
    /// The mechanism's IANA name (`EXTERNAL`, `GSSAPI`).
    pub fn name(self) -> &'static str {
        match self {
            SaslMech::External => "EXTERNAL",
            SaslMech::Gssapi => "GSSAPI",
        }
    }
}

impl fmt::Display for SaslMech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Credential {
    /// A simple bind credential.
    pub fn simple(dn: impl Into<String>, password: impl Into<Password>) -> Self {
        Credential::Simple {
            dn: dn.into(),
            password: password.into(),
        }
    }

    /// SASL EXTERNAL with a TLS client certificate (servers `ldaps://`, or
    /// `ldap://` with StartTLS).
    pub fn sasl_external_tls(client_cert: ClientCert) -> Self {
        Credential::SaslExternal {
            client_cert: Some(client_cert),
        }
    }

    /// SASL EXTERNAL with the process's Unix credentials (servers `ldapi://`).
    pub fn sasl_external_peer() -> Self {
        Credential::SaslExternal { client_cert: None }
    }

    /// SASL GSSAPI as `principal` (`None`: the default principal).
    #[cfg(feature = "gssapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gssapi")))]
    pub fn gssapi(principal: Option<String>) -> Self {
        Credential::Gssapi { principal }
    }

    /// The bind DN of a simple bind, or `None` (anonymous, SASL: the server
    /// decides the identity; [`Pool::whoami`](crate::Pool::whoami) tells).
    /// Never the password.
    pub fn dn(&self) -> Option<&str> {
        match self {
            Credential::Simple { dn, .. } => Some(dn),
            _ => None,
        }
    }

    /// The SASL mechanism, or `None` (anonymous, simple bind).
    pub fn sasl_mech(&self) -> Option<SaslMech> {
        match self {
            Credential::SaslExternal { .. } => Some(SaslMech::External),
            #[cfg(feature = "gssapi")]
            Credential::Gssapi { .. } => Some(SaslMech::Gssapi),
            _ => None,
        }
    }

    /// The TLS client certificate this presents (SASL EXTERNAL over TLS).
    pub(crate) fn client_cert(&self) -> Option<&ClientCert> {
        match self {
            Credential::SaslExternal { client_cert } => client_cert.as_ref(),
            _ => None,
        }
    }

    /// Who this binds as, in words for errors and logs: the DN, or the
    /// mechanism and what it presents (never a secret).
    pub(crate) fn describe(&self) -> String {
        match self {
            Credential::Anonymous => "anonymous".into(),
            Credential::Simple { dn, .. } => dn.clone(),
            Credential::SaslExternal {
                client_cert: Some(c),
            } => match c.cert_file() {
                Some(file) => format!("SASL EXTERNAL (client certificate {})", file.display()),
                None => "SASL EXTERNAL (client certificate)".into(),
            },
            Credential::SaslExternal { client_cert: None } => {
                "SASL EXTERNAL (Unix peer credentials)".into()
            }
            #[cfg(feature = "gssapi")]
            Credential::Gssapi { principal } => format!(
                "SASL GSSAPI as {}",
                principal.as_deref().unwrap_or("the default principal")
            ),
        }
    }

    fn same_as(&self, other: &Credential) -> bool {
        match (self, other) {
            (Credential::Anonymous, Credential::Anonymous) => true,
            (
                Credential::Simple { dn: a, password: p },
                Credential::Simple { dn: b, password: q },
            ) => a == b && p.ct_eq(q),
            (
                Credential::SaslExternal { client_cert: a },
                Credential::SaslExternal { client_cert: b },
            ) => match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_as(b),
                _ => false,
            },
            #[cfg(feature = "gssapi")]
            (Credential::Gssapi { principal: a }, Credential::Gssapi { principal: b }) => a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Anonymous => f.write_str("Anonymous"),
            Credential::Simple { dn, password } => f
                .debug_struct("Simple")
                .field("dn", dn)
                .field("password", password)
                .finish(),
            Credential::SaslExternal { client_cert } => f
                .debug_struct("SaslExternal")
                .field("client_cert", client_cert)
                .finish(),
            #[cfg(feature = "gssapi")]
            Credential::Gssapi { principal } => f
                .debug_struct("Gssapi")
                .field("principal", principal)
                .finish(),
        }
    }
}

#[cfg(not(feature = "gssapi"))]
pub(crate) fn gssapi_unavailable() -> BuildError {
    BuildError::InvalidField {
        field: "sasl_mech",
        reason: "GSSAPI needs the `gssapi` feature of ldapmux".into(),
    }
}

impl Credential {
    /// Whether every server carries what this binds with: a client
    /// certificate needs TLS, the peer credentials of EXTERNAL need `ldapi://`,
    /// GSSAPI a host name.
    pub(crate) fn check_transport(
        &self,
        urls: &[ServerUrl],
        starttls: bool,
    ) -> Result<(), BuildError> {
        let cred = self;
        #[cfg(feature = "gssapi")]
        if let Credential::Gssapi { .. } = cred {
            return match urls.iter().find(|u| u.scheme() == Scheme::Ldapi) {
                Some(url) => Err(BuildError::InvalidField {
                    field: "sasl_mech",
                    reason: format!(
                        "GSSAPI names its service ldap/<host>, and {url} has no host: \
                     use ldap:// or ldaps://"
                    ),
                }),
                None => Ok(()),
            };
        }
        let Credential::SaslExternal { client_cert } = cred else {
            return Ok(());
        };
        let misfit = |url: &ServerUrl, reason: &str| BuildError::InvalidField {
            field: "sasl_mech",
            reason: format!("SASL EXTERNAL {reason}: {url} does not"),
        };
        for url in urls {
            match (client_cert, url.scheme()) {
                (Some(_), Scheme::Ldaps) | (None, Scheme::Ldapi) => {}
                (Some(_), Scheme::Ldap) if starttls => {}
                (Some(_), _) => {
                    return Err(misfit(
                        url,
                        "with a client certificate needs TLS (ldaps://, or ldap:// with starttls)",
                    ));
                }
                (None, _) => {
                    return Err(misfit(
                        url,
                        "without a client certificate binds with the Unix peer credentials \
                     of an ldapi:// socket (give tls_cert_file and tls_key_file for TLS)",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Gives each distinct credential a key. Two credentials get the same key
/// only if both DN and password are equal, so a user never shares a
/// connection bound with another DN, nor with the same DN under another
/// password (a wrong password never rides on a right one's connection);
/// SASL EXTERNAL credentials only with the same client certificate chain
/// (or both without one: the process's own peer credentials).
/// Entries live as long as the pool: the set of credentials a service binds
/// with is small and fixed.
#[derive(Default)]
pub(crate) struct CredTable {
    entries: Mutex<Vec<Credential>>,
}

impl CredTable {
    /// The key of `cred`, registering it if new. Anonymous is
    /// [`CredKey::ANONYMOUS`]; others are numbered from 1.
    pub(crate) fn key(&self, cred: &Credential) -> CredKey {
        if matches!(cred, Credential::Anonymous) {
            return CredKey::ANONYMOUS;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let index = match entries.iter().position(|c| c.same_as(cred)) {
            Some(i) => i,
            None => {
                entries.push(cred.clone());
                entries.len() - 1
            }
        };
        CredKey(index as u64 + 1)
    }

    /// The bind DN of the credential behind `key` (`None`: anonymous or
    /// unknown), without copying its password.
    pub(crate) fn dn(&self, key: CredKey) -> Option<String> {
        if key == CredKey::ANONYMOUS {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(usize::try_from(key.0 - 1).ok()?)
            .and_then(|c| c.dn().map(str::to_owned))
    }

    /// The credential behind `key`.
    pub(crate) fn get(&self, key: CredKey) -> Option<Credential> {
        if key == CredKey::ANONYMOUS {
            return Some(Credential::Anonymous);
        }
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(usize::try_from(key.0 - 1).ok()?).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_dn_or_password_gets_a_distinct_key() {
        let table = CredTable::default();
        let a = table.key(&Credential::simple("uid=a", "pw"));
        let a2 = table.key(&Credential::simple("uid=a", "pw"));
        let a_wrong = table.key(&Credential::simple("uid=a", "other"));
        let b = table.key(&Credential::simple("uid=b", "pw"));
        assert_eq!(a, a2);
        assert_ne!(a, a_wrong);
        assert_ne!(a, b);
        assert_ne!(a, CredKey::ANONYMOUS);
        assert_eq!(table.key(&Credential::Anonymous), CredKey::ANONYMOUS);
        assert_eq!(
            table
                .get(b)
                .and_then(|c| c.dn().map(str::to_owned))
                .as_deref(),
            Some("uid=b")
        );
    }

    #[test]
    fn sasl_external_keys_follow_the_client_certificate() {
        let table = CredTable::default();
        let cert = |cn| {
            let (c, k) = crate::tls::tests::self_signed(cn);
            ClientCert::from_pem(c.as_bytes(), k.as_bytes()).unwrap()
        };
        let (a, b) = (cert("a"), cert("b"));
        let ka = table.key(&Credential::sasl_external_tls(a.clone()));
        assert_eq!(ka, table.key(&Credential::sasl_external_tls(a)));
        let kb = table.key(&Credential::sasl_external_tls(b));
        let peer = table.key(&Credential::sasl_external_peer());
        assert_ne!(ka, kb, "two client certificates never share");
        assert_ne!(ka, peer);
        assert_eq!(peer, table.key(&Credential::sasl_external_peer()));
        assert_ne!(peer, CredKey::ANONYMOUS);
        assert_eq!(
            table.get(kb).and_then(|c| c.sasl_mech()),
            Some(SaslMech::External)
        );
        assert_eq!(table.dn(kb), None, "SASL has no bind DN");
    }

    #[test]
    fn debug_shows_the_dn_but_not_the_password() {
        let c = Credential::simple("uid=alice,dc=example", "s3cr3t-pw");
        let shown = format!("{c:?}");
        assert!(shown.contains("uid=alice"));
        assert!(!shown.contains("s3cr3t"));
    }
}
