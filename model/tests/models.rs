//! The models pass, their state spaces are pinned, the interesting paths are
//! discovered, and every `always` property is shown to fail when a bug is
//! planted (a property no planted bug can break would be a defect).

use ldapmux_core::{ConnPhase, Fault, PolicyBug, Pool};
use ldapmux_model::{
    Bug, COALESCED, DETACHED_FREED, FAIL_BACK, OLD_AND_NEW, PoolModel, State, Step, models,
    simulate, simulate_with_bug,
};
use stateright::{Checker, HasDiscoveries, Model};

fn model(name: &str) -> PoolModel {
    models(false)
        .into_iter()
        .find(|m| m.name == name)
        .expect("model exists")
}

// The full check of every model, with its state space pinned, runs once in
// `make test`, as `ldapmux-model check` (see `model/src/main.rs` and
// `PINNED_STATES`), not here a second time.

/// Follows `script`, where `None` means "open the first opening connection",
/// and returns the concrete actions (connection ids resolved on the way).
fn path(m: &PoolModel, script: &[Option<Step>]) -> Vec<Step> {
    let mut st: State = m.init_states().remove(0);
    let mut out = Vec::new();
    for step in script {
        let step = step.clone().unwrap_or_else(|| {
            let c = st
                .pool
                .conns()
                .find(|c| c.phase == ConnPhase::Connecting)
                .expect("an opening connection");
            Step::RuntimeOpens(c.id)
        });
        st = m.next_state(&st, step.clone()).expect("step applies");
        out.push(step);
    }
    out
}

#[test]
fn a_coalesced_connect_serves_two_waiters() {
    let m = model("sharing");
    let actions = path(
        &m,
        &[Some(Step::UserAsks(0)), Some(Step::UserAsks(1)), None],
    );
    until_found(m, COALESCED).assert_discovery(COALESCED, actions);
}

#[test]
fn fail_back_happens_after_the_hold_down() {
    let m = model("failover");
    let actions = path(
        &m,
        &[
            Some(Step::FeedReportsDown(0)),
            Some(Step::UserAsks(0)),
            None,
            Some(Step::FeedReportsUp(0)),
            // The hold-down ends with a probe that began at its end; it
            // answers, and a connection to A is opened first...
            Some(Step::ClockTicks),
            Some(Step::ProbeAnswers(0, true)),
            None,
            // ... and B's connection, drained, closes when its user leaves.
            Some(Step::UserReleases(0)),
        ],
    );
    until_found(m, FAIL_BACK).assert_discovery(FAIL_BACK, actions);
}

#[test]
fn a_reload_drains_the_old_generation_which_is_freed_after() {
    let m = model("lifecycle");
    let serving = path(
        &m,
        &[
            Some(Step::UserAsks(0)),
            None,
            Some(Step::AdminReloads),
            Some(Step::UserAsks(1)),
            None,
        ],
    );
    let mut freed = serving.clone();
    freed.push(Step::UserReleases(0));
    until_found(m.clone(), OLD_AND_NEW).assert_discovery(OLD_AND_NEW, serving);
    until_found(m, DETACHED_FREED).assert_discovery(DETACHED_FREED, freed);
}

/// Checks `m` breadth-first until `property` has a discovery (or the space is
/// exhausted).
fn until_found(m: PoolModel, property: &'static str) -> impl Checker<PoolModel> {
    m.checker()
        .threads(2)
        .finish_when(HasDiscoveries::AnyOf([property].into_iter().collect()))
        .spawn_bfs()
        .join()
}

/// Asserts the checker finds a counterexample to `property` in `m`.
fn breaks(m: PoolModel, property: &'static str) {
    let checker = until_found(m, property);
    let found = checker.discovery(property);
    assert!(
        found.is_some(),
        "no counterexample for {property:?}: the property has no teeth"
    );
}

fn with_bug(name: &str, bug: Bug) -> PoolModel {
    PoolModel {
        bug: Some(bug),
        ..model(name)
    }
}

fn with_plant(name: &str, plant: fn(&mut Pool) -> bool) -> PoolModel {
    PoolModel {
        plant: Some(plant),
        ..model(name)
    }
}

#[test]
fn a_skipped_decrement_breaks_the_reference_count_rule() {
    breaks(
        with_plant("sharing", |p| {
            p.inject_fault(Fault::SkipGenerationDecrement)
        }),
        "reference counts follow the rule",
    );
}

#[test]
fn a_connection_freed_under_its_users_is_found() {
    breaks(
        with_plant("sharing", |p| {
            p.inject_fault(Fault::FreeConnectionUnderUsers)
        }),
        "no user is attached to a freed connection or generation",
    );
}

#[test]
fn a_connection_rebound_with_another_credential_is_found() {
    breaks(
        with_plant("credentials", |p| p.inject_fault(Fault::RebindConnection)),
        "a user only holds a connection to its server with its credential",
    );
}

#[test]
fn a_shared_private_connection_is_found() {
    breaks(
        with_plant("credentials", |p| {
            p.inject_fault(Fault::SharePrivateConnection)
        }),
        "an AUTH user never shares",
    );
}

#[test]
fn a_grant_after_shutdown_is_found() {
    breaks(
        with_bug("lifecycle", Bug::GrantAfterShutdown),
        "nothing is granted after shutdown",
    );
}

#[test]
fn a_swallowed_server_down_notice_is_found() {
    breaks(
        with_bug("sharing", Bug::SwallowServerDown),
        "nothing is granted to a server known down",
    );
}

#[test]
fn a_duplicated_wake_up_is_found() {
    breaks(
        with_bug("sharing", Bug::DuplicateWake),
        "every waiter is woken exactly once",
    );
}

#[test]
fn a_lost_wake_up_is_found() {
    breaks(
        with_bug("sharing", Bug::DropWake),
        "every waiter is woken exactly once",
    );
}

#[test]
fn a_stranded_waiter_is_found_at_the_end() {
    breaks(
        with_plant("sharing", |p| p.inject_fault(Fault::StrandWaiter)),
        "every waiter is woken exactly once",
    );
}

#[test]
fn a_retried_sent_write_is_found() {
    breaks(
        with_bug("sharing", Bug::FlipRetry),
        "a write is never retried after its request may have been sent",
    );
}

#[test]
fn a_fourth_try_is_found() {
    let mut m = with_bug("failover", Bug::FlipRetry);
    m.budget.open_failures = 3;
    m.budget.retries = 3;
    m.users.truncate(1);
    breaks(m, "no operation gets more than 3 tries");
}

#[test]
fn a_fail_back_drain_during_the_hold_down_is_found() {
    breaks(
        with_plant("failover", |p| p.inject_fault(Fault::DrainDuringHoldDown)),
        "connections fail back only to a server out of its hold-down",
    );
}

#[test]
fn a_connection_never_closed_for_idleness_is_found() {
    breaks(
        with_plant("sharing", |p| p.inject_fault(Fault::ForgetIdleTimer)),
        "an idle connection is closed after its idle timeout",
    );
}

fn with_policy(name: &str, policy: fn(&mut Pool)) -> PoolModel {
    PoolModel {
        policy: Some(policy),
        ..model(name)
    }
}

const SPREAD_RULE: &str =
    "no user stacks on a busy connection while a spare is due, and no spare opens past the target";
const RACE_RULE: &str = "a rival that opens first serves the waiters of the slow connect";

#[test]
fn a_pool_that_never_spreads_is_found() {
    breaks(
        with_policy("spread", |p| p.plant_policy_bug(PolicyBug::NeverSpread)),
        SPREAD_RULE,
    );
}

#[test]
fn a_pool_that_spreads_past_its_target_is_found() {
    breaks(
        with_policy("spread", |p| {
            p.plant_policy_bug(PolicyBug::SpreadPastTarget)
        }),
        SPREAD_RULE,
    );
}

#[test]
fn a_race_winner_that_leaves_the_waiters_behind_is_found() {
    breaks(
        with_policy("racing", |p| {
            p.plant_policy_bug(PolicyBug::RivalKeepsOwnWaiters)
        }),
        RACE_RULE,
    );
}

#[test]
fn a_pool_that_never_races_never_serves_from_a_rival() {
    // The racing model cut to its race: users ask, the clock ticks, a
    // connection opens. Without the bug a rival serves; with it, never.
    let small = |policy| PoolModel {
        budget: ldapmux_model::Budget {
            ticks: 1,
            ..Default::default()
        },
        policy,
        ..model("racing")
    };
    let reached = |m: PoolModel| {
        m.checker()
            .threads(2)
            .spawn_dfs()
            .join()
            .discovery(ldapmux_model::RIVAL_SERVED)
            .is_some()
    };
    assert!(reached(small(None)), "the cut model still races");
    assert!(
        !reached(small(Some(|p: &mut Pool| {
            p.plant_policy_bug(PolicyBug::NeverRace)
        }))),
        "a rival served waiters though none was ever opened"
    );
}

const VERDICT_RULE: &str =
    "a check that began before the server's last answer does not mark it down";
const HOLD_RULE: &str = "no fail-back to a server that failed during its hold-down";
const REFUSAL_RULE: &str = "a refused credential is not retried before its hold-down ends";
const ALL_DOWN_RULE: &str =
    "a user who finds every server down gets a connect tried within its deadline";

#[test]
fn a_verdict_that_ignores_fresher_answers_is_found() {
    breaks(
        with_policy("evidence", |p| {
            p.plant_policy_bug(PolicyBug::VerdictIgnoresAnswers)
        }),
        VERDICT_RULE,
    );
}

#[test]
fn a_hold_down_that_ignores_failed_probes_is_found() {
    breaks(
        with_policy("evidence", |p| {
            p.plant_policy_bug(PolicyBug::HoldDownIgnoresFailures)
        }),
        HOLD_RULE,
    );
}

#[test]
fn a_refused_credential_sent_again_at_once_is_found() {
    breaks(
        with_policy("refusals", |p| {
            p.plant_policy_bug(PolicyBug::RetryRefusedAtOnce)
        }),
        REFUSAL_RULE,
    );
}

#[test]
fn a_pool_that_gives_up_when_every_server_is_down_is_found() {
    breaks(
        with_policy("evidence", |p| {
            p.plant_policy_bug(PolicyBug::GiveUpWhenAllDown)
        }),
        ALL_DOWN_RULE,
    );
}

#[test]
fn a_long_simulation_keeps_every_property() {
    let report = simulate(7, 10_000);
    assert_eq!(
        report.violation, None,
        "replay with: simulate --seed 7 --steps 10000"
    );
    assert_eq!(report.steps, 10_000);
    // The walks went deep: a restart is a shutdown or an exhausted walk.
    assert!(report.restarts < 200, "{report:?}");
    assert_eq!(
        simulate(7, 2_000),
        simulate(7, 2_000),
        "same seed, same run"
    );
}

#[test]
fn a_simulation_finds_a_planted_bug_and_its_seed_replays_it() {
    let found = simulate_with_bug(3, 10_000, Some(Bug::DuplicateWake));
    let (step, property) = found.violation.expect("the duplicated wake-up is found");
    assert_eq!(property, "every waiter is woken exactly once");
    // The printed replay (same seed, `--steps <step>`) stops at the same step.
    let replay = simulate_with_bug(3, step, Some(Bug::DuplicateWake));
    assert_eq!(replay, found);
}

const BIND_RULE: &str = "a bind connection serves one password check at a time and nothing else";

#[test]
fn a_bind_connection_serves_a_second_check() {
    let m = model("binds");
    let actions = path(
        &m,
        &[
            Some(Step::UserAsks(0)),
            None,
            Some(Step::UserReleases(0)),
            Some(Step::UserAsks(1)),
        ],
    );
    until_found(m, ldapmux_model::BIND_REUSED)
        .assert_discovery(ldapmux_model::BIND_REUSED, actions);
}

#[test]
fn a_search_given_a_bind_connection_is_found() {
    breaks(
        with_policy("binds", |p| p.plant_policy_bug(PolicyBug::BindToReaders)),
        BIND_RULE,
    );
}

#[test]
fn two_checks_on_one_bind_connection_are_found() {
    breaks(
        with_policy("binds", |p| {
            p.plant_policy_bug(PolicyBug::ShareBindConnections)
        }),
        BIND_RULE,
    );
}

#[test]
fn a_paged_search_shares_its_connection_with_another_search() {
    let checker = until_found(model("paging"), ldapmux_model::PAGER_BESIDE_SEARCH);
    assert!(
        checker
            .discovery(ldapmux_model::PAGER_BESIDE_SEARCH)
            .is_some()
    );
}

#[test]
fn two_paged_searches_on_one_connection_are_found() {
    breaks(
        with_policy("paging", |p| {
            p.plant_policy_bug(PolicyBug::TwoPagersPerConnection)
        }),
        "a connection carries at most one paged search",
    );
}
