//! The fail-over / fail-back timeline: a load through ldapmux while the
//! preferred server is killed and restarted, in 100 ms buckets.

use super::*;

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
