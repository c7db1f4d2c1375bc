//! The same random inputs with spread before stack broken in the core: the
//! step check must catch each bug.

use super::*;
use ldapmux_core::PolicyBug;

macro_rules! planted_test {
    ($name:ident, $bug:expr) => {
        struct $name;
        impl StateMachineTest for $name {
            type SystemUnderTest = Sut;
            type Reference = Reference;
            fn init_test(e: &Expected) -> Sut {
                let mut sut = PoolTest::init_test(e);
                sut.pool.plant_policy_bug($bug);
                sut
            }
            fn apply(sut: Sut, e: &Expected, step: Step) -> Sut {
                PoolTest::apply(sut, e, step)
            }
        }
    };
}
planted_test!(NeverSpreads, PolicyBug::NeverSpread);
planted_test!(SpreadsPastTarget, PolicyBug::SpreadPastTarget);

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(15), ..ProptestConfig::default() })]
    fn never_spreads(sequential 1..120 => NeverSpreads);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(7), ..ProptestConfig::default() })]
    fn spreads_past_target(sequential 1..120 => SpreadsPastTarget);
}

#[test]
fn the_spread_step_catches_a_pool_that_never_spreads() {
    assert!(std::panic::catch_unwind(never_spreads).is_err());
}

#[test]
fn the_spread_step_catches_a_pool_that_spreads_past_its_target() {
    assert!(std::panic::catch_unwind(spreads_past_target).is_err());
}

planted_test!(VerdictIgnoresAnswers, PolicyBug::VerdictIgnoresAnswers);
planted_test!(HoldDownIgnoresFailures, PolicyBug::HoldDownIgnoresFailures);
planted_test!(RetryRefusedAtOnce, PolicyBug::RetryRefusedAtOnce);
planted_test!(GiveUpWhenAllDown, PolicyBug::GiveUpWhenAllDown);

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(SEED_VERDICT), ..ProptestConfig::default() })]
    fn verdict_ignores_answers(sequential 1..120 => VerdictIgnoresAnswers);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(SEED_HOLD), ..ProptestConfig::default() })]
    fn hold_down_ignores_failures(sequential 1..120 => HoldDownIgnoresFailures);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(SEED_REFUSED), ..ProptestConfig::default() })]
    fn retry_refused_at_once(sequential 1..120 => RetryRefusedAtOnce);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 5_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(SEED_ALL_DOWN), ..ProptestConfig::default() })]
    fn give_up_when_all_down(sequential 1..120 => GiveUpWhenAllDown);
}
planted_test!(BindToReaders, PolicyBug::BindToReaders);
planted_test!(IgnoreCredentialExpiry, PolicyBug::IgnoreCredentialExpiry);
planted_test!(TwoPagersPerConnection, PolicyBug::TwoPagersPerConnection);
planted_test!(IgnoreServerNotice, PolicyBug::IgnoreServerNotice);
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(1), ..ProptestConfig::default() })]
    fn ignore_server_notice(sequential 1..120 => IgnoreServerNotice);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(1), ..ProptestConfig::default() })]
    fn two_pagers_per_connection(sequential 1..120 => TwoPagersPerConnection);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(1), ..ProptestConfig::default() })]
    fn ignore_credential_expiry(sequential 1..120 => IgnoreCredentialExpiry);
}
planted_test!(ShareBindConnections, PolicyBug::ShareBindConnections);
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(1), ..ProptestConfig::default() })]
    fn bind_to_readers(sequential 1..120 => BindToReaders);
}
prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, max_shrink_iters: 0, rng_seed: proptest::test_runner::RngSeed::Fixed(1), ..ProptestConfig::default() })]
    fn share_bind_connections(sequential 1..120 => ShareBindConnections);
}
const SEED_ALL_DOWN: u64 = 1;
const SEED_VERDICT: u64 = 1;
const SEED_HOLD: u64 = 1;
const SEED_REFUSED: u64 = 1;

thread_local! {
    static PANICS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The messages of the panics `run` raised on this thread (proptest
/// catches each case's panic; without shrinking, its own final message
/// does not repeat the rule that failed).
fn caught(run: fn()) -> String {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.borrow_mut().push(info.to_string()));
            previous(info);
        }));
    });
    PANICS.with(|p| p.borrow_mut().clear());
    let failed = std::panic::catch_unwind(run).is_err();
    let msgs = PANICS.with(|p| p.borrow().join("\n"));
    if failed { msgs } else { String::new() }
}

#[test]
fn the_evidence_ledger_catches_a_verdict_that_ignores_answers() {
    let msg = caught(verdict_ignores_answers);
    assert!(
        msg.contains("a check that began before the server's last answer does not mark it down"),
        "{msg}"
    );
}

#[test]
fn the_evidence_ledger_catches_a_hold_down_that_ignores_failures() {
    let msg = caught(hold_down_ignores_failures);
    assert!(
        msg.contains("no fail-back to a server that failed during its hold-down"),
        "{msg}"
    );
}

#[test]
fn the_evidence_ledger_catches_a_refused_credential_sent_at_once() {
    let msg = caught(retry_refused_at_once);
    assert!(
        msg.contains("a refused credential is not retried before its hold-down ends"),
        "{msg}"
    );
}

#[test]
fn the_evidence_ledger_catches_a_pool_that_gives_up_when_all_are_down() {
    let msg = caught(give_up_when_all_down);
    assert!(
        msg.contains("a user who finds every server down gets a connect tried"),
        "{msg}"
    );
}

#[test]
fn a_search_given_a_bind_connection_is_caught() {
    let msg = caught(bind_to_readers);
    assert!(
        msg.contains("user granted bind connection") || msg.contains("on bind connection"),
        "{msg}"
    );
}

#[test]
fn two_checks_on_one_bind_connection_are_caught() {
    let msg = caught(share_bind_connections);
    assert!(
        msg.contains("shared: 2 users") || msg.contains("Bind c"),
        "{msg}"
    );
}

#[test]
fn a_connection_serving_after_its_servers_notice_is_caught() {
    let msg = caught(ignore_server_notice);
    assert!(msg.contains("announced closing"), "{msg}");
}

#[test]
fn a_connection_serving_past_its_credential_is_caught() {
    let msg = caught(ignore_credential_expiry);
    assert!(msg.contains("retired for its credential"), "{msg}");
}

#[test]
fn two_paged_searches_on_one_connection_are_caught() {
    let msg = caught(two_pagers_per_connection);
    assert!(
        msg.contains("beside another paged search") || msg.contains("paging users"),
        "{msg}"
    );
}
