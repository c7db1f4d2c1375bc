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
    /// The first private or bind connection becomes a shared read connection.
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
    /// Search and getent users are placed on bind connections, as if they
    /// were password checks.
    BindToReaders,
    /// A bind connection takes as many users at once as a shared one.
    ShareBindConnections,
    /// A connection's credential expiry is ignored: it serves on.
    IgnoreCredentialExpiry,
    /// A paging user may join a connection another paging user holds.
    TwoPagersPerConnection,
    /// A server's notice that it is closing a connection is ignored: the
    /// connection takes new users until it dies, and its death drains its
    /// siblings as an unexplained one would.
    IgnoreServerNotice,
}

impl Pool {
    /// Plants `fault`; returns whether there was something to corrupt.
    pub fn inject_fault(&mut self, fault: Fault) -> bool {
        match fault {
            Fault::SkipGenerationDecrement => self.gens.leak_current(),
            Fault::RebindConnection => {
                let Some(id) = self.busy_conn() else {
                    return false;
                };
                let conn = self.conns.corrupt(id).expect("exists");
                conn.cred = CredKey(conn.cred.0.wrapping_add(1000));
                true
            }
            Fault::FreeConnectionUnderUsers => {
                let Some(id) = self.busy_conn() else {
                    return false;
                };
                self.conns.corrupt_remove(id);
                true
            }
            Fault::SharePrivateConnection => {
                let found = self
                    .conns
                    .iter()
                    .find(|(_, c)| matches!(c.purpose, Purpose::Private | Purpose::Bind))
                    .map(|(id, _)| id);
                let Some(id) = found else { return false };
                self.conns.corrupt(id).expect("exists").purpose = Purpose::Read;
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
                let (was, deadline) = self.users.strand(id);
                self.timers.disarm(deadline, Timer::User(id));
                if let UserState::Waiting { conn } = was {
                    self.conns.remove_waiter(conn, id);
                }
                true
            }
        }
    }

    fn drain_during_hold_down(&mut self) -> bool {
        let Some(gen_id) = self.gens.current() else {
            return false;
        };
        let returning: Vec<ServerId> = self
            .servers
            .iter()
            .filter(|(_, s)| matches!(s.health, HealthState::Returning { .. }))
            .map(|(id, _)| id)
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
        self.conns.set_idle_timer(id, None);
        true
    }

    fn busy_conn(&self) -> Option<crate::ConnId> {
        self.conns
            .iter()
            .find(|(_, c)| c.state.users() > 0 && !matches!(c.state, ConnState::Connecting { .. }))
            .map(|(id, _)| id)
    }
}
