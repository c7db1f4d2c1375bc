//! A shared connection's life: opened for a key, users attached, broken,
//! drained, gone idle, removed. The transitions of behaviours 1–6 are built
//! from these, with the reference counts (`Holder`) they keep.

use crate::conn_table::Retired;
use crate::gen_table::Holder;
use crate::index::MatchKey;
use crate::pool::Pool;
use crate::state::{Conn, ConnState};
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
            paging: false,
            noticed: false,
            retire_at: None,
        });
        if let Some(at) = race_at {
            self.timers.arm(at, Timer::Race(conn));
        }
        self.gens.take_ref(key.gen_id, Holder::Conn);
        self.servers.conn_added(key.server);
        self.creds.conn_added(key.cred);
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
        let key = self.conns.key_of(conn_id);
        self.conns.add_user(conn_id);
        if self.users.get(user).is_some_and(|u| u.pages) {
            self.conns.set_paging(conn_id, true);
        }
        let deadline = self.users.connect(user, conn_id);
        self.timers.disarm(deadline, Timer::User(user));
        self.servers.user_added(key.server);
        self.creds.user_added(key.cred);
        self.counters.grants += 1;
        self.counters.servers[key.server.index()].grants += 1;
        self.push(Action::Grant {
            user,
            conn: conn_id,
        });
    }

    /// Removes `conn` from every table without telling the adapter.
    pub(crate) fn remove_conn(&mut self, conn_id: ConnId) -> Conn {
        let key = self.conns.key_of(conn_id);
        let conn = self.conns.remove(conn_id).expect("conn exists");
        match &conn.state {
            ConnState::Connecting {
                deadline,
                race_at,
                rival,
                ..
            } => {
                self.timers.disarm(*deadline, Timer::Connect(conn_id));
                self.disarm_race(conn_id, *race_at);
                if let Some(rival) = rival {
                    self.unlink_rival(*rival);
                }
            }
            ConnState::Open {
                opened, idle_timer, ..
            } => self.retire_timers(
                conn_id,
                &key,
                &Retired {
                    opened: *opened,
                    idle_timer: *idle_timer,
                    retire_at: conn.retire_at,
                },
            ),
            ConnState::Draining { .. } | ConnState::Broken { .. } => {}
        }
        debug_assert_eq!(conn.state.users(), 0, "removing a connection with users");
        self.servers.conn_removed(key.server);
        self.creds.conn_removed(key.cred);
        self.gens.drop_ref(key.gen_id, Holder::Conn);
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
        self.conns.take_waiters(conn)
    }

    /// Abandons an opening connection; returns its waiters for re-placement.
    pub(crate) fn abort_connecting(&mut self, conn: ConnId, reason: CloseReason) -> Vec<UserId> {
        let waiters = self.take_waiters(conn);
        self.close_conn(conn, reason);
        for &u in &waiters {
            self.users.unplace(u); // the caller places it
        }
        waiters
    }

    /// The connection died (behaviour 6): no new users; its users see `error`;
    /// it is closed with `reason` when the last one leaves.
    pub(crate) fn break_conn(&mut self, conn_id: ConnId, error: ConnError, reason: CloseReason) {
        let key = self.conns.key_of(conn_id);
        let Some((users, retired)) = self.conns.set_broken(conn_id, error) else {
            return;
        };
        if let Some(r) = retired {
            self.retire_timers(conn_id, &key, &r);
        }
        if users == 0 {
            self.close_conn(conn_id, reason);
        }
    }

    /// The credential open `conn_id` was bound with expires at `expires`:
    /// the connection takes no new users from
    /// [`Config::credential_expiry_margin`](crate::Config::credential_expiry_margin)
    /// before, or a tenth of the time left if that is less (at once if
    /// `expires` has passed), so that no operation starts on it
    /// while its credential may lapse; it closes when its last user leaves.
    /// A later report replaces an earlier one (a renewed ticket).
    pub(crate) fn expire_conn(&mut self, now: Instant, conn_id: ConnId, expires: Instant) {
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::IgnoreCredentialExpiry) {
            return;
        }
        let Some(conn) = self.conns.get(conn_id) else {
            return;
        };
        if !matches!(conn.state, ConnState::Open { .. }) {
            return;
        }
        // The margin, but never more than a tenth of the time left: a short
        // ticket (minutes) is used for most of its life, not retired at once.
        let margin = self
            .gens
            .config(conn.gen_id)
            .map_or(std::time::Duration::ZERO, |c| c.credential_expiry_margin)
            .min(expires.saturating_duration_since(now) / 10);
        let at = expires.saturating_sub(margin);
        if let Some(before) = self.conns.set_retire_at(conn_id, at) {
            self.timers.disarm(before, Timer::CredentialExpiry(conn_id));
        }
        if at <= now {
            self.drain_conn(conn_id, CloseReason::CredentialExpiring);
        } else {
            self.timers.arm(at, Timer::CredentialExpiry(conn_id));
        }
    }

    /// The credential-expiry timer of `conn_id` fired.
    pub(crate) fn on_credential_expiry(&mut self, now: Instant, conn_id: ConnId) {
        let due = self.conns.get(conn_id).is_some_and(|c| {
            matches!(c.state, ConnState::Open { .. }) && c.retire_at.is_some_and(|at| at <= now)
        });
        if due {
            self.drain_conn(conn_id, CloseReason::CredentialExpiring);
        }
    }

    /// Close when the last user leaves (seed `close_conn_mt_when_nouser`).
    pub(crate) fn drain_conn(&mut self, conn_id: ConnId, reason: CloseReason) {
        let key = self.conns.key_of(conn_id);
        let Some((users, r)) = self.conns.set_draining(conn_id, reason) else {
            return;
        };
        self.retire_timers(conn_id, &key, &r);
        self.counters.drains += 1;
        if users == 0 {
            self.close_conn(conn_id, reason);
        }
    }

    /// An open connection stops taking users (it closes, breaks or drains;
    /// the table took it out of the match index): its idle, maximum-age and
    /// credential-expiry timers are disarmed.
    fn retire_timers(&mut self, conn_id: ConnId, key: &MatchKey, r: &Retired) {
        if let Some(at) = r.idle_timer {
            self.timers.disarm(at, Timer::Idle(conn_id));
        }
        if let Some(age) = self
            .gens
            .get(key.gen_id)
            .and_then(|g| g.config.max_conn_age)
        {
            self.timers.disarm(r.opened + age, Timer::MaxAge(conn_id));
        }
        if let Some(at) = r.retire_at {
            self.timers.disarm(at, Timer::CredentialExpiry(conn_id));
        }
    }

    pub(crate) fn idle_limit(&self, conn_id: ConnId) -> Option<std::time::Duration> {
        let conn = self.conns.get(conn_id)?;
        let config = &self.gens.get(conn.gen_id)?.config;
        match conn.purpose {
            Purpose::Write | Purpose::Bind => Some(config.write_idle_timeout),
            Purpose::Read => config.read_idle_timeout,
            Purpose::Private => None,
        }
    }

    /// An open connection's last user left: arm its idle timer (behaviour 5).
    pub(crate) fn conn_went_idle(&mut self, now: Instant, conn_id: ConnId) {
        let limit = self.idle_limit(conn_id);
        let Some(ConnState::Open { idle_timer, .. }) = self.conns.get(conn_id).map(|c| &c.state)
        else {
            return;
        };
        let armed = idle_timer.is_some();
        self.conns.mark_idle(conn_id, now);
        if let (Some(limit), false) = (limit, armed) {
            let at = now + limit;
            self.conns.set_idle_timer(conn_id, Some(at));
            self.timers.arm(at, Timer::Idle(conn_id));
        }
    }

    /// A user leaves its connection (released, failed or cancelled).
    pub(crate) fn leave_conn(&mut self, now: Instant, conn_id: ConnId) {
        let key = self.conns.key_of(conn_id);
        let left = self.conns.remove_user(conn_id);
        let close = match &self.conns.get(conn_id).expect("conn exists").state {
            ConnState::Open { .. } if key.purpose == Purpose::Private => Some(CloseReason::Done),
            ConnState::Open { .. } => None,
            ConnState::Draining { reason, .. } => (left == 0).then_some(*reason),
            ConnState::Broken { .. } => (left == 0).then_some(CloseReason::Broken),
            ConnState::Connecting { .. } => unreachable!(),
        };
        self.servers.user_removed(key.server);
        self.creds.user_removed(key.cred);
        if let Some(reason) = close {
            self.close_conn(conn_id, reason);
        } else if left == 0 {
            self.conn_went_idle(now, conn_id);
        }
    }
}
