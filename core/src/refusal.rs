//! Refused credentials: once a server refuses a bind with a credential, no
//! bind with it is sent to that server until the refusal's hold-down ends;
//! then one open at a time may try it again. Another refusal soon after
//! doubles the hold-down (from the probe backoff minimum up to its maximum);
//! an accepted bind forgets the refusal. So a wrong password costs at most
//! one bind per hold-down, however many callers use it, and never feeds a
//! lockout storm. The refusal says nothing about the server: it stays up.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::pool::Pool;
use crate::state::ConnState;
use crate::{ConnId, CredKey, Instant, ServerId};

/// A credential a server refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Refusal {
    /// No bind with it is sent to the server before this.
    pub(crate) until: Instant,
    /// The hold-down that set `until`.
    pub(crate) backoff: Duration,
    /// The open trying the credential again once the hold-down ended.
    pub(crate) trying: Option<ConnId>,
}

/// The refusals in force, by server and credential.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Refusals {
    held: BTreeMap<(ServerId, CredKey), Refusal>,
}

impl Refusals {
    pub(crate) fn get(&self, server: ServerId, cred: CredKey) -> Option<&Refusal> {
        self.held.get(&(server, cred))
    }

    /// An open with `cred` to `server` starts as `conn`: if the credential
    /// was refused there, this open is the one trying it again.
    pub(crate) fn note_attempt(&mut self, server: ServerId, cred: CredKey, conn: ConnId) {
        if let Some(r) = self.held.get_mut(&(server, cred)) {
            r.trying = Some(conn);
        }
    }

    /// `server` refused `cred` at `now`: hold it back for `min`, or twice
    /// the last hold-down (at most `max`) if that ended less than `max` ago.
    pub(crate) fn refused(
        &mut self,
        now: Instant,
        server: ServerId,
        cred: CredKey,
        (min, max): (Duration, Duration),
    ) {
        let backoff = match self.held.get(&(server, cred)) {
            Some(r) if now <= r.until + max => (r.backoff * 2).clamp(min, max),
            _ => min,
        };
        self.held.insert(
            (server, cred),
            Refusal {
                until: now + backoff,
                backoff,
                trying: None,
            },
        );
    }

    /// `server` accepted `cred`: forget any refusal.
    pub(crate) fn accepted(&mut self, server: ServerId, cred: CredKey) {
        if !self.held.is_empty() {
            self.held.remove(&(server, cred));
        }
    }
}

impl Pool {
    /// Whether an open with `cred` to `server` must be held back at `now`:
    /// the server refused the credential and its hold-down has not ended, or
    /// another open is already trying it again.
    pub(crate) fn held_back(&self, now: Instant, server: ServerId, cred: CredKey) -> bool {
        let Some(r) = self.refusals.get(server, cred) else {
            return false;
        };
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::RetryRefusedAtOnce) {
            return false;
        }
        let trying = r.trying.is_some_and(|c| {
            self.conns
                .get(c)
                .is_some_and(|c| matches!(c.state, ConnState::Connecting { .. }))
        });
        now < r.until || trying
    }

    /// An open with `cred` to `server` starts as `conn`: if the credential
    /// was refused there, this open is the one trying it again.
    pub(crate) fn note_bind_attempt(&mut self, server: ServerId, cred: CredKey, conn: ConnId) {
        self.refusals.note_attempt(server, cred, conn);
    }

    /// `server` refused `cred` at `now`: hold it back for the probe backoff
    /// minimum, or twice the last hold-down if that ended less than the
    /// backoff maximum ago.
    pub(crate) fn credential_refused(&mut self, now: Instant, server: ServerId, cred: CredKey) {
        let bounds = self.backoff_bounds();
        self.refusals.refused(now, server, cred, bounds);
    }

    /// `server` accepted `cred`: forget any refusal.
    pub(crate) fn credential_accepted(&mut self, server: ServerId, cred: CredKey) {
        self.refusals.accepted(server, cred);
    }

    /// Whether an open with `cred` to `server` would be held back at `now`
    /// (the server refused it: its hold-down runs, or an open is trying it
    /// again). Such opens are never sent: not for a user, a spare, a rival
    /// or a fail-back warm-up.
    pub fn holds_back(&self, now: Instant, server: ServerId, cred: CredKey) -> bool {
        self.held_back(now, server, cred)
    }

    /// Until when `server` holds `cred` back, if it refused it and the
    /// hold-down has not ended at `now`.
    pub fn credential_held_until(
        &self,
        now: Instant,
        server: ServerId,
        cred: CredKey,
    ) -> Option<Instant> {
        self.refusals
            .get(server, cred)
            .map(|r| r.until)
            .filter(|&until| now < until)
    }
}
