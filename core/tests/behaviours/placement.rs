//! Behaviours 1–4: sharing, matching, coalescing and the per-connection cap.

use super::*;

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
