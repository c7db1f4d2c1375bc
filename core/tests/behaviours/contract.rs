//! The core's contract: stale ids, spurious timers, deadlines.

use super::*;

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
