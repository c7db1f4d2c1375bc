//! `check_invariants`: the rules the pool keeps after every input. Tests,
//! proptest and the stateright models call it after each step.

use std::collections::BTreeMap;

use crate::index::MatchKey;
use crate::pool::Pool;
use crate::state::{ConnState, UserState};
use crate::{ConnId, GenId, Purpose, UserId};

/// A broken invariant: a bug in the core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant violated: {0}")]
pub struct InvariantViolation(pub String);

macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(InvariantViolation(format!($($arg)*)));
        }
    };
}

impl Pool {
    /// Checks every invariant, naming the first one broken:
    ///
    /// * reference counts: each generation's count is +1 if current, +1 per
    ///   user, +1 per connection, and is never zero (a detached generation at
    ///   zero is freed at once; a current one cannot reach zero);
    /// * no user or connection points at a freed generation or connection;
    /// * a user waits on or uses only a connection of its generation, purpose,
    ///   referral flag, credential and (if it named one) server;
    /// * a private or bind connection has at most one user or waiter; a
    ///   bind connection's user is a password check; a server has at most
    ///   [`Config::bind_conns_per_server`](crate::Config::bind_conns_per_server)
    ///   bind connections open or opening per generation and credential;
    /// * nothing live after shutdown; no live connection to a server known
    ///   down that is not already broken;
    /// * the match index, the queue and the per-server and per-credential
    ///   counts agree with the tables.
    /// * a server down or returning always has its next probe armed, or a
    ///   probe in flight with its overdue timer; a liveness check in flight
    ///   has its overdue timer (no server is left unprobed forever);
    /// * a server never reached ([`Health::Unknown`](crate::Health::Unknown))
    ///   is up with no check in flight, and no connection to it has opened.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        if self.is_shut_down() {
            ensure!(
                self.gens.current().is_none(),
                "shut down but a generation is current"
            );
            ensure!(
                self.users.len() == 0,
                "shut down with {} users",
                self.users.len()
            );
            ensure!(
                self.conns.len() == 0,
                "shut down with {} connections",
                self.conns.len()
            );
            ensure!(
                self.gens.len() == 0,
                "shut down with {} generations",
                self.gens.len()
            );
        } else {
            let cur = self
                .gens
                .current()
                .ok_or_else(|| InvariantViolation("no current generation".into()))?;
            let g = self
                .gens
                .get(cur)
                .ok_or_else(|| InvariantViolation(format!("current {cur} freed")))?;
            ensure!(!g.detached, "current generation {cur} is detached");
        }

        let mut refs: BTreeMap<GenId, u32> = BTreeMap::new();
        let mut gen_users: BTreeMap<GenId, u32> = BTreeMap::new();
        let mut gen_conns: BTreeMap<GenId, u32> = BTreeMap::new();
        if let Some(cur) = self.gens.current() {
            refs.insert(cur, 1);
        }
        let mut conn_users: BTreeMap<ConnId, u32> = BTreeMap::new();
        let mut pagers: BTreeMap<ConnId, u32> = BTreeMap::new();
        let mut server_users = vec![0u32; self.servers.len()];
        let mut cred_users: BTreeMap<crate::CredKey, u32> = BTreeMap::new();
        let mut queued = 0usize;

        for (uid, u) in self.users.iter() {
            ensure!(
                self.gens.contains(u.gen_id),
                "{uid} points at freed generation {}",
                u.gen_id
            );
            *refs.entry(u.gen_id).or_default() += 1;
            *gen_users.entry(u.gen_id).or_default() += 1;
            let conn_id = match u.state {
                UserState::Queued => {
                    queued += 1;
                    let n = self.users.queued().filter(|&q| q == uid).count();
                    ensure!(n == 1, "queued {uid} is in the queue {n} times");
                    ensure!(
                        u.gen_id == self.gens.current().expect("users imply not shut down"),
                        "queued {uid} not on the current generation"
                    );
                    continue;
                }
                UserState::Waiting { conn } => {
                    let c = self.conns.get(conn).ok_or_else(|| {
                        InvariantViolation(format!("{uid} waits on freed {conn}"))
                    })?;
                    let ConnState::Connecting { waiters, .. } = &c.state else {
                        return Err(InvariantViolation(format!(
                            "{uid} waits on {conn} in state {}",
                            c.state.name()
                        )));
                    };
                    ensure!(
                        waiters.iter().filter(|&&w| w == uid).count() == 1,
                        "{uid} not once among {conn}'s waiters"
                    );
                    conn
                }
                UserState::Connected { conn, .. } => {
                    let c = self
                        .conns
                        .get(conn)
                        .ok_or_else(|| InvariantViolation(format!("{uid} uses freed {conn}")))?;
                    if u.pages {
                        *pagers.entry(conn).or_default() += 1;
                    }
                    ensure!(
                        !matches!(c.state, ConnState::Connecting { .. }),
                        "{uid} connected to opening {conn}"
                    );
                    *conn_users.entry(conn).or_default() += 1;
                    server_users[c.server.index()] += 1;
                    *cred_users.entry(c.cred).or_default() += 1;
                    conn
                }
            };
            let c = self.conns.get(conn_id).expect("checked above");
            ensure!(
                c.gen_id == u.gen_id,
                "{uid} of {} on {conn_id} of {}",
                u.gen_id,
                c.gen_id
            );
            ensure!(
                c.cred == u.cred,
                "{uid} with credential {} on {conn_id} bound with {}",
                u.cred,
                c.cred
            );
            ensure!(
                c.purpose == u.purpose(),
                "{uid} ({:?}) on {conn_id} opened for {:?}",
                u.purpose(),
                c.purpose
            );
            ensure!(
                c.purpose != Purpose::Bind || u.kind == crate::UserKind::Auth,
                "{uid} ({:?}) on bind connection {conn_id}",
                u.kind
            );
            ensure!(
                c.referral == u.referral,
                "{uid} referral={} on {conn_id} referral={}",
                u.referral,
                c.referral
            );
            if let Some(s) = u.server {
                ensure!(
                    c.server == s,
                    "{uid} named {s} but is on {conn_id} to {}",
                    c.server
                );
            }
        }
        ensure!(
            queued == self.users.queue_len(),
            "queue holds {} entries for {queued} queued users",
            self.users.queue_len()
        );

        let mut server_conns = vec![0u32; self.servers.len()];
        let mut cred_conns: BTreeMap<crate::CredKey, u32> = BTreeMap::new();
        let mut indexed_open: BTreeMap<ConnId, (MatchKey, u32)> = BTreeMap::new();
        let mut indexed_connecting: BTreeMap<ConnId, MatchKey> = BTreeMap::new();
        let mut bind_sets: BTreeMap<MatchKey, u32> = BTreeMap::new();
        for (cid, c) in self.conns.iter() {
            let n = pagers.get(&cid).copied().unwrap_or(0);
            ensure!(
                n <= 1,
                "{cid} has {n} paging users: one paging state per connection"
            );
            ensure!(
                c.paging == (n == 1),
                "{cid} paging={} with {n} paging users",
                c.paging
            );
            // (An opening connection may have two paging waiters: one inherited
            // from a rival that failed; it takes one of them when it opens.)
            ensure!(
                self.gens.contains(c.gen_id),
                "{cid} points at freed generation {}",
                c.gen_id
            );
            *refs.entry(c.gen_id).or_default() += 1;
            *gen_conns.entry(c.gen_id).or_default() += 1;
            ensure!(
                c.server.index() < self.servers.len(),
                "{cid} on unknown server"
            );
            server_conns[c.server.index()] += 1;
            *cred_conns.entry(c.cred).or_default() += 1;
            let users = conn_users.get(&cid).copied().unwrap_or(0);
            ensure!(
                c.state.users() == users,
                "{cid} counts {} users, {users} point at it",
                c.state.users()
            );
            let key = MatchKey {
                gen_id: c.gen_id,
                server: c.server,
                cred: c.cred,
                purpose: c.purpose,
                referral: c.referral,
            };
            if let ConnState::Connecting { rival: Some(r), .. } = &c.state {
                let back = self.conns.get(*r).map(|rc| (rc, &rc.state));
                let ok = matches!(back, Some((rc, ConnState::Connecting { rival: Some(me), .. }))
                    if *me == cid && rc.gen_id == c.gen_id && rc.cred == c.cred
                        && rc.purpose == c.purpose && rc.server != c.server);
                ensure!(ok, "{cid} races {r}, which does not race it back alike");
            }
            if let ConnState::Connecting { waiters, .. } = &c.state {
                for &w in waiters {
                    let ok = matches!(self.users.get(w).map(|u| &u.state), Some(UserState::Waiting { conn }) if *conn == cid);
                    ensure!(ok, "{cid} lists waiter {w} that does not wait on it");
                }
                if !c.purpose.is_shared() {
                    ensure!(
                        waiters.len() <= 1,
                        "{:?} {cid} has {} waiters",
                        c.purpose,
                        waiters.len()
                    );
                }
            }
            if !c.purpose.is_shared() {
                ensure!(
                    c.state.users() <= 1,
                    "{:?} {cid} has {} users",
                    c.purpose,
                    c.state.users()
                );
            }
            if c.purpose == Purpose::Bind
                && matches!(
                    c.state,
                    ConnState::Open { .. } | ConnState::Connecting { .. }
                )
            {
                *bind_sets.entry(key).or_default() += 1;
            }
            if c.purpose != Purpose::Private {
                match &c.state {
                    ConnState::Open { users, .. } => {
                        indexed_open.insert(cid, (key, *users));
                    }
                    ConnState::Connecting { .. } => {
                        indexed_connecting.insert(cid, key);
                    }
                    _ => {}
                }
            }
            if self.servers.health(c.server).is_down() {
                ensure!(
                    matches!(c.state, ConnState::Broken { .. }),
                    "{cid} is {} but its server {} is down",
                    c.state.name(),
                    c.server
                );
            }
            if let ConnState::Open {
                users, idle_since, ..
            } = &c.state
            {
                ensure!(
                    (*users == 0) == idle_since.is_some(),
                    "{cid} has {users} users, idle_since {idle_since:?}"
                );
                if let Some(at) = c.retire_at {
                    ensure!(
                        self.timers
                            .contains(at, crate::timers::Timer::CredentialExpiry(cid)),
                        "{cid} retires for its credential at {at} with no timer armed"
                    );
                }
            }
        }

        for (key, set) in bind_sets {
            let limit = self
                .gens
                .config(key.gen_id)
                .map_or(0, |c| c.bind_conns_per_server);
            ensure!(
                set <= limit,
                "{set} bind connections to {} in {}, the limit is {limit}",
                key.server,
                key.gen_id
            );
        }

        for (gid, g) in self.gens.iter() {
            let expect = refs.get(&gid).copied().unwrap_or(0);
            ensure!(
                g.refs == expect,
                "{gid} counts {} references, expected {expect}",
                g.refs
            );
            ensure!(g.refs > 0, "{gid} has a zero count but was not freed");
            let (users, conns) = (
                gen_users.get(&gid).copied().unwrap_or(0),
                gen_conns.get(&gid).copied().unwrap_or(0),
            );
            ensure!(
                g.users == users && g.conns == conns,
                "{gid} counts {}/{} users/connections, expected {users}/{conns}",
                g.users,
                g.conns
            );
            ensure!(
                g.detached == (Some(gid) != self.gens.current()),
                "{gid} detached={} current={:?}",
                g.detached,
                self.gens.current()
            );
        }

        let mut seen_open = 0;
        for (key, cid, load) in self.conns.index().all_open() {
            seen_open += 1;
            ensure!(
                indexed_open.get(&cid) == Some(&(*key, load)),
                "index has {cid} with load {load} under a wrong key or load"
            );
        }
        ensure!(
            seen_open == indexed_open.len(),
            "index holds {seen_open} open connections, expected {}",
            indexed_open.len()
        );
        let mut seen_connecting = 0;
        for (key, cid) in self.conns.index().all_connecting() {
            seen_connecting += 1;
            ensure!(
                indexed_connecting.get(&cid) == Some(key),
                "index has opening {cid} under a wrong key"
            );
        }
        ensure!(
            seen_connecting == indexed_connecting.len(),
            "index holds {seen_connecting} opening connections, expected {}",
            indexed_connecting.len()
        );

        for (id, s) in self.servers.iter() {
            let i = id.index();
            ensure!(
                s.conns == server_conns[i],
                "{id} counts {} connections, expected {}",
                s.conns,
                server_conns[i]
            );
            ensure!(
                s.users == server_users[i],
                "{id} counts {} users, expected {}",
                s.users,
                server_users[i]
            );
        }
        for (cred, c) in self.creds.iter() {
            let conns = cred_conns.get(cred).copied().unwrap_or(0);
            let users = cred_users.get(cred).copied().unwrap_or(0);
            ensure!(
                c.conns == conns && c.users == users,
                "credential {cred} counts {}/{}, expected {conns}/{users}",
                c.conns,
                c.users
            );
            ensure!(
                conns + users > 0,
                "credential {cred} kept with nothing live"
            );
        }
        for cred in cred_conns.keys() {
            ensure!(
                self.creds.contains(cred),
                "credential {cred} has connections but no count"
            );
        }
        if !self.is_shut_down() {
            self.check_health_timers()?;
        }
        let _: Option<UserId> = None;
        Ok(())
    }

    fn check_health_timers(&self) -> Result<(), InvariantViolation> {
        use crate::server::HealthState;
        use crate::timers::Timer;
        for (id, s) in self.servers.iter() {
            let armed = match s.health {
                HealthState::Up { check: None } => true,
                HealthState::Up { check: Some(c) } => {
                    self.timers.contains(c.deadline, Timer::ProbeOverdue(id))
                }
                HealthState::Down {
                    probing: Some(d), ..
                } => self.timers.contains(d, Timer::ProbeOverdue(id)),
                HealthState::Returning {
                    probing: Some(p), ..
                } => self.timers.contains(p.deadline, Timer::ProbeOverdue(id)),
                HealthState::Down {
                    next_probe,
                    probing: None,
                    ..
                }
                | HealthState::Returning {
                    next_probe,
                    probing: None,
                    ..
                } => self.timers.contains(next_probe, Timer::Probe(id)),
            };
            ensure!(
                armed,
                "{id} is {:?} without the timer that ends it",
                s.health
            );
            if !self.counters.reached(id) {
                ensure!(
                    s.health == HealthState::STABLE,
                    "{id} is {:?} but never reached",
                    s.health
                );
                let opened = self.conns.iter().find(|(_, c)| {
                    c.server == id && !matches!(c.state, ConnState::Connecting { .. })
                });
                ensure!(
                    opened.is_none(),
                    "{id} never reached but {} to it opened",
                    opened.map_or_else(String::new, |(c, _)| c.to_string())
                );
            }
        }
        Ok(())
    }
}
