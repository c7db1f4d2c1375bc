//! Generation lifecycle: reload (behaviour 11), shutdown (12) and fork (15).

use std::sync::Arc;

use crate::gen_table::Holder;
use crate::pool::Pool;
use crate::server::HealthState;
use crate::state::{ConnState, UserState};
use crate::timers::Timer;
use crate::{Action, CloseReason, Config, ConnId, Error, GenId, Instant, MAX_TRIES, UserId};

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
        if self.is_shut_down() {
            return Err(Error::ShutDown);
        }
        let old = self.gens.current().expect("not shut down");
        let keep_listed = keep_listed
            && self
                .gens
                .get(old)
                .is_some_and(|g| same_but_servers(&g.config, &config));
        // `old` is detached, and keeps its current reference until below.
        let new = self.start_generation(Arc::new(config))?;

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
        let queued = self.users.take_queue();
        displaced.extend(queued);
        // The old generation loses its "current" reference only now, so it
        // cannot be freed while its users are being moved.
        self.gens.drop_ref(old, Holder::Current);
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
                    .find(|&s| self.servers.health(s).is_stable_up())
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
        let from = self.conns.key_of(conn).gen_id;
        self.conns.move_to(conn, to);
        // `from` is still referenced as current by the caller: it cannot be
        // freed while its references move.
        self.gens.take_ref(to, Holder::Conn);
        self.gens.drop_ref(from, Holder::Conn);
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
            self.users.set_gen(user, to);
            self.gens.take_ref(to, Holder::User);
            self.gens.drop_ref(from, Holder::User);
        }
    }

    /// Fails every user, closes every connection, frees every generation.
    pub(crate) fn shutdown(&mut self) {
        if self.is_shut_down() {
            return;
        }
        self.set_shut_down();
        self.end_everything(
            |_| (Error::ShutDown, false),
            |conn| Action::Close {
                conn,
                reason: CloseReason::Shutdown,
            },
        );
    }

    /// In a child process: forget every connection without touching it, fail
    /// every user (a retry is worth it: it will get a fresh connection), and
    /// start a fresh generation with the same configuration.
    pub(crate) fn forked(&mut self, now: Instant) {
        if self.is_shut_down() {
            return;
        }
        let config = self.current_gen().expect("not shut down").config.clone();
        self.end_everything(
            |attempt| (Error::Forked, attempt < MAX_TRIES),
            |conn| Action::Abandon { conn },
        );
        // Health knowledge is still true in the child, but probes and
        // hold-downs in flight belonged to the parent: re-arm them.
        for i in 0..self.servers.len() {
            let id = crate::ServerId(i as u16);
            match self.servers.health_mut(id) {
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
        self.start_generation(config)
            .expect("servers already interned");
    }

    fn end_everything(
        &mut self,
        fail: impl Fn(u8) -> (Error, bool),
        close: impl Fn(crate::ConnId) -> Action,
    ) {
        let users: Vec<_> = self.users.iter().map(|(id, u)| (id, u.attempt)).collect();
        for (id, attempt) in users {
            let (error, retry) = fail(attempt);
            self.counters.fails += 1;
            if retry {
                self.counters.retries_offered += 1;
            }
            self.push(Action::Fail {
                user: id,
                error,
                retry,
            });
        }
        let conns: Vec<_> = self.conns.iter().map(|(id, _)| id).collect();
        for id in conns {
            self.counters.closes += 1;
            self.push(close(id));
        }
        self.users.clear();
        self.conns.clear();
        self.gens.clear();
        self.timers.clear();
        self.creds.clear();
        self.servers.forget_conns();
    }
}
