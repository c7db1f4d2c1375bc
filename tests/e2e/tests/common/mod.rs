//! Shared pieces of the end-to-end tests: servers, pools with short
//! timeouts, load generators, and bounded waits. Every wait has a deadline
//! and fails naming what it waited for; nothing sleeps to make a test pass.

#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ldapmux::{Credential, Error, Pool, PoolBuilder, Scope};
use ldapmux_harness::Slapd;

/// A server with `users` users; panics with the install command if slapd is missing.
pub fn slapd(users: usize) -> Slapd {
    Slapd::builder()
        .users(users)
        .start()
        .unwrap_or_else(|e| panic!("starting slapd: {e}"))
}

/// Builder defaults for tests: short timeouts so failures show fast, fast
/// probes, and a jitter seed so runs replay.
pub fn builder() -> PoolBuilder {
    Pool::builder()
        .connect_timeout(Duration::from_millis(1500))
        .operation_timeout(Duration::from_secs(10))
        .probe_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .failback_hold_down(Duration::from_millis(500))
        .jitter_seed(7)
}

/// Installs a `tracing` subscriber once (RUST_LOG selects, default warn).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A search for one user by uid; asserts the entry came back.
pub async fn search_user(pool: &Pool, i: usize) -> Result<(), Error> {
    let filter = format!("(uid={})", Slapd::user_uid(i));
    let entries = pool
        .search(
            Slapd::people_base(),
            Scope::OneLevel,
            &filter,
            &["uidNumber"],
        )
        .await?;
    assert_eq!(entries.len(), 1, "one entry for {filter}");
    Ok(())
}

/// Polls `check` every 10 ms until it is true; panics naming `what` after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`eventually`] with an async check.
pub async fn eventually_async<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Outcomes of a load run.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }
    fn record(&self, r: Result<(), Error>) {
        match r {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                let mut errors = self.errors.lock().unwrap();
                if errors.len() < 20 {
                    errors.push(e.to_string());
                }
            }
        }
    }
    pub fn first_errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

/// `tasks` tasks searching random users in a loop until stopped.
pub struct Load {
    pub tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(pool: &Pool, tasks: usize, users: usize) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..tasks)
            .map(|t| {
                let (pool, tally, stop) = (pool.clone(), tally.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut i = t;
                    while !stop.load(Ordering::SeqCst) {
                        i = (i * 7 + 13) % users;
                        tally.record(search_user(&pool, i).await);
                    }
                })
            })
            .collect();
        Load {
            tally,
            stop,
            handles,
        }
    }

    /// Waits until at least `n` more operations succeeded (bounded).
    pub async fn wait_ok(&self, n: u64, within: Duration) {
        let target = self.tally.ok() + n;
        let tally = self.tally.clone();
        eventually(&format!("{n} more successful operations"), within, || {
            tally.ok() >= target
        })
        .await;
    }

    /// Stops the tasks and waits for each to end (bounded).
    pub async fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles {
            tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("a load task did not end within 30 s: an operation hung")
                .expect("load task panicked");
        }
        self.tally
    }
}

/// The pool's id for `url`.
pub fn server_id(pool: &Pool, url: &str) -> ldapmux::status::ServerId {
    pool.status()
        .servers
        .iter()
        .find(|s| s.addr.eq_ignore_ascii_case(url))
        .unwrap_or_else(|| panic!("{url} not in the pool's server table"))
        .id
}

/// The pool's view of one server.
pub fn server_status(pool: &Pool, url: &str) -> ldapmux::status::ServerStatus {
    pool.status()
        .servers
        .into_iter()
        .find(|s| s.addr.eq_ignore_ascii_case(url))
        .unwrap_or_else(|| panic!("{url} not in the pool's server table"))
}

pub fn is_down(pool: &Pool, url: &str) -> bool {
    matches!(
        server_status(pool, url).health,
        ldapmux::Health::Down { .. }
    )
}

/// Connections slapd accepted while `f` ran, minus the monitor's own two queries.
pub async fn connections_opened_during<T>(server: &Slapd, f: impl Future<Output = T>) -> (T, u64) {
    let before = server.monitor_total_connections().await.expect("monitor");
    let out = f.await;
    let after = server.monitor_total_connections().await.expect("monitor");
    // `after` counts its own query's connection.
    (out, after - before - 1)
}

/// Waits (bounded, 10 s) until generation `old` is freed: its last user
/// and connection have gone.
pub async fn generation_freed(pool: &Pool, old: ldapmux::status::GenId) {
    eventually(
        "the old generation is freed",
        Duration::from_secs(10),
        || pool.status().generations.iter().all(|g| g.id != old),
    )
    .await;
}

/// slapd's own count of operations of one type (`Bind`, `Search`, …) that it
/// started, read on an anonymous connection that sends no bind.
pub async fn ops_initiated(server: &Slapd, op: &str) -> u64 {
    let ops = server.monitor_operations().await.expect("monitor");
    ops.get(op)
        .unwrap_or_else(|| panic!("slapd counts no {op}"))
        .initiated
}

/// A `tracing` writer that keeps everything written, to search the log for secrets.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl Capture {
    /// The process-wide TRACE subscriber writing into memory, installed on
    /// the first call (a test binary has one global subscriber).
    pub fn trace() -> &'static Capture {
        static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = Capture::default();
            let writer = capture.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .init();
            capture
        })
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The attributes of a minimal `person` entry named `cn`, for adds.
pub fn person(cn: &str) -> Vec<(String, std::collections::HashSet<String>)> {
    vec![
        ("objectClass".into(), ["person".into()].into()),
        ("cn".into(), [cn.into()].into()),
        ("sn".into(), [cn.into()].into()),
    ]
}

/// Adds a `referral` object (RFC 3296) at `dn` on `server`, pointing at `to`.
pub async fn add_referral(server: &Slapd, dn: &str, to: &str) {
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let ou = dn.split(',').next().unwrap().trim_start_matches("ou=");
    pool.add(
        dn,
        vec![
            (
                "objectClass",
                HashSet::from(["referral", "extensibleObject"]),
            ),
            ("ou", HashSet::from([ou])),
            ("ref", HashSet::from([to])),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("add referral {dn}: {e}"));
    pool.shutdown().await;
}

/// Eight tasks read the root DSE through `pool` (which every server serves
/// anonymously); once `before` reads are served `kill` runs, and the load
/// goes on until `after` more are. Returns the failed reads' errors.
pub async fn root_dse_reads_across(
    pool: &Pool,
    before: u64,
    after: u64,
    kill: impl FnOnce(),
) -> Vec<String> {
    let ok = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (pool, ok, stop, errors) = (pool.clone(), ok.clone(), stop.clone(), errors.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match pool
                        .search("", Scope::Base, "(objectClass=*)", &["namingContexts"])
                        .await
                    {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            errors.lock().unwrap().push(e.to_string());
                            0
                        }
                    };
                }
            })
        })
        .collect();
    let reached = |n: u64| {
        let ok = ok.clone();
        async move {
            eventually(
                &format!("{n} reads served"),
                Duration::from_secs(20),
                || ok.load(Ordering::Relaxed) >= n,
            )
            .await
        }
    };
    reached(before).await;
    let served = ok.load(Ordering::Relaxed);
    kill();
    reached(served + after).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    errors.lock().unwrap().clone()
}

/// The kill -9 and fail-back story of the interop suites: `pool` prefers
/// `preferred`, with `backup` second. Eight tasks read the root DSE; after
/// 300 reads `kill` runs and 500 more must be served with none failing and
/// `preferred` marked down. Then `restart` runs, and reads go on, each one
/// succeeding, until `backup` holds no connection from the pool, with
/// `preferred` up. Returns the `vendorName` of the root DSE read last.
pub async fn kill_then_fail_back(
    pool: &Pool,
    preferred: &str,
    backup: &Slapd,
    kill: impl FnOnce(),
    restart: impl FnOnce(),
) -> Vec<String> {
    let errors = root_dse_reads_across(pool, 300, 500, kill).await;
    assert!(
        errors.is_empty(),
        "no read failed across the kill: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(
        is_down(pool, preferred),
        "the killed {preferred} is marked down"
    );
    restart();
    let read = || pool.search("", Scope::Base, "(objectClass=*)", &["vendorName"]);
    eventually_async(
        "the backup's connections drained after fail-back",
        Duration::from_secs(15),
        || async {
            read()
                .await
                .unwrap_or_else(|e| panic!("a read failed during fail-back: {e}"));
            backup.monitor_current_connections().await.unwrap() == 0
        },
    )
    .await;
    assert!(!is_down(pool, preferred), "{preferred} is up again");
    let dse = read().await.unwrap();
    dse[0].attrs.get("vendorName").cloned().unwrap_or_default()
}
