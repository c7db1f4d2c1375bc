//! The driver: the pool behind one lock, inputs fed and actions drained under
//! it, I/O and wake-ups carried out after it is released.

use std::collections::BTreeMap;
use std::task::Waker;

use ldapmux_core::{
    Action, CloseReason, Config, ConnError, ConnId, Error, Event, Instant, Pool, Request, ServerId,
    Status, UserId,
};

use crate::io::{Clock, Io, OpenRequest};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard, lock};
use crate::{Acquire, Failure};

/// A thread-safe handle to one pool. Cheap to clone; every clone drives the
/// same pool. See the [crate documentation](crate) for the locking rules.
pub struct Driver {
    pub(crate) shared: Arc<Shared>,
}

impl Clone for Driver {
    fn clone(&self) -> Self {
        Driver {
            shared: self.shared.clone(),
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled (outside the lock) whenever a waiting user gets its outcome.
    pub(crate) outcome_ready: Condvar,
    io: Box<dyn Io>,
    clock: Box<dyn Clock>,
}

pub(crate) struct State {
    pub(crate) pool: Pool,
    /// One slot per user still waiting for (or not yet collecting) its outcome.
    pub(crate) slots: BTreeMap<UserId, Slot>,
    /// Users that were failed while connected (shutdown, fork): what their
    /// lease reports on its next operation.
    pub(crate) interrupted: BTreeMap<UserId, Failure>,
    /// The deadline the runtime was last told about.
    armed: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) outcome: Option<Outcome>,
    pub(crate) waker: Option<Waker>,
    /// A thread may sleep on [`Shared::outcome_ready`] for this outcome
    /// ([`Driver::acquire_blocking`]). Only then is the condvar notified:
    /// a notify costs a `futex` system call even when no thread waits, and
    /// async users, who are woken through their waker, never wait on it.
    pub(crate) blocking: bool,
}

#[derive(Debug)]
pub(crate) enum Outcome {
    Granted(ConnId),
    Failed(Failure),
}

/// What to do once the lock is released.
#[derive(Default)]
struct Effects {
    wakers: Vec<Waker>,
    /// Outcomes delivered to blocking waiters: the condvar is notified if any.
    notify: usize,
    io: Vec<IoCall>,
    timer_changed: bool,
}

enum IoCall {
    Open(OpenRequest),
    Close(ConnId, CloseReason),
    Abandon(ConnId),
    Probe(ServerId, String),
    MarkedDown(ServerId, String),
}

impl Driver {
    /// A driver around `pool`, doing I/O through `io` and reading time from `clock`.
    pub fn new(pool: Pool, io: impl Io + 'static, clock: impl Clock + 'static) -> Driver {
        Driver {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    pool,
                    slots: BTreeMap::new(),
                    interrupted: BTreeMap::new(),
                    armed: None,
                }),
                outcome_ready: Condvar::new(),
                io: Box::new(io),
                clock: Box::new(clock),
            }),
        }
    }

    /// Asks for a connection. The returned future resolves to a [`Lease`]
    /// or a [`Failure`]; dropping it before then cancels the request.
    ///
    /// [`Lease`]: crate::Lease
    pub fn acquire(&self, request: Request) -> Acquire {
        let (user, ready) = self.start(request, false);
        Acquire::new(self.clone(), user, ready)
    }

    /// Asks for a connection and blocks the calling thread until it is
    /// granted, fails, or `timeout` passes (then the request is cancelled and
    /// [`Error::AcquireTimeout`] returned).
    pub fn acquire_blocking(
        &self,
        request: Request,
        timeout: std::time::Duration,
    ) -> Result<crate::Lease, Failure> {
        match self.start(request, true) {
            (user, Some(outcome)) => crate::acquire::into_result(self, user, outcome),
            (user, None) => crate::acquire::wait_blocking(self, user, timeout),
        }
    }

    /// Feeds the request and, in the same lock hold, takes the outcome if
    /// the pool answered at once (a connection free, or a refusal): the
    /// common case then costs one lock round trip, not two, and no wake-up.
    /// Otherwise the outcome arrives in the user's slot later.
    fn start(&self, request: Request, blocking: bool) -> (UserId, Option<Outcome>) {
        let (user, _, ready) = self.run_locked_then(
            self.lock(),
            |st, now| {
                // The slot exists before the pool can answer, even within this input.
                let user = st.pool.handle_acquire(now, request);
                let slot = Slot {
                    blocking,
                    ..Slot::default()
                };
                st.slots.insert(user, slot);
                user
            },
            |st, effects, user| {
                let ready = crate::acquire::take_outcome(st, *user);
                if ready.is_some() && blocking {
                    // Delivered to this very caller, who is not waiting.
                    effects.notify -= 1;
                }
                ready
            },
        );
        (user, ready)
    }

    /// Feeds any event; `Err` means the pool refused it and changed nothing.
    pub fn event(&self, event: Event) -> Result<(), Error> {
        self.run(|st, now| st.pool.handle(now, event)).0
    }

    /// The runtime opened and bound `conn`.
    pub fn conn_opened(&self, conn: ConnId) -> Result<(), Error> {
        self.event(Event::ConnOpened { conn })
    }

    /// The runtime could not open or bind `conn`.
    pub fn conn_open_failed(&self, conn: ConnId, error: ConnError) -> Result<(), Error> {
        self.event(Event::ConnOpenFailed { conn, error })
    }

    /// The runtime saw `conn` die with no user reporting it.
    pub fn conn_lost(&self, conn: ConnId, error: ConnError) -> Result<(), Error> {
        self.event(Event::ConnLost { conn, error })
    }

    /// The credential `conn` was bound with expires at `at` (a Kerberos
    /// ticket's end): the core retires the connection
    /// [`Config::credential_expiry_margin`](ldapmux_core::Config::credential_expiry_margin)
    /// before ([`Event::ConnExpires`]).
    pub fn conn_expires(&self, conn: ConnId, at: Instant) -> Result<(), Error> {
        self.event(Event::ConnExpires { conn, at })
    }

    /// The server announced it is closing `conn` (an LDAP Notice of
    /// Disconnection): no new users, and its death is expected
    /// ([`Event::ConnClosing`]).
    pub fn conn_closing(&self, conn: ConnId) -> Result<(), Error> {
        self.event(Event::ConnClosing { conn })
    }

    /// Answer to [`Io::probe`].
    pub fn probe_result(&self, server: ServerId, ok: bool) -> Result<(), Error> {
        self.event(Event::ProbeResult { server, ok })
    }

    /// A new configuration: starts a new generation.
    pub fn reload(&self, config: Config) -> Result<(), Error> {
        self.event(Event::Reload(Box::new(config)))
    }

    /// A new server list: a new generation that keeps the connections to
    /// servers still listed when nothing else changed
    /// ([`Event::ReloadServers`]).
    pub fn reload_servers(&self, config: Config) -> Result<(), Error> {
        self.event(Event::ReloadServers(Box::new(config)))
    }

    /// Fails every user, closes every connection, refuses later requests.
    pub fn shutdown(&self) {
        let _ = self.event(Event::Shutdown);
    }

    /// The timer requested through [`Io::timer_changed`] fired.
    pub fn on_timer(&self) {
        self.run(|st, now| st.pool.handle_timeout(now));
    }

    /// The deadline the runtime should wake the driver at
    /// ([`Driver::on_timer`]), read under the lock so it is always current.
    pub fn next_timeout(&self) -> Option<Instant> {
        lock(&self.shared.state).pool.poll_timeout().map(|t| t.at)
    }

    /// A snapshot of the pool.
    pub fn status(&self) -> Status {
        lock(&self.shared.state).pool.status()
    }

    /// Runs `f` on the pool under the lock, for inspection. `f` must not call
    /// back into the driver.
    pub fn inspect<R>(&self, f: impl FnOnce(&Pool) -> R) -> R {
        f(&lock(&self.shared.state).pool)
    }

    /// Users whose outcome is still waiting to be collected (0 when idle).
    pub fn pending_waits(&self) -> usize {
        lock(&self.shared.state).slots.len()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    /// Runs one input under the lock, drains every action, releases the lock,
    /// then does the I/O and wakes who must be woken. Returns `f`'s result and
    /// the actions addressed to users that were not waiting (answers to
    /// `ConnBroken`, `GetNext`).
    pub(crate) fn run<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> (R, Vec<Action>) {
        self.run_locked(self.lock(), f)
    }

    /// [`Driver::run`] on a guard the caller already holds.
    pub(crate) fn run_locked<R>(
        &self,
        st: MutexGuard<'_, State>,
        f: impl FnOnce(&mut State, Instant) -> R,
    ) -> (R, Vec<Action>) {
        let (r, answers, ()) = self.run_locked_then(st, f, |_, _, _| ());
        (r, answers)
    }

    /// [`Driver::run_locked`], then `then` still under the lock, after the
    /// drain (to collect what the input delivered).
    fn run_locked_then<R, T>(
        &self,
        mut st: MutexGuard<'_, State>,
        f: impl FnOnce(&mut State, Instant) -> R,
        then: impl FnOnce(&mut State, &mut Effects, &R) -> T,
    ) -> (R, Vec<Action>, T) {
        // Read the clock under the lock, so inputs see time in order.
        let now = self.shared.clock.now();
        let r = f(&mut st, now);
        let mut effects = Effects::default();
        let answers = drain(&mut st, &mut effects);
        let t = then(&mut st, &mut effects, &r);
        drop(st);
        self.execute(effects);
        (r, answers, t)
    }

    fn execute(&self, effects: Effects) {
        for waker in effects.wakers {
            waker.wake();
        }
        if effects.notify > 0 {
            self.shared.outcome_ready.notify_all();
        }
        let io = &self.shared.io;
        for call in effects.io {
            match call {
                IoCall::Open(request) => io.open(request),
                IoCall::Close(conn, reason) => io.close(conn, reason),
                IoCall::Abandon(conn) => io.abandon(conn),
                IoCall::Probe(server, addr) => io.probe(server, &addr),
                IoCall::MarkedDown(server, addr) => io.server_marked_down(server, &addr),
            }
        }
        if effects.timer_changed {
            io.timer_changed();
        }
    }
}

/// Drains every action of the input just fed (the single-mutation invariant).
fn drain(st: &mut State, effects: &mut Effects) -> Vec<Action> {
    let mut answers = Vec::new();
    while let Some(action) = st.pool.poll_action() {
        match action {
            Action::Open {
                conn,
                server,
                cred,
                purpose,
                generation,
            } => {
                let addr = st.pool.server_addr(server).unwrap_or_default().to_string();
                effects.io.push(IoCall::Open(OpenRequest {
                    conn,
                    server,
                    addr,
                    cred,
                    purpose,
                    generation,
                }));
            }
            Action::Close { conn, reason } => effects.io.push(IoCall::Close(conn, reason)),
            Action::Abandon { conn } => effects.io.push(IoCall::Abandon(conn)),
            Action::Probe { server } => {
                let addr = st.pool.server_addr(server).unwrap_or_default().to_string();
                effects.io.push(IoCall::Probe(server, addr));
            }
            Action::ServerMarkedDown { server } => {
                let addr = st.pool.server_addr(server).unwrap_or_default().to_string();
                effects.io.push(IoCall::MarkedDown(server, addr));
            }
            Action::Grant { user, conn } => match st.slots.get_mut(&user) {
                Some(slot) => deliver(slot, Outcome::Granted(conn), effects),
                None => answers.push(action),
            },
            Action::Fail {
                user,
                ref error,
                retry,
            } => {
                let failure = Failure {
                    error: error.clone(),
                    retry,
                };
                match st.slots.get_mut(&user) {
                    Some(slot) => deliver(slot, Outcome::Failed(failure), effects),
                    None => {
                        // A connected user failed by shutdown or fork: its
                        // lease learns why on its next operation.
                        if matches!(error, Error::ShutDown | Error::Forked) {
                            st.interrupted.insert(user, failure);
                        }
                        answers.push(action);
                    }
                }
            }
            other => answers.push(other),
        }
    }
    let next = st.pool.poll_timeout().map(|t| t.at);
    if next != st.armed {
        st.armed = next;
        effects.timer_changed = true;
    }
    answers
}

fn deliver(slot: &mut Slot, outcome: Outcome, effects: &mut Effects) {
    debug_assert!(slot.outcome.is_none(), "a user is woken twice");
    slot.outcome = Some(outcome);
    if let Some(waker) = slot.waker.take() {
        effects.wakers.push(waker);
    }
    if slot.blocking {
        effects.notify += 1;
    }
}
