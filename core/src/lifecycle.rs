//! Generation lifecycle: reload (behaviour 11), shutdown (12) and fork (15).

use std::sync::Arc;

use crate::index::MatchKey;
use crate::pool::{Holder, Pool};
use crate::server::HealthState;
use crate::state::{ConnState, UserState};
use crate::timers::Timer;
use crate::{
    Action, CloseReason, Config, ConnId, Error, GenId, Instant, MAX_TRIES, Purpose, UserId,
};

/// Whether `a` and `b` differ in their servers only.
fn same_but_servers(a: &Config, b: &Config) -> bool {
    let mut b = b.clone();
    b.servers.clone_from(&a.servers);
    *a == b
}

impl Pool {
    /// Detaches the current generation and starts a new one with `config`.
    /// Users running on the old generation finish there; users still waiting
    /// move to the new one; the old one is freed when its count reaches zero.
    ///
    /// With `keep_listed`, and when `config` differs from the current one in
    /// its servers only, connections open or opening to a server still listed
    /// (referral connections excepted) move to the new generation with their
    /// users instead of draining ([`Event::ReloadServers`]).
    ///
    /// [`Event::ReloadServers`]: crate::Event::ReloadServers
    pub(crate) fn reload(
        &mut self,
        now: Instant,
        config: Config,
        keep_listed: bool,
    ) -> Result<(), Error> {
        config.validate()?;
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        let old = self.current.expect("not shut down");
        let keep_listed = keep_listed
            && self
                .gens
                .get(old)
                .is_some_and(|g| same_but_servers(&g.config, &config));
        let new = self.new_generation(Arc::new(config))?;
        self.current = Some(new);
        self.gens
            .get_mut(old)
            .expect("current generation exists")
            .detached = true;

        let mut displaced = Vec::new();
        let conns: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| c.gen_id == old)
            .map(|(id, _)| id)
            .collect();
        for conn in conns {
            if keep_listed && self.still_listed(conn, new) {
                self.move_conn(conn, new);
                continue;
            }
            match self.conns.get(conn).map(|c| &c.state) {
                Some(ConnState::Connecting { .. }) => {
                    displaced.extend(self.abort_connecting(conn, CloseReason::Reload));
                }
                Some(ConnState::Open { .. }) => self.drain_conn(conn, CloseReason::Reload),
                _ => {}
            }
        }
        // Queued users are placed again on the new generation, in order.
        let queued: Vec<_> = self.queue.drain(..).collect();
        displaced.extend(queued);
        // The old generation loses its "current" reference only now, so it
        // cannot be freed while its users are being moved.
        self.gen_unref(old, Holder::Current);
        for user in displaced {
            if self.users.contains(user) {
                self.place(now, user, true);
            }
        }
        if keep_listed {
            // A kept connection may sit on a server the new order ranks
            // below a stable one (priorities swapped, a better server
            // added): fail back to the best, make before break (behaviour 7).
            let best = self.gens.get(new).and_then(|g| {
                g.servers
                    .iter()
                    .copied()
                    .find(|s| self.servers[s.index()].health.is_stable_up())
            });
            if let Some(best) = best {
                self.fail_back_to(now, best);
            }
        }
        Ok(())
    }

    /// Whether `conn` is open or opening, not a referral connection, and to a
    /// server of generation `gen_id`.
    fn still_listed(&self, conn: ConnId, gen_id: GenId) -> bool {
        let (Some(c), Some(g)) = (self.conns.get(conn), self.gens.get(gen_id)) else {
            return false;
        };
        !c.referral
            && matches!(
                c.state,
                ConnState::Open { .. } | ConnState::Connecting { .. }
            )
            && g.servers.contains(&c.server)
    }

    /// Moves `conn`, and the users on it or waiting for it, to generation
    /// `to`: the index entry, the connection's and the users' references.
    fn move_conn(&mut self, conn: ConnId, to: GenId) {
        let old_key = self.key_of(conn);
        let from = old_key.gen_id;
        let new_key = MatchKey {
            gen_id: to,
            ..old_key
        };
        let c = self.conns.get_mut(conn).expect("conn exists");
        c.gen_id = to;
        if old_key.purpose != Purpose::Private {
            match c.state {
                ConnState::Open { users, .. } => {
                    self.index.remove_open(&old_key, conn, users);
                    self.index.insert_open(new_key, conn, users);
                }
                ConnState::Connecting { .. } => {
                    self.index.remove_connecting(&old_key, conn);
                    self.index.insert_connecting(new_key, conn);
                }
                _ => unreachable!("only open or opening connections move"),
            }
        }
        // `from` is still referenced as current by the caller: it cannot be
        // freed while its references move.
        self.gen_ref(to, Holder::Conn);
        self.gen_unref(from, Holder::Conn);
        let riders: Vec<UserId> = self
            .users
            .iter()
            .filter(|(_, u)| {
                matches!(u.state,
                    UserState::Connected { conn: c, .. } | UserState::Waiting { conn: c }
                        if c == conn)
            })
            .map(|(id, _)| id)
            .collect();
        for user in riders {
            self.users.get_mut(user).expect("user exists").gen_id = to;
            self.gen_ref(to, Holder::User);
            self.gen_unref(from, Holder::User);
        }
    }

    /// Fails every user, closes every connection, frees every generation.
    pub(crate) fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.end_everything(
            |_| (Error::ShutDown, false),
            |conn| Action::Close {
                conn,
                reason: CloseReason::Shutdown,
            },
        );
        self.current = None;
    }

    /// In a child process: forget every connection without touching it, fail
    /// every user (a retry is worth it: it will get a fresh connection), and
    /// start a fresh generation with the same configuration.
    pub(crate) fn forked(&mut self, now: Instant) {
        if self.shut_down {
            return;
        }
        let config = self.current_gen().expect("not shut down").config.clone();
        self.end_everything(
            |attempt| (Error::Forked, attempt < MAX_TRIES),
            |conn| Action::Abandon { conn },
        );
        // Health knowledge is still true in the child, but probes and
        // hold-downs in flight belonged to the parent: re-arm them.
        for (i, server) in self.servers.iter_mut().enumerate() {
            let id = crate::ServerId(i as u16);
            match &mut server.health {
                HealthState::Down {
                    next_probe,
                    probing,
                    ..
                } => {
                    *probing = None;
                    *next_probe = now;
                    self.timers.arm(now, Timer::Probe(id));
                }
                HealthState::Returning {
                    next_probe,
                    probing,
                    ..
                } => {
                    *probing = None;
                    *next_probe = now;
                    self.timers.arm(now, Timer::Probe(id));
                }
                HealthState::Up { check } => *check = None,
            }
        }
        let g = self
            .new_generation(config)
            .expect("servers already interned");
        self.current = Some(g);
    }

    fn end_everything(
        &mut self,
        fail: impl Fn(u8) -> (Error, bool),
        close: impl Fn(crate::ConnId) -> Action,
    ) {
        for (id, user) in self.users.iter() {
            let (error, retry) = fail(user.attempt);
            self.counters.fails += 1;
            if retry {
                self.counters.retries_offered += 1;
            }
            self.actions.push_back(Action::Fail {
                user: id,
                error,
                retry,
            });
        }
        for (id, _) in self.conns.iter() {
            self.counters.closes += 1;
            self.actions.push_back(close(id));
        }
        self.users.clear();
        self.conns.clear();
        self.gens.clear();
        self.index.clear();
        self.queue.clear();
        self.timers.clear();
        self.creds.clear();
        for s in &mut self.servers {
            s.conns = 0;
            s.users = 0;
        }
    }
}
