//! What the model reads back from the core after each input: the ledger's
//! bookkeeping, the end-of-path clauses, and the invariants shared with the
//! tests.

use std::collections::BTreeMap;
use std::time::Duration;

use ldapmux_core::*;
use stateright::Model;

use crate::*;

impl PoolModel {
    pub(crate) fn server_id(&self, pool: &Pool, s: usize) -> Option<ldapmux_core::ServerId> {
        pool.server_id(SERVERS[s])
    }

    pub(crate) fn request(&self, i: usize, attempt: u8) -> Request {
        let spec = &self.users[i];
        let mut r = Request::new(spec.kind, spec.cred);
        if let Some(s) = spec.server {
            r = r.server(SERVERS[s]);
        }
        if spec.pages {
            r = r.paging();
        }
        for _ in 1..attempt {
            r = r.retry();
        }
        r
    }

    pub(crate) fn index_of(state: &State, user: UserId) -> Option<usize> {
        state.ledger.users.iter().position(|r| r.id == Some(user))
    }

    /// Drains the pool's actions into the ledger; returns the connections
    /// closed for fail-back.
    pub(crate) fn observe(&self, st: &mut State) -> Vec<ConnId> {
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
    pub(crate) fn note_failback_drains(&self, last: &State, st: &mut State, closed: &[ConnId]) {
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
                    .is_some_and(|id| crate::health(&st.pool, id) == Some(Health::Up))
            });
            if !trusted_better {
                st.ledger.drained_in_hold_down = true;
            }
        }
    }

    pub(crate) fn observe_grant(&self, st: &mut State, user: UserId, conn: ConnId) {
        if st.ledger.shut_down {
            st.ledger.granted_after_shutdown = true;
        }
        if let Some(c) = st.pool.conn(conn)
            && !matches!(c.phase, ConnPhase::Broken(_))
        {
            let known_down = server_index(&st.pool, c.server).is_some_and(|s| st.ledger.down[s]);
            let pool_down = matches!(crate::health(&st.pool, c.server), Some(Health::Down { .. }));
            if known_down || pool_down {
                st.ledger.granted_to_down_server = true;
            }
        }
        let bind = st
            .pool
            .conn(conn)
            .is_some_and(|c| c.purpose == Purpose::Bind);
        let used_before = st
            .ledger
            .users
            .iter()
            .any(|r| r.conn == Some(conn) && r.seen == Seen::Done);
        if bind && used_before {
            st.ledger.bind_reused = true;
        }
        if let Some(i) = Self::index_of(st, user) {
            let rec = &mut st.ledger.users[i];
            rec.wakeups += 1;
            rec.seen = Seen::Granted;
            rec.conn = Some(conn);
        }
    }

    pub(crate) fn after_input(&self, st: &mut State, gens_before: usize) {
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

/// The index into [`SERVERS`] of `server`.
pub(crate) fn server_index(pool: &Pool, server: ldapmux_core::ServerId) -> Option<usize> {
    let addr = pool.server_addr(server)?;
    SERVERS.iter().position(|s| *s == addr)
}

/// How long time may run on at the end for every waiter to be answered.
pub(crate) const AN_HOUR: Duration = Duration::from_secs(3600);

impl PoolModel {
    /// Every user the ledger sees granted still holds, in the pool, the
    /// connection its `Grant` named, bound with the user's own credential and
    /// to the server it named.
    pub(crate) fn grants_match_the_users(&self, st: &State) -> bool {
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
    pub(crate) fn no_waiter_is_left_at_the_end(&self, st: &State) -> bool {
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
    pub(crate) fn idle_connections_close_at_the_end(&self, st: &State) -> bool {
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

/// An AUTH user's connection is private or a bind connection, and has no
/// other user.
pub fn auth_never_shares(pool: &Pool) -> bool {
    pool.users().filter(|u| u.kind == UserKind::Auth).all(|u| {
        match u.conn.and_then(|c| pool.conn(c)) {
            Some(c) => {
                matches!(c.purpose, Purpose::Private | Purpose::Bind)
                    && c.users + c.waiters.len() as u32 <= 1
            }
            None => true,
        }
    })
}

impl PoolModel {
    /// The connected users of `conn` that run a paged search (by the
    /// model's own specs, not the pool's records).
    fn pagers_on(&self, st: &State, conn: ConnId) -> usize {
        st.pool
            .users()
            .filter(|u| u.conn == Some(conn) && u.phase == UserPhase::Connected)
            .filter(|u| Self::index_of(st, u.id).is_some_and(|i| self.users[i].pages))
            .count()
    }

    /// No connection carries two paged searches.
    pub(crate) fn one_paged_search_per_connection(&self, st: &State) -> bool {
        st.pool.conns().all(|c| self.pagers_on(st, c.id) <= 1)
    }

    /// A connection carries a paged search and another search at once.
    pub(crate) fn pager_beside_search(&self, st: &State) -> bool {
        st.pool.conns().any(|c| {
            let connected = st
                .pool
                .users()
                .filter(|u| u.conn == Some(c.id) && u.phase == UserPhase::Connected)
                .count();
            self.pagers_on(st, c.id) == 1 && connected >= 2
        })
    }
}

/// A bind connection has at most one user or waiter, and every user and
/// waiter it has is a password check (AUTH).
pub fn bind_connections_serve_one_check(pool: &Pool) -> bool {
    pool.conns()
        .filter(|c| c.purpose == Purpose::Bind)
        .all(|c| {
            let users = pool.users().filter(|u| u.conn == Some(c.id));
            let waiters = c.waiters.iter().filter_map(|w| pool.user(*w));
            c.users + c.waiters.len() as u32 <= 1
                && users.chain(waiters).all(|u| u.kind == UserKind::Auth)
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
