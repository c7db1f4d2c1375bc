//! Behaviours 13–15: the status feed (probes), no multiplexing, fork.

use super::*;

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
