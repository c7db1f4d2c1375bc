//! Waiting for a connection: a `Future` for any executor, and a blocking wait.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ldapmux_core::{Error, Event, UserId};

use crate::driver::{Outcome, State};
use crate::{Driver, Failure, Lease};

/// A request for a connection in progress. Resolves to a [`Lease`] or a
/// [`Failure`]. Dropping it before it resolves cancels the request: the user
/// leaves the pool (if a connection was granted meanwhile, it is released),
/// and it is never woken again.
#[must_use = "a request does nothing unless polled; dropping it cancels it"]
#[derive(Debug)]
pub struct Acquire {
    driver: Driver,
    user: UserId,
    /// The outcome, if the pool answered within the request itself (then
    /// the user has no slot and polling takes no lock).
    ready: Option<Outcome>,
    done: bool,
}

impl Acquire {
    pub(crate) fn new(driver: Driver, user: UserId, ready: Option<Outcome>) -> Self {
        Acquire {
            driver,
            user,
            ready,
            done: false,
        }
    }

    /// The user id the pool gave this request.
    pub fn user(&self) -> UserId {
        self.user
    }
}

/// Takes the outcome out of `user`'s slot, if it has one.
pub(crate) fn take_outcome(st: &mut State, user: UserId) -> Option<Outcome> {
    let outcome = st.slots.get_mut(&user)?.outcome.take()?;
    st.slots.remove(&user);
    Some(outcome)
}

pub(crate) fn into_result(
    driver: &Driver,
    user: UserId,
    outcome: Outcome,
) -> Result<Lease, Failure> {
    match outcome {
        Outcome::Granted(conn) => Ok(Lease::new(driver.clone(), user, conn)),
        Outcome::Failed(failure) => Err(failure),
    }
}

/// Cancels `user` in the pool under a guard already held: releases a grant
/// that arrived but was never collected, or cancels a wait.
fn cancel(st: &mut State, user: UserId, now: ldapmux_core::Instant) {
    match st.slots.remove(&user).and_then(|slot| slot.outcome) {
        Some(Outcome::Granted(_)) => {
            let _ = st.pool.handle(now, Event::Release { user });
        }
        Some(Outcome::Failed(_)) => {}
        None => {
            let _ = st.pool.handle(now, Event::Cancel { user });
        }
    }
}

impl Future for Acquire {
    type Output = Result<Lease, Failure>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        assert!(!self.done, "Acquire polled after it resolved");
        let user = self.user;
        if let Some(outcome) = self.ready.take() {
            self.done = true;
            return Poll::Ready(into_result(&self.driver, user, outcome));
        }
        let mut st = self.driver.lock();
        if let Some(outcome) = take_outcome(&mut st, user) {
            drop(st);
            self.done = true;
            return Poll::Ready(into_result(&self.driver, user, outcome));
        }
        match st.slots.get_mut(&user) {
            Some(slot) => {
                // Cloning a waker under the lock is bookkeeping, not waking.
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            None => {
                unreachable!("the slot lives until the outcome is taken or the request dropped")
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if !self.done {
            let user = self.user;
            match self.ready.take() {
                // Granted at once and never collected: give it back.
                Some(Outcome::Granted(conn)) => drop(Lease::new(self.driver.clone(), user, conn)),
                Some(Outcome::Failed(_)) => {}
                None => {
                    self.driver.run(|st, now| cancel(st, user, now));
                }
            }
        }
    }
}

pub(crate) fn wait_blocking(
    driver: &Driver,
    user: UserId,
    timeout: Duration,
) -> Result<Lease, Failure> {
    let deadline = std::time::Instant::now() + timeout;
    let mut st = driver.lock();
    loop {
        if let Some(outcome) = take_outcome(&mut st, user) {
            drop(st);
            return into_result(driver, user, outcome);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            // Still under the same lock: no outcome can slip in between the
            // check above and the cancel.
            driver.run_locked(st, |st, now| cancel(st, user, now));
            return Err(Failure {
                error: Error::AcquireTimeout,
                retry: false,
            });
        }
        st = match driver.shared.outcome_ready.wait_timeout(st, left) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}
