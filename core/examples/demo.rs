//! `make demo`: a deterministic simulation of the pool on virtual time.
//!
//! Two servers (A preferred, B backup), a dozen users of every kind, server A
//! killed and brought back (fail-over, probes with backoff, hold-down,
//! make-before-break fail-back), a configuration reload while users run, and a
//! shutdown. Every input, every action and the pool table are printed as they
//! change. The "adapter" here is a script: connects take 3 ms, searches 20 ms,
//! and a dead server refuses connections and probes. Run it twice: the output
//! is identical, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ldapmux_core::{
    Action, Config, ConnError, ConnErrorKind, ConnId, CredKey, Event, Health, Instant, Pool,
    Request, ServerId, UserId, UserKind,
};

const A: &str = "ldap://127.0.0.1:3891";
const B: &str = "ldap://127.0.0.1:3892";
const CONNECT: Duration = Duration::from_millis(3);
const OP: Duration = Duration::from_millis(20);

/// What the scripted world does at a given instant.
#[derive(Debug, Clone)]
enum Step {
    /// A new user arrives.
    Arrive(Request),
    /// An `Open` completes (or fails, if the server is dead).
    ConnectDone(ConnId, ServerId),
    /// A granted user's operation completes.
    OpDone(UserId),
    /// A probe of a server completes.
    ProbeDone(ServerId),
    Kill(&'static str),
    Revive(&'static str),
    Reload,
    Shutdown,
}

struct World {
    now: Instant,
    pool: Pool,
    agenda: BTreeMap<(Instant, u64), Step>,
    seq: u64,
    dead: BTreeSet<ServerId>,
    /// Conn of each granted user, and the request to retry it with.
    granted: BTreeMap<UserId, (ConnId, Request)>,
    requests: BTreeMap<UserId, Request>,
    last_table: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::builder()
        .preferred_server(A)
        .server(B)
        .max_users_per_conn(4)
        .failback_hold_down(Duration::from_secs(5))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(8))
        .build()?;
    let pool = Pool::new(config, 42, Instant::ZERO)?;
    let mut w = World {
        now: Instant::ZERO,
        pool,
        agenda: BTreeMap::new(),
        seq: 0,
        dead: BTreeSet::new(),
        granted: BTreeMap::new(),
        requests: BTreeMap::new(),
        last_table: String::new(),
    };
    println!("ldapmux demo: a deterministic simulation of ldapmux-core on virtual time");
    println!("servers: A={A} (preferred), B={B}; cap 4 users per connection\n");

    // A steady trickle of users of every kind and two credentials.
    let kinds = [
        (UserKind::Search, CredKey::ANONYMOUS),
        (UserKind::Search, CredKey(1)),
        (UserKind::Getent, CredKey::ANONYMOUS),
        (UserKind::Search, CredKey::ANONYMOUS),
        (UserKind::Write, CredKey(1)),
        (UserKind::Auth, CredKey(2)),
    ];
    for i in 0..60u64 {
        let (kind, cred) = kinds[(i % kinds.len() as u64) as usize];
        let at = Instant::from_millis(i * 500);
        w.schedule(at, Step::Arrive(Request::new(kind, cred)));
        if i % 3 == 0 {
            // Bursts make connections fill up and coalesce.
            w.schedule(
                at,
                Step::Arrive(Request::new(UserKind::Search, CredKey::ANONYMOUS)),
            );
        }
    }
    // Two searches are running on A when it is killed: they see their
    // connection die, are told a retry is worth it, and retry on B.
    for _ in 0..2 {
        w.schedule(
            Instant::from_millis(5_001),
            Step::Arrive(Request::new(UserKind::Search, CredKey::ANONYMOUS)),
        );
    }
    w.schedule(Instant::from_millis(5_010), Step::Kill(A));
    w.schedule(Instant::from_millis(12_000), Step::Revive(A));
    w.schedule(Instant::from_millis(26_000), Step::Reload);
    w.schedule(Instant::from_millis(31_000), Step::Shutdown);

    w.run(Instant::from_secs(40));
    w.pool.check_invariants()?;
    let s = w.pool.status();
    println!(
        "\nend: grants={} fails={} retries offered={} opens={} closes={} generations={}",
        s.counters.grants,
        s.counters.fails,
        s.counters.retries_offered,
        s.counters.opens,
        s.counters.closes,
        s.counters.generations
    );
    Ok(())
}

impl World {
    fn schedule(&mut self, at: Instant, step: Step) {
        self.seq += 1;
        self.agenda.insert((at, self.seq), step);
    }

    fn server(&self, addr: &str) -> ServerId {
        self.pool.server_id(addr).expect("configured server")
    }

    fn name(&self, s: ServerId) -> &'static str {
        if self.pool.server_addr(s) == Some(A) {
            "A"
        } else {
            "B"
        }
    }

    /// Runs until `end`, always taking the earlier of the next scripted step
    /// and the pool's next timer. Bounded by the agenda and `end`.
    fn run(&mut self, end: Instant) {
        for _ in 0..100_000 {
            let next_step = self.agenda.keys().next().map(|k| k.0);
            let next_timer = self.pool.poll_timeout().map(|t| t.at);
            let at = match (next_step, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => return,
            };
            if at > end {
                return;
            }
            self.now = at;
            if next_step == Some(at) {
                let key = *self.agenda.keys().next().expect("non-empty");
                let step = self.agenda.remove(&key).expect("present");
                self.apply(step);
            } else {
                let reason = self.pool.poll_timeout().map(|t| t.reason);
                self.log(&format!("timer {reason:?}"));
                self.pool.handle_timeout(self.now);
            }
            self.drain();
            self.pool
                .check_invariants()
                .expect("invariants hold after every input");
            self.print_table();
        }
    }

    fn apply(&mut self, step: Step) {
        let now = self.now;
        match step {
            Step::Arrive(req) => {
                let user = self.pool.handle_acquire(now, req.clone());
                self.log(&format!(
                    "{user} asks for a {:?} connection as {}",
                    req.kind, req.cred
                ));
                self.requests.insert(user, req);
            }
            Step::ConnectDone(conn, server) => {
                let ev = if self.dead.contains(&server) {
                    let error = ConnError::new(ConnErrorKind::Refused, "connection refused");
                    Event::ConnOpenFailed { conn, error }
                } else {
                    Event::ConnOpened { conn }
                };
                self.feed(ev);
            }
            Step::OpDone(user) => {
                let Some((conn, req)) = self.granted.remove(&user) else {
                    return;
                };
                let server = self.pool.conn(conn).map(|c| c.server);
                match server {
                    Some(s) if self.dead.contains(&s) => {
                        let error = ConnError::new(ConnErrorKind::Io, "connection reset");
                        self.feed(Event::ConnBroken {
                            user,
                            error,
                            request_sent: true,
                        });
                        self.requests.insert(user, req);
                    }
                    _ => {
                        if req.kind == UserKind::Getent {
                            self.feed(Event::GetNext { user });
                        }
                        self.feed(Event::Release { user });
                    }
                }
            }
            Step::ProbeDone(server) => {
                let ok = !self.dead.contains(&server);
                self.feed(Event::ProbeResult { server, ok });
            }
            Step::Kill(addr) => {
                let s = self.server(addr);
                self.dead.insert(s);
                self.log(&format!("*** server {} is killed (SIGKILL)", self.name(s)));
                // The status feed notices a moment later.
                self.feed(Event::ServerDown { server: s });
            }
            Step::Revive(addr) => {
                let s = self.server(addr);
                self.dead.remove(&s);
                self.log(&format!(
                    "*** server {} is restarted; probes will find it",
                    self.name(s)
                ));
            }
            Step::Reload => {
                let config = Config::builder()
                    .preferred_server(A)
                    .server(B)
                    .max_users_per_conn(2)
                    .build()
                    .expect("valid config");
                self.log("*** configuration reloaded (cap 4 -> 2)");
                self.feed(Event::Reload(Box::new(config)));
            }
            Step::Shutdown => {
                self.log("*** shutdown");
                self.feed(Event::Shutdown);
            }
        }
    }

    fn feed(&mut self, ev: Event) {
        match &ev {
            Event::Reload(c) => self.log(&format!(
                "event Reload(max_users_per_conn={})",
                c.max_users_per_conn
            )),
            other => self.log(&format!("event {other:?}")),
        }
        if let Err(e) = self.pool.handle(self.now, ev) {
            self.log(&format!("  (ignored: {e})"));
        }
    }

    fn drain(&mut self) {
        while let Some(action) = self.pool.poll_action() {
            self.log(&format!("  -> {action:?}"));
            match action {
                Action::Open { conn, server, .. } => {
                    self.schedule(self.now + CONNECT, Step::ConnectDone(conn, server));
                }
                Action::Grant { user, conn } => {
                    let req = self
                        .requests
                        .remove(&user)
                        .expect("request of granted user");
                    self.granted.insert(user, (conn, req));
                    self.schedule(self.now + OP, Step::OpDone(user));
                }
                Action::Fail { user, retry, .. } => {
                    if let Some(req) = self.requests.remove(&user)
                        && retry
                    {
                        self.schedule(self.now, Step::Arrive(req.retry()));
                    }
                }
                Action::Probe { server } => {
                    self.schedule(self.now + CONNECT, Step::ProbeDone(server));
                }
                _ => {}
            }
        }
    }

    fn log(&self, line: &str) {
        println!("{:>10}  {line}", format!("{:?}", self.now));
    }

    /// Prints the pool table when its shape changed (health, generations,
    /// connections and their phases; not every user count).
    fn print_table(&mut self) {
        let s = self.pool.status();
        let mut t = String::new();
        for srv in &s.servers {
            let health = match srv.health {
                Health::Unknown => "not reached yet".to_string(),
                Health::Up => "up".to_string(),
                Health::Returning { until } => format!("returning until {until:?}"),
                Health::Down {
                    next_probe,
                    probing,
                    ..
                } => {
                    format!(
                        "DOWN (probe {}{next_probe:?})",
                        if probing { "in flight since " } else { "at " }
                    )
                }
                other => other.to_string(),
            };
            let name = self.name(srv.id);
            t += &format!(
                "            | server {name}: {health:<40} conns={}\n",
                srv.conns
            );
        }
        for g in &s.generations {
            t += &format!("            | generation {}: {:?}\n", g.id, g.phase);
        }
        let conns: Vec<String> = self
            .pool
            .conns()
            .map(|c| {
                format!(
                    "{}@{}/{}/{:?}/{}",
                    c.id,
                    self.name(c.server),
                    c.cred,
                    c.purpose,
                    phase(&c.phase)
                )
            })
            .collect();
        if !conns.is_empty() {
            t += &format!("            | conns: {}\n", conns.join(" "));
        }
        if t != self.last_table {
            print!("{t}");
            self.last_table = t;
        }
    }
}

fn phase(p: &ldapmux_core::ConnPhase) -> &'static str {
    match p {
        ldapmux_core::ConnPhase::Connecting => "connecting",
        ldapmux_core::ConnPhase::Open => "open",
        ldapmux_core::ConnPhase::Draining => "draining",
        ldapmux_core::ConnPhase::Broken(_) => "broken",
    }
}
