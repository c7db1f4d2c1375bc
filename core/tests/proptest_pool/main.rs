//! Random input sequences against a small reference model of what must hold.
//!
//! The reference ([`Expected`]) knows what can be predicted from the inputs
//! alone: whether the pool is shut down, which servers were reported down and
//! not back since, how many valid reloads happened. The system under test is
//! the real pool plus a ledger of what each user was told. After every step:
//! `check_invariants` holds, nothing panicked, no user was woken twice, no
//! grant went to a server the reference knows is down or happened after
//! shutdown, credentials match, and retries follow the rules. At the end every
//! user is driven to an end: granted then released, failed, or cancelled.
//!
//! Transitions name users and connections by index into the live ones, so the
//! reference needs no knowledge of the ids the pool hands out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ldapmux_core::{
    Action, CloseReason, Config, ConnError, ConnErrorKind, ConnInfo, ConnPhase, CredKey, Error,
    Event, Instant, MAX_TRIES, Pool, Purpose, Request, Sharing, UserId, UserKind, UserPhase,
};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

#[path = "../evidence/mod.rs"]
mod evidence;

mod apply;
mod checks;
/// The same random inputs with spread before stack broken in the core: the
/// step check above must catch each bug.
#[cfg(feature = "fault-hooks")]
mod planted;
mod sut;

use apply::PoolTest;
use checks::alone_if_private;
use sut::{Seen, Sut, config};

const SERVERS: [&str; 3] = ["ldap://a", "ldap://b", "ldap://c"];
const CASES: u32 = 4_000;
static CASES_RUN: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug)]
enum Step {
    Acquire {
        kind: u8,
        cred: u8,
        server: Option<u8>,
        private: bool,
        referral: bool,
        /// Runs a paged search (`Request::paging`).
        pages: bool,
        attempt: u8,
    },
    Opened(u8),
    OpenFailed(u8, bool),
    Lost(u8),
    /// A live connection's credential expires this many seconds from now.
    Expires(u8, u16),
    /// The server announces it is closing a live connection.
    Notice(u8),
    Release(u8),
    /// A connected user leaves its connection in a state it cannot vouch
    /// for (a bind with an unclear outcome).
    Retire(u8),
    Broken(u8, bool),
    /// A connected user's operation got no answer in time.
    TimedOut(u8),
    Cancel(u8),
    GetNext(u8),
    ServerDown(u8),
    ServerUp(u8),
    Probe(u8, bool),
    Reload {
        valid: bool,
        cap: u8,
        sharing_on_request: bool,
        /// Bind connections per server (0: a private one per check).
        binds: u8,
    },
    /// A new server list: `mask` picks servers (bit i = `SERVERS[i]`); with
    /// `same` false the cap changes too, so nothing may be kept.
    ReloadServers {
        mask: u8,
        same: bool,
    },
    Shutdown,
    Forked,
    NoMultiplex,
    NextTimer,
    Advance(u16),
}

#[derive(Clone, Debug, Default)]
struct Expected {
    shut_down: bool,
    /// Servers reported down and not reported up since.
    down: BTreeSet<u8>,
    reloads: u32,
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Expected;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Expected> {
        Just(Expected::default()).boxed()
    }

    fn transitions(_: &Expected) -> BoxedStrategy<Step> {
        let idx = any::<u8>();
        prop_oneof![
            10 => (0..4u8, 0..3u8, prop::option::weighted(0.2, 0..4u8), prop::bool::weighted(0.15), prop::bool::weighted(0.15), prop::bool::weighted(0.3), prop_oneof![8 => 1..=3u8, 1 => Just(0u8), 1 => Just(4u8)])
                .prop_map(|(kind, cred, server, private, referral, pages, attempt)| Step::Acquire { kind, cred, server, private, referral, pages, attempt }),
            6 => idx.prop_map(Step::Opened),
            2 => (idx, any::<bool>()).prop_map(|(i, creds)| Step::OpenFailed(i, creds)),
            1 => idx.prop_map(Step::Lost),
            1 => (idx, prop_oneof![1 => Just(0u16), 3 => 0..60u16]).prop_map(|(i, secs)| Step::Expires(i, secs)),
            1 => idx.prop_map(Step::Notice),
            5 => idx.prop_map(Step::Release),
            1 => idx.prop_map(Step::Retire),
            2 => (idx, any::<bool>()).prop_map(|(i, sent)| Step::Broken(i, sent)),
            1 => idx.prop_map(Step::TimedOut),
            2 => idx.prop_map(Step::Cancel),
            2 => idx.prop_map(Step::GetNext),
            1 => (0..3u8).prop_map(Step::ServerDown),
            1 => (0..3u8).prop_map(Step::ServerUp),
            1 => (0..3u8, any::<bool>()).prop_map(|(s, ok)| Step::Probe(s, ok)),
            1 => (prop::bool::weighted(0.8), 1..4u8, prop::bool::weighted(0.2), 0..3u8).prop_map(|(valid, cap, sharing_on_request, binds)| Step::Reload { valid, cap, sharing_on_request, binds }),
            1 => (1..8u8, prop::bool::weighted(0.8)).prop_map(|(mask, same)| Step::ReloadServers { mask, same }),
            1 => prop_oneof![3 => Just(Step::NoMultiplex), 1 => Just(Step::Forked), 1 => Just(Step::Shutdown)],
            3 => Just(Step::NextTimer),
            2 => (0..20_000u16).prop_map(Step::Advance),
        ]
        .boxed()
    }

    fn apply(mut state: Expected, step: &Step) -> Expected {
        match *step {
            Step::ServerDown(s) if !state.shut_down => {
                state.down.insert(s);
            }
            Step::ServerUp(s) | Step::Probe(s, true) => {
                state.down.remove(&s);
            }
            Step::Reload { valid: true, .. } | Step::ReloadServers { .. } if !state.shut_down => {
                state.reloads += 1
            }
            Step::Shutdown => state.shut_down = true,
            _ => {}
        }
        state
    }
}

/// What a user was told, as the test saw it.
#[derive(Debug, Default, Clone)]
struct Told {
    kind: Option<UserKind>,
    /// It asked for a private connection.
    private: bool,
    /// It runs a paged search.
    pages: bool,
    attempt: u8,
    wakeups: u32,
    granted: bool,
    ended: bool,
    sent: bool,
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]
    fn random_inputs_keep_every_rule(sequential 1..120 => PoolTest);
}

#[test]
fn the_property_test_runs_its_cases() {
    // The property runs only here, so the count is exactly this run's cases.
    random_inputs_keep_every_rule();
    let n = CASES_RUN.load(Ordering::Relaxed);
    println!("proptest cases run: {n}");
    assert!(n >= CASES as usize, "only {n} cases ran");
}
