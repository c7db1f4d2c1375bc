//! Bind connections (issue 19): password checks reuse a small set of
//! exclusive connections per server, one check at a time, never lent to a
//! search or a write, closed when a check cannot vouch for what it left.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, CloseReason, CredKey, Error, Event, Health, Purpose, Request, UserKind,
};

type Plant = fn(&mut Sim);

fn no_plant(_: &mut Sim) {}

fn check() -> Request {
    Request::new(UserKind::Auth, CredKey::ANONYMOUS)
}

fn search() -> Request {
    Request::new(UserKind::Search, CredKey::ANONYMOUS)
}

/// Two checks at once get two bind connections; once one is done, the next
/// check takes its connection without an open; a search of the same
/// credential, with an idle bind connection right there, opens a read
/// connection.
fn reuse_story(plant: Plant) {
    let mut sim = Sim::with(config().bind_conns_per_server(2));
    plant(&mut sim);
    let a = sim.server(A);
    let u1 = sim.acquire(check());
    let open = sim.drain();
    let c1 = Sim::open_of(&open);
    assert_eq!(
        open,
        vec![Action::Open {
            conn: c1,
            server: a,
            cred: CredKey::ANONYMOUS,
            purpose: Purpose::Bind,
            generation: sim.pool.current_generation().unwrap(),
        }]
    );
    // A second check does not wait on the first one's connection.
    let u2 = sim.acquire(check());
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c1, c2);
    assert_eq!(sim.opened(c1), vec![grant(u1, c1)]);
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);

    // Done: the connection stays open, idle, for the next check.
    assert_eq!(sim.release(u1), vec![]);
    assert_eq!(sim.pool.conn(c1).unwrap().users, 0);
    let u3 = sim.acquire(check());
    assert_eq!(sim.drain(), vec![grant(u3, c1)]);

    // A search never lands on a bind connection, idle or not.
    sim.release(u3);
    let s = sim.acquire(search());
    let open = sim.drain();
    assert!(
        matches!(
            open[..],
            [Action::Open {
                purpose: Purpose::Read,
                ..
            }]
        ),
        "{open:?}"
    );
    let read = Sim::open_of(&open);
    assert_eq!(sim.opened(read), vec![grant(s, read)]);
    assert_eq!(sim.pool.conn(c1).unwrap().users, 0);
    let counters = sim.pool.status().counters;
    assert_eq!((counters.opens, counters.bind_opens), (3, 2));
    let _ = u2;
}

#[test]
fn password_checks_reuse_bind_connections_one_at_a_time_and_searches_never_get_them() {
    reuse_story(no_plant);
}

/// With the set full, a further check waits, in order, for the first bind
/// connection to come free, and fails at its deadline if none does.
fn full_set_story(plant: Plant) {
    let mut sim = Sim::with(config().bind_conns_per_server(1));
    plant(&mut sim);
    let u1 = sim.acquire(check());
    let c1 = Sim::open_of(&sim.drain());
    // The second check does not coalesce onto the opening connection: it
    // queues behind the set's limit.
    let u2 = sim.acquire(check().deadline(sim.now + Duration::from_secs(5)));
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.pool.status().queued, 1);
    assert_eq!(sim.opened(c1), vec![grant(u1, c1)]);
    let u3 = sim.acquire(check().deadline(sim.now + Duration::from_secs(2)));
    assert_eq!(sim.drain(), vec![]);
    // u1 is done: the first in line, u2, gets its connection.
    assert_eq!(sim.release(u1), vec![grant(u2, c1)]);
    // u3's deadline passes while u2 checks.
    assert_eq!(
        sim.advance(Duration::from_secs(2)),
        vec![Action::Fail {
            user: u3,
            error: Error::AcquireTimeout,
            retry: false
        }]
    );
    assert_eq!(
        sim.pool.conns().count(),
        1,
        "never a second bind connection"
    );
}

#[test]
fn a_full_bind_set_makes_further_checks_wait_for_a_free_connection() {
    full_set_story(no_plant);
}

#[test]
fn a_check_that_cannot_vouch_for_its_bind_retires_the_connection() {
    let mut sim = Sim::with(config());
    let u1 = sim.acquire(check());
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    sim.ok(Event::Retire { user: u1 });
    assert_eq!(
        sim.drain(),
        vec![Action::Close {
            conn: c1,
            reason: CloseReason::Retired
        }]
    );
    // The next check opens a fresh one; the server is not suspected.
    let u2 = sim.acquire(check());
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c1, c2);
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
    assert!(!matches!(
        sim.pool.health(sim.server(A)),
        Some(Health::Down { .. })
    ));
}

#[test]
fn a_retired_shared_connection_takes_no_one_new_and_closes_after_its_last_user() {
    let mut sim = Sim::with(config());
    let s1 = sim.acquire(search());
    let read = Sim::open_of(&sim.drain());
    sim.opened(read);
    let s2 = sim.acquire(search());
    assert_eq!(sim.drain(), vec![grant(s2, read)]);
    sim.ok(Event::Retire { user: s1 });
    assert_eq!(sim.drain(), vec![]);
    // Draining: a new search opens another connection.
    let s3 = sim.acquire(search());
    let other = Sim::open_of(&sim.drain());
    assert_ne!(other, read);
    assert_eq!(
        sim.release(s2),
        vec![Action::Close {
            conn: read,
            reason: CloseReason::Retired
        }]
    );
    let _ = s3;
}

#[test]
fn a_bind_connection_that_dies_under_a_check_closes_and_the_next_opens_afresh() {
    let mut sim = Sim::with(config());
    let u1 = sim.acquire(check());
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    sim.ok(Event::ConnBroken {
        user: u1,
        error: reset(),
        request_sent: true,
    });
    let actions = sim.drain();
    assert!(
        actions.contains(&Action::Close {
            conn: c1,
            reason: CloseReason::Broken
        }),
        "{actions:?}"
    );
    // A check whose bind may have reached the server is not retried.
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Fail { user, retry: false, .. } if *user == u1))
    );
    let _u2 = sim.acquire(check());
    assert!(sim.pool.conn(c1).is_none());
    assert!(matches!(
        sim.drain()[..],
        [Action::Open {
            purpose: Purpose::Bind,
            ..
        }]
    ));
}

#[test]
fn an_idle_bind_connection_closes_after_the_write_idle_timeout() {
    let mut sim = Sim::with(config().write_idle_timeout(Duration::from_secs(60)));
    let u1 = sim.acquire(check());
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    sim.release(u1);
    assert_eq!(sim.advance(Duration::from_secs(59)), vec![]);
    assert_eq!(
        sim.advance(Duration::from_secs(1)),
        vec![Action::Close {
            conn: c1,
            reason: CloseReason::Idle
        }]
    );
}

#[test]
fn a_check_that_gives_up_while_its_connection_opens_leaves_it_to_the_next() {
    let mut sim = Sim::with(config());
    let u1 = sim.acquire(check());
    let c1 = Sim::open_of(&sim.drain());
    sim.ok(Event::Cancel { user: u1 });
    assert_eq!(sim.drain(), vec![], "kept opening: the next check wants it");
    let u2 = sim.acquire(check());
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.opened(c1), vec![grant(u2, c1)]);
}

#[test]
fn at_the_server_limit_an_idle_read_connection_makes_room_for_a_check() {
    let mut sim = Sim::with(config().max_conns_per_server(1));
    let s = sim.acquire(search());
    let read = Sim::open_of(&sim.drain());
    sim.opened(read);
    sim.release(s);
    sim.acquire(check());
    let actions = sim.drain();
    assert!(
        matches!(
            actions[..],
            [
                Action::Close { conn, reason: CloseReason::MakeRoom },
                Action::Open { purpose: Purpose::Bind, .. },
            ] if conn == read
        ),
        "{actions:?}"
    );
}

#[test]
fn with_no_bind_connections_each_check_gets_a_private_one_closed_after() {
    let mut sim = Sim::with(config().bind_conns_per_server(0));
    let u1 = sim.acquire(check());
    let open = sim.drain();
    assert!(
        matches!(
            open[..],
            [Action::Open {
                purpose: Purpose::Private,
                ..
            }]
        ),
        "{open:?}"
    );
    let c1 = Sim::open_of(&open);
    sim.opened(c1);
    assert_eq!(
        sim.release(u1),
        vec![Action::Close {
            conn: c1,
            reason: CloseReason::Done
        }]
    );
}

#[test]
fn a_check_that_asks_for_a_private_connection_gets_one_beside_the_bind_set() {
    let mut sim = Sim::with(config());
    let u1 = sim.acquire(check());
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    sim.release(u1);
    let u2 = sim.acquire(check().private());
    let open = sim.drain();
    assert!(
        matches!(
            open[..],
            [Action::Open {
                purpose: Purpose::Private,
                ..
            }]
        ),
        "an idle bind connection is no private one: {open:?}"
    );
    let _ = u2;
}

/// Each story above goes red when the rule it tells is broken in the core.
#[cfg(feature = "fault-hooks")]
mod planted {
    use super::*;
    use ldapmux_core::PolicyBug;

    fn fails(story: fn(Plant), plant: Plant) -> bool {
        std::panic::catch_unwind(|| story(plant)).is_err()
    }

    #[test]
    fn a_search_given_a_bind_connection_fails_the_reuse_story() {
        assert!(fails(reuse_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::BindToReaders)
        }));
    }

    #[test]
    fn two_checks_on_one_bind_connection_fail_the_reuse_and_full_set_stories() {
        let plant: Plant = |sim| sim.pool.plant_policy_bug(PolicyBug::ShareBindConnections);
        assert!(fails(reuse_story, plant));
        assert!(fails(full_set_story, plant));
    }
}
