//! Behaviour 7: fail-back to a preferred server that returned.

use super::*;

// ---------------------------------------------------------------- 7. fail-back

#[test]
fn b07_fail_back_opens_the_new_connection_before_draining_the_old_after_hold_down() {
    let mut sim = Sim::with(config());
    let (a, b) = (sim.server(A), sim.server(B));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    // Running on B, with a reader, a writer and a referral user.
    let r = sim.search();
    let cb = Sim::open_of(&sim.drain());
    sim.opened(cb);
    let w = sim.acquire(req(UserKind::Write));
    let wb = Sim::open_of(&sim.drain());
    sim.opened(wb);
    let rf = sim.acquire(req(UserKind::Search).referral());
    let rb = Sim::open_of(&sim.drain());
    sim.opened(rb);

    // A comes back. Nothing moves during the hold-down (10 s).
    sim.ok(Event::ServerUp { server: a });
    assert_eq!(sim.drain(), vec![]);
    assert!(matches!(sim.pool.health(a), Some(Health::Returning { .. })));
    // New connections still go to the stable server meanwhile.
    let r2 = sim.acquire(Request::new(UserKind::Search, CredKey(5)));
    let open = sim.drain();
    assert!(matches!(open[..], [Action::Open { server, .. }] if server == b));
    let c5 = Sim::open_of(&open);
    sim.opened(c5);
    sim.release(r2);
    assert_eq!(sim.advance_probed(Duration::from_secs(9)), vec![]);

    // Hold-down over: make before break. One new read connection per
    // credential is opened to A; B's read connections keep serving.
    let actions = sim.advance_probed(Duration::from_secs(1));
    assert_eq!(actions.len(), 2, "{actions:?}");
    let (mut anon, mut five) = (None, None);
    for a in &actions {
        match *a {
            Action::Open {
                conn,
                server,
                cred,
                purpose: Purpose::Read,
                ..
            } if server == sim.server(A) => {
                if cred == CredKey::ANONYMOUS {
                    anon = Some(conn)
                } else {
                    five = Some(conn)
                }
            }
            ref other => panic!("unexpected {other:?}"),
        }
    }
    let (anon, five) = (anon.unwrap(), five.unwrap());
    let r3 = sim.search();
    assert_eq!(
        sim.drain(),
        vec![grant(r3, cb)],
        "until A's connection is up, B serves"
    );
    // A's connection is up: B's anonymous read connection drains (it still
    // has users); the idle one for credential 5 closes at once.
    assert_eq!(sim.opened(anon), vec![]);
    assert_eq!(
        sim.pool.conn(cb).unwrap().phase,
        ldapmux_core::ConnPhase::Draining
    );
    assert_eq!(
        sim.pool.conn(cb).unwrap().drain_reason,
        Some(CloseReason::FailBack),
        "the status says why it drains"
    );
    assert_eq!(sim.pool.conn(anon).unwrap().drain_reason, None);
    assert_eq!(
        sim.opened(five),
        vec![Action::Close {
            conn: c5,
            reason: CloseReason::FailBack
        }]
    );
    let r4 = sim.search();
    assert_eq!(sim.drain(), vec![grant(r4, anon)]);
    sim.release(r3);
    assert_eq!(
        sim.release(r),
        vec![Action::Close {
            conn: cb,
            reason: CloseReason::FailBack
        }]
    );
    // Write and referral connections are left alone.
    assert_eq!(
        sim.pool.conn(wb).unwrap().phase,
        ldapmux_core::ConnPhase::Open
    );
    assert_eq!(
        sim.pool.conn(rb).unwrap().phase,
        ldapmux_core::ConnPhase::Open
    );
    let _ = (w, rf);
}

#[test]
fn b07_fail_back_warms_up_only_for_credentials_with_open_current_read_connections() {
    // Connects that hang for a minute do not time out during the story, and
    // get no rival on B (connect racing is off: this story counts opens).
    let slow = || {
        config()
            .connect_timeout(Duration::from_secs(60))
            .connect_race_delay(None)
    };
    let mut sim = Sim::with(slow());
    let (a, b) = (sim.server(A), sim.server(B));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    // A reader of an old generation (credential 6), still at work after a reload.
    let old = sim.acquire(Request::new(UserKind::Search, CredKey(6)));
    let c6 = Sim::open_of(&sim.drain());
    sim.opened(c6);
    sim.ok(Event::Reload(Box::new(slow().build().unwrap())));
    sim.drain();
    // On B now: an anonymous reader, a writer (2), a referral reader (3), and
    // a reader (7) whose connection is still opening.
    let r = sim.search();
    let cb = Sim::open_of(&sim.drain());
    sim.opened(cb);
    let w = sim.acquire(Request::new(UserKind::Write, CredKey(2)));
    let wb = Sim::open_of(&sim.drain());
    sim.opened(wb);
    let rf = sim.acquire(Request::new(UserKind::Search, CredKey(3)).referral());
    let rb = Sim::open_of(&sim.drain());
    sim.opened(rb);
    let _opening = sim.acquire(Request::new(UserKind::Search, CredKey(7)));
    let _c7 = Sim::open_of(&sim.drain());
    for conn in [cb, wb, rb] {
        assert_eq!(sim.pool.conn(conn).unwrap().server, b);
    }

    sim.ok(Event::ServerUp { server: a });
    sim.drain();
    let actions = sim.advance_probed(Duration::from_secs(10));
    assert!(
        matches!(
            actions[..],
            [Action::Open {
                server,
                cred: CredKey::ANONYMOUS,
                purpose: Purpose::Read,
                ..
            }] if server == a
        ),
        "one warm-up, for the current generation's open plain read connection only: {actions:?}"
    );
    assert_eq!(sim.pool.status().counters.failback_warmups, 1);
    // When it opens, only the matching read connection drains.
    let warm = Sim::open_of(&actions);
    sim.opened(warm);
    assert_eq!(
        sim.pool.conn(cb).unwrap().phase,
        ldapmux_core::ConnPhase::Draining
    );
    for conn in [wb, rb] {
        assert_eq!(
            sim.pool.conn(conn).unwrap().phase,
            ldapmux_core::ConnPhase::Open
        );
    }
    let _ = (old, r, w, rf);
}

#[test]
fn b07_a_connection_to_a_returning_server_for_a_user_that_named_it_moves_no_one() {
    let mut sim = Sim::with(config());
    let (a, b) = (sim.server(A), sim.server(B));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let r = sim.search();
    let cb = Sim::open_of(&sim.drain());
    sim.opened(cb);
    sim.ok(Event::ServerUp { server: a });
    sim.drain();
    // During A's hold-down a user names A: a read connection to A opens.
    let named = sim.acquire(Request::new(UserKind::Search, CredKey::ANONYMOUS).server(A));
    let ca = Sim::open_of(&sim.drain());
    assert_eq!(sim.opened(ca), vec![grant(named, ca)]);
    // B's readers stay: the hold-down is not over.
    assert_eq!(sim.pool.conn(cb).unwrap().server, b);
    assert_eq!(
        sim.pool.conn(cb).unwrap().phase,
        ldapmux_core::ConnPhase::Open
    );
    let _ = r;
}

#[test]
fn b07_referral_connections_never_fail_back() {
    // One user per connection, so a second referral user needs a new one.
    let mut sim = Sim::with(config().max_users_per_conn(1));
    let (a, b) = (sim.server(A), sim.server(B));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let rf = sim.acquire(req(UserKind::Search).referral());
    let rb = Sim::open_of(&sim.drain());
    sim.opened(rb);
    assert_eq!(sim.pool.conn(rb).unwrap().server, b);
    sim.ok(Event::ServerUp { server: a });
    sim.drain();
    sim.advance_probed(Duration::from_secs(10));
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    // A second referral user gets a connection to A, now the best server.
    let rf2 = sim.acquire(req(UserKind::Search).referral());
    let open = sim.drain();
    assert!(
        matches!(open[..], [Action::Open { server, .. }] if server == a),
        "{open:?}"
    );
    let ra = Sim::open_of(&open);
    assert_eq!(sim.opened(ra), vec![grant(rf2, ra)]);
    assert_eq!(
        sim.pool.conn(rb).unwrap().phase,
        ldapmux_core::ConnPhase::Open,
        "B's referral connection is not drained"
    );
    let _ = rf;
}

#[test]
fn b07_fail_back_opens_no_warm_up_beyond_the_per_server_limit() {
    // One connection per server: A's only slot is taken by a writer that named
    // it during the hold-down, so fail-back has no room to warm up a reader.
    let mut sim = Sim::with(config().max_conns_per_server(1));
    let (a, b) = (sim.server(A), sim.server(B));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let r = sim.search();
    let cb = Sim::open_of(&sim.drain());
    sim.opened(cb);
    sim.ok(Event::ServerUp { server: a });
    sim.drain();
    let w = sim.acquire(Request::new(UserKind::Write, CredKey::ANONYMOUS).server(A));
    let wa = Sim::open_of(&sim.drain());
    assert_eq!(sim.opened(wa), vec![grant(w, wa)]);
    let actions = sim.advance_probed(Duration::from_secs(10));
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    assert!(
        !actions.iter().any(|x| matches!(x, Action::Open { .. })),
        "no room on A: no warm-up ({actions:?})"
    );
    assert_eq!(sim.pool.status().counters.failback_warmups, 0);
    assert_eq!(sim.pool.conn(cb).unwrap().server, b);
    let _ = r;
}

#[test]
fn b07_a_server_that_flaps_during_hold_down_gets_no_fail_back() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    sim.ok(Event::ServerDown { server: a });
    let r = sim.search();
    let cb = Sim::open_of(&sim.drain());
    sim.opened(cb);
    sim.ok(Event::ServerUp { server: a });
    sim.advance(Duration::from_secs(5));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    // The old hold-down would have ended here; nothing happens.
    let actions = sim.advance(Duration::from_secs(6));
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::Open { .. } | Action::Close { .. })),
        "{actions:?}"
    );
    assert_eq!(sim.pool.user(r).unwrap().conn, Some(cb));
}

#[test]
fn b07_a_returning_server_serves_during_its_hold_down_when_no_other_server_is_up() {
    let mut sim = Sim::with(config());
    let (a, b) = (sim.server(A), sim.server(B));
    for s in [a, b] {
        sim.ok(Event::ServerDown { server: s });
    }
    sim.drain();
    // B comes back and holds down; A stays down. Better a server that has
    // just returned than none: B is used at once, without waiting out the hold.
    sim.ok(Event::ServerUp { server: b });
    assert!(matches!(sim.pool.health(b), Some(Health::Returning { .. })));
    let r = sim.search();
    let open = sim.drain();
    assert!(
        matches!(open[..], [Action::Open { server, .. }] if server == b),
        "{open:?}"
    );
    let conn = Sim::open_of(&open);
    assert_eq!(sim.opened(conn), vec![grant(r, conn)]);
}

#[test]
fn b07_between_two_preferred_servers_only_the_better_one_is_failed_back_to() {
    // A before B in the preferred list, C not preferred.
    let mut sim = Sim::with(
        Config::builder()
            .preferred_server(A)
            .preferred_server(B)
            .server(C)
            .failback_hold_down(Duration::from_secs(10))
            .probe_backoff(Duration::from_secs(1), Duration::from_secs(8)),
    );
    let (a, b) = (sim.server(A), sim.server(B));
    // A down: readers run on B, the next preferred.
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let r = sim.search();
    let on_b = Sim::open_of(&sim.drain());
    assert_eq!(sim.pool.conn(on_b).unwrap().server, b);
    sim.opened(on_b);
    // A returns: after its hold-down, B's readers fail back to A.
    sim.ok(Event::ServerUp { server: a });
    assert_eq!(sim.advance_probed(Duration::from_secs(9)), vec![]);
    let actions = sim.advance_probed(Duration::from_secs(1));
    assert!(
        matches!(actions[..], [Action::Open { server, purpose: Purpose::Read, .. }] if server == a),
        "B's readers fail back to A, the better preferred server: {actions:?}"
    );
    let on_a = Sim::open_of(&actions);
    sim.opened(on_a);
    assert!(
        matches!(
            sim.pool.conn(on_b).unwrap().phase,
            ldapmux_core::ConnPhase::Draining
        ),
        "the connection to B drains once A's is open"
    );
    sim.release(r);
    // Now on A. B falls and comes back: A is better, nothing moves to B.
    sim.ok(Event::ServerDown { server: b });
    sim.drain();
    sim.ok(Event::ServerUp { server: b });
    sim.drain();
    let actions = sim.advance_probed(Duration::from_secs(10));
    assert!(
        !actions
            .iter()
            .any(|x| matches!(x, Action::Open { .. } | Action::Close { .. })),
        "a worse preferred server never takes readers from a better one: {actions:?}"
    );
    assert_eq!(
        sim.pool.conn(on_a).unwrap().phase,
        ldapmux_core::ConnPhase::Open
    );
}
