//! The pool's counters: the public [`Counters`] and [`ServerCounters`], and
//! [`Tally`], the wrapper the pool keeps them in (with the other history it
//! only reports, the servers it has reached) so that they stay out of its
//! equality and hash.

use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};

use crate::ServerId;

/// Monotonic counters of a pool, read through [`Status::counters`](crate::Status::counters):
/// observations of its history, compared and hashed like any other value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Counters {
    /// Requests received.
    pub acquires: u64,
    /// Users handed a connection.
    pub grants: u64,
    /// Users failed (any error).
    pub fails: u64,
    /// Fails that offered a retry.
    pub retries_offered: u64,
    /// Users that gave up waiting (deadline).
    pub timeouts: u64,
    /// Users cancelled by the caller.
    pub cancels: u64,
    /// Users that released their connection normally.
    pub releases: u64,
    /// Connections opened.
    pub opens: u64,
    /// Bind connections ([`Purpose::Bind`](crate::Purpose::Bind)) opened,
    /// counted in `opens` too.
    pub bind_opens: u64,
    /// Notices from servers that they are closing a connection
    /// ([`Event::ConnClosing`](crate::Event::ConnClosing)).
    pub notices: u64,
    /// Connections that failed to open.
    pub open_failures: u64,
    /// Connections found dead (each once, however many of its users
    /// reported it).
    pub lost: u64,
    /// Connections closed (all reasons).
    pub closes: u64,
    /// Connections set to drain.
    pub drains: u64,
    /// Connections opened ahead of a fail-back.
    pub failback_warmups: u64,
    /// Spare connections opened because every matching one was busy
    /// (spread before stack).
    pub spreads: u64,
    /// Rival connections opened because a connect was slow (connect racing).
    pub races: u64,
    /// Generations created.
    pub generations: u64,
    /// Per server, indexed by [`ServerId::index`](crate::ServerId::index).
    pub servers: Vec<ServerCounters>,
}

/// Counters of one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ServerCounters {
    /// Connections opened.
    pub opens: u64,
    /// Connections that failed to open.
    pub open_failures: u64,
    /// Users handed a connection to it.
    pub grants: u64,
    /// Times marked down.
    pub marked_down: u64,
    /// Times marked up again.
    pub marked_up: u64,
    /// Probes sent (of a down or returning server).
    pub probes: u64,
    /// Liveness checks started by an operation timeout.
    pub checks: u64,
    /// Failed checks that marked nothing down: the server answered since
    /// the check began.
    pub stale_verdicts: u64,
    /// Opens not sent because the credential was refused by this server and
    /// is held back.
    pub held_back: u64,
    /// Probes brought forward for users who found every server down
    /// (counted in `probes` too).
    pub brought_forward: u64,
}

/// The pool's record of its history: the counters, and which servers it has
/// reached ([`Tally::reach`]). Two pools that differ only in their history
/// behave identically: it is observation, never read by a decision. So a
/// `Tally` compares equal to any other and hashes to nothing, and a
/// [`Pool`](crate::Pool)'s `Eq` and `Hash` see only state that matters. The
/// stateright models hold the real pool as their state: were history part of
/// it, states that differ only in history would be told apart, and the state
/// space would grow without finding anything new.
#[derive(Clone, Default)]
pub(crate) struct Tally {
    counters: Counters,
    /// Per server, by [`ServerId::index`]: whether the pool has had word of
    /// it (see [`Health::Unknown`](crate::Health::Unknown)). Grown on demand.
    reached: Vec<bool>,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally")
            .field("counters", &self.counters)
            .field("reached", &self.reached)
            .finish()
    }
}

impl Tally {
    /// A copy of the counters, for a [`Status`](crate::Status).
    pub(crate) fn snapshot(&self) -> Counters {
        self.counters.clone()
    }

    /// The pool has had word of `server`: a connection to it opened, it
    /// refused a bind, or it was marked down. Never undone.
    pub(crate) fn reach(&mut self, server: ServerId) {
        let i = server.index();
        if self.reached.len() <= i {
            self.reached.resize(i + 1, false);
        }
        self.reached[i] = true;
    }

    /// Whether [`Tally::reach`] was ever called for `server`.
    pub(crate) fn reached(&self, server: ServerId) -> bool {
        self.reached.get(server.index()).copied().unwrap_or(false)
    }
}

impl Deref for Tally {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
}

impl DerefMut for Tally {
    fn deref_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }
}

/// Always equal: see [`Tally`].
impl PartialEq for Tally {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Tally {}

/// Hashes nothing: see [`Tally`].
impl Hash for Tally {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(x: &impl Hash) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        x.hash(&mut h);
        h.finish()
    }

    #[test]
    fn public_counters_compare_by_value_and_the_tally_ignores_them() {
        let a = Tally::default();
        let mut b = Tally::default();
        b.grants += 1;
        b.servers.push(ServerCounters::default());
        b.reach(ServerId(0));
        assert!(b.reached(ServerId(0)) && !a.reached(ServerId(0)));
        assert!(
            !b.reached(ServerId(1)),
            "an index never grown is not reached"
        );
        assert_ne!(
            a.snapshot(),
            b.snapshot(),
            "counters that differ are unequal"
        );
        assert_ne!(hash_of(&a.snapshot()), hash_of(&b.snapshot()));
        assert_eq!(a, b, "the pool's tally never splits states");
        assert_eq!(hash_of(&a), hash_of(&b));
    }
}
