//! `cargo run -p ldapmux-model --release -- check [--deep] [--only NAME]`
//! model-checks every model (or the one named), prints one line per model and (without `--deep`) fails if a state
//! count differs from [`PINNED_STATES`]; `simulate [--seed N] [--steps M]` runs
//! a seeded random walk over 20 users and 4 servers. Exits non-zero on any
//! violation.

use std::process::ExitCode;
use std::time::Instant;

use ldapmux_model::{PINNED_STATES, PoolModel, models, simulate};
use stateright::{Checker, Model};

/// Checks `model`; with `pinned`, its unique state count must equal it.
fn check(model: PoolModel, pinned: Option<usize>) -> bool {
    let name = model.name;
    let start = Instant::now();
    let checker = model.checker().threads(2).spawn_dfs().join();
    let seconds = start.elapsed().as_secs_f64();
    let mut ok = true;
    for p in checker.model().properties() {
        let found = checker.discovery(p.name);
        let bad = match p.expectation {
            stateright::Expectation::Always | stateright::Expectation::Eventually => {
                found.is_some()
            }
            stateright::Expectation::Sometimes => found.is_none(),
        };
        if bad {
            ok = false;
            eprintln!(
                "model={name} property={:?} {:?}: {}",
                p.name,
                p.expectation,
                match found {
                    Some(path) => format!("counterexample: {:?}", path.into_actions()),
                    None => "never reached".to_string(),
                }
            );
        }
    }
    let states = checker.unique_state_count();
    if let Some(want) = pinned
        && states != want
    {
        ok = false;
        eprintln!(
            "model={name} has {states} unique states, pinned {want}: the state space changed"
        );
    }
    println!(
        "model={name} states={states} seconds={seconds:.1} result={}",
        if ok { "ok" } else { "FAIL" }
    );
    ok
}

fn arg(args: &[String], flag: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check") => {
            let deep = args.iter().any(|a| a == "--deep");
            let only = args
                .iter()
                .position(|a| a == "--only")
                .and_then(|i| args.get(i + 1));
            let start = Instant::now();
            let mut ok = true;
            for model in models(deep)
                .into_iter()
                .filter(|m| only.is_none_or(|name| m.name == name.as_str()))
            {
                let pinned = PINNED_STATES
                    .iter()
                    .find(|(name, _)| !deep && *name == model.name)
                    .map(|&(_, states)| states);
                ok &= check(model, pinned);
            }
            println!(
                "models checked in {:.1}s: {}",
                start.elapsed().as_secs_f64(),
                if ok { "ok" } else { "FAIL" }
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some("simulate") => {
            let seed = arg(&args, "--seed").unwrap_or(1);
            let steps = arg(&args, "--steps").unwrap_or(10_000);
            let report = simulate(seed, steps);
            match report.violation {
                None => {
                    println!(
                        "simulation seed={seed} steps={} restarts={} refused={} result=ok",
                        report.steps, report.restarts, report.noops
                    );
                    ExitCode::SUCCESS
                }
                Some((step, property)) => {
                    println!(
                        "simulation seed={seed} step={step} property={property:?} result=FAIL"
                    );
                    println!(
                        "replay: cargo run -p ldapmux-model --release -- simulate --seed {seed} --steps {step}"
                    );
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!(
                "usage: ldapmux-model check [--deep] [--only NAME] | simulate [--seed N] [--steps M]"
            );
            ExitCode::from(2)
        }
    }
}
