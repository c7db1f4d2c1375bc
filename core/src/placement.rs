//! Placing a user: find it a connection (behaviours 1, 2), wait on one being
//! opened (3), open one, or queue it behind the per-server limit (4).

use crate::Instant;
use crate::gen_table::Holder;
use crate::index::MatchKey;
use crate::pool::Pool;
use crate::state::ConnState;
use crate::timers::Timer;
use crate::{CloseReason, Error, Purpose, ServerId, UserId};

impl Pool {
    /// Places an unplaced `user` (state `Queued`, not in the queue). Returns
    /// false, leaving it unplaced, only if it would have to queue and
    /// `enqueue` is false.
    pub(crate) fn place(&mut self, now: Instant, user_id: UserId, enqueue: bool) -> bool {
        let Some(gen_id) = self.gens.current().filter(|_| !self.is_shut_down()) else {
            self.fail_user(now, user_id, Error::ShutDown, false);
            return true;
        };
        // A user re-placed after a reload moves to the current generation.
        let user = self.users.get(user_id).expect("user exists");
        let old_gen = user.gen_id;
        if old_gen != gen_id {
            self.users.set_gen(user_id, gen_id);
            self.gens.take_ref(gen_id, Holder::User);
            self.gens.drop_ref(old_gen, Holder::User);
        }
        let generation = self.gens.get(gen_id).expect("current generation exists");
        let (sharing, bind_conns) = (
            generation.config.sharing,
            generation.config.bind_conns_per_server,
        );
        let user = self.users.decide_private(user_id, sharing, bind_conns);
        let (cred, purpose, referral, named, pages) = (
            user.cred,
            user.purpose(),
            user.referral,
            user.server,
            user.pages,
        );
        #[cfg(feature = "fault-hooks")]
        let purpose = match purpose {
            Purpose::Read if self.has_bug(crate::PolicyBug::BindToReaders) => Purpose::Bind,
            p => p,
        };
        let cap = self.users_per_conn(&generation.config, purpose);

        // Fast path, no allocation: the best server already has an open
        // connection with room (what the general search below tries first).
        if purpose != Purpose::Private {
            let best = match named {
                Some(s) => (!self.servers.health(s).is_down()).then_some(s),
                None => generation
                    .servers
                    .iter()
                    .copied()
                    .find(|s| self.servers.health(*s).is_stable_up()),
            };
            if let Some(server) = best {
                let key = MatchKey {
                    gen_id,
                    server,
                    cred,
                    purpose,
                    referral,
                };
                if let Some(conn) = self.usable_with_room(now, &key, cap, pages) {
                    self.attach_spreading(now, user_id, conn, key);
                    return true;
                }
            }
        }

        // Candidate servers, best first: the named one, or the generation's
        // servers that are up, those past their hold-down first.
        let candidates: Vec<ServerId> = match named {
            Some(s) if self.servers.health(s).is_down() => {
                self.fail_user(now, user_id, Error::ServerDown { server: s }, false);
                return true;
            }
            Some(s) => vec![s],
            None => {
                let generation = self.gens.get(gen_id).expect("current generation exists");
                let order = &generation.servers;
                let stable = order
                    .iter()
                    .filter(|s| self.servers.health(**s).is_stable_up());
                let returning = order.iter().filter(|s| {
                    let h = self.servers.health(**s);
                    !h.is_down() && !h.is_stable_up()
                });
                stable.chain(returning).copied().collect()
            }
        };
        let Some(&target) = candidates.first() else {
            return self.await_probe(now, user_id, gen_id, enqueue);
        };
        let key = |server| MatchKey {
            gen_id,
            server,
            cred,
            purpose,
            referral,
        };

        if purpose != Purpose::Private {
            // An open connection with room, on the best server that has one.
            for &s in &candidates {
                if let Some(conn) = self.usable_with_room(now, &key(s), cap, pages) {
                    self.attach_spreading(now, user_id, conn, key(s));
                    return true;
                }
            }
            // A matching connection being opened: wait for it (coalescing).
            for &s in &candidates {
                let found = self.conns.index().connecting(&key(s)).find(|&c| {
                    match self.conns.get(c).map(|c| &c.state) {
                        Some(ConnState::Connecting { waiters, .. }) => {
                            (waiters.len() as u32) < cap
                                && !(pages && waiters.iter().any(|w| self.pages(*w)))
                        }
                        _ => false,
                    }
                });
                if let Some(conn) = found {
                    self.conns.add_waiter(conn, user_id);
                    self.set_waiting(user_id, conn);
                    return true;
                }
            }
        }
        // The best server refused this credential and holds it back: no
        // bind is sent; the user gets the refusal at once.
        if self.held_back(now, target, cred) {
            self.counters.servers[target.index()].held_back += 1;
            self.fail_user(
                now,
                user_id,
                Error::InvalidCredentials { server: target },
                false,
            );
            return true;
        }
        // Open a new connection to the best server, if its limit allows, or
        // if one of its connections sits idle and can make room while no
        // slot will free by itself: a server at its limit with only idle
        // connections of other kinds (another credential, a writer, …) must
        // not leave this user waiting until the idle timeout.
        // Every bind connection of the best server is busy (an idle or an
        // unclaimed opening one was taken above): wait for one to be free.
        if purpose == Purpose::Bind && self.bind_set_full(&key(target), bind_conns) {
            if enqueue {
                self.enqueue(user_id);
            }
            return enqueue;
        }
        let room = self.has_conn_room(gen_id, target)
            || match self.idle_to_evict(target) {
                Some(idle) => {
                    self.close_conn(idle, CloseReason::MakeRoom);
                    true
                }
                None => false,
            };
        if room {
            let conn = self.open_conn(now, key(target), vec![user_id]);
            self.set_waiting(user_id, conn);
            return true;
        }
        if enqueue {
            self.enqueue(user_id);
        }
        enqueue
    }

    /// [`Pool::with_room`], skipping (and draining) a connection whose
    /// credential retirement is due: an input handled late (its `now` past
    /// the credential-expiry timer, not yet handled) must not hand it out.
    fn usable_with_room(
        &mut self,
        now: Instant,
        key: &MatchKey,
        cap: u32,
        pages: bool,
    ) -> Option<crate::ConnId> {
        loop {
            let conn = self.with_room(key, cap, pages)?;
            let lapsed = self
                .conns
                .get(conn)
                .and_then(|c| c.retire_at)
                .is_some_and(|at| at <= now);
            if !lapsed {
                return Some(conn);
            }
            // Draining takes it out of the index: the loop ends.
            self.drain_conn(conn, CloseReason::CredentialExpiring);
        }
    }

    /// The open connection of `key` with room for one more user, least
    /// loaded first (ties: the lowest id); for a paging user, one that no
    /// other paging user holds (a server keeps one paging state per
    /// connection).
    fn with_room(&self, key: &MatchKey, cap: u32, pages: bool) -> Option<crate::ConnId> {
        let index = self.conns.index();
        if !pages {
            return index.least_loaded(key, cap);
        }
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::TwoPagersPerConnection) {
            return index.least_loaded(key, cap);
        }
        index
            .open_conns(key)
            .into_iter()
            .filter_map(|id| self.conns.get(id).map(|c| (c.state.users(), id, c.paging)))
            .filter(|&(users, _, paging)| users < cap && !paging)
            .min_by_key(|&(users, id, _)| (users, id))
            .map(|(_, id, _)| id)
    }

    /// Whether `user` runs a paged search.
    pub(crate) fn pages(&self, user: UserId) -> bool {
        self.users.get(user).is_some_and(|u| u.pages)
    }

    /// Users a connection of `purpose` takes at once under `config`: one on
    /// a bind connection (a check re-binds it), else the per-connection cap.
    pub(crate) fn users_per_conn(&self, config: &crate::Config, purpose: Purpose) -> u32 {
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::ShareBindConnections) {
            return self.cap(config);
        }
        match purpose {
            Purpose::Bind => 1,
            _ => self.cap(config),
        }
    }

    /// Whether the bind connections of `key` (open or opening) number
    /// `limit` or more.
    fn bind_set_full(&self, key: &MatchKey, limit: u32) -> bool {
        let index = self.conns.index();
        let set = index.open_count(key) + index.connecting(key).count();
        set >= limit as usize
    }

    /// Queues unplaced `user` with its deadline armed; the queue places it
    /// again after every input ([`Pool::service_queue`]).
    pub(crate) fn enqueue(&mut self, user: UserId) {
        let deadline = self.users.enqueue(user);
        self.timers.arm(deadline, Timer::User(user));
    }

    /// Attaches `user` to open shared connection `conn` (the least loaded of
    /// `key`) and applies spread before stack: if `conn` was already busy
    /// ([`Config::spread_users_per_conn`](crate::Config::spread_users_per_conn)
    /// users or more), so is every connection of `key`, and a further one is
    /// opened while `key` has fewer than
    /// [`Config::spread_conns_per_server`](crate::Config::spread_conns_per_server)
    /// connections, none of them opening (one at a time: a storm never opens
    /// one per user), and the server has room. The user rides `conn`
    /// meanwhile: nobody waits for a spare.
    fn attach_spreading(
        &mut self,
        now: Instant,
        user_id: UserId,
        conn: crate::ConnId,
        key: MatchKey,
    ) {
        let load = self.conns.get(conn).map_or(0, |c| c.state.users());
        self.attach(now, user_id, conn);
        if !key.purpose.is_shared() {
            return;
        }
        let Some(config) = self.gens.get(key.gen_id).map(|g| &g.config) else {
            return;
        };
        let (busy_at, target) = self.spread_of(config);
        if load >= busy_at
            && self.conns.index().connecting(&key).next().is_none()
            && !self.held_back(now, key.server, key.cred)
            && (self.conns.index().open_count(&key) as u64) < u64::from(target)
            && self.has_conn_room(key.gen_id, key.server)
        {
            self.counters.spreads += 1;
            self.open_conn(now, key, Vec::new());
        }
    }

    /// The busy threshold and the spread target in force for `config`:
    /// `(min(spread_users_per_conn, cap), spread_conns_per_server)`.
    pub(crate) fn spread_of(&self, config: &crate::Config) -> (u32, u32) {
        let busy_at = config.spread_users_per_conn.min(self.cap(config));
        let target = config.spread_conns_per_server;
        #[cfg(feature = "fault-hooks")]
        let target = if self.has_bug(crate::PolicyBug::NeverSpread) {
            1
        } else if self.has_bug(crate::PolicyBug::SpreadPastTarget) {
            u32::MAX
        } else {
            target
        };
        (busy_at, target)
    }

    /// Connection `broken` died with an I/O error (reset, closed, garbage):
    /// its server may have died too, so the other shared connections to it
    /// that are open take no new users and close once their users leave.
    /// The next user opens a fresh connection, which either works (the old
    /// ones were replaced, make before break) or fails and marks the server
    /// down. Without this, a retry lands on a sibling that died unreported
    /// and burns its tries on one dead server (the more connections spread
    /// over a server, the likelier). A connection that timed out says less
    /// about the others and drains nothing.
    pub(crate) fn drain_siblings(
        &mut self,
        broken: crate::ConnId,
        server: ServerId,
        kind: crate::ConnErrorKind,
    ) {
        if kind != crate::ConnErrorKind::Io {
            return;
        }
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::KeepSiblings) {
            return;
        }
        let siblings: Vec<crate::ConnId> = self
            .conns
            .iter()
            .filter(|&(id, c)| {
                id != broken
                    && c.server == server
                    && c.purpose != Purpose::Private
                    && matches!(c.state, ConnState::Open { .. })
            })
            .map(|(id, _)| id)
            .collect();
        for conn in siblings {
            self.drain_conn(conn, CloseReason::SiblingBroken);
        }
    }

    /// The connection to close so that a user can open one on `server`, at
    /// its limit: the open one with no user that has been idle longest (ties:
    /// the lowest id), unless a connection there will close by itself once
    /// its users are done (a private one, or one draining or broken). Then the
    /// user waits for that slot rather than closing an idle connection others
    /// may still want. One pass over the connections.
    fn idle_to_evict(&self, server: ServerId) -> Option<crate::ConnId> {
        let mut oldest = None;
        for (id, c) in self.conns.iter().filter(|(_, c)| c.server == server) {
            match c.state {
                _ if c.purpose == Purpose::Private => return None,
                ConnState::Draining { .. } | ConnState::Broken { .. } => return None,
                ConnState::Open {
                    users: 0,
                    idle_since: Some(since),
                    ..
                } if oldest.is_none_or(|o| (since, id) < o) => oldest = Some((since, id)),
                _ => {}
            }
        }
        oldest.map(|(_, id)| id)
    }

    fn set_waiting(&mut self, user_id: UserId, conn: crate::ConnId) {
        self.users.set_waiting(user_id, conn);
        self.arm_deadline(user_id);
    }

    pub(crate) fn arm_deadline(&mut self, user_id: UserId) {
        let deadline = self.users.get(user_id).expect("user exists").deadline;
        self.timers.arm(deadline, Timer::User(user_id));
    }

    /// Places queued users that can now be placed, in arrival order; a user
    /// that still cannot be placed keeps its place and does not block those
    /// behind it that can.
    pub(crate) fn service_queue(&mut self, now: Instant) {
        if self.users.queue_len() == 0 {
            return;
        }
        let queued = self.users.take_queue();
        let mut still = std::collections::VecDeque::with_capacity(queued.len());
        for user in queued {
            if !self.users.contains(user) {
                continue;
            }
            if !self.place(now, user, false) {
                still.push_back(user);
            }
        }
        // Users queued while serving (none: place(…, false) never queues) would
        // follow the ones still waiting.
        self.users.requeue(still);
    }
}
