//! The scenarios beside the throughput windows: the cold storm, the cost of
//! an ldaps connect + bind, and the fail-over / fail-back timeline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, StdStream};
use ldapmux::Health;
use ldapmux_harness::{PEOPLE_BASE, Slapd, TestCa};

use crate::raw::ATTRS;
use crate::stats::{ns_to_ms, percentile};
use crate::window::{XorShift, bounded, settle};
use crate::{BenchError, Measurement};

/// Bound on any scenario's tasks finishing.
const JOIN_BOUND: Duration = Duration::from_secs(30);

fn harness(e: ldapmux_harness::HarnessError) -> BenchError {
    BenchError::Slapd(e.to_string())
}

/// The cold storm: `n` simultaneous first requests to a fresh ldapmux pool at its defaults.
pub(crate) async fn cold_storm(
    slapd: &Slapd,
    users: usize,
    n: usize,
) -> Result<(Measurement, Vec<String>), BenchError> {
    let mut notes = Vec::new();
    settle(slapd, &mut notes, "cold storm").await;
    let total_before = bounded(slapd.monitor_total_connections()).await?;
    let pool = ldapmux::Pool::builder()
        .server(slapd.url())
        .build()
        .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}")))?;
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let pool = pool.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let filter = format!(
                "(uid=user{})",
                XorShift::new(i as u64 + 7).next() % users as u64
            );
            barrier.wait().await;
            let t = Instant::now();
            let r = pool
                .search(PEOPLE_BASE, ldap3::Scope::OneLevel, &filter, &ATTRS)
                .await;
            let end = Instant::now();
            let ok = matches!(&r, Ok(v) if v.len() == 1);
            (ok, t, end, r.err().map(|e| e.to_string()))
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_BOUND;
    let (mut ok, mut failed, mut last, mut lat, mut first_error) =
        (0u64, 0u64, start, Vec::new(), None);
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok((good, t0, end, err))) => {
                if good {
                    ok += 1;
                } else {
                    failed += 1;
                    first_error = first_error.or(err);
                }
                last = last.max(end);
                lat.push(end.duration_since(t0).as_nanos() as u64);
            }
            _ => {
                abort.abort();
                failed += 1;
            }
        }
    }
    let last_ms = last.duration_since(start).as_secs_f64() * 1e3;
    let status = pool.status();
    let server_conns = bounded(slapd.monitor_current_connections()).await?;
    let expected = cold_storm_expected(n, &ldapmux_core::Config::default());
    pool.shutdown().await;
    let total_after = bounded(slapd.monitor_total_connections()).await?;
    let opened_server = total_after.saturating_sub(total_before).saturating_sub(2);
    lat.sort_unstable();
    let m = Measurement {
        contender: "ldapmux_cold_storm".into(),
        conc: n,
        ops_per_s: ok as f64 / (last_ms / 1e3),
        p50_ms: percentile(&lat, 50.0).map_or(f64::NAN, ns_to_ms),
        p99_ms: percentile(&lat, 99.0).map_or(f64::NAN, ns_to_ms),
        failed,
        server_conns,
        first_error,
        extra: vec![
            ("opened".into(), status.counters.opens.to_string()),
            ("opened_server".into(), opened_server.to_string()),
            ("expected".into(), expected.to_string()),
            ("last_answer_ms".into(), format!("{last_ms:.1}")),
        ],
    };
    Ok((m, notes))
}

/// Connections a cold storm of `n` first requests may open under `c`'s
/// placement policy: enough for every request at `max_users_per_conn` each,
/// capped by `max_conns_per_server`, and at least what spreading opens
/// (`spread_conns_per_server`, under the same cap) once they are busy.
pub(crate) fn cold_storm_expected(n: usize, c: &ldapmux_core::Config) -> usize {
    let per_server = c.max_conns_per_server.max(1) as usize;
    let stacked = n.div_ceil(c.max_users_per_conn.max(1) as usize);
    let spread = if n > c.spread_users_per_conn as usize {
        c.spread_conns_per_server as usize
    } else {
        1
    };
    stacked.max(spread).min(per_server)
}

/// How an ldaps (or plain) connection is opened in [`connect_cost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connect {
    /// Our own TCP socket with `TCP_NODELAY`, as ldapmux opens it.
    NoDelay,
    /// ldap3's own connect (Nagle on).
    Ldap3,
}

/// Connect + simple bind (as user0) + unbind, `n` times in a row; one line per way.
pub(crate) async fn connect_cost(
    n_fast: usize,
    n_slow: usize,
) -> Result<Vec<Measurement>, BenchError> {
    let ca = TestCa::new("ldapmux bench CA");
    let slapd = tokio::task::spawn_blocking(move || {
        let cert = ca.issue(&["127.0.0.1"]);
        Slapd::builder()
            .users(10)
            .tls(cert, &ca)
            .start()
            .map(|s| (s, ca))
    })
    .await
    .map_err(|e| BenchError::Setup(format!("slapd start task: {e}")))?
    .map_err(harness)?;
    let (slapd, ca) = slapd;
    let tls = ca.rustls_client_config();
    let ldaps = slapd.ldaps_url().expect("TLS is on");
    let ldaps_port = slapd.ldaps_port().expect("TLS is on");
    let mut out = Vec::new();
    let cases = [
        (
            "ldaps_connect_bind_nodelay",
            ldaps.clone(),
            ldaps_port,
            Connect::NoDelay,
            n_fast,
        ),
        (
            "ldaps_connect_bind_ldap3",
            ldaps.clone(),
            ldaps_port,
            Connect::Ldap3,
            n_slow,
        ),
        (
            "ldap_connect_bind_nodelay",
            slapd.url(),
            slapd.port(),
            Connect::NoDelay,
            n_fast,
        ),
    ];
    for (name, url, port, how, n) in cases {
        let mut lat = Vec::with_capacity(n);
        let mut failed = 0;
        let mut first_error = None;
        let started = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            match tokio::time::timeout(
                Duration::from_secs(5),
                open_bind_unbind(&url, port, how, &tls),
            )
            .await
            {
                Ok(Ok(())) => lat.push(t.elapsed().as_nanos() as u64),
                Ok(Err(e)) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| "took longer than 5 s".to_owned());
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        lat.sort_unstable();
        out.push(Measurement {
            contender: name.into(),
            conc: 1,
            ops_per_s: lat.len() as f64 / secs,
            p50_ms: percentile(&lat, 50.0).map_or(f64::NAN, ns_to_ms),
            p99_ms: percentile(&lat, 99.0).map_or(f64::NAN, ns_to_ms),
            failed,
            server_conns: bounded(slapd.monitor_current_connections()).await?,
            first_error,
            extra: vec![("n".into(), n.to_string())],
        });
    }

    // ldapmux's own path: a fresh pool's first search over ldaps (connect, TLS,
    // anonymous bind, search), timed from the call to the answer.
    let ca_file = ca.write_ca_file(slapd.dir());
    let n = n_slow.max(10);
    let mut lat = Vec::with_capacity(n);
    let (mut failed, mut first_error) = (0, None);
    let started = Instant::now();
    let mut busy = Duration::ZERO;
    for i in 0..n {
        let pool = ldapmux::Pool::builder()
            .server(ldaps.clone())
            .tls_system_roots(false)
            .tls_ca_file(&ca_file)
            .build()
            .map_err(|e| BenchError::Setup(format!("ldapmux ldaps pool: {e}")))?;
        let t = Instant::now();
        let r = pool
            .search(
                PEOPLE_BASE,
                ldap3::Scope::OneLevel,
                &format!("(uid=user{})", i % 10),
                &ATTRS,
            )
            .await;
        let dt = t.elapsed();
        busy += dt;
        match r {
            Ok(v) if v.len() == 1 => lat.push(dt.as_nanos() as u64),
            Ok(v) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("expected 1 entry, got {}", v.len()));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
        pool.shutdown().await;
    }
    let _ = started;
    lat.sort_unstable();
    out.push(Measurement {
        contender: "ldapmux_ldaps_first_search".into(),
        conc: 1,
        ops_per_s: lat.len() as f64 / busy.as_secs_f64(),
        p50_ms: percentile(&lat, 50.0).map_or(f64::NAN, ns_to_ms),
        p99_ms: percentile(&lat, 99.0).map_or(f64::NAN, ns_to_ms),
        failed,
        server_conns: bounded(slapd.monitor_current_connections()).await?,
        first_error,
        extra: vec![("n".into(), n.to_string())],
    });
    drop(slapd);
    Ok(out)
}

async fn open_bind_unbind(
    url: &str,
    port: u16,
    how: Connect,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(), String> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(5))
        .set_config(tls.clone());
    if how == Connect::NoDelay {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        settings = settings.set_std_stream(StdStream::Tcp(
            stream.into_std().map_err(|e| e.to_string())?,
        ));
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|e| e.to_string())?;
    let drive = tokio::spawn(conn.drive());
    let bound = ldap
        .simple_bind(&Slapd::user_dn(0), &Slapd::user_password(0))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.success().map(drop).map_err(|e| e.to_string()));
    let _ = ldap.unbind().await;
    drop(ldap);
    let abort = drive.abort_handle();
    if tokio::time::timeout(Duration::from_secs(1), drive)
        .await
        .is_err()
    {
        abort.abort();
    }
    bound
}

/// Settings of the fail-over timeline.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FailoverPlan {
    pub(crate) conc: usize,
    pub(crate) kill_at: Duration,
    pub(crate) restart_at: Duration,
    pub(crate) end_at: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) hold_down: Duration,
    pub(crate) probe_min: Duration,
    pub(crate) probe_max: Duration,
}

/// Width of a timeline bucket.
pub(crate) const BUCKET: Duration = Duration::from_millis(100);

/// One 100 ms bucket of the timeline.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    /// Start of the bucket, ms since the load started.
    pub t_ms: u64,
    /// Successful operations completed in it, per second.
    pub ops_per_s: f64,
    /// Operations that returned an error in it.
    pub errors: u64,
    /// Connections to the preferred server (pool's view, end of bucket).
    pub conns_a: u32,
    /// Connections to the other server (pool's view, end of bucket).
    pub conns_b: u32,
}

/// The fail-over and fail-back timeline.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// The buckets.
    pub buckets: Vec<Bucket>,
    /// When the preferred server was killed (ms since load start).
    pub kill_ms: f64,
    /// When its restart was asked for, and when it answered again.
    pub restart_ms: f64,
    /// When the restarted server answered its readiness probe.
    pub restarted_ms: f64,
    /// When the pool first showed the preferred server down.
    pub down_seen_ms: Option<f64>,
    /// When the pool first showed it returning (probe answered, hold-down).
    pub returning_ms: Option<f64>,
    /// When every connection was on the preferred server again.
    pub failback_ms: Option<f64>,
    /// Errors surfaced to reads over the whole timeline.
    pub errors: u64,
    /// Errors from the restart on (fail-back).
    pub failback_errors: u64,
    /// From the kill until every operation in flight at the kill had its
    /// answer and one started after the kill had succeeded.
    pub recovery_ms: Option<f64>,
    /// Longest operation that was in flight at the kill.
    pub inflight_at_kill_max_ms: f64,
    /// The settings used.
    pub settings: String,
    /// Successful operations in total.
    pub ok: u64,
    /// The first error surfaced to a read, with when (ms since load start).
    pub first_error: Option<String>,
}

/// The timeline: two slapd, load on a pool preferring the first, `kill -9`, restart.
pub(crate) async fn failover(
    plan: FailoverPlan,
    users: usize,
) -> Result<(Measurement, Timeline), BenchError> {
    let (a, b) = tokio::task::spawn_blocking(move || {
        let a = Slapd::builder().users(users).threads(4).start()?;
        let b = Slapd::builder().users(users).threads(4).start()?;
        Ok::<_, ldapmux_harness::HarnessError>((a, b))
    })
    .await
    .map_err(|e| BenchError::Setup(format!("slapd start task: {e}")))?
    .map_err(harness)?;
    let settings = format!(
        "preferred {} + {}; connect_timeout {:?}, failback_hold_down {:?}, probe_backoff {:?}..{:?}, other settings default; {} tasks of random uid searches; kill -9 at {:?}, restart at {:?}, end at {:?}",
        "A",
        "B",
        plan.connect_timeout,
        plan.hold_down,
        plan.probe_min,
        plan.probe_max,
        plan.conc,
        plan.kill_at,
        plan.restart_at,
        plan.end_at
    );
    let pool = ldapmux::Pool::builder()
        .preferred_server(a.url())
        .server(b.url())
        .connect_timeout(plan.connect_timeout)
        .failback_hold_down(plan.hold_down)
        .probe_backoff(plan.probe_min, plan.probe_max)
        .build()
        .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}")))?;

    let origin = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..plan.conc {
        let pool = pool.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = XorShift::new(1000 + i as u64);
            // (start ns, end ns, ok)
            let mut ops: Vec<(u64, u64, bool)> = Vec::new();
            let mut first_error: Option<String> = None;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let filter = format!("(uid=user{})", rng.next() % users as u64);
                let s = origin.elapsed().as_nanos() as u64;
                let r = pool
                    .search(PEOPLE_BASE, ldap3::Scope::OneLevel, &filter, &ATTRS)
                    .await;
                let e = origin.elapsed().as_nanos() as u64;
                let ok = matches!(&r, Ok(v) if v.len() == 1);
                if !ok && first_error.is_none() {
                    first_error = Some(match r {
                        Ok(v) => format!(
                            "expected 1 entry, got {} (at {:.1} ms)",
                            v.len(),
                            e as f64 / 1e6
                        ),
                        Err(err) => format!("{err} (at {:.1} ms)", e as f64 / 1e6),
                    });
                }
                ops.push((s, e, ok));
                if !ok {
                    tokio::task::yield_now().await;
                }
            }
            (ops, first_error)
        }));
    }
    // Sampler: the pool's view every 10 ms.
    let sampler = {
        let pool = pool.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples: Vec<(f64, u32, u32, u8)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let st = pool.status();
                let (ca, cb) = (
                    st.servers.first().map_or(0, |s| s.conns),
                    st.servers.get(1).map_or(0, |s| s.conns),
                );
                // 0 up, 1 returning, 2 down, 3 not reached yet (or none).
                let h = match st.servers.first().map(|s| &s.health) {
                    Some(Health::Up) => 0,
                    Some(Health::Returning { .. }) => 1,
                    Some(Health::Down { .. }) => 2,
                    _ => 3,
                };
                samples.push((origin.elapsed().as_secs_f64() * 1e3, ca, cb, h));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            samples
        })
    };

    tokio::time::sleep_until(tokio::time::Instant::from_std(origin + plan.kill_at)).await;
    let (mut a, kill_ms) = tokio::task::spawn_blocking(move || {
        let t = origin.elapsed().as_secs_f64() * 1e3;
        let mut a = a;
        a.kill();
        (a, t)
    })
    .await
    .map_err(|e| BenchError::Setup(format!("kill task: {e}")))?;
    tokio::time::sleep_until(tokio::time::Instant::from_std(origin + plan.restart_at)).await;
    let restart_ms = origin.elapsed().as_secs_f64() * 1e3;
    let (a_back, restarted) = tokio::task::spawn_blocking(move || {
        let r = a.restart();
        (a, r.map(|()| origin.elapsed().as_secs_f64() * 1e3))
    })
    .await
    .map_err(|e| BenchError::Setup(format!("restart task: {e}")))?;
    a = a_back;
    let restarted_ms = restarted.map_err(harness)?;
    tokio::time::sleep_until(tokio::time::Instant::from_std(origin + plan.end_at)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let deadline = tokio::time::Instant::now() + JOIN_BOUND;
    let mut ops = Vec::new();
    let mut first_error = None;
    for t in tasks {
        let abort = t.abort_handle();
        match tokio::time::timeout_at(deadline, t).await {
            Ok(Ok((v, err))) => {
                ops.extend(v);
                first_error = first_error.or(err);
            }
            _ => abort.abort(),
        }
    }
    let samples = sampler.await.unwrap_or_default();
    let server_conns = bounded(a.monitor_current_connections()).await?;
    pool.shutdown().await;
    drop((a, b));

    let mut tl = timeline(
        &ops,
        &samples,
        kill_ms,
        restart_ms,
        restarted_ms,
        plan,
        settings,
    );
    tl.first_error = first_error.clone();
    let span_s = plan.end_at.as_secs_f64();
    let mut lat: Vec<u64> = ops.iter().filter(|o| o.2).map(|o| o.1 - o.0).collect();
    lat.sort_unstable();
    let opt = |v: Option<f64>| v.map_or("none".to_owned(), |x| format!("{x:.1}"));
    let m = Measurement {
        contender: "ldapmux_failover".into(),
        conc: plan.conc,
        ops_per_s: tl.ok as f64 / span_s,
        p50_ms: percentile(&lat, 50.0).map_or(f64::NAN, ns_to_ms),
        p99_ms: percentile(&lat, 99.0).map_or(f64::NAN, ns_to_ms),
        failed: tl.errors,
        server_conns,
        first_error: first_error.clone(),
        extra: vec![
            ("errors".into(), tl.errors.to_string()),
            ("recovery_ms".into(), opt(tl.recovery_ms)),
            (
                "inflight_at_kill_max_ms".into(),
                format!("{:.1}", tl.inflight_at_kill_max_ms),
            ),
            ("failback_errors".into(), tl.failback_errors.to_string()),
            (
                "failback_ms_after_restart".into(),
                opt(tl.failback_ms.map(|f| f - tl.restarted_ms)),
            ),
            (
                "connect_timeout_ms".into(),
                plan.connect_timeout.as_millis().to_string(),
            ),
        ],
    };
    Ok((m, tl))
}

fn timeline(
    ops: &[(u64, u64, bool)],
    samples: &[(f64, u32, u32, u8)],
    kill_ms: f64,
    restart_ms: f64,
    restarted_ms: f64,
    plan: FailoverPlan,
    settings: String,
) -> Timeline {
    let bucket_ns = BUCKET.as_nanos() as u64;
    let end_ns = plan.end_at.as_nanos() as u64;
    let n = end_ns.div_ceil(bucket_ns) as usize;
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            t_ms: i as u64 * BUCKET.as_millis() as u64,
            ..Bucket::default()
        })
        .collect();
    let mut ok_per = vec![0u64; n];
    let (mut errors, mut failback_errors, mut ok) = (0, 0, 0);
    let kill_ns = (kill_ms * 1e6) as u64;
    let restart_ns = (restart_ms * 1e6) as u64;
    let mut inflight_end = None::<u64>;
    let mut inflight_max = 0u64;
    let mut first_after = None::<u64>;
    for &(s, e, good) in ops {
        // Operations answered after the load was told to stop are not in the timeline.
        if e >= end_ns {
            continue;
        }
        let b = ((e / bucket_ns) as usize).min(n - 1);
        if good {
            ok += 1;
            ok_per[b] += 1;
        } else {
            errors += 1;
            buckets[b].errors += 1;
            if e >= restart_ns {
                failback_errors += 1;
            }
        }
        if s <= kill_ns && e >= kill_ns {
            inflight_end = Some(inflight_end.map_or(e, |x| x.max(e)));
            inflight_max = inflight_max.max(e - s);
        }
        if good && s > kill_ns {
            first_after = Some(first_after.map_or(e, |x| x.min(e)));
        }
    }
    for (b, c) in buckets.iter_mut().zip(&ok_per) {
        b.ops_per_s = *c as f64 / BUCKET.as_secs_f64();
    }
    for &(t, ca, cb, _) in samples {
        let b = (t / BUCKET.as_millis() as f64) as usize;
        if b >= n {
            continue;
        }
        buckets[b].conns_a = ca;
        buckets[b].conns_b = cb;
    }
    let down_seen_ms = samples
        .iter()
        .find(|s| s.0 >= kill_ms && s.3 == 2)
        .map(|s| s.0);
    let returning_ms = samples
        .iter()
        .find(|s| s.0 >= restart_ms && s.3 == 1)
        .map(|s| s.0);
    let failback_ms = samples
        .iter()
        .find(|s| s.0 >= restarted_ms && s.1 > 0 && s.2 == 0 && s.3 == 0)
        .map(|s| s.0);
    let recovery_ms = match (inflight_end, first_after) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (None, Some(b)) => Some(b),
        _ => None,
    }
    .map(|e| (e.saturating_sub(kill_ns)) as f64 / 1e6);
    Timeline {
        buckets,
        kill_ms,
        restart_ms,
        restarted_ms,
        down_seen_ms,
        returning_ms,
        failback_ms,
        errors,
        failback_errors,
        recovery_ms,
        inflight_at_kill_max_ms: inflight_max as f64 / 1e6,
        settings,
        ok,
        first_error: None,
    }
}

/// Added latency at concurrency 1, paired: one task alternates an operation
/// through a fresh ldapmux pool (defaults) with one on a raw ldap3 connection
/// (opened as ldapmux opens its own), `n` pairs, alternating which goes first.
/// Both see the same moment of a noisy machine.
pub(crate) async fn paired_latency(
    slapd: &Slapd,
    users: usize,
    n: usize,
) -> Result<(Measurement, Vec<String>), BenchError> {
    let mut notes = Vec::new();
    settle(slapd, &mut notes, "paired latency").await;
    let pool = ldapmux::Pool::builder()
        .server(slapd.url())
        .build()
        .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}")))?;
    let (mut ldap, drive) = crate::raw::connect_nodelay(&slapd.url(), slapd.addr())
        .await
        .map_err(|e| BenchError::Setup(format!("raw connect: {e}")))?;
    let mut rng = XorShift::new(4242);
    let warmup = (n / 10).max(50);
    let (mut ours, mut raw, mut diff) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut failed = 0u64;
    let mut first_error = None;
    let started = Instant::now();
    let mut busy_ours = Duration::ZERO;
    for i in 0..warmup + n {
        let filter = format!("(uid=user{})", rng.next() % users as u64);
        let one_ours = async || {
            let t = Instant::now();
            let r = pool
                .search(PEOPLE_BASE, ldap3::Scope::OneLevel, &filter, &ATTRS)
                .await;
            (t.elapsed(), r.map(|v| v.len()).map_err(|e| e.to_string()))
        };
        let (a, b) = if i % 2 == 0 {
            let a = one_ours().await;
            let t = Instant::now();
            let r = crate::raw::search(&mut ldap, &filter).await;
            (a, (t.elapsed(), r.map_err(|e| e.to_string())))
        } else {
            let t = Instant::now();
            let r = crate::raw::search(&mut ldap, &filter).await;
            let b = (t.elapsed(), r.map_err(|e| e.to_string()));
            (one_ours().await, b)
        };
        if i < warmup {
            continue;
        }
        match (a, b) {
            ((da, Ok(1)), (db, Ok(1))) => {
                busy_ours += da;
                ours.push(da.as_nanos() as u64);
                raw.push(db.as_nanos() as u64);
                diff.push(da.as_nanos() as f64 - db.as_nanos() as f64);
            }
            ((_, ra), (_, rb)) => {
                failed += 1;
                let e = ra
                    .err()
                    .or(rb.err())
                    .unwrap_or_else(|| "not 1 entry".into());
                first_error.get_or_insert(e);
            }
        }
    }
    let _ = started;
    let server_conns = bounded(slapd.monitor_current_connections()).await?;
    pool.shutdown().await;
    crate::raw::close(ldap, drive).await;
    ours.sort_unstable();
    raw.sort_unstable();
    let p = |v: &[u64], q| percentile(v, q).map_or(f64::NAN, ns_to_ms);
    let added_p50_us = (p(&ours, 50.0) - p(&raw, 50.0)) * 1e3;
    let paired_us = crate::stats::median(&diff).map_or(f64::NAN, |d| d / 1e3);
    let m = Measurement {
        contender: "ldapmux_paired_latency".into(),
        conc: 1,
        ops_per_s: ours.len() as f64 / busy_ours.as_secs_f64().max(1e-9),
        p50_ms: p(&ours, 50.0),
        p99_ms: p(&ours, 99.0),
        failed,
        server_conns,
        first_error,
        extra: vec![
            ("raw_p50_ms".into(), format!("{:.3}", p(&raw, 50.0))),
            ("raw_p99_ms".into(), format!("{:.3}", p(&raw, 99.0))),
            ("added_p50_us".into(), format!("{added_p50_us:.1}")),
            ("added_paired_median_us".into(), format!("{paired_us:.1}")),
            ("n".into(), ours.len().to_string()),
        ],
    };
    Ok((m, notes))
}

/// The connect timeout of the black-hole scenario.
pub(crate) const BLACKHOLE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// First reads with a black-holed preferred server: a [`FaultProxy`] in
/// [`ProxyMode::Blackhole`] (TCP accepted, nothing ever answered, nothing
/// forwarded) listed as the preferred server, `slapd` as the second one,
/// `connect_timeout` 1 s, every other setting default. For each variant a new
/// pool (as a new user would build it), then `n` reads: all at once
/// (`ldapmux_blackhole`) or one after the other (`…_seq`); each read's time
/// from call to answer. The same with `connect_race_delay(None)`
/// (`…_norace`): the time the connect timeout costs without racing.
///
/// [`FaultProxy`]: ldapmux_harness::FaultProxy
/// [`ProxyMode::Blackhole`]: ldapmux_harness::ProxyMode::Blackhole
pub(crate) async fn blackhole(
    slapd: &Slapd,
    users: usize,
    n: usize,
) -> Result<(Vec<Measurement>, Vec<String>), BenchError> {
    let mut notes = Vec::new();
    let mut out = Vec::new();
    for (race, concurrent) in [(true, true), (true, false), (false, true), (false, false)] {
        let name = format!(
            "ldapmux_blackhole{}{}",
            if race { "" } else { "_norace" },
            if concurrent { "" } else { "_seq" }
        );
        settle(slapd, &mut notes, &name).await;
        let total_before = bounded(slapd.monitor_total_connections()).await?;
        // The proxy never forwards in this mode; its target is only a loopback address.
        let proxy = ldapmux_harness::FaultProxy::start(slapd.addr())
            .await
            .map_err(|e| BenchError::Setup(format!("fault proxy: {e}")))?;
        proxy.set_mode(ldapmux_harness::ProxyMode::Blackhole);
        let mut builder = ldapmux::Pool::builder()
            .preferred_server(proxy.url())
            .server(slapd.url())
            .connect_timeout(BLACKHOLE_CONNECT_TIMEOUT);
        if !race {
            builder = builder.connect_race_delay(None);
        }
        let pool = builder
            .build()
            .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}")))?;
        let started = Instant::now();
        let mut results: Vec<(Duration, Result<(), String>)> = Vec::with_capacity(n);
        let one = |i: usize| {
            let pool = pool.clone();
            let filter = format!(
                "(uid=user{})",
                XorShift::new(i as u64 + 99).next() % users as u64
            );
            async move {
                let t = Instant::now();
                let r = tokio::time::timeout(
                    JOIN_BOUND,
                    pool.search(PEOPLE_BASE, ldap3::Scope::OneLevel, &filter, &ATTRS),
                )
                .await;
                let r = match r {
                    Ok(Ok(v)) if v.len() == 1 => Ok(()),
                    Ok(Ok(v)) => Err(format!("expected 1 entry, got {}", v.len())),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {JOIN_BOUND:?}")),
                };
                (t.elapsed(), r)
            }
        };
        if concurrent {
            let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(one(i))).collect();
            for t in tasks {
                match t.await {
                    Ok(r) => results.push(r),
                    Err(e) => results.push((JOIN_BOUND, Err(format!("task: {e}")))),
                }
            }
        } else {
            for i in 0..n {
                results.push(one(i).await);
            }
        }
        let elapsed = started.elapsed();
        let server_conns = bounded(slapd.monitor_current_connections()).await?;
        let accepted = proxy.accepted();
        if tokio::time::timeout(JOIN_BOUND, pool.shutdown())
            .await
            .is_err()
        {
            notes.push(format!("{name}: pool shutdown took over {JOIN_BOUND:?}"));
        }
        drop(proxy);
        let total_after = bounded(slapd.monitor_total_connections()).await?;
        let opened_server = total_after.saturating_sub(total_before).saturating_sub(2);
        let mut lat: Vec<u64> = results.iter().map(|r| r.0.as_nanos() as u64).collect();
        lat.sort_unstable();
        let failed = results.iter().filter(|r| r.1.is_err()).count() as u64;
        let first_error = results.iter().find_map(|r| r.1.clone().err());
        let p = |q| percentile(&lat, q).map_or(f64::NAN, ns_to_ms);
        let race_delay = ldapmux_core::Config::default().connect_race_delay;
        out.push(Measurement {
            contender: name,
            conc: if concurrent { n } else { 1 },
            ops_per_s: (n as u64 - failed) as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: p(50.0),
            p99_ms: p(99.0),
            failed,
            server_conns,
            first_error,
            extra: vec![
                ("max_ms".into(), format!("{:.1}", p(100.0))),
                ("n".into(), n.to_string()),
                (
                    "race_delay_ms".into(),
                    match (race, race_delay) {
                        (true, Some(d)) => d.as_millis().to_string(),
                        _ => "off".into(),
                    },
                ),
                (
                    "connect_timeout_ms".into(),
                    BLACKHOLE_CONNECT_TIMEOUT.as_millis().to_string(),
                ),
                ("blackhole_accepts".into(), accepted.to_string()),
                ("opened_server".into(), opened_server.to_string()),
            ],
        });
    }
    Ok((out, notes))
}
