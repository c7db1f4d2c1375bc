//! Connect racing (RFC 8305's "happy eyeballs", applied to the server list):
//! a shared connection that has not opened within
//! [`Config::connect_race_delay`](crate::Config::connect_race_delay) while
//! users wait on it gets a rival opening to the next usable server. Whichever
//! opens first takes the waiters of both; a waiter that named a server stays
//! with that server. If one of the two fails, the other inherits its waiters,
//! so they fail only if both do. The preference order holds for what follows:
//! a slow preferred connection that opens later serves new users and fails
//! the others back (behaviour 7), while a rival to a less preferred server
//! that loses is closed.

use crate::Instant;
use crate::index::MatchKey;
use crate::pool::Pool;
use crate::state::ConnState;
use crate::timers::Timer;
use crate::{CloseReason, ConnId, ServerId, UserId};

impl Pool {
    /// When a connection of `key` opening at `now` should get a rival, if
    /// racing applies to it: shared (read or write: a password check waits
    /// for its own server's connect), not for a referral, racing on, and its
    /// delay shorter than the connect timeout.
    pub(crate) fn race_at(&self, now: Instant, key: &MatchKey) -> Option<Instant> {
        let config = &self.gens.get(key.gen_id)?.config;
        let delay = config.connect_race_delay?;
        let racing = key.purpose.is_shared()
            && !key.referral
            && config.servers.len() > 1
            && delay < config.connect_timeout;
        racing.then(|| now + delay)
    }

    /// The race timer of `conn` fired: open a rival to the next usable server
    /// of its generation, if some waiter may move there.
    pub(crate) fn on_race_timer(&mut self, now: Instant, conn: ConnId) {
        // Spends the timer; nothing to do if `conn` already has a rival.
        let Some(waiters) = self.conns.race_due(conn, now) else {
            return;
        };
        let movable = waiters
            .iter()
            .any(|u| self.users.get(*u).is_some_and(|u| u.server.is_none()));
        if !movable || self.is_shut_down() {
            return;
        }
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::NeverRace) {
            return;
        }
        let key = self.conns.key_of(conn);
        if self.gens.current() != Some(key.gen_id) {
            return;
        }
        let Some(server) = self
            .rival_server(&key)
            .filter(|&s| !self.held_back(now, s, key.cred))
        else {
            return;
        };
        let rival = self.open_conn(now, MatchKey { server, ..key }, Vec::new());
        self.set_rival(conn, Some(rival));
        self.set_rival(rival, Some(conn));
        self.counters.races += 1;
    }

    /// The server a rival of a connection of `key` goes to: the first of the
    /// generation's servers, stable ones first, then those returning, that is
    /// not `key.server`, is not down and has room for a connection.
    fn rival_server(&self, key: &MatchKey) -> Option<ServerId> {
        let order = &self.gens.get(key.gen_id)?.servers;
        let health = |s: &ServerId| self.servers.health(*s);
        let stable = order.iter().filter(|s| health(s).is_stable_up());
        let returning = order
            .iter()
            .filter(|s| !health(s).is_down() && !health(s).is_stable_up());
        stable
            .chain(returning)
            .copied()
            .find(|&s| s != key.server && self.has_conn_room(key.gen_id, s))
    }

    fn set_rival(&mut self, conn: ConnId, to: Option<ConnId>) {
        self.conns.set_rival(conn, to);
    }

    /// The rival of `conn`, if both are still opening.
    pub(crate) fn rival_of(&self, conn: ConnId) -> Option<ConnId> {
        match self.conns.get(conn).map(|c| &c.state) {
            Some(ConnState::Connecting {
                rival: Some(rival), ..
            }) => matches!(
                self.conns.get(*rival).map(|c| &c.state),
                Some(ConnState::Connecting { .. })
            )
            .then_some(*rival),
            _ => None,
        }
    }

    /// `conn` leaves the race (it opened, failed or closed): its rival races
    /// no more.
    pub(crate) fn unlink_rival(&mut self, rival: ConnId) {
        self.set_rival(rival, None);
    }

    /// Whether user `u` may be served by a connection to `server`.
    fn may_use(&self, u: UserId, server: ServerId) -> bool {
        self.users
            .get(u)
            .is_some_and(|u| u.server.is_none_or(|s| s == server))
    }

    /// `winner` opened first: returns the waiters of `rival` it takes (all
    /// but those that named `rival`'s server), for the caller to attach or
    /// place. `rival` races no more; if it opens to a less preferred server
    /// and no waiter is left on it, it is closed.
    pub(crate) fn won_race(&mut self, rival: ConnId, winner: ConnId) -> Vec<UserId> {
        let (Some(w), Some(r)) = (self.conns.get(winner), self.conns.get(rival)) else {
            return Vec::new();
        };
        let (winner_server, rival_server, gen_id) = (w.server, r.server, w.gen_id);
        let same_generation = r.gen_id == gen_id;
        self.set_rival(rival, None);
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::RivalKeepsOwnWaiters) {
            return Vec::new();
        }
        let Some(ConnState::Connecting { waiters, .. }) = self.conns.get(rival).map(|c| &c.state)
        else {
            return Vec::new();
        };
        if !same_generation {
            return Vec::new();
        }
        let (taken, stay): (Vec<UserId>, Vec<UserId>) = waiters
            .iter()
            .partition(|&&u| self.may_use(u, winner_server));
        let stays_empty = stay.is_empty();
        self.conns.set_waiters(rival, stay);
        let rank = |s: ServerId| {
            self.gens
                .get(gen_id)
                .and_then(|g| g.servers.iter().position(|&x| x == s))
        };
        let rival_worse = match (rank(rival_server), rank(winner_server)) {
            (Some(r), Some(w)) => r > w,
            (None, _) => true,
            (Some(_), None) => false,
        };
        if stays_empty && rival_worse {
            self.close_conn(rival, CloseReason::RaceLost);
        }
        taken
    }

    /// `conn`'s connect failed while `rival` still opens: the waiters that
    /// may use `rival`'s server wait for it instead. Returns the others.
    pub(crate) fn hand_waiters(&mut self, waiters: Vec<UserId>, rival: ConnId) -> Vec<UserId> {
        let server = self.conns.get(rival).map(|c| c.server);
        let Some(server) = server else {
            return waiters;
        };
        let (moved, left): (Vec<UserId>, Vec<UserId>) =
            waiters.into_iter().partition(|&u| self.may_use(u, server));
        for &u in &moved {
            self.users.set_waiting(u, rival);
        }
        self.conns.extend_waiters(rival, moved);
        left
    }

    /// Disarms `conn`'s race timer, if armed (it opened or closed).
    pub(crate) fn disarm_race(&mut self, conn: ConnId, at: Option<Instant>) {
        if let Some(at) = at {
            self.timers.disarm(at, Timer::Race(conn));
        }
    }
}
