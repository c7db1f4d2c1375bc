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

/// Open connections of one key, bucketed by load so that taking the least
/// loaded one and moving a connection between loads are O(1).
#[derive(Clone, Debug, Default)]
struct Buckets {
    /// `by_load[l]`: connections with `l` users. Empty buckets are kept (at
    /// most the user cap + 1 of them), so moving a connection one load up or
    /// down never walks or reallocates the table.
    by_load: Vec<Vec<ConnId>>,
    /// The lowest non-empty bucket (0 if none).
    min: usize,
    len: usize,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    open: BTreeMap<MatchKey, Buckets>,
    /// Position of each open connection in its bucket, by connection slot.
    pos: Vec<u32>,
    /// Shared connections being opened, oldest first.
    connecting: BTreeMap<MatchKey, BTreeSet<ConnId>>,
}

impl Buckets {
    fn push(&mut self, pos: &mut Vec<u32>, conn: ConnId, load: u32) {
        let l = load as usize;
        if self.by_load.len() <= l {
            self.by_load.resize_with(l + 1, Vec::new);
        }
        let slot = conn.slot() as usize;
        if pos.len() <= slot {
            pos.resize(slot + 1, 0);
        }
        pos[slot] = self.by_load[l].len() as u32;
        self.by_load[l].push(conn);
        if self.len == 0 || l < self.min {
            self.min = l;
        }
        self.len += 1;
    }

    fn remove(&mut self, pos: &mut [u32], conn: ConnId, load: u32) -> bool {
        let l = load as usize;
        let Some(bucket) = self.by_load.get_mut(l) else {
            return false;
        };
        let p = pos.get(conn.slot() as usize).copied().unwrap_or(u32::MAX) as usize;
        if bucket.get(p) != Some(&conn) {
            return false;
        }
        bucket.swap_remove(p);
        if let Some(&moved) = bucket.get(p) {
            pos[moved.slot() as usize] = p as u32;
        }
        self.len -= 1;
        if self.len == 0 {
            self.min = 0;
        } else {
            while self.by_load[self.min].is_empty() {
                self.min += 1;
            }
        }
        true
    }

    fn iter(&self) -> impl Iterator<Item = (u32, ConnId)> + '_ {
        self.by_load
            .iter()
            .enumerate()
            .flat_map(|(l, b)| b.iter().map(move |&c| (l as u32, c)))
    }
}

/// Equality and hashing see only which connections are under which key with
/// which load, not the buckets' layout, which depends on history.
impl Index {
    fn canonical(&self) -> impl Iterator<Item = (MatchKey, Vec<(u32, ConnId)>)> + '_ {
        self.open.iter().map(|(k, b)| {
            let mut v: Vec<_> = b.iter().collect();
            v.sort_unstable();
            (*k, v)
        })
    }
}

impl PartialEq for Index {
    fn eq(&self, other: &Self) -> bool {
        self.connecting == other.connecting && self.canonical().eq(other.canonical())
    }
}

impl Eq for Index {}

impl std::hash::Hash for Index {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.connecting.hash(state);
        for entry in self.canonical() {
            entry.hash(state);
        }
    }
}

impl Index {
    /// The least loaded open connection under `key` with fewer than `cap`
    /// users; among equally loaded ones the lowest id, so that the choice
    /// depends only on what equality sees, never on the buckets' layout (the
    /// models merge states that are equal: a layout-dependent choice would
    /// hide successors from them).
    pub(crate) fn least_loaded(&self, key: &MatchKey, cap: u32) -> Option<ConnId> {
        let b = self.open.get(key)?;
        if b.len == 0 || b.min >= cap as usize {
            return None;
        }
        b.by_load[b.min].iter().min().copied()
    }

    /// Open connections under `key`.
    pub(crate) fn open_count(&self, key: &MatchKey) -> usize {
        self.open.get(key).map_or(0, |b| b.len)
    }

    /// Open connections under `key`, lowest id first (an order independent
    /// of the buckets' layout, as for [`Index::least_loaded`]).
    pub(crate) fn open_conns(&self, key: &MatchKey) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .open
            .get(key)
            .into_iter()
            .flat_map(|b| b.iter().map(|(_, c)| c))
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Whether any connection under `key` is open.
    pub(crate) fn has_open(&self, key: &MatchKey) -> bool {
        self.open_count(key) > 0
    }

    pub(crate) fn connecting(&self, key: &MatchKey) -> impl Iterator<Item = ConnId> + '_ {
        self.connecting
            .get(key)
            .into_iter()
            .flat_map(|s| s.iter().copied())
    }

    pub(crate) fn insert_open(&mut self, key: MatchKey, conn: ConnId, load: u32) {
        self.open
            .entry(key)
            .or_default()
            .push(&mut self.pos, conn, load);
    }

    pub(crate) fn remove_open(&mut self, key: &MatchKey, conn: ConnId, load: u32) -> bool {
        let Some(b) = self.open.get_mut(key) else {
            return false;
        };
        let removed = b.remove(&mut self.pos, conn, load);
        if b.len == 0 {
            self.open.remove(key);
        }
        removed
    }

    pub(crate) fn set_load(&mut self, key: &MatchKey, conn: ConnId, from: u32, to: u32) {
        if let Some(b) = self.open.get_mut(key)
            && b.remove(&mut self.pos, conn, from)
        {
            b.push(&mut self.pos, conn, to);
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
        self.pos.clear();
        self.connecting.clear();
    }

    /// Every `(key, conn, load)` of open connections, for invariant checks.
    pub(crate) fn all_open(&self) -> impl Iterator<Item = (&MatchKey, ConnId, u32)> {
        self.open
            .iter()
            .flat_map(|(k, s)| s.iter().map(move |(l, c)| (k, c, l)))
    }

    /// Every `(key, conn)` of opening connections, for invariant checks.
    pub(crate) fn all_connecting(&self) -> impl Iterator<Item = (&MatchKey, ConnId)> {
        self.connecting
            .iter()
            .flat_map(|(k, s)| s.iter().map(move |&c| (k, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::SlabId;

    fn key() -> MatchKey {
        MatchKey {
            gen_id: crate::GenId::new(0, 0),
            server: ServerId(0),
            cred: CredKey::ANONYMOUS,
            purpose: Purpose::Read,
            referral: false,
        }
    }

    #[test]
    fn the_least_loaded_connection_with_room_is_chosen() {
        let mut index = Index::default();
        let (a, b) = (ConnId::new(0, 0), ConnId::new(1, 0));
        index.insert_open(key(), a, 2);
        index.insert_open(key(), b, 1);
        assert_eq!(index.least_loaded(&key(), 3), Some(b));
        index.set_load(&key(), b, 1, 3);
        assert_eq!(index.least_loaded(&key(), 3), Some(a));
        index.set_load(&key(), a, 2, 3);
        assert_eq!(
            index.least_loaded(&key(), 3),
            None,
            "every connection is full"
        );
        assert!(
            !index.remove_open(&key(), a, 2),
            "a wrong load finds nothing"
        );
        assert!(index.remove_open(&key(), a, 3));
        assert!(index.remove_open(&key(), b, 3));
        assert_eq!(
            index,
            Index::default(),
            "an emptied index equals a fresh one"
        );
    }

    #[test]
    fn equality_ignores_bucket_layout() {
        let (a, b) = (ConnId::new(0, 0), ConnId::new(1, 0));
        let mut x = Index::default();
        x.insert_open(key(), a, 0);
        x.insert_open(key(), b, 0);
        let mut y = Index::default();
        y.insert_open(key(), b, 0);
        y.insert_open(key(), a, 0);
        assert_eq!(x, y);
    }

    /// Equal indexes must answer alike, whatever their layout: the models
    /// keep one state of each equality class and explore only its successors.
    #[test]
    fn equal_indexes_with_different_layouts_choose_alike() {
        let ids: Vec<ConnId> = (0..4).map(|i| ConnId::new(i, 0)).collect();
        let mut x = Index::default();
        let mut y = Index::default();
        for &c in &ids {
            x.insert_open(key(), c, 1);
        }
        for &c in ids.iter().rev() {
            y.insert_open(key(), c, 1);
        }
        // Moves that swap_remove in different places in the two layouts.
        x.set_load(&key(), ids[1], 1, 2);
        x.set_load(&key(), ids[1], 2, 1);
        y.set_load(&key(), ids[2], 1, 2);
        y.set_load(&key(), ids[2], 2, 1);
        assert_eq!(x, y);
        assert_eq!(x.least_loaded(&key(), 3), Some(ids[0]));
        assert_eq!(y.least_loaded(&key(), 3), Some(ids[0]));
        assert_eq!(x.open_conns(&key()), ids);
        assert_eq!(y.open_conns(&key()), ids);
    }
    fn hash_of(index: &Index) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        index.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_indexes_hash_alike_and_any_difference_in_content_shows() {
        let (a, b) = (ConnId::new(0, 0), ConnId::new(1, 0));
        let mut x = Index::default();
        x.insert_open(key(), a, 1);
        x.insert_connecting(key(), b);
        let mut y = x.clone();
        assert_eq!(x, y);
        assert_eq!(hash_of(&x), hash_of(&y));

        // Same connecting set, a different load on the open connection.
        y.set_load(&key(), a, 1, 2);
        assert_ne!(x, y, "a load change is a different state");
        assert_ne!(hash_of(&x), hash_of(&y));
        y.set_load(&key(), a, 2, 1);
        assert_eq!(x, y);

        // Same open connections, a different connecting set.
        y.remove_connecting(&key(), b);
        assert_ne!(
            x, y,
            "a connection that stopped opening is a different state"
        );
        assert_ne!(hash_of(&x), hash_of(&y));

        // Same connecting set, no open connection.
        let mut z = x.clone();
        assert!(z.remove_open(&key(), a, 1));
        assert_ne!(x, z, "an open connection that went is a different state");
        assert_ne!(hash_of(&x), hash_of(&z));
    }

    #[test]
    fn the_minimum_load_moves_up_past_emptied_buckets() {
        let (a, b, c) = (ConnId::new(0, 0), ConnId::new(1, 0), ConnId::new(2, 0));
        let mut index = Index::default();
        index.insert_open(key(), a, 0);
        index.insert_open(key(), b, 3);
        index.insert_open(key(), c, 5);
        assert_eq!(index.least_loaded(&key(), 10), Some(a));
        // a leaves load 0 for 4: the minimum skips the empty buckets 0..=2 to b.
        index.set_load(&key(), a, 0, 4);
        assert_eq!(index.least_loaded(&key(), 10), Some(b));
        assert_eq!(index.least_loaded(&key(), 3), None, "b is at the cap");
        index.set_load(&key(), b, 3, 6);
        assert_eq!(index.least_loaded(&key(), 10), Some(a));
        index.set_load(&key(), a, 4, 7);
        assert_eq!(index.least_loaded(&key(), 10), Some(c));
        assert_eq!(index.least_loaded(&key(), 5), None);
    }
}
