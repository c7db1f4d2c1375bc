//! What a run measures: which contenders at which concurrencies, in which
//! groups and rounds, for the full, quick and custom runs.

use super::*;

/// Parses `2x4,4x8` into spread pairs.
pub fn parse_pairs(s: &str) -> Option<Vec<(u32, u32)>> {
    s.split(',')
        .map(|p| {
            let (a, b) = p.trim().split_once('x')?;
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a > 0 && b > 0).then_some((a, b))
        })
        .collect::<Option<Vec<_>>>()
        .filter(|v| !v.is_empty())
}

/// Which contenders run at which concurrencies, and for how long.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) name: &'static str,
    pub(crate) users: usize,
    pub(crate) slapd_threads: u32,
    pub(crate) concs: Vec<usize>,
    pub(crate) groups: Vec<Group>,
    pub(crate) window: Window,
    pub(crate) cold_storm: Option<usize>,
    /// Pairs of the paired latency measurement at concurrency 1.
    pub(crate) paired_latency: Option<usize>,
    /// A window during which other processes used more than this share of
    /// the machine's CPU (%) is measured again, once.
    pub(crate) retry_foreign_pct: f64,
    /// No retries once the run is this old.
    pub(crate) retry_budget: Duration,
    /// Before each window, wait at most this long for other processes to
    /// quieten down (below `retry_foreign_pct`)…
    pub(crate) quiet_wait: Duration,
    /// …and at most this long in all.
    pub(crate) quiet_budget: Duration,
    pub(crate) connect_cost: Option<(usize, usize)>,
    /// Reads of the black-holed-preferred-server scenario (concurrent, then sequential).
    pub(crate) blackhole: Option<usize>,
    pub(crate) failover: Option<FailoverPlan>,
}

/// Contenders measured together, in rotating order, `rounds` times.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) kinds: Vec<Kind>,
    pub(crate) rounds: usize,
    /// Rounds at concurrency 1, where one window is noisiest (`None`: `rounds`).
    pub(crate) rounds_at_1: Option<usize>,
    /// Concurrencies it runs at (`None`: all of the plan's).
    pub(crate) concs: Option<Vec<usize>>,
}

/// `RawNConns(0)`: N is what ldapmux at its defaults used at that concurrency.
pub(crate) const RAW_N_FROM_LDAPMUX: Kind = Kind::RawNConns(0);

impl Plan {
    fn core(rounds: usize) -> Group {
        Group {
            kinds: vec![
                Kind::Ldapmux(None),
                Kind::RawShared,
                Kind::RawPerTask,
                RAW_N_FROM_LDAPMUX,
            ],
            rounds,
            rounds_at_1: Some(rounds * 2),
            concs: None,
        }
    }

    /// ldapmux over spread pairs, at the sweep's concurrencies.
    fn sweep(pairs: &[(u32, u32)], rounds: usize) -> Group {
        Group {
            kinds: pairs
                .iter()
                .map(|&(users, conns)| Kind::LdapmuxSpread { users, conns })
                .collect(),
            rounds,
            rounds_at_1: None,
            concs: Some(SWEEP_CONCS.to_vec()),
        }
    }

    pub(crate) fn full(pairs: &[(u32, u32)]) -> Plan {
        Plan {
            name: "full",
            users: 10_000,
            slapd_threads: 4,
            concs: vec![1, 16, 64, 256, 1024],
            groups: vec![
                Group {
                    kinds: vec![
                        Kind::Ldapmux(None),
                        Kind::RawShared,
                        Kind::RawPerTask,
                        RAW_N_FROM_LDAPMUX,
                        Kind::Ldapmux(Some(1)),
                        Kind::Bb8 { tuned: true },
                        Kind::Deadpool { tuned: true },
                        Kind::Bb8 { tuned: false },
                        Kind::Deadpool { tuned: false },
                    ],
                    rounds: 5,
                    rounds_at_1: Some(5),
                    concs: None,
                },
                Plan::sweep(pairs, 3),
            ],
            window: Window {
                warmup: Duration::from_millis(400),
                measure: Duration::from_millis(1500),
            },
            cold_storm: Some(1000),
            paired_latency: Some(20_000),
            retry_foreign_pct: 15.0,
            retry_budget: Duration::from_secs(420),
            quiet_wait: Duration::from_secs(20),
            quiet_budget: Duration::from_secs(60),
            connect_cost: Some((200, 20)),
            blackhole: Some(20),
            failover: Some(FailoverPlan {
                conc: 16,
                kill_at: Duration::from_millis(1500),
                restart_at: Duration::from_millis(3500),
                end_at: Duration::from_millis(7000),
                connect_timeout: Duration::from_secs(1),
                hold_down: Duration::from_secs(1),
                probe_min: Duration::from_millis(100),
                probe_max: Duration::from_millis(400),
            }),
        }
    }

    /// The core group and the spread sweep, nothing else: what the spread
    /// defaults are chosen from, in ≤ 6 minutes.
    pub(crate) fn sweep_only(pairs: &[(u32, u32)]) -> Plan {
        let full = Plan::full(pairs);
        let mut core = Plan::core(3);
        core.rounds_at_1 = Some(3);
        Plan {
            name: "sweep-only",
            groups: vec![core, Plan::sweep(pairs, 3)],
            cold_storm: None,
            paired_latency: None,
            retry_budget: Duration::from_secs(240),
            quiet_wait: Duration::from_secs(10),
            quiet_budget: Duration::from_secs(30),
            connect_cost: None,
            blackhole: None,
            failover: None,
            ..full
        }
    }

    pub(crate) fn quick() -> Plan {
        let full = Plan::full(&SWEEP_PAIRS);
        Plan {
            name: "quick",
            groups: vec![
                Plan::core(1),
                Group {
                    kinds: vec![
                        Kind::Bb8 { tuned: false },
                        Kind::Bb8 { tuned: true },
                        Kind::Deadpool { tuned: false },
                        Kind::Deadpool { tuned: true },
                        Kind::Ldapmux(Some(1)),
                    ],
                    rounds: 1,
                    rounds_at_1: None,
                    concs: Some(vec![64]),
                },
            ],
            window: Window {
                warmup: Duration::from_millis(300),
                measure: Duration::from_millis(1000),
            },
            cold_storm: Some(1000),
            paired_latency: Some(5_000),
            retry_budget: Duration::from_secs(45),
            quiet_wait: Duration::from_secs(2),
            quiet_budget: Duration::from_secs(10),
            connect_cost: Some((50, 5)),
            failover: Some(FailoverPlan {
                kill_at: Duration::from_millis(800),
                restart_at: Duration::from_millis(1800),
                end_at: Duration::from_millis(4000),
                ..full.failover.expect("full plan has a fail-over")
            }),
            ..full
        }
    }
}
