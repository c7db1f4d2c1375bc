//! The contenders: how each is set up, runs one search, and is torn down.

use std::sync::Arc;

use ldap3::Ldap;
use ldapmux_harness::{PEOPLE_BASE, Slapd};

use crate::BenchError;
use crate::raw::{self, ConnSlot, DeadpoolLdap};

/// One arrangement of connections under test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// (1) raw ldap3, one connection multiplexed by every task.
    RawShared,
    /// (2) raw ldap3, one connection per task.
    RawPerTask,
    /// (3) raw ldap3, this many connections, task `i` on connection `i mod n`.
    RawNConns(usize),
    /// (4) bb8 + bb8-ldap.
    Bb8 {
        /// `max_size` = concurrency and `test_on_check_out(false)`.
        tuned: bool,
    },
    /// (4) deadpool with [`DeadpoolLdap`].
    Deadpool {
        /// `max_size` = concurrency and no recycle round trip.
        tuned: bool,
    },
    /// (5) ldapmux: `None` at its defaults, `Some(cap)` users per connection
    /// (and connections per server raised to max(16, concurrency)).
    Ldapmux(Option<u32>),
    /// (6) ldapmux at its defaults but for spread before stack:
    /// `spread_users_per_connection(users)`, `spread_connections_per_server(conns)`
    /// (the sweep that chooses those two defaults, issue 15).
    LdapmuxSpread {
        /// Users that make a connection busy (a spare opens beside it).
        users: u32,
        /// Connections of one kind spreading opens per server.
        conns: u32,
    },
}

impl Kind {
    /// The name printed in `contender=`.
    pub(crate) fn name(&self) -> String {
        match self {
            Kind::RawShared => "raw_shared".into(),
            Kind::RawPerTask => "raw_per_task".into(),
            Kind::RawNConns(_) => "raw_n_conns".into(),
            Kind::Bb8 { tuned: false } => "bb8_default".into(),
            Kind::Bb8 { tuned: true } => "bb8_tuned".into(),
            Kind::Deadpool { tuned: false } => "deadpool_default".into(),
            Kind::Deadpool { tuned: true } => "deadpool_tuned".into(),
            Kind::Ldapmux(None) => "ldapmux_default".into(),
            Kind::Ldapmux(Some(cap)) => format!("ldapmux_cap{cap}"),
            Kind::LdapmuxSpread { users, conns } => format!("ldapmux_spread{users}x{conns}"),
        }
    }

    /// The exact settings it runs with (`concurrency` is the window's number of tasks).
    pub(crate) fn settings(&self) -> String {
        match self {
            Kind::RawShared => "1 ldap3 connection (TCP_NODELAY, anonymous bind), every task clones its handle; reconnected by the first task that sees it dead".into(),
            Kind::RawPerTask => "one ldap3 connection per task (TCP_NODELAY, anonymous bind)".into(),
            Kind::RawNConns(_) => "N ldap3 connections (TCP_NODELAY, anonymous bind), N = the connections slapd saw under ldapmux_default at that concurrency (first round); task i on connection i mod N".into(),
            Kind::Bb8 { tuned: false } => "bb8 0.9 defaults: max_size 10, test_on_check_out(true) (bb8-ldap 0.4 is_valid = root-DSE search per check-out, 1 s timeout); bb8-ldap's connect (ldap3 connect, Nagle on, no bind)".into(),
            Kind::Bb8 { tuned: true } => "bb8 0.9: max_size = concurrency, test_on_check_out(false), other settings default; bb8-ldap's connect (ldap3 connect, Nagle on, no bind)".into(),
            Kind::Deadpool { tuned: false } => format!("deadpool 0.13 defaults: max_size {} (2 × CPUs), no wait timeout; our manager's recycle = is_closed() + root-DSE search (bb8-ldap's check); ldap3 connect, Nagle on, no bind", default_deadpool_size()),
            Kind::Deadpool { tuned: true } => "deadpool 0.13: max_size = concurrency; our manager's recycle = is_closed() flag only (no round trip); ldap3 connect, Nagle on, no bind".into(),
            Kind::Ldapmux(None) => {
                let c = ldapmux_core::Config::default();
                format!(
                    "ldapmux defaults: {} users per connection at most, {} connections per server, spread before stack ({} users make a connection busy, up to {} connections per server), connect race delay {}, anonymous (one bind \"\" per connection), TCP_NODELAY, operation timeout 30 s",
                    c.max_users_per_conn,
                    c.max_conns_per_server,
                    c.spread_users_per_conn,
                    c.spread_conns_per_server,
                    c.connect_race_delay
                        .map_or("off".to_owned(), |d| format!("{} ms", d.as_millis())),
                )
            }
            Kind::Ldapmux(Some(cap)) => format!("ldapmux: max_users_per_connection({cap}), max_connections_per_server(max(16, concurrency)); other settings default"),
            Kind::LdapmuxSpread { users, conns } => format!("ldapmux: spread_users_per_connection({users}), spread_connections_per_server({conns}); other settings default (max_users_per_connection, max_connections_per_server included)"),
        }
    }
}

fn default_deadpool_size() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * 2
}

/// A contender set up for one measuring window.
#[derive(Clone)]
pub(crate) enum Handle {
    /// Raw connections; task `i` uses `slots[i % slots.len()]`.
    Raw(Arc<Vec<ConnSlot>>),
    Bb8(bb8::Pool<bb8_ldap::LdapConnectionManager>),
    Deadpool(deadpool::managed::Pool<DeadpoolLdap>),
    Ldapmux(ldapmux::Pool),
}

/// What one task holds between operations.
pub(crate) enum TaskConn {
    Raw {
        slots: Arc<Vec<ConnSlot>>,
        index: usize,
        cur: Option<(Ldap, u64)>,
    },
    Bb8(bb8::Pool<bb8_ldap::LdapConnectionManager>),
    Deadpool(deadpool::managed::Pool<DeadpoolLdap>),
    Ldapmux(ldapmux::Pool),
}

/// Why one operation failed (first few kept for the report).
pub(crate) type OpError = String;

impl Handle {
    /// Sets the contender up: raw connections are opened now, pools are built
    /// empty (they open during the warm-up).
    pub(crate) async fn setup(
        kind: &Kind,
        conc: usize,
        slapd: &Slapd,
    ) -> Result<Handle, BenchError> {
        let url = slapd.url();
        let addr = slapd.addr();
        let raw =
            |n: usize| {
                let url = url.clone();
                async move {
                    let mut slots = Vec::with_capacity(n);
                    for _ in 0..n {
                        slots.push(ConnSlot::open(&url, addr).await.map_err(|e| {
                            BenchError::Setup(format!("raw connect to {url}: {e}"))
                        })?);
                    }
                    Ok::<_, BenchError>(Handle::Raw(Arc::new(slots)))
                }
            };
        match kind {
            Kind::RawShared => raw(1).await,
            Kind::RawPerTask => raw(conc).await,
            Kind::RawNConns(n) => raw((*n).max(1)).await,
            Kind::Bb8 { tuned } => {
                let manager = bb8_ldap::LdapConnectionManager::new(url.clone())
                    .map_err(|e| BenchError::Setup(format!("bb8-ldap manager: {e}")))?;
                let mut builder = bb8::Pool::builder();
                if *tuned {
                    builder = builder.max_size(conc as u32).test_on_check_out(false);
                }
                Ok(Handle::Bb8(builder.build_unchecked(manager)))
            }
            Kind::Deadpool { tuned } => {
                let manager = DeadpoolLdap {
                    url: url.clone(),
                    verify: !tuned,
                };
                let mut builder = deadpool::managed::Pool::builder(manager);
                if *tuned {
                    builder = builder.max_size(conc);
                }
                builder
                    .build()
                    .map(Handle::Deadpool)
                    .map_err(|e| BenchError::Setup(format!("deadpool: {e}")))
            }
            Kind::Ldapmux(cap) => {
                let mut builder = ldapmux::Pool::builder().server(url.clone());
                if let Some(cap) = cap {
                    builder = builder
                        .max_users_per_connection(*cap)
                        .max_connections_per_server(conc.max(16) as u32);
                }
                builder
                    .build()
                    .map(Handle::Ldapmux)
                    .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}")))
            }
            Kind::LdapmuxSpread { users, conns } => ldapmux::Pool::builder()
                .server(url.clone())
                .spread_users_per_connection(*users)
                .spread_connections_per_server(*conns)
                .build()
                .map(Handle::Ldapmux)
                .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}"))),
        }
    }

    /// The state task `index` runs with.
    pub(crate) async fn task(&self, index: usize) -> TaskConn {
        match self {
            Handle::Raw(slots) => {
                let slot = index % slots.len();
                let cur = slots[slot].current().await;
                TaskConn::Raw {
                    slots: slots.clone(),
                    index: slot,
                    cur,
                }
            }
            Handle::Bb8(p) => TaskConn::Bb8(p.clone()),
            Handle::Deadpool(p) => TaskConn::Deadpool(p.clone()),
            Handle::Ldapmux(p) => TaskConn::Ldapmux(p.clone()),
        }
    }

    /// Connections the contender itself says it holds (pools only).
    pub(crate) fn own_conns(&self) -> Option<usize> {
        match self {
            Handle::Raw(slots) => Some(slots.len()),
            Handle::Bb8(p) => Some(p.state().connections as usize),
            Handle::Deadpool(p) => Some(p.status().size),
            Handle::Ldapmux(p) => Some(p.status().conns),
        }
    }

    /// Extra `key=value` fields worth printing (raw reconnects).
    pub(crate) async fn extras(&self) -> Vec<(String, String)> {
        match self {
            Handle::Raw(slots) => {
                let mut n = 0;
                for s in slots.iter() {
                    n += s.reconnects().await;
                }
                vec![("reconnects".into(), n.to_string())]
            }
            _ => Vec::new(),
        }
    }

    /// Closes every connection the contender holds.
    pub(crate) async fn teardown(self) {
        match self {
            Handle::Raw(slots) => {
                for s in slots.iter() {
                    s.close().await;
                }
            }
            Handle::Bb8(p) => drop(p),
            Handle::Deadpool(p) => {
                p.close();
                drop(p);
            }
            Handle::Ldapmux(p) => {
                p.shutdown().await;
            }
        }
    }
}

impl TaskConn {
    /// Runs one search; `Ok` only if it succeeded with exactly one entry.
    pub(crate) async fn search(&mut self, filter: &str) -> Result<(), OpError> {
        let n = match self {
            TaskConn::Raw { slots, index, cur } => {
                let slot = &slots[*index];
                let Some((ldap, generation)) = cur else {
                    // Down: try to reconnect (bounded by the connect timeout).
                    *cur = slot.refresh(u64::MAX).await;
                    return Err("raw connection down, reconnecting".into());
                };
                match raw::search(ldap, filter).await {
                    Ok(n) => n,
                    Err(e) => {
                        if raw::conn_dead(&e) {
                            let seen = *generation;
                            *cur = slot.refresh(seen).await;
                        }
                        return Err(e.to_string());
                    }
                }
            }
            TaskConn::Bb8(pool) => {
                let mut conn = pool.get().await.map_err(|e| format!("bb8 get: {e}"))?;
                raw::search(&mut conn, filter)
                    .await
                    .map_err(|e| e.to_string())?
            }
            TaskConn::Deadpool(pool) => {
                let mut conn = pool.get().await.map_err(|e| format!("deadpool get: {e}"))?;
                raw::search(&mut conn, filter)
                    .await
                    .map_err(|e| e.to_string())?
            }
            TaskConn::Ldapmux(pool) => pool
                .search(PEOPLE_BASE, ldap3::Scope::OneLevel, filter, &raw::ATTRS)
                .await
                .map_err(|e| e.to_string())?
                .len(),
        };
        if n == 1 {
            Ok(())
        } else {
            Err(format!("expected 1 entry, got {n}"))
        }
    }
}
