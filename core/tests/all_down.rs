//! Stories of a pool whose every server is down (issue 16): a read tries a
//! connect within its deadline instead of failing in 0 ms. It waits for a
//! probe in flight, or brings forward the probe of a server the pool has
//! not tried for a probe backoff minimum; it fails at once only when every
//! server was tried that recently. Each story with a planted bug runs once
//! as written and once with the bug, which must make it fail.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, Config, CredKey, Error, Event, Health, Request, ServerId, UserId, UserKind, UserPhase,
};

type Plant = fn(&mut Sim);
const NO_BUG: Plant = |_| {};

/// Probe backoff 1 s .. 8 s (plus up to half of it in jitter), a 5 s
/// connect timeout bounding each probe.
fn servers(list: &[&str]) -> ldapmux_core::ConfigBuilder {
    let mut b = Config::builder()
        .connect_timeout(Duration::from_secs(5))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(8));
    for s in list {
        b = b.server(*s);
    }
    b
}

/// Moves the clock by `d`; every probe that goes out on the way fails.
fn advance_failing(sim: &mut Sim, d: Duration) {
    let target = sim.now + d;
    for _ in 0..100 {
        let due = sim.pool.poll_timeout().filter(|t| t.at <= target);
        sim.now = due.map_or(target, |t| sim.now.max(t.at));
        sim.pool.handle_timeout(sim.now);
        for action in sim.drain() {
            if let Action::Probe { server } = action {
                sim.ok(Event::ProbeResult { server, ok: false });
                sim.drain();
            }
        }
        if due.is_none() {
            return;
        }
    }
    panic!("timers did not settle");
}

/// Marks every server down now; its first probe then fails (at most 1.5 s
/// later), so the next scheduled probe is 2–3 s after that failure.
fn all_down_and_probed_once(sim: &mut Sim, list: &[ServerId]) {
    for &server in list {
        sim.ok(Event::ServerDown { server });
    }
    sim.drain();
    advance_failing(sim, Duration::from_millis(1_500));
    for &server in list {
        assert_eq!(sim.pool.status().counters.servers[server.index()].probes, 1);
    }
}

fn failed_no_server(actions: &[Action], user: UserId) -> bool {
    actions.iter().any(|a| {
        matches!(a, Action::Fail { user: u, error: Error::NoServerAvailable, .. } if *u == user)
    })
}

fn queued(sim: &Sim, user: UserId) -> bool {
    sim.pool
        .user(user)
        .is_some_and(|u| u.phase == UserPhase::Queued)
}

#[test]
fn with_every_server_down_a_read_waits_for_a_probe_brought_forward() {
    brought_forward_story(NO_BUG);
}

fn brought_forward_story(plant: Plant) {
    let mut sim = Sim::with(servers(&[A]));
    plant(&mut sim);
    let a = sim.server(A);
    all_down_and_probed_once(&mut sim, &[a]);
    // A second after the failed probe, well before the next scheduled one
    // (2–3 s after it), a read comes: the probe is brought forward for it.
    advance_failing(&mut sim, Duration::from_secs(1));
    let u1 = sim.search();
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
    assert!(queued(&sim, u1), "waits for the probe");
    // A second read joins the wait: one probe, not one per read.
    let u2 = sim.search();
    assert_eq!(sim.drain(), vec![]);
    assert!(queued(&sim, u2));
    // The server answers: both reads ride one new connection.
    sim.ok(Event::ProbeResult {
        server: a,
        ok: true,
    });
    let c = Sim::open_of(&sim.drain());
    assert_eq!(sim.opened(c), vec![grant(u1, c), grant(u2, c)]);
    assert!(matches!(sim.pool.health(a), Some(Health::Returning { .. })));
    assert_eq!(sim.pool.status().counters.servers[0].brought_forward, 1);
}

#[test]
fn a_failed_probe_fails_its_waiters_at_once_and_the_next_read_fails_fast() {
    let mut sim = Sim::with(servers(&[A]));
    let a = sim.server(A);
    all_down_and_probed_once(&mut sim, &[a]);
    advance_failing(&mut sim, Duration::from_secs(1));
    let u1 = sim.search();
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
    // The probe fails: the waiter learns it now, not at its 30 s deadline.
    sim.ok(Event::ProbeResult {
        server: a,
        ok: false,
    });
    assert!(failed_no_server(&sim.drain(), u1));
    // The pool tried a moment ago: the next read fails in 0 ms, no probe.
    sim.advance(Duration::from_millis(999));
    let u2 = sim.search();
    let actions = sim.drain();
    assert!(failed_no_server(&actions, u2), "{actions:?}");
    assert_eq!(actions.len(), 1, "no probe within the backoff minimum");
    // A backoff minimum after that failure, a read brings one forward again.
    sim.advance(Duration::from_millis(1));
    sim.search();
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
}

#[test]
fn with_two_servers_down_a_failed_probe_moves_the_waiter_to_the_next_server() {
    let mut sim = Sim::with(servers(&[A, B]));
    let (a, b) = (sim.server(A), sim.server(B));
    all_down_and_probed_once(&mut sim, &[a, b]);
    advance_failing(&mut sim, Duration::from_secs(1));
    let u = sim.search();
    assert_eq!(
        sim.drain(),
        vec![Action::Probe { server: a }],
        "the preferred first"
    );
    sim.ok(Event::ProbeResult {
        server: a,
        ok: false,
    });
    assert_eq!(
        sim.drain(),
        vec![Action::Probe { server: b }],
        "then the next"
    );
    assert!(queued(&sim, u));
    sim.ok(Event::ProbeResult {
        server: b,
        ok: true,
    });
    let c = Sim::open_of(&sim.drain());
    assert_eq!(sim.pool.conn(c).unwrap().server, b);
    assert_eq!(sim.opened(c), vec![grant(u, c)]);
}

#[test]
fn a_waiter_whose_deadline_comes_before_the_probes_answer_times_out() {
    let mut sim = Sim::with(servers(&[A]));
    let a = sim.server(A);
    all_down_and_probed_once(&mut sim, &[a]);
    advance_failing(&mut sim, Duration::from_secs(1));
    let deadline = sim.now + Duration::from_secs(2);
    let u = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).deadline(deadline));
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
    // The server is frozen: the probe's 5 s bound is later than the user's.
    let actions = sim.advance(Duration::from_secs(2));
    assert!(
        actions.iter().any(|x| matches!(
            x,
            Action::Fail { user, error: Error::AcquireTimeout, .. } if *user == u
        )),
        "{actions:?}"
    );
    assert!(
        sim.pool.probe_in_flight(a),
        "the probe runs on to its own bound"
    );
}

#[test]
fn a_read_that_names_a_down_server_still_fails_at_once() {
    let mut sim = Sim::with(servers(&[A]));
    let a = sim.server(A);
    all_down_and_probed_once(&mut sim, &[a]);
    advance_failing(&mut sim, Duration::from_secs(1));
    let u = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).server(A));
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: u,
            error: Error::ServerDown { server: a },
            retry: false
        }]
    );
}

#[cfg(feature = "fault-hooks")]
mod planted {
    use super::*;
    use ldapmux_core::PolicyBug;

    #[test]
    fn giving_up_when_all_are_down_fails_the_brought_forward_story() {
        let plant: Plant = |sim| sim.pool.plant_policy_bug(PolicyBug::GiveUpWhenAllDown);
        assert!(std::panic::catch_unwind(|| brought_forward_story(plant)).is_err());
    }
}
