//! DNS SRV discovery end to end: a real DNS server (hickory-server, UDP and
//! TCP on 127.0.0.1, port 0) serves a zone the test writes in master-file
//! syntax and rewrites mid-run; real slapd servers behind the records.
//!
//! Every SRV target is `localhost.`: the records differ by port, and the
//! pool keeps the host name in its URLs (`ldap://localhost:PORT`), resolved
//! when a connection opens, as for any configured URL. `localhost` comes
//! from `/etc/hosts` (checked below to give only loopback addresses), so no
//! query leaves the machine: the SRV lookups go to the test's DNS server
//! (`PoolBuilder::dns_server`), the host names to the hosts file.

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use common::*;
use ldapmux::{BuildError, ConnPhase, Pool, PoolBuilder, SrvError, SrvPoolBuilder, SrvService};
use ldapmux_harness::{Slapd, TestCa};

use ldapmux_harness::dns::{DnsServer, ldap_zone, zone};

/// `localhost` must give loopback addresses only (from /etc/hosts), so
/// that SRV targets reach the test's slapd and nothing else.
fn check_localhost_is_loopback() {
    let addrs: Vec<SocketAddr> = ("localhost", 1).to_socket_addrs().unwrap().collect();
    assert!(
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
        "these tests need `localhost` to resolve to loopback addresses only, got {addrs:?}"
    );
}

fn url(s: &Slapd) -> String {
    format!("ldap://localhost:{}", s.port())
}

fn srv_builder(dns: &DnsServer) -> SrvPoolBuilder {
    srv_builder_from(builder(), dns)
}

/// [`srv_builder`] with the pool settings of `base`.
fn srv_builder_from(base: PoolBuilder, dns: &DnsServer) -> SrvPoolBuilder {
    base.dns_srv("example.test")
        .dns_server(dns.addr)
        .dns_refresh(Duration::from_millis(100), Duration::from_secs(60))
        .dns_failure_refresh(Duration::from_millis(300))
        .dns_timeout(Duration::from_millis(500))
}

fn srv_status(pool: &Pool) -> ldapmux::SrvStatus {
    pool.dns_srv_status().expect("built with DNS SRV discovery")
}

/// Live connections of the pool to `server`, open (not draining or broken).
fn open_conns_to(pool: &Pool, server_url: &str) -> Vec<ldapmux::ConnInfo> {
    let id = server_id(pool, server_url);
    pool.connections()
        .into_iter()
        .filter(|c| c.server == id && c.phase == ConnPhase::Open)
        .collect()
}

fn grants(pool: &Pool, server_url: &str) -> u64 {
    server_status(pool, server_url).counters.grants
}

/// The whole story under load: discovery, three changes of the records
/// (a server removed and one added, priorities swapped, a server killed
/// while the zone moved on), a DNS server that stops answering, an empty
/// and a "." answer, and shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_changes_under_load_are_followed_with_zero_failures_keeping_listed_connections() {
    init_tracing();
    check_localhost_is_loopback();
    let a = slapd(100);
    let b = slapd(100);
    let mut c = slapd(100);
    let (ua, ub, uc) = (url(&a), url(&b), url(&c));
    // TTL 1 s: the pool looks again every second (floor 100 ms).
    let dns = DnsServer::start(&ldap_zone(1, &[(10, 0, a.port()), (20, 0, b.port())])).await;
    let pool = srv_builder(&dns).build().await.unwrap();
    let st = srv_status(&pool);
    assert_eq!(st.servers, [ua.clone(), ub.clone()], "priority order");
    assert_eq!(st.name, "_ldap._tcp.example.test.");
    assert!(st.running && st.lookups == 1 && st.changes == 0, "{st:?}");

    // Load goes to A, the better priority; one connection to B is opened
    // by operations pinned to it, then left idle.
    let load = Load::start(&pool, 16, 100);
    load.wait_ok(300, Duration::from_secs(20)).await;
    for i in 0..5 {
        search_user(&pool.with_server(ub.clone()), i).await.unwrap();
    }
    assert!(grants(&pool, &ub) >= 5);
    assert_eq!(
        b.monitor_current_connections().await.unwrap(),
        1,
        "one idle connection to B"
    );
    let kept: Vec<_> = open_conns_to(&pool, &ua).iter().map(|c| c.id).collect();
    assert!(!kept.is_empty(), "the load runs on A");
    let gen1 = pool.status().current.unwrap();
    let a_total = a.monitor_total_connections().await.unwrap();

    // Change 1: B removed, C added behind A (TTL 3600 from now on: the
    // next scheduled lookup is at the 60 s ceiling).
    dns.set_zone(&ldap_zone(3600, &[(10, 0, a.port()), (30, 0, c.port())]))
        .await;
    eventually(
        "the pool follows the new answer",
        Duration::from_secs(5),
        || srv_status(&pool).changes == 1,
    )
    .await;
    assert_eq!(srv_status(&pool).servers, [ua.clone(), uc.clone()]);
    let gen2 = pool.status().current.unwrap();
    assert_ne!(gen1, gen2, "a change in the answer is a reload");
    load.wait_ok(300, Duration::from_secs(20)).await;
    // The connections to A, still listed, were kept: same ids, now in the
    // new generation, and slapd A accepted no connection from the pool.
    let conns = pool.connections();
    for id in &kept {
        let info = conns.iter().find(|c| c.id == *id).unwrap_or_else(|| {
            panic!("connection {id} to A (still listed) was closed by the reload: {conns:?}")
        });
        assert_eq!(
            info.generation, gen2,
            "{info:?} moved to the new generation"
        );
        assert_eq!(info.phase, ConnPhase::Open, "{info:?}");
    }
    let a_opened = a.monitor_total_connections().await.unwrap() - a_total - 1;
    assert_eq!(a_opened, 0, "no connection to A reopened across the reload");
    // The connection to B, no longer listed, drained and closed; the old
    // generation is freed.
    b.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    generation_freed(&pool, gen1).await;
    assert_eq!(grants(&pool, &uc), 0, "C, behind A, is not used");

    // Change 2, seen only because a server fails: the next scheduled
    // lookup is at the 60 s ceiling (TTL 3600)...
    let next = srv_status(&pool).next_lookup_in.unwrap();
    assert!(
        next > Duration::from_secs(30),
        "the next scheduled lookup is at the ceiling: {next:?}"
    );
    // ...the zone drops C and brings B back (TTL 1 again); then C dies.
    dns.set_zone(&ldap_zone(1, &[(10, 0, a.port()), (20, 0, b.port())]))
        .await;
    // C must be marked down: give it a connection first (pinned operations).
    for i in 0..3 {
        search_user(&pool.with_server(uc.clone()), i).await.unwrap();
    }
    let failure_lookups = srv_status(&pool).failure_lookups;
    let killed = tokio::time::Instant::now();
    c.kill();
    // An operation on C finds it dead: C is marked down.
    let _ = search_user(&pool.with_server(uc.clone()), 1).await;
    eventually("C is marked down", Duration::from_secs(5), || {
        is_down(&pool, &uc)
    })
    .await;
    eventually(
        "a lookup brought forward by the failure finds the new answer",
        Duration::from_secs(5),
        || srv_status(&pool).changes == 2,
    )
    .await;
    let took = killed.elapsed();
    tracing::info!(?took, "new answer found after the kill");
    let st = srv_status(&pool);
    assert!(st.failure_lookups > failure_lookups, "{st:?}");
    assert_eq!(st.servers, [ua.clone(), ub.clone()]);
    load.wait_ok(300, Duration::from_secs(20)).await;

    // Change 3: priorities swapped, B before A (TTL 1: seen within ~1 s).
    dns.set_zone(&ldap_zone(1, &[(20, 0, a.port()), (10, 0, b.port())]))
        .await;
    eventually(
        "the swapped priorities are seen",
        Duration::from_secs(5),
        || srv_status(&pool).changes == 3,
    )
    .await;
    assert_eq!(srv_status(&pool).servers, [ub.clone(), ua.clone()]);
    // The pool follows the new order: new operations go to B. (Needs the
    // core to fail back after a keep-listed reload that puts a server ahead
    // of one holding kept connections: placement otherwise keeps using the
    // open connection to A while it has room.)
    let b_grants = grants(&pool, &ub);
    eventually("the load moves to B", Duration::from_secs(10), || {
        grants(&pool, &ub) >= b_grants + 200
    })
    .await;
    let a_grants = grants(&pool, &ua);
    load.wait_ok(300, Duration::from_secs(20)).await;
    assert_eq!(
        grants(&pool, &ua),
        a_grants,
        "no new operation on A once B is preferred"
    );

    // The DNS server stops answering: lookups fail (typed, the server's
    // fault), the servers are kept, nothing is reloaded, operations go on.
    let generation = pool.status().current.unwrap();
    let failures = srv_status(&pool).lookup_failures;
    let queries = dns.queries();
    dns.mute(true);
    eventually("a lookup times out", Duration::from_secs(5), || {
        srv_status(&pool).lookup_failures > failures
    })
    .await;
    let st = srv_status(&pool);
    assert!(dns.queries() > queries, "the lookup reached the DNS server");
    match &st.last_error {
        Some(e @ SrvError::Lookup { .. }) => assert_eq!(e.blame(), ldapmux::Blame::Server),
        other => panic!("a lookup error, got {other:?}"),
    }
    assert_eq!(st.servers, [ub.clone(), ua.clone()], "servers kept");
    // An empty answer, then "service not available": both keep the servers.
    dns.set_zone(&ldap_zone(1, &[])).await;
    dns.mute(false);
    eventually("an empty answer is seen", Duration::from_secs(5), || {
        matches!(
            srv_status(&pool).last_error,
            Some(SrvError::NoRecords { .. })
        )
    })
    .await;
    dns.set_zone(&(ldap_zone(1, &[]) + "_ldap._tcp IN SRV 0 0 0 .\n"))
        .await;
    eventually("a \".\" answer is seen", Duration::from_secs(8), || {
        matches!(
            srv_status(&pool).last_error,
            Some(SrvError::ServiceUnavailable { .. })
        )
    })
    .await;
    assert_eq!(srv_status(&pool).servers, [ub.clone(), ua.clone()]);
    assert_eq!(
        pool.status().current,
        Some(generation),
        "no reload on failures"
    );
    // Back to the same records: lookups succeed again, nothing to reload.
    dns.set_zone(&ldap_zone(1, &[(20, 0, a.port()), (10, 0, b.port())]))
        .await;
    eventually("lookups succeed again", Duration::from_secs(10), || {
        srv_status(&pool).last_error.is_none()
    })
    .await;
    assert_eq!(pool.status().current, Some(generation));
    assert_eq!(srv_status(&pool).changes, 3);

    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "zero failed operations across every change: {:?}",
        tally.first_errors()
    );
    assert_eq!(pool.shutdown().await, 0);
    eventually(
        "the discovery task stops at shutdown",
        Duration::from_secs(2),
        || !srv_status(&pool).running,
    )
    .await;
}

/// A dropped pool leaves nothing running: the discovery task ends (the
/// runtime's task count returns to where it was) and stops asking DNS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pool_stops_looking_up() {
    init_tracing();
    check_localhost_is_loopback();
    let a = slapd(10);
    // TTL 0: a lookup every 100 ms (the floor).
    let dns = DnsServer::start(&ldap_zone(0, &[(0, 0, a.port())])).await;
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let baseline = alive();
    let pool = srv_builder(&dns).build().await.unwrap();
    search_user(&pool, 1).await.unwrap();
    let q = dns.queries();
    eventually("lookups every 100 ms", Duration::from_secs(3), || {
        dns.queries() >= q + 3
    })
    .await;
    drop(pool);
    eventually(
        "every task of the pool ends",
        Duration::from_secs(5),
        || alive() <= baseline,
    )
    .await;
    let q = dns.queries();
    // Five lookup periods without a query.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dns.queries(), q, "no lookup after the pool is gone");
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
}

/// The first lookup decides whether there is a pool at all: a silent DNS
/// server, no records and a "." record are typed errors within the lookup
/// timeout; `_ldaps._tcp` records give ldaps:// URLs verified against the
/// target host name (the certificate names only `localhost`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_lookup_fails_typed_and_ldaps_records_verify_the_target_name() {
    init_tracing();
    check_localhost_is_loopback();
    let dns = DnsServer::start(&ldap_zone(60, &[])).await;
    let build = || srv_builder(&dns).build();

    let e = build().await.unwrap_err();
    assert!(
        matches!(e, BuildError::Discovery(SrvError::NoRecords { .. })),
        "{e}"
    );
    dns.set_zone(&(ldap_zone(60, &[]) + "_ldap._tcp IN SRV 0 0 0 .\n"))
        .await;
    let e = build().await.unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::Discovery(SrvError::ServiceUnavailable { .. })
        ),
        "{e}"
    );
    dns.mute(true);
    let started = tokio::time::Instant::now();
    let e = build().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "within the 500 ms lookup timeout: {:?}",
        started.elapsed()
    );
    match &e {
        BuildError::Discovery(s @ SrvError::Lookup { .. }) => {
            assert_eq!(s.blame(), ldapmux::Blame::Server)
        }
        other => panic!("a lookup error, got {other}"),
    }
    dns.mute(false);

    let ca = TestCa::new("ldapmux-srv");
    let server = Slapd::builder()
        .users(10)
        .tls(ca.issue(&["localhost"]), &ca)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd with TLS: {e}"));
    let ca_file = ca.write_ca_file(server.dir());
    let port = server.ldaps_port().unwrap();
    dns.set_zone(&zone(60, "_ldaps._tcp", &[(0, 0, port)]))
        .await;
    let pool = srv_builder_from(builder().tls_ca_file(&ca_file), &dns)
        .dns_srv_service(SrvService::Ldaps)
        .build()
        .await
        .unwrap();
    assert_eq!(
        srv_status(&pool).servers,
        [format!("ldaps://localhost:{port}")]
    );
    search_user(&pool, 3).await.unwrap();
    assert_eq!(pool.shutdown().await, 0);
}

/// The operator's path: a TOML file names the domain and the DNS server;
/// the pool is built through DNS SRV discovery and watched. An edit of the
/// file (a bind DN and password file) reloads the pool with the servers of
/// the current answer, and later answers keep the file's settings; a file
/// that switches the domain or lists servers by hand is refused while the
/// pool keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_toml_file_with_dns_srv_reloads_through_discovery() {
    init_tracing();
    check_localhost_is_loopback();
    let (a, b) = (slapd(10), slapd(10));
    let dns = DnsServer::start(&ldap_zone(1, &[(10, 0, a.port())])).await;
    let dir = std::env::temp_dir().join(format!("ldapmux-e2e-srv-toml-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pool.toml");
    let base = format!(
        "dns_srv = \"example.test\"\ndns_server = \"{}\"\n\
         dns_refresh_min = \"100ms\"\ndns_refresh_max = \"60s\"\n",
        dns.addr
    );
    std::fs::write(&path, &base).unwrap();
    let cfg = ldapmux::ConfigFile::read_toml(&path).unwrap();
    assert_eq!(cfg.dns_srv(), Some("example.test"));
    let from_file = cfg.apply(builder());
    assert!(matches!(
        from_file.clone().build(),
        Err(BuildError::InvalidField {
            field: "dns_srv",
            ..
        })
    ));
    let pool = from_file.into_dns_srv().unwrap().build().await.unwrap();
    assert_eq!(srv_status(&pool).servers, [url(&a)]);
    assert_eq!(pool.whoami().await.unwrap(), "", "anonymous at first");
    let watch = pool
        .watch_with(
            &path,
            ldapmux::WatchOptions {
                interval: Duration::from_millis(50),
                base: builder(),
            },
        )
        .unwrap();
    let wait = |what: &'static str, n: fn(&ldapmux::WatchReport) -> bool| {
        let watch = &watch;
        async move {
            eventually(what, Duration::from_secs(10), || n(&watch.report())).await;
        }
    };

    // The file now binds as the root DN: reloaded onto the DNS answer.
    std::fs::write(dir.join("root.pw"), format!("{}\n", a.root_pw())).unwrap();
    std::fs::write(
        &path,
        format!(
            "{base}bind_dn = \"{}\"\nbind_password_file = \"root.pw\"\n",
            a.root_dn()
        ),
    )
    .unwrap();
    wait("the reload", |r| r.reloads == 1).await;
    let root = format!("dn:{}", a.root_dn());
    assert_eq!(
        pool.whoami().await.unwrap().to_lowercase(),
        root.to_lowercase()
    );
    assert_eq!(srv_status(&pool).servers, [url(&a)], "servers from DNS");

    // DNS moves to B: the file's credential stays in force.
    dns.set_zone(&ldap_zone(1, &[(10, 0, b.port())])).await;
    eventually("the answer is followed", Duration::from_secs(10), || {
        srv_status(&pool).servers == [url(&b)]
    })
    .await;
    assert_eq!(
        pool.whoami().await.unwrap().to_lowercase(),
        root.to_lowercase()
    );

    // Another domain, or servers by hand: refused; the pool keeps serving B.
    std::fs::write(&path, base.replace("example.test", "other.test")).unwrap();
    wait("the refusal of another domain", |r| r.refused == 1).await;
    assert!(
        watch
            .report()
            .last_error
            .unwrap()
            .contains("cannot change on a running pool"),
        "{:?}",
        watch.report()
    );
    std::fs::write(&path, format!("uri = [\"{}\"]\n", a.url())).unwrap();
    wait("the refusal of fixed servers", |r| r.refused == 2).await;
    assert!(watch.report().last_error.unwrap().contains("dns_srv"));
    assert_eq!(srv_status(&pool).servers, [url(&b)]);
    search_user(&pool, 1).await.unwrap();
    assert!(b.monitor_current_connections().await.unwrap() >= 1);
    pool.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
