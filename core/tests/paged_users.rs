//! Paging users (issue 18's rule, kept by the core since issue 19): a
//! server keeps one paging state per connection (slapd refuses a second
//! paged search beside the first), so the core puts at most one paging
//! user on a connection; other users share it as usual, and a connection
//! opened for a second pager is an ordinary shared one, kept for later.

mod common;

use common::*;
use ldapmux_core::{Action, CredKey, Purpose, Request, UserKind};

type Plant = fn(&mut Sim);

fn no_plant(_: &mut Sim) {}

fn pager() -> Request {
    Request::new(UserKind::Getent, CredKey::ANONYMOUS).paging()
}

/// A search and a pager share a connection; a second pager gets a
/// connection of its own kind (read, shared); once the first pager is done
/// its connection takes the next pager, and the second connection serves
/// plain searches on.
fn two_pagers_story(plant: Plant) {
    let mut sim = Sim::with(config());
    plant(&mut sim);
    let s1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    assert_eq!(sim.opened(c1), vec![grant(s1, c1)]);
    let p1 = sim.acquire(pager());
    assert_eq!(
        sim.drain(),
        vec![grant(p1, c1)],
        "a pager shares with a search"
    );
    // A second pager does not join the first's connection.
    let p2 = sim.acquire(pager());
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
    let c2 = Sim::open_of(&open);
    assert_eq!(sim.opened(c2), vec![grant(p2, c2)]);
    // The first pager is done: its connection takes the next one.
    sim.release(p1);
    let p3 = sim.acquire(pager());
    assert_eq!(sim.drain(), vec![grant(p3, c1)]);
    sim.release(p2);
    // The second connection is an ordinary read connection, kept.
    let s2 = sim.search();
    assert_eq!(sim.drain(), vec![grant(s2, c2)]);
    assert_eq!(sim.pool.conns().count(), 2);
    let _ = (s1, p3);
}

#[test]
fn a_second_paging_user_gets_another_shared_connection_kept_for_later() {
    two_pagers_story(no_plant);
}

#[test]
fn a_pager_does_not_wait_on_a_connection_another_pager_waits_on() {
    let mut sim = Sim::with(config());
    let p1 = sim.acquire(pager());
    let c1 = Sim::open_of(&sim.drain());
    let p2 = sim.acquire(pager());
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c1, c2);
    // A plain search coalesces onto the first.
    let s = sim.search();
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.opened(c1), vec![grant(p1, c1), grant(s, c1)]);
    assert_eq!(sim.opened(c2), vec![grant(p2, c2)]);
}

#[test]
fn at_the_server_limit_a_second_pager_waits_for_the_first_to_finish() {
    let mut sim = Sim::with(config().max_conns_per_server(1));
    let p1 = sim.acquire(pager());
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    let p2 = sim.acquire(pager());
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.pool.status().queued, 1);
    // A plain search is not held up by it.
    let s = sim.search();
    assert_eq!(sim.drain(), vec![grant(s, c1)]);
    assert_eq!(sim.release(p1), vec![grant(p2, c1)]);
}

/// The story goes red when the rule is broken in the core.
#[cfg(feature = "fault-hooks")]
mod planted {
    use super::*;
    use ldapmux_core::PolicyBug;

    #[test]
    fn two_pagers_on_one_connection_fail_the_story() {
        let plant: Plant = |sim| sim.pool.plant_policy_bug(PolicyBug::TwoPagersPerConnection);
        assert!(std::panic::catch_unwind(|| two_pagers_story(plant)).is_err());
    }
}
