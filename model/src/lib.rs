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
//! The properties are named as sentences; see [`PoolModel`'s `properties`](stateright::Model::properties) and
//! `docs/verification.md`. [`models`] lists the models the `check` command runs.

use ldapmux_core::{Config, ConnId, CredKey, Health, Instant, Pool, ServerId, UserId, UserKind};

mod catalog;
mod evidence;
mod observe;
mod simulate;
mod transitions;
pub use catalog::{PINNED_STATES, models};
pub use evidence::Evidence;
pub use observe::{
    auth_never_shares, bind_connections_serve_one_check, every_waiter_woken_once,
    no_user_on_freed_objects, refcounts_follow_the_rule, users_match_their_connections,
};
pub use simulate::{SimulationReport, simulate, simulate_with_bug};

/// `server`'s health as the pool decides on it, with [`Health::Unknown`]
/// (never reached) folded into [`Health::Up`]: the pool treats the two alike
/// (issue 17). What tells them apart is history, kept out of the pool's `Eq`
/// and `Hash` as its counters are, so the checker merges states that differ
/// in it only. Were the model to read it, what a merged state shows (and the
/// steps and verdicts that follow from it) would depend on the path that
/// reached the state first, and the state counts could drift.
pub(crate) fn health(pool: &Pool, server: ServerId) -> Option<Health> {
    pool.health(server).map(|h| match h {
        Health::Unknown => Health::Up,
        h => h,
    })
}

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
    /// It runs a paged search on its connection (`Request::paging`).
    pub pages: bool,
}

impl UserSpec {
    /// A user of `kind` with credential `cred`, any server.
    pub fn new(kind: UserKind, cred: u64) -> Self {
        UserSpec {
            kind,
            cred: CredKey(cred),
            server: None,
            pages: false,
        }
    }

    /// The same user, running a paged search.
    pub fn paging(self) -> Self {
        UserSpec {
            pages: true,
            ..self
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
    /// Users that leave their connection in a state they cannot vouch for
    /// (`Event::Retire`).
    pub retires: u8,
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
/// "a paged search shares its connection with another search"
pub const PAGER_BESIDE_SEARCH: &str = "a paged search shares its connection with another search";
/// "a bind connection serves a second check"
pub const BIND_REUSED: &str = "a bind connection serves a second check";
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
    /// A bind connection was granted to a check after another check used it.
    pub bind_reused: bool,
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
    /// User `i` is done but cannot vouch for its connection's state.
    UserRetires(usize),
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
