//! Deterministic simulation: long seeded random walks over a larger
//! population than exhaustive search can cover (20 users, 4 servers),
//! checking every `always` property after every step.

use ldapmux_core::UserKind;
use stateright::{Expectation, Model};

use crate::catalog::base;
use crate::{Budget, Bug, PoolModel, Step, UserSpec};

/// What a simulation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulationReport {
    /// The seed (replay with the same seed and steps).
    pub seed: u64,
    /// Steps taken.
    pub steps: u64,
    /// Times a walk reached a state with no action and started over.
    pub restarts: u64,
    /// Steps whose input the pool refused (state unchanged).
    pub noops: u64,
    /// The first property broken, with the step number, if any.
    pub violation: Option<(u64, &'static str)>,
}

fn population() -> PoolModel {
    let kinds = [
        UserKind::Search,
        UserKind::Search,
        UserKind::Getent,
        UserKind::Write,
        UserKind::Auth,
    ];
    let users = (0..20u64)
        .map(|i| {
            let mut spec = UserSpec::new(kinds[(i % 5) as usize], i % 3);
            if i % 7 == 6 {
                spec.server = Some((i % 4) as usize);
            }
            spec
        })
        .collect();
    PoolModel {
        name: "simulation",
        config: base(4)
            .max_users_per_conn(3)
            .max_conns_per_server(3)
            .build()
            .expect("valid"),
        users,
        budget: Budget {
            open_failures: 40,
            breaks: 40,
            timeouts: 20,
            refusals: 20,
            cancels: 20,
            downs: 20,
            ups: 20,
            probes: 40,
            retries: 40,
            retires: 20,
            reloads: 4,
            server_changes: 4,
            shutdowns: 1,
            forks: 2,
            ticks: 60,
            repeats: 5_000,
        },
        bug: None,
        plant: None,
        policy: None,
        reaches: &[],
    }
}

/// Walks `steps` random steps from `seed` (restarting from the initial state
/// whenever a walk ends), checking every `always` property after each step.
pub fn simulate(seed: u64, steps: u64) -> SimulationReport {
    simulate_with_bug(seed, steps, None)
}

/// Like [`simulate`], with `bug` planted in the model wrapper (to show a
/// simulation finds violations and replays them).
pub fn simulate_with_bug(seed: u64, steps: u64, bug: Option<Bug>) -> SimulationReport {
    let model = PoolModel {
        bug,
        ..population()
    };
    let properties: Vec<_> = model
        .properties()
        .into_iter()
        .filter(|p| p.expectation == Expectation::Always)
        .collect();
    let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % bound as u64) as usize
    };
    let mut state = model.init_states().remove(0);
    let mut restarts = 0;
    let mut noops = 0;
    let mut actions = Vec::new();
    for step in 1..=steps {
        actions.clear();
        model.actions(&state, &mut actions);
        if actions.is_empty() {
            restarts += 1;
            state = model.init_states().remove(0);
            continue;
        }
        // Take a random action the pool accepts; a refused one is set aside.
        let mut taken = false;
        while !actions.is_empty() {
            let action = actions.swap_remove(next(actions.len()));
            // Lifecycle events end or reset a walk: keep them rare so walks go deep.
            let rare = matches!(
                action,
                Step::AdminShutsDown
                    | Step::ProcessForks
                    | Step::AdminReloads
                    | Step::DiscoveryChangesServers
            );
            if rare && !actions.is_empty() && next(50) != 0 {
                continue;
            }
            if std::env::var_os("LDAPMUX_SIM_TRACE").is_some() {
                eprintln!("{step}: {action:?}");
            }
            match model.next_state(&state, action) {
                Some(s) => {
                    state = s;
                    taken = true;
                    break;
                }
                None => noops += 1,
            }
        }
        for p in &properties {
            if !(p.condition)(&model, &state) {
                return SimulationReport {
                    seed,
                    steps: step,
                    restarts,
                    noops,
                    violation: Some((step, p.name)),
                };
            }
        }
        // A shut-down pool or a walk with nothing left to do starts over.
        if !taken || state.pool.is_shut_down() {
            restarts += 1;
            state = model.init_states().remove(0);
        }
    }
    SimulationReport {
        seed,
        steps,
        restarts,
        noops,
        violation: None,
    }
}
