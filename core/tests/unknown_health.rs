//! Stories of issue 17: a server the pool has never reached reports
//! [`Health::Unknown`], not `Up`. The first word from it (a connection that
//! opened, a bind it refused) makes it up, the first failure down as for any
//! server, and once reached it is never unknown again: not after it comes
//! back, a reload or a fork. It is reporting only: the pool ranks and
//! connects to an unknown server as to an up one.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, Config, ConnError, ConnErrorKind, CredKey, Error, Event, Health, Request, UserKind,
};

/// Every server's health as [`Status`](ldapmux_core::Status) reports it, in id order.
fn reported(sim: &Sim) -> Vec<Health> {
    sim.pool.status().servers.iter().map(|s| s.health).collect()
}

fn health(sim: &Sim, addr: &str) -> Health {
    sim.pool.health(sim.server(addr)).expect("known server")
}

/// Moves the clock by `d`, half a second at a time with every probe
/// answered, asserting at each stop that no server the pool has heard from
/// (`reached`) reports unknown.
fn advance_never_unknown(sim: &mut Sim, d: Duration, reached: &[&str]) {
    let step = Duration::from_millis(500);
    let mut left = d;
    while !left.is_zero() {
        sim.advance_probed(step.min(left));
        left = left.saturating_sub(step);
        for addr in reached {
            assert_ne!(
                health(sim, addr),
                Health::Unknown,
                "{addr} was reached, at {}",
                sim.now
            );
        }
    }
}

#[test]
fn a_server_is_unknown_until_the_pool_reaches_it_and_never_again() {
    let mut sim = Sim::with(config());
    let (a, b) = (sim.server(A), sim.server(B));
    // Two configured servers, nothing connected yet: nothing is known.
    assert_eq!(reported(&sim), vec![Health::Unknown, Health::Unknown]);

    // The first read goes to the preferred server, unknown as it is: the
    // rule changes no decision. A connect in flight is no word from it.
    let u1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    assert_eq!(sim.pool.conn(c1).map(|c| c.server), Some(a));
    assert_eq!(health(&sim, A), Health::Unknown);

    // It opens: A is up. B, never needed, is still unknown, and says so.
    assert_eq!(sim.opened(c1), vec![grant(u1, c1)]);
    assert_eq!(reported(&sim), vec![Health::Up, Health::Unknown]);
    let shown = sim.pool.status().to_string();
    assert!(
        shown.contains(&format!("{b} {B}: unknown (not reached yet);")),
        "{shown}"
    );
    sim.release(u1);

    // A read that names B: its connect is refused. B is down, as any server
    // whose connect fails; A is still up.
    let u2 = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).server(B));
    let c2 = Sim::open_of(&sim.drain());
    sim.ok(Event::ConnOpenFailed {
        conn: c2,
        error: refused(),
    });
    let actions = sim.drain();
    assert!(
        actions.contains(&Action::ServerMarkedDown { server: b }),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|x| matches!(x, Action::Fail { user, .. } if *user == u2)),
        "{actions:?}"
    );
    assert!(matches!(health(&sim, B), Health::Down { .. }));
    assert_eq!(health(&sim, A), Health::Up);

    // B's probe answers: it is back, in its hold-down, then trusted; at no
    // point on the way is it unknown again.
    let probed = sim.advance(Duration::from_secs(2));
    assert!(probed.contains(&Action::Probe { server: b }), "{probed:?}");
    sim.ok(Event::ProbeResult {
        server: b,
        ok: true,
    });
    sim.drain();
    assert!(matches!(health(&sim, B), Health::Returning { .. }));
    advance_never_unknown(&mut sim, Duration::from_secs(12), &[A, B]);
    assert_eq!(reported(&sim), vec![Health::Up, Health::Up]);

    // Down again and back once more: still never unknown.
    sim.ok(Event::ServerDown { server: b });
    sim.drain();
    assert!(matches!(health(&sim, B), Health::Down { .. }));
    sim.ok(Event::ServerUp { server: b });
    sim.drain();
    assert!(matches!(health(&sim, B), Health::Returning { .. }));
    advance_never_unknown(&mut sim, Duration::from_secs(12), &[A, B]);
    assert_eq!(health(&sim, B), Health::Up);
}

#[test]
fn a_refused_bind_is_word_from_the_server() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    let u = sim.acquire(Request::new(UserKind::Search, CredKey(3)));
    let c = Sim::open_of(&sim.drain());
    sim.ok(Event::ConnOpenFailed {
        conn: c,
        error: ConnError::new(ConnErrorKind::InvalidCredentials, "invalidCredentials (49)"),
    });
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: u,
            error: Error::InvalidCredentials { server: a },
            retry: false
        }]
    );
    // It answered, if only to refuse: up, and not down (a refusal blames
    // the credential, not the server).
    assert_eq!(reported(&sim), vec![Health::Up, Health::Unknown]);
}

#[test]
fn a_status_feed_saying_up_is_no_word_from_the_server_but_saying_down_is() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    // "Up" from a feed changes nothing the pool knows: still unknown.
    sim.ok(Event::ServerUp { server: a });
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(health(&sim, A), Health::Unknown);
    // "Down" is acted on: down, and known from then on.
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    assert!(matches!(health(&sim, A), Health::Down { .. }));
    sim.ok(Event::ServerUp { server: a });
    sim.drain();
    assert!(matches!(health(&sim, A), Health::Returning { .. }));
    advance_never_unknown(&mut sim, Duration::from_secs(12), &[A]);
    assert_eq!(reported(&sim), vec![Health::Up, Health::Unknown]);
}

#[test]
fn a_reload_and_a_fork_keep_what_the_pool_has_heard() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    assert_eq!(reported(&sim), vec![Health::Up, Health::Unknown]);

    // A new server list keeping A and adding C: A is still up (its
    // connection moved to the new generation), C is unknown.
    let keep_a = Config::builder()
        .preferred_server(A)
        .server(C)
        .failback_hold_down(Duration::from_secs(10))
        .probe_backoff(Duration::from_secs(1), Duration::from_secs(8))
        .build()
        .expect("valid config");
    sim.ok(Event::ReloadServers(Box::new(keep_a)));
    sim.drain();
    assert_eq!(sim.pool.conn(c).map(|c| c.server), Some(sim.server(A)));
    assert_eq!(
        reported(&sim),
        vec![Health::Up, Health::Unknown, Health::Unknown]
    );

    // A reload that drops A: the status still lists it, as the pool last
    // knew it; B, listed again, was never reached.
    let only_b = Config::builder().server(B).build().expect("valid config");
    sim.ok(Event::Reload(Box::new(only_b)));
    sim.drain();
    assert_eq!(
        reported(&sim),
        vec![Health::Up, Health::Unknown, Health::Unknown]
    );

    // The child of a fork keeps the parent's knowledge of its servers.
    sim.ok(Event::Forked);
    sim.drain();
    assert_eq!(
        reported(&sim),
        vec![Health::Up, Health::Unknown, Health::Unknown]
    );
}
