//! Behaviours 5, 6, 8 and 9: idle and aged connections, dead connections, servers down, retries.

use super::*;

#[test]
fn b05_an_idle_write_connection_is_closed_after_60_seconds() {
    let mut sim = Sim::with(config());
    let w = sim.acquire(req(UserKind::Write));
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.advance(Duration::from_secs(30));
    sim.release(w);
    // Idle for 59 s: still there.
    assert_eq!(sim.advance(Duration::from_secs(59)), vec![]);
    assert!(sim.pool.conn(c).is_some());
    // A second write within the window reuses it and resets the idle clock.
    let w2 = sim.acquire(req(UserKind::Write));
    assert_eq!(sim.drain(), vec![grant(w2, c)]);
    sim.release(w2);
    assert_eq!(sim.advance(Duration::from_secs(59)), vec![]);
    assert_eq!(
        sim.advance(Duration::from_secs(1)),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::Idle
        }]
    );
}

#[test]
fn b05_read_connections_have_an_optional_idle_timeout_and_maximum_age() {
    let mut sim = Sim::with(
        config()
            .read_idle_timeout(Some(Duration::from_secs(10)))
            .max_conn_age(Some(Duration::from_secs(100))),
    );
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    // Busy connections are never idle-closed...
    assert_eq!(sim.advance(Duration::from_secs(50)), vec![]);
    // ... but one older than the maximum age drains: no new users, closed
    // when the last one leaves.
    assert_eq!(sim.advance(Duration::from_secs(50)), vec![]);
    let u2 = sim.search();
    let c2 = Sim::open_of(&sim.drain());
    assert_eq!(
        sim.release(u),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::MaxAge
        }]
    );
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
    sim.release(u2);
    assert_eq!(
        sim.advance(Duration::from_secs(10)),
        vec![Action::Close {
            conn: c2,
            reason: CloseReason::Idle
        }]
    );
}

// ---------------------------------------------------------------- 6. failure

#[test]
fn b06_a_dead_connection_sends_its_users_to_retry_and_closes_when_the_last_leaves() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    let u1 = sim.search();
    let c = Sim::open_of(&sim.drain());
    let u2 = sim.search();
    let u3 = sim.acquire(req(UserKind::Write));
    let w = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.opened(w);
    sim.ok(Event::ConnBroken {
        user: u1,
        error: reset(),
        request_sent: true,
    });
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: u1,
            error: Error::ConnectionLost {
                server: a,
                cause: reset()
            },
            retry: true
        }]
    );
    // The connection takes no new user: the next search opens another.
    let u4 = sim.search();
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c2, c);
    // u2 finishes its operation after all (it was already answered); the
    // connection is closed as it leaves.
    assert_eq!(
        sim.release(u2),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::Broken
        }]
    );
    assert_eq!(
        sim.pool.conn(w).unwrap().users,
        1,
        "the write connection is untouched"
    );
    let _ = (u3, u4);
}

#[test]
fn b06_a_connection_lost_with_no_user_is_closed_at_once() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    sim.ok(Event::ConnLost {
        conn: c,
        error: reset(),
    });
    assert_eq!(
        sim.drain(),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::Broken
        }]
    );
    assert_eq!(sim.pool.status().conns, 0);
}

// ---------------------------------------------------------------- 8. server down

#[test]
fn b08_server_down_breaks_its_connections_and_sends_waiters_elsewhere() {
    let mut sim = Sim::with(config());
    let (a, b) = (sim.server(A), sim.server(B));
    let busy = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    sim.opened(c1);
    let idle_user = sim.acquire(Request::new(UserKind::Search, CredKey(3)));
    let c2 = Sim::open_of(&sim.drain());
    sim.opened(c2);
    sim.release(idle_user);
    let waiter = sim.acquire(Request::new(UserKind::Search, CredKey(4)));
    let c3 = Sim::open_of(&sim.drain());

    sim.ok(Event::ServerDown { server: a });
    let actions = sim.drain();
    let to_b = actions
        .iter()
        .find_map(|x| match x {
            Action::Open { conn, server, .. } if *server == b => Some(*conn),
            _ => None,
        })
        .expect("the waiter's connection is re-opened on B");
    assert_eq!(
        actions,
        vec![
            Action::ServerMarkedDown { server: a },
            Action::Close {
                conn: c2,
                reason: CloseReason::ServerDown
            },
            Action::Close {
                conn: c3,
                reason: CloseReason::ServerDown
            },
            Action::Open {
                conn: to_b,
                server: b,
                cred: CredKey(4),
                purpose: Purpose::Read,
                generation: sim.pool.current_generation().unwrap()
            },
        ]
    );
    assert_eq!(sim.opened(to_b), vec![grant(waiter, to_b)]);
    // The busy connection is broken: its user is told to retry when it reports.
    assert!(matches!(
        sim.pool.conn(c1).unwrap().phase,
        ldapmux_core::ConnPhase::Broken(_)
    ));
    sim.ok(Event::ConnBroken {
        user: busy,
        error: reset(),
        request_sent: true,
    });
    let actions = sim.drain();
    assert!(
        matches!(actions[..], [Action::Close { conn, reason: CloseReason::Broken }, Action::Fail { retry: true, .. }] if conn == c1)
    );
    // A user that names the down server is refused at once.
    let named = sim.acquire(req(UserKind::Search).server(A));
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: named,
            error: Error::ServerDown { server: a },
            retry: false
        }]
    );
}

#[test]
fn b08_with_every_server_down_requests_fail_fast() {
    let mut sim = Sim::with(config());
    for s in [A, B] {
        let server = sim.server(s);
        sim.ok(Event::ServerDown { server });
        assert_eq!(sim.drain(), vec![Action::ServerMarkedDown { server }]);
    }
    let u = sim.search();
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: u,
            error: Error::NoServerAvailable,
            retry: false
        }]
    );
}

// ---------------------------------------------------------------- 9. retry

#[test]
fn b09_a_read_is_offered_at_most_three_tries() {
    let mut sim = Sim::with(config());
    let mut request = req(UserKind::Search);
    for attempt in 1..=MAX_TRIES {
        assert_eq!(request.attempt, attempt);
        let u = sim.acquire(request.clone());
        let c = match sim.drain()[..] {
            [Action::Open { conn, .. }] => conn,
            [] => sim.pool.user(u).unwrap().conn.unwrap(),
            ref other => panic!("{other:?}"),
        };
        sim.opened(c);
        sim.ok(Event::ConnBroken {
            user: u,
            error: reset(),
            request_sent: true,
        });
        let retry = sim
            .drain()
            .iter()
            .find_map(|a| match a {
                Action::Fail { user, retry, .. } if *user == u => Some(*retry),
                _ => None,
            })
            .unwrap();
        assert_eq!(retry, attempt < MAX_TRIES, "try {attempt}");
        request = request.retry();
    }
    // A fourth try is refused as misuse.
    let u = sim.acquire(request);
    assert!(matches!(
        sim.drain()[..],
        [Action::Fail { user, error: Error::BadAttempt { attempt: 4, max: 3 }, retry: false }] if user == u
    ));
}

#[test]
fn b09_a_write_is_never_retried_once_its_request_may_have_been_sent() {
    let mut sim = Sim::with(config());
    let w1 = sim.acquire(req(UserKind::Write));
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    let w2 = sim.acquire(req(UserKind::Write));
    sim.drain();
    sim.ok(Event::ConnBroken {
        user: w1,
        error: reset(),
        request_sent: true,
    });
    assert!(matches!(sim.drain()[..], [Action::Fail { user, retry: false, .. }] if user == w1));
    // The request never left: a retry is safe.
    sim.ok(Event::ConnBroken {
        user: w2,
        error: reset(),
        request_sent: false,
    });
    assert!(
        matches!(sim.drain()[..], [Action::Close { .. }, Action::Fail { user, retry: true, .. }] if user == w2)
    );
}
