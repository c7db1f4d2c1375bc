//! Test-only corruption hooks (feature `fault-hooks`): deliberate bugs that
//! the model checker's tests plant to prove each property can fail. Never
//! enabled in a build that serves users.

use crate::pool::Pool;
use crate::server::HealthState;
use crate::state::{ConnState, UserState};
use crate::timers::Timer;
use crate::{CloseReason, ConnId, CredKey, Purpose, ServerId};

/// A bug to plant in a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The current generation misses a reference decrement (a leak).
    SkipGenerationDecrement,
    /// The first connection with users is re-bound with another credential.
    RebindConnection,
    /// The first connection with users is freed while they still use it.
    FreeConnectionUnderUsers,
    /// The first private connection becomes a shared read connection.
    SharePrivateConnection,
    /// The first user still waiting is forgotten: out of the queue and its
    /// connection's waiters, its deadline disarmed, so nothing wakes it.
    StrandWaiter,
    /// Read connections to servers that a server still in its fail-back
    /// hold-down beats are drained for fail-back at once (the hold-down
    /// check of make-before-break skipped).
    DrainDuringHoldDown,
    /// The first idle connection's idle timer is disarmed, so it is never
    /// closed for idleness.
    ForgetIdleTimer,
}

/// A placement rule broken on purpose, for as long as the pool lives: the
/// tests of spread before stack and of connect racing plant these to prove
/// their checks can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyBug {
    /// Busy connections never get a spare: users stack from the start.
    NeverSpread,
    /// Spares are opened past [`Config::spread_conns_per_server`](crate::Config::spread_conns_per_server).
    SpreadPastTarget,
    /// A slow connect never gets a rival.
    NeverRace,
    /// The rival that opens first keeps its own waiters only: those of the
    /// slow connection wait on.
    RivalKeepsOwnWaiters,
    /// A connection that dies of an I/O error leaves its siblings to the
    /// same server taking users.
    KeepSiblings,
    /// A liveness check's failed verdict marks the server down even though
    /// the server answered since the check began.
    VerdictIgnoresAnswers,
    /// A returning server's failed probe during its hold-down is taken for
    /// a good one: the pool fails back to a server that failed meanwhile.
    HoldDownIgnoresFailures,
    /// A refused credential is sent again before its hold-down ends.
    RetryRefusedAtOnce,
    /// A user who finds every server down fails at once, though no server
    /// was tried within the probe backoff minimum.
    GiveUpWhenAllDown,
}

impl Pool {
    /// Breaks a placement rule from now on (see [`PolicyBug`]).
    pub fn plant_policy_bug(&mut self, bug: PolicyBug) {
        self.policy_bug = Some(bug);
    }

    /// Plants `fault`; returns whether there was something to corrupt.
    pub fn inject_fault(&mut self, fault: Fault) -> bool {
        match fault {
            Fault::SkipGenerationDecrement => match self.current.and_then(|g| self.gens.get_mut(g))
            {
                Some(g) => {
                    g.refs += 1;
                    true
                }
                None => false,
            },
            Fault::RebindConnection => {
                let Some(id) = self.busy_conn() else {
                    return false;
                };
                let conn = self.conns.get_mut(id).expect("exists");
                conn.cred = CredKey(conn.cred.0.wrapping_add(1000));
                true
            }
            Fault::FreeConnectionUnderUsers => {
                let Some(id) = self.busy_conn() else {
                    return false;
                };
                self.conns.remove(id);
                true
            }
            Fault::SharePrivateConnection => {
                let found = self
                    .conns
                    .iter()
                    .find(|(_, c)| c.purpose == Purpose::Private)
                    .map(|(id, _)| id);
                let Some(id) = found else { return false };
                self.conns.get_mut(id).expect("exists").purpose = Purpose::Read;
                true
            }
            Fault::DrainDuringHoldDown => self.drain_during_hold_down(),
            Fault::ForgetIdleTimer => self.forget_idle_timer(),
            Fault::StrandWaiter => {
                let found = self
                    .users
                    .iter()
                    .find(|(_, u)| !matches!(u.state, UserState::Connected { .. }))
                    .map(|(id, _)| id);
                let Some(id) = found else { return false };
                let user = self.users.get_mut(id).expect("exists");
                let was = std::mem::replace(&mut user.state, UserState::Queued);
                let deadline = user.deadline;
                self.timers.disarm(deadline, Timer::User(id));
                match was {
                    UserState::Waiting { conn } => {
                        if let Some(ConnState::Connecting { waiters, .. }) =
                            self.conns.get_mut(conn).map(|c| &mut c.state)
                        {
                            waiters.retain(|&u| u != id);
                        }
                    }
                    _ => self.queue.retain(|&u| u != id),
                }
                true
            }
        }
    }

    fn drain_during_hold_down(&mut self) -> bool {
        let Some(gen_id) = self.current else {
            return false;
        };
        let returning: Vec<ServerId> = (0..self.servers.len())
            .map(|i| ServerId(i as u16))
            .filter(|&s| {
                matches!(
                    self.servers[s.index()].health,
                    HealthState::Returning { .. }
                )
            })
            .collect();
        let mut drained = false;
        for better in returning {
            for worse in self.servers_beaten_by(gen_id, better) {
                let conns: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| {
                        c.server == worse
                            && c.gen_id == gen_id
                            && c.purpose == Purpose::Read
                            && matches!(c.state, ConnState::Open { .. })
                    })
                    .map(|(id, _)| id)
                    .collect();
                for conn in conns {
                    self.drain_conn(conn, CloseReason::FailBack);
                    drained = true;
                }
            }
        }
        drained
    }

    fn forget_idle_timer(&mut self) -> bool {
        let found = self.conns.iter().find_map(|(id, c)| match c.state {
            ConnState::Open {
                idle_timer: Some(at),
                ..
            } => Some((id, at)),
            _ => None,
        });
        let Some((id, at)) = found else { return false };
        self.timers.disarm(at, Timer::Idle(id));
        if let Some(ConnState::Open { idle_timer, .. }) =
            self.conns.get_mut(id).map(|c| &mut c.state)
        {
            *idle_timer = None;
        }
        true
    }

    fn busy_conn(&self) -> Option<crate::ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.state.users() > 0 && !matches!(c.state, ConnState::Connecting { .. }))
            .map(|(id, _)| id)
    }
}
