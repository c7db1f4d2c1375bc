//! Read-only views of the pool: per-object info for tests and models, and the
//! [`Status`] snapshot with per-server, per-credential and per-generation figures.

use crate::counters::{Counters, ServerCounters};
use crate::pool::Pool;
use crate::server::HealthState;
use crate::state::{ConnState, UserState};
use crate::{
    CloseReason, ConnError, ConnId, CredKey, GenId, Instant, Purpose, ServerId, UserId, UserKind,
};

/// Health of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Health {
    /// Configured (or named by a request), never reached yet: no connection
    /// to it has opened, it has refused no bind, and it has never been
    /// marked down (a failed connect, a failed liveness check, a status
    /// feed's notice). The pool treats it exactly as [`Health::Up`] (it is
    /// ranked, connected to and failed back to as a trusted server): this
    /// only reports that nothing has been heard from it.
    ///
    /// The first connection to it that opens (or the first bind it
    /// refuses: it answered) makes it [`Health::Up`]; the first failure
    /// makes it [`Health::Down`] as for any server. Once reached it is never
    /// `Unknown` again, whatever follows: down, back up, a reload (servers
    /// and their health outlive generations, and this with them, whether or
    /// not the new configuration lists the server), or a fork (the child
    /// keeps the parent's health knowledge). A status feed saying it is up
    /// ([`Event::ServerUp`](crate::Event::ServerUp)) is no word from the
    /// server and leaves it `Unknown`. Probes are sent only to servers that
    /// were marked down or had a connection, so a good probe never meets an
    /// `Unknown` server.
    Unknown,
    /// Up and trusted: reached, and not down since.
    Up,
    /// Back up, in its fail-back hold-down until `until`.
    Returning {
        /// End of the hold-down.
        until: Instant,
    },
    /// Known down.
    Down {
        /// Since when.
        since: Instant,
        /// Next probe (or the current one's start).
        next_probe: Instant,
        /// A probe is in flight.
        probing: bool,
    },
}

/// One server in a [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStatus {
    /// Its id.
    pub id: ServerId,
    /// Its address.
    pub addr: String,
    /// Its health.
    pub health: Health,
    /// Live connections to it.
    pub conns: u32,
    /// Users on those connections.
    pub users: u32,
    /// Its counters.
    pub counters: ServerCounters,
}

/// One credential in a [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredStatus {
    /// The credential key.
    pub cred: CredKey,
    /// Live connections bound with it.
    pub conns: u32,
    /// Users on those connections.
    pub users: u32,
}

/// Whether a generation is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenPhase {
    /// The current generation (seed `ACTIVE`).
    Active,
    /// Replaced by a reload; freed when its count reaches zero (seed `DETACHED`).
    Detached,
}

/// One generation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GenInfo {
    /// Its id.
    pub id: GenId,
    /// Current or detached.
    pub phase: GenPhase,
    /// Its reference count: +1 while current, +1 per user, +1 per connection.
    pub refs: u32,
    /// Users counted in it.
    pub users: u32,
    /// Connections counted in it.
    pub conns: u32,
}

/// A user's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserPhase {
    /// Waiting for a connection slot.
    Queued,
    /// Waiting for a connection being opened.
    Waiting,
    /// Using a connection.
    Connected,
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserInfo {
    /// Its id.
    pub id: UserId,
    /// Its generation.
    pub generation: GenId,
    /// Its kind.
    pub kind: UserKind,
    /// Its credential.
    pub cred: CredKey,
    /// The server it named, if any.
    pub server: Option<ServerId>,
    /// Its try number.
    pub attempt: u8,
    /// Its phase.
    pub phase: UserPhase,
    /// The connection it waits for or uses.
    pub conn: Option<ConnId>,
    /// Whether it follows a referral.
    pub referral: bool,
    /// Whether it runs a paged search ([`Request::paging`](crate::Request::paging)).
    pub pages: bool,
}

/// A connection's phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnPhase {
    /// Being opened.
    Connecting,
    /// Open and taking users.
    Open,
    /// Taking no new users; closed when the last leaves.
    Draining,
    /// Died with this error; closed when the last user leaves.
    Broken(ConnError),
}

/// One connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// Its id.
    pub id: ConnId,
    /// Its generation.
    pub generation: GenId,
    /// Its server.
    pub server: ServerId,
    /// Its credential.
    pub cred: CredKey,
    /// What it is for.
    pub purpose: Purpose,
    /// Whether it serves referral users.
    pub referral: bool,
    /// Its phase.
    pub phase: ConnPhase,
    /// Users attached.
    pub users: u32,
    /// Users waiting for it to open.
    pub waiters: Vec<UserId>,
    /// Why it is draining (fail-back, reload, maximum age), if it is.
    pub drain_reason: Option<CloseReason>,
    /// The connection racing it to another server while both open
    /// (connect racing), if any.
    pub rival: Option<ConnId>,
    /// Whether a paging user holds it: no second one joins.
    pub paging: bool,
}

/// A snapshot of the pool, cheap enough to take often (it walks servers,
/// generations and credentials, not users or connections).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The current generation, `None` once shut down.
    pub current: Option<GenId>,
    /// Whether the pool is shut down.
    pub shut_down: bool,
    /// Users per connection in force.
    pub user_cap: u32,
    /// Live users (queued, waiting or connected).
    pub users: usize,
    /// Live connections.
    pub conns: usize,
    /// Users queued behind a server's connection limit.
    pub queued: usize,
    /// Pending timers.
    pub timers: usize,
    /// Every server ever configured or named.
    pub servers: Vec<ServerStatus>,
    /// Live generations.
    pub generations: Vec<GenInfo>,
    /// Credentials with live connections or users.
    pub creds: Vec<CredStatus>,
    /// Pool-wide counters.
    pub counters: Counters,
}

impl Pool {
    /// A snapshot of the pool.
    pub fn status(&self) -> Status {
        let servers = self
            .servers
            .iter()
            .map(|(id, s)| ServerStatus {
                id,
                addr: s.addr.clone(),
                health: health(&s.health, self.counters.reached(id)),
                conns: s.conns,
                users: s.users,
                counters: (self.counters.servers.get(id.index()))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        Status {
            current: self.gens.current(),
            shut_down: self.is_shut_down(),
            user_cap: self.user_cap(),
            users: self.users.len(),
            conns: self.conns.len(),
            queued: self.users.queue_len(),
            timers: self.timers.len(),
            servers,
            generations: self.generations().collect(),
            creds: self
                .creds
                .iter()
                .map(|(&cred, c)| CredStatus {
                    cred,
                    conns: c.conns,
                    users: c.users,
                })
                .collect(),
            counters: self.counters.snapshot(),
        }
    }

    /// Every live generation. `users` and `conns` are counted by walking the
    /// tables, so this costs O(users + connections); use it in tests and models.
    pub fn generations(&self) -> impl Iterator<Item = GenInfo> + '_ {
        self.gens.iter().map(move |(id, g)| GenInfo {
            id,
            phase: if g.detached {
                GenPhase::Detached
            } else {
                GenPhase::Active
            },
            refs: g.refs,
            users: self.users.iter().filter(|(_, u)| u.gen_id == id).count() as u32,
            conns: self.conns.iter().filter(|(_, c)| c.gen_id == id).count() as u32,
        })
    }

    /// One user, if live.
    pub fn user(&self, id: UserId) -> Option<UserInfo> {
        let u = self.users.get(id)?;
        let (phase, conn) = match u.state {
            UserState::Queued => (UserPhase::Queued, None),
            UserState::Waiting { conn } => (UserPhase::Waiting, Some(conn)),
            UserState::Connected { conn, .. } => (UserPhase::Connected, Some(conn)),
        };
        Some(UserInfo {
            id,
            generation: u.gen_id,
            kind: u.kind,
            cred: u.cred,
            server: u.server,
            attempt: u.attempt,
            phase,
            conn,
            referral: u.referral,
            pages: u.pages,
        })
    }

    /// Every live user.
    pub fn users(&self) -> impl Iterator<Item = UserInfo> + '_ {
        self.users.iter().filter_map(|(id, _)| self.user(id))
    }

    /// One connection, if live.
    pub fn conn(&self, id: ConnId) -> Option<ConnInfo> {
        let c = self.conns.get(id)?;
        let (phase, waiters) = match &c.state {
            ConnState::Connecting { waiters, .. } => (ConnPhase::Connecting, waiters.clone()),
            ConnState::Open { .. } => (ConnPhase::Open, Vec::new()),
            ConnState::Draining { .. } => (ConnPhase::Draining, Vec::new()),
            ConnState::Broken { error, .. } => (ConnPhase::Broken(error.clone()), Vec::new()),
        };
        let drain_reason = match c.state {
            ConnState::Draining { reason, .. } => Some(reason),
            _ => None,
        };
        let rival = match c.state {
            ConnState::Connecting { rival, .. } => rival,
            _ => None,
        };
        Some(ConnInfo {
            id,
            generation: c.gen_id,
            server: c.server,
            cred: c.cred,
            purpose: c.purpose,
            referral: c.referral,
            phase,
            users: c.state.users(),
            waiters,
            drain_reason,
            rival,
            paging: c.paging,
        })
    }

    /// Every live connection.
    pub fn conns(&self) -> impl Iterator<Item = ConnInfo> + '_ {
        self.conns.iter().filter_map(|(id, _)| self.conn(id))
    }

    /// The health of `server`.
    pub fn health(&self, server: ServerId) -> Option<Health> {
        self.servers
            .get(server)
            .map(|s| health(&s.health, self.counters.reached(server)))
    }

    /// Whether a probe of `server` is in flight: of a down server, of a
    /// returning one during its hold-down, or the liveness check of one that
    /// is up after an operation on it timed out. Its answer is
    /// [`Event::ProbeResult`](crate::Event::ProbeResult).
    pub fn probe_in_flight(&self, server: ServerId) -> bool {
        use crate::server::HealthState;
        self.servers.get(server).is_some_and(|s| {
            matches!(
                s.health,
                HealthState::Down {
                    probing: Some(_),
                    ..
                } | HealthState::Up { check: Some(_) }
                    | HealthState::Returning {
                        probing: Some(_),
                        ..
                    }
            )
        })
    }

    /// The current generation's servers, most preferred first (empty after
    /// shutdown).
    pub fn current_servers(&self) -> &[ServerId] {
        self.current_gen().map_or(&[], |g| &g.servers)
    }
}

/// The reported health of a server in `h`; `reached`: whether the pool has
/// had word of it ([`Health::Unknown`]). Only an up server can be unreached:
/// being marked down reaches it.
fn health(h: &HealthState, reached: bool) -> Health {
    match *h {
        HealthState::Up { .. } if !reached => Health::Unknown,
        HealthState::Up { .. } => Health::Up,
        HealthState::Returning { until, .. } => Health::Returning { until },
        HealthState::Down {
            since,
            next_probe,
            probing,
            ..
        } => Health::Down {
            since,
            next_probe,
            probing: probing.is_some(),
        },
    }
}
