//! The timer table: one ordered set of `(deadline, timer)`; the first entry is
//! the next wake-up. Entries are removed eagerly where the deadline is known
//! and validated when they fire, so a stale entry only causes a harmless
//! spurious wake-up.

use std::collections::BTreeSet;

use crate::{ConnId, Instant, ServerId, TimerReason, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Timer {
    User(UserId),
    Connect(ConnId),
    Idle(ConnId),
    MaxAge(ConnId),
    Probe(ServerId),
    ProbeOverdue(ServerId),
    Race(ConnId),
    CredentialExpiry(ConnId),
}

impl Timer {
    pub(crate) fn reason(self) -> TimerReason {
        match self {
            Timer::User(_) => TimerReason::UserDeadline,
            Timer::Connect(_) => TimerReason::ConnectTimeout,
            Timer::Idle(_) => TimerReason::Idle,
            Timer::MaxAge(_) => TimerReason::MaxAge,
            Timer::Probe(_) => TimerReason::Probe,
            Timer::ProbeOverdue(_) => TimerReason::ProbeOverdue,
            Timer::Race(_) => TimerReason::ConnectRace,
            Timer::CredentialExpiry(_) => TimerReason::CredentialExpiry,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Timers(BTreeSet<(Instant, Timer)>);

impl Timers {
    pub(crate) fn arm(&mut self, at: Instant, timer: Timer) {
        self.0.insert((at, timer));
    }

    pub(crate) fn disarm(&mut self, at: Instant, timer: Timer) {
        self.0.remove(&(at, timer));
    }

    pub(crate) fn contains(&self, at: Instant, timer: Timer) -> bool {
        self.0.contains(&(at, timer))
    }

    pub(crate) fn first(&self) -> Option<(Instant, Timer)> {
        self.0.first().copied()
    }

    /// Removes and returns the first timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Timer)> {
        let &(at, _) = self.0.first()?;
        if at > now {
            return None;
        }
        self.0.pop_first()
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}
