//! Applying a step to the real pool and checking every rule after it.

use super::*;

pub(crate) struct PoolTest;

impl StateMachineTest for PoolTest {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(_: &Expected) -> Sut {
        CASES_RUN.fetch_add(1, Ordering::Relaxed);
        Sut {
            pool: Pool::new(config(2, Sharing::Always), 11, Instant::ZERO).expect("pool"),
            now: Instant::ZERO,
            told: BTreeMap::new(),
            refused: Vec::new(),
            retire_at: BTreeMap::new(),
            noticed: std::collections::BTreeSet::new(),
            seen: Seen {
                generations: 1,
                ..Seen::default()
            },
            evidence: evidence::Evidence::default(),
        }
    }

    fn apply(mut sut: Sut, expected: &Expected, step: Step) -> Sut {
        let now = sut.now;
        let io = |kind| ConnError::new(kind, "proptest");
        let before = evidence::Before::of(&sut.pool);
        let verdict = match step {
            Step::Probe(s, ok) => sut
                .pool
                .server_id(SERVERS[usize::from(s)])
                .map(|id| (id, ok)),
            _ => None,
        };
        match step {
            Step::Acquire {
                kind,
                cred,
                server,
                private,
                referral,
                pages,
                attempt,
            } => {
                let kind = [
                    UserKind::Search,
                    UserKind::Getent,
                    UserKind::Write,
                    UserKind::Auth,
                ][usize::from(kind)];
                let mut req = Request::new(kind, CredKey(u64::from(cred))).attempt(attempt);
                if let Some(s) = server {
                    req = req.server(if s == 3 {
                        "ldap://referral-target"
                    } else {
                        SERVERS[usize::from(s)]
                    });
                }
                if private {
                    req = req.private();
                }
                if referral {
                    req = req.referral();
                }
                if pages {
                    req = req.paging();
                }
                let was_shut = sut.pool.is_shut_down();
                let before: Vec<ConnInfo> = sut.pool.conns().collect();
                let user = sut.pool.handle_acquire(now, req);
                if let Err(e) = ldapmux_core::check_spread_step(&before, &sut.pool, user, now) {
                    panic!("{e}");
                }
                sut.seen.acquires += 1;
                if was_shut || attempt == 0 || attempt > MAX_TRIES {
                    // Refused at once, with an id no table holds.
                    sut.refused.push(user);
                    let first = sut.pool.poll_action();
                    if let Some(a) = &first {
                        sut.seen.note(a);
                    }
                    let want = if was_shut {
                        Error::ShutDown
                    } else {
                        Error::BadAttempt {
                            attempt,
                            max: MAX_TRIES,
                        }
                    };
                    assert_eq!(
                        first,
                        Some(Action::Fail {
                            user,
                            error: want,
                            retry: false
                        })
                    );
                    assert_eq!(sut.pool.user(user), None);
                } else {
                    sut.told.insert(
                        user,
                        Told {
                            kind: Some(kind),
                            private,
                            pages,
                            attempt,
                            ..Told::default()
                        },
                    );
                }
            }
            Step::Opened(i) => {
                if let Some(c) = Sut::pick(&sut.connecting(), i) {
                    let info = sut.pool.conn(c).expect("opening");
                    sut.evidence.answered(info.server);
                    sut.evidence.accepted(info.server, info.cred);
                    sut.pool
                        .handle(now, Event::ConnOpened { conn: c })
                        .expect("opening connection");
                    sut.seen.opened += 1;
                }
            }
            Step::OpenFailed(i, creds) => {
                if let Some(c) = Sut::pick(&sut.connecting(), i) {
                    let kind = if creds {
                        let info = sut.pool.conn(c).expect("opening");
                        sut.evidence.refused(now, info.server, info.cred);
                        ConnErrorKind::InvalidCredentials
                    } else {
                        ConnErrorKind::Refused
                    };
                    sut.pool
                        .handle(
                            now,
                            Event::ConnOpenFailed {
                                conn: c,
                                error: io(kind),
                            },
                        )
                        .expect("opening connection");
                    sut.seen.open_failures_reported += 1;
                }
            }
            Step::Expires(i, secs) => {
                let open: Vec<_> = sut
                    .pool
                    .conns()
                    .filter(|c| c.phase == ConnPhase::Open)
                    .map(|c| c.id)
                    .collect();
                if let Some(c) = Sut::pick(&open, i) {
                    let at = now + Duration::from_secs(u64::from(secs));
                    // The margin, at most a tenth of the time left.
                    let margin = sut
                        .pool
                        .config()
                        .map_or(Duration::ZERO, |c| c.credential_expiry_margin)
                        .min(Duration::from_secs(u64::from(secs)) / 10);
                    sut.pool
                        .handle(now, Event::ConnExpires { conn: c, at })
                        .expect("live connection");
                    sut.retire_at.insert(c, at.saturating_sub(margin));
                }
            }
            Step::Notice(i) => {
                // A notice comes on an established connection (one being
                // opened reports its failure instead).
                let conns: Vec<_> = sut
                    .pool
                    .conns()
                    .filter(|c| c.phase != ConnPhase::Connecting)
                    .map(|c| c.id)
                    .collect();
                if let Some(c) = Sut::pick(&conns, i) {
                    sut.pool
                        .handle(now, Event::ConnClosing { conn: c })
                        .expect("live connection");
                    sut.noticed.insert(c);
                }
            }
            Step::Lost(i) => {
                let conns: Vec<_> = sut.pool.conns().map(|c| c.id).collect();
                if let Some(c) = Sut::pick(&conns, i) {
                    let was = sut.pool.conn(c).expect("live").phase;
                    sut.seen.lost +=
                        u64::from(matches!(was, ConnPhase::Open | ConnPhase::Draining));
                    sut.pool
                        .handle(
                            now,
                            Event::ConnLost {
                                conn: c,
                                error: io(ConnErrorKind::Io),
                            },
                        )
                        .expect("live connection");
                }
            }
            Step::Release(i) => {
                if let Some(u) = Sut::pick(&sut.live_users(Some(UserPhase::Connected)), i) {
                    if let Some(server) = sut
                        .pool
                        .user(u)
                        .and_then(|u| u.conn)
                        .and_then(|c| sut.pool.conn(c))
                        .map(|c| c.server)
                    {
                        sut.evidence.answered(server);
                    }
                    sut.pool
                        .handle(now, Event::Release { user: u })
                        .expect("connected user");
                    sut.seen.releases += 1;
                    sut.told.get_mut(&u).expect("known").ended = true;
                }
            }
            Step::Retire(i) => {
                if let Some(u) = Sut::pick(&sut.live_users(Some(UserPhase::Connected)), i) {
                    let conn = sut.pool.user(u).and_then(|u| u.conn).expect("connected");
                    let was = sut.pool.conn(conn).expect("live");
                    sut.pool
                        .handle(now, Event::Retire { user: u })
                        .expect("connected user");
                    sut.seen.releases += 1;
                    sut.told.get_mut(&u).expect("known").ended = true;
                    // It takes no new user: closed now if it was the last
                    // one (at once for a bind or private connection).
                    let after = sut.pool.conn(conn);
                    if was.users == 1 || !was.purpose.is_shared() {
                        assert!(after.is_none(), "{conn} retired but kept: {after:?}");
                    } else if let Some(after) = after {
                        assert!(
                            !matches!(after.phase, ConnPhase::Open),
                            "{conn} retired but still takes users: {after:?}"
                        );
                    }
                }
            }
            Step::Broken(i, sent) => {
                if let Some(u) = Sut::pick(&sut.live_users(Some(UserPhase::Connected)), i) {
                    sut.told.get_mut(&u).expect("known").sent = sent;
                    sut.seen.lost += u64::from(sut.first_to_find_dead(u));
                    sut.pool
                        .handle(
                            now,
                            Event::ConnBroken {
                                user: u,
                                error: io(ConnErrorKind::Io),
                                request_sent: sent,
                            },
                        )
                        .expect("connected user");
                    sut.drain(expected);
                    assert!(
                        sut.told[&u].ended,
                        "ConnBroken must be answered by a Fail for {u}"
                    );
                }
            }
            Step::TimedOut(i) => {
                if let Some(u) = Sut::pick(&sut.live_users(Some(UserPhase::Connected)), i) {
                    sut.told.get_mut(&u).expect("known").sent = true;
                    sut.seen.lost += u64::from(sut.first_to_find_dead(u));
                    sut.pool
                        .handle(
                            now,
                            Event::ConnBroken {
                                user: u,
                                error: io(ConnErrorKind::Timeout),
                                request_sent: true,
                            },
                        )
                        .expect("connected user");
                    sut.drain(expected);
                    assert!(
                        sut.told[&u].ended,
                        "ConnBroken must be answered by a Fail for {u}"
                    );
                }
            }
            Step::Cancel(i) => {
                if let Some(u) = Sut::pick(&sut.live_users(None), i) {
                    sut.pool
                        .handle(now, Event::Cancel { user: u })
                        .expect("live user");
                    sut.seen.cancels += 1;
                    sut.told.get_mut(&u).expect("known").ended = true;
                    assert_eq!(sut.pool.user(u), None);
                }
            }
            Step::GetNext(i) => {
                if let Some(u) = Sut::pick(&sut.live_users(Some(UserPhase::Connected)), i) {
                    let r = sut.pool.handle(now, Event::GetNext { user: u });
                    let getent = sut.told[&u].kind == Some(UserKind::Getent);
                    assert_eq!(r.is_ok(), getent, "GetNext is for getent users only: {r:?}");
                }
            }
            Step::ServerDown(s) => {
                let id = sut
                    .pool
                    .server_id(SERVERS[usize::from(s)])
                    .expect("configured");
                sut.pool
                    .handle(now, Event::ServerDown { server: id })
                    .expect("known server");
            }
            Step::ServerUp(s) => {
                let id = sut
                    .pool
                    .server_id(SERVERS[usize::from(s)])
                    .expect("configured");
                sut.pool
                    .handle(now, Event::ServerUp { server: id })
                    .expect("known server");
            }
            Step::Probe(s, ok) => {
                let id = sut
                    .pool
                    .server_id(SERVERS[usize::from(s)])
                    .expect("configured");
                sut.pool
                    .handle(now, Event::ProbeResult { server: id, ok })
                    .expect("known server");
            }
            Step::Reload {
                valid,
                cap,
                sharing_on_request,
                binds,
            } => {
                let sharing = if sharing_on_request {
                    Sharing::OnRequest
                } else {
                    Sharing::Always
                };
                let mut c = config(u32::from(cap), sharing);
                c.bind_conns_per_server = u32::from(binds);
                if !valid {
                    c.max_users_per_conn = 0;
                }
                let before = sut.pool.current_generation();
                let r = sut.pool.handle(now, Event::Reload(Box::new(c)));
                match (valid, sut.pool.is_shut_down()) {
                    (_, true) => assert!(r.is_err()),
                    (false, false) => {
                        assert!(matches!(r, Err(Error::Config(_))));
                        assert_eq!(sut.pool.current_generation(), before);
                    }
                    (true, false) => {
                        r.expect("valid reload");
                        sut.seen.generations += 1;
                        assert_ne!(sut.pool.current_generation(), before);
                    }
                }
            }
            Step::ReloadServers { mask, same } => sut.reload_servers(now, mask, same),
            Step::Shutdown => sut.pool.handle(now, Event::Shutdown).expect("shutdown"),
            Step::Forked => {
                sut.seen.generations += u64::from(!sut.pool.is_shut_down());
                sut.evidence.forked();
                sut.pool.handle(now, Event::Forked).expect("fork")
            }
            Step::NoMultiplex => sut
                .pool
                .handle(now, Event::MultiplexUnsupported)
                .expect("no multiplexing"),
            Step::NextTimer => {
                if let Some(t) = sut.pool.poll_timeout() {
                    sut.now = sut.now.max(t.at);
                    sut.pool.handle_timeout(sut.now);
                }
            }
            Step::Advance(ms) => {
                sut.now = sut.now + Duration::from_millis(u64::from(ms));
                sut.pool.handle_timeout(sut.now);
            }
        }
        sut.drain(expected);
        if expected.shut_down {
            assert!(sut.pool.is_shut_down());
            assert_eq!(sut.pool.users().count(), 0);
            assert_eq!(sut.pool.conns().count(), 0);
        }
        for &s in &expected.down {
            let id = sut
                .pool
                .server_id(SERVERS[usize::from(s)])
                .expect("configured");
            if !expected.shut_down {
                assert!(
                    matches!(sut.pool.health(id), Some(ldapmux_core::Health::Down { .. })),
                    "server {s} reported down"
                );
            }
        }
        // Generations: at most one current, and detached ones only while
        // something still holds them.
        assert!(
            sut.pool.generations().count() as u32 <= expected.reloads + 2 || expected.shut_down
        );
        // Health transitions and draining connections, for the counters.
        for server in sut.pool.status().servers {
            let i = server.id.index();
            let down = matches!(server.health, ldapmux_core::Health::Down { .. });
            match (sut.seen.was_down[i], down) {
                (false, true) => sut.seen.marked_down[i] += 1,
                (true, false) => sut.seen.marked_up[i] += 1,
                _ => {}
            }
            sut.seen.was_down[i] = down;
        }
        let draining: Vec<_> = sut
            .pool
            .conns()
            .filter(|c| c.phase == ConnPhase::Draining)
            .map(|c| c.id)
            .collect();
        sut.seen.seen_draining.extend(draining);
        sut.evidence
            .after_step(&before, &sut.pool, sut.now, verdict);
        sut
    }

    fn check_invariants(sut: &Sut, _: &Expected) {
        if let Err(e) = sut.pool.check_invariants() {
            panic!("{e}\n{:#?}", sut.pool);
        }
        // The counters count exactly what happened: every request, grant, fail,
        // offered retry and close, each once (closes include forgotten ones).
        let c = sut.pool.status().counters;
        let counted = Seen {
            acquires: c.acquires,
            grants: c.grants,
            fails: c.fails,
            retries_offered: c.retries_offered,
            closes: c.closes,
            opens_asked: sut.seen.opens_asked,
            opened: c.opens,
            releases: c.releases,
            cancels: c.cancels,
            open_failures_reported: sut.seen.open_failures_reported,
            lost: c.lost,
            timeouts: c.timeouts,
            generations: c.generations,
            marked_down: std::array::from_fn(|i| c.servers.get(i).map_or(0, |s| s.marked_down)),
            marked_up: std::array::from_fn(|i| c.servers.get(i).map_or(0, |s| s.marked_up)),
            // Every Action::Probe: probes of down or returning servers,
            // and liveness checks of up ones.
            probes: std::array::from_fn(|i| c.servers.get(i).map_or(0, |s| s.probes + s.checks)),
            down_notices: std::array::from_fn(|i| c.servers.get(i).map_or(0, |s| s.marked_down)),
            seen_draining: sut.seen.seen_draining.clone(),
            was_down: sut.seen.was_down,
        };
        assert_eq!(counted, sut.seen, "counters disagree with the actions");
        assert!(
            c.drains >= sut.seen.seen_draining.len() as u64,
            "a connection was seen draining but not counted"
        );
        assert!(
            c.open_failures >= sut.seen.open_failures_reported,
            "a reported open failure was not counted"
        );
        assert!(
            c.opens + c.open_failures <= sut.seen.opens_asked,
            "more connections opened or failed than were asked for"
        );
        // Per-server counters add up to the pool's.
        let sum =
            |f: fn(&ldapmux_core::ServerCounters) -> u64| c.servers.iter().map(f).sum::<u64>();
        assert_eq!(sum(|s| s.opens), c.opens, "per-server opens");
        assert_eq!(
            sum(|s| s.open_failures),
            c.open_failures,
            "per-server open failures"
        );
        assert_eq!(sum(|s| s.grants), c.grants, "per-server grants");
    }

    fn teardown(mut sut: Sut, expected: Expected) {
        // Drive everything to an end: open what is opening, release who is
        // connected, let every deadline pass. Bounded.
        for _ in 0..100 {
            for c in sut.connecting() {
                // An earlier report in this round may have closed it.
                if sut
                    .pool
                    .conn(c)
                    .is_some_and(|c| c.phase == ConnPhase::Connecting)
                {
                    // The ledger hears of the answer as in `Step::Opened`: a
                    // credential a sibling open was refused is accepted now.
                    let info = sut.pool.conn(c).expect("opening");
                    sut.evidence.answered(info.server);
                    sut.evidence.accepted(info.server, info.cred);
                    sut.pool
                        .handle(sut.now, Event::ConnOpened { conn: c })
                        .expect("opening");
                    sut.drain(&expected);
                }
            }
            for u in sut.live_users(Some(UserPhase::Connected)) {
                if sut.pool.user(u).is_some() {
                    sut.pool
                        .handle(sut.now, Event::Release { user: u })
                        .expect("connected");
                    sut.told.get_mut(&u).expect("known").ended = true;
                    sut.drain(&expected);
                }
            }
            if let Some(t) = sut.pool.poll_timeout() {
                sut.now = sut.now.max(t.at);
                sut.pool.handle_timeout(sut.now);
            }
            sut.drain(&expected);
            sut.pool.check_invariants().expect("invariants at teardown");
            if sut.pool.users().next().is_none() {
                break;
            }
        }
        assert_eq!(sut.pool.users().count(), 0, "users left after teardown");
        for (u, t) in &sut.told {
            assert!(t.ended, "{u} never ended: {t:?}");
            assert!(
                t.wakeups == 1 || (t.wakeups == 0 && !t.granted),
                "{u}: {t:?}"
            );
        }
        if !sut.pool.is_shut_down() {
            assert_eq!(
                sut.pool.generations().count(),
                1,
                "a detached generation outlived its users"
            );
        }
    }
}
