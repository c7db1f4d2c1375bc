//! Stories of the decisions that used to live in the tokio shell (issue 16):
//! a liveness check after an operation timeout yields to fresher evidence,
//! a fail-back hold-down means "stayed up", and a refused credential is held
//! back. Each story runs once as written and once with its planted bug,
//! which must make it fail.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, Config, ConnError, ConnErrorKind, ConnId, CredKey, Error, Event, Health, Request,
    ServerId, UserId, UserKind,
};

type Plant = fn(&mut Sim);
const NO_BUG: Plant = |_| {};

fn timed_out() -> ConnError {
    ConnError::new(ConnErrorKind::Timeout, "search got no answer within 2s")
}

fn wrong_password() -> ConnError {
    ConnError::new(ConnErrorKind::InvalidCredentials, "invalidCredentials (49)")
}

/// One server, a 5 s connect timeout (the check's bound).
fn one_server() -> ldapmux_core::ConfigBuilder {
    Config::builder()
        .server(A)
        .connect_timeout(Duration::from_secs(5))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(8))
}

/// A search granted on a fresh connection.
fn granted_search(sim: &mut Sim) -> (UserId, ConnId) {
    let u = sim.search();
    let actions = sim.drain();
    let conn = match actions.iter().find_map(|a| match a {
        Action::Open { conn, .. } => Some(*conn),
        _ => None,
    }) {
        Some(conn) => {
            assert_eq!(sim.opened(conn), vec![grant(u, conn)]);
            conn
        }
        None => match actions[..] {
            [Action::Grant { user, conn }] if user == u => conn,
            _ => panic!("neither an open nor a grant: {actions:?}"),
        },
    };
    (u, conn)
}

/// The user's operation timed out: it reports its connection broken.
fn times_out(sim: &mut Sim, user: UserId) -> Vec<Action> {
    sim.ok(Event::ConnBroken {
        user,
        error: timed_out(),
        request_sent: true,
    });
    sim.drain()
}

fn probes(actions: &[Action]) -> Vec<ServerId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Probe { server } => Some(*server),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------- checks and fresher evidence

#[test]
fn a_check_that_began_before_the_servers_last_answer_does_not_mark_it_down() {
    late_verdict_story(NO_BUG);
}

fn late_verdict_story(plant: Plant) {
    let mut sim = Sim::with(one_server());
    plant(&mut sim);
    let a = sim.server(A);
    // A search stalls (say a proxy in between froze) and times out: its
    // connection is retired and the server is checked.
    let (u1, c1) = granted_search(&mut sim);
    let actions = times_out(&mut sim, u1);
    assert_eq!(probes(&actions), vec![a], "one check: {actions:?}");
    assert_eq!(sim.pool.status().counters.servers[0].checks, 1);
    // A second timeout while the check runs starts no second check.
    sim.advance(Duration::from_secs(1));
    let (u2, _) = granted_search(&mut sim);
    assert!(probes(&times_out(&mut sim, u2)).is_empty());
    // The path heals: a new connection opens and reads are answered.
    sim.advance(Duration::from_secs(2));
    let (u3, c3) = granted_search(&mut sim);
    assert_ne!(c3, c1);
    sim.release(u3);
    // The check's verdict arrives late and says "dead": it began before the
    // server's last answer, so it marks nothing down.
    sim.advance(Duration::from_secs(1));
    sim.ok(Event::ProbeResult {
        server: a,
        ok: false,
    });
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    assert_eq!(sim.pool.status().counters.servers[0].stale_verdicts, 1);
    // The next read is served on the healthy connection at once.
    let u4 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u4, c3)]);
}

#[test]
fn a_check_that_fails_with_no_answer_since_marks_the_server_down() {
    let mut sim = Sim::with(one_server());
    let a = sim.server(A);
    let (u1, _) = granted_search(&mut sim);
    assert_eq!(probes(&times_out(&mut sim, u1)), vec![a]);
    sim.ok(Event::ProbeResult {
        server: a,
        ok: false,
    });
    assert!(matches!(sim.pool.health(a), Some(Health::Down { .. })));
    assert_eq!(sim.pool.status().counters.servers[0].stale_verdicts, 0);
}

#[test]
fn an_unanswered_check_is_a_failure_at_its_deadline() {
    let mut sim = Sim::with(one_server());
    let a = sim.server(A);
    let (u1, _) = granted_search(&mut sim);
    assert_eq!(probes(&times_out(&mut sim, u1)), vec![a]);
    sim.advance(Duration::from_millis(4_999));
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    sim.advance(Duration::from_millis(1));
    assert!(matches!(sim.pool.health(a), Some(Health::Down { .. })));
}

#[test]
fn a_good_check_ends_the_check_and_the_next_timeout_checks_again() {
    let mut sim = Sim::with(one_server());
    let a = sim.server(A);
    let (u1, _) = granted_search(&mut sim);
    assert_eq!(probes(&times_out(&mut sim, u1)), vec![a]);
    sim.ok(Event::ProbeResult {
        server: a,
        ok: true,
    });
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    // Nothing is overdue later.
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    let (u2, _) = granted_search(&mut sim);
    assert_eq!(probes(&times_out(&mut sim, u2)), vec![a]);
    assert_eq!(sim.pool.status().counters.servers[0].checks, 2);
}

// ------------------------------------------------ hold-down means stayed up

#[test]
fn no_fail_back_to_a_server_that_failed_during_its_hold_down() {
    flapping_story(NO_BUG);
}

fn flapping_story(plant: Plant) {
    // A preferred, B backup; 10 s hold-down, probes every 1 s meanwhile.
    let mut sim = Sim::with(config());
    plant(&mut sim);
    let (a, b) = (sim.server(A), sim.server(B));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let (r, on_b) = granted_search(&mut sim);
    assert_eq!(sim.pool.conn(on_b).unwrap().server, b);
    // A answers a probe: returning, held down for 10 s.
    sim.ok(Event::ServerUp { server: a });
    assert!(matches!(sim.pool.health(a), Some(Health::Returning { .. })));
    // It is probed during the hold-down, and answers for 3 s...
    for _ in 0..3 {
        let actions = sim.advance(Duration::from_secs(1));
        assert_eq!(actions, vec![Action::Probe { server: a }]);
        sim.ok(Event::ProbeResult {
            server: a,
            ok: true,
        });
        assert!(sim.drain().is_empty());
    }
    // ...then dies: the next probe fails, and A is down again.
    assert_eq!(
        sim.advance(Duration::from_secs(1)),
        vec![Action::Probe { server: a }]
    );
    sim.ok(Event::ProbeResult {
        server: a,
        ok: false,
    });
    sim.drain();
    assert!(matches!(sim.pool.health(a), Some(Health::Down { .. })));
    // Past the end of the first hold-down nothing moves to A (only its own
    // probes, unanswered: it is dead).
    let actions = sim.advance(Duration::from_secs(7));
    assert!(
        actions
            .iter()
            .all(|x| matches!(x, Action::Probe { server } if *server == a)),
        "{actions:?}"
    );
    assert_eq!(sim.pool.user(r).unwrap().conn, Some(on_b));
    assert_eq!(sim.pool.conn(on_b).unwrap().server, b);
    assert!(matches!(sim.pool.health(a), Some(Health::Down { .. })));
}

#[test]
fn a_server_that_stays_up_through_its_hold_down_gets_the_fail_back_after_a_last_probe() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let (_r, on_b) = granted_search(&mut sim);
    sim.ok(Event::ServerUp { server: a });
    // Nine probes at 1 s intervals, all good; nothing else happens.
    for _ in 0..9 {
        assert_eq!(
            sim.advance(Duration::from_secs(1)),
            vec![Action::Probe { server: a }]
        );
        sim.ok(Event::ProbeResult {
            server: a,
            ok: true,
        });
        assert!(sim.drain().is_empty());
    }
    // At the end of the hold-down one more probe, and only its good answer
    // (it began at the end) makes A trusted and starts the fail-back.
    assert_eq!(
        sim.advance(Duration::from_secs(1)),
        vec![Action::Probe { server: a }]
    );
    assert!(matches!(sim.pool.health(a), Some(Health::Returning { .. })));
    sim.ok(Event::ProbeResult {
        server: a,
        ok: true,
    });
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    let actions = sim.drain();
    assert!(
        matches!(actions[..], [Action::Open { server, .. }] if server == a),
        "make before break: {actions:?}"
    );
    assert_eq!(sim.pool.status().counters.servers[0].probes, 10);
    let _ = on_b;
}

#[test]
fn a_hold_down_probe_that_times_out_sends_the_server_down_again() {
    let mut sim = Sim::with(config().connect_timeout(Duration::from_secs(2)));
    let a = sim.server(A);
    sim.ok(Event::ServerDown { server: a });
    sim.ok(Event::ServerUp { server: a });
    sim.drain();
    assert_eq!(
        sim.advance(Duration::from_secs(1)),
        vec![Action::Probe { server: a }]
    );
    // Frozen: no answer within the connect timeout.
    sim.advance(Duration::from_secs(2));
    assert!(matches!(sim.pool.health(a), Some(Health::Down { .. })));
}

// ---------------------------------------------------- refused credentials

/// A password check (its own connection) with credential `cred`.
fn check(sim: &mut Sim, cred: u64) -> (UserId, Vec<Action>) {
    let u = sim.acquire(Request::new(UserKind::Auth, CredKey(cred)));
    (u, sim.drain())
}

fn refused_at_once(actions: &[Action], user: UserId, server: ServerId) -> bool {
    matches!(
        actions,
        [Action::Fail { user: u, error: Error::InvalidCredentials { server: s }, retry: false }]
            if *u == user && *s == server
    )
}

#[test]
fn a_refused_credential_is_not_retried_before_its_hold_down_ends() {
    refusal_story(NO_BUG);
}

fn refusal_story(plant: Plant) {
    // Probe backoff 1 s .. 8 s: the refusal holds for 1 s, then 2 s, ...
    let mut sim = Sim::with(one_server());
    plant(&mut sim);
    let a = sim.server(A);
    let (u1, actions) = check(&mut sim, 9);
    let c1 = Sim::open_of(&actions);
    sim.ok(Event::ConnOpenFailed {
        conn: c1,
        error: wrong_password(),
    });
    assert!(refused_at_once(&sim.drain(), u1, a));
    assert_eq!(sim.pool.health(a), Some(Health::Up), "says nothing of A");
    // Within the hold-down: refused at once, nothing sent.
    sim.advance(Duration::from_millis(900));
    let (u2, actions) = check(&mut sim, 9);
    assert!(refused_at_once(&actions, u2, a), "{actions:?}");
    assert_eq!(sim.pool.status().counters.servers[0].held_back, 1);
    // Another credential is not held back.
    let (_, actions) = check(&mut sim, 10);
    Sim::open_of(&actions);
    // After it, one open tries again; others wait out that try.
    sim.advance(Duration::from_millis(100));
    let (_u3, actions) = check(&mut sim, 9);
    let c3 = Sim::open_of(&actions);
    let (u4, actions) = check(&mut sim, 9);
    assert!(refused_at_once(&actions, u4, a), "one try at a time");
    // Refused again soon: the hold-down doubles to 2 s.
    sim.ok(Event::ConnOpenFailed {
        conn: c3,
        error: wrong_password(),
    });
    sim.drain();
    sim.advance(Duration::from_millis(1_999));
    let (u5, actions) = check(&mut sim, 9);
    assert!(refused_at_once(&actions, u5, a), "{actions:?}");
    sim.advance(Duration::from_millis(1));
    let (u6, actions) = check(&mut sim, 9);
    let c6 = Sim::open_of(&actions);
    // Accepted: the refusal is forgotten.
    assert_eq!(sim.opened(c6), vec![grant(u6, c6)]);
    let (_, actions) = check(&mut sim, 9);
    Sim::open_of(&actions);
    assert_eq!(sim.pool.credential_held_until(sim.now, a, CredKey(9)), None);
}

#[test]
fn a_try_that_ends_without_a_verdict_frees_the_next_try() {
    let mut sim = Sim::with(one_server());
    let a = sim.server(A);
    let (_, actions) = check(&mut sim, 9);
    let c1 = Sim::open_of(&actions);
    sim.ok(Event::ConnOpenFailed {
        conn: c1,
        error: wrong_password(),
    });
    sim.drain();
    sim.advance(Duration::from_secs(1));
    let (u2, actions) = check(&mut sim, 9);
    let c2 = Sim::open_of(&actions);
    // The try is cancelled before the bind's answer: no verdict.
    sim.ok(Event::Cancel { user: u2 });
    sim.drain();
    // The next check is not held back: it waits on the bind connection the
    // cancelled try left opening (bind connections are kept for the next
    // check), and its bind's answer is the verdict.
    let (u3, actions) = check(&mut sim, 9);
    assert_eq!(actions, vec![]);
    assert_eq!(sim.opened(c2), vec![grant(u3, c2)]);
    assert!(
        sim.pool
            .credential_held_until(sim.now, a, CredKey(9))
            .is_none()
    );
}

#[cfg(feature = "fault-hooks")]
mod planted {
    use super::*;
    use ldapmux_core::PolicyBug;

    fn fails(story: fn(Plant), plant: Plant) -> bool {
        std::panic::catch_unwind(|| story(plant)).is_err()
    }

    #[test]
    fn a_verdict_that_ignores_answers_fails_the_late_verdict_story() {
        assert!(fails(late_verdict_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::VerdictIgnoresAnswers)
        }));
    }

    #[test]
    fn a_hold_down_that_ignores_failures_fails_the_flapping_story() {
        assert!(fails(flapping_story, |sim| {
            sim.pool
                .plant_policy_bug(PolicyBug::HoldDownIgnoresFailures)
        }));
    }

    #[test]
    fn retrying_a_refused_credential_at_once_fails_the_refusal_story() {
        assert!(fails(refusal_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::RetryRefusedAtOnce)
        }));
    }
}
