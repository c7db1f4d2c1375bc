//! The models' ledger of health evidence (issue 16), kept from the inputs the
//! model feeds and the actions the pool emits, never from the pool's own
//! bookkeeping:
//!
//! * a liveness check begins when an input makes the pool count one (it
//!   probes a server that is up after an operation timed out); an answer on
//!   that server afterwards (a release, an opened connection) is fresher
//!   evidence, and a failed verdict must then not mark the server down;
//! * a returning server becomes trusted only at or after the end of its
//!   hold-down, and never after a probe it failed during the hold-down;
//! * no bind with a credential a server refused is asked for within the
//!   probe backoff minimum of the refusal;
//! * a user is failed with "no server available" only if every server of
//!   the current generation is down, none is being probed, and each was
//!   tried (marked down, or a probe of it failed) within the probe backoff
//!   minimum.

use std::time::Duration;

use ldapmux_core::{Action, CredKey, Error, Health, Instant, Pool, ServerId};

use crate::SERVERS;

/// What the model saw of checks, hold-downs and refusals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Evidence {
    /// Per server: a check in flight, and whether the server answered since.
    check: [Option<bool>; 4],
    /// Per server in its hold-down: its end, and whether it failed a probe
    /// meanwhile.
    hold: [Option<(Instant, bool)>; 4],
    /// Per server: the credential it last refused, and when.
    refused: [Option<(CredKey, Instant)>; 4],
    /// A failed verdict marked a server down that had answered since its
    /// check began.
    pub stale_verdict_obeyed: bool,
    /// A failed verdict was overruled by a fresher answer.
    pub stale_verdict_ignored: bool,
    /// A returning server was trusted after failing during its hold-down, or
    /// before the hold-down ended.
    pub trusted_too_soon: bool,
    /// A refused credential was sent again within its hold-down.
    pub refused_sent_again: bool,
    /// An open with a refused credential was held back.
    pub held_back: bool,
    /// Per server while it is down: when the pool last learnt so.
    tried: [Option<Instant>; 4],
    /// Servers probed, and users failed for want of a server, during the
    /// current input (empty between inputs).
    probed: [bool; 4],
    gave_up: bool,
    /// A user was failed with "no server available" though a server had
    /// not been tried for a probe backoff minimum, or was being probed.
    pub gave_up_untried: bool,
    /// A probe was brought forward for a user who found every server down.
    pub brought_forward: bool,
}

/// Health and the counters the evidence reads, before an input.
pub struct Before {
    health: [Option<Health>; 4],
    probing: [bool; 4],
    checks: [u64; 4],
    held_back: u64,
    brought_forward: u64,
}

fn ids(pool: &Pool) -> [Option<ServerId>; 4] {
    std::array::from_fn(|s| pool.server_id(SERVERS[s]))
}

fn index_of(pool: &Pool, server: ServerId) -> Option<usize> {
    let addr = pool.server_addr(server)?;
    SERVERS.iter().position(|s| *s == addr)
}

impl Before {
    pub fn of(pool: &Pool) -> Before {
        let ids = ids(pool);
        let counters = pool.status().counters;
        let count = |id: Option<ServerId>, f: fn(&ldapmux_core::ServerCounters) -> u64| {
            id.and_then(|id| counters.servers.get(id.index()))
                .map_or(0, f)
        };
        Before {
            health: ids.map(|id| id.and_then(|id| crate::health(pool, id))),
            probing: ids.map(|id| id.is_some_and(|id| pool.probe_in_flight(id))),
            checks: ids.map(|id| count(id, |c| c.checks)),
            held_back: counters.servers.iter().map(|c| c.held_back).sum(),
            brought_forward: counters.servers.iter().map(|c| c.brought_forward).sum(),
        }
    }
}

impl Evidence {
    /// `server` answered an operation or opened a connection.
    pub fn answered(&mut self, pool: &Pool, server: ServerId) {
        if let Some(s) = index_of(pool, server)
            && let Some(answered) = &mut self.check[s]
        {
            *answered = true;
        }
    }

    /// `server` refused `cred` at `now`.
    pub fn refused(&mut self, pool: &Pool, server: ServerId, cred: CredKey, now: Instant) {
        if let Some(s) = index_of(pool, server) {
            self.refused[s] = Some((cred, now));
        }
    }

    /// `server` accepted `cred`.
    pub fn accepted(&mut self, pool: &Pool, server: ServerId, cred: CredKey) {
        if let Some(s) = index_of(pool, server)
            && self.refused[s].is_some_and(|(c, _)| c == cred)
        {
            self.refused[s] = None;
        }
    }

    /// An action of the pool at `now`.
    pub fn on_action(&mut self, pool: &Pool, action: &Action, now: Instant) {
        match *action {
            Action::Probe { server } => {
                if let Some(s) = index_of(pool, server) {
                    self.probed[s] = true;
                }
            }
            Action::Fail {
                error: Error::NoServerAvailable,
                ..
            } => self.gave_up = true,
            _ => {}
        }
        if let Action::Open { server, cred, .. } = *action
            && let Some(s) = index_of(pool, server)
            && let Some((refused, at)) = self.refused[s]
            && refused == cred
        {
            let hold = pool
                .config()
                .map_or(Duration::ZERO, |c| c.probe_backoff_min);
            if now < at + hold {
                self.refused_sent_again = true;
            }
        }
    }

    /// After an input at `now`; `verdict`: the input was the answer `ok` of
    /// a probe of server `s` (by index into [`SERVERS`]) that was in flight.
    pub fn after_input(
        &mut self,
        before: &Before,
        pool: &Pool,
        now: Instant,
        verdict: Option<(usize, bool)>,
    ) {
        let ids = ids(pool);
        if let Some((s, ok)) = verdict {
            if !ok && self.check[s] == Some(true) {
                let down = ids[s]
                    .and_then(|id| crate::health(pool, id))
                    .is_some_and(|h| matches!(h, Health::Down { .. }));
                if down {
                    self.stale_verdict_obeyed = true;
                } else {
                    self.stale_verdict_ignored = true;
                }
            }
            if !ok && let Some((_, failed)) = &mut self.hold[s] {
                *failed = true;
            }
            self.check[s] = None;
        }
        let counters = pool.status().counters;
        if counters.servers.iter().map(|c| c.held_back).sum::<u64>() > before.held_back {
            self.held_back = true;
        }
        if counters
            .servers
            .iter()
            .map(|c| c.brought_forward)
            .sum::<u64>()
            > before.brought_forward
        {
            self.brought_forward = true;
        }
        for (s, id) in ids.iter().enumerate() {
            let Some(id) = *id else { continue };
            let health = crate::health(pool, id);
            if matches!(before.health[s], Some(Health::Returning { .. }))
                && health == Some(Health::Up)
                && self.hold[s].is_some_and(|(until, failed)| failed || now < until)
            {
                self.trusted_too_soon = true;
            }
            match health {
                Some(Health::Returning { until }) => {
                    if self.hold[s].is_none_or(|(u, _)| u != until) {
                        self.hold[s] = Some((until, false));
                    }
                }
                _ => self.hold[s] = None,
            }
            let probing = pool.probe_in_flight(id);
            match health {
                Some(Health::Down { .. }) => {
                    let ended = (before.probing[s] || self.probed[s]) && !probing;
                    if !matches!(before.health[s], Some(Health::Down { .. })) || ended {
                        self.tried[s] = Some(now);
                    }
                }
                _ => self.tried[s] = None,
            }
            let checks = counters.servers.get(id.index()).map_or(0, |c| c.checks);
            if health != Some(Health::Up) {
                self.check[s] = None;
            } else if checks > before.checks[s] {
                self.check[s] = Some(false);
            }
        }
        self.probed = [false; 4];
        if std::mem::take(&mut self.gave_up) {
            let hold = pool
                .config()
                .map_or(Duration::ZERO, |c| c.probe_backoff_min);
            let owed = pool.current_servers().iter().any(|&id| {
                let tried = index_of(pool, id).and_then(|s| self.tried[s]);
                !matches!(crate::health(pool, id), Some(Health::Down { .. }))
                    || pool.probe_in_flight(id)
                    || tried.is_none_or(|t| now >= t + hold)
            });
            if owed {
                self.gave_up_untried = true;
            }
        }
    }
}
