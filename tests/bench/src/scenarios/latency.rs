//! Added latency at concurrency 1 (paired with raw ldap3) and first answers
//! with a black-holed preferred server.

use super::*;

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
