//! One acquire + release pair against a pool holding 1 000 open connections
//! with ~10, ~1 000 or ~100 000 users attached (issue: the 100 000 case must
//! cost ≤ 1.5× the 10 case; one pair ≤ 200 ns).
//!
//! The pool: one server, one credential, a cap of 100 users per connection
//! (the default 64 cannot seat 100 000 users on 1 000 connections), 1 000
//! connections filled by 100 000 coalesced users, then released down to the
//! population measured. The measured pair is granted at once (least-loaded
//! open connection), so it exercises matching, the index and the counters.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ldapmux_core::{Action, Config, CredKey, Event, Instant, Pool, Request, UserKind};

const CONNS: usize = 1_000;
const CAP: u32 = 100;

fn pool_with(attached: usize) -> Pool {
    let config = Config::builder()
        .server("ldap://127.0.0.1:3891")
        .max_users_per_conn(CAP)
        .max_conns_per_server(CONNS as u32)
        .read_idle_timeout(None)
        .default_acquire_timeout(Duration::from_secs(3600))
        .build()
        .expect("valid config");
    let now = Instant::ZERO;
    let mut pool = Pool::new(config, 1, now).expect("pool");
    let req = Request::new(UserKind::Search, CredKey::ANONYMOUS);
    let users: Vec<_> = (0..CONNS * CAP as usize)
        .map(|_| pool.handle_acquire(now, req.clone()))
        .collect();
    let mut opens = Vec::new();
    while let Some(a) = pool.poll_action() {
        if let Action::Open { conn, .. } = a {
            opens.push(conn);
        }
    }
    assert_eq!(opens.len(), CONNS);
    for conn in opens {
        pool.handle(now, Event::ConnOpened { conn })
            .expect("opened");
    }
    while pool.poll_action().is_some() {}
    // Release round-robin across connections so the survivors stay spread.
    let keep = attached.min(users.len() - 1);
    let mut order: Vec<_> = users.iter().enumerate().collect();
    order.sort_by_key(|(i, _)| (i % CAP as usize, i / CAP as usize));
    for &(_, &u) in order.iter().rev().take(users.len() - keep) {
        pool.handle(now, Event::Release { user: u })
            .expect("release");
    }
    while pool.poll_action().is_some() {}
    assert_eq!(pool.status().conns, CONNS);
    assert_eq!(pool.status().users, keep);
    pool.check_invariants().expect("invariants");
    pool
}

fn acquire_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("acquire_release");
    for attached in [10usize, 1_000, 100_000] {
        let mut pool = pool_with(attached);
        let req = Request::new(UserKind::Search, CredKey::ANONYMOUS);
        let now = Instant::from_secs(1);
        group.bench_with_input(BenchmarkId::from_parameter(attached), &attached, |b, _| {
            b.iter(|| {
                let user = pool.handle_acquire(now, black_box(req.clone()));
                let granted = pool.poll_action();
                debug_assert!(matches!(granted, Some(Action::Grant { .. })));
                pool.handle(now, Event::Release { user }).expect("release");
                black_box(granted)
            })
        });
        pool.check_invariants()
            .expect("invariants after the benchmark");
    }
    group.finish();
}

criterion_group!(benches, acquire_release);
criterion_main!(benches);
