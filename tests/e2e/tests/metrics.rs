//! Metrics end to end: what the pool records through the `metrics` facade
//! equals what the test did and what slapd's own monitor counted
//! (operations completed by type, connections accepted, connections open,
//! connections per bound DN), across a kill, a restart and a reload; and no
//! label carries a bind DN or a password unless the caller asked.
//!
//! One recorder is installed for the whole test binary; each test gives its
//! pool its own `metrics_name` and reads only the series with that `pool`
//! label, so the tests can run in parallel. Pools publish their gauges only
//! on demand here (`metrics_interval(None)` + `Pool::publish_metrics`), so
//! every gauge read is of a known moment.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use ldapmux::metrics::*;
use ldapmux::{Credential, Error, LeaseKind, Mod, Password, Pool, Scope};
use ldapmux_harness::Slapd;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

// ----------------------------------------------------------------------
// A recorder that keeps every series
// ----------------------------------------------------------------------

/// One series: a counter's total, a gauge's value, or a histogram's count
/// and sum.
#[derive(Default)]
struct Cell {
    value: AtomicU64,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.value.fetch_add(v, Ordering::SeqCst);
    }
    fn absolute(&self, v: u64) {
        self.value.fetch_max(v, Ordering::SeqCst);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        let _ = self
            .value
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| {
                Some((f64::from_bits(x) + v).to_bits())
            });
    }
    fn decrement(&self, v: f64) {
        GaugeFn::increment(self, -v);
    }
    fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::SeqCst);
    }
}

impl HistogramFn for Cell {
    fn record(&self, v: f64) {
        self.samples.lock().unwrap().push(v);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Default)]
struct TestRecorder {
    series: Mutex<HashMap<(Kind, Key), Arc<Cell>>>,
}

impl TestRecorder {
    fn cell(&self, kind: Kind, key: &Key) -> Arc<Cell> {
        self.series
            .lock()
            .unwrap()
            .entry((kind, key.clone()))
            .or_default()
            .clone()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(Kind::Counter, key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(Kind::Gauge, key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(Kind::Histogram, key))
    }
}

/// The recorder of this test binary, installed on first use.
fn recorder() -> &'static TestRecorder {
    static REC: OnceLock<&'static TestRecorder> = OnceLock::new();
    REC.get_or_init(|| {
        let rec: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(rec).expect("the only recorder of this binary");
        rec
    })
}

/// One series: its kind, name, labels and value.
type Series = (Kind, String, BTreeMap<String, String>, Arc<Cell>);

/// The series of one pool (by its `pool` label), as seen now.
struct View {
    series: Vec<Series>,
}

impl View {
    fn of(pool: &str) -> View {
        let all = recorder().series.lock().unwrap();
        let series = all
            .iter()
            .filter_map(|((kind, key), cell)| {
                let labels: BTreeMap<String, String> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (labels.get("pool").map(String::as_str) == Some(pool))
                    .then(|| (*kind, key.name().to_owned(), labels, cell.clone()))
            })
            .collect();
        View { series }
    }

    fn matching<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Arc<Cell>> + 'a {
        self.series.iter().filter_map(move |(k, n, l, cell)| {
            (*k == kind
                && n == name
                && labels
                    .iter()
                    .all(|(lk, lv)| l.get(*lk).map(String::as_str) == Some(*lv)))
            .then_some(cell)
        })
    }

    /// The sum of the counters `name` whose labels include `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(Kind::Counter, name, labels)
            .map(|c| c.value.load(Ordering::SeqCst))
            .sum()
    }

    /// The sum of the gauges `name` whose labels include `labels`.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(Kind::Gauge, name, labels)
            .map(|c| f64::from_bits(c.value.load(Ordering::SeqCst)))
            .sum()
    }

    /// Samples of the histograms `name` whose labels include `labels`.
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.matching(Kind::Histogram, name, labels)
            .flat_map(|c| c.samples.lock().unwrap().clone())
            .collect()
    }

    /// Every label value of every series.
    fn label_values(&self) -> HashSet<String> {
        self.series
            .iter()
            .flat_map(|(_, _, l, _)| l.values().cloned())
            .collect()
    }

    /// Every distinct value of label `key` on metric `name`.
    fn values_of(&self, name: &str, key: &str) -> HashSet<String> {
        self.series
            .iter()
            .filter(|(_, n, _, _)| n == name)
            .filter_map(|(_, _, l, _)| l.get(key).cloned())
            .collect()
    }

    /// Gauges of the pool that are not 0, for failure messages.
    fn nonzero_gauges(&self) -> Vec<String> {
        self.series
            .iter()
            .filter(|(k, ..)| *k == Kind::Gauge)
            .filter_map(|(_, n, l, c)| {
                let v = f64::from_bits(c.value.load(Ordering::SeqCst));
                (v != 0.0).then(|| format!("{n}{l:?} = {v}"))
            })
            .collect()
    }
}

/// Publishes `pool`'s gauges and reads its series.
fn published(pool: &Pool, name: &str) -> View {
    pool.publish_metrics();
    View::of(name)
}

/// A pool of the common test builder with on-demand publication.
fn builder_named(name: &str) -> ldapmux::PoolBuilder {
    recorder();
    builder().metrics_name(name).metrics_interval(None)
}

// ----------------------------------------------------------------------
// slapd's own counts of operations
// ----------------------------------------------------------------------

/// `monitorOpCompleted` of every operation type (`Search`, `Bind`, …), in
/// one search on one anonymous connection.
async fn slapd_ops(server: &Slapd) -> HashMap<String, u64> {
    server
        .monitor_operations()
        .await
        .expect("monitor")
        .into_iter()
        .map(|(op, n)| (op, n.completed))
        .collect()
}

/// Operations slapd completed between two [`slapd_ops`] readings, by type.
fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// What a [`measured`] run saw on slapd: operations completed by type and
/// connections accepted, with the monitor's own queries taken out.
struct SlapdSaw {
    ops: HashMap<String, u64>,
    connections: u64,
}

/// Runs `f` between two readings of slapd's operation and connection
/// counters. The readings' own operations are measured first by the same
/// sequence with nothing in between, and subtracted.
async fn measured<T>(server: &Slapd, f: impl std::future::Future<Output = T>) -> (T, SlapdSaw) {
    let idle_before = slapd_ops(server).await;
    let (_, idle_conns) = connections_opened_during(server, async {}).await;
    let idle = delta(&idle_before, &slapd_ops(server).await);

    let before = slapd_ops(server).await;
    let (out, conns) = connections_opened_during(server, f).await;
    let busy = delta(&before, &slapd_ops(server).await);
    let ops = busy
        .iter()
        .map(|(k, v)| (k.clone(), v - idle.get(k).copied().unwrap_or(0)))
        .collect();
    (
        out,
        SlapdSaw {
            ops,
            connections: conns - idle_conns,
        },
    )
}

const SCOPE: Scope = Scope::OneLevel;

// ----------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------

/// A known mix of every kind of operation, some failing: the operation
/// counters equal what the test did, and per LDAP operation type what slapd
/// completed; connections opened equal what slapd accepted; the open
/// connections gauge equals slapd's current connections; the acquire
/// histogram has one sample per try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_and_connection_counts_match_slapds_monitor() {
    init_tracing();
    let server = slapd(20);
    let name = "mix";
    let pool = builder_named(name)
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let scratch = Slapd::scratch_base();
    let a = format!("cn=metrics-a,{scratch}");
    let b = format!("cn=metrics-b,{scratch}");

    let ((), saw) = measured(&server, async {
        // Reads: 5 searches found, 1 noSuchObject, 1 invalid filter (never sent).
        for i in 0..5 {
            search_user(&pool, i).await.unwrap();
        }
        let missing = pool
            .search(
                "ou=nowhere,dc=example,dc=com",
                Scope::Base,
                "(objectClass=*)",
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(missing.rc(), Some(32));
        let bad = pool
            .search(Slapd::people_base(), SCOPE, "(uid=", &[])
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::InvalidRequest(_)), "{bad}");
        // 3 compares (2 true, 1 false: all "ok").
        let dn0 = Slapd::user_dn(0);
        let uid0 = Slapd::user_uid(0);
        assert!(pool.compare(&dn0, "uid", &uid0).await.unwrap());
        assert!(pool.compare(&dn0, "uid", &uid0).await.unwrap());
        assert!(!pool.compare(&dn0, "uid", "nobody").await.unwrap());
        // 2 WhoAmI and 1 extended operation.
        assert!(pool.whoami().await.unwrap().contains(server.root_dn()));
        pool.whoami().await.unwrap();
        pool.extended(ldap3::exop::WhoAmI).await.unwrap();
        // One streaming search over 20 users.
        let mut stream = pool
            .streaming_search(Slapd::people_base(), SCOPE, "(uid=*)", &["uid"])
            .await
            .unwrap();
        let mut n = 0;
        while let Some(entry) = stream.next().await {
            entry.unwrap();
            n += 1;
        }
        assert_eq!(n, 20);
        // Writes: 2 adds (+1 entryAlreadyExists), 1 modify, 1 rename, 2 deletes.
        pool.add(&a, person("metrics-a")).await.unwrap();
        pool.add(&b, person("metrics-b")).await.unwrap();
        let exists = pool.add(&a, person("metrics-a")).await.unwrap_err();
        assert_eq!(exists.rc(), Some(68));
        pool.modify(&a, vec![Mod::Replace("sn", HashSet::from(["x"]))])
            .await
            .unwrap();
        pool.modify_dn(&b, "cn=metrics-c", true, None)
            .await
            .unwrap();
        pool.delete(&a).await.unwrap();
        pool.delete(&format!("cn=metrics-c,{scratch}"))
            .await
            .unwrap();
        // Password checks: 2 right, 1 wrong.
        for (i, right) in [(1, true), (2, true), (3, false)] {
            let pw = if right {
                Slapd::user_password(i)
            } else {
                "wrong".into()
            };
            let ok = pool
                .authenticate(&Slapd::user_dn(i), &Password::new(pw))
                .await
                .unwrap();
            assert_eq!(ok.is_accepted(), right);
        }
        // A lease: 2 searches and a WhoAmI on one connection.
        let mut g = pool.lease(LeaseKind::Read).await.unwrap();
        g.search(Slapd::people_base(), SCOPE, "(uid=user1)", &["uid"])
            .await
            .unwrap();
        g.search(Slapd::people_base(), SCOPE, "(uid=user2)", &["uid"])
            .await
            .unwrap();
        g.whoami().await.unwrap();
        drop(g);
    })
    .await;

    let m = published(&pool, name);
    let ops =
        |op: &str, outcome: &str| m.counter(OPERATIONS_TOTAL, &[("op", op), ("outcome", outcome)]);
    let sent = |op: &str| {
        m.counter(OPERATIONS_TOTAL, &[("op", op)])
            - m.counter(
                OPERATIONS_TOTAL,
                &[("op", op), ("outcome", "invalid_request")],
            )
    };
    // What the test did.
    assert_eq!(
        ops("search", "ok"),
        5 + 2,
        "5 pool searches + 2 on the lease"
    );
    assert_eq!(ops("search", "ldap_error"), 1);
    assert_eq!(ops("search", "invalid_request"), 1);
    assert_eq!(ops("compare", "ok"), 3);
    assert_eq!(ops("whoami", "ok"), 2 + 1);
    assert_eq!(ops("extended", "ok"), 1);
    assert_eq!(ops("streaming_search", "ok"), 1);
    assert_eq!(ops("add", "ok"), 2);
    assert_eq!(ops("add", "ldap_error"), 1);
    assert_eq!(ops("modify", "ok"), 1);
    assert_eq!(ops("modify_dn", "ok"), 1);
    assert_eq!(ops("delete", "ok"), 2);
    assert_eq!(ops("authenticate", "ok"), 2);
    assert_eq!(ops("authenticate", "invalid_credentials"), 1);
    assert_eq!(ops("lease", "ok"), 1);
    assert_eq!(m.counter(OPERATIONS_TOTAL, &[]), 28, "no other operation");
    for outcome in m.values_of(OPERATIONS_TOTAL, "outcome") {
        assert!(OUTCOMES.contains(&outcome.as_str()), "{outcome}");
    }
    for op in m.values_of(OPERATIONS_TOTAL, "op") {
        assert!(OPS.contains(&op.as_str()), "{op}");
    }
    assert_eq!(m.counter(RETRIES_TOTAL, &[]), 0, "nothing failed over");

    // What slapd completed, by operation type.
    let slapd = |t: &str| saw.ops.get(t).copied().unwrap_or(0);
    // And the root DSE, read once when the first read connection opened.
    assert_eq!(
        slapd("Search"),
        sent("search") + sent("streaming_search") + 1,
        "searches: slapd {:?}",
        saw.ops
    );
    assert_eq!(slapd("Compare"), sent("compare"));
    assert_eq!(slapd("Extended"), sent("whoami") + sent("extended"));
    assert_eq!(slapd("Add"), sent("add"));
    assert_eq!(slapd("Modify"), sent("modify"));
    assert_eq!(slapd("Modrdn"), sent("modify_dn"));
    assert_eq!(slapd("Delete"), sent("delete"));
    // Each shared connection binds once when it opens (the password
    // checks' bind connection opens unbound); each password check is one
    // bind, the three of them on one reused bind connection.
    let opened = m.counter(CONNECTIONS_OPENED_TOTAL, &[]);
    let bind = m.counter(CONNECTIONS_OPENED_TOTAL, &[("purpose", "bind")]);
    assert_eq!(
        bind, 1,
        "three checks, one after another, on one bind connection"
    );
    assert_eq!(
        m.counter(CONNECTIONS_OPENED_TOTAL, &[("purpose", "private")]),
        0
    );
    assert_eq!(slapd("Bind"), sent("authenticate") + opened - bind);

    // Connections: what slapd accepted is what the pool opened.
    assert_eq!(
        saw.connections, opened,
        "slapd accepted {} connections",
        saw.connections
    );
    assert!(opened >= 3, "bind, read and write connections: {opened}");
    assert_eq!(
        m.counter(
            CONNECTIONS_OPENED_TOTAL,
            &[("credential", "cred-1"), ("purpose", "read")]
        ) + m.counter(
            CONNECTIONS_OPENED_TOTAL,
            &[("credential", "cred-1"), ("purpose", "write")]
        ),
        opened - bind,
        "shared connections carry the pool credential's label"
    );
    assert_eq!(
        m.counter(
            CONNECTIONS_OPENED_TOTAL,
            &[("credential", "anonymous"), ("purpose", "bind")]
        ),
        bind
    );

    // Open connections now: the gauge, the opened-minus-closed counters and
    // slapd agree (the bind connection stays open for the next check).
    let open = m.gauge(CONNECTIONS, &[("state", "open")]);
    assert_eq!(m.gauge(CONNECTIONS, &[("purpose", "bind")]), 1.0);
    assert_eq!(
        open as u64,
        opened - m.counter(CONNECTIONS_CLOSED_TOTAL, &[])
    );
    assert_eq!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[("purpose", "bind")]),
        0
    );
    server
        .wait_current_connections(open as u64, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(m.gauge(WAITERS, &[]), 0.0);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &server.url())]), 1.0);
    // The private connections' sockets end shortly after their close.
    eventually(
        "open sockets = open connections",
        Duration::from_secs(5),
        || published(&pool, name).gauge(OPEN_SOCKETS, &[]) == open,
    )
    .await;

    // One acquire sample per try; every try was granted.
    let samples = m.samples(ACQUIRE_SECONDS, &[]);
    let pool_ops = m.counter(OPERATIONS_TOTAL, &[]) - 3; // the lease's own calls do not acquire
    assert_eq!(samples.len() as u64, pool_ops, "one acquire per operation");
    assert_eq!(
        m.samples(ACQUIRE_SECONDS, &[("result", "granted")]).len() as u64,
        pool_ops
    );
    assert_eq!(m.samples(ACQUIRE_SECONDS, &[("purpose", "bind")]).len(), 3);
    assert!(
        samples.iter().all(|s| (0.0..10.0).contains(s)),
        "{samples:?}"
    );

    // After shutdown every gauge of the pool is 0 and slapd has nothing open.
    assert_eq!(pool.shutdown().await, 0);
    let m = View::of(name);
    assert!(m.nonzero_gauges().is_empty(), "{:?}", m.nonzero_gauges());
    assert_eq!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[]),
        m.counter(CONNECTIONS_OPENED_TOTAL, &[])
    );
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
}

/// A backup the pool never needed is not claimed up (issue 17): it reports
/// `Health::Unknown` and `ldapmux_server_up` -1 until the pool reaches it;
/// the preferred server reads 1 once its connection opens, and 0 once it is
/// killed and marked down, when the fail-over to the backup makes it 1.
/// Racing is off, so no rival connect reaches the backup early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_needed_reads_unknown_until_the_pool_reaches_it() {
    init_tracing();
    let mut a = slapd(10);
    let b = slapd(10);
    let name = "unknown";
    let pool = builder_named(name)
        .preferred_server(a.url())
        .server(b.url())
        .connect_race_delay(None)
        .build()
        .unwrap();
    let (a_url, b_url) = (a.url(), b.url());
    let up = |m: &View, url: &str| m.gauge(SERVER_UP, &[("server", url)]);
    let health = |url: &str| common::server_status(&pool, url).health;
    assert_eq!(up(&published(&pool, name), &b_url), -1.0);
    assert_eq!(health(&b_url), ldapmux::Health::Unknown);

    search_user(&pool, 1).await.unwrap();
    let m = published(&pool, name);
    assert_eq!(up(&m, &a_url), 1.0);
    assert_eq!(health(&a_url), ldapmux::Health::Up);
    assert_eq!(up(&m, &b_url), -1.0, "{:?}", pool.status());
    assert_eq!(health(&b_url), ldapmux::Health::Unknown);
    let b_counters = common::server_status(&pool, &b_url).counters;
    assert_eq!((b_counters.opens, b_counters.open_failures), (0, 0));

    a.kill();
    search_user(&pool, 2).await.unwrap();
    eventually(
        "the killed server is marked down",
        Duration::from_secs(10),
        || is_down(&pool, &a_url),
    )
    .await;
    search_user(&pool, 3).await.unwrap();
    let m = published(&pool, name);
    assert_eq!(up(&m, &a_url), 0.0);
    assert_eq!(up(&m, &b_url), 1.0);
    assert_eq!(health(&b_url), ldapmux::Health::Up);
    pool.shutdown().await;
}

/// Kill the preferred server under load, then restart it: one fail-over
/// and one fail-back counted for it, retries equal to the tries beyond the
/// first, every search counted as ok, the backup's connections counted as
/// slapd accepted them and closed by the fail-back, and the gauges follow
/// (server down, then up; connections move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_failback_and_retries_are_counted() {
    init_tracing();
    let mut a = slapd(100);
    let b = slapd(100);
    let name = "failover";
    let pool = builder_named(name)
        .preferred_server(a.url())
        .server(b.url())
        .build()
        .unwrap();
    let (a_url, b_url) = (a.url(), b.url());
    let b_total_before = b.monitor_total_connections().await.unwrap();

    let load = Load::start(&pool, 16, 100);
    load.wait_ok(200, Duration::from_secs(20)).await;
    let m = published(&pool, name);
    assert!(m.gauge(CONNECTIONS, &[("server", &a_url), ("state", "open")]) >= 1.0);
    assert_eq!(m.gauge(CONNECTIONS, &[("server", &b_url)]), 0.0);

    a.kill();
    eventually(
        "the killed server is marked down",
        Duration::from_secs(10),
        || is_down(&pool, &a_url),
    )
    .await;
    load.wait_ok(300, Duration::from_secs(20)).await;
    let m = published(&pool, name);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a_url)]), 0.0);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &b_url)]), 1.0);
    assert_eq!(m.counter(FAILOVERS_TOTAL, &[("server", &a_url)]), 1);
    assert_eq!(m.counter(FAILOVERS_TOTAL, &[("server", &b_url)]), 0);
    assert!(m.gauge(CONNECTIONS, &[("server", &b_url), ("state", "open")]) >= 1.0);

    a.restart().unwrap();
    // Probe, hold-down (500 ms), then the backup's read connections drain.
    let pool2 = pool.clone();
    let b_url2 = b_url.clone();
    eventually(
        "the pool closed every connection to the backup",
        Duration::from_secs(15),
        move || common::server_status(&pool2, &b_url2).conns == 0,
    )
    .await;
    load.wait_ok(200, Duration::from_secs(20)).await;
    let tally = load.stop().await;
    assert_eq!(tally.failed(), 0, "{:?}", tally.first_errors());

    let m = published(&pool, name);
    let status = pool.status();
    let counters = |url: &str| {
        status
            .servers
            .iter()
            .find(|s| s.addr == url)
            .unwrap()
            .counters
            .clone()
    };
    // Fail-over and fail-back: once each, as the core counted.
    assert_eq!(m.counter(FAILOVERS_TOTAL, &[("server", &a_url)]), 1);
    assert_eq!(m.counter(FAILBACKS_TOTAL, &[("server", &a_url)]), 1);
    assert_eq!(counters(&a_url).marked_down, 1);
    assert_eq!(counters(&a_url).marked_up, 1);
    assert_eq!(
        m.counter(PROBES_TOTAL, &[("server", &a_url)]),
        counters(&a_url).probes
    );
    assert!(m.counter(PROBES_TOTAL, &[("server", &a_url)]) >= 1);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a_url)]), 1.0);

    // Every search succeeded and was counted once; the kill cost retries,
    // one per try beyond the first.
    assert_eq!(
        m.counter(OPERATIONS_TOTAL, &[("op", "search"), ("outcome", "ok")]),
        tally.ok()
    );
    assert_eq!(m.counter(OPERATIONS_TOTAL, &[]), tally.ok());
    let retries = m.counter(RETRIES_TOTAL, &[("op", "search")]);
    assert!(retries >= 1, "the kill under 16 tasks cost retries");
    let tries = m.samples(ACQUIRE_SECONDS, &[("purpose", "read")]).len() as u64;
    assert_eq!(tries, tally.ok() + retries, "tries = operations + retries");
    assert!(
        retries <= status.counters.retries_offered,
        "no more retries than the core offered"
    );
    assert!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[("server", &a_url)]) >= 1,
        "the killed server's connections are counted as closed"
    );

    // The backup: every connection the pool opened there is one slapd
    // accepted (its total counts the two monitor queries that read it, and
    // nothing else), and all were closed again by the fail-back.
    let b_total_after = b.monitor_total_connections().await.unwrap();
    let b_opened = m.counter(CONNECTIONS_OPENED_TOTAL, &[("server", &b_url)]);
    assert!(b_opened >= 1);
    assert_eq!(
        b_total_after - b_total_before - 1,
        b_opened,
        "slapd on the backup accepted what the pool opened"
    );
    assert_eq!(
        m.counter(CONNECTIONS_CLOSED_TOTAL, &[("server", &b_url)]),
        b_opened
    );
    assert!(
        m.counter(
            CONNECTIONS_CLOSED_TOTAL,
            &[("server", &b_url), ("reason", "fail_back")]
        ) >= 1
    );
    b.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(m.gauge(CONNECTIONS, &[("server", &b_url)]), 0.0);
    a.wait_current_connections(
        m.gauge(CONNECTIONS, &[("server", &a_url), ("state", "open")]) as u64,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    pool.shutdown().await;
}

/// By default no label carries a bind DN or a password: the pool's
/// credential is `cred-N`, a password check's connection `anonymous`. With
/// `metrics_bind_dn_labels(true)` the DN is the label, and with
/// `metrics_credential_label` the caller's label; never a password. The
/// connections gauge per credential label equals slapd's count of
/// connections bound as that DN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_carry_no_bind_dn_or_password_unless_asked() {
    init_tracing();
    let server = slapd(10);
    let dn = Slapd::user_dn(3);
    let pw = Slapd::user_password(3);
    let checked_dn = Slapd::user_dn(4);
    let checked_pw = Slapd::user_password(4);
    let secrets = [
        dn.as_str(),
        pw.as_str(),
        checked_dn.as_str(),
        checked_pw.as_str(),
    ];

    let run = |name: &'static str, b: ldapmux::PoolBuilder| {
        let server = &server;
        let (dn, pw, checked_dn, checked_pw) = (&dn, &pw, &checked_dn, &checked_pw);
        async move {
            let pool = b
                .server(server.url())
                .credential(Credential::simple(dn.clone(), pw.clone()))
                .build()
                .unwrap();
            search_user(&pool, 1).await.unwrap();
            assert!(pool.whoami().await.unwrap().contains(dn.as_str()));
            assert!(
                pool.authenticate(checked_dn, &Password::new(checked_pw.clone()))
                    .await
                    .unwrap()
                    .is_accepted()
            );
            assert_eq!(
                pool.authenticate(checked_dn, &Password::new(format!("{pw}-wrong")))
                    .await
                    .unwrap(),
                ldapmux::AuthOutcome::InvalidCredentials
            );
            let m = published(&pool, name);
            // slapd's view: connections bound as the pool's DN.
            let bound = server
                .monitor_connections()
                .await
                .unwrap()
                .iter()
                .filter(|c| c.authz_dn.eq_ignore_ascii_case(dn))
                .count();
            (pool, m, bound)
        }
    };

    // Default: opaque labels.
    let (p1, m, bound) = run("labels-default", builder_named("labels-default")).await;
    let values = m.label_values();
    for s in secrets {
        assert!(
            !values.iter().any(|v| v.contains(s)),
            "{s:?} in a label: {values:?}"
        );
    }
    // The password checks' bind connection (opened unbound) stays open.
    assert_eq!(
        m.values_of(CONNECTIONS, "credential"),
        HashSet::from(["cred-1".to_owned(), "anonymous".to_owned()])
    );
    assert_eq!(
        m.values_of(CONNECTIONS_OPENED_TOTAL, "credential"),
        HashSet::from(["cred-1".to_owned(), "anonymous".to_owned()])
    );
    assert_eq!(
        m.gauge(CONNECTIONS, &[("credential", "cred-1"), ("state", "open")]) as usize,
        bound
    );
    assert!(bound >= 1);
    p1.shutdown().await;

    // Opted in: the pool's DN is the label; the checked DN and passwords never.
    let (p2, m, bound) = run(
        "labels-dn",
        builder_named("labels-dn").metrics_bind_dn_labels(true),
    )
    .await;
    let values = m.label_values();
    assert!(values.contains(&dn), "{values:?}");
    for s in &secrets[1..] {
        assert!(
            !values.iter().any(|v| v.contains(s)),
            "{s:?} in a label: {values:?}"
        );
    }
    assert_eq!(
        m.gauge(CONNECTIONS, &[("credential", &dn), ("state", "open")]) as usize,
        bound
    );
    p2.shutdown().await;

    // A label of the caller's choosing.
    let (p3, m, bound) = run(
        "labels-named",
        builder_named("labels-named").metrics_credential_label(dn.to_uppercase(), "reader"),
    )
    .await;
    let values = m.label_values();
    for s in secrets {
        assert!(!values.iter().any(|v| v.contains(s)), "{s:?} in a label");
    }
    assert_eq!(
        m.gauge(CONNECTIONS, &[("credential", "reader"), ("state", "open")]) as usize,
        bound
    );
    assert_eq!(
        m.counter(
            OPERATIONS_TOTAL,
            &[("op", "authenticate"), ("outcome", "invalid_credentials")]
        ),
        1
    );
    p3.shutdown().await;
}

/// Gauges follow connections away: a reload to another server sets the
/// old server's connection and health gauges to 0 (not their last value),
/// and dropping the pool sets all of its gauges to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_of_a_server_removed_by_reload_go_to_zero() {
    init_tracing();
    let a = slapd(10);
    let b = slapd(10);
    let name = "reload";
    let pool = builder_named(name).server(a.url()).build().unwrap();
    search_user(&pool, 1).await.unwrap();
    let m = published(&pool, name);
    assert_eq!(
        m.gauge(CONNECTIONS, &[("server", &a.url()), ("state", "open")]),
        1.0
    );
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a.url())]), 1.0);

    pool.reload(builder_named(name).server(b.url())).unwrap();
    search_user(&pool, 2).await.unwrap();
    // The old generation's idle connection closes once drained.
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    let a_url = a.url();
    let pool2 = pool.clone();
    eventually(
        "the pool forgot its connection to a",
        Duration::from_secs(5),
        move || common::server_status(&pool2, &a_url).conns == 0,
    )
    .await;
    let m = published(&pool, name);
    assert_eq!(
        m.gauge(CONNECTIONS, &[("server", &a.url())]),
        0.0,
        "{:?}",
        m.nonzero_gauges()
    );
    assert_eq!(m.gauge(SERVER_UP, &[("server", &a.url())]), 0.0);
    assert_eq!(m.gauge(SERVER_UP, &[("server", &b.url())]), 1.0);
    assert_eq!(
        m.gauge(CONNECTIONS, &[("server", &b.url()), ("state", "open")]),
        1.0
    );
    assert_eq!(
        m.counter(
            CONNECTIONS_CLOSED_TOTAL,
            &[("server", &a.url()), ("reason", "reload")]
        ),
        1
    );
    b.wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();

    drop(pool);
    let m = View::of(name);
    assert!(m.nonzero_gauges().is_empty(), "{:?}", m.nonzero_gauges());
}

/// Waiters and connecting connections are gauged: against a frozen server
/// (TCP accepted, no bind answered) with one connection of one user
/// allowed, 6 searches wait: the gauge says 6 waiters and 1 connecting
/// connection, and slapd holds exactly that one connection; after the thaw
/// every search is counted ok and the waiters gauge is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_and_connecting_connections_are_gauged() {
    init_tracing();
    let server = slapd(10);
    let name = "waiters";
    let pool = builder_named(name)
        .server(server.url())
        .connect_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(30))
        .max_connections_per_server(1)
        .max_users_per_connection(1)
        .build()
        .unwrap();
    server.freeze();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { search_user(&pool, i).await })
        })
        .collect();
    let pool2 = pool.clone();
    eventually(
        "6 searches wait for a connection",
        Duration::from_secs(10),
        move || pool2.status().users == 6,
    )
    .await;
    let m = published(&pool, name);
    assert_eq!(m.gauge(WAITERS, &[]), 6.0, "{:?}", m.nonzero_gauges());
    assert_eq!(m.gauge(CONNECTIONS, &[("state", "connecting")]), 1.0);
    assert_eq!(m.gauge(CONNECTIONS, &[("state", "open")]), 0.0);
    server.thaw();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a search ended")
            .unwrap()
            .unwrap();
    }
    let m = published(&pool, name);
    assert_eq!(m.gauge(WAITERS, &[]), 0.0);
    assert_eq!(m.gauge(CONNECTIONS, &[("state", "open")]), 1.0);
    assert_eq!(
        m.counter(OPERATIONS_TOTAL, &[("op", "search"), ("outcome", "ok")]),
        6
    );
    assert_eq!(m.counter(CONNECTIONS_OPENED_TOTAL, &[]), 1);
    server
        .wait_current_connections(1, Duration::from_secs(5))
        .await
        .unwrap();
    pool.shutdown().await;
}
