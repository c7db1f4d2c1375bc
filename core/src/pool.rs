//! The pool: the tables, the inputs (`handle_*`), the outputs (`poll_*`) and the
//! bookkeeping primitives every transition is built from.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::conn_table::Conns;
use crate::counters::Tally;
use crate::cred_table::Creds;
use crate::gen_table::{Generations, Holder};
use crate::refusal::Refusals;
use crate::rng::Rng;
use crate::server_table::Servers;
use crate::state::{Generation, User, UserState};
use crate::timers::{Timer, Timers};
use crate::user_table::Users;
use crate::{
    Action, CloseReason, Config, ConnId, Error, Event, GenId, Instant, MAX_TRIES, Purpose, Request,
    ServerId, Timeout, UserId, UserKind,
};

/// The connection pool state machine. See the [crate documentation](crate)
/// for its contract and run loop.
///
/// It holds its tables (each a type with private fields that keeps its own
/// invariants) and coordinates them: the handlers in the other modules of
/// this crate change the tables only through their methods.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pool {
    pub(crate) gens: Generations,
    pub(crate) servers: Servers,
    pub(crate) users: Users,
    pub(crate) conns: Conns,
    pub(crate) creds: Creds,
    pub(crate) refusals: Refusals,
    pub(crate) timers: Timers,
    /// Kept out of equality and hashing (see [`Tally`]).
    pub(crate) counters: Tally,
    shut_down: bool,
    multiplex: bool,
    rng: Rng,
    actions: VecDeque<Action>,
    /// Ids handed to requests refused before they entered a generation
    /// (slot `u32::MAX`, which no table reaches).
    rejected: u32,
    /// A placement bug planted by a test (feature `fault-hooks` only).
    #[cfg(feature = "fault-hooks")]
    policy_bug: Option<crate::PolicyBug>,
}

impl Pool {
    /// A pool with one current generation running `config`. `seed` drives
    /// backoff jitter; `now` is the caller's clock.
    pub fn new(config: Config, seed: u64, now: Instant) -> Result<Pool, Error> {
        let _ = now;
        config.validate()?;
        let mut pool = Pool {
            gens: Generations::default(),
            servers: Servers::default(),
            users: Users::default(),
            conns: Conns::default(),
            creds: Creds::default(),
            refusals: Refusals::default(),
            timers: Timers::default(),
            counters: Tally::default(),
            shut_down: false,
            multiplex: true,
            rng: Rng::new(seed),
            actions: VecDeque::new(),
            rejected: 0,
            #[cfg(feature = "fault-hooks")]
            policy_bug: None,
        };
        pool.start_generation(Arc::new(config))?;
        Ok(pool)
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// A user asks for a connection. Always returns a new id; the answer comes
    /// as an [`Action::Grant`] or [`Action::Fail`] for it, possibly at once
    /// (e.g. [`Error::ShutDown`]).
    pub fn handle_acquire(&mut self, now: Instant, request: Request) -> UserId {
        self.counters.acquires += 1;
        let Some(gen_id) = self.gens.current().filter(|_| !self.shut_down) else {
            return self.reject(request, Error::ShutDown);
        };
        if request.attempt == 0 || request.attempt > MAX_TRIES {
            let attempt = request.attempt;
            return self.reject(
                request,
                Error::BadAttempt {
                    attempt,
                    max: MAX_TRIES,
                },
            );
        }
        let server = match &request.server {
            Some(addr) => match self.intern_server(addr) {
                Ok(s) => Some(s),
                Err(e) => return self.reject(request, e),
            },
            None => None,
        };
        let config = self.gens.config(gen_id).expect("current generation exists");
        let deadline = request
            .deadline
            .unwrap_or(now + config.default_acquire_timeout);
        let user = self.users.insert(User {
            gen_id,
            kind: request.kind,
            cred: request.cred,
            server,
            private: false,
            wants_private: request.private,
            keep: request.keep,
            referral: request.referral,
            pages: request.pages,
            attempt: request.attempt,
            deadline,
            state: UserState::Queued,
        });
        self.gens.take_ref(gen_id, Holder::User);
        if deadline <= now {
            self.fail_user(now, user, Error::AcquireTimeout, false);
            return user;
        }
        self.place(now, user, true);
        user
    }

    /// Feeds one event. An `Err` means the event was not applied (stale id,
    /// misuse, bad configuration) and changed nothing.
    pub fn handle(&mut self, now: Instant, event: Event) -> Result<(), Error> {
        let result = self.dispatch(now, event);
        self.service_queue(now);
        result
    }

    pub(crate) fn dispatch(&mut self, now: Instant, event: Event) -> Result<(), Error> {
        match event {
            Event::ConnOpened { conn } => self.on_conn_opened(now, conn),
            Event::ConnOpenFailed { conn, error } => self.on_conn_open_failed(now, conn, error),
            Event::ConnLost { conn, error } => self.on_conn_lost(now, conn, error),
            Event::Release { user } => {
                let conn = self.connected_conn(user, "Release")?;
                // The operation got its answer: fresher than any check of
                // the server in flight.
                if let Some(server) = self.conns.get(conn).map(|c| c.server) {
                    self.server_answered(server);
                }
                self.end_user(now, user);
                self.counters.releases += 1;
                Ok(())
            }
            Event::ConnExpires { conn, at } => {
                self.conns.get(conn).ok_or(Error::UnknownConn(conn))?;
                self.expire_conn(now, conn, at);
                Ok(())
            }
            Event::ConnClosing { conn } => {
                self.conns.get(conn).ok_or(Error::UnknownConn(conn))?;
                self.on_conn_closing(conn);
                Ok(())
            }
            Event::Retire { user } => {
                let conn = self.connected_conn(user, "Retire")?;
                self.drain_conn(conn, CloseReason::Retired);
                self.end_user(now, user);
                self.counters.releases += 1;
                Ok(())
            }
            Event::ConnBroken {
                user,
                error,
                request_sent,
            } => {
                let conn = self.connected_conn(user, "ConnBroken")?;
                self.on_conn_broken(now, user, conn, error, request_sent);
                Ok(())
            }
            Event::Cancel { user } => {
                self.user_or_err(user)?;
                self.counters.cancels += 1;
                self.end_user(now, user);
                Ok(())
            }
            Event::GetNext { user } => self.on_get_next(now, user),
            Event::ServerDown { server } => {
                self.server_or_err(server)?;
                self.mark_down(now, server);
                Ok(())
            }
            Event::ServerUp { server } => {
                self.server_or_err(server)?;
                self.mark_up(now, server);
                Ok(())
            }
            Event::ProbeResult { server, ok } => {
                self.server_or_err(server)?;
                self.on_probe_result(now, server, ok);
                Ok(())
            }
            Event::Reload(config) => self.reload(now, *config, false),
            Event::ReloadServers(config) => self.reload(now, *config, true),
            Event::Shutdown => {
                self.shutdown();
                Ok(())
            }
            Event::Forked => {
                self.forked(now);
                Ok(())
            }
            Event::MultiplexUnsupported => {
                self.multiplex = false;
                Ok(())
            }
        }
    }

    /// Time passed: fires every timer due at `now`. Calling it early, late or
    /// twice is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::User(user) => self.on_user_deadline(now, user),
                Timer::Connect(conn) => self.on_connect_deadline(now, conn),
                Timer::Idle(conn) => self.on_idle_timer(now, conn),
                Timer::MaxAge(conn) => self.on_max_age(now, conn),
                Timer::Probe(server) => self.on_probe_timer(now, server),
                Timer::ProbeOverdue(server) => self.on_probe_overdue(now, server),
                Timer::Race(conn) => self.on_race_timer(now, conn),
                Timer::CredentialExpiry(conn) => self.on_credential_expiry(now, conn),
            }
        }
        self.service_queue(now);
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next action to carry out, in the order the core decided them.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Pool::handle_timeout`] next, and why.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Timeout> {
        self.timers.first().map(|(at, timer)| Timeout {
            at,
            reason: timer.reason(),
        })
    }

    // ------------------------------------------------------------------
    // Getters
    // ------------------------------------------------------------------

    /// The address of `server`.
    pub fn server_addr(&self, server: ServerId) -> Option<&str> {
        self.servers.get(server).map(|s| s.addr.as_str())
    }

    /// The id of the server with address `addr` (case-insensitive), if known.
    pub fn server_id(&self, addr: &str) -> Option<ServerId> {
        self.servers.find(addr)
    }

    /// The current generation; `None` once shut down.
    pub fn current_generation(&self) -> Option<GenId> {
        self.gens.current()
    }

    /// The configuration in force; `None` once shut down.
    pub fn config(&self) -> Option<&Config> {
        self.current_gen().map(|g| &*g.config)
    }

    /// Whether [`Event::Shutdown`] was handled.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// Users per connection in force (1 after [`Event::MultiplexUnsupported`]).
    pub fn user_cap(&self) -> u32 {
        self.current_gen().map_or(1, |g| self.cap(&g.config))
    }

    // ------------------------------------------------------------------
    // Primitives
    // ------------------------------------------------------------------

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(crate) fn current_gen(&self) -> Option<&Generation> {
        self.gens.current_gen()
    }

    /// Shutdown begins: from now on nothing is placed, probed or failed back.
    pub(crate) fn set_shut_down(&mut self) {
        self.shut_down = true;
    }

    /// `backoff` plus up to half of it again, from the seeded generator.
    pub(crate) fn jittered(&mut self, backoff: Duration) -> Duration {
        let half = u64::try_from(backoff.as_nanos() / 2).unwrap_or(u64::MAX);
        backoff + Duration::from_nanos(self.rng.up_to(half))
    }

    pub(crate) fn cap(&self, config: &Config) -> u32 {
        if self.multiplex {
            config.max_users_per_conn
        } else {
            1
        }
    }

    /// Interns `addr` (case-insensitive) in the server table, with its
    /// counters.
    pub(crate) fn intern_server(&mut self, addr: &str) -> Result<ServerId, Error> {
        let (id, new) = self.servers.intern(addr)?;
        if new {
            self.counters.servers.push(Default::default());
        }
        Ok(id)
    }

    /// Makes a new current generation running `config` (detaching the one
    /// current before, which keeps its current reference for the caller to
    /// drop).
    pub(crate) fn start_generation(&mut self, config: Arc<Config>) -> Result<GenId, Error> {
        let mut ordered: Vec<(u8, u32, ServerId)> = Vec::with_capacity(config.servers.len());
        for (i, s) in config.servers.iter().enumerate() {
            let id = self.intern_server(&s.addr)?;
            let rank = match s.preference {
                Some(p) => (0, u32::from(p)),
                None => (1, i as u32),
            };
            ordered.push((rank.0, rank.1, id));
        }
        ordered.sort();
        let servers = ordered.into_iter().map(|(_, _, id)| id).collect();
        self.counters.generations += 1;
        Ok(self.gens.start(config, servers))
    }

    pub(crate) fn has_conn_room(&self, gen_id: GenId, server: ServerId) -> bool {
        let limit = self
            .gens
            .config(gen_id)
            .map_or(0, |c| c.max_conns_per_server);
        self.servers.conns(server) < limit
    }

    /// Removes `user` from whatever it waits on or uses, then from the pool.
    pub(crate) fn end_user(&mut self, now: Instant, user_id: UserId) {
        let user = self.users.remove(user_id).expect("user exists");
        self.timers.disarm(user.deadline, Timer::User(user_id));
        match user.state {
            // The table took it out of the queue.
            UserState::Queued => {}
            UserState::Waiting { conn } => {
                let private = self
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.purpose == Purpose::Private);
                // A private connection opened for this user alone is not
                // wanted any more; a shared one is kept for the next user.
                if self.conns.remove_waiter(conn, user_id) == Some(true) && private {
                    self.close_conn(conn, CloseReason::Done);
                }
            }
            UserState::Connected { conn, .. } => {
                if user.pages {
                    self.conns.set_paging(conn, false);
                }
                self.leave_conn(now, conn);
            }
        }
        self.gens.drop_ref(user.gen_id, Holder::User);
    }

    /// Ends `user` with an [`Action::Fail`].
    pub(crate) fn fail_user(&mut self, now: Instant, user: UserId, error: Error, retry: bool) {
        self.end_user(now, user);
        self.counters.fails += 1;
        if retry {
            self.counters.retries_offered += 1;
        }
        self.push(Action::Fail { user, error, retry });
    }

    /// Whether a user whose try failed may try again (behaviour 9).
    pub(crate) fn retry_allowed(&self, user_id: UserId, request_sent: bool) -> bool {
        let Some(user) = self.users.get(user_id) else {
            return false;
        };
        if self.shut_down || user.attempt >= MAX_TRIES {
            return false;
        }
        match user.kind {
            UserKind::Search => true,
            UserKind::Getent => !matches!(
                user.state,
                UserState::Connected {
                    enumerating: true,
                    ..
                }
            ),
            UserKind::Write | UserKind::Auth => !request_sent,
        }
    }

    pub(crate) fn reject(&mut self, request: Request, error: Error) -> UserId {
        // A user that never entered a generation: give it an id that no
        // table holds, so every later event for it is a stale-id error.
        let _ = request;
        self.rejected = self.rejected.wrapping_add(1);
        let id = UserId {
            slot: u32::MAX,
            incarnation: self.rejected,
        };
        self.counters.fails += 1;
        self.push(Action::Fail {
            user: id,
            error,
            retry: false,
        });
        id
    }

    pub(crate) fn user_or_err(&self, user: UserId) -> Result<&User, Error> {
        self.users.get(user).ok_or(Error::UnknownUser(user))
    }

    pub(crate) fn connected_conn(
        &self,
        user_id: UserId,
        event: &'static str,
    ) -> Result<ConnId, Error> {
        let user = self.user_or_err(user_id)?;
        match user.state {
            UserState::Connected { conn, .. } => Ok(conn),
            ref other => Err(unexpected(event, user_id, other.name())),
        }
    }
}

/// Test-only placement bugs (feature `fault-hooks`).
#[cfg(feature = "fault-hooks")]
impl Pool {
    /// Breaks a placement rule from now on (see [`PolicyBug`](crate::PolicyBug)).
    pub fn plant_policy_bug(&mut self, bug: crate::PolicyBug) {
        self.policy_bug = Some(bug);
    }

    /// Whether `bug` was planted.
    pub(crate) fn has_bug(&self, bug: crate::PolicyBug) -> bool {
        self.policy_bug == Some(bug)
    }
}

pub(crate) fn unexpected(
    event: &'static str,
    object: impl std::fmt::Display,
    state: &'static str,
) -> Error {
    Error::UnexpectedEvent {
        event,
        object: object.to_string(),
        state,
    }
}
