//! A server announces it is closing one connection (an LDAP Notice of
//! Disconnection, RFC 4511 §4.4.1: Active Directory past `MaxConnIdleTime`,
//! a server shutting down): the pool takes no new users on it, lets its
//! users finish or retries their reads when the server cuts it, and does not
//! read the death as a sign about the server (issue 20).

mod common;

use common::*;
use ldapmux_core::{Action, CloseReason, ConnId, ConnPhase, CredKey, Error, Event, UserKind};

type Plant = fn(&mut Sim);

fn no_plant(_: &mut Sim) {}

/// A search on `c1` (anonymous) and another credential's search on `c2`,
/// both open to the one server.
fn two_connections(sim: &mut Sim) -> (ldapmux_core::UserId, ConnId, ConnId) {
    let u1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    let other = sim.acquire(ldapmux_core::Request::new(UserKind::Search, CredKey(5)));
    let c2 = Sim::open_of(&sim.drain());
    sim.opened(c2);
    sim.release(other);
    (u1, c1, c2)
}

fn phase(sim: &Sim, conn: ConnId) -> Option<ConnPhase> {
    sim.pool.conn(conn).map(|c| c.phase)
}

/// The notice arrives while a search runs; a new search opens a fresh
/// connection; the server then cuts the noticed one: its search fails with a
/// retry, the other connection to the server stays open, the server is
/// still up.
fn notice_story(plant: Plant) {
    let mut sim = Sim::with(config());
    plant(&mut sim);
    let (u1, c1, c2) = two_connections(&mut sim);
    sim.ok(Event::ConnClosing { conn: c1 });
    assert_eq!(phase(&sim, c1), Some(ConnPhase::Draining), "no new users");
    let u2 = sim.search();
    let c3 = Sim::open_of(&sim.drain());
    assert_ne!(c3, c1);
    assert_eq!(sim.opened(c3), vec![grant(u2, c3)]);
    sim.ok(Event::ConnBroken {
        user: u1,
        error: reset(),
        request_sent: true,
    });
    let actions = sim.drain();
    assert!(
        matches!(actions[..], [Action::Close { conn, reason: CloseReason::Broken }, Action::Fail { user, retry: true, .. }] if conn == c1 && user == u1),
        "the cut connection closes and its read is retried: {actions:?}"
    );
    assert_eq!(
        phase(&sim, c2),
        Some(ConnPhase::Open),
        "an announced close drains no sibling"
    );
    let server = sim.server(A);
    assert_eq!(
        sim.pool.health(server),
        Some(ldapmux_core::Health::Up),
        "the server is not suspected"
    );
}

#[test]
fn a_noticed_connection_takes_no_one_new_and_its_death_drains_no_sibling() {
    notice_story(no_plant);
}

#[test]
fn a_noticed_connection_closes_when_its_last_user_leaves() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::ConnClosing { conn: c });
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(
        sim.release(u),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::ServerNotice
        }]
    );
    assert_eq!(sim.pool.status().counters.notices, 1);
}

#[test]
fn a_noticed_idle_connection_closes_at_once() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    sim.ok(Event::ConnClosing { conn: c });
    assert_eq!(
        sim.drain(),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::ServerNotice
        }]
    );
}

/// The adapter usually reports the socket's end right after the notice:
/// that loss, too, leaves the siblings alone.
#[test]
fn the_socket_ending_after_a_notice_drains_no_sibling() {
    let mut sim = Sim::with(config());
    let (u1, c1, c2) = two_connections(&mut sim);
    sim.release(u1);
    sim.ok(Event::ConnClosing { conn: c1 });
    sim.drain();
    // Already closed by the core: the loss report is for a gone connection.
    assert!(matches!(
        sim.event(Event::ConnLost {
            conn: c1,
            error: reset()
        }),
        Err(Error::UnknownConn(c)) if c == c1
    ));
    assert_eq!(phase(&sim, c2), Some(ConnPhase::Open));
}

#[test]
fn a_notice_for_a_gone_connection_is_a_typed_error() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    sim.ok(Event::ConnClosing { conn: c });
    sim.drain();
    assert_eq!(
        sim.event(Event::ConnClosing { conn: c }),
        Err(Error::UnknownConn(c))
    );
}

#[cfg(feature = "fault-hooks")]
mod planted {
    use super::*;
    use ldapmux_core::PolicyBug;

    #[test]
    #[should_panic(expected = "no new users")]
    fn ignoring_the_notice_fails_the_notice_story() {
        notice_story(|sim| sim.pool.plant_policy_bug(PolicyBug::IgnoreServerNotice));
    }
}
