//! What each event from the runtime and each timer does to the pool:
//! connections that opened, failed, were lost or broke under a user, an
//! enumeration's next page, and the deadline, connect, idle and maximum-age
//! timers. [`Pool::handle`] and [`Pool::handle_timeout`] dispatch here.

use crate::conn_table::Opened;
use crate::pool::Pool;
use crate::pool::unexpected;
use crate::state::{ConnState, UserState};
use crate::timers::Timer;
use crate::{
    Action, CloseReason, ConnError, ConnErrorKind, ConnId, Error, Instant, UserId, UserKind,
};

impl Pool {
    pub(crate) fn on_conn_opened(&mut self, now: Instant, conn_id: ConnId) -> Result<(), Error> {
        if self.conns.get(conn_id).is_none() {
            return Err(Error::UnknownConn(conn_id));
        }
        let Opened {
            mut waiters,
            deadline,
            race_at,
            rival,
        } = self
            .conns
            .open(conn_id, now)
            .map_err(|state| unexpected("ConnOpened", conn_id, state))?;
        let key = self.conns.key_of(conn_id);
        self.timers.disarm(deadline, Timer::Connect(conn_id));
        self.disarm_race(conn_id, race_at);
        if let Some(rival) = rival {
            waiters.extend(self.won_race(rival, conn_id));
        }
        self.counters.opens += 1;
        if key.purpose == crate::Purpose::Bind {
            self.counters.bind_opens += 1;
        }
        self.counters.servers[key.server.index()].opens += 1;
        self.server_answered(key.server);
        self.counters.reach(key.server);
        self.credential_accepted(key.server, key.cred);
        if let Some(age) = self
            .gens
            .get(key.gen_id)
            .and_then(|g| g.config.max_conn_age)
        {
            self.timers.arm(now + age, Timer::MaxAge(conn_id));
        }
        let cap = self.gens.get(key.gen_id).map_or(1, |g| self.cap(&g.config));
        // Up to the cap, and one paging user (a rival's waiters may bring a
        // second); the others are placed again.
        let mut displaced = Vec::new();
        let mut granted = 0;
        for user in waiters {
            let second_pager =
                self.pages(user) && self.conns.get(conn_id).is_some_and(|c| c.paging);
            if granted < cap as usize && !second_pager {
                self.attach(now, user, conn_id);
                granted += 1;
            } else {
                displaced.push(user);
            }
        }
        for user in displaced {
            self.users.unplace(user); // until placed again
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

    pub(crate) fn on_conn_open_failed(
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
            // It answered: reached, if only to refuse.
            self.counters.reach(server);
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

    pub(crate) fn on_conn_lost(
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
                let noticed = conn.noticed;
                self.break_conn(conn_id, error, CloseReason::Broken);
                if !noticed {
                    self.drain_siblings(conn_id, server, kind);
                }
            }
            ConnState::Broken { .. } => {}
        }
        Ok(())
    }

    /// The server announced it is closing `conn_id` (a Notice of
    /// Disconnection): no new users; its death is expected.
    pub(crate) fn on_conn_closing(&mut self, conn_id: ConnId) {
        #[cfg(feature = "fault-hooks")]
        if self.has_bug(crate::PolicyBug::IgnoreServerNotice) {
            return;
        }
        self.conns.set_noticed(conn_id);
        self.counters.notices += 1;
        // Drains an open connection; one already closing keeps its reason.
        self.drain_conn(conn_id, CloseReason::ServerNotice);
    }

    pub(crate) fn on_conn_broken(
        &mut self,
        now: Instant,
        user: UserId,
        conn_id: ConnId,
        error: ConnError,
        sent: bool,
    ) {
        let (server, first, noticed) = self
            .conns
            .get(conn_id)
            .map(|c| {
                let first = !matches!(c.state, ConnState::Broken { .. });
                (c.server, first, c.noticed)
            })
            .expect("user's conn exists");
        // Counted once per connection, by the first user to find it dead
        // (its other users report it too).
        if first {
            self.counters.lost += 1;
        }
        // Mark the connection before the user leaves, so the user's leaving
        // closes it if it was the last (behaviour 6).
        self.break_conn(conn_id, error.clone(), CloseReason::Broken);
        if !noticed {
            self.drain_siblings(conn_id, server, error.kind);
        }
        if error.kind == ConnErrorKind::Timeout && !noticed {
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

    pub(crate) fn on_get_next(&mut self, now: Instant, user_id: UserId) -> Result<(), Error> {
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
        self.users.start_enumerating(user_id);
        self.push(Action::Resume {
            user: user_id,
            conn: conn_id,
        });
        Ok(())
    }

    pub(crate) fn on_user_deadline(&mut self, now: Instant, user: UserId) {
        let Some(u) = self.users.get(user) else {
            return;
        };
        if u.deadline > now || matches!(u.state, UserState::Connected { .. }) {
            return;
        }
        self.counters.timeouts += 1;
        self.fail_user(now, user, Error::AcquireTimeout, false);
    }

    pub(crate) fn on_connect_deadline(&mut self, now: Instant, conn: ConnId) {
        match self.conns.get(conn).map(|c| &c.state) {
            Some(ConnState::Connecting { deadline, .. }) if *deadline <= now => {
                let error = ConnError::new(ConnErrorKind::Timeout, "connect timeout");
                self.connect_failed(now, conn, error, Some(CloseReason::ConnectTimeout));
            }
            _ => {}
        }
    }

    pub(crate) fn on_idle_timer(&mut self, now: Instant, conn_id: ConnId) {
        let limit = self.idle_limit(conn_id);
        let Some(ConnState::Open {
            users, idle_since, ..
        }) = self.conns.get(conn_id).map(|c| &c.state)
        else {
            return;
        };
        let idle = (*users == 0).then_some(*idle_since).flatten();
        // The timer fired: it is armed no more.
        self.conns.set_idle_timer(conn_id, None);
        let (Some(since), Some(limit)) = (idle, limit) else {
            return;
        };
        let due = since + limit;
        if due <= now {
            self.close_conn(conn_id, CloseReason::Idle);
        } else {
            self.conns.set_idle_timer(conn_id, Some(due));
            self.timers.arm(due, Timer::Idle(conn_id));
        }
    }

    pub(crate) fn on_max_age(&mut self, now: Instant, conn_id: ConnId) {
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
}
