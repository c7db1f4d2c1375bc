//! The credential table: live connections bound with, and users attached
//! under, each credential. An entry lives while either count is non-zero.

use std::collections::BTreeMap;

use crate::CredKey;

/// The counts of one credential.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct CredCount {
    pub(crate) conns: u32,
    pub(crate) users: u32,
}

/// Credentials with live connections or users.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Creds {
    counts: BTreeMap<CredKey, CredCount>,
}

impl Creds {
    pub(crate) fn conn_added(&mut self, cred: CredKey) {
        self.counts.entry(cred).or_default().conns += 1;
    }

    pub(crate) fn conn_removed(&mut self, cred: CredKey) {
        self.dec(cred, |c| &mut c.conns);
    }

    pub(crate) fn user_added(&mut self, cred: CredKey) {
        self.counts.entry(cred).or_default().users += 1;
    }

    pub(crate) fn user_removed(&mut self, cred: CredKey) {
        self.dec(cred, |c| &mut c.users);
    }

    fn dec(&mut self, cred: CredKey, field: impl FnOnce(&mut CredCount) -> &mut u32) {
        if let Some(c) = self.counts.get_mut(&cred) {
            *field(c) -= 1;
            if c.users == 0 && c.conns == 0 {
                self.counts.remove(&cred);
            }
        }
    }

    pub(crate) fn contains(&self, cred: &CredKey) -> bool {
        self.counts.contains_key(cred)
    }

    /// Every credential with its counts, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&CredKey, &CredCount)> {
        self.counts.iter()
    }

    pub(crate) fn clear(&mut self) {
        self.counts.clear();
    }
}
