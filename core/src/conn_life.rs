//! A shared connection's life: opened for a key, users attached, broken,
//! drained, gone idle, removed. The transitions of behaviours 1–6 are built
//! from these, with the reference counts (`Holder`) they keep.

use crate::index::MatchKey;
use crate::pool::{Holder, Pool};
use crate::state::{Conn, ConnState, UserState};
use crate::timers::Timer;
use crate::{Action, CloseReason, ConnError, ConnId, Instant, Purpose, UserId};

impl Pool {
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
    pub(crate) fn retire_open(
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

    pub(crate) fn idle_limit(&self, conn_id: ConnId) -> Option<std::time::Duration> {
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
    pub(crate) fn leave_conn(&mut self, now: Instant, conn_id: ConnId) {
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
}
