//! The proptest's ledger of health evidence (issue 16), kept from the inputs
//! and actions alone, never from the pool's own bookkeeping:
//!
//! * a liveness check begins when the pool probes a server that is up; an
//!   answer on that server afterwards (a release, an opened connection) is
//!   fresher evidence, and a failed verdict must then not mark it down;
//! * a returning server becomes trusted only at or after the end of its
//!   hold-down, and never after a failure reported during it;
//! * no bind with a credential a server refused is asked for within the
//!   probe backoff minimum of the refusal;
//! * a user is failed with "no server available" only if every server of
//!   the current generation is down, none is being probed, and each was
//!   tried (marked down, or a probe of it failed) within the probe backoff
//!   minimum: otherwise the pool owed it a connect within its deadline;
//! * (issue 17) a server reports [`Health::Unknown`] exactly while the pool
//!   has had no word of it: no connection to it opened, it refused no bind,
//!   and it was never marked down.

use std::collections::BTreeMap;
use std::time::Duration;

use ldapmux_core::{Action, CredKey, Error, Health, Instant, Pool, ServerId, UserId};

const SLOTS: usize = 8;

#[derive(Debug, Default)]
pub struct Evidence {
    /// Per server: a check in flight, and whether the server answered since.
    check: [Option<bool>; SLOTS],
    /// Per server in its hold-down: its end, and whether it failed meanwhile.
    returning: [Option<(Instant, bool)>; SLOTS],
    /// Per server in its hold-down: a probe was asked and not yet answered.
    hold_probe: [bool; SLOTS],
    /// When each server last refused each credential.
    refused: BTreeMap<(usize, CredKey), Instant>,
    /// Servers probed during the current step.
    probed: Vec<usize>,
    /// When each server was last learnt to be down.
    tried: [Option<Instant>; SLOTS],
    /// Users failed with "no server available" during the current step.
    gave_up: Vec<UserId>,
    /// Per server: a connection to it opened, it refused a bind, or it was
    /// marked down (issue 17). Never cleared: not by a reload, not by a fork.
    reached: [bool; SLOTS],
}

/// Health of every server before a step, and whether it was being probed.
pub struct Before(Vec<(ServerId, Health, bool)>);

impl Before {
    pub fn of(pool: &Pool) -> Before {
        Before(
            pool.status()
                .servers
                .iter()
                .map(|s| (s.id, s.health, pool.probe_in_flight(s.id)))
                .collect(),
        )
    }
}

impl Evidence {
    /// `server` answered an operation or opened a connection.
    pub fn answered(&mut self, server: ServerId) {
        if let Some(answered) = &mut self.check[server.index()] {
            *answered = true;
        }
    }

    /// The process forked: probes and checks in flight belonged to the
    /// parent, and their answers reach no one in the child.
    pub fn forked(&mut self) {
        self.hold_probe = [false; SLOTS];
        self.check = [None; SLOTS];
    }

    /// `server` refused a bind with `cred` at `now`.
    pub fn refused(&mut self, now: Instant, server: ServerId, cred: CredKey) {
        self.refused.insert((server.index(), cred), now);
        self.reached[server.index()] = true;
    }

    /// A connection to `server` bound with `cred` opened.
    pub fn accepted(&mut self, server: ServerId, cred: CredKey) {
        self.refused.remove(&(server.index(), cred));
        self.reached[server.index()] = true;
    }

    /// An action the pool emitted at `now`; `hold` is the probe backoff
    /// minimum, the shortest hold-down of a refused credential.
    pub fn on_action(&mut self, now: Instant, action: &Action, hold: Duration) {
        match *action {
            Action::Open { server, cred, .. } => {
                if let Some(&at) = self.refused.get(&(server.index(), cred)) {
                    assert!(
                        now >= at + hold,
                        "a refused credential is not retried before its hold-down ends: \
                         {cred} sent to {server} {:?} after its refusal",
                        Duration::from_nanos(now.as_nanos() - at.as_nanos())
                    );
                }
            }
            Action::Probe { server } => self.probed.push(server.index()),
            Action::ServerMarkedDown { server } => self.reached[server.index()] = true,
            Action::Fail {
                user,
                error: Error::NoServerAvailable,
                ..
            } => self.gave_up.push(user),
            _ => {}
        }
    }

    /// After a step at `now`; `verdict`: the step was a probe's answer.
    pub fn after_step(
        &mut self,
        before: &Before,
        pool: &Pool,
        now: Instant,
        verdict: Option<(ServerId, bool)>,
    ) {
        if let Some((server, ok)) = verdict {
            let i = server.index();
            if !ok && self.check[i] == Some(true) {
                assert!(
                    !matches!(pool.health(server), Some(Health::Down { .. })),
                    "a check that began before the server's last answer does not mark it down: {server}"
                );
            }
            // Only an answer to a probe asked counts (the test also sends
            // unsolicited ones, which the pool ignores).
            if !ok
                && self.hold_probe[i]
                && let Some((_, failed)) = &mut self.returning[i]
            {
                *failed = true;
            }
            self.hold_probe[i] = false;
            self.check[i] = None;
        }
        for &(id, ref was, was_probing) in before.0.iter().take(SLOTS) {
            let i = id.index();
            let now_health = pool.health(id);
            let down = matches!(now_health, Some(Health::Down { .. }));
            let probe_ended =
                (was_probing || self.probed.contains(&i)) && !pool.probe_in_flight(id);
            if down && (!matches!(was, Health::Down { .. }) || probe_ended) {
                self.tried[i] = Some(now);
            }
            if matches!(was, Health::Returning { .. }) && now_health == Some(Health::Up) {
                let (until, failed) = self.returning[i].expect("hold-down seen");
                assert!(
                    !failed,
                    "no fail-back to a server that failed during its hold-down: s{i}"
                );
                assert!(
                    now >= until,
                    "no fail-back before the hold-down ends: s{i} trusted at {now}, hold-down until {until}"
                );
            }
            match now_health {
                Some(Health::Returning { until }) => {
                    if self.returning[i].is_none_or(|(u, _)| u != until) {
                        self.returning[i] = Some((until, false));
                    }
                    if self.probed.contains(&i) {
                        self.hold_probe[i] = true;
                    }
                }
                _ => {
                    self.returning[i] = None;
                    self.hold_probe[i] = false;
                }
            }
            let probed_while_up =
                self.probed.contains(&i) && *was == Health::Up && now_health == Some(Health::Up);
            if now_health != Some(Health::Up) {
                self.check[i] = None;
            } else if probed_while_up {
                self.check[i] = Some(false);
            }
        }
        self.probed.clear();
        for s in pool.status().servers {
            let reached = self.reached[s.id.index()];
            assert_eq!(
                s.health == Health::Unknown,
                !reached,
                "a server is unknown exactly while the pool has had no word of it \
                 (no connection opened, no bind refused, never marked down): {} is {:?}, \
                 reached: {reached}",
                s.id,
                s.health
            );
        }
        let hold = pool
            .config()
            .map_or(Duration::ZERO, |c| c.probe_backoff_min);
        for user in std::mem::take(&mut self.gave_up) {
            for &id in pool.current_servers() {
                let tried = self.tried.get(id.index()).copied().flatten();
                assert!(
                    matches!(pool.health(id), Some(Health::Down { .. }))
                        && !pool.probe_in_flight(id)
                        && tried.is_some_and(|t| now < t + hold),
                    "a user who finds every server down gets a connect tried within its \
                     deadline: {user} failed with no server available at {now} though {id} \
                     ({:?}, probed: {}) was last tried at {tried:?}",
                    pool.health(id),
                    pool.probe_in_flight(id)
                );
            }
        }
    }
}
