//! Behaviours 10–12: enumerations, reloads (generations) and shutdown.

use super::*;

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
