//! Targets, `benchmarks.md` and the SVG charts: the targets and checks here,
//! the document, its analysis and its charts in submodules.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::scenarios::FailoverPlan;
use crate::stats::ratio;
use crate::{
    BenchError, BenchSummary, Measurement, Plan, RAW_ARRANGEMENTS, TargetCheck, Timeline, best_raw,
    find,
};

mod analysis;
mod charts;
mod document;

pub(crate) use analysis::analysis;
use charts::{chart_frontier, chart_throughput, chart_timeline};
pub(crate) use document::write_docs;

/// Rows that are scenarios (cold storm, connect cost, fail-over), not throughput windows.
fn is_scenario(name: &str) -> bool {
    name.contains("storm")
        || name.contains("connect_bind")
        || name.contains("ldaps")
        || name.contains("failover")
        || name.contains("paired")
}

/// ldapmux at its defaults or a point of a sweep (not a scenario).
fn is_ldapmux_setting(name: &str) -> bool {
    name == "ldapmux_default"
        || name.starts_with("ldapmux_cap")
        || name.starts_with("ldapmux_spread")
}

/// The (users, conns) of a spread sweep contender's name.
pub(crate) fn spread_of(name: &str) -> Option<(u32, u32)> {
    let (a, b) = name.strip_prefix("ldapmux_spread")?.split_once('x')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The spread pair of ldapmux's defaults.
pub(crate) fn default_spread() -> (u32, u32) {
    let c = ldapmux_core::Config::default();
    (c.spread_users_per_conn, c.spread_conns_per_server)
}

/// Concurrencies at which ldapmux ran at its defaults.
fn concs(ms: &[Measurement]) -> Vec<usize> {
    let mut c: Vec<usize> = ms
        .iter()
        .filter(|m| m.contender == "ldapmux_default")
        .map(|m| m.conc)
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

fn k(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.1}k", x / 1000.0)
    } else {
        format!("{x:.0}")
    }
}

/// Checks `ours / theirs ≥ min` at every concurrency where both ran.
fn ratio_target(
    ms: &[Measurement],
    name: &str,
    ours: &dyn Fn(usize) -> Option<String>,
    theirs: &dyn Fn(usize) -> Option<String>,
    min: f64,
    why_skip: &str,
) -> TargetCheck {
    let mut parts = Vec::new();
    let mut met = true;
    let mut any = false;
    for c in concs(ms) {
        let (Some(a), Some(b)) = (ours(c), theirs(c)) else {
            continue;
        };
        let (Some(ma), Some(mb)) = (find(ms, &a, c), find(ms, &b, c)) else {
            continue;
        };
        let Some(r) = ratio(ma.ops_per_s, mb.ops_per_s) else {
            continue;
        };
        any = true;
        met &= r >= min;
        parts.push(format!(
            "c{c}: {r:.2}× ({a} {} on {} conns vs {b} {} on {})",
            k(ma.ops_per_s),
            ma.server_conns,
            k(mb.ops_per_s),
            mb.server_conns
        ));
    }
    if !any {
        parts.push(format!("not measured ({why_skip})"));
    }
    TargetCheck {
        name: name.into(),
        target: format!("≥ {min}×"),
        measured: parts.join("; "),
        met: met && any,
    }
}

/// Upper bound on the p99 of first answers with a black-holed preferred server.
pub(crate) const BLACKHOLE_P99_MS: f64 = 300.0;

/// `ldapmux_default` over the best raw arrangement at each concurrency where
/// ldapmux ran: (concurrency, ratio, best raw's name) or, with no raw
/// arrangement free of failures there, (concurrency, NaN, "").
pub(crate) fn ratios_vs_best_raw(ms: &[Measurement]) -> Vec<(usize, f64, String)> {
    concs(ms)
        .into_iter()
        .map(|c| {
            let ours = find(ms, "ldapmux_default", c);
            match (ours, best_raw(ms, c)) {
                (Some(o), Some(b)) => (
                    c,
                    ratio(o.ops_per_s, b.ops_per_s).unwrap_or(f64::NAN),
                    b.contender.clone(),
                ),
                _ => (c, f64::NAN, String::new()),
            }
        })
        .collect()
}

fn num(m: &Measurement, key: &str) -> Option<f64> {
    m.get(key)?.parse().ok().filter(|x: &f64| x.is_finite())
}

/// The targets of issue 15 against this run's figures. Pure: every figure
/// comes from `ms`; a target with nothing measured is missed.
pub(crate) fn targets(ms: &[Measurement]) -> Vec<TargetCheck> {
    let mut t = Vec::new();
    // 1. ≥ 0.95× the best raw arrangement at every concurrency.
    {
        let rs = ratios_vs_best_raw(ms);
        let mut parts = Vec::new();
        let mut met = !rs.is_empty();
        for (c, r, best) in &rs {
            let ours = find(ms, "ldapmux_default", *c).expect("concs come from ldapmux_default");
            if r.is_nan() {
                met = false;
                parts.push(format!("c{c}: no raw arrangement with 0 failed"));
                continue;
            }
            met &= *r >= 0.95;
            let b = find(ms, best, *c).expect("named by best_raw");
            parts.push(format!(
                "c{c}: {r:.2}× ({} on {} conns vs {best} {} on {})",
                k(ours.ops_per_s),
                ours.server_conns,
                k(b.ops_per_s),
                b.server_conns
            ));
        }
        if parts.is_empty() {
            parts.push("not measured".into());
        }
        t.push(TargetCheck {
            name: "ldapmux defaults vs the best raw arrangement (raw_shared, raw_per_task, raw_n_conns with 0 failed)".into(),
            target: "≥ 0.95× at every concurrency".into(),
            measured: parts.join("; "),
            met,
        });
    }
    // 2. 0 failed operations for ldapmux, everywhere; raw failures reported beside.
    {
        // The fail-over timeline (two other slapd, kill -9, its own
        // settings) has a check of its own.
        let ours: Vec<&Measurement> = ms
            .iter()
            .filter(|m| m.contender.starts_with("ldapmux") && m.contender != "ldapmux_failover")
            .collect();
        let bad: Vec<String> = ours
            .iter()
            .filter(|m| m.failed > 0)
            .map(|m| {
                format!(
                    "{} c{} failed {} ({:?})",
                    m.contender,
                    m.conc,
                    m.failed,
                    m.first_error.as_deref().unwrap_or("")
                )
            })
            .collect();
        let raw_failed: Vec<String> = ms
            .iter()
            .filter(|m| m.contender.starts_with("raw_") && m.failed > 0)
            .map(|m| {
                format!(
                    "{} c{} failed {} ({:?})",
                    m.contender,
                    m.conc,
                    m.failed,
                    m.first_error.as_deref().unwrap_or("")
                )
            })
            .collect();
        let mut measured = if bad.is_empty() {
            format!("0 failed in all {} ldapmux rows", ours.len())
        } else {
            bad.join("; ")
        };
        if !raw_failed.is_empty() {
            measured.push_str(&format!("; for comparison {}", raw_failed.join("; ")));
        }
        t.push(TargetCheck {
            name: "ldapmux: failed operations, every concurrency and scenario on the run's slapd"
                .into(),
            target: "0".into(),
            measured,
            met: !ours.is_empty() && bad.is_empty(),
        });
    }
    // 3. ≥ 1.8× the peers at their defaults.
    let def = |_: usize| Some("ldapmux_default".to_owned());
    for peer in ["bb8_default", "deadpool_default"] {
        let named = move |_: usize| Some(peer.to_owned());
        t.push(ratio_target(
            ms,
            &format!("ldapmux defaults vs {peer}"),
            &def,
            &named,
            1.8,
            "peer not run",
        ));
    }
    // 4. At c ≥ 64, at most 1/4 of the connections one-per-task uses.
    {
        let mut parts = Vec::new();
        let mut met = true;
        for c in concs(ms).into_iter().filter(|&c| c >= 64) {
            let (Some(o), Some(p)) = (find(ms, "ldapmux_default", c), find(ms, "raw_per_task", c))
            else {
                continue;
            };
            met &= o.server_conns * 4 <= p.server_conns;
            parts.push(format!(
                "c{c}: {} vs {} ({:.3})",
                o.server_conns,
                p.server_conns,
                o.server_conns as f64 / p.server_conns.max(1) as f64
            ));
        }
        let any = !parts.is_empty();
        if !any {
            parts.push("not measured".into());
        }
        t.push(TargetCheck {
            name: "server connections at c ≥ 64: ldapmux defaults vs raw_per_task".into(),
            target: "≤ 1/4".into(),
            measured: parts.join("; "),
            met: met && any,
        });
    }
    // 5. The cold storm opens no more than the policy allows.
    {
        let storm = ms.iter().find(|m| m.contender == "ldapmux_cold_storm");
        let (measured, met, n, expected) = match storm {
            Some(m) => {
                let server = m.get("opened_server").and_then(|v| v.parse::<u64>().ok());
                let pool = m.get("opened").and_then(|v| v.parse::<u64>().ok());
                let exp = m.get("expected").and_then(|v| v.parse::<u64>().ok());
                let met = matches!((server, pool, exp), (Some(s), Some(p), Some(e)) if s <= e && p <= e)
                    && m.failed == 0;
                (
                    format!(
                        "{} opened (slapd's total-connections delta), {} (pool), {} open at the end; last answer after {} ms, {} failed",
                        m.get("opened_server").unwrap_or("?"),
                        m.get("opened").unwrap_or("?"),
                        m.server_conns,
                        m.get("last_answer_ms").unwrap_or("?"),
                        m.failed
                    ),
                    met,
                    m.conc.to_string(),
                    m.get("expected").unwrap_or("?").to_owned(),
                )
            }
            None => ("not measured".into(), false, "1000".into(), "?".into()),
        };
        t.push(TargetCheck {
            name: format!(
                "cold storm of {n} first requests: connections opened vs the policy's count (⌈n / max_users_per_connection⌉, ≥ spread_connections_per_server, ≤ max_connections_per_server)"
            ),
            target: format!("≤ {expected}"),
            measured,
            met,
        });
    }
    // 6. Client CPU per operation ≤ 1.1× raw ldap3's on the same connections.
    for c in [1usize, 64] {
        let ours = find(ms, "ldapmux_default", c).and_then(|m| num(m, "client_us_per_op"));
        // c1: every raw arrangement is one connection with one operation in
        // flight, the same thing measured in separate windows: their mean.
        // c64: the best raw arrangement's.
        let (theirs, what) = if c == 1 {
            let v: Vec<f64> = RAW_ARRANGEMENTS
                .iter()
                .filter_map(|n| find(ms, n, c))
                .filter(|m| m.failed == 0 && m.server_conns <= 1)
                .filter_map(|m| num(m, "client_us_per_op"))
                .collect();
            (
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
                format!("mean of the {} raw arrangements on 1 connection", v.len()),
            )
        } else {
            let b = best_raw(ms, c);
            (
                b.and_then(|m| num(m, "client_us_per_op")),
                b.map_or("best raw".into(), |m| {
                    format!("best raw, {} on {} conns", m.contender, m.server_conns)
                }),
            )
        };
        let (measured, met) = match (ours, theirs) {
            (Some(o), Some(r)) if r > 0.0 => (
                format!("{:.2}× ({o:.1} µs vs {r:.1} µs, {what})", o / r),
                o / r <= 1.1,
            ),
            _ => ("not measured".into(), false),
        };
        t.push(TargetCheck {
            name: format!("client CPU per operation at c{c}: ldapmux defaults vs raw ldap3"),
            target: "≤ 1.1×".into(),
            measured,
            met,
        });
    }
    // 7. Added p50 latency at c1 (paired).
    {
        let (measured, met) = match find(ms, "ldapmux_paired_latency", 1)
            .and_then(|p| Some((p, num(p, "added_p50_us")?)))
        {
            Some((p, a)) => (
                format!(
                    "{a:.1} µs (paired, {} alternating operations each: ldapmux p50 {:.1} µs vs raw {} ms; median of per-pair differences {} µs)",
                    p.get("n").unwrap_or("?"),
                    p.p50_ms * 1000.0,
                    p.get("raw_p50_ms").unwrap_or("?"),
                    p.get("added_paired_median_us").unwrap_or("?")
                ),
                a <= 5.0,
            ),
            None => ("not measured".into(), false),
        };
        t.push(TargetCheck {
            name: "added p50 latency at c1 (ldapmux − raw single connection)".into(),
            target: "≤ 5 µs".into(),
            measured,
            met,
        });
    }
    // 8. First answers with a black-holed preferred server.
    {
        let mut parts = Vec::new();
        let mut met = true;
        let mut any = false;
        for name in ["ldapmux_blackhole", "ldapmux_blackhole_seq"] {
            if let Some(m) = ms.iter().find(|m| m.contender == name) {
                any = true;
                met &= m.p99_ms <= BLACKHOLE_P99_MS && m.failed == 0;
                parts.push(format!(
                    "{name}: p99 {:.0} ms (p50 {:.0}, max {}), {} failed",
                    m.p99_ms,
                    m.p50_ms,
                    m.get("max_ms").unwrap_or("?"),
                    m.failed
                ));
            }
        }
        for name in ["ldapmux_blackhole_norace", "ldapmux_blackhole_norace_seq"] {
            if let Some(m) = ms.iter().find(|m| m.contender == name) {
                parts.push(format!("without racing ({name}): p99 {:.0} ms", m.p99_ms));
            }
        }
        if !any {
            parts.push("not measured".into());
        }
        t.push(TargetCheck {
            name: "first answers with a black-holed preferred server (connect_timeout 1 s, other settings default)".into(),
            target: format!("p99 ≤ {BLACKHOLE_P99_MS:.0} ms, 0 failed"),
            measured: parts.join("; "),
            met: met && any,
        });
    }
    t
}

/// Checks of earlier issues that still hold (fail-over and fail-back), not
/// counted among issue 15's targets.
pub(crate) fn checks(tl: Option<&Timeline>, fp: Option<&FailoverPlan>) -> Vec<TargetCheck> {
    let mut t = Vec::new();
    if let (Some(tl), Some(fp)) = (tl, fp) {
        t.push(TargetCheck {
            name: "fail-over: errors surfaced to reads".into(),
            target: "0".into(),
            measured: format!(
                "{} errors, {} ok operations{}",
                tl.errors,
                tl.ok,
                tl.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!("; first: {e:?}"))
            ),
            met: tl.errors == 0,
        });
        let limit = fp.connect_timeout.as_secs_f64() * 1e3 + 50.0;
        t.push(TargetCheck {
            name: "fail-over: recovery after kill -9".into(),
            target: format!("≤ connect timeout + 50 ms = {limit:.0} ms"),
            measured: match tl.recovery_ms {
                Some(r) => format!(
                    "{r:.1} ms (longest operation caught by the kill: {:.1} ms)",
                    tl.inflight_at_kill_max_ms
                ),
                None => "no recovery seen".into(),
            },
            met: tl.recovery_ms.is_some_and(|r| r <= limit),
        });
        t.push(TargetCheck {
            name: "fail-back: failed operations".into(),
            target: "0".into(),
            measured: format!(
                "{} failed after the restart; all connections back on the preferred server {}",
                tl.failback_errors,
                tl.failback_ms
                    .map_or("never (within the timeline)".into(), |f| format!(
                        "{:.0} ms after it answered again",
                        f - tl.restarted_ms
                    ))
            ),
            met: tl.failback_errors == 0 && tl.failback_ms.is_some(),
        });
    }
    t
}

/// `targets: N of M met`, then one line per target.
pub(crate) fn target_lines(targets: &[TargetCheck]) -> Vec<String> {
    let met = targets.iter().filter(|t| t.met).count();
    let mut v = vec![format!("targets: {met} of {} met", targets.len())];
    for t in targets {
        v.push(format!(
            "  {} {}: {} (wanted {})",
            if t.met { "met   " } else { "MISSED" },
            t.name,
            t.measured,
            t.target
        ));
    }
    v
}
