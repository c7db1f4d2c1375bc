//! The core's own invariant check (`Pool::check_invariants`, run after every
//! input by the proptest and the fuzz target) bites: each planted bug that
//! corrupts the pool's bookkeeping is reported, and a healthy pool passes.

use ldapmux_core::{Action, Config, CredKey, Event, Fault, Instant, Pool, Request, UserKind};

/// A pool with a reader on a shared connection, an AUTH user on a private
/// one, and a writer still waiting for its connection to open.
fn busy_pool() -> Pool {
    let config = Config::builder().server("ldap://a").build().unwrap();
    let mut pool = Pool::new(config, 1, Instant::ZERO).unwrap();
    let now = Instant::ZERO;
    pool.handle_acquire(now, Request::new(UserKind::Search, CredKey::ANONYMOUS));
    pool.handle_acquire(now, Request::new(UserKind::Auth, CredKey(7)));
    let opens: Vec<_> = std::iter::from_fn(|| pool.poll_action())
        .filter_map(|a| match a {
            Action::Open { conn, .. } => Some(conn),
            _ => None,
        })
        .collect();
    assert_eq!(opens.len(), 2, "one shared, one private connection");
    for conn in opens {
        pool.handle(now, Event::ConnOpened { conn }).unwrap();
    }
    pool.handle_acquire(now, Request::new(UserKind::Write, CredKey::ANONYMOUS));
    while pool.poll_action().is_some() {}
    pool.check_invariants().expect("a healthy pool passes");
    pool
}

#[test]
fn every_planted_bookkeeping_bug_fails_the_invariant_check() {
    for fault in [
        Fault::SkipGenerationDecrement,
        Fault::RebindConnection,
        Fault::FreeConnectionUnderUsers,
        Fault::SharePrivateConnection,
        Fault::StrandWaiter,
    ] {
        let mut pool = busy_pool();
        assert!(pool.inject_fault(fault), "{fault:?}: nothing to corrupt");
        assert!(
            pool.check_invariants().is_err(),
            "{fault:?} went unnoticed by check_invariants"
        );
    }
}
