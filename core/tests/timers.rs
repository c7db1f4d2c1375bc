//! Timers as a real runtime fires them: late (a busy thread, a suspended
//! process), never early. A late wake-up must still end what is due, and must
//! not end what stopped being due.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{Action, Error, Instant};

/// Connects that hang, with no rival to B (connect racing off): these
/// stories count the timers and actions of one connect.
fn slow_connects() -> ldapmux_core::ConfigBuilder {
    config()
        .connect_timeout(Duration::from_secs(120))
        .connect_race_delay(None)
        .default_acquire_timeout(Duration::from_secs(30))
}

#[test]
fn a_waiter_whose_deadline_passed_long_ago_still_times_out() {
    let mut sim = Sim::with(slow_connects());
    let user = sim.search();
    let open = sim.drain();
    let _conn = Sim::open_of(&open);
    // The runtime wakes 15 s after the 30 s deadline, all at once.
    let late = Instant::ZERO + Duration::from_secs(45);
    sim.now = late;
    sim.pool.handle_timeout(late);
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user,
            error: Error::AcquireTimeout,
            retry: false
        }]
    );
    assert_eq!(sim.pool.status().counters.timeouts, 1);
}

#[test]
fn a_user_granted_before_its_deadline_keeps_its_connection_past_it() {
    let mut sim = Sim::with(slow_connects());
    let user = sim.search();
    let conn = Sim::open_of(&sim.drain());
    assert_eq!(sim.opened(conn), vec![grant(user, conn)]);
    // A long operation: the acquire deadline passes while the user works.
    let late = Instant::ZERO + Duration::from_secs(100);
    sim.now = late;
    sim.pool.handle_timeout(late);
    assert_eq!(sim.drain(), vec![], "a working user is not timed out");
    assert_eq!(sim.pool.user(user).unwrap().conn, Some(conn));
    assert_eq!(sim.pool.status().counters.timeouts, 0);
}

#[test]
fn a_late_probe_timer_still_probes() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    sim.ok(ldapmux_core::Event::ServerDown { server: a });
    sim.drain();
    let due = sim.pool.poll_timeout().expect("a probe is scheduled").at;
    let late = due + Duration::from_secs(20);
    sim.now = late;
    sim.pool.handle_timeout(late);
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
    assert_eq!(sim.pool.status().servers[0].counters.probes, 1);
}

#[test]
fn a_second_down_notice_changes_nothing() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    sim.ok(ldapmux_core::Event::ServerDown { server: a });
    sim.drain();
    let before = (sim.pool.health(a), sim.pool.poll_timeout());
    sim.now = sim.now + Duration::from_millis(500);
    sim.ok(ldapmux_core::Event::ServerDown { server: a });
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(
        (sim.pool.health(a), sim.pool.poll_timeout()),
        before,
        "the probe schedule and the time it went down are kept"
    );
    assert_eq!(sim.pool.status().servers[0].counters.marked_down, 1);
}

#[test]
fn the_status_counts_armed_timers() {
    let mut sim = Sim::with(slow_connects());
    assert_eq!(sim.pool.status().timers, 0, "an idle pool sleeps");
    let user = sim.search();
    let conn = Sim::open_of(&sim.drain());
    assert_eq!(
        sim.pool.status().timers,
        2,
        "the user's deadline and the connect deadline"
    );
    sim.opened(conn);
    sim.release(user);
    assert_eq!(
        sim.pool.status().timers,
        1,
        "only the idle connection's idle timer"
    );
}
