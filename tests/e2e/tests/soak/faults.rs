//! The faults: the three servers (two behind fault proxies), the pool
//! configurations a reload switches between, and the seeded schedule that
//! kills and restarts, freezes and thaws, black-holes, refuses, resets and
//! cuts, and reloads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ldapmux::{Pool, PoolBuilder};
use ldapmux_harness::{FaultProxy, ProxyMode, Slapd};

use crate::record::{Rng, Run};
use crate::{CONNECT_TIMEOUT, OP_TIMEOUT, USERS, common};

/// One kind of fault the schedule injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL, restart on the same port after a while.
    Kill,
    /// SIGSTOP, SIGCONT after a while.
    Freeze,
    /// SIGSTOP of the server the traffic goes to, for longer than the hang
    /// bound: a call that waits for it instead of timing out is caught.
    Hang,
    /// The proxy black-holes for a while.
    Blackhole,
    /// The proxy resets every connection and refuses new ones for a while.
    Refuse,
    /// The proxy resets every connection once.
    Reset,
    /// The proxy forwards the next request, swallows the answer and resets.
    Cut,
    /// Like `Cut`, with every task but the writers paused, so that the request
    /// cut is a write on the server writes go to: the server applies it, the
    /// pool must answer "outcome unknown" and must not send it again.
    CutWrite,
    /// `pool.reload` with another configuration.
    Reload,
    /// Nothing.
    Quiet,
}

/// Every kind but `Quiet`: a run of 30 s and more injects each at least once.
pub const EVERY_FAULT: [FaultKind; 9] = [
    FaultKind::Kill,
    FaultKind::Freeze,
    FaultKind::Hang,
    FaultKind::Blackhole,
    FaultKind::Refuse,
    FaultKind::Reset,
    FaultKind::Cut,
    FaultKind::CutWrite,
    FaultKind::Reload,
];

/// The fault a target is under.
#[derive(Clone, Copy, Debug)]
enum Active {
    Killed,
    Frozen,
    Proxy(ProxyMode),
}

/// One server the schedule may fault.
pub struct Target {
    /// "A", "B" or "C".
    pub name: &'static str,
    /// The server itself.
    pub server: Slapd,
    proxy: Option<Arc<FaultProxy>>,
    /// The fault on it and when it is healed.
    active: Option<(Active, Instant)>,
}

/// The pool's server list in each configuration a reload may switch to.
pub fn config(variant: usize, urls: &[String; 3], seed: u64) -> PoolBuilder {
    let base = Pool::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OP_TIMEOUT)
        .probe_backoff(Duration::from_millis(100), Duration::from_millis(800))
        .failback_hold_down(Duration::from_millis(500))
        .jitter_seed(seed);
    let [a, b, c] = urls.clone();
    match variant {
        0 => base.preferred_server(b).server(a).server(c),
        1 => base.preferred_server(a).server(b).server(c),
        2 => base.server(a).server(b).server(c),
        3 => base.preferred_server(c).server(a),
        _ => base
            .preferred_server(b)
            .preferred_server(c)
            .server(a)
            .max_users_per_connection(4)
            .max_connections_per_server(6),
    }
}
/// How many configurations [`config`] knows.
pub const VARIANTS: usize = 5;

/// Which configured servers (indexes into `urls`) a variant uses.
pub fn variant_servers(variant: usize) -> &'static [usize] {
    match variant {
        0 => &[1, 0, 2],
        1 | 2 => &[0, 1, 2],
        3 => &[2, 0],
        _ => &[1, 2, 0],
    }
}

/// The fault schedule's state, and once it is over what it did.
pub struct Schedule {
    /// The three servers, A, B and C.
    pub targets: Vec<Target>,
    /// The configuration in force (see [`config`]).
    pub variant: usize,
    /// Faults injected, by kind.
    pub done: BTreeMap<FaultKind, u32>,
    /// `Cut` faults that hit a request.
    pub cuts_claimed: u32,
    /// `CutWrite` faults that hit a request.
    pub write_cuts_claimed: u32,
}

/// Ends the fault on `t`; `true` if it was a cut that hit a request.
fn heal(run: &Run, t: &mut Target, why: &str) -> bool {
    let Some((active, _)) = t.active.take() else {
        return false;
    };
    match active {
        Active::Killed => {
            let started = Instant::now();
            match t.server.restart() {
                Ok(()) => run.event(format!(
                    "{}: restarted ({why}; {} ms)",
                    t.name,
                    started.elapsed().as_millis()
                )),
                Err(e) => run.violation(format!("{}: restart failed: {e}", t.name)),
            }
        }
        Active::Frozen => {
            t.server.thaw();
            run.event(format!("{}: thawed ({why})", t.name));
        }
        Active::Proxy(mode) => {
            let proxy = t
                .proxy
                .as_ref()
                .expect("proxy faults only on proxied servers");
            let claimed = mode == ProxyMode::CutAfterRequest && proxy.mode() == ProxyMode::Forward;
            proxy.set_mode(ProxyMode::Forward);
            let note = if mode == ProxyMode::CutAfterRequest {
                if claimed {
                    ", the cut hit a request"
                } else {
                    ", no request came"
                }
            } else {
                ""
            };
            run.event(format!("{}: proxy forwards again ({why}{note})", t.name));
            return claimed;
        }
    }
    false
}

/// Runs the fault schedule until `deadline`, then heals everything. Runs on a
/// blocking thread: kill, restart, freeze and thaw are synchronous.
fn run_schedule(
    run: &Run,
    mut s: Schedule,
    pool: &Pool,
    urls: &[String; 3],
    mut rng: Rng,
    deadline: Instant,
) -> Schedule {
    // Every kind once first, in a seeded order, so even 30 s cover them all.
    let mut first: Vec<FaultKind> = EVERY_FAULT.to_vec();
    for i in (1..first.len()).rev() {
        first.swap(i, rng.index(i + 1));
    }
    // The write cut first: configuration 0 sends writes through B's proxy.
    first.retain(|&k| k != FaultKind::CutWrite);
    first.push(FaultKind::CutWrite);
    let mut next_fault = Instant::now() + rng.ms(1000, 3000);
    loop {
        let now = Instant::now();
        for t in &mut s.targets {
            if t.active.is_some_and(|(_, until)| until <= now) && heal(run, t, "scheduled") {
                s.cuts_claimed += 1;
            }
        }
        if now >= deadline {
            break;
        }
        if now >= next_fault {
            let kind = first.pop().unwrap_or_else(|| {
                // Weighted: kills and freezes most, then proxy faults and reloads.
                match rng.below(21) {
                    0..=3 => FaultKind::Kill,
                    4..=5 => FaultKind::Freeze,
                    6 | 20 => FaultKind::Hang,
                    7..=8 => FaultKind::Blackhole,
                    9..=10 => FaultKind::Refuse,
                    11..=12 => FaultKind::Reset,
                    13 => FaultKind::Cut,
                    14 => FaultKind::CutWrite,
                    15..=17 => FaultKind::Reload,
                    _ => FaultKind::Quiet,
                }
            });
            if !inject(run, &mut s, kind, pool, urls, &mut rng) && kind != FaultKind::Reload {
                // Try this kind again next time, so the first pass covers every kind.
                if !s.done.contains_key(&kind) {
                    first.push(kind);
                }
            }
            // The first pass a little faster, so that 30 s cover every kind
            // even when a kind finds no free server and waits for the next slot.
            next_fault = now
                + if first.is_empty() {
                    rng.ms(1000, 3000)
                } else {
                    rng.ms(1000, 2000)
                };
        }
        let wake = s
            .targets
            .iter()
            .filter_map(|t| t.active.map(|(_, until)| until))
            .chain([next_fault, deadline])
            .min()
            .expect("at least two instants");
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        );
    }
    for t in &mut s.targets {
        if heal(run, t, "end of the schedule") {
            s.cuts_claimed += 1;
        }
    }
    for t in &s.targets {
        if let Some(p) = &t.proxy {
            p.set_mode(ProxyMode::Forward);
        }
    }
    run.event("schedule over: every server running, every proxy forwarding");
    s
}

impl Schedule {
    /// A target for a fault: a free server `eligible` for it. Two times in
    /// three the one the traffic goes to (the first server of the
    /// configuration that no fault holds) if it qualifies, else any.
    fn choose(&self, rng: &mut Rng, eligible: impl Fn(&Target) -> bool) -> Option<usize> {
        let free: Vec<usize> = (0..self.targets.len())
            .filter(|&i| self.targets[i].active.is_none() && eligible(&self.targets[i]))
            .collect();
        if free.is_empty() {
            return None;
        }
        if rng.below(3) < 2
            && let Some(i) = self.busy().filter(|i| free.contains(i))
        {
            return Some(i);
        }
        Some(free[rng.index(free.len())])
    }

    /// The server the traffic goes to: the first of the configuration that
    /// no fault holds.
    fn busy(&self) -> Option<usize> {
        variant_servers(self.variant)
            .iter()
            .copied()
            .find(|&i| self.targets[i].active.is_none())
    }
}

/// Injects one fault; `false` if no server could take it.
fn inject(
    run: &Run,
    s: &mut Schedule,
    kind: FaultKind,
    pool: &Pool,
    urls: &[String; 3],
    rng: &mut Rng,
) -> bool {
    let now = Instant::now();
    let proxied = |t: &Target| t.proxy.is_some();
    let done = match kind {
        FaultKind::Kill => s.choose(rng, |_| true).map(|i| {
            let hold = rng.ms(300, 3000);
            let t = &mut s.targets[i];
            run.event(format!("{}: kill -9 (restart in {hold:?})", t.name));
            t.server.kill();
            t.active = Some((Active::Killed, now + hold));
        }),
        FaultKind::Hang => s.busy().map(|i| {
            let hold = rng.ms(9_000, 12_000);
            let t = &mut s.targets[i];
            run.event(format!(
                "{}: SIGSTOP, the server in use (thaw in {hold:?})",
                t.name
            ));
            t.server.freeze();
            t.active = Some((Active::Frozen, now + hold));
        }),
        FaultKind::Freeze => s.choose(rng, |_| true).map(|i| {
            let hold = rng.ms(500, 4000);
            let t = &mut s.targets[i];
            run.event(format!("{}: SIGSTOP (thaw in {hold:?})", t.name));
            t.server.freeze();
            t.active = Some((Active::Frozen, now + hold));
        }),
        FaultKind::Blackhole | FaultKind::Refuse | FaultKind::Cut => {
            s.choose(rng, proxied).map(|i| {
                let (mode, hold) = match kind {
                    FaultKind::Blackhole if rng.below(4) == 0 => {
                        (ProxyMode::Blackhole, rng.ms(9_000, 12_000))
                    }
                    FaultKind::Blackhole => (ProxyMode::Blackhole, rng.ms(500, 3000)),
                    FaultKind::Refuse => (ProxyMode::Refuse, rng.ms(500, 3000)),
                    _ => (ProxyMode::CutAfterRequest, rng.ms(500, 2000)),
                };
                let t = &mut s.targets[i];
                run.event(format!("{}: proxy {mode:?} (for {hold:?})", t.name));
                t.proxy.as_ref().expect("proxied").set_mode(mode);
                t.active = Some((Active::Proxy(mode), now + hold));
            })
        }
        FaultKind::CutWrite => {
            // Where the writes go, if it is behind a proxy.
            let target = s.busy().filter(|&i| s.targets[i].proxy.is_some());
            target.map(|i| {
                let t = &s.targets[i];
                let proxy = t.proxy.as_ref().expect("proxied");
                run.writes_only.store(true, Ordering::SeqCst);
                // Let the reads in flight finish, then arm the cut.
                std::thread::sleep(Duration::from_millis(50));
                proxy.set_mode(ProxyMode::CutAfterRequest);
                let armed = Instant::now();
                while proxy.mode() == ProxyMode::CutAfterRequest
                    && armed.elapsed() < Duration::from_secs(1)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let claimed = proxy.mode() == ProxyMode::Forward;
                proxy.set_mode(ProxyMode::Forward);
                run.writes_only.store(false, Ordering::SeqCst);
                if claimed {
                    s.write_cuts_claimed += 1;
                }
                run.event(format!(
                    "{}: proxy cut the next request with only writers running ({})",
                    t.name,
                    if claimed {
                        "a request was cut"
                    } else {
                        "none came within 1 s"
                    }
                ));
            })
        }
        FaultKind::Reset => s.choose(rng, proxied).map(|i| {
            let t = &s.targets[i];
            run.event(format!("{}: proxy resets every connection", t.name));
            t.proxy.as_ref().expect("proxied").reset_all();
        }),
        FaultKind::Reload => {
            let next = (s.variant + 1 + rng.index(VARIANTS - 1)) % VARIANTS;
            match pool.reload(config(next, urls, run.seed)) {
                Ok(()) => {
                    s.variant = next;
                    let names: Vec<_> = variant_servers(next)
                        .iter()
                        .map(|&i| s.targets[i].name)
                        .collect();
                    run.event(format!("reload: configuration {next} (servers {names:?})"));
                    Some(())
                }
                Err(e) => {
                    run.violation(format!("reload to configuration {next} refused: {e}"));
                    None
                }
            }
        }
        FaultKind::Quiet => {
            run.event("quiet");
            Some(())
        }
    };
    if done.is_some() {
        *s.done.entry(kind).or_default() += 1;
    } else {
        run.event(format!("{kind:?}: no free target, quiet instead"));
    }
    done.is_some()
}

/// Three slapd on 127.0.0.1, B and C behind fault proxies.
pub struct Cluster {
    /// The addresses the pool is given: A direct, B and C via their proxies.
    pub urls: [String; 3],
    /// Each server's own address, for the checks that bypass the proxies.
    pub direct: [(&'static str, String); 3],
    /// B's and C's proxies.
    pub proxies: [(&'static str, Arc<FaultProxy>); 2],
}

impl Cluster {
    /// Starts the servers and the proxies; returns their addresses and the
    /// servers as the schedule's targets.
    pub async fn start(run: &Run) -> (Cluster, Vec<Target>) {
        let a = common::slapd(USERS);
        let b = common::slapd(USERS);
        let c = common::slapd(USERS);
        let pb = Arc::new(FaultProxy::start(b.addr()).await.expect("proxy for B"));
        let pc = Arc::new(FaultProxy::start(c.addr()).await.expect("proxy for C"));
        let urls = [a.url(), pb.url(), pc.url()];
        let direct = [("A", a.url()), ("B", b.url()), ("C", c.url())];
        run.event(format!(
            "servers: A {} direct, B {} via proxy {}, C {} via proxy {}",
            a.url(),
            b.url(),
            pb.url(),
            c.url(),
            pc.url()
        ));
        let targets = vec![
            Target {
                name: "A",
                server: a,
                proxy: None,
                active: None,
            },
            Target {
                name: "B",
                server: b,
                proxy: Some(pb.clone()),
                active: None,
            },
            Target {
                name: "C",
                server: c,
                proxy: Some(pc.clone()),
                active: None,
            },
        ];
        let cluster = Cluster {
            urls,
            direct,
            proxies: [("B", pb), ("C", pc)],
        };
        (cluster, targets)
    }
}

/// Runs the seeded fault schedule on `targets` for the run's length, starting
/// in configuration 0, then heals everything; returns what it did.
pub async fn inject_for_the_run(
    run: &Arc<Run>,
    targets: Vec<Target>,
    pool: &Pool,
    urls: &[String; 3],
    rng: Rng,
) -> Schedule {
    let schedule = Schedule {
        targets,
        variant: 0,
        done: BTreeMap::new(),
        cuts_claimed: 0,
        write_cuts_claimed: 0,
    };
    let secs = run.secs;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let faults = {
        let (run, pool, urls) = (run.clone(), pool.clone(), urls.clone());
        tokio::task::spawn_blocking(move || {
            run_schedule(&run, schedule, &pool, &urls, rng, deadline)
        })
    };
    match tokio::time::timeout(Duration::from_secs(secs + 120), faults).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => run.fail(&format!("the fault schedule panicked: {e}")),
        Err(_) => run.fail("the fault schedule did not end"),
    }
}
