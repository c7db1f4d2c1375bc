//! Connections retire before the credential they were bound with expires
//! (issue 19: a Kerberos ticket's end): the adapter reports the expiry with
//! `Event::ConnExpires`; the decision, and its clock, are the core's.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{Action, CloseReason, Error, Event, Instant, TimerReason};

type Plant = fn(&mut Sim);

fn no_plant(_: &mut Sim) {}

/// A ticket that ends in 10 minutes: the connection serves for 9 (the 60 s
/// margin), then takes no one new; its user finishes; a new user opens a
/// fresh connection meanwhile; the old one closes when its user leaves.
fn ticket_story(plant: Plant) {
    let mut sim = Sim::with(config().credential_expiry_margin(Duration::from_secs(60)));
    plant(&mut sim);
    let u1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    sim.ok(Event::ConnExpires {
        conn: c1,
        at: sim.now + Duration::from_secs(600),
    });
    let t = sim.pool.poll_timeout().expect("the retirement is armed");
    assert_eq!(t.reason, TimerReason::CredentialExpiry);
    assert_eq!(t.at, Instant::ZERO + Duration::from_secs(540));
    // Before: it still serves.
    sim.advance(Duration::from_secs(539));
    let u2 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u2, c1)]);
    sim.release(u2);
    // At 9 minutes: no one new; u1 keeps it until it is done.
    assert_eq!(sim.advance(Duration::from_secs(1)), vec![]);
    let u3 = sim.search();
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c2, c1);
    assert_eq!(sim.opened(c2), vec![grant(u3, c2)]);
    assert_eq!(
        sim.release(u1),
        vec![Action::Close {
            conn: c1,
            reason: CloseReason::CredentialExpiring
        }]
    );
}

#[test]
fn a_connection_retires_before_its_ticket_ends_and_its_users_finish() {
    ticket_story(no_plant);
}

#[test]
fn a_short_ticket_is_used_for_nine_tenths_of_its_life() {
    let mut sim = Sim::with(config().credential_expiry_margin(Duration::from_secs(60)));
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::ConnExpires {
        conn: c,
        at: sim.now + Duration::from_secs(20),
    });
    assert_eq!(
        sim.pool.poll_timeout().map(|t| (t.at, t.reason)),
        Some((
            Instant::ZERO + Duration::from_secs(18),
            TimerReason::CredentialExpiry
        ))
    );
    sim.release(u);
    assert_eq!(sim.advance(Duration::from_secs(17)), vec![]);
    assert_eq!(
        sim.advance(Duration::from_secs(1)),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::CredentialExpiring
        }]
    );
}

#[test]
fn an_expired_ticket_retires_the_connection_at_once() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    sim.ok(Event::ConnExpires {
        conn: c,
        at: sim.now,
    });
    assert_eq!(
        sim.drain(),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::CredentialExpiring
        }]
    );
}

/// The driver may hand the core an input whose `now` is past a
/// credential-expiry timer it has not delivered yet (a busy runtime, a
/// timer wheel's granularity): the connection is still not given to anyone.
#[test]
fn a_retirement_whose_timer_is_late_still_keeps_new_users_off() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    sim.ok(Event::ConnExpires {
        conn: c,
        at: sim.now + Duration::from_secs(600),
    });
    // Ten minutes pass with no call to handle_timeout; a search comes in.
    sim.now = sim.now + Duration::from_secs(600);
    let u2 = sim.search();
    let actions = sim.drain();
    assert!(
        actions.contains(&Action::Close {
            conn: c,
            reason: CloseReason::CredentialExpiring
        }),
        "the lapsed connection closes: {actions:?}"
    );
    let c2 = Sim::open_of(&actions);
    assert_ne!(c2, c);
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
}

#[test]
fn a_renewed_ticket_moves_the_retirement_later() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::ConnExpires {
        conn: c,
        at: sim.now + Duration::from_secs(120),
    });
    sim.ok(Event::ConnExpires {
        conn: c,
        at: sim.now + Duration::from_secs(3600),
    });
    // The first report's instant (60 s) passes: nothing happens.
    assert_eq!(sim.advance(Duration::from_secs(61)), vec![]);
    let u2 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u2, c)]);
    let _ = u;
}

#[test]
fn a_connection_that_dies_before_its_retirement_leaves_no_timer_behind() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::ConnExpires {
        conn: c,
        at: sim.now + Duration::from_secs(600),
    });
    // It dies under its user: broken, not yet gone.
    sim.ok(Event::ConnLost {
        conn: c,
        error: reset(),
    });
    sim.drain();
    assert!(sim.pool.conn(c).is_some());
    // Every wake-up the pool asks for until the ticket's end: none is for
    // the retirement of a connection that no longer takes users.
    let end = Instant::ZERO + Duration::from_secs(600);
    for _ in 0..100 {
        let Some(t) = sim.pool.poll_timeout().filter(|t| t.at <= end) else {
            break;
        };
        assert_ne!(t.reason, TimerReason::CredentialExpiry, "{t:?}");
        sim.now = t.at;
        sim.pool.handle_timeout(t.at);
        sim.drain();
    }
    let _ = u;
}

#[test]
fn an_expiry_for_a_gone_connection_is_a_typed_error() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    sim.ok(Event::ConnLost {
        conn: c,
        error: reset(),
    });
    sim.drain();
    assert!(sim.pool.conn(c).is_none());
    assert_eq!(
        sim.event(Event::ConnExpires {
            conn: c,
            at: sim.now + Duration::from_secs(600),
        }),
        Err(Error::UnknownConn(c))
    );
}

/// The story goes red when the rule is broken in the core.
#[cfg(feature = "fault-hooks")]
mod planted {
    use super::*;
    use ldapmux_core::PolicyBug;

    #[test]
    fn ignoring_the_ticket_fails_the_ticket_story() {
        let plant: Plant = |sim| sim.pool.plant_policy_bug(PolicyBug::IgnoreCredentialExpiry);
        assert!(std::panic::catch_unwind(|| ticket_story(plant)).is_err());
    }
}
