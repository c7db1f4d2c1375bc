//! # ldapmux-model: stateright models of the real `ldapmux-core`
//!
//! A [`PoolModel`]'s state holds the real [`Pool`] (it is `Clone + Eq +
//! Hash`) plus a small [`Ledger`] of what each user was told. Its actions are
//! the core's inputs, chosen nondeterministically within [`Budget`]: users of
//! given kinds and credentials ask, connections open, fail or die, servers go
//! down and come back, probes answer, the configuration reloads, the pool shuts
//! down or forks, users release, break, cancel, read their next entry or retry,
//! and time jumps to the pool's next deadline. After every input all actions
//! are drained and recorded in the ledger. Nothing of the pool's logic is
//! re-implemented here.
//!
//! The properties are named as sentences; see [`PoolModel::properties`] and
//! `docs/verification.md`. [`models`] lists the models the `check` command runs.

use std::collections::BTreeMap;
use std::time::Duration;

use ldapmux_core::{
    Action, CloseReason, Config, ConnError, ConnErrorKind, ConnId, ConnInfo, ConnPhase, CredKey,
    Event, GenPhase, Health, Instant, MAX_TRIES, Pool, Purpose, Request, UserId, UserKind,
    UserPhase,
};
use stateright::{Model, Property};

mod evidence;
mod simulate;
pub use evidence::Evidence;
pub use simulate::{SimulationReport, simulate, simulate_with_bug};

/// Addresses of the model's servers, most preferred first.
pub const SERVERS: [&str; 4] = ["ldap://a", "ldap://b", "ldap://c", "ldap://d"];

/// One user the model may create.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserSpec {
    /// What it does.
    pub kind: UserKind,
    /// Its credential.
    pub cred: CredKey,
    /// The server it names, by index into [`SERVERS`].
    pub server: Option<usize>,
}

impl UserSpec {
    /// A user of `kind` with credential `cred`, any server.
    pub fn new(kind: UserKind, cred: u64) -> Self {
        UserSpec {
            kind,
            cred: CredKey(cred),
            server: None,
        }
    }
}

/// How much of each input the model may use: these bound the state space.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Budget {
    /// Connection opens that may fail.
    pub open_failures: u8,
    /// Connections that may die (`ConnLost`) or be reported broken.
    pub breaks: u8,
    /// Operations that may time out (`ConnBroken` with a timeout: the pool
    /// checks the server).
    pub timeouts: u8,
    /// Binds that may be refused (`ConnOpenFailed` with invalid credentials).
    pub refusals: u8,
    /// Users that may cancel.
    pub cancels: u8,
    /// Server-down notices.
    pub downs: u8,
    /// Server-up notices.
    pub ups: u8,
    /// Probe answers.
    pub probes: u8,
    /// Retries after a `Fail { retry: true }`.
    pub retries: u8,
    /// Reloads.
    pub reloads: u8,
    /// New server lists (`Event::ReloadServers`, as DNS SRV discovery sends):
    /// the last configured server is dropped, or listed again.
    pub server_changes: u8,
    /// Shutdowns.
    pub shutdowns: u8,
    /// Forks.
    pub forks: u8,
    /// Jumps to the next deadline.
    pub ticks: u8,
    /// New operations by users that finished (0 in exhaustive models).
    pub repeats: u16,
}

/// A bug planted in the model wrapper, to prove a property can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// Every grant is delivered twice.
    DuplicateWake,
    /// Failures of waiting users are lost.
    DropWake,
    /// Every failure offers a retry.
    FlipRetry,
    /// A grant is fabricated after shutdown (of a connection that was open
    /// before it).
    GrantAfterShutdown,
    /// A server-down notice is recorded but never reaches the pool.
    SwallowServerDown,
}

/// A model of one pool.
#[derive(Clone)]
pub struct PoolModel {
    /// Its name, for reports.
    pub name: &'static str,
    /// The configuration (servers must come from [`SERVERS`]).
    pub config: Config,
    /// The users it may create.
    pub users: Vec<UserSpec>,
    /// Its budget of inputs.
    pub budget: Budget,
    /// A wrapper bug to plant, for tests.
    pub bug: Option<Bug>,
    /// A corruption of the pool to plant once (through the core's test-only
    /// `fault-hooks`), for tests. After it, the state is terminal.
    pub plant: Option<fn(&mut Pool) -> bool>,
    /// A placement rule to break in the pool from the start (through the
    /// core's test-only `PolicyBug`), for tests.
    pub policy: Option<fn(&mut Pool)>,
    /// The `sometimes` properties this model must reach (each model exercises
    /// some of them; all `always` properties apply to every model).
    pub reaches: &'static [&'static str],
}

/// "a detached generation is freed once its users leave"
pub const DETACHED_FREED: &str = "a detached generation is freed once its users leave";
/// "fail-back happens"
pub const FAIL_BACK: &str = "fail-back happens";
/// "a coalesced connect serves two waiters"
pub const COALESCED: &str = "a coalesced connect serves two waiters";
/// "a reload drains an old generation while a new one serves"
pub const OLD_AND_NEW: &str = "a reload drains an old generation while a new one serves";
/// "a new server list keeps a connection to a server still listed"
pub const KEPT: &str = "a new server list keeps a connection to a server still listed";

/// "a busy connection gets a spare"
pub const SPARE: &str = "a busy connection gets a spare";
/// "a rival serves the waiters of a slow connect"
pub const RIVAL_SERVED: &str = "a rival serves the waiters of a slow connect";
/// "a late verdict yields to a fresher answer"
pub const VERDICT_YIELDS: &str = "a late verdict yields to a fresher answer";
/// "a refused credential is held back"
pub const HELD_BACK: &str = "a refused credential is held back";
/// "a read that finds every server down waits for a probe brought forward"
pub const BROUGHT_FORWARD: &str =
    "a read that finds every server down waits for a probe brought forward";

/// Where a user stands, as the ledger saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// Not asked yet.
    NotAsked,
    /// Asked, no answer yet.
    Waiting,
    /// Granted a connection.
    Granted,
    /// Finished (released, failed or cancelled).
    Done,
}

/// What one user was told.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// Its current try's id.
    pub id: Option<UserId>,
    /// Its current try number.
    pub attempt: u8,
    /// Where it stands.
    pub seen: Seen,
    /// Wake-ups (Grant or Fail while waiting) of the current try.
    pub wakeups: u8,
    /// It cancelled.
    pub cancelled: bool,
    /// Its request may have reached the server when its connection broke.
    pub sent: bool,
    /// Its last failure offered a retry.
    pub retry_offered: bool,
    /// It already asked for a next entry.
    pub got_next: bool,
    /// The connection its last `Grant` named.
    pub conn: Option<ConnId>,
}

/// What the properties read besides the pool: per-user records and flags.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ledger {
    /// One record per [`UserSpec`].
    pub users: Vec<Record>,
    /// Shutdown was fed.
    pub shut_down: bool,
    /// Servers (by index into [`SERVERS`]) reported down and not since
    /// reported up or answering a probe.
    pub down: [bool; 4],
    /// A grant was seen after shutdown.
    pub granted_after_shutdown: bool,
    /// A grant was seen on a connection to a server known down.
    pub granted_to_down_server: bool,
    /// A retry was offered for a write whose request may have been sent.
    pub sent_write_retry_offered: bool,
    /// A retry was offered at the last try.
    pub retry_beyond_max: bool,
    /// A fail-back drain was seen.
    pub failed_back: bool,
    /// A connection was drained for fail-back while no more preferred server
    /// was up and out of its hold-down.
    pub drained_in_hold_down: bool,
    /// One opened connection was handed to two waiters at once.
    pub coalesced_two: bool,
    /// A detached generation was freed while the pool ran on.
    pub detached_freed: bool,
    /// An old generation served a user while the new one served another.
    pub old_and_new_served: bool,
    /// A connection moved to the new generation of a new server list.
    pub kept_across_reload: bool,
    /// A step broke spread before stack ([`ldapmux_core::check_spread_step`]).
    pub spread_broken: bool,
    /// A spare was opened beside busy connections.
    pub spare_opened: bool,
    /// A step broke connect racing ([`ldapmux_core::check_race_step`]).
    pub race_broken: bool,
    /// A rival that opened first served waiters of the slow connection.
    pub rival_served: bool,
    /// Liveness checks, hold-downs and refused credentials (issue 16).
    pub evidence: Evidence,
    /// The planted corruption was applied.
    pub planted: bool,
}

/// The model's state: the real pool, the clock, the ledger, what is left of the budget.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The real core.
    pub pool: Pool,
    /// The model's clock.
    pub now: Instant,
    /// What users were told.
    pub ledger: Ledger,
    /// What is left of the budget.
    pub left: Budget,
}

/// One input, named subject-verb-object.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// User `i` asks for a connection (or retries).
    UserAsks(usize),
    /// The runtime opens connection `c`.
    RuntimeOpens(ConnId),
    /// The runtime fails to open connection `c`.
    RuntimeFailsToOpen(ConnId),
    /// The runtime sees connection `c` die.
    RuntimeLoses(ConnId),
    /// User `i` releases its connection.
    UserReleases(usize),
    /// User `i` sees its connection die; `sent`: its request may have left.
    UserSeesBroken(usize, bool),
    /// User `i`'s operation gets no answer in time.
    UserTimesOut(usize),
    /// The server refuses the bind of connection `c`.
    RuntimeRefusesBind(ConnId),
    /// User `i` cancels.
    UserCancels(usize),
    /// Getent user `i` asks for its next entry.
    UserReadsNext(usize),
    /// Server `s` is reported down.
    FeedReportsDown(usize),
    /// Server `s` is reported up.
    FeedReportsUp(usize),
    /// The probe of server `s` answers.
    ProbeAnswers(usize, bool),
    /// The configuration is reloaded.
    AdminReloads,
    /// Discovery sends a new server list: without the last server, or with
    /// it again.
    DiscoveryChangesServers,
    /// The pool is shut down.
    AdminShutsDown,
    /// The process forks.
    ProcessForks,
    /// Time jumps to the pool's next deadline.
    ClockTicks,
    /// The planted corruption happens.
    BugStrikes,
}

impl PoolModel {
    fn server_id(&self, pool: &Pool, s: usize) -> Option<ldapmux_core::ServerId> {
        pool.server_id(SERVERS[s])
    }

    fn request(&self, i: usize, attempt: u8) -> Request {
        let spec = &self.users[i];
        let mut r = Request::new(spec.kind, spec.cred);
        if let Some(s) = spec.server {
            r = r.server(SERVERS[s]);
        }
        for _ in 1..attempt {
            r = r.retry();
        }
        r
    }

    fn index_of(state: &State, user: UserId) -> Option<usize> {
        state.ledger.users.iter().position(|r| r.id == Some(user))
    }

    /// Drains the pool's actions into the ledger; returns the connections
    /// closed for fail-back.
    fn observe(&self, st: &mut State) -> Vec<ConnId> {
        let mut failed_back = Vec::new();
        let mut grants_per_conn: BTreeMap<ConnId, u8> = BTreeMap::new();
        let mut actions = Vec::new();
        while let Some(a) = st.pool.poll_action() {
            actions.push(a);
        }
        for action in actions {
            st.ledger.evidence.on_action(&st.pool, &action, st.now);
            match action {
                Action::Grant { user, conn } => {
                    let times = if self.bug == Some(Bug::DuplicateWake) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..times {
                        self.observe_grant(st, user, conn);
                    }
                    *grants_per_conn.entry(conn).or_default() += 1;
                }
                Action::Fail { user, retry, .. } => {
                    let retry = retry || self.bug == Some(Bug::FlipRetry);
                    let Some(i) = Self::index_of(st, user) else {
                        continue;
                    };
                    let kind = self.users[i].kind;
                    let rec = &mut st.ledger.users[i];
                    if rec.seen == Seen::Waiting {
                        if self.bug == Some(Bug::DropWake) {
                            continue;
                        }
                        rec.wakeups += 1;
                    }
                    rec.seen = Seen::Done;
                    rec.retry_offered = retry;
                    if retry && rec.attempt >= MAX_TRIES {
                        st.ledger.retry_beyond_max = true;
                    }
                    if retry && rec.sent && matches!(kind, UserKind::Write | UserKind::Auth) {
                        st.ledger.sent_write_retry_offered = true;
                    }
                }
                Action::Close {
                    conn,
                    reason: CloseReason::FailBack,
                } => {
                    st.ledger.failed_back = true;
                    failed_back.push(conn);
                }
                _ => {}
            }
        }
        if grants_per_conn.values().any(|&n| n >= 2) {
            st.ledger.coalesced_two = true;
        }
        failed_back
    }

    /// Records a fail-back drain made while no more preferred server was up
    /// and out of its hold-down: connections drained for fail-back in this
    /// step (still draining, or drained and closed at once).
    fn note_failback_drains(&self, last: &State, st: &mut State, closed: &[ConnId]) {
        let was_draining = |id: ConnId| {
            last.pool
                .conn(id)
                .is_some_and(|c| c.drain_reason == Some(CloseReason::FailBack))
        };
        let mut drained: Vec<ldapmux_core::ServerId> = st
            .pool
            .conns()
            .filter(|c| c.drain_reason == Some(CloseReason::FailBack) && !was_draining(c.id))
            .map(|c| c.server)
            .collect();
        drained.extend(
            closed
                .iter()
                .filter(|&&id| !was_draining(id))
                .filter_map(|&id| last.pool.conn(id).map(|c| c.server)),
        );
        for server in drained {
            let Some(s) = server_index(&st.pool, server) else {
                continue;
            };
            let trusted_better = (0..s).any(|b| {
                self.server_id(&st.pool, b)
                    .is_some_and(|id| st.pool.health(id) == Some(Health::Up))
            });
            if !trusted_better {
                st.ledger.drained_in_hold_down = true;
            }
        }
    }

    fn observe_grant(&self, st: &mut State, user: UserId, conn: ConnId) {
        if st.ledger.shut_down {
            st.ledger.granted_after_shutdown = true;
        }
        if let Some(c) = st.pool.conn(conn)
            && !matches!(c.phase, ConnPhase::Broken(_))
        {
            let known_down = server_index(&st.pool, c.server).is_some_and(|s| st.ledger.down[s]);
            let pool_down = matches!(st.pool.health(c.server), Some(Health::Down { .. }));
            if known_down || pool_down {
                st.ledger.granted_to_down_server = true;
            }
        }
        if let Some(i) = Self::index_of(st, user) {
            let rec = &mut st.ledger.users[i];
            rec.wakeups += 1;
            rec.seen = Seen::Granted;
            rec.conn = Some(conn);
        }
    }

    fn after_input(&self, st: &mut State, gens_before: usize) {
        let gens: Vec<_> = st.pool.generations().collect();
        if !st.pool.is_shut_down()
            && gens.len() < gens_before
            && gens.len() == 1
            && gens_before >= 2
        {
            st.ledger.detached_freed = true;
        }
        if gens.len() >= 2 {
            let on = |phase| {
                st.pool.users().any(|u| {
                    u.phase == UserPhase::Connected
                        && gens
                            .iter()
                            .any(|g| g.id == u.generation && g.phase == phase)
                })
            };
            if on(GenPhase::Detached) && on(GenPhase::Active) {
                st.ledger.old_and_new_served = true;
            }
        }
    }
}

fn err(kind: ConnErrorKind) -> ConnError {
    ConnError::new(kind, "model")
}

impl Model for PoolModel {
    type State = State;
    type Action = Step;

    fn init_states(&self) -> Vec<State> {
        let mut pool =
            Pool::new(self.config.clone(), 1, Instant::ZERO).expect("valid model config");
        if let Some(policy) = self.policy {
            policy(&mut pool);
        }
        let record = Record {
            id: None,
            attempt: 0,
            seen: Seen::NotAsked,
            wakeups: 0,
            cancelled: false,
            sent: false,
            retry_offered: false,
            got_next: false,
            conn: None,
        };
        vec![State {
            pool,
            now: Instant::ZERO,
            ledger: Ledger {
                users: vec![record; self.users.len()],
                shut_down: false,
                down: [false; 4],
                granted_after_shutdown: false,
                granted_to_down_server: false,
                sent_write_retry_offered: false,
                retry_beyond_max: false,
                failed_back: false,
                drained_in_hold_down: false,
                coalesced_two: false,
                detached_freed: false,
                old_and_new_served: false,
                kept_across_reload: false,
                spread_broken: false,
                spare_opened: false,
                race_broken: false,
                rival_served: false,
                evidence: Evidence::default(),
                planted: false,
            },
            left: self.budget.clone(),
        }]
    }

    fn actions(&self, st: &State, out: &mut Vec<Step>) {
        if st.ledger.planted {
            return;
        }
        if self.plant.is_some() {
            out.push(Step::BugStrikes);
        }
        for (i, rec) in st.ledger.users.iter().enumerate() {
            match rec.seen {
                Seen::NotAsked => out.push(Step::UserAsks(i)),
                Seen::Done if rec.retry_offered && st.left.retries > 0 => {
                    out.push(Step::UserAsks(i))
                }
                Seen::Done if st.left.repeats > 0 => out.push(Step::UserAsks(i)),
                Seen::Granted => {
                    out.push(Step::UserReleases(i));
                    if st.left.breaks > 0 {
                        out.push(Step::UserSeesBroken(i, false));
                        out.push(Step::UserSeesBroken(i, true));
                    }
                    if st.left.timeouts > 0 {
                        out.push(Step::UserTimesOut(i));
                    }
                    if self.users[i].kind == UserKind::Getent && !rec.got_next {
                        out.push(Step::UserReadsNext(i));
                    }
                }
                _ => {}
            }
            if matches!(rec.seen, Seen::Waiting | Seen::Granted) && st.left.cancels > 0 {
                out.push(Step::UserCancels(i));
            }
        }
        for c in st.pool.conns() {
            match c.phase {
                ConnPhase::Connecting => {
                    out.push(Step::RuntimeOpens(c.id));
                    if st.left.open_failures > 0 {
                        out.push(Step::RuntimeFailsToOpen(c.id));
                    }
                    if st.left.refusals > 0 {
                        out.push(Step::RuntimeRefusesBind(c.id));
                    }
                }
                ConnPhase::Open if st.left.breaks > 0 => out.push(Step::RuntimeLoses(c.id)),
                _ => {}
            }
        }
        let running = !st.pool.is_shut_down();
        for s in 0..self.config.servers.len() {
            let Some(id) = self.server_id(&st.pool, s) else {
                continue;
            };
            // A probe in flight (of a down server, of a returning one in
            // its hold-down, or the liveness check of one that is up).
            let answers = st.left.probes > 0 && st.pool.probe_in_flight(id);
            let health = st.pool.health(id);
            if answers {
                out.push(Step::ProbeAnswers(s, true));
                out.push(Step::ProbeAnswers(s, false));
            }
            match health {
                Some(Health::Down { .. }) if !answers && st.left.ups > 0 => {
                    out.push(Step::FeedReportsUp(s))
                }
                Some(Health::Up | Health::Returning { .. }) if st.left.downs > 0 && running => {
                    out.push(Step::FeedReportsDown(s))
                }
                _ => {}
            }
        }
        if st.left.reloads > 0 && running {
            out.push(Step::AdminReloads);
        }
        if st.left.server_changes > 0 && running && self.config.servers.len() > 1 {
            out.push(Step::DiscoveryChangesServers);
        }
        if st.left.shutdowns > 0 && running {
            out.push(Step::AdminShutsDown);
        }
        if st.left.forks > 0 && running {
            out.push(Step::ProcessForks);
        }
        if st.left.ticks > 0 && st.pool.poll_timeout().is_some() {
            out.push(Step::ClockTicks);
        }
    }

    fn next_state(&self, last: &State, step: Step) -> Option<State> {
        let mut st = last.clone();
        let now = st.now;
        let gens_before = st.pool.generations().count();
        let id = |st: &State, i: usize| st.ledger.users[i].id.expect("asked");
        let before = evidence::Before::of(&st.pool);
        let mut verdict = None;
        match step {
            Step::UserAsks(i) => {
                let rec = &st.ledger.users[i];
                let retrying = rec.seen == Seen::Done && rec.retry_offered && st.left.retries > 0;
                let attempt = if retrying { rec.attempt + 1 } else { 1 };
                if retrying {
                    st.left.retries -= 1;
                } else if rec.seen == Seen::Done {
                    st.left.repeats -= 1;
                }
                let before: Vec<ConnInfo> = st.pool.conns().collect();
                let spreads = st.pool.status().counters.spreads;
                let user = st.pool.handle_acquire(now, self.request(i, attempt));
                if ldapmux_core::check_spread_step(&before, &st.pool, user, now).is_err() {
                    st.ledger.spread_broken = true;
                }
                if st.pool.status().counters.spreads > spreads {
                    st.ledger.spare_opened = true;
                }
                let rec = &mut st.ledger.users[i];
                *rec = Record {
                    id: Some(user),
                    attempt,
                    seen: Seen::Waiting,
                    wakeups: 0,
                    cancelled: false,
                    sent: false,
                    retry_offered: false,
                    got_next: false,
                    conn: None,
                };
            }
            Step::RuntimeOpens(c) => {
                if let Some(info) = st.pool.conn(c) {
                    st.ledger.evidence.answered(&st.pool, info.server);
                    st.ledger
                        .evidence
                        .accepted(&st.pool, info.server, info.cred);
                }
                let before: Vec<ConnInfo> = st.pool.conns().collect();
                st.pool.handle(now, Event::ConnOpened { conn: c }).ok()?;
                match ldapmux_core::check_race_step(&before, &st.pool, c) {
                    Ok(served) => st.ledger.rival_served |= served,
                    Err(_) => st.ledger.race_broken = true,
                }
            }
            Step::RuntimeFailsToOpen(c) => {
                st.left.open_failures -= 1;
                st.pool
                    .handle(
                        now,
                        Event::ConnOpenFailed {
                            conn: c,
                            error: err(ConnErrorKind::Refused),
                        },
                    )
                    .ok()?;
            }
            Step::RuntimeLoses(c) => {
                st.left.breaks -= 1;
                st.pool
                    .handle(
                        now,
                        Event::ConnLost {
                            conn: c,
                            error: err(ConnErrorKind::Io),
                        },
                    )
                    .ok()?;
            }
            Step::UserReleases(i) => {
                let user = id(&st, i);
                if let Some(server) = st
                    .pool
                    .user(user)
                    .and_then(|u| u.conn)
                    .and_then(|c| st.pool.conn(c))
                    .map(|c| c.server)
                {
                    st.ledger.evidence.answered(&st.pool, server);
                }
                st.pool.handle(now, Event::Release { user }).ok()?;
                st.ledger.users[i].seen = Seen::Done;
            }
            Step::UserSeesBroken(i, sent) => {
                st.left.breaks -= 1;
                let user = id(&st, i);
                st.ledger.users[i].sent = sent;
                st.pool
                    .handle(
                        now,
                        Event::ConnBroken {
                            user,
                            error: err(ConnErrorKind::Io),
                            request_sent: sent,
                        },
                    )
                    .ok()?;
            }
            Step::UserTimesOut(i) => {
                st.left.timeouts -= 1;
                let user = id(&st, i);
                st.ledger.users[i].sent = true;
                st.pool
                    .handle(
                        now,
                        Event::ConnBroken {
                            user,
                            error: err(ConnErrorKind::Timeout),
                            request_sent: true,
                        },
                    )
                    .ok()?;
            }
            Step::RuntimeRefusesBind(c) => {
                st.left.refusals -= 1;
                let info = st.pool.conn(c)?;
                st.ledger
                    .evidence
                    .refused(&st.pool, info.server, info.cred, now);
                st.pool
                    .handle(
                        now,
                        Event::ConnOpenFailed {
                            conn: c,
                            error: err(ConnErrorKind::InvalidCredentials),
                        },
                    )
                    .ok()?;
            }
            Step::UserCancels(i) => {
                st.left.cancels -= 1;
                let user = id(&st, i);
                st.pool.handle(now, Event::Cancel { user }).ok()?;
                let rec = &mut st.ledger.users[i];
                rec.seen = Seen::Done;
                rec.cancelled = true;
                rec.retry_offered = false;
            }
            Step::UserReadsNext(i) => {
                let user = id(&st, i);
                st.ledger.users[i].got_next = true;
                st.pool.handle(now, Event::GetNext { user }).ok()?;
            }
            Step::FeedReportsDown(s) => {
                st.left.downs -= 1;
                let server = self.server_id(&st.pool, s)?;
                st.ledger.down[s] = true;
                if self.bug != Some(Bug::SwallowServerDown) {
                    st.pool.handle(now, Event::ServerDown { server }).ok()?;
                }
            }
            Step::FeedReportsUp(s) => {
                st.left.ups -= 1;
                let server = self.server_id(&st.pool, s)?;
                st.pool.handle(now, Event::ServerUp { server }).ok()?;
                st.ledger.down[s] = false;
            }
            Step::ProbeAnswers(s, ok) => {
                st.left.probes -= 1;
                verdict = Some((s, ok));
                let server = self.server_id(&st.pool, s)?;
                st.pool
                    .handle(now, Event::ProbeResult { server, ok })
                    .ok()?;
                if ok {
                    st.ledger.down[s] = false;
                }
            }
            Step::AdminReloads => {
                st.left.reloads -= 1;
                st.pool
                    .handle(now, Event::Reload(Box::new(self.config.clone())))
                    .ok()?;
            }
            Step::DiscoveryChangesServers => {
                st.left.server_changes -= 1;
                let mut config = self.config.clone();
                if st.pool.config().is_some_and(|c| *c == self.config) {
                    config.servers.pop();
                }
                let old = st.pool.current_generation();
                let before: Vec<ConnId> = st
                    .pool
                    .conns()
                    .filter(|c| Some(c.generation) == old)
                    .map(|c| c.id)
                    .collect();
                st.pool
                    .handle(now, Event::ReloadServers(Box::new(config)))
                    .ok()?;
                let new = st.pool.current_generation();
                if before
                    .iter()
                    .any(|&id| st.pool.conn(id).is_some_and(|c| Some(c.generation) == new))
                {
                    st.ledger.kept_across_reload = true;
                }
            }
            Step::AdminShutsDown => {
                st.left.shutdowns -= 1;
                st.ledger.shut_down = true;
                let open = st.pool.conns().find(|c| c.phase == ConnPhase::Open);
                let fake = open.map(|c| c.id).zip(st.ledger.users[0].id);
                st.pool.handle(now, Event::Shutdown).ok()?;
                if self.bug == Some(Bug::GrantAfterShutdown)
                    && let Some((conn, user)) = fake
                {
                    let _ = self.observe(&mut st);
                    self.observe_grant(&mut st, user, conn);
                }
            }
            Step::ProcessForks => {
                st.left.forks -= 1;
                st.pool.handle(now, Event::Forked).ok()?;
            }
            Step::ClockTicks => {
                st.left.ticks -= 1;
                let at = st.pool.poll_timeout()?.at;
                st.now = st.now.max(at);
                st.pool.handle_timeout(st.now);
            }
            Step::BugStrikes => {
                let plant = self.plant?;
                if !plant(&mut st.pool) {
                    return None;
                }
                st.ledger.planted = true;
                let closed = self.observe(&mut st);
                self.note_failback_drains(last, &mut st, &closed);
                return Some(st);
            }
        }
        let closed = self.observe(&mut st);
        self.note_failback_drains(last, &mut st, &closed);
        self.after_input(&mut st, gens_before);
        let now = st.now;
        st.ledger
            .evidence
            .after_input(&before, &st.pool, now, verdict);
        Some(st)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut always = vec![
            Property::always("reference counts follow the rule", |_, st: &State| {
                refcounts_follow_the_rule(&st.pool)
            }),
            Property::always(
                "no user is attached to a freed connection or generation",
                |_, st: &State| no_user_on_freed_objects(&st.pool),
            ),
            Property::always(
                "a user only holds a connection to its server with its credential",
                |m: &Self, st: &State| {
                    users_match_their_connections(&st.pool) && m.grants_match_the_users(st)
                },
            ),
            Property::always("an AUTH user never shares", |_, st: &State| {
                auth_never_shares(&st.pool)
            }),
            Property::always("nothing is granted after shutdown", |_, st: &State| {
                !st.ledger.granted_after_shutdown
            }),
            Property::always(
                "nothing is granted to a server known down",
                |_, st: &State| !st.ledger.granted_to_down_server,
            ),
            Property::always(
                "every waiter is woken exactly once",
                |m: &Self, st: &State| {
                    every_waiter_woken_once(st) && m.no_waiter_is_left_at_the_end(st)
                },
            ),
            Property::always(
                "a write is never retried after its request may have been sent",
                |_, st: &State| !st.ledger.sent_write_retry_offered,
            ),
            Property::always("no operation gets more than 3 tries", |_, st: &State| {
                !st.ledger.retry_beyond_max
                    && st.ledger.users.iter().all(|r| r.attempt <= MAX_TRIES)
            }),
            Property::always(
                "connections fail back only to a server out of its hold-down",
                |_, st: &State| !st.ledger.drained_in_hold_down,
            ),
            Property::always(
                "an idle connection is closed after its idle timeout",
                |m: &Self, st: &State| m.idle_connections_close_at_the_end(st),
            ),
            Property::always(
                "no user stacks on a busy connection while a spare is due, and no spare opens past the target",
                |_, st: &State| !st.ledger.spread_broken,
            ),
            Property::always(
                "a rival that opens first serves the waiters of the slow connect",
                |_, st: &State| !st.ledger.race_broken,
            ),
            Property::always(
                "a check that began before the server's last answer does not mark it down",
                |_, st: &State| !st.ledger.evidence.stale_verdict_obeyed,
            ),
            Property::always(
                "no fail-back to a server that failed during its hold-down",
                |_, st: &State| !st.ledger.evidence.trusted_too_soon,
            ),
            Property::always(
                "a refused credential is not retried before its hold-down ends",
                |_, st: &State| !st.ledger.evidence.refused_sent_again,
            ),
            Property::always(
                "a user who finds every server down gets a connect tried within its deadline",
                |_, st: &State| !st.ledger.evidence.gave_up_untried,
            ),
        ];
        let sometimes = [
            Property::sometimes(DETACHED_FREED, |_, st: &State| st.ledger.detached_freed),
            Property::sometimes(FAIL_BACK, |_, st: &State| st.ledger.failed_back),
            Property::sometimes(COALESCED, |_, st: &State| st.ledger.coalesced_two),
            Property::sometimes(OLD_AND_NEW, |_, st: &State| st.ledger.old_and_new_served),
            Property::sometimes(KEPT, |_, st: &State| st.ledger.kept_across_reload),
            Property::sometimes(SPARE, |_, st: &State| st.ledger.spare_opened),
            Property::sometimes(RIVAL_SERVED, |_, st: &State| st.ledger.rival_served),
            Property::sometimes(VERDICT_YIELDS, |_, st: &State| {
                st.ledger.evidence.stale_verdict_ignored
            }),
            Property::sometimes(HELD_BACK, |_, st: &State| st.ledger.evidence.held_back),
            Property::sometimes(BROUGHT_FORWARD, |_, st: &State| {
                st.ledger.evidence.brought_forward
            }),
        ];
        always.extend(
            sometimes
                .into_iter()
                .filter(|p| self.reaches.contains(&p.name)),
        );
        always
    }
}

/// The index into [`SERVERS`] of `server`.
fn server_index(pool: &Pool, server: ldapmux_core::ServerId) -> Option<usize> {
    let addr = pool.server_addr(server)?;
    SERVERS.iter().position(|s| *s == addr)
}

/// How long time may run on at the end for every waiter to be answered.
const AN_HOUR: Duration = Duration::from_secs(3600);

impl PoolModel {
    /// Every user the ledger sees granted still holds, in the pool, the
    /// connection its `Grant` named, bound with the user's own credential and
    /// to the server it named.
    fn grants_match_the_users(&self, st: &State) -> bool {
        st.ledger.users.iter().zip(&self.users).all(|(rec, spec)| {
            if rec.seen != Seen::Granted {
                return true;
            }
            let held = rec.id.and_then(|id| st.pool.user(id)).map(|u| u.conn);
            let Some(conn) = rec.conn.and_then(|c| st.pool.conn(c)) else {
                return false;
            };
            held == Some(rec.conn)
                && conn.cred == spec.cred
                && spec
                    .server
                    .is_none_or(|s| server_index(&st.pool, conn.server) == Some(s))
        })
    }

    /// At the end of a path (no input left), time runs on, deadline after
    /// deadline, up to an hour: every user still waiting gets exactly one
    /// wake-up.
    fn no_waiter_is_left_at_the_end(&self, st: &State) -> bool {
        let waiting: Vec<UserId> = st
            .ledger
            .users
            .iter()
            .filter(|r| r.seen == Seen::Waiting)
            .filter_map(|r| r.id)
            .collect();
        if waiting.is_empty() {
            return true;
        }
        let mut steps = Vec::new();
        self.actions(st, &mut steps);
        if !steps.is_empty() {
            return true;
        }
        let mut pool = st.pool.clone();
        let mut woken = vec![0u8; waiting.len()];
        let until = st.now + AN_HOUR;
        for _ in 0..1000 {
            while let Some(action) = pool.poll_action() {
                if let Action::Grant { user, .. } | Action::Fail { user, .. } = action
                    && let Some(i) = waiting.iter().position(|&w| w == user)
                {
                    woken[i] += 1;
                }
            }
            if woken.iter().all(|&n| n > 0) {
                break;
            }
            match pool.poll_timeout() {
                Some(t) if t.at <= until => pool.handle_timeout(t.at),
                _ => break,
            }
        }
        woken.iter().all(|&n| n == 1)
    }
}

impl PoolModel {
    /// At the end of a path (no input left), time runs on, deadline after
    /// deadline, past the longest idle timeout: every connection no user
    /// holds is closed by then (behaviour 5; the models' configurations
    /// close idle write connections, and read ones unless their idle
    /// timeout is off). One just opening for a fail-back warm-up may remain.
    fn idle_connections_close_at_the_end(&self, st: &State) -> bool {
        let never_idles = |c: &ldapmux_core::ConnInfo| {
            c.purpose == Purpose::Read && self.config.read_idle_timeout.is_none()
        };
        let idle = |c: &ldapmux_core::ConnInfo| {
            c.users == 0 && c.phase != ConnPhase::Connecting && !never_idles(c)
        };
        if !st.pool.conns().any(|c| idle(&c)) {
            return true;
        }
        let mut steps = Vec::new();
        self.actions(st, &mut steps);
        if !steps.is_empty() {
            return true;
        }
        let longest = self
            .config
            .read_idle_timeout
            .unwrap_or_default()
            .max(self.config.write_idle_timeout);
        let until = st.now + longest + Duration::from_secs(1);
        let mut pool = st.pool.clone();
        for _ in 0..10_000 {
            while pool.poll_action().is_some() {}
            match pool.poll_timeout() {
                Some(t) if t.at <= until => pool.handle_timeout(t.at),
                _ => break,
            }
        }
        !pool.conns().any(|c| idle(&c))
    }
}

/// +1 while current, +1 per user, +1 per connection; never zero while alive.
pub fn refcounts_follow_the_rule(pool: &Pool) -> bool {
    pool.generations().all(|g| {
        let users = pool.users().filter(|u| u.generation == g.id).count() as u32;
        let conns = pool.conns().filter(|c| c.generation == g.id).count() as u32;
        let current = u32::from(pool.current_generation() == Some(g.id));
        g.refs == current + users + conns
            && g.refs > 0
            && (g.phase == GenPhase::Active) == (current == 1)
    })
}

/// Every user's connection and generation are alive.
pub fn no_user_on_freed_objects(pool: &Pool) -> bool {
    pool.users().all(|u| {
        pool.generations().any(|g| g.id == u.generation)
            && u.conn
                .is_none_or(|c| pool.conn(c).is_some_and(|c| c.generation == u.generation))
    })
}

/// Connected users sit on a connection of their credential and named server.
pub fn users_match_their_connections(pool: &Pool) -> bool {
    pool.users()
        .all(|u| match u.conn.and_then(|c| pool.conn(c)) {
            Some(c) => c.cred == u.cred && u.server.is_none_or(|s| s == c.server),
            None => true,
        })
}

/// An AUTH user's connection is private and has no other user.
pub fn auth_never_shares(pool: &Pool) -> bool {
    pool.users().filter(|u| u.kind == UserKind::Auth).all(|u| {
        match u.conn.and_then(|c| pool.conn(c)) {
            Some(c) => c.purpose == Purpose::Private && c.users + c.waiters.len() as u32 <= 1,
            None => true,
        }
    })
}

/// No user is woken twice; one that finished without cancelling was woken
/// once; one the ledger thinks waits is still waiting in the pool.
pub fn every_waiter_woken_once(st: &State) -> bool {
    st.ledger.users.iter().all(|r| {
        let alive = r.id.is_some_and(|id| st.pool.user(id).is_some());
        r.wakeups <= 1
            && (r.seen != Seen::Done || r.cancelled || r.wakeups == 1)
            && (r.seen != Seen::Waiting || alive || st.ledger.shut_down)
    })
}

/// The models' common configuration. Connect racing is off here: it is
/// checked in the `racing` model, where it multiplies the states of one
/// model (about 3× each) rather than of all.
fn base(servers: usize) -> ldapmux_core::ConfigBuilder {
    let mut b = Config::builder()
        .connect_race_delay(None)
        // As long as the probe backoff minimum: a returning server is probed
        // once, at the end of its hold-down (the `evidence` model probes one
        // during it too).
        .failback_hold_down(Duration::from_secs(1))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(4))
        .default_acquire_timeout(Duration::from_secs(30));
    for (i, s) in SERVERS.iter().take(servers).enumerate() {
        b = if i == 0 {
            b.preferred_server(*s)
        } else {
            b.server(*s)
        };
    }
    b
}

/// Unique states of each default model, checked by `ldapmux-model check`: a
/// change means the state space changed; look at why before updating.
pub const PINNED_STATES: [(&str, usize); 8] = [
    // 23 496 319 since a user who finds every server down brings a probe
    // forward (issue 16); 22 309 085 when fail-back first needed a good
    // probe after the hold-down (this model has no probe answer to spend),
    // 23 861 297 before that, and
    // 21 731 713 before a connection that dies of an I/O error retired its
    // siblings to the same server (issue 15).
    ("sharing", 23_496_319),
    // 1 604 354 since siblings retire (issue 15): was 1 497 168, and
    // 1 409 901 before an idle connection made room at the per-server limit
    // for a user of another credential.
    ("credentials", 1_604_354),
    // 5 123 075 since a user who finds every server down brings a probe
    // forward, and 4 361 333 since a returning server is probed during its
    // hold-down and falls back down on a failed probe (issue 16): was
    // 4 238 256,
    // 4 225 680 before siblings retired (issue 15), and
    // 4 197 692 before a server falling during its hold-down resumed its
    // probe backoff.
    ("failover", 5_123_075),
    // 4 317 320 since siblings retire (issue 15): was 4 218 954, and
    // 906 496 before discovery could send a new server list.
    ("lifecycle", 4_317_320),
    // Spread before stack (issue 15): one server, four users.
    ("spread", 549_397),
    // Connect racing (issue 15): two servers, a user that named the first.
    // 2 098 263 since a user who finds every server down brings a probe
    // forward (issue 16): was 1 989 595.
    ("racing", 2_098_263),
    // Liveness checks and probed hold-downs (issue 16).
    ("evidence", 2_294_238),
    // Refused credentials held back (issue 16).
    ("refusals", 318_422),
];

/// The models `check` runs; `deep` widens their bounds.
pub fn models(deep: bool) -> Vec<PoolModel> {
    let extra = u8::from(deep);
    vec![
        PoolModel {
            name: "sharing",
            config: base(2).max_users_per_conn(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Write, 0),
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                cancels: 1,
                retries: 1,
                downs: 1,
                ups: 1,
                ticks: 1 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[COALESCED],
        },
        PoolModel {
            name: "credentials",
            config: base(2)
                .max_users_per_conn(2)
                .max_conns_per_server(2)
                .build()
                .expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Search, 1),
                UserSpec::new(UserKind::Auth, 1),
                UserSpec {
                    kind: UserKind::Getent,
                    cred: CredKey(2),
                    server: Some(1),
                },
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                cancels: 2 + extra,
                retries: 1,
                ticks: 1,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[],
        },
        PoolModel {
            name: "failover",
            config: base(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Search, 0),
            ],
            budget: Budget {
                open_failures: 1,
                breaks: 1,
                downs: 1,
                ups: 1,
                probes: 1,
                retries: 1,
                ticks: 4 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[FAIL_BACK, COALESCED],
        },
        PoolModel {
            name: "lifecycle",
            config: base(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Getent, 0),
                UserSpec::new(UserKind::Write, 1),
            ],
            budget: Budget {
                breaks: 1,
                cancels: 1,
                retries: 1,
                reloads: 2 + extra,
                server_changes: 1,
                shutdowns: 1,
                forks: 1,
                ticks: 1,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[DETACHED_FREED, OLD_AND_NEW, KEPT],
        },
        PoolModel {
            name: "spread",
            config: spread_config(),
            users: vec![UserSpec::new(UserKind::Search, 0); 4],
            budget: Budget {
                breaks: 1,
                ticks: 1,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[SPARE],
        },
        PoolModel {
            name: "racing",
            config: racing_config(),
            users: vec![
                UserSpec::new(UserKind::Search, 0),
                UserSpec::new(UserKind::Search, 0),
                UserSpec {
                    kind: UserKind::Search,
                    cred: CredKey(0),
                    server: Some(0),
                },
            ],
            budget: Budget {
                open_failures: 1,
                downs: 1,
                retries: 1,
                reloads: 1,
                ticks: 3 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[RIVAL_SERVED, COALESCED],
        },
        PoolModel {
            name: "evidence",
            config: evidence_config(),
            users: vec![UserSpec::new(UserKind::Search, 0); 2],
            budget: Budget {
                timeouts: 1,
                retries: 1,
                downs: 1,
                ups: 1,
                probes: 2,
                ticks: 3 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[VERDICT_YIELDS, FAIL_BACK, BROUGHT_FORWARD],
        },
        PoolModel {
            name: "refusals",
            config: base(2).build().expect("valid"),
            users: vec![
                UserSpec::new(UserKind::Auth, 1),
                UserSpec::new(UserKind::Auth, 1),
                UserSpec::new(UserKind::Search, 0),
            ],
            budget: Budget {
                refusals: 2,
                open_failures: 1,
                retries: 1,
                ticks: 2 + extra,
                ..Budget::default()
            },
            bug: None,
            plant: None,
            policy: None,
            reaches: &[HELD_BACK],
        },
    ]
}

/// One server, 3 users per connection, busy at 1 user, spreading to 2 of at
/// most 3 connections: four users see one connection, a spare, stacking,
/// and the hard limit.
fn spread_config() -> Config {
    Config::builder()
        .server(SERVERS[0])
        .max_users_per_conn(3)
        .max_conns_per_server(3)
        .spread(1, 2)
        .build()
        .expect("valid")
}

/// Two servers; a 2 s fail-back hold-down probed every second (one probe
/// during it, one at its end); a 1 s connect timeout bounds each probe and
/// liveness check.
fn evidence_config() -> Config {
    base(2)
        .failback_hold_down(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("valid")
}

/// Two servers, racing after 200 ms of a 1 s connect timeout.
fn racing_config() -> Config {
    base(2)
        .connect_timeout(Duration::from_secs(1))
        .connect_race_delay(Some(Duration::from_millis(200)))
        .build()
        .expect("valid")
}
