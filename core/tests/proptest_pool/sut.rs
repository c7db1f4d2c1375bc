//! The system under test: the real pool plus a ledger of what each user was
//! told.

use super::*;

pub(crate) struct Sut {
    pub(crate) pool: Pool,
    pub(crate) now: Instant,
    pub(crate) told: BTreeMap<UserId, Told>,
    /// Users that asked after shutdown (ids outside every table).
    pub(crate) refused: Vec<UserId>,
    /// What the pool's counters must say, tallied from inputs and actions.
    pub(crate) seen: Seen,
    /// Health evidence, for the rules of issue 16.
    pub(crate) evidence: evidence::Evidence,
    /// When each connection whose credential expiry was reported stops
    /// taking users (the expiry minus the margin).
    pub(crate) retire_at: BTreeMap<ldapmux_core::ConnId, Instant>,
    /// Connections their server announced it is closing.
    pub(crate) noticed: std::collections::BTreeSet<ldapmux_core::ConnId>,
}

/// A ledger of inputs and actions, to check the pool's counters against.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Seen {
    pub(crate) acquires: u64,
    pub(crate) grants: u64,
    pub(crate) fails: u64,
    pub(crate) retries_offered: u64,
    pub(crate) closes: u64,
    pub(crate) opens_asked: u64,
    pub(crate) opened: u64,
    pub(crate) releases: u64,
    pub(crate) cancels: u64,
    /// ConnOpenFailed reports; connect timeouts add failures the ledger does not see.
    pub(crate) open_failures_reported: u64,
    /// Open or draining connections reported lost, and users' broken connections.
    pub(crate) lost: u64,
    /// Users failed with AcquireTimeout.
    pub(crate) timeouts: u64,
    /// Generations started: the first, each accepted reload, each fork.
    pub(crate) generations: u64,
    /// Per server (by index; requests may name servers beyond the
    /// configuration): falls (up to down) and returns (down to up).
    pub(crate) marked_down: [u64; 8],
    pub(crate) marked_up: [u64; 8],
    /// Per server: Action::Probe.
    pub(crate) probes: [u64; 8],
    /// Per server: Action::ServerMarkedDown, one per fall the pool counts.
    pub(crate) down_notices: [u64; 8],
    /// Connections seen draining, and whether each server was down, after the
    /// last input (health is compared step to step).
    pub(crate) seen_draining: BTreeSet<ldapmux_core::ConnId>,
    pub(crate) was_down: [bool; 8],
}

impl Seen {
    pub(crate) fn note(&mut self, action: &Action) {
        match action {
            Action::Grant { .. } => self.grants += 1,
            Action::Fail { retry, error, .. } => {
                self.fails += 1;
                self.timeouts += u64::from(*error == Error::AcquireTimeout);
                self.retries_offered += u64::from(*retry);
            }
            Action::Close { .. } | Action::Abandon { .. } => self.closes += 1,
            Action::Open { .. } => self.opens_asked += 1,
            Action::Probe { server } => self.probes[server.index()] += 1,
            Action::ServerMarkedDown { server } => self.down_notices[server.index()] += 1,
            _ => {}
        }
    }
}

pub(crate) fn config(cap: u32, sharing: Sharing) -> Config {
    Config::builder()
        .preferred_server(SERVERS[0])
        .preferred_server(SERVERS[1])
        .server(SERVERS[2])
        .max_users_per_conn(cap)
        .max_conns_per_server(3)
        .bind_conns_per_server(2)
        .spread(1, 2)
        .sharing(sharing)
        .failback_hold_down(Duration::from_secs(3))
        .max_conn_age(Some(Duration::from_secs(40)))
        .default_acquire_timeout(Duration::from_secs(10))
        .build()
        .expect("valid config")
}

impl Sut {
    /// Feeds a new server list and checks which connections were kept: with
    /// only the servers changed, exactly the open or opening non-referral
    /// connections to a server still listed move to the new generation,
    /// undrained; otherwise none does.
    pub(crate) fn reload_servers(&mut self, now: Instant, mask: u8, same: bool) {
        let Some(current) = self.pool.config().cloned() else {
            let c = config(1, Sharing::Always);
            assert!(
                self.pool
                    .handle(now, Event::ReloadServers(Box::new(c)))
                    .is_err()
            );
            return;
        };
        let listed: Vec<&str> = (0..SERVERS.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| SERVERS[i])
            .collect();
        let mut c = current.clone();
        c.servers = listed
            .iter()
            .enumerate()
            .map(|(i, addr)| ldapmux_core::ServerConfig {
                addr: (*addr).to_owned(),
                preference: (i < 2).then_some(i as u16),
            })
            .collect();
        if !same {
            c.max_users_per_conn = current.max_users_per_conn % 3 + 1;
        }
        let keeps = {
            let mut servers_only = c.clone();
            servers_only.servers.clone_from(&current.servers);
            servers_only == current
        };
        let old = self.pool.current_generation().expect("not shut down");
        let before: Vec<ConnInfo> = self.pool.conns().filter(|i| i.generation == old).collect();
        self.pool
            .handle(now, Event::ReloadServers(Box::new(c)))
            .expect("valid reload");
        self.seen.generations += 1;
        let new = self.pool.current_generation().expect("not shut down");
        assert_ne!(new, old);
        for was in before {
            let addr = self.pool.server_addr(was.server).expect("interned");
            let movable = matches!(was.phase, ConnPhase::Open | ConnPhase::Connecting)
                && !was.referral
                && listed.contains(&addr);
            let now_info = self.pool.conn(was.id);
            if keeps && movable {
                // Users placed again by the reload may join it, and an idle
                // one may make room for them; otherwise it stays as it was.
                let Some(info) = now_info else {
                    assert!(
                        was.phase == ConnPhase::Open && was.users == 0,
                        "{was:?} was closed"
                    );
                    continue;
                };
                // Kept, though a fail-back to a server the new order ranks
                // higher may drain it at once.
                assert!(
                    info.generation == new
                        && matches!(info.drain_reason, None | Some(CloseReason::FailBack)),
                    "{was:?} was not kept: {info:?}"
                );
                assert!(info.users >= was.users, "{was:?} lost users: {info:?}");
                for w in &was.waiters {
                    assert_eq!(self.pool.user(*w).expect("waiter").generation, new);
                }
                for u in self.pool.users().filter(|u| u.conn == Some(was.id)) {
                    assert_eq!(u.generation, new, "{u:?} left behind");
                }
            } else if let Some(info) = now_info {
                assert_eq!(info.generation, old, "{was:?} moved");
                assert!(
                    matches!(info.phase, ConnPhase::Draining | ConnPhase::Broken(_)),
                    "{info:?} still takes users"
                );
            }
        }
    }

    pub(crate) fn pick<T: Copy>(v: &[T], i: u8) -> Option<T> {
        (!v.is_empty()).then(|| v[usize::from(i) % v.len()])
    }

    pub(crate) fn live_users(&self, phase: Option<UserPhase>) -> Vec<UserId> {
        self.pool
            .users()
            .filter(|u| phase.is_none_or(|p| u.phase == p))
            .map(|u| u.id)
            .collect()
    }

    pub(crate) fn connecting(&self) -> Vec<ldapmux_core::ConnId> {
        self.pool
            .conns()
            .filter(|c| c.phase == ConnPhase::Connecting)
            .map(|c| c.id)
            .collect()
    }

    /// Whether connected user `u` is the first to find its connection dead
    /// (a dead connection counts once in `lost`, however many report it).
    pub(crate) fn first_to_find_dead(&self, u: UserId) -> bool {
        self.pool
            .user(u)
            .and_then(|u| u.conn)
            .and_then(|c| self.pool.conn(c))
            .is_some_and(|c| !matches!(c.phase, ConnPhase::Broken(_)))
    }

    /// Drains actions, checking each against the ledger and the reference.
    pub(crate) fn drain(&mut self, expected: &Expected) {
        let hold = self
            .pool
            .config()
            .map_or(Duration::ZERO, |c| c.probe_backoff_min);
        while let Some(action) = self.pool.poll_action() {
            self.seen.note(&action);
            self.evidence.on_action(self.now, &action, hold);
            match action {
                Action::Grant { user, conn } => {
                    assert!(!expected.shut_down, "grant after shutdown: {user}");
                    let c = self.pool.conn(conn).expect("granted connection is live");
                    let u = self.pool.user(user).expect("granted user is live");
                    assert_eq!(
                        c.cred, u.cred,
                        "{user} got a connection bound with another credential"
                    );
                    if let Some(s) = u.server {
                        assert_eq!(c.server, s, "{user} named {s}");
                    }
                    if let Some(at) = self.retire_at.get(&conn) {
                        assert!(
                            self.now < *at,
                            "{user} granted {conn} at {}, retired for its credential at {at}",
                            self.now
                        );
                    }
                    assert!(
                        !self.noticed.contains(&conn),
                        "{user} granted {conn}, which its server announced closing"
                    );
                    let asked = self.told.get(&user).expect("known user");
                    if let Err(e) = alone_if_private(asked.kind, asked.private, &c) {
                        panic!("{user}: {e}");
                    }
                    if asked.pages {
                        let others = self
                            .pool
                            .users()
                            .filter(|o| o.id != user && o.conn == Some(conn))
                            .filter(|o| o.phase == UserPhase::Connected)
                            .filter(|o| self.told.get(&o.id).is_some_and(|t| t.pages))
                            .count();
                        assert_eq!(
                            others, 0,
                            "{user} pages on {conn} beside another paged search"
                        );
                    }
                    let server = SERVERS
                        .iter()
                        .position(|a| Some(*a) == self.pool.server_addr(c.server));
                    if let Some(s) = server {
                        assert!(
                            !expected.down.contains(&(s as u8)),
                            "{user} granted a connection to down server {s}"
                        );
                    }
                    let t = self.told.get_mut(&user).expect("known user");
                    t.wakeups += 1;
                    t.granted = true;
                    assert_eq!(t.wakeups, 1, "{user} woken twice");
                }
                Action::Fail { user, retry, error } => {
                    if let Some(t) = self.told.get_mut(&user) {
                        if !t.granted {
                            t.wakeups += 1;
                            assert_eq!(t.wakeups, 1, "{user} woken twice");
                        }
                        assert!(!t.ended, "{user} failed after it ended");
                        t.ended = true;
                        if retry {
                            assert!(
                                t.attempt < MAX_TRIES,
                                "{user} offered a try beyond {MAX_TRIES}"
                            );
                            assert!(
                                !(t.sent
                                    && matches!(t.kind, Some(UserKind::Write | UserKind::Auth))),
                                "{user}: a write whose request was sent offered a retry"
                            );
                        }
                    } else {
                        assert!(
                            self.refused.contains(&user)
                                || matches!(error, Error::BadAttempt { .. }),
                            "fail for unknown {user}"
                        );
                    }
                    if expected.shut_down {
                        assert!(!retry, "retry offered after shutdown");
                    }
                }
                _ => {}
            }
        }
    }
}
