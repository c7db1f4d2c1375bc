//! Bind credentials and the table that gives each distinct one its own
//! [`CredKey`], the only thing the core ever sees of a credential.

use std::fmt;
use std::sync::Mutex;

use ldapmux_core::CredKey;

use crate::Password;

/// What a pooled connection is bound with.
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
}

impl Credential {
    /// A simple bind credential.
    pub fn simple(dn: impl Into<String>, password: impl Into<Password>) -> Self {
        Credential::Simple {
            dn: dn.into(),
            password: password.into(),
        }
    }

    /// The bind DN, or `None` for anonymous. Never the password.
    pub fn dn(&self) -> Option<&str> {
        match self {
            Credential::Anonymous => None,
            Credential::Simple { dn, .. } => Some(dn),
        }
    }

    fn same_as(&self, other: &Credential) -> bool {
        match (self, other) {
            (Credential::Anonymous, Credential::Anonymous) => true,
            (
                Credential::Simple { dn: a, password: p },
                Credential::Simple { dn: b, password: q },
            ) => a == b && p.ct_eq(q),
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
        }
    }
}

/// Gives each distinct credential a key. Two credentials get the same key
/// only if both DN and password are equal, so a user never shares a
/// connection bound with another DN, nor with the same DN under another
/// password (a wrong password never rides on a right one's connection).
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
    fn debug_shows_the_dn_but_not_the_password() {
        let c = Credential::simple("uid=alice,dc=example", "s3cr3t-pw");
        let shown = format!("{c:?}");
        assert!(shown.contains("uid=alice"));
        assert!(!shown.contains("s3cr3t"));
    }
}
