//! The scenarios beside the throughput windows: the cold storm and the cost
//! of an ldaps connect + bind here; the fail-over / fail-back timeline, the
//! paired latency and the black-holed server in submodules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, StdStream};
use ldapmux::Health;
use ldapmux_harness::{PEOPLE_BASE, Slapd, TestCa};

use crate::raw::ATTRS;
use crate::stats::{ns_to_ms, percentile};
use crate::window::{XorShift, bounded, settle};
use crate::{BenchError, Measurement};

mod failover;
mod latency;

pub use failover::{Bucket, Timeline};
pub(crate) use failover::{FailoverPlan, failover};
pub(crate) use latency::{BLACKHOLE_CONNECT_TIMEOUT, blackhole, paired_latency};

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
