//! A tiny harness for story tests: the real pool on a virtual clock. Every
//! input is followed by `check_invariants`, and every loop is bounded.

#![allow(dead_code)]

use std::time::Duration;

use ldapmux_core::{
    Action, Config, ConnError, ConnErrorKind, ConnId, CredKey, Error, Event, Instant, Pool,
    Request, ServerId, UserId, UserKind,
};

pub const A: &str = "ldap://127.0.0.1:3891";
pub const B: &str = "ldap://127.0.0.1:3892";
pub const C: &str = "ldap://127.0.0.1:3893";

/// A preferred, B as backup, short timers so stories stay readable.
pub fn config() -> ldapmux_core::ConfigBuilder {
    Config::builder()
        .preferred_server(A)
        .server(B)
        .failback_hold_down(Duration::from_secs(10))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(8))
}

pub struct Sim {
    pub pool: Pool,
    pub now: Instant,
}

impl Sim {
    pub fn new(config: Config) -> Sim {
        let pool = Pool::new(config, 7, Instant::ZERO).expect("valid config");
        Sim {
            pool,
            now: Instant::ZERO,
        }
    }

    pub fn with(builder: ldapmux_core::ConfigBuilder) -> Sim {
        Sim::new(builder.build().expect("valid config"))
    }

    pub fn server(&self, addr: &str) -> ServerId {
        self.pool.server_id(addr).expect("known server")
    }

    fn checked(&self) {
        if let Err(e) = self.pool.check_invariants() {
            panic!("{e}\n{:#?}", self.pool);
        }
    }

    pub fn acquire(&mut self, req: Request) -> UserId {
        let u = self.pool.handle_acquire(self.now, req);
        self.checked();
        u
    }

    pub fn search(&mut self) -> UserId {
        self.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS))
    }

    /// Feeds an event that must be accepted.
    pub fn ok(&mut self, ev: Event) {
        let name = ev.name();
        if let Err(e) = self.pool.handle(self.now, ev) {
            panic!("{name} refused: {e}");
        }
        self.checked();
    }

    /// Feeds an event and returns the core's answer.
    pub fn event(&mut self, ev: Event) -> Result<(), Error> {
        let r = self.pool.handle(self.now, ev);
        self.checked();
        r
    }

    pub fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.pool.poll_action() {
            out.push(a);
            assert!(out.len() < 100_000, "runaway actions");
        }
        out
    }

    /// Moves the clock forward by `d`, firing every timer due on the way in
    /// order (at its own instant), and returns the actions.
    pub fn advance(&mut self, d: Duration) -> Vec<Action> {
        let target = self.now + d;
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match self.pool.poll_timeout() {
                Some(t) if t.at <= target => {
                    self.now = self.now.max(t.at);
                    self.pool.handle_timeout(self.now);
                    self.checked();
                    out.extend(self.drain());
                }
                _ => {
                    self.now = target;
                    self.pool.handle_timeout(self.now);
                    self.checked();
                    out.extend(self.drain());
                    return out;
                }
            }
        }
        panic!("timers did not settle");
    }

    /// Like [`Sim::advance`], with every server that is probed answering at
    /// once, as a healthy server does during its fail-back hold-down (which
    /// probes it every `probe_backoff_min` and once more at its end).
    /// Returns the actions other than those probes.
    pub fn advance_probed(&mut self, d: Duration) -> Vec<Action> {
        let target = self.now + d;
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let due = self.pool.poll_timeout().filter(|t| t.at <= target);
            self.now = due.map_or(target, |t| self.now.max(t.at));
            self.pool.handle_timeout(self.now);
            self.checked();
            let mut actions = self.drain();
            while let Some(i) = actions
                .iter()
                .position(|a| matches!(a, Action::Probe { .. }))
            {
                let Action::Probe { server } = actions.remove(i) else {
                    unreachable!()
                };
                self.ok(Event::ProbeResult { server, ok: true });
                actions.extend(self.drain());
            }
            out.extend(actions);
            if due.is_none() {
                return out;
            }
        }
        panic!("timers did not settle");
    }

    pub fn opened(&mut self, conn: ConnId) -> Vec<Action> {
        self.ok(Event::ConnOpened { conn });
        self.drain()
    }

    pub fn release(&mut self, user: UserId) -> Vec<Action> {
        self.ok(Event::Release { user });
        self.drain()
    }

    /// The conn of the only `Open` in `actions`.
    pub fn open_of(actions: &[Action]) -> ConnId {
        let opens: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Open { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect();
        assert_eq!(opens.len(), 1, "expected one Open in {actions:?}");
        opens[0]
    }
}

pub fn refused() -> ConnError {
    ConnError::new(ConnErrorKind::Refused, "connection refused")
}

pub fn reset() -> ConnError {
    ConnError::new(ConnErrorKind::Io, "connection reset by peer")
}

pub fn grant(user: UserId, conn: ConnId) -> Action {
    Action::Grant { user, conn }
}
