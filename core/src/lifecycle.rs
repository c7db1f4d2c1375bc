//! Generation lifecycle: reload (behaviour 11), shutdown (12) and fork (15).

use std::sync::Arc;

use crate::pool::{Holder, Pool};
use crate::server::HealthState;
use crate::state::ConnState;
use crate::timers::Timer;
use crate::{Action, CloseReason, Config, Error, Instant, MAX_TRIES};

impl Pool {
    /// Detaches the current generation and starts a new one with `config`.
    /// Users running on the old generation finish there; users still waiting
    /// move to the new one; the old one is freed when its count reaches zero.
    pub(crate) fn reload(&mut self, now: Instant, config: Config) -> Result<(), Error> {
        config.validate()?;
        if self.shut_down {
            return Err(Error::ShutDown);
        }
        let old = self.current.expect("not shut down");
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
        Ok(())
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
                HealthState::Up {
                    hold_until: Some(until),
                    ..
                } => self.timers.arm(*until, Timer::HoldDown(id)),
                HealthState::Up {
                    hold_until: None, ..
                } => {}
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
