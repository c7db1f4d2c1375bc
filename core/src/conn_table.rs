//! The connection table: every live connection, and the match index of the
//! shared ones, kept in step.
//!
//! The index holds each shared connection that is opening under its key and
//! each open one under its key and load (its users). Every change that
//! moves a connection in the index (it is added, opens, gains or loses a
//! user, stops taking users, moves generation, goes) is a method here, so
//! the two never disagree. Only shared references to a [`Conn`] leave this
//! table; the index is read through [`Conns::index`].

use crate::index::{Index, MatchKey};
use crate::slab::Slab;
use crate::state::{Conn, ConnState};
use crate::{CloseReason, ConnError, ConnId, GenId, Instant, Purpose, UserId};

/// The live connections and their match index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Conns {
    slab: Slab<ConnId, Conn>,
    index: Index,
}

/// What a connection that opened was waiting with.
pub(crate) struct Opened {
    pub(crate) waiters: Vec<UserId>,
    pub(crate) deadline: Instant,
    pub(crate) race_at: Option<Instant>,
    pub(crate) rival: Option<ConnId>,
}

/// The timers of an open connection that stopped taking users.
pub(crate) struct Retired {
    pub(crate) opened: Instant,
    pub(crate) idle_timer: Option<Instant>,
    /// When it was to retire for its credential's expiry, if reported.
    pub(crate) retire_at: Option<Instant>,
}

fn key(c: &Conn) -> MatchKey {
    MatchKey {
        gen_id: c.gen_id,
        server: c.server,
        cred: c.cred,
        purpose: c.purpose,
        referral: c.referral,
    }
}

impl Conns {
    pub(crate) fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slab.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slab.iter()
    }

    /// The match index, to read.
    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// The match key of live connection `id`.
    pub(crate) fn key_of(&self, id: ConnId) -> MatchKey {
        key(self.slab.get(id).expect("conn exists"))
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id)
    }

    /// Adds `conn` (opening); a shared one enters the index.
    pub(crate) fn insert(&mut self, conn: Conn) -> ConnId {
        let k = key(&conn);
        let id = self.slab.insert(conn);
        if k.purpose != Purpose::Private {
            self.index.insert_connecting(k, id);
        }
        id
    }

    /// Opening `id` opened at `now`: open with no user, idle since now; a
    /// shared one moves in the index to load 0. Returns what it waited with,
    /// or, if it was not opening, the name of its state.
    pub(crate) fn open(&mut self, id: ConnId, now: Instant) -> Result<Opened, &'static str> {
        let conn = self.slab.get_mut(id).expect("caller checked");
        let ConnState::Connecting {
            waiters,
            deadline,
            race_at,
            rival,
        } = &mut conn.state
        else {
            return Err(conn.state.name());
        };
        let opened = Opened {
            waiters: std::mem::take(waiters),
            deadline: *deadline,
            race_at: *race_at,
            rival: rival.take(),
        };
        conn.state = ConnState::Open {
            users: 0,
            opened: now,
            idle_since: Some(now),
            idle_timer: None,
        };
        let k = key(conn);
        if k.purpose != Purpose::Private {
            self.index.remove_connecting(&k, id);
            self.index.insert_open(k, id, 0);
        }
        Ok(opened)
    }

    /// A user is attached to open `id`: one more user, not idle; a shared
    /// one moves one load up in the index.
    pub(crate) fn add_user(&mut self, id: ConnId) {
        let conn = self.slab.get_mut(id).expect("conn exists");
        let ConnState::Open {
            users, idle_since, ..
        } = &mut conn.state
        else {
            unreachable!("users are attached to open connections only");
        };
        let load = *users;
        *users += 1;
        *idle_since = None;
        let k = key(conn);
        if k.purpose != Purpose::Private {
            self.index.set_load(&k, id, load, load + 1);
        }
    }

    /// A user leaves `id` (open, draining or broken); an open shared one
    /// moves one load down in the index. Returns the users left.
    pub(crate) fn remove_user(&mut self, id: ConnId) -> u32 {
        let conn = self.slab.get_mut(id).expect("conn exists");
        let users = conn
            .state
            .users_mut()
            .expect("attached to a non-connecting conn");
        *users -= 1;
        let left = *users;
        let k = key(conn);
        if matches!(conn.state, ConnState::Open { .. }) && k.purpose != Purpose::Private {
            self.index.set_load(&k, id, left + 1, left);
        }
        left
    }

    /// Takes open `id` out of the index (it stops taking users).
    fn retire(&mut self, id: ConnId) -> Option<(u32, Retired)> {
        let conn = self.slab.get(id).expect("conn exists");
        let ConnState::Open {
            users,
            opened,
            idle_timer,
            ..
        } = conn.state
        else {
            return None;
        };
        let retire_at = conn.retire_at;
        let k = key(conn);
        if k.purpose != Purpose::Private {
            self.index.remove_open(&k, id, users);
        }
        Some((
            users,
            Retired {
                opened,
                idle_timer,
                retire_at,
            },
        ))
    }

    /// Open or draining `id` died with `error` (a broken one stays as it
    /// is). Returns its users, and its timers if it was open; `None` if it
    /// was opening or broken already.
    pub(crate) fn set_broken(
        &mut self,
        id: ConnId,
        error: ConnError,
    ) -> Option<(u32, Option<Retired>)> {
        let (users, retired) = match self.slab.get(id).expect("conn exists").state {
            ConnState::Open { .. } => {
                let (users, retired) = self.retire(id)?;
                (users, Some(retired))
            }
            ConnState::Draining { users, .. } => (users, None),
            ConnState::Connecting { .. } | ConnState::Broken { .. } => return None,
        };
        self.get_mut(id).expect("conn exists").state = ConnState::Broken { users, error };
        Some((users, retired))
    }

    /// Open `id` takes no new users and closes with `reason` when the last
    /// leaves. Returns its users and timers; `None` if it was not open.
    pub(crate) fn set_draining(
        &mut self,
        id: ConnId,
        reason: CloseReason,
    ) -> Option<(u32, Retired)> {
        let (users, retired) = self.retire(id)?;
        self.get_mut(id).expect("conn exists").state = ConnState::Draining { users, reason };
        Some((users, retired))
    }

    /// Removes `id` from the table and the index.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.slab.remove(id)?;
        let k = key(&conn);
        match conn.state {
            ConnState::Connecting { .. } => {
                self.index.remove_connecting(&k, id);
            }
            ConnState::Open { users, .. } if k.purpose != Purpose::Private => {
                self.index.remove_open(&k, id, users);
            }
            _ => {}
        }
        Some(conn)
    }

    /// Moves open or opening `id` to generation `to`, with its index entry.
    pub(crate) fn move_to(&mut self, id: ConnId, to: GenId) {
        let conn = self.slab.get_mut(id).expect("conn exists");
        let old = key(conn);
        conn.gen_id = to;
        let new = MatchKey { gen_id: to, ..old };
        if old.purpose != Purpose::Private {
            match conn.state {
                ConnState::Open { users, .. } => {
                    self.index.remove_open(&old, id, users);
                    self.index.insert_open(new, id, users);
                }
                ConnState::Connecting { .. } => {
                    self.index.remove_connecting(&old, id);
                    self.index.insert_connecting(new, id);
                }
                _ => unreachable!("only open or opening connections move"),
            }
        }
    }

    /// Removes every connection; ids issued before stay stale.
    pub(crate) fn clear(&mut self) {
        self.slab.clear();
        self.index.clear();
    }

    // ------------------------------------------------------------------
    // What changes no index entry: waiters, rivals, race and idle timers.
    // ------------------------------------------------------------------

    /// Marks `id` as held (or no longer held) by a paging user.
    pub(crate) fn set_paging(&mut self, id: ConnId, on: bool) {
        self.slab.get_mut(id).expect("conn exists").paging = on;
    }

    /// Marks `id` as announced closing by its server.
    pub(crate) fn set_noticed(&mut self, id: ConnId) {
        self.slab.get_mut(id).expect("conn exists").noticed = true;
    }

    /// Sets when `id` stops taking users for its credential's expiry;
    /// returns the instant set before.
    pub(crate) fn set_retire_at(&mut self, id: ConnId, at: Instant) -> Option<Instant> {
        let conn = self.slab.get_mut(id).expect("conn exists");
        conn.retire_at.replace(at)
    }

    fn connecting_mut(&mut self, id: ConnId) -> Option<&mut ConnState> {
        self.get_mut(id)
            .map(|c| &mut c.state)
            .filter(|s| matches!(s, ConnState::Connecting { .. }))
    }

    /// `user` waits on opening `id` too.
    pub(crate) fn add_waiter(&mut self, id: ConnId, user: UserId) {
        if let Some(ConnState::Connecting { waiters, .. }) = self.connecting_mut(id) {
            waiters.push(user);
        }
    }

    /// `user` no longer waits on `id`. Returns whether none is left, if
    /// `id` is opening.
    pub(crate) fn remove_waiter(&mut self, id: ConnId, user: UserId) -> Option<bool> {
        match self.connecting_mut(id) {
            Some(ConnState::Connecting { waiters, .. }) => {
                waiters.retain(|&u| u != user);
                Some(waiters.is_empty())
            }
            _ => None,
        }
    }

    /// Takes the waiters off opening `id` (none if it is not opening).
    pub(crate) fn take_waiters(&mut self, id: ConnId) -> Vec<UserId> {
        match self.connecting_mut(id) {
            Some(ConnState::Connecting { waiters, .. }) => std::mem::take(waiters),
            _ => Vec::new(),
        }
    }

    /// Replaces the waiters of opening `id`.
    pub(crate) fn set_waiters(&mut self, id: ConnId, to: Vec<UserId>) {
        if let Some(ConnState::Connecting { waiters, .. }) = self.connecting_mut(id) {
            *waiters = to;
        }
    }

    /// Adds `more` to the waiters of opening `id`.
    pub(crate) fn extend_waiters(&mut self, id: ConnId, more: Vec<UserId>) {
        if let Some(ConnState::Connecting { waiters, .. }) = self.connecting_mut(id) {
            waiters.extend(more);
        }
    }

    /// Sets the rival of opening `id`.
    pub(crate) fn set_rival(&mut self, id: ConnId, to: Option<ConnId>) {
        if let Some(ConnState::Connecting { rival, .. }) = self.connecting_mut(id) {
            *rival = to;
        }
    }

    /// The race timer of opening `id` fired at `now`: if it was due, it is
    /// spent; then, if `id` has no rival yet, returns its waiters.
    pub(crate) fn race_due(&mut self, id: ConnId, now: Instant) -> Option<Vec<UserId>> {
        let Some(ConnState::Connecting {
            waiters,
            race_at,
            rival,
            ..
        }) = self.connecting_mut(id)
        else {
            return None;
        };
        if race_at.is_none_or(|at| at > now) {
            return None;
        }
        *race_at = None;
        rival.is_none().then(|| waiters.clone())
    }

    /// Open `id` has had no user since `now`.
    pub(crate) fn mark_idle(&mut self, id: ConnId, now: Instant) {
        if let Some(ConnState::Open { idle_since, .. }) = self.get_mut(id).map(|c| &mut c.state) {
            *idle_since = Some(now);
        }
    }

    /// Records the instant of open `id`'s pending idle timer.
    pub(crate) fn set_idle_timer(&mut self, id: ConnId, at: Option<Instant>) {
        if let Some(ConnState::Open { idle_timer, .. }) = self.get_mut(id).map(|c| &mut c.state) {
            *idle_timer = at;
        }
    }

    // ------------------------------------------------------------------
    // Corruption on purpose (feature `fault-hooks`): around the index.
    // ------------------------------------------------------------------

    /// `id` to change behind the index's back.
    #[cfg(feature = "fault-hooks")]
    pub(crate) fn corrupt(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id)
    }

    /// Frees `id`, leaving its index entry behind.
    #[cfg(feature = "fault-hooks")]
    pub(crate) fn corrupt_remove(&mut self, id: ConnId) {
        self.slab.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slab::SlabId;
    use crate::{CredKey, ServerId};

    fn opening(purpose: Purpose) -> Conn {
        Conn {
            gen_id: GenId::new(0, 0),
            server: ServerId(0),
            cred: CredKey::ANONYMOUS,
            purpose,
            referral: false,
            state: ConnState::Connecting {
                waiters: Vec::new(),
                deadline: Instant::ZERO,
                race_at: None,
                rival: None,
            },
            paging: false,
            noticed: false,
            retire_at: None,
        }
    }

    #[test]
    fn a_shared_connection_moves_in_the_index_with_every_change() {
        let mut conns = Conns::default();
        let c = conns.insert(opening(Purpose::Read));
        let key = conns.key_of(c);
        assert_eq!(conns.index().connecting(&key).collect::<Vec<_>>(), [c]);
        assert!(conns.open(c, Instant::ZERO).is_ok());
        assert_eq!(conns.index().connecting(&key).count(), 0);
        assert_eq!(conns.index().least_loaded(&key, 2), Some(c));
        conns.add_user(c);
        conns.add_user(c);
        assert_eq!(conns.index().least_loaded(&key, 2), None, "full at 2");
        assert_eq!(conns.remove_user(c), 1);
        assert_eq!(conns.index().least_loaded(&key, 2), Some(c));
        let (users, _) = conns.set_draining(c, CloseReason::Reload).expect("open");
        assert_eq!(users, 1);
        assert!(
            !conns.index().has_open(&key),
            "a draining one takes no user"
        );
        assert_eq!(conns.remove_user(c), 0);
        conns.remove(c);
        assert_eq!(*conns.index(), Index::default(), "nothing is left behind");
        assert_eq!(conns.len(), 0);
    }

    #[test]
    fn a_private_connection_never_enters_the_index() {
        let mut conns = Conns::default();
        let c = conns.insert(opening(Purpose::Private));
        let key = conns.key_of(c);
        assert_eq!(conns.index().connecting(&key).count(), 0);
        assert!(conns.open(c, Instant::ZERO).is_ok());
        conns.add_user(c);
        assert!(!conns.index().has_open(&key));
        assert_eq!(conns.open(c, Instant::ZERO).err(), Some("Open"));
    }
}
