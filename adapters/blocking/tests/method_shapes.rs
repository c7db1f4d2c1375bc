//! The blocking pool has the async pool's method shapes (the same receivers,
//! arguments and results, blocking instead of `async`), and the methods
//! whose shape changed work without a server: `status` is a `Status`,
//! `reload` goes through `&self` from several threads at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "dns-srv")]
use ldapmux_blocking::SrvStatus;
use ldapmux_blocking::ldap3::exop::Exop;
use ldapmux_blocking::status::{ConnId, Instant};
use ldapmux_blocking::{
    AuthOutcome, BuildError, ConnGuard, ConnInfo, Credential, Entries, Error, LeaseKind, Mod,
    Password, PasswordChange, Pool, PoolBuilder, Scope, SearchEntry, SearchOptions, SearchResults,
    ServerId, Status,
};

/// Nothing listens there: the pool starts (no connection opens until an
/// operation needs one) and an operation fails fast.
const NOWHERE: &str = "ldap://127.0.0.1:1";

fn builder(url: &str) -> PoolBuilder {
    Pool::builder()
        .server(url)
        .connect_timeout(Duration::from_millis(300))
        .operation_timeout(Duration::from_millis(800))
        .jitter_seed(7)
}

/// The signatures, pinned: a change of receiver, argument or result is a
/// compile error here. Each line matches the `ldapmux::Pool` /
/// `ldapmux::ConnGuard` method of the same name, but for `async`.
#[test]
#[allow(clippy::type_complexity)] // the full signatures are the point
fn the_signatures_are_the_async_ones_without_async() {
    let _: fn() -> PoolBuilder = Pool::builder;
    let _: fn(&Pool, String) -> Pool = Pool::with_server;
    let _: fn(&Pool, Credential) -> Pool = Pool::with_credential;
    let _: fn(&Pool, Duration) -> Pool = Pool::with_timeout;
    let _: fn(&Pool) -> Status = Pool::status;
    let _: fn(&Pool) -> Vec<ConnInfo> = Pool::connections;
    let _: fn(&Pool) -> Instant = Pool::now;
    #[cfg(feature = "metrics")]
    let _: fn(&Pool) = Pool::publish_metrics;
    let _: fn(&Pool) -> usize = Pool::open_sockets;
    let _: fn(&Pool, PoolBuilder) -> Result<(), BuildError> = Pool::reload;
    let _: fn(&Pool, PoolBuilder) -> Result<(), BuildError> = Pool::reload_keeping_servers;
    let _: fn(&Pool) -> usize = Pool::shutdown;
    let _: fn(&Pool, ServerId) -> Option<String> = Pool::server_url;
    #[cfg(feature = "dns-srv")]
    let _: fn(&Pool) -> Option<SrvStatus> = Pool::dns_srv_status;
    let _: fn(&Pool, &str, Scope, &str, &[&str]) -> Result<Vec<SearchEntry>, Error> = Pool::search;
    let _: fn(&Pool, &str, Scope, &str, &[&str]) -> Result<Entries, Error> = Pool::streaming_search;
    let _: fn(&Pool, &str, Scope, &str, &[&str], &SearchOptions) -> Result<SearchResults, Error> =
        Pool::search_with;
    let _: fn(&Pool, &str, Scope, &str, &[&str], &SearchOptions) -> Result<Entries, Error> =
        Pool::streaming_search_with;
    let _: fn(&Pool, &str, &str, Vec<u8>) -> Result<bool, Error> = Pool::compare;
    let _: fn(&Pool, &str, Vec<(String, HashSet<String>)>) -> Result<(), Error> = Pool::add;
    let _: fn(&Pool, &str, Vec<Mod<String>>) -> Result<(), Error> = Pool::modify;
    let _: fn(&Pool, &str) -> Result<(), Error> = Pool::delete;
    let _: fn(&Pool, &str, &str, bool, Option<&str>) -> Result<(), Error> = Pool::modify_dn;
    let _: fn(&Pool, Exop) -> Result<Exop, Error> = Pool::extended;
    let _: fn(&Pool) -> Result<String, Error> = Pool::whoami;
    let _: fn(&Pool, &str, &Password) -> Result<AuthOutcome, Error> = Pool::authenticate;
    let _: fn(&Pool, &str, &Password, &Password) -> Result<PasswordChange, Error> =
        Pool::change_password;
    let _: fn(&Pool, LeaseKind) -> Result<ConnGuard, Error> = Pool::lease;

    let _: fn(&ConnGuard) -> Option<ConnId> = ConnGuard::conn;
    let _: fn(&ConnGuard) -> ServerId = ConnGuard::server;
    let _: fn(&ConnGuard) -> String = ConnGuard::server_url;
    let _: fn(&mut ConnGuard, &str, Scope, &str, &[&str]) -> Result<Vec<SearchEntry>, Error> =
        ConnGuard::search;
    let _: fn(
        &mut ConnGuard,
        &str,
        Scope,
        &str,
        &[&str],
        &SearchOptions,
    ) -> Result<SearchResults, Error> = ConnGuard::search_with;
    let _: fn(&mut ConnGuard, &str, &str, Vec<u8>) -> Result<bool, Error> = ConnGuard::compare;
    let _: fn(&mut ConnGuard, &str, Vec<(String, HashSet<String>)>) -> Result<(), Error> =
        ConnGuard::add;
    let _: fn(&mut ConnGuard, &str, Vec<Mod<String>>) -> Result<(), Error> = ConnGuard::modify;
    let _: fn(&mut ConnGuard, &str) -> Result<(), Error> = ConnGuard::delete;
    let _: fn(&mut ConnGuard, &str, &str, bool, Option<&str>) -> Result<(), Error> =
        ConnGuard::modify_dn;
    let _: fn(&mut ConnGuard, Exop) -> Result<Exop, Error> = ConnGuard::extended;
    let _: fn(&mut ConnGuard) -> Result<String, Error> = ConnGuard::whoami;

    fn shareable<T: Send + Sync + Clone + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<Pool>();
    sendable::<ConnGuard>();
    sendable::<Entries>();
}

#[test]
fn status_is_a_status_of_a_live_pool_without_a_result() {
    let pool = Pool::new(builder(NOWHERE)).unwrap();
    let status: Status = pool.status();
    assert!(!status.shut_down);
    assert!(status.current.is_some());
    assert_eq!(status.conns, 0, "no connection opens before an operation");
    assert_eq!(status.servers.len(), 1);
    let server = status.servers[0].id;
    assert_eq!(pool.server_url(server).as_deref(), Some(NOWHERE));
    assert!(pool.connections().is_empty());
    assert_eq!(pool.open_sockets(), 0);
    #[cfg(feature = "dns-srv")]
    assert_eq!(pool.dns_srv_status(), None, "a pool with fixed servers");
    let (a, b) = (pool.now(), pool.now());
    assert!(a <= b, "the pool's clock does not go back");
    #[cfg(feature = "metrics")]
    pool.publish_metrics();
}

#[test]
fn two_threads_reload_one_shared_pool_through_shared_references() {
    let pool = Arc::new(Pool::new(builder(NOWHERE)).unwrap());
    let first = pool.status().current.expect("a current generation");
    let rounds = 20;
    let threads: Vec<_> = (0..2u16)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                let url = format!("ldap://127.0.0.1:{}", 2 + t);
                for i in 0..rounds {
                    let b = builder(&url).max_users_per_connection(2 + i);
                    if i % 2 == 0 {
                        pool.reload(b).unwrap();
                    } else {
                        pool.reload_keeping_servers(b).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let status = pool.status();
    let current = status.current.expect("still serving");
    assert_ne!(current, first, "every reload started a generation");
    // Both threads' servers were configured (every server ever configured
    // stays listed), and the last reload's server is the one in use.
    for port in [2, 3] {
        let url = format!("ldap://127.0.0.1:{port}");
        assert!(
            status.servers.iter().any(|s| s.addr == url),
            "{url} in {:?}",
            status.servers
        );
    }
    assert!(!status.shut_down);
}

#[test]
fn a_refused_reload_keeps_the_old_configuration_serving() {
    let pool = Pool::new(builder(NOWHERE)).unwrap();
    let before = pool.status().current;
    let refused = pool.reload(Pool::builder().server("http://127.0.0.1:1"));
    assert!(
        matches!(refused, Err(BuildError::UnsupportedScheme { .. })),
        "{refused:?}"
    );
    assert_eq!(pool.status().current, before);
}

#[test]
fn handles_with_options_share_the_pool() {
    let pool = Pool::new(builder(NOWHERE)).unwrap();
    let quick = pool.with_timeout(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let failed = quick.whoami();
    assert!(failed.is_err(), "{failed:?}");
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "bounded by the handle's timeout, not the pool's: {:?}",
        started.elapsed()
    );
    let pinned = pool.with_server("ldap://127.0.0.1:4");
    assert!(
        pinned
            .search("", Scope::Base, "(objectClass=*)", &[])
            .is_err()
    );
    let bound = pool.with_credential(Credential::simple("cn=x,dc=example,dc=com", "pw"));
    assert!(bound.whoami().is_err());
    // One pool behind every handle: the pinned server is known to all.
    assert!(
        pool.status()
            .servers
            .iter()
            .any(|s| s.addr == "ldap://127.0.0.1:4")
    );
    assert_eq!(quick.status(), pool.status());
    assert_eq!(bound.shutdown(), 0);
    assert!(
        pool.status().shut_down,
        "shutting a handle down shuts the pool down"
    );
    assert!(pool.whoami().is_err_and(|e| e.is_shut_down()));
}
