//! Stories of the placement policy beyond the seed (issue 15): spread before
//! stack, and connect racing to the next server when a connect is slow.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, CloseReason, ConnId, ConnPhase, CredKey, Event, Request, UserId, UserKind,
};

/// The connections asked for in `actions`.
fn opens(actions: &[Action]) -> Vec<ConnId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Open { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

/// The connection `user` was granted in `actions`.
fn granted(actions: &[Action], user: UserId) -> Option<ConnId> {
    actions.iter().find_map(|a| match a {
        Action::Grant { user: u, conn } if *u == user => Some(*conn),
        _ => None,
    })
}

/// One server, 2 users make a connection busy, spreading up to 3
/// connections, 8 users at most per connection, no racing.
fn spreading() -> ldapmux_core::ConfigBuilder {
    ldapmux_core::Config::builder()
        .server(A)
        .max_users_per_conn(8)
        .max_conns_per_server(6)
        .spread(2, 3)
        .read_idle_timeout(Some(Duration::from_secs(60)))
}

/// Opens the first connection with `n` users on it.
fn first_connection_with(sim: &mut Sim, n: usize) -> (ConnId, Vec<UserId>) {
    let users: Vec<UserId> = (0..n).map(|_| sim.search()).collect();
    let conn = Sim::open_of(&sim.drain());
    let actions = sim.opened(conn);
    for &u in &users {
        assert_eq!(granted(&actions, u), Some(conn));
    }
    (conn, users)
}

#[test]
fn users_one_at_a_time_ride_one_connection() {
    let mut sim = Sim::with(spreading());
    let (conn, users) = first_connection_with(&mut sim, 1);
    sim.release(users[0]);
    for _ in 0..20 {
        let u = sim.search();
        let actions = sim.drain();
        assert_eq!(actions, vec![grant(u, conn)], "no spare under light load");
        sim.release(u);
    }
    assert_eq!(sim.pool.status().conns, 1);
    assert_eq!(sim.pool.status().counters.spreads, 0);
}

/// A bug to plant before a story runs (none in the stories themselves).
type Plant = fn(&mut Sim);
const NO_BUG: Plant = |_| {};

#[test]
fn a_busy_connection_gets_one_spare_while_its_users_ride_on() {
    busy_connection_story(NO_BUG);
}

fn busy_connection_story(plant: Plant) {
    let mut sim = Sim::with(spreading());
    plant(&mut sim);
    let (c1, _) = first_connection_with(&mut sim, 2);
    // c1 is busy (2 users): the third user rides it at once, and a spare opens.
    let u3 = sim.search();
    let actions = sim.drain();
    assert_eq!(granted(&actions, u3), Some(c1), "nobody waits for a spare");
    let spare = opens(&actions);
    assert_eq!(spare.len(), 1, "one spare: {actions:?}");
    // While the spare opens, more users ride c1 and no second spare opens.
    let u4 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u4, c1)]);
    // Once open, the spare takes the next users: the least loaded first.
    sim.opened(spare[0]);
    let u5 = sim.search();
    let u6 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u5, spare[0]), grant(u6, spare[0])]);
    assert_eq!(sim.pool.status().counters.spreads, 1);
}

#[test]
fn spreading_stops_at_its_target_and_users_stack_up_to_the_cap() {
    target_story(NO_BUG);
}

fn target_story(plant: Plant) {
    let mut sim = Sim::with(spreading().spread(1, 2).max_users_per_conn(3));
    plant(&mut sim);
    let (c1, _) = first_connection_with(&mut sim, 1);
    let u2 = sim.search();
    let actions = sim.drain();
    assert_eq!(granted(&actions, u2), Some(c1));
    let c2 = opens(&actions)[0];
    sim.opened(c2);
    // Two connections: the target. Users stack, least loaded first, to 3 each.
    let mut on = std::collections::BTreeMap::<ConnId, u32>::new();
    for _ in 0..4 {
        let u = sim.search();
        let actions = sim.drain();
        assert!(opens(&actions).is_empty(), "past the target: {actions:?}");
        *on.entry(granted(&actions, u).expect("granted at once"))
            .or_default() += 1;
    }
    assert_eq!(sim.pool.conn(c1).unwrap().users, 3);
    assert_eq!(sim.pool.conn(c2).unwrap().users, 3);
    // Both full: the next user needs a connection and gets one (the hard
    // limit is connections per server, 6), waiting for it to open.
    let u = sim.search();
    let actions = sim.drain();
    assert_eq!(opens(&actions).len(), 1);
    assert_eq!(granted(&actions, u), None);
    assert_eq!(sim.pool.status().counters.spreads, 1);
}

#[test]
fn idle_spares_close_and_the_set_shrinks_back_to_one() {
    let mut sim = Sim::with(spreading().spread(1, 3));
    let (c1, first) = first_connection_with(&mut sim, 1);
    let mut riders = first;
    // Busy at one user: the second and fourth arrivals find every
    // connection busy and get a spare each (the third rides the first spare).
    for _ in 0..3 {
        let u = sim.search();
        let actions = sim.drain();
        riders.push(u);
        for c in opens(&actions) {
            sim.opened(c);
        }
    }
    assert_eq!(sim.pool.status().conns, 3);
    for u in riders {
        sim.release(u);
    }
    // Light load again: one user every 10 s for 70 s rides one connection;
    // the other two sit idle and close after the 60 s idle timeout.
    let mut closed = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for _ in 0..7 {
        let u = sim.search();
        used.insert(granted(&sim.drain(), u).expect("granted at once"));
        sim.release(u);
        for a in sim.advance(Duration::from_secs(10)) {
            if let Action::Close { conn, reason } = a {
                closed.push((conn, reason));
            }
        }
    }
    assert_eq!(used.len(), 1, "one connection serves light load: {used:?}");
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert!(closed.iter().all(|&(_, r)| r == CloseReason::Idle));
    assert_eq!(sim.pool.status().conns, 1);
    let _ = c1;
}

#[test]
fn a_cold_storm_coalesces_and_never_opens_one_connection_per_user() {
    let mut sim = Sim::with(
        ldapmux_core::Config::builder()
            .server(A)
            .max_users_per_conn(64)
            .max_conns_per_server(16),
    );
    let users: Vec<UserId> = (0..1000).map(|_| sim.search()).collect();
    let actions = sim.drain();
    // 1000 users at 64 per connection need 16 connections: the storm opens
    // exactly those, and spreading opens none while nothing is open.
    let conns = opens(&actions);
    assert_eq!(conns.len(), 16, "ceil(1000 / 64)");
    let mut granted_users = 0;
    for c in conns {
        granted_users += sim
            .opened(c)
            .iter()
            .filter(|a| matches!(a, Action::Grant { .. }))
            .count();
    }
    assert_eq!(granted_users, users.len());
    assert_eq!(sim.pool.status().counters.spreads, 0);
}

#[test]
fn a_reset_connection_retires_its_siblings_so_retries_find_out_fast() {
    sibling_story(NO_BUG);
}

fn sibling_story(plant: Plant) {
    // Two spread connections to A, one user on each; B as backup.
    let mut sim = Sim::with(config().spread(1, 2).connect_race_delay(None));
    plant(&mut sim);
    let (a, b) = (sim.server(A), sim.server(B));
    let (c1, first) = first_connection_with(&mut sim, 1);
    let u2 = sim.search();
    let actions = sim.drain();
    let c2 = opens(&actions)[0];
    sim.opened(c2);
    sim.release(u2);
    let u3 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u3, c2)]);
    // A dies: c1's user sees a reset first.
    sim.ok(Event::ConnBroken {
        user: first[0],
        error: reset(),
        request_sent: true,
    });
    sim.drain();
    // c2 may be dead too: it takes no new user. The retry opens a fresh
    // connection instead of burning its try on c2.
    assert_eq!(sim.pool.conn(c2).unwrap().phase, ConnPhase::Draining);
    let retry = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).attempt(2));
    let fresh = Sim::open_of(&sim.drain());
    assert!(fresh != c1 && fresh != c2);
    // A refuses it: A is down, and the retry fails over to B on its third try.
    sim.ok(Event::ConnOpenFailed {
        conn: fresh,
        error: refused(),
    });
    let actions = sim.drain();
    assert!(actions.contains(&Action::Fail {
        user: retry,
        error: ldapmux_core::Error::ConnectFailed {
            server: a,
            cause: refused()
        },
        retry: true
    }));
    let third = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).attempt(3));
    let on_b = Sim::open_of(&sim.drain());
    assert_eq!(sim.pool.conn(on_b).unwrap().server, b);
    assert_eq!(granted(&sim.opened(on_b), third), Some(on_b));
}

#[test]
fn an_operation_timeout_retires_no_sibling() {
    let mut sim = Sim::with(config().spread(1, 2).connect_race_delay(None));
    let (_, first) = first_connection_with(&mut sim, 1);
    let u2 = sim.search();
    let c2 = opens(&sim.drain())[0];
    sim.opened(c2);
    sim.ok(Event::ConnBroken {
        user: first[0],
        error: ldapmux_core::ConnError::new(ldapmux_core::ConnErrorKind::Timeout, "slow"),
        request_sent: true,
    });
    sim.drain();
    assert_eq!(sim.pool.conn(c2).unwrap().phase, ConnPhase::Open);
    let _ = u2;
}

// ---------------------------------------------------------------------
// Connect racing
// ---------------------------------------------------------------------

/// A preferred, B backup, connect timeout 1 s, racing after 200 ms.
fn racing() -> ldapmux_core::ConfigBuilder {
    config()
        .connect_timeout(Duration::from_secs(1))
        .connect_race_delay(Some(Duration::from_millis(200)))
}

#[test]
fn a_silent_preferred_server_costs_the_race_delay_not_the_connect_timeout() {
    silent_preferred_story(NO_BUG);
}

fn silent_preferred_story(plant: Plant) {
    let mut sim = Sim::with(racing());
    plant(&mut sim);
    let (a, b) = (sim.server(A), sim.server(B));
    let users: Vec<UserId> = (0..5).map(|_| sim.search()).collect();
    let slow = Sim::open_of(&sim.drain());
    assert_eq!(sim.pool.conn(slow).unwrap().server, a);
    // A says nothing for 200 ms: a rival opens to B.
    assert!(sim.advance(Duration::from_millis(199)).is_empty());
    let actions = sim.advance(Duration::from_millis(1));
    let rival = Sim::open_of(&actions);
    assert_eq!(sim.pool.conn(rival).unwrap().server, b);
    assert_eq!(sim.pool.status().counters.races, 1);
    // B opens first and serves every waiter of A's connection.
    let actions = sim.opened(rival);
    for &u in &users {
        assert_eq!(granted(&actions, u), Some(rival), "{actions:?}");
    }
    // A's connection keeps trying (it is the preferred one); it times out
    // with no waiter left, and A is marked down.
    assert_eq!(sim.pool.conn(slow).unwrap().waiters, vec![]);
    let actions = sim.advance(Duration::from_millis(800));
    assert!(actions.contains(&Action::Close {
        conn: slow,
        reason: CloseReason::ConnectTimeout
    }));
    assert!(matches!(
        sim.pool.health(a),
        Some(ldapmux_core::Health::Down { .. })
    ));
    assert!(actions.iter().all(|a| !matches!(a, Action::Fail { .. })));
}

#[test]
fn a_slow_preferred_connection_that_opens_first_keeps_the_order() {
    let mut sim = Sim::with(racing());
    let a = sim.server(A);
    let u = sim.search();
    let slow = Sim::open_of(&sim.drain());
    let rival = Sim::open_of(&sim.advance(Duration::from_millis(200)));
    // A answers at 300 ms, before B: A serves, and B's rival is closed.
    sim.advance(Duration::from_millis(100));
    let actions = sim.opened(slow);
    assert_eq!(granted(&actions, u), Some(slow));
    assert!(actions.contains(&Action::Close {
        conn: rival,
        reason: CloseReason::RaceLost
    }));
    assert_eq!(sim.pool.conn(slow).unwrap().server, a);
    assert_eq!(sim.pool.status().conns, 1);
}

#[test]
fn a_rival_that_fails_hands_its_waiters_back_and_nobody_fails_twice() {
    let mut sim = Sim::with(racing());
    let u = sim.search();
    let slow = Sim::open_of(&sim.drain());
    let rival = Sim::open_of(&sim.advance(Duration::from_millis(200)));
    // A user arriving now waits on the rival (both are candidates).
    let late = sim.search();
    assert_eq!(sim.drain(), vec![]);
    let on = |sim: &Sim, user| sim.pool.user(user).unwrap().conn;
    let late_on = on(&sim, late).expect("waits");
    assert!(late_on == slow || late_on == rival);
    // B refuses: its waiters move to A's connection; none fails.
    let actions = {
        sim.ok(Event::ConnOpenFailed {
            conn: rival,
            error: refused(),
        });
        sim.drain()
    };
    assert!(actions.iter().all(|a| !matches!(a, Action::Fail { .. })));
    assert_eq!(on(&sim, u), Some(slow));
    assert_eq!(on(&sim, late), Some(slow));
    let actions = sim.opened(slow);
    assert_eq!(granted(&actions, u), Some(slow));
    assert_eq!(granted(&actions, late), Some(slow));
}

#[test]
fn a_user_that_named_the_slow_server_stays_with_it() {
    let mut sim = Sim::with(racing());
    let named = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).server(A));
    let any = sim.search();
    let slow = Sim::open_of(&sim.drain());
    let rival = Sim::open_of(&sim.advance(Duration::from_millis(200)));
    let actions = sim.opened(rival);
    assert_eq!(granted(&actions, any), Some(rival));
    assert_eq!(granted(&actions, named), None, "it asked for A");
    assert_eq!(sim.pool.conn(slow).unwrap().waiters, vec![named]);
    assert_eq!(sim.pool.conn(slow).unwrap().phase, ConnPhase::Connecting);
}

#[test]
fn no_rival_without_another_server_or_with_racing_off() {
    for builder in [
        ldapmux_core::Config::builder()
            .server(A)
            .connect_race_delay(Some(Duration::from_millis(200))),
        config().connect_race_delay(None),
    ] {
        let mut sim = Sim::with(builder.connect_timeout(Duration::from_secs(1)));
        let _u = sim.search();
        let _slow = Sim::open_of(&sim.drain());
        let actions = sim.advance(Duration::from_millis(900));
        assert!(opens(&actions).is_empty(), "{actions:?}");
        assert_eq!(sim.pool.status().counters.races, 0);
    }
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
    fn never_spreading_fails_the_busy_connection_story() {
        assert!(fails(busy_connection_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::NeverSpread)
        }));
    }

    #[test]
    fn spreading_past_the_target_fails_the_target_story() {
        assert!(fails(target_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::SpreadPastTarget)
        }));
    }

    #[test]
    fn keeping_the_siblings_of_a_reset_connection_fails_the_sibling_story() {
        assert!(fails(sibling_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::KeepSiblings)
        }));
    }

    #[test]
    fn never_racing_fails_the_silent_server_story() {
        assert!(fails(silent_preferred_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::NeverRace)
        }));
    }

    #[test]
    fn a_winner_that_leaves_the_waiters_fails_the_silent_server_story() {
        assert!(fails(silent_preferred_story, |sim| {
            sim.pool.plant_policy_bug(PolicyBug::RivalKeepsOwnWaiters)
        }));
    }
}
