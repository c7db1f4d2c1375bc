//! The match index: connections by (generation, server, credential, purpose,
//! referral), so that finding a connection for a user never scans the pool.

use std::collections::{BTreeMap, BTreeSet};

use crate::{ConnId, CredKey, GenId, Purpose, ServerId};

/// What a user and a shared connection must agree on (behaviours 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MatchKey {
    pub(crate) gen_id: GenId,
    pub(crate) server: ServerId,
    pub(crate) cred: CredKey,
    pub(crate) purpose: Purpose,
    pub(crate) referral: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Index {
    /// Open shared connections, least loaded first.
    open: BTreeMap<MatchKey, BTreeSet<(u32, ConnId)>>,
    /// Shared connections being opened, oldest first.
    connecting: BTreeMap<MatchKey, BTreeSet<ConnId>>,
}

impl Index {
    /// The least loaded open connection under `key` with fewer than `cap` users.
    pub(crate) fn least_loaded(&self, key: &MatchKey, cap: u32) -> Option<ConnId> {
        let (load, conn) = self.open.get(key)?.first()?;
        (*load < cap).then_some(*conn)
    }

    pub(crate) fn open_conns(&self, key: &MatchKey) -> impl Iterator<Item = ConnId> + '_ {
        self.open
            .get(key)
            .into_iter()
            .flat_map(|s| s.iter().map(|&(_, c)| c))
    }

    pub(crate) fn connecting(&self, key: &MatchKey) -> impl Iterator<Item = ConnId> + '_ {
        self.connecting
            .get(key)
            .into_iter()
            .flat_map(|s| s.iter().copied())
    }

    pub(crate) fn insert_open(&mut self, key: MatchKey, conn: ConnId, load: u32) {
        self.open.entry(key).or_default().insert((load, conn));
    }

    pub(crate) fn remove_open(&mut self, key: &MatchKey, conn: ConnId, load: u32) -> bool {
        let Some(set) = self.open.get_mut(key) else {
            return false;
        };
        let removed = set.remove(&(load, conn));
        if set.is_empty() {
            self.open.remove(key);
        }
        removed
    }

    pub(crate) fn set_load(&mut self, key: &MatchKey, conn: ConnId, from: u32, to: u32) {
        if let Some(set) = self.open.get_mut(key) {
            set.remove(&(from, conn));
            set.insert((to, conn));
        }
    }

    pub(crate) fn insert_connecting(&mut self, key: MatchKey, conn: ConnId) {
        self.connecting.entry(key).or_default().insert(conn);
    }

    pub(crate) fn remove_connecting(&mut self, key: &MatchKey, conn: ConnId) -> bool {
        let Some(set) = self.connecting.get_mut(key) else {
            return false;
        };
        let removed = set.remove(&conn);
        if set.is_empty() {
            self.connecting.remove(key);
        }
        removed
    }

    pub(crate) fn clear(&mut self) {
        self.open.clear();
        self.connecting.clear();
    }

    /// Every `(key, conn, load)` of open connections, for invariant checks.
    pub(crate) fn all_open(&self) -> impl Iterator<Item = (&MatchKey, ConnId, u32)> {
        self.open
            .iter()
            .flat_map(|(k, s)| s.iter().map(move |&(l, c)| (k, c, l)))
    }

    /// Every `(key, conn)` of opening connections, for invariant checks.
    pub(crate) fn all_connecting(&self) -> impl Iterator<Item = (&MatchKey, ConnId)> {
        self.connecting
            .iter()
            .flat_map(|(k, s)| s.iter().map(move |&c| (k, c)))
    }
}
