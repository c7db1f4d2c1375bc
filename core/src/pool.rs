//! The pool: the tables, the inputs (`handle_*`), the outputs (`poll_*`) and the
//! bookkeeping primitives every transition is built from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::index::{Index, MatchKey};
use crate::info::{Counters, CredCount};
use crate::rng::Rng;
use crate::server::Server;
use crate::slab::Slab;
use crate::state::{Conn, ConnState, Generation, User, UserState};
use crate::timers::{Timer, Timers};
use crate::{
    Action, CloseReason, Config, ConnError, ConnErrorKind, ConnId, Error, Event, GenId, Instant,
    MAX_TRIES, Purpose, Request, ServerId, Timeout, UserId, UserKind,
};

/// Who holds a reference to a generation (seed: the `ref_cnt` rule).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Holder {
    /// The pool, while the generation is current.
    Current,
    /// A user of the generation.
    User,
    /// A connection of the generation.
    Conn,
}

/// The connection pool state machine. See the [crate documentation](crate)
/// for its contract and run loop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pool {
    pub(crate) gens: Slab<GenId, Generation>,
    pub(crate) current: Option<GenId>,
    pub(crate) shut_down: bool,
    pub(crate) multiplex: bool,
    pub(crate) servers: Vec<Server>,
    pub(crate) users: Slab<UserId, User>,
    pub(crate) conns: Slab<ConnId, Conn>,
    pub(crate) index: Index,
    /// Users waiting for a connection slot, in arrival order.
    pub(crate) queue: VecDeque<UserId>,
    pub(crate) timers: Timers,
    pub(crate) creds: BTreeMap<crate::CredKey, CredCount>,
    pub(crate) rng: Rng,
    pub(crate) actions: VecDeque<Action>,
    /// Ids handed to requests refused before they entered a generation
    /// (slot `u32::MAX`, which no table reaches).
    pub(crate) rejected: u32,
    pub(crate) counters: Counters,
    /// Credentials servers refused, held back (see [`crate::refusal`]).
    pub(crate) refusals: BTreeMap<(crate::ServerId, crate::CredKey), crate::refusal::Refusal>,
    /// A placement bug planted by a test (feature `fault-hooks` only).
    #[cfg(feature = "fault-hooks")]
    pub(crate) policy_bug: Option<crate::PolicyBug>,
}

impl Pool {
    /// A pool with one current generation running `config`. `seed` drives
    /// backoff jitter; `now` is the caller's clock.
    pub fn new(config: Config, seed: u64, now: Instant) -> Result<Pool, Error> {
        let _ = now;
        config.validate()?;
        let mut pool = Pool {
            gens: Slab::default(),
            current: None,
            shut_down: false,
            multiplex: true,
            servers: Vec::new(),
            users: Slab::default(),
            conns: Slab::default(),
            index: Index::default(),
            queue: VecDeque::new(),
            timers: Timers::default(),
            creds: BTreeMap::new(),
            rng: Rng::new(seed),
            actions: VecDeque::new(),
            rejected: 0,
            counters: Counters::default(),
            refusals: BTreeMap::new(),
            #[cfg(feature = "fault-hooks")]
            policy_bug: None,
        };
        let g = pool.new_generation(Arc::new(config))?;
        pool.current = Some(g);
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
        let Some(gen_id) = self.current.filter(|_| !self.shut_down) else {
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
        let generation = &self.gens.get(gen_id).expect("current generation exists");
        let deadline = request
            .deadline
            .unwrap_or(now + generation.config.default_acquire_timeout);
        let user = self.users.insert(User {
            gen_id,
            kind: request.kind,
            cred: request.cred,
            server,
            private: false,
            wants_private: request.kind == UserKind::Auth || request.private,
            keep: request.keep,
            referral: request.referral,
            attempt: request.attempt,
            deadline,
            state: UserState::Queued,
        });
        self.gen_ref(gen_id, Holder::User);
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

    fn dispatch(&mut self, now: Instant, event: Event) -> Result<(), Error> {
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
        self.servers.get(server.index()).map(|s| s.addr.as_str())
    }

    /// The id of the server with address `addr` (case-insensitive), if known.
    pub fn server_id(&self, addr: &str) -> Option<ServerId> {
        self.find_server(addr)
    }

    /// The current generation; `None` once shut down.
    pub fn current_generation(&self) -> Option<GenId> {
        self.current
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
    // Event handlers
    // ------------------------------------------------------------------

    fn on_conn_opened(&mut self, now: Instant, conn_id: ConnId) -> Result<(), Error> {
        let conn = self
            .conns
            .get_mut(conn_id)
            .ok_or(Error::UnknownConn(conn_id))?;
        let ConnState::Connecting {
            waiters,
            deadline,
            race_at,
            rival,
        } = &mut conn.state
        else {
            return Err(unexpected("ConnOpened", conn_id, conn.state.name()));
        };
        let mut waiters = std::mem::take(waiters);
        let deadline = *deadline;
        let race_at = *race_at;
        let rival = rival.take();
        conn.state = ConnState::Open {
            users: 0,
            opened: now,
            idle_since: Some(now),
            idle_timer: None,
        };
        let key = self.key_of(conn_id);
        self.timers.disarm(deadline, Timer::Connect(conn_id));
        self.disarm_race(conn_id, race_at);
        if let Some(rival) = rival {
            waiters.extend(self.won_race(rival, conn_id));
        }
        self.counters.opens += 1;
        self.counters.servers[key.server.index()].opens += 1;
        self.server_answered(key.server);
        self.credential_accepted(key.server, key.cred);
        if key.purpose != Purpose::Private {
            self.index.remove_connecting(&key, conn_id);
            self.index.insert_open(key, conn_id, 0);
        }
        if let Some(age) = self
            .gens
            .get(key.gen_id)
            .and_then(|g| g.config.max_conn_age)
        {
            self.timers.arm(now + age, Timer::MaxAge(conn_id));
        }
        let cap = self.gens.get(key.gen_id).map_or(1, |g| self.cap(&g.config));
        let (granted, displaced) = waiters.split_at(waiters.len().min(cap as usize));
        for &user in granted {
            self.attach(now, user, conn_id);
        }
        for &user in displaced {
            if let Some(u) = self.users.get_mut(user) {
                u.state = UserState::Queued; // unplaced until placed again
            }
            self.place(now, user, true);
        }
        if self
            .conns
            .get(conn_id)
            .is_some_and(|c| c.state.users() == 0)
        {
            self.conn_went_idle(now, conn_id);
        }
        self.drain_worse(now, key);
        Ok(())
    }

    fn on_conn_open_failed(
        &mut self,
        now: Instant,
        conn_id: ConnId,
        error: ConnError,
    ) -> Result<(), Error> {
        let conn = self.conns.get(conn_id).ok_or(Error::UnknownConn(conn_id))?;
        if !matches!(conn.state, ConnState::Connecting { .. }) {
            return Err(unexpected("ConnOpenFailed", conn_id, conn.state.name()));
        }
        self.connect_failed(now, conn_id, error, None);
        Ok(())
    }

    /// A connection could not be opened: its waiters all get its error
    /// (behaviour 3); the server is marked down unless the bind was refused.
    pub(crate) fn connect_failed(
        &mut self,
        now: Instant,
        conn_id: ConnId,
        error: ConnError,
        close: Option<CloseReason>,
    ) {
        let (server, cred) = self
            .conns
            .get(conn_id)
            .map(|c| (c.server, c.cred))
            .expect("caller checked");
        self.counters.open_failures += 1;
        self.counters.servers[server.index()].open_failures += 1;
        // First, so that nothing this failure sets going (a user placed in
        // the freed slot, say) sends the refused credential again.
        if error.kind == ConnErrorKind::InvalidCredentials {
            self.credential_refused(now, server, cred);
        }
        // A rival still opening takes the waiters: they fail only if it does.
        let mut waiters = self.take_waiters(conn_id);
        if let Some(rival) = self.rival_of(conn_id) {
            waiters = self.hand_waiters(waiters, rival);
        }
        match close {
            Some(reason) => self.close_conn(conn_id, reason),
            None => {
                self.remove_conn(conn_id);
            }
        }
        let user_error = if error.kind == ConnErrorKind::InvalidCredentials {
            Error::InvalidCredentials { server }
        } else {
            Error::ConnectFailed {
                server,
                cause: error.clone(),
            }
        };
        for user in waiters {
            let retry = error.kind.implicates_server() && self.retry_allowed(user, false);
            self.fail_user(now, user, user_error.clone(), retry);
        }
        if error.kind.implicates_server() {
            self.mark_down(now, server);
        }
    }

    fn on_conn_lost(
        &mut self,
        now: Instant,
        conn_id: ConnId,
        error: ConnError,
    ) -> Result<(), Error> {
        let conn = self.conns.get(conn_id).ok_or(Error::UnknownConn(conn_id))?;
        match conn.state {
            ConnState::Connecting { .. } => self.connect_failed(now, conn_id, error, None),
            ConnState::Open { .. } | ConnState::Draining { .. } => {
                self.counters.lost += 1;
                let (kind, server) = (error.kind, conn.server);
                self.break_conn(conn_id, error, CloseReason::Broken);
                self.drain_siblings(conn_id, server, kind);
            }
            ConnState::Broken { .. } => {}
        }
        Ok(())
    }

    fn on_conn_broken(
        &mut self,
        now: Instant,
        user: UserId,
        conn_id: ConnId,
        error: ConnError,
        sent: bool,
    ) {
        let server = self
            .conns
            .get(conn_id)
            .map(|c| c.server)
            .expect("user's conn exists");
        self.counters.lost += 1;
        // Mark the connection before the user leaves, so the user's leaving
        // closes it if it was the last (behaviour 6).
        self.break_conn(conn_id, error.clone(), CloseReason::Broken);
        self.drain_siblings(conn_id, server, error.kind);
        if error.kind == ConnErrorKind::Timeout {
            // No answer in time: is the server alive?
            self.check_server(now, server);
        }
        let retry = self.retry_allowed(user, sent);
        self.fail_user(
            now,
            user,
            Error::ConnectionLost {
                server,
                cause: error,
            },
            retry,
        );
    }

    fn on_get_next(&mut self, now: Instant, user_id: UserId) -> Result<(), Error> {
        let conn_id = self.connected_conn(user_id, "GetNext")?;
        let user = self.users.get(user_id).expect("checked");
        if user.kind != UserKind::Getent {
            return Err(unexpected(
                "GetNext",
                user_id,
                "Connected (not a getent user)",
            ));
        }
        let conn = self.conns.get(conn_id).expect("user's conn exists");
        if let ConnState::Broken { error, .. } = &conn.state {
            // Behaviour 10: the enumeration's connection died; it gets the saved error.
            let err = Error::ConnectionLost {
                server: conn.server,
                cause: error.clone(),
            };
            self.fail_user(now, user_id, err, false);
            return Ok(());
        }
        if let Some(User {
            state: UserState::Connected { enumerating, .. },
            ..
        }) = self.users.get_mut(user_id)
        {
            *enumerating = true;
        }
        self.push(Action::Resume {
            user: user_id,
            conn: conn_id,
        });
        Ok(())
    }

    fn on_user_deadline(&mut self, now: Instant, user: UserId) {
        let Some(u) = self.users.get(user) else {
            return;
        };
        if u.deadline > now || matches!(u.state, UserState::Connected { .. }) {
            return;
        }
        self.counters.timeouts += 1;
        self.fail_user(now, user, Error::AcquireTimeout, false);
    }

    fn on_connect_deadline(&mut self, now: Instant, conn: ConnId) {
        match self.conns.get(conn).map(|c| &c.state) {
            Some(ConnState::Connecting { deadline, .. }) if *deadline <= now => {
                let error = ConnError::new(ConnErrorKind::Timeout, "connect timeout");
                self.connect_failed(now, conn, error, Some(CloseReason::ConnectTimeout));
            }
            _ => {}
        }
    }

    fn on_idle_timer(&mut self, now: Instant, conn_id: ConnId) {
        let limit = self.idle_limit(conn_id);
        let Some(conn) = self.conns.get_mut(conn_id) else {
            return;
        };
        let ConnState::Open {
            users: 0,
            idle_since: Some(since),
            idle_timer,
            ..
        } = &mut conn.state
        else {
            if let ConnState::Open { idle_timer, .. } = &mut conn.state {
                *idle_timer = None;
            }
            return;
        };
        *idle_timer = None;
        let Some(limit) = limit else { return };
        let due = *since + limit;
        if due <= now {
            self.close_conn(conn_id, CloseReason::Idle);
        } else {
            *idle_timer = Some(due);
            self.timers.arm(due, Timer::Idle(conn_id));
        }
    }

    fn on_max_age(&mut self, now: Instant, conn_id: ConnId) {
        let Some(conn) = self.conns.get(conn_id) else {
            return;
        };
        let ConnState::Open { opened, .. } = conn.state else {
            return;
        };
        let Some(age) = self
            .gens
            .get(conn.gen_id)
            .and_then(|g| g.config.max_conn_age)
        else {
            return;
        };
        if opened + age <= now {
            self.drain_conn(conn_id, CloseReason::MaxAge);
        }
    }

    // ------------------------------------------------------------------
    // Primitives
    // ------------------------------------------------------------------

    pub(crate) fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub(crate) fn current_gen(&self) -> Option<&Generation> {
        self.current.and_then(|g| self.gens.get(g))
    }

    pub(crate) fn cap(&self, config: &Config) -> u32 {
        if self.multiplex {
            config.max_users_per_conn
        } else {
            1
        }
    }

    pub(crate) fn new_generation(&mut self, config: Arc<Config>) -> Result<GenId, Error> {
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
        Ok(self.gens.insert(Generation {
            config,
            servers,
            detached: false,
            refs: 1,
            users: 0,
            conns: 0,
        }))
    }

    /// Adds one reference to a generation, held by a user or a connection.
    pub(crate) fn gen_ref(&mut self, gen_id: GenId, holder: Holder) {
        if let Some(g) = self.gens.get_mut(gen_id) {
            g.refs += 1;
            match holder {
                Holder::User => g.users += 1,
                Holder::Conn => g.conns += 1,
                Holder::Current => {}
            }
        }
    }

    /// Drops one reference; a detached generation with none left is freed.
    pub(crate) fn gen_unref(&mut self, gen_id: GenId, holder: Holder) {
        let Some(g) = self.gens.get_mut(gen_id) else {
            return;
        };
        g.refs = g
            .refs
            .checked_sub(1)
            .expect("generation reference count underflow");
        match holder {
            Holder::User => g.users -= 1,
            Holder::Conn => g.conns -= 1,
            Holder::Current => {}
        }
        if g.refs == 0 && g.detached {
            self.gens.remove(gen_id);
        }
    }

    pub(crate) fn key_of(&self, conn: ConnId) -> MatchKey {
        let c = self.conns.get(conn).expect("conn exists");
        MatchKey {
            gen_id: c.gen_id,
            server: c.server,
            cred: c.cred,
            purpose: c.purpose,
            referral: c.referral,
        }
    }

    pub(crate) fn has_conn_room(&self, gen_id: GenId, server: ServerId) -> bool {
        let limit = self
            .gens
            .get(gen_id)
            .map_or(0, |g| g.config.max_conns_per_server);
        self.servers[server.index()].conns < limit
    }

    /// Starts opening a connection for `key`, with `waiters` waiting on it.
    pub(crate) fn open_conn(
        &mut self,
        now: Instant,
        key: MatchKey,
        waiters: Vec<UserId>,
    ) -> ConnId {
        let connect_timeout = self
            .gens
            .get(key.gen_id)
            .expect("generation exists")
            .config
            .connect_timeout;
        let deadline = now + connect_timeout;
        let race_at = self.race_at(now, &key);
        let conn = self.conns.insert(Conn {
            gen_id: key.gen_id,
            server: key.server,
            cred: key.cred,
            purpose: key.purpose,
            referral: key.referral,
            state: ConnState::Connecting {
                waiters,
                deadline,
                race_at,
                rival: None,
            },
        });
        if let Some(at) = race_at {
            self.timers.arm(at, Timer::Race(conn));
        }
        self.gen_ref(key.gen_id, Holder::Conn);
        self.servers[key.server.index()].conns += 1;
        self.creds.entry(key.cred).or_default().conns += 1;
        if key.purpose != Purpose::Private {
            self.index.insert_connecting(key, conn);
        }
        self.timers.arm(deadline, Timer::Connect(conn));
        self.note_bind_attempt(key.server, key.cred, conn);
        self.push(Action::Open {
            conn,
            server: key.server,
            cred: key.cred,
            purpose: key.purpose,
            generation: key.gen_id,
        });
        conn
    }

    /// Hands open connection `conn` to `user`.
    pub(crate) fn attach(&mut self, _now: Instant, user: UserId, conn_id: ConnId) {
        let key = self.key_of(conn_id);
        let conn = self.conns.get_mut(conn_id).expect("conn exists");
        let ConnState::Open {
            users, idle_since, ..
        } = &mut conn.state
        else {
            unreachable!("users are attached to open connections only");
        };
        let load = *users;
        *users += 1;
        *idle_since = None;
        if key.purpose != Purpose::Private {
            self.index.set_load(&key, conn_id, load, load + 1);
        }
        let u = self.users.get_mut(user).expect("user exists");
        let deadline = u.deadline;
        u.state = UserState::Connected {
            conn: conn_id,
            enumerating: false,
        };
        self.timers.disarm(deadline, Timer::User(user));
        self.servers[key.server.index()].users += 1;
        self.creds.entry(key.cred).or_default().users += 1;
        self.counters.grants += 1;
        self.counters.servers[key.server.index()].grants += 1;
        self.push(Action::Grant {
            user,
            conn: conn_id,
        });
    }

    /// Removes `conn` from every table without telling the adapter.
    pub(crate) fn remove_conn(&mut self, conn_id: ConnId) -> Conn {
        let key = self.key_of(conn_id);
        let conn = self.conns.remove(conn_id).expect("conn exists");
        match &conn.state {
            ConnState::Connecting {
                deadline,
                race_at,
                rival,
                ..
            } => {
                self.index.remove_connecting(&key, conn_id);
                self.timers.disarm(*deadline, Timer::Connect(conn_id));
                self.disarm_race(conn_id, *race_at);
                if let Some(rival) = rival {
                    self.unlink_rival(*rival);
                }
            }
            ConnState::Open {
                users,
                opened,
                idle_timer,
                ..
            } => self.retire_open(conn_id, &key, *users, *opened, *idle_timer),
            ConnState::Draining { .. } | ConnState::Broken { .. } => {}
        }
        debug_assert_eq!(conn.state.users(), 0, "removing a connection with users");
        self.servers[key.server.index()].conns -= 1;
        self.cred_dec(key.cred, |c| &mut c.conns);
        self.gen_unref(key.gen_id, Holder::Conn);
        conn
    }

    pub(crate) fn close_conn(&mut self, conn: ConnId, reason: CloseReason) {
        self.remove_conn(conn);
        self.counters.closes += 1;
        self.push(Action::Close { conn, reason });
    }

    /// Takes the waiters off a connecting connection (their state is left for
    /// the caller to set).
    pub(crate) fn take_waiters(&mut self, conn: ConnId) -> Vec<UserId> {
        match self.conns.get_mut(conn).map(|c| &mut c.state) {
            Some(ConnState::Connecting { waiters, .. }) => std::mem::take(waiters),
            _ => Vec::new(),
        }
    }

    /// Abandons an opening connection; returns its waiters for re-placement.
    pub(crate) fn abort_connecting(&mut self, conn: ConnId, reason: CloseReason) -> Vec<UserId> {
        let waiters = self.take_waiters(conn);
        self.close_conn(conn, reason);
        for &u in &waiters {
            if let Some(user) = self.users.get_mut(u) {
                user.state = UserState::Queued; // unplaced; the caller places it
            }
        }
        waiters
    }

    /// The connection died (behaviour 6): no new users; its users see `error`;
    /// it is closed with `reason` when the last one leaves.
    pub(crate) fn break_conn(&mut self, conn_id: ConnId, error: ConnError, reason: CloseReason) {
        let key = self.key_of(conn_id);
        let users = match self.conns.get(conn_id).expect("conn exists").state {
            ConnState::Open {
                users,
                opened,
                idle_timer,
                ..
            } => {
                self.retire_open(conn_id, &key, users, opened, idle_timer);
                users
            }
            ConnState::Draining { users, .. } => users,
            ConnState::Connecting { .. } | ConnState::Broken { .. } => return,
        };
        self.conns.get_mut(conn_id).expect("conn exists").state =
            ConnState::Broken { users, error };
        if users == 0 {
            self.close_conn(conn_id, reason);
        }
    }

    /// Close when the last user leaves (seed `close_conn_mt_when_nouser`).
    pub(crate) fn drain_conn(&mut self, conn_id: ConnId, reason: CloseReason) {
        let key = self.key_of(conn_id);
        let ConnState::Open {
            users,
            opened,
            idle_timer,
            ..
        } = self.conns.get(conn_id).expect("conn exists").state
        else {
            return;
        };
        self.retire_open(conn_id, &key, users, opened, idle_timer);
        self.conns.get_mut(conn_id).expect("conn exists").state =
            ConnState::Draining { users, reason };
        self.counters.drains += 1;
        if users == 0 {
            self.close_conn(conn_id, reason);
        }
    }

    /// An open connection stops taking users (it closes, breaks or drains):
    /// it leaves the match index and its idle and maximum-age timers are
    /// disarmed.
    fn retire_open(
        &mut self,
        conn_id: ConnId,
        key: &MatchKey,
        users: u32,
        opened: Instant,
        idle_timer: Option<Instant>,
    ) {
        if key.purpose != Purpose::Private {
            self.index.remove_open(key, conn_id, users);
        }
        if let Some(at) = idle_timer {
            self.timers.disarm(at, Timer::Idle(conn_id));
        }
        if let Some(age) = self
            .gens
            .get(key.gen_id)
            .and_then(|g| g.config.max_conn_age)
        {
            self.timers.disarm(opened + age, Timer::MaxAge(conn_id));
        }
    }

    fn idle_limit(&self, conn_id: ConnId) -> Option<std::time::Duration> {
        let conn = self.conns.get(conn_id)?;
        let config = &self.gens.get(conn.gen_id)?.config;
        match conn.purpose {
            Purpose::Write => Some(config.write_idle_timeout),
            Purpose::Read => config.read_idle_timeout,
            Purpose::Private => None,
        }
    }

    /// An open connection's last user left: arm its idle timer (behaviour 5).
    pub(crate) fn conn_went_idle(&mut self, now: Instant, conn_id: ConnId) {
        let limit = self.idle_limit(conn_id);
        let Some(conn) = self.conns.get_mut(conn_id) else {
            return;
        };
        let ConnState::Open {
            idle_since,
            idle_timer,
            ..
        } = &mut conn.state
        else {
            return;
        };
        *idle_since = Some(now);
        if let (Some(limit), None) = (limit, *idle_timer) {
            let at = now + limit;
            *idle_timer = Some(at);
            self.timers.arm(at, Timer::Idle(conn_id));
        }
    }

    /// A user leaves its connection (released, failed or cancelled).
    fn leave_conn(&mut self, now: Instant, conn_id: ConnId) {
        let key = self.key_of(conn_id);
        let conn = self.conns.get_mut(conn_id).expect("conn exists");
        let users = conn
            .state
            .users_mut()
            .expect("attached to a non-connecting conn");
        *users -= 1;
        let left = *users;
        let close = match &conn.state {
            ConnState::Open { .. } if key.purpose == Purpose::Private => Some(CloseReason::Done),
            ConnState::Open { .. } => {
                self.index.set_load(&key, conn_id, left + 1, left);
                None
            }
            ConnState::Draining { reason, .. } => (left == 0).then_some(*reason),
            ConnState::Broken { .. } => (left == 0).then_some(CloseReason::Broken),
            ConnState::Connecting { .. } => unreachable!(),
        };
        self.servers[key.server.index()].users -= 1;
        self.cred_dec(key.cred, |c| &mut c.users);
        if let Some(reason) = close {
            self.close_conn(conn_id, reason);
        } else if left == 0 {
            self.conn_went_idle(now, conn_id);
        }
    }

    /// Removes `user` from whatever it waits on or uses, then from the pool.
    pub(crate) fn end_user(&mut self, now: Instant, user_id: UserId) {
        let user = self.users.remove(user_id).expect("user exists");
        self.timers.disarm(user.deadline, Timer::User(user_id));
        match user.state {
            UserState::Queued => {
                if let Some(pos) = self.queue.iter().position(|&u| u == user_id) {
                    self.queue.remove(pos);
                }
            }
            UserState::Waiting { conn } => {
                let private = self
                    .conns
                    .get(conn)
                    .is_some_and(|c| c.purpose == Purpose::Private);
                if let Some(ConnState::Connecting { waiters, .. }) =
                    self.conns.get_mut(conn).map(|c| &mut c.state)
                {
                    waiters.retain(|&u| u != user_id);
                    // A private connection opened for this user alone is not
                    // wanted any more; a shared one is kept for the next user.
                    if private && waiters.is_empty() {
                        self.close_conn(conn, CloseReason::Done);
                    }
                }
            }
            UserState::Connected { conn, .. } => self.leave_conn(now, conn),
        }
        self.gen_unref(user.gen_id, Holder::User);
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

    fn reject(&mut self, request: Request, error: Error) -> UserId {
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

    fn connected_conn(&self, user_id: UserId, event: &'static str) -> Result<ConnId, Error> {
        let user = self.user_or_err(user_id)?;
        match user.state {
            UserState::Connected { conn, .. } => Ok(conn),
            ref other => Err(unexpected(event, user_id, other.name())),
        }
    }

    fn cred_dec(&mut self, cred: crate::CredKey, field: impl FnOnce(&mut CredCount) -> &mut u32) {
        if let Some(c) = self.creds.get_mut(&cred) {
            let f = field(c);
            *f -= 1;
            if c.users == 0 && c.conns == 0 {
                self.creds.remove(&cred);
            }
        }
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
