//! Server health: probes with backoff and jitter (behaviour 13),
//! server down (behaviour 8) and fail-back with hold-down (behaviour 7).

use std::time::Duration;

use crate::index::MatchKey;
use crate::pool::Pool;
use crate::state::ConnState;
use crate::timers::Timer;
use crate::{
    CloseReason, ConnError, ConnErrorKind, CredKey, Error, GenId, Instant, Purpose, ServerId,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HealthState {
    /// Usable and trusted. `check`: the liveness check an operation timeout
    /// on one of its connections started, while it is in flight.
    Up { check: Option<Check> },
    /// Came back up and usable (ranked after stable servers for new
    /// connections), but not trusted for fail-back until it has stayed up
    /// for the whole hold-down: probed every `probe_backoff_min` and once
    /// more at `until`; any failure sends it down again, resuming (doubled)
    /// `resume_backoff`, the backoff of the down period it left. It becomes
    /// [`HealthState::Up`] on a good probe that began at or after `until`.
    Returning {
        until: Instant,
        resume_backoff: Duration,
        next_probe: Instant,
        /// The probe in flight, if any.
        probing: Option<InFlight>,
    },
    /// Known down. Probed at `next_probe`; `probing` is the deadline of the
    /// probe in flight, if any. `tried`: when the pool last learnt it was
    /// down (marked down, or a probe of it failed); a user who finds every
    /// server down brings a probe forward only once that is a probe
    /// backoff minimum old ([`Pool::await_probe`]).
    Down {
        since: Instant,
        tried: Instant,
        backoff: Duration,
        next_probe: Instant,
        probing: Option<Instant>,
    },
}

/// A liveness check of an [`HealthState::Up`] server (an operation on it
/// timed out): the server is marked down if the check fails, unless the
/// server answered meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Check {
    /// When the check's answer is overdue (counts as a failure).
    pub(crate) deadline: Instant,
    /// An operation on this server got its answer, or a connection to it
    /// opened, since the check began: a failed verdict is then older than
    /// fresher evidence and marks nothing down.
    pub(crate) answered: bool,
}

/// A probe in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InFlight {
    pub(crate) started: Instant,
    pub(crate) deadline: Instant,
}

impl HealthState {
    /// Up and trusted.
    pub(crate) const STABLE: HealthState = HealthState::Up { check: None };
    pub(crate) fn is_down(&self) -> bool {
        matches!(self, HealthState::Down { .. })
    }
    pub(crate) fn is_stable_up(&self) -> bool {
        matches!(self, HealthState::Up { .. })
    }
}

impl Pool {
    pub(crate) fn server_or_err(
        &self,
        server: ServerId,
    ) -> Result<&crate::server_table::Server, Error> {
        self.servers.get(server).ok_or(Error::UnknownServer(server))
    }

    /// Preference of `server` in generation `gen_id`'s configuration.
    fn preference(&self, gen_id: GenId, server: ServerId) -> Option<u16> {
        let generation = self.gens.get(gen_id)?;
        let addr = self.servers.addr(server);
        generation
            .config
            .servers
            .iter()
            .find(|s| s.addr.eq_ignore_ascii_case(addr))?
            .preference
    }

    /// Whether connections on `worse` should fail back to `better` (seed
    /// `check_and_close_conn`): a preferred server beats a less preferred one
    /// and every non-preferred one; non-preferred servers never trigger it.
    pub(crate) fn fails_back_to(&self, gen_id: GenId, worse: ServerId, better: ServerId) -> bool {
        match (
            self.preference(gen_id, better),
            self.preference(gen_id, worse),
        ) {
            (Some(b), Some(w)) => b < w,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The generation's servers whose read connections fail back to `better`.
    pub(crate) fn servers_beaten_by(&self, gen_id: GenId, better: ServerId) -> Vec<ServerId> {
        self.gens.get(gen_id).map_or_else(Vec::new, |g| {
            g.servers
                .iter()
                .copied()
                .filter(|&s| s != better && self.fails_back_to(gen_id, s, better))
                .collect()
        })
    }

    pub(crate) fn backoff_bounds(&self) -> (Duration, Duration) {
        match self.current_gen() {
            Some(g) => (g.config.probe_backoff_min, g.config.probe_backoff_max),
            None => (Duration::from_secs(1), Duration::from_secs(60)),
        }
    }

    /// Marks `server` down and applies behaviour 8 to its connections.
    pub(crate) fn mark_down(&mut self, now: Instant, server: ServerId) {
        if self.servers.health(server).is_down() || self.is_shut_down() {
            return;
        }
        // Known down is known: never `Health::Unknown` again.
        self.counters.reach(server);
        let (min, max) = self.backoff_bounds();
        let mut resumed = None;
        match *self.servers.health(server) {
            HealthState::Returning {
                resume_backoff,
                next_probe,
                probing,
                ..
            } => {
                self.timers.disarm(next_probe, Timer::Probe(server));
                if let Some(p) = probing {
                    self.timers.disarm(p.deadline, Timer::ProbeOverdue(server));
                }
                // Down again before it was trusted: back off further, not afresh.
                resumed = Some((resume_backoff * 2).clamp(min, max));
            }
            HealthState::Up { check: Some(check) } => {
                self.timers
                    .disarm(check.deadline, Timer::ProbeOverdue(server));
            }
            _ => {}
        }
        let (backoff, next_probe) = match resumed {
            Some(backoff) => (backoff, now + self.jittered(backoff).min(max)),
            None => (min, now + self.jittered(min)),
        };
        self.servers.set_health(
            server,
            HealthState::Down {
                since: now,
                tried: now,
                backoff,
                next_probe,
                probing: None,
            },
        );
        self.timers.arm(next_probe, Timer::Probe(server));
        self.counters.servers[server.index()].marked_down += 1;
        self.push(crate::Action::ServerMarkedDown { server });

        let error = ConnError::new(ConnErrorKind::ServerDown, "server reported down");
        let conns: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| c.server == server)
            .map(|(id, _)| id)
            .collect();
        let mut displaced = Vec::new();
        for conn in conns {
            match &self.conns.get(conn).map(|c| &c.state) {
                Some(ConnState::Connecting { .. }) => {
                    displaced.extend(self.abort_connecting(conn, CloseReason::ServerDown));
                }
                Some(ConnState::Open { .. } | ConnState::Draining { .. }) => {
                    self.break_conn(conn, error.clone(), CloseReason::ServerDown);
                }
                _ => {}
            }
        }
        for user in displaced {
            self.place(now, user, true);
        }
    }

    /// Marks `server` up; fail-back follows once it has stayed up for the
    /// whole hold-down ([`HealthState::Returning`]).
    pub(crate) fn mark_up(&mut self, now: Instant, server: ServerId) {
        let HealthState::Down {
            next_probe,
            probing,
            backoff,
            ..
        } = *self.servers.health(server)
        else {
            return;
        };
        self.timers.disarm(next_probe, Timer::Probe(server));
        if let Some(at) = probing {
            self.timers.disarm(at, Timer::ProbeOverdue(server));
        }
        let hold = self
            .current_gen()
            .map_or(Duration::ZERO, |g| g.config.failback_hold_down);
        self.counters.servers[server.index()].marked_up += 1;
        if hold.is_zero() {
            self.servers.set_health(server, HealthState::STABLE);
            self.fail_back_to(now, server);
        } else {
            let until = now + hold;
            let next_probe = self.next_hold_probe(now, until);
            self.servers.set_health(
                server,
                HealthState::Returning {
                    until,
                    resume_backoff: backoff,
                    next_probe,
                    probing: None,
                },
            );
            self.timers.arm(next_probe, Timer::Probe(server));
        }
    }

    /// When a returning server is probed next: a probe backoff minimum from
    /// now, and never after the end of its hold-down.
    fn next_hold_probe(&self, now: Instant, until: Instant) -> Instant {
        let (min, _) = self.backoff_bounds();
        (now + min).min(until).max(now)
    }

    /// The deadline of a probe or check started now.
    fn probe_deadline(&self, now: Instant) -> Instant {
        now + self
            .current_gen()
            .map_or(Duration::from_secs(5), |g| g.config.connect_timeout)
    }

    /// An operation on a connection to `server` got no answer in time: if
    /// the server is up and trusted and no check is in flight, check it (a
    /// probe). Its failure marks the server down unless the server answered
    /// meanwhile ([`Check::answered`]).
    pub(crate) fn check_server(&mut self, now: Instant, server: ServerId) {
        if self.is_shut_down()
            || !matches!(self.servers.health(server), HealthState::Up { check: None })
        {
            return;
        }
        let deadline = self.probe_deadline(now);
        self.servers.set_health(
            server,
            HealthState::Up {
                check: Some(Check {
                    deadline,
                    answered: false,
                }),
            },
        );
        self.timers.arm(deadline, Timer::ProbeOverdue(server));
        self.counters.servers[server.index()].checks += 1;
        self.push(crate::Action::Probe { server });
    }

    /// `server` answered an operation or opened a connection: evidence that
    /// outranks a check in flight.
    pub(crate) fn server_answered(&mut self, server: ServerId) {
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::VerdictIgnoresAnswers) {
            return;
        }
        if let HealthState::Up {
            check: Some(check), ..
        } = self.servers.health_mut(server)
        {
            check.answered = true;
        }
    }

    pub(crate) fn on_probe_result(&mut self, now: Instant, server: ServerId, ok: bool) {
        if self.is_shut_down() {
            return; // nothing is probed or failed back after shutdown
        }
        match *self.servers.health(server) {
            HealthState::Down { .. } if ok => self.mark_up(now, server),
            HealthState::Down {
                since,
                backoff,
                probing: Some(deadline),
                ..
            } => {
                self.timers.disarm(deadline, Timer::ProbeOverdue(server));
                let (_, max) = self.backoff_bounds();
                let backoff = (backoff * 2).min(max);
                let next_probe = now + self.jittered(backoff).min(max);
                self.servers.set_health(
                    server,
                    HealthState::Down {
                        since,
                        tried: now,
                        backoff,
                        next_probe,
                        probing: None,
                    },
                );
                self.timers.arm(next_probe, Timer::Probe(server));
            }
            HealthState::Up { check: Some(check) } => {
                self.timers
                    .disarm(check.deadline, Timer::ProbeOverdue(server));
                self.servers.set_health(server, HealthState::STABLE);
                if !ok {
                    if check.answered {
                        // Older than fresher evidence: the server answered
                        // since the check began.
                        self.counters.servers[server.index()].stale_verdicts += 1;
                    } else {
                        self.mark_down(now, server);
                    }
                }
            }
            HealthState::Returning {
                until,
                resume_backoff,
                probing: Some(probe),
                ..
            } => {
                self.timers
                    .disarm(probe.deadline, Timer::ProbeOverdue(server));
                #[cfg(feature = "fault-hooks")]
                let ok = ok || self.has_bug(crate::PolicyBug::HoldDownIgnoresFailures);
                if !ok {
                    // Failed during its hold-down: down again, and the
                    // hold-down starts afresh when it next answers.
                    self.mark_down(now, server);
                } else if probe.started >= until {
                    // Up for the whole hold-down, and still at its end.
                    self.servers.set_health(server, HealthState::STABLE);
                    self.fail_back_to(now, server);
                } else {
                    let next_probe = self.next_hold_probe(now, until);
                    self.servers.set_health(
                        server,
                        HealthState::Returning {
                            until,
                            resume_backoff,
                            next_probe,
                            probing: None,
                        },
                    );
                    self.timers.arm(next_probe, Timer::Probe(server));
                }
            }
            // Not probing: a late or unsolicited answer.
            _ => {}
        }
    }

    pub(crate) fn on_probe_timer(&mut self, now: Instant, server: ServerId) {
        if self.is_shut_down() {
            return;
        }
        let deadline = self.probe_deadline(now);
        match self.servers.health_mut(server) {
            HealthState::Down {
                next_probe,
                probing: probing @ None,
                ..
            } if *next_probe <= now => *probing = Some(deadline),
            HealthState::Returning {
                next_probe,
                probing: probing @ None,
                ..
            } if *next_probe <= now => {
                *probing = Some(InFlight {
                    started: now,
                    deadline,
                })
            }
            _ => return,
        }
        self.timers.arm(deadline, Timer::ProbeOverdue(server));
        self.counters.servers[server.index()].probes += 1;
        self.push(crate::Action::Probe { server });
    }

    /// Every server of generation `gen_id` is down and `user` names none:
    /// rather than fail it at once, the pool tries a connect for it within
    /// its deadline. The user waits (queued, its deadline armed) for a probe
    /// in flight, or for the probe of the most preferred server not tried
    /// (marked down, or a probe of it failed) within the probe backoff
    /// minimum, brought forward now. Only when every server was tried that
    /// recently and none is being probed does it fail at once with
    /// [`Error::NoServerAvailable`]: the pool tried for it a moment ago, and
    /// a storm of reads during an outage sends at most one probe per server
    /// per backoff minimum. A probe's answer re-places the waiting users
    /// ([`Pool::service_queue`]): a good one makes the server usable, a
    /// failed one moves them to the next server or fails them. Returns as
    /// [`Pool::place`] does.
    pub(crate) fn await_probe(
        &mut self,
        now: Instant,
        user: crate::UserId,
        gen_id: GenId,
        enqueue: bool,
    ) -> bool {
        let (min, _) = self.backoff_bounds();
        let order = self
            .gens
            .get(gen_id)
            .map(|g| g.servers.clone())
            .unwrap_or_default();
        let probing = order.iter().any(|s| {
            matches!(
                *self.servers.health(*s),
                HealthState::Down {
                    probing: Some(_),
                    ..
                }
            )
        });
        #[cfg(feature = "fault-hooks")]
        let gives_up = self.has_bug(crate::PolicyBug::GiveUpWhenAllDown);
        #[cfg(not(feature = "fault-hooks"))]
        let gives_up = false;
        if !probing {
            let untried = order.iter().copied().find(|s| {
                matches!(
                    *self.servers.health(*s),
                    HealthState::Down {
                        tried,
                        probing: None,
                        ..
                    } if now >= tried + min
                )
            });
            match untried {
                Some(server) if !gives_up => self.probe_now(now, server),
                _ => {
                    self.fail_user(now, user, Error::NoServerAvailable, false);
                    return true;
                }
            }
        }
        if enqueue {
            self.enqueue(user);
        }
        enqueue
    }

    /// Brings the probe of down `server` forward to `now`: its scheduled
    /// timer is replaced, and the probe starts as the timer would start it.
    fn probe_now(&mut self, now: Instant, server: ServerId) {
        if let HealthState::Down {
            next_probe,
            probing: None,
            ..
        } = self.servers.health_mut(server)
        {
            let scheduled = std::mem::replace(next_probe, now);
            self.timers.disarm(scheduled, Timer::Probe(server));
            self.counters.servers[server.index()].brought_forward += 1;
            self.on_probe_timer(now, server);
        }
    }

    /// A probe or check got no answer by its deadline: it failed.
    pub(crate) fn on_probe_overdue(&mut self, now: Instant, server: ServerId) {
        let overdue = match *self.servers.health(server) {
            HealthState::Down {
                probing: Some(d), ..
            } => d <= now,
            HealthState::Up { check: Some(c) } => c.deadline <= now,
            HealthState::Returning {
                probing: Some(p), ..
            } => p.deadline <= now,
            _ => false,
        };
        if overdue {
            self.on_probe_result(now, server, false);
        }
    }

    /// Behaviour 7, make-before-break: for each credential whose read
    /// connections sit on a server `server` beats, open a connection to
    /// `server` first; the old ones drain once it is open
    /// ([`Pool::drain_worse`]).
    pub(crate) fn fail_back_to(&mut self, now: Instant, server: ServerId) {
        let Some(gen_id) = self.gens.current() else {
            return;
        };
        let worse = self.servers_beaten_by(gen_id, server);
        let mut creds: Vec<CredKey> = Vec::new();
        for &s in &worse {
            for (_, conn) in self.conns.iter() {
                if conn.gen_id == gen_id
                    && conn.server == s
                    && conn.purpose == Purpose::Read
                    && !conn.referral
                    && matches!(conn.state, ConnState::Open { .. })
                    && !creds.contains(&conn.cred)
                {
                    creds.push(conn.cred);
                }
            }
        }
        for cred in creds {
            let key = MatchKey {
                gen_id,
                server,
                cred,
                purpose: Purpose::Read,
                referral: false,
            };
            if self.conns.index().has_open(&key) {
                self.drain_worse(now, key);
            } else if self.conns.index().connecting(&key).next().is_none()
                && self.has_conn_room(gen_id, server)
                && !self.held_back(now, server, cred)
            {
                self.counters.failback_warmups += 1;
                self.open_conn(now, key, Vec::new());
            }
        }
    }

    /// Drains read connections of `key`'s credential on servers that fail back
    /// to `key.server`, now that a connection to it is open.
    pub(crate) fn drain_worse(&mut self, _now: Instant, key: MatchKey) {
        if key.purpose != Purpose::Read
            || key.referral
            || !self.servers.health(key.server).is_stable_up()
        {
            return;
        }
        for s in self.servers_beaten_by(key.gen_id, key.server) {
            let old = MatchKey { server: s, ..key };
            let conns = self.conns.index().open_conns(&old);
            for conn in conns {
                self.drain_conn(conn, CloseReason::FailBack);
            }
        }
    }
}
