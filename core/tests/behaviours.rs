//! One story per behaviour of the brief (`b01_…` to `b15_…`), on virtual time,
//! asserting the exact actions the core emits.

mod common;

use std::time::Duration;

use common::*;
use ldapmux_core::{
    Action, CloseReason, Config, ConfigError, ConnError, ConnErrorKind, CredKey, Error, Event,
    GenPhase, Health, Instant, MAX_TRIES, Purpose, Request, Sharing, TimerReason, UserKind,
};

fn req(kind: UserKind) -> Request {
    Request::new(kind, CredKey::ANONYMOUS)
}

// ---------------------------------------------------------------- 1. sharing

#[test]
fn b01_searches_and_getents_share_a_read_connection_writes_get_their_own() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    let s1 = sim.search();
    let open = sim.drain();
    let read = Sim::open_of(&open);
    assert_eq!(
        open,
        vec![Action::Open {
            conn: read,
            server: a,
            cred: CredKey::ANONYMOUS,
            purpose: Purpose::Read,
            generation: sim.pool.current_generation().unwrap()
        }]
    );
    assert_eq!(sim.opened(read), vec![grant(s1, read)]);

    // A getent user shares the search user's open connection at once.
    let g1 = sim.acquire(req(UserKind::Getent));
    assert_eq!(sim.drain(), vec![grant(g1, read)]);

    // A writer never shares a read connection: it opens a write connection.
    let w1 = sim.acquire(req(UserKind::Write));
    let open = sim.drain();
    let write = Sim::open_of(&open);
    assert!(matches!(
        open[0],
        Action::Open {
            purpose: Purpose::Write,
            ..
        }
    ));
    assert_eq!(sim.opened(write), vec![grant(w1, write)]);
    // ... and a second writer shares that one.
    let w2 = sim.acquire(req(UserKind::Write));
    assert_eq!(sim.drain(), vec![grant(w2, write)]);
    assert_eq!(sim.pool.conn(read).unwrap().users, 2);
    assert_eq!(sim.pool.conn(write).unwrap().users, 2);
}

#[test]
fn b01_auth_users_never_share_and_their_connection_closes_when_done() {
    // The seed's rule, kept when bind connections are off; with them on (the
    // default), see `bind_connections.rs`.
    let mut sim = Sim::with(config().bind_conns_per_server(0));
    let u1 = sim.acquire(req(UserKind::Auth));
    let c1 = Sim::open_of(&sim.drain());
    let u2 = sim.acquire(req(UserKind::Auth));
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c1, c2, "a second AUTH user opens its own connection");
    assert_eq!(sim.opened(c1), vec![grant(u1, c1)]);
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
    assert_eq!(sim.pool.conn(c1).unwrap().purpose, Purpose::Private);
    // A search never lands on a private connection either.
    let s = sim.search();
    assert!(matches!(
        sim.drain()[..],
        [Action::Open {
            purpose: Purpose::Read,
            ..
        }]
    ));
    let _ = s;
    assert_eq!(
        sim.release(u1),
        vec![Action::Close {
            conn: c1,
            reason: CloseReason::Done
        }]
    );
}

#[test]
fn b01_a_private_request_gets_a_new_connection_even_when_one_is_free() {
    let mut sim = Sim::with(config());
    let s = sim.search();
    let shared = Sim::open_of(&sim.drain());
    sim.opened(shared);
    sim.release(s);
    let p = sim.acquire(req(UserKind::Search).private());
    let private = Sim::open_of(&sim.drain());
    assert_ne!(private, shared);
    assert_eq!(sim.opened(private), vec![grant(p, private)]);
    // Cancelled before it opened, a private connection is not kept.
    let q = sim.acquire(req(UserKind::Search).private());
    let c = Sim::open_of(&sim.drain());
    sim.ok(Event::Cancel { user: q });
    assert_eq!(
        sim.drain(),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::Done
        }]
    );
}

#[test]
fn b01_with_sharing_on_request_only_keep_users_share() {
    let mut sim = Sim::with(config().sharing(Sharing::OnRequest));
    let k1 = sim.acquire(req(UserKind::Search).keep());
    let shared = Sim::open_of(&sim.drain());
    sim.opened(shared);
    let k2 = sim.acquire(req(UserKind::Search).keep());
    assert_eq!(sim.drain(), vec![grant(k2, shared)]);
    let plain = sim.acquire(req(UserKind::Search));
    let own = Sim::open_of(&sim.drain());
    assert_ne!(own, shared);
    assert_eq!(sim.opened(own), vec![grant(plain, own)]);
    assert_eq!(
        sim.release(plain),
        vec![Action::Close {
            conn: own,
            reason: CloseReason::Done
        }]
    );
    let _ = k1;
}

// ---------------------------------------------------------------- 2. matching

#[test]
fn b02_users_with_different_credentials_never_share() {
    let mut sim = Sim::with(config());
    let alice = sim.acquire(Request::new(UserKind::Search, CredKey(1)));
    let ca = Sim::open_of(&sim.drain());
    sim.opened(ca);
    let bob = sim.acquire(Request::new(UserKind::Search, CredKey(2)));
    let open = sim.drain();
    let cb = Sim::open_of(&open);
    assert!(matches!(
        open[0],
        Action::Open {
            cred: CredKey(2),
            ..
        }
    ));
    assert_eq!(sim.opened(cb), vec![grant(bob, cb)]);
    assert_eq!(sim.pool.conn(ca).unwrap().cred, CredKey(1));
    assert_eq!(sim.pool.user(alice).unwrap().conn, Some(ca));
}

#[test]
fn b02_a_user_naming_a_server_only_gets_that_server() {
    let mut sim = Sim::with(config());
    let s = sim.search();
    let ca = Sim::open_of(&sim.drain());
    sim.opened(ca);
    sim.release(s);
    // A connection to A is open and idle, but this user names B.
    let named = sim.acquire(req(UserKind::Search).server(B));
    let open = sim.drain();
    assert!(matches!(open[..], [Action::Open { server, .. }] if server == sim.server(B)));
    let cb = Sim::open_of(&open);
    assert_eq!(sim.opened(cb), vec![grant(named, cb)]);
    // A server outside the configuration is added to the table and used.
    let other = sim.acquire(req(UserKind::Search).server(C));
    let open = sim.drain();
    assert!(
        matches!(open[..], [Action::Open { server, .. }] if sim.pool.server_addr(server) == Some(C))
    );
    let _ = other;
}

#[test]
fn b02_referral_users_share_only_with_referral_users() {
    let mut sim = Sim::with(config());
    let r1 = sim.acquire(req(UserKind::Search).referral());
    let cr = Sim::open_of(&sim.drain());
    sim.opened(cr);
    let plain = sim.search();
    let cp = Sim::open_of(&sim.drain());
    assert_ne!(cr, cp);
    let r2 = sim.acquire(req(UserKind::Search).referral());
    assert_eq!(sim.drain(), vec![grant(r2, cr)]);
    let _ = (r1, plain);
}

// ---------------------------------------------------------------- 3. coalescing

#[test]
fn b03_users_arriving_while_a_connection_opens_wait_for_it_and_all_get_it() {
    let mut sim = Sim::with(config());
    let u1 = sim.search();
    let c = Sim::open_of(&sim.drain());
    let u2 = sim.search();
    let u3 = sim.search();
    assert_eq!(
        sim.drain(),
        vec![],
        "no second socket: the later users wait"
    );
    assert_eq!(sim.pool.conn(c).unwrap().waiters, vec![u1, u2, u3]);
    assert_eq!(
        sim.opened(c),
        vec![grant(u1, c), grant(u2, c), grant(u3, c)]
    );
}

#[test]
fn b03_when_the_connection_fails_every_waiter_gets_its_error() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    let u1 = sim.search();
    let c = Sim::open_of(&sim.drain());
    let u2 = sim.search();
    sim.ok(Event::ConnOpenFailed {
        conn: c,
        error: refused(),
    });
    let err = Error::ConnectFailed {
        server: a,
        cause: refused(),
    };
    let actions = sim.drain();
    assert_eq!(
        actions[..2],
        [
            Action::Fail {
                user: u1,
                error: err.clone(),
                retry: true
            },
            Action::Fail {
                user: u2,
                error: err,
                retry: true
            },
        ]
    );
    // The refused server is now known down; the next user goes to B.
    assert!(matches!(sim.pool.health(a), Some(Health::Down { .. })));
    let u3 = sim.search();
    assert!(matches!(sim.drain()[..], [Action::Open { server, .. }] if server == sim.server(B)));
    let _ = u3;
}

#[test]
fn b03_a_rejected_bind_fails_waiters_without_blaming_the_server() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    let u = sim.acquire(Request::new(UserKind::Search, CredKey(9)));
    let c = Sim::open_of(&sim.drain());
    let error = ConnError::new(
        ConnErrorKind::InvalidCredentials,
        "invalid credentials (49)",
    );
    sim.ok(Event::ConnOpenFailed { conn: c, error });
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: u,
            error: Error::InvalidCredentials { server: a },
            retry: false
        }]
    );
    assert_eq!(sim.pool.health(a), Some(Health::Up));
}

// ---------------------------------------------------------------- 4. user cap

#[test]
fn b04_default_cap_stays_under_slapd_conn_max_pending() {
    let sim = Sim::with(config());
    // slapd drops an anonymous connection with more than 100 requests
    // outstanding (conn_max_pending); 1 000 when bound.
    assert!(
        sim.pool.user_cap() < 100,
        "default cap {} too high",
        sim.pool.user_cap()
    );
    assert_eq!(
        sim.pool.user_cap(),
        ldapmux_core::DEFAULT_MAX_USERS_PER_CONN
    );
}

#[test]
fn b04_a_full_connection_makes_the_next_user_open_another() {
    let mut sim = Sim::with(config().max_users_per_conn(2));
    let u1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    let u2 = sim.search();
    // Waiters on an opening connection are capped the same way.
    let u3 = sim.search();
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c1, c2);
    assert_eq!(sim.opened(c1), vec![grant(u1, c1), grant(u2, c1)]);
    assert_eq!(sim.opened(c2), vec![grant(u3, c2)]);
    // Least loaded first: the next user goes to c2.
    let u4 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u4, c2)]);
}

#[test]
fn b04_beyond_the_server_limit_users_queue_fifo_until_their_deadline() {
    let mut sim = Sim::with(
        config()
            .max_users_per_conn(1)
            .max_conns_per_server(1)
            .default_acquire_timeout(Duration::from_secs(5)),
    );
    let u1 = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    let u2 = sim.search();
    let u3 = sim.search();
    assert_eq!(sim.drain(), vec![], "A is at its limit: u2 and u3 queue");
    assert_eq!(sim.pool.status().queued, 2);
    // u1 leaves: the slot goes to u2, first in line, not to u3.
    assert_eq!(sim.release(u1), vec![grant(u2, c)]);
    // u3 is still queued when its deadline passes.
    let t = sim.pool.poll_timeout().unwrap();
    assert_eq!(t.reason, TimerReason::UserDeadline);
    assert_eq!(t.at, Instant::from_secs(5));
    assert_eq!(
        sim.advance(Duration::from_secs(5)),
        vec![Action::Fail {
            user: u3,
            error: Error::AcquireTimeout,
            retry: false
        }]
    );
    assert_eq!(sim.pool.status().queued, 0);
}

#[test]
fn b04_at_the_server_limit_an_idle_connection_of_another_kind_makes_room() {
    // Found by the soak: a server at its limit whose connections all sat idle
    // left a password check and a new credential waiting until their deadline.
    // (Password checks on private connections here; a bind connection
    // making room is in `bind_connections.rs`.)
    let mut sim = Sim::with(config().max_conns_per_server(2).bind_conns_per_server(0));
    let r = sim.search();
    let read = Sim::open_of(&sim.drain());
    sim.opened(read);
    sim.release(r);
    sim.advance(Duration::from_secs(1));
    let w = sim.acquire(req(UserKind::Write));
    let write = Sim::open_of(&sim.drain());
    sim.opened(write);
    sim.release(w);
    sim.advance(Duration::from_secs(1));

    // A password check: the connection idle longest (the reader's) makes room.
    let auth = sim.acquire(Request::new(UserKind::Auth, CredKey(9)));
    let actions = sim.drain();
    assert!(
        matches!(
            actions[..],
            [
                Action::Close { conn, reason: CloseReason::MakeRoom },
                Action::Open { purpose: Purpose::Private, cred: CredKey(9), .. },
            ] if conn == read
        ),
        "{actions:?}"
    );
    let private = Sim::open_of(&actions);
    // A new credential while the check runs: its private connection will free
    // a slot by itself, so the idle writer is kept and the user waits.
    let five = sim.acquire(Request::new(UserKind::Search, CredKey(5)));
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.opened(private), vec![grant(auth, private)]);
    let actions = sim.release(auth);
    assert!(
        matches!(
            actions[..],
            [
                Action::Close { conn, reason: CloseReason::Done },
                Action::Open { cred: CredKey(5), .. },
            ] if conn == private
        ),
        "{actions:?}"
    );
    let c5 = Sim::open_of(&actions);
    assert_eq!(sim.opened(c5), vec![grant(five, c5)]);
    // Nothing will free by itself now: another credential takes the idle
    // writer's slot.
    let six = sim.acquire(Request::new(UserKind::Search, CredKey(6)));
    let actions = sim.drain();
    assert!(
        matches!(
            actions[..],
            [
                Action::Close { conn, reason: CloseReason::MakeRoom },
                Action::Open { cred: CredKey(6), .. },
            ] if conn == write
        ),
        "{actions:?}"
    );
    // A busy connection is never closed to make room: a seventh waits.
    let c6 = Sim::open_of(&actions);
    assert_eq!(sim.opened(c6), vec![grant(six, c6)]);
    let _seven = sim.acquire(Request::new(UserKind::Search, CredKey(7)));
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.pool.status().conns, 2);
}

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

// ---------------------------------------------------------------- 10. enumeration

#[test]
fn b10_an_enumeration_keeps_its_connection_and_sees_the_saved_error() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    let g = sim.acquire(req(UserKind::Getent));
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::GetNext { user: g });
    assert_eq!(sim.drain(), vec![Action::Resume { user: g, conn: c }]);
    // Another user sees the connection die.
    let s = sim.search();
    assert_eq!(sim.drain(), vec![grant(s, c)]);
    sim.ok(Event::ConnBroken {
        user: s,
        error: reset(),
        request_sent: true,
    });
    sim.drain();
    // The enumeration's next entry returns the saved error, with no retry:
    // it already returned entries.
    sim.ok(Event::GetNext { user: g });
    assert_eq!(
        sim.drain(),
        vec![
            Action::Close {
                conn: c,
                reason: CloseReason::Broken
            },
            Action::Fail {
                user: g,
                error: Error::ConnectionLost {
                    server: a,
                    cause: reset()
                },
                retry: false
            },
        ]
    );
}

#[test]
fn b10_an_enumeration_is_retried_only_until_it_has_returned_an_entry() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    // Broken before its first entry: nothing was returned, so a retry is safe.
    let fresh = sim.acquire(req(UserKind::Getent));
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::ConnBroken {
        user: fresh,
        error: reset(),
        request_sent: true,
    });
    let actions = sim.drain();
    assert!(
        actions.contains(&Action::Fail {
            user: fresh,
            error: Error::ConnectionLost {
                server: a,
                cause: reset()
            },
            retry: true
        }),
        "{actions:?}"
    );
    // Broken after an entry was returned: a retry would return it twice.
    let started = sim.acquire(req(UserKind::Getent));
    let c2 = Sim::open_of(&sim.drain());
    sim.opened(c2);
    sim.ok(Event::GetNext { user: started });
    sim.drain();
    sim.ok(Event::ConnBroken {
        user: started,
        error: reset(),
        request_sent: true,
    });
    let actions = sim.drain();
    assert!(
        actions.contains(&Action::Fail {
            user: started,
            error: Error::ConnectionLost {
                server: a,
                cause: reset()
            },
            retry: false
        }),
        "{actions:?}"
    );
}

// ---------------------------------------------------------------- 11. reload

#[test]
fn b11_reload_detaches_the_generation_which_is_freed_when_its_last_user_leaves() {
    let mut sim = Sim::with(config());
    let g0 = sim.pool.current_generation().unwrap();
    let old_user = sim.search();
    let c0 = Sim::open_of(&sim.drain());
    sim.opened(c0);
    let waiter = sim.acquire(Request::new(UserKind::Search, CredKey(2)));
    let opening = Sim::open_of(&sim.drain());

    sim.ok(Event::Reload(Box::new(
        config().max_users_per_conn(8).build().unwrap(),
    )));
    let g1 = sim.pool.current_generation().unwrap();
    assert_ne!(g0, g1);
    let actions = sim.drain();
    // The opening connection of the old generation is abandoned and its
    // waiter is placed again on the new generation.
    let reopened = match actions[..] {
        [
            Action::Close {
                conn,
                reason: CloseReason::Reload,
            },
            Action::Open {
                conn: new,
                generation,
                ..
            },
        ] if conn == opening && generation == g1 => new,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(sim.opened(reopened), vec![grant(waiter, reopened)]);
    // The running user finishes on the old generation.
    let gens: Vec<_> = sim.pool.generations().collect();
    assert_eq!(gens.len(), 2);
    let old = gens.iter().find(|g| g.id == g0).unwrap();
    assert_eq!(
        (old.phase, old.refs, old.users, old.conns),
        (GenPhase::Detached, 2, 1, 1)
    );
    // New users go to the new generation.
    let fresh = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    assert_eq!(sim.pool.conn(c1).unwrap().generation, g1);
    // The last user leaves: its connection closes and the generation is freed.
    assert_eq!(
        sim.release(old_user),
        vec![Action::Close {
            conn: c0,
            reason: CloseReason::Reload
        }]
    );
    assert!(sim.pool.generations().all(|g| g.id == g1));
    assert_eq!(sim.pool.config().unwrap().max_users_per_conn, 8);
    let _ = fresh;
}

#[test]
fn b11_an_invalid_reload_is_refused_and_changes_nothing() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    sim.drain();
    let before = sim.pool.clone();
    let mut bad = config().build().unwrap();
    bad.servers.clear();
    assert_eq!(
        sim.event(Event::Reload(Box::new(bad))),
        Err(Error::Config(ConfigError::NoServers))
    );
    assert_eq!(sim.pool, before);
    assert_eq!(sim.drain(), vec![]);
    let _ = u;
}

#[test]
fn b11_a_new_server_list_keeps_the_connections_to_servers_still_listed() {
    // A and B are listed; a search runs on A, a write connection is opening
    // to A, a pinned read runs on B.
    let mut sim = Sim::with(config());
    let (a, b) = (sim.server(A), sim.server(B));
    let g0 = sim.pool.current_generation().unwrap();
    let on_a = sim.search();
    let ca = Sim::open_of(&sim.drain());
    sim.opened(ca);
    let writer = sim.acquire(req(UserKind::Write));
    let wa = Sim::open_of(&sim.drain());
    let on_b = sim.acquire(req(UserKind::Search).server(B));
    let cb = Sim::open_of(&sim.drain());
    sim.opened(cb);

    // Discovery answers A and C: B is gone, nothing else changed.
    sim.ok(Event::ReloadServers(Box::new(
        Config::builder()
            .preferred_server(A)
            .server(C)
            .failback_hold_down(Duration::from_secs(10))
            .probe_backoff(Duration::from_secs(1), Duration::from_secs(8))
            .build()
            .unwrap(),
    )));
    let g1 = sim.pool.current_generation().unwrap();
    assert_ne!(g0, g1);
    // Nothing to A is closed or reopened; B's connection drains.
    assert_eq!(sim.drain(), vec![]);
    for conn in [ca, wa] {
        let info = sim.pool.conn(conn).unwrap();
        assert_eq!((info.generation, info.drain_reason), (g1, None), "{info:?}");
    }
    let info_b = sim.pool.conn(cb).unwrap();
    assert_eq!(
        (info_b.generation, info_b.drain_reason),
        (g0, Some(CloseReason::Reload))
    );
    // The old generation is held by B's connection and its user only.
    let old = sim.pool.generations().find(|g| g.id == g0).unwrap();
    assert_eq!(
        (old.phase, old.refs, old.users, old.conns),
        (GenPhase::Detached, 2, 1, 1)
    );
    // The writer still gets the connection it was waiting for.
    assert_eq!(sim.opened(wa), vec![grant(writer, wa)]);
    // A new search shares the kept connection to A.
    let next = sim.search();
    assert_eq!(sim.drain(), vec![grant(next, ca)]);
    // Users on the kept connection leave: it stays open.
    assert_eq!(sim.release(on_a), vec![]);
    assert!(sim.pool.conn(ca).is_some());
    // B's user leaves: its connection closes and the old generation is freed.
    assert_eq!(
        sim.release(on_b),
        vec![Action::Close {
            conn: cb,
            reason: CloseReason::Reload
        }]
    );
    assert!(sim.pool.generations().all(|g| g.id == g1));
    let _ = (a, b);
}

#[test]
fn b11_a_new_server_list_that_ranks_another_server_first_fails_back_to_it() {
    // A preferred, then B; a search runs on A.
    let mut sim = Sim::with(config());
    let b = sim.server(B);
    let user = sim.search();
    let ca = Sim::open_of(&sim.drain());
    sim.opened(ca);
    // Discovery now ranks B first: A's connection is kept, and B is warmed
    // up (make before break) as in any fail-back.
    sim.ok(Event::ReloadServers(Box::new(
        Config::builder()
            .preferred_server(B)
            .preferred_server(A)
            .failback_hold_down(Duration::from_secs(10))
            .probe_backoff(Duration::from_secs(1), Duration::from_secs(8))
            .build()
            .unwrap(),
    )));
    let g1 = sim.pool.current_generation().unwrap();
    assert_eq!(sim.pool.conn(ca).unwrap().generation, g1);
    let actions = sim.drain();
    let warm = match actions[..] {
        [
            Action::Open {
                conn,
                server,
                generation,
                purpose: Purpose::Read,
                ..
            },
        ] if server == b && generation == g1 => conn,
        ref other => panic!("{other:?}"),
    };
    // Once B is open, A's connection drains; its user finishes there.
    assert_eq!(sim.opened(warm), vec![]);
    assert_eq!(
        sim.pool.conn(ca).unwrap().drain_reason,
        Some(CloseReason::FailBack)
    );
    let next = sim.search();
    assert_eq!(sim.drain(), vec![grant(next, warm)]);
    assert_eq!(
        sim.release(user),
        vec![Action::Close {
            conn: ca,
            reason: CloseReason::FailBack
        }]
    );
}

#[test]
fn b11_a_new_server_list_that_changes_anything_else_drains_like_any_reload() {
    let mut sim = Sim::with(config());
    let g0 = sim.pool.current_generation().unwrap();
    let user = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    // Same servers, but a different cap: the kept connection would break the
    // new configuration's promise, so it drains.
    sim.ok(Event::ReloadServers(Box::new(
        config().max_users_per_conn(8).build().unwrap(),
    )));
    let info = sim.pool.conn(c).unwrap();
    assert_eq!(
        (info.generation, info.drain_reason),
        (g0, Some(CloseReason::Reload))
    );
    assert_eq!(
        sim.release(user),
        vec![Action::Close {
            conn: c,
            reason: CloseReason::Reload
        }]
    );
    assert!(sim.pool.generations().all(|g| g.id != g0));
}

#[test]
fn b11_a_referral_connection_is_not_kept_by_a_new_server_list() {
    let mut sim = Sim::with(config());
    let g0 = sim.pool.current_generation().unwrap();
    let user = sim.acquire(req(UserKind::Search).server(A).referral());
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.ok(Event::ReloadServers(Box::new(config().build().unwrap())));
    let info = sim.pool.conn(c).unwrap();
    assert_eq!(
        (info.generation, info.drain_reason),
        (g0, Some(CloseReason::Reload))
    );
    let _ = user;
}

// ---------------------------------------------------------------- 12. shutdown

#[test]
fn b12_shutdown_fails_everyone_closes_everything_and_refuses_later_requests() {
    let mut sim = Sim::with(config());
    let running = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    let waiting = sim.acquire(req(UserKind::Write));
    let w = Sim::open_of(&sim.drain());
    sim.ok(Event::Shutdown);
    assert_eq!(
        sim.drain(),
        vec![
            Action::Fail {
                user: running,
                error: Error::ShutDown,
                retry: false
            },
            Action::Fail {
                user: waiting,
                error: Error::ShutDown,
                retry: false
            },
            Action::Close {
                conn: c,
                reason: CloseReason::Shutdown
            },
            Action::Close {
                conn: w,
                reason: CloseReason::Shutdown
            },
        ]
    );
    assert!(sim.pool.is_shut_down());
    assert_eq!(sim.pool.generations().count(), 0);
    let later = sim.search();
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: later,
            error: Error::ShutDown,
            retry: false
        }]
    );
    // Reports about the old objects are stale, typed, and harmless.
    assert_eq!(
        sim.event(Event::Release { user: running }),
        Err(Error::UnknownUser(running))
    );
    assert_eq!(
        sim.event(Event::ConnOpened { conn: w }),
        Err(Error::UnknownConn(w))
    );
    assert_eq!(sim.event(Event::Shutdown), Ok(()));
    assert_eq!(sim.drain(), vec![]);
    assert_eq!(sim.pool.poll_timeout(), None);
}

// ---------------------------------------------------------------- 13. status feed

#[test]
fn b13_a_down_server_is_probed_with_exponential_backoff_and_jitter() {
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    sim.ok(Event::ServerDown { server: a });
    assert_eq!(sim.drain(), vec![Action::ServerMarkedDown { server: a }]);
    let mut probes = Vec::new();
    for _ in 0..6 {
        let t = sim.pool.poll_timeout().unwrap();
        assert_eq!(t.reason, TimerReason::Probe);
        sim.now = t.at;
        sim.pool.handle_timeout(sim.now);
        assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
        probes.push(sim.now);
        sim.ok(Event::ProbeResult {
            server: a,
            ok: false,
        });
    }
    let gaps: Vec<u64> = probes
        .windows(2)
        .map(|w| (w[1].as_nanos() - w[0].as_nanos()) / 1_000_000)
        .collect();
    // Backoff doubles from 1 s up to the 8 s cap, each gap jittered by up to +50%
    // (and never beyond the cap).
    for (gap, base) in gaps.iter().zip([2_000u64, 4_000, 8_000, 8_000, 8_000]) {
        assert!(
            *gap >= base && *gap <= (base + base / 2).min(8_000),
            "gap {gap} ms for base {base}"
        );
    }
    // The probe answers: A is back, in its hold-down.
    sim.ok(Event::ProbeResult {
        server: a,
        ok: true,
    });
    assert!(matches!(sim.pool.health(a), Some(Health::Returning { .. })));
}

/// Down, probed, answers the probe, goes down again before its hold-down ends:
/// returns the delay until its next probe.
fn flap(sim: &mut Sim, a: ldapmux_core::ServerId) -> Duration {
    let t = sim.pool.poll_timeout().unwrap();
    assert_eq!(t.reason, TimerReason::Probe);
    sim.now = t.at;
    sim.pool.handle_timeout(sim.now);
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
    sim.ok(Event::ProbeResult {
        server: a,
        ok: true,
    });
    assert!(matches!(sim.pool.health(a), Some(Health::Returning { .. })));
    // The first real connection fails: down again, one second into the hold.
    sim.advance(Duration::from_secs(1));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let t = sim.pool.poll_timeout().unwrap();
    assert_eq!(t.reason, TimerReason::Probe);
    Duration::from_nanos(t.at.as_nanos() - sim.now.as_nanos())
}

#[test]
fn b13_a_server_that_flaps_during_its_hold_down_keeps_backing_off() {
    // It answers probes but fails every real connection (say, binds time out):
    // were each fall a fresh start, it would be hit every second forever.
    let mut sim = Sim::with(config());
    let a = sim.server(A);
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    for base in [2u64, 4, 8, 8] {
        let delay = flap(&mut sim, a);
        let base = Duration::from_secs(base);
        assert!(
            delay >= base && delay <= (base + base / 2).min(Duration::from_secs(8)),
            "next probe after {delay:?}, expected {base:?} (+50% jitter, 8 s cap)"
        );
    }
    // Once it stays up through a whole hold-down it is trusted again, and a
    // later fall starts the backoff afresh.
    let t = sim.pool.poll_timeout().unwrap();
    sim.now = t.at;
    sim.pool.handle_timeout(sim.now);
    sim.drain();
    sim.ok(Event::ProbeResult {
        server: a,
        ok: true,
    });
    sim.advance_probed(Duration::from_secs(10));
    assert_eq!(sim.pool.health(a), Some(Health::Up));
    sim.ok(Event::ServerDown { server: a });
    sim.drain();
    let t = sim.pool.poll_timeout().unwrap();
    let delay = Duration::from_nanos(t.at.as_nanos() - sim.now.as_nanos());
    assert!(
        delay >= Duration::from_secs(1) && delay <= Duration::from_millis(1500),
        "a fresh fall backs off from the minimum, not {delay:?}"
    );
}

#[test]
fn b13_the_same_seed_gives_the_same_probe_schedule() {
    let schedule = |seed| {
        let mut pool =
            ldapmux_core::Pool::new(config().build().unwrap(), seed, Instant::ZERO).unwrap();
        let a = pool.server_id(A).unwrap();
        pool.handle(Instant::ZERO, Event::ServerDown { server: a })
            .unwrap();
        let mut out = Vec::new();
        for _ in 0..5 {
            let t = pool.poll_timeout().unwrap().at;
            pool.handle_timeout(t);
            while pool.poll_action().is_some() {}
            pool.handle(
                t,
                Event::ProbeResult {
                    server: a,
                    ok: false,
                },
            )
            .unwrap();
            out.push(t);
        }
        out
    };
    assert_eq!(schedule(1), schedule(1));
    assert_ne!(schedule(1), schedule(2), "jitter depends on the seed");
}

#[test]
fn b13_an_unanswered_probe_counts_as_failed() {
    let mut sim = Sim::with(config().connect_timeout(Duration::from_secs(2)));
    let a = sim.server(A);
    sim.ok(Event::ServerDown { server: a });
    assert_eq!(sim.drain(), vec![Action::ServerMarkedDown { server: a }]);
    let t = sim.pool.poll_timeout().unwrap().at;
    sim.now = t;
    sim.pool.handle_timeout(t);
    assert_eq!(sim.drain(), vec![Action::Probe { server: a }]);
    assert_eq!(
        sim.pool.poll_timeout().unwrap().reason,
        TimerReason::ProbeOverdue
    );
    sim.advance(Duration::from_secs(2));
    let Some(Health::Down {
        probing: false,
        next_probe,
        ..
    }) = sim.pool.health(a)
    else {
        panic!()
    };
    assert!(next_probe > sim.now);
}

// ---------------------------------------------------------------- 14. no multiplexing

#[test]
fn b14_without_multiplexing_every_connection_takes_one_user() {
    let mut sim = Sim::with(config());
    sim.ok(Event::MultiplexUnsupported);
    assert_eq!(sim.pool.user_cap(), 1);
    let u1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    let u2 = sim.search();
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(
        c1, c2,
        "no waiting on a connection that can take only its opener"
    );
    assert_eq!(sim.opened(c1), vec![grant(u1, c1)]);
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
}

#[test]
fn b14_waiters_beyond_the_new_cap_are_placed_again_when_the_connection_opens() {
    let mut sim = Sim::with(config());
    let u1 = sim.search();
    let c1 = Sim::open_of(&sim.drain());
    let u2 = sim.search();
    sim.ok(Event::MultiplexUnsupported);
    let actions = sim.opened(c1);
    let c2 = match actions[..] {
        [Action::Grant { user, conn }, Action::Open { conn: c2, .. }]
            if user == u1 && conn == c1 =>
        {
            c2
        }
        ref other => panic!("{other:?}"),
    };
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
}

// ---------------------------------------------------------------- 15. fork

#[test]
fn b15_after_fork_every_connection_is_abandoned_never_closed() {
    let mut sim = Sim::with(config());
    let g0 = sim.pool.current_generation().unwrap();
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    let w = sim.acquire(req(UserKind::Write));
    let cw = Sim::open_of(&sim.drain());
    sim.ok(Event::Forked);
    assert_eq!(
        sim.drain(),
        vec![
            Action::Fail {
                user: u,
                error: Error::Forked,
                retry: true
            },
            Action::Fail {
                user: w,
                error: Error::Forked,
                retry: true
            },
            Action::Abandon { conn: c },
            Action::Abandon { conn: cw },
        ]
    );
    let g1 = sim.pool.current_generation().unwrap();
    assert_ne!(g0, g1);
    // The child opens its own connections.
    let u2 = sim.search();
    let c2 = Sim::open_of(&sim.drain());
    assert_ne!(c2, c);
    assert_eq!(sim.opened(c2), vec![grant(u2, c2)]);
    assert_eq!(
        sim.event(Event::Release { user: u }),
        Err(Error::UnknownUser(u))
    );
}

// ---------------------------------------------------------------- contract

#[test]
fn stale_ids_are_typed_errors_and_change_nothing() {
    let mut sim = Sim::with(config());
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    // u's slot is reused by the next user; the old id still names nothing.
    let u2 = sim.search();
    sim.drain();
    assert_eq!(u2.slot(), u.slot());
    let before = sim.pool.clone();
    assert_eq!(
        sim.event(Event::Release { user: u }),
        Err(Error::UnknownUser(u))
    );
    assert_eq!(
        sim.event(Event::Cancel { user: u }),
        Err(Error::UnknownUser(u))
    );
    assert!(matches!(
        sim.event(Event::ConnOpened { conn: c }),
        Err(Error::UnexpectedEvent {
            event: "ConnOpened",
            ..
        })
    ));
    assert!(matches!(
        sim.event(Event::GetNext { user: u2 }),
        Err(Error::UnexpectedEvent { .. })
    ));
    assert_eq!(sim.pool, before);
    assert_eq!(sim.drain(), vec![]);
}

#[test]
fn a_spurious_timeout_is_a_no_op() {
    let mut sim = Sim::with(config());
    let u = sim.acquire(req(UserKind::Write));
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    sim.release(u);
    let before = sim.pool.clone();
    for t in [Instant::ZERO, Instant::from_secs(1), Instant::from_secs(59)] {
        sim.pool.handle_timeout(t);
        assert_eq!(sim.drain(), vec![]);
        assert_eq!(sim.pool, before);
    }
}

#[test]
fn a_request_whose_deadline_passed_fails_at_once() {
    let mut sim = Sim::with(config());
    sim.now = Instant::from_secs(10);
    let u = sim.acquire(req(UserKind::Search).deadline(Instant::from_secs(5)));
    assert_eq!(
        sim.drain(),
        vec![Action::Fail {
            user: u,
            error: Error::AcquireTimeout,
            retry: false
        }]
    );
}

#[test]
fn a_connection_that_does_not_open_in_time_fails_its_waiters() {
    // Racing off: with it, B's rival would take the waiters (see
    // `a_silent_preferred_server_costs_the_race_delay_not_the_connect_timeout`).
    let mut sim = Sim::with(
        config()
            .connect_timeout(Duration::from_secs(3))
            .connect_race_delay(None),
    );
    let a = sim.server(A);
    let u = sim.search();
    let c = Sim::open_of(&sim.drain());
    let actions = sim.advance(Duration::from_secs(3));
    let timeout = ConnError::new(ConnErrorKind::Timeout, "connect timeout");
    assert_eq!(
        actions,
        vec![
            Action::Close {
                conn: c,
                reason: CloseReason::ConnectTimeout
            },
            Action::Fail {
                user: u,
                error: Error::ConnectFailed {
                    server: a,
                    cause: timeout
                },
                retry: true
            },
            Action::ServerMarkedDown { server: a },
        ]
    );
}

#[test]
fn status_reports_servers_credentials_and_generations() {
    let mut sim = Sim::with(config());
    let u1 = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    let u2 = sim.acquire(Request::new(UserKind::Search, CredKey(7)));
    let _ = (u1, u2);
    let s = sim.pool.status();
    assert_eq!((s.users, s.conns, s.queued), (2, 2, 0));
    let a = &s.servers[sim.server(A).index()];
    assert_eq!((a.conns, a.users, a.health), (2, 1, Health::Up));
    assert_eq!(a.counters.grants, 1);
    let creds: Vec<_> = s.creds.iter().map(|c| (c.cred, c.conns, c.users)).collect();
    assert_eq!(creds, vec![(CredKey::ANONYMOUS, 1, 1), (CredKey(7), 1, 0)]);
    assert_eq!(s.generations.len(), 1);
    assert_eq!(
        (
            s.generations[0].refs,
            s.generations[0].users,
            s.generations[0].conns
        ),
        (5, 2, 2)
    );
    assert_eq!(s.counters.grants, 1);
}

#[test]
fn error_blame_is_split_by_who_is_at_fault() {
    use ldapmux_core::Blame;
    let s = ldapmux_core::ServerId::clone(&Sim::with(config()).server(A));
    assert_eq!(Error::NoServerAvailable.blame(), Blame::Server);
    assert_eq!(Error::ServerDown { server: s }.blame(), Blame::Server);
    assert_eq!(
        Error::Config(ConfigError::NoServers).blame(),
        Blame::Configuration
    );
    assert_eq!(
        Error::InvalidCredentials { server: s }.blame(),
        Blame::Configuration
    );
    assert_eq!(
        Error::BadAttempt { attempt: 0, max: 3 }.blame(),
        Blame::Caller
    );
    assert_eq!(Error::ShutDown.blame(), Blame::Lifecycle);
    assert_eq!(Error::Forked.blame(), Blame::Lifecycle);
}

// ---------------------------------------------------------------- counters

#[test]
fn a_dead_connection_is_counted_once_however_many_of_its_users_report_it() {
    let mut sim = Sim::with(config());
    let u1 = sim.search();
    let c = Sim::open_of(&sim.drain());
    sim.opened(c);
    let u2 = sim.search();
    assert_eq!(sim.drain(), vec![grant(u2, c)], "both share it");
    for user in [u1, u2] {
        sim.ok(Event::ConnBroken {
            user,
            error: reset(),
            request_sent: true,
        });
        sim.drain();
    }
    assert_eq!(sim.pool.status().counters.lost, 1);
}
