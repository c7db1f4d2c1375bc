//! Targets, `benchmarks.md` and the SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::scenarios::FailoverPlan;
use crate::stats::ratio;
use crate::{BenchError, BenchSummary, Measurement, Plan, TargetCheck, Timeline, find};

/// Rows that are scenarios (cold storm, connect cost, fail-over), not throughput windows.
fn is_scenario(name: &str) -> bool {
    name.contains("storm")
        || name.contains("connect_bind")
        || name.contains("ldaps")
        || name.contains("failover")
        || name.contains("paired")
}

/// ldapmux at its defaults or a point of the cap sweep (not a scenario).
fn is_ldapmux_setting(name: &str) -> bool {
    name == "ldapmux_default" || name.starts_with("ldapmux_cap")
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

/// The issue's targets against this run's figures.
pub(crate) fn targets(
    ms: &[Measurement],
    tl: Option<&Timeline>,
    fp: Option<&FailoverPlan>,
) -> Vec<TargetCheck> {
    let def = |_: usize| Some("ldapmux_default".to_owned());
    let named = |n: &'static str| move |_: usize| Some(n.to_owned());
    let mut t = vec![
        ratio_target(
            ms,
            "pool overhead: ldapmux defaults vs raw (3) on the same N connections",
            &def,
            &named("raw_n_conns"),
            0.97,
            "raw_n_conns not run",
        ),
        ratio_target(
            ms,
            "ldapmux defaults vs raw (1) one shared connection",
            &def,
            &named("raw_shared"),
            0.95,
            "raw_shared not run",
        ),
        ratio_target(
            ms,
            "ldapmux defaults vs raw (2) one connection per task",
            &def,
            &named("raw_per_task"),
            0.95,
            "raw_per_task not run",
        ),
    ];
    // Zero failed ops where (1) fails.
    {
        let mut parts = Vec::new();
        let mut met = true;
        for c in concs(ms) {
            if let (Some(raw), Some(ours)) =
                (find(ms, "raw_shared", c), find(ms, "ldapmux_default", c))
                && raw.failed > 0
            {
                met &= ours.failed == 0;
                parts.push(format!(
                    "c{c}: raw_shared failed {} ops ({:?}), ldapmux failed {}",
                    raw.failed,
                    raw.first_error.as_deref().unwrap_or(""),
                    ours.failed
                ));
            }
        }
        if parts.is_empty() {
            parts.push("raw_shared failed nowhere in this run".into());
        }
        t.push(TargetCheck {
            name: "zero failed ops where raw (1) fails".into(),
            target: "0 failed".into(),
            measured: parts.join("; "),
            met,
        });
    }
    for peer in ["bb8_default", "deadpool_default"] {
        t.push(ratio_target(
            ms,
            &format!("ldapmux defaults vs {peer}"),
            &def,
            &named(peer),
            1.8,
            "peer not run",
        ));
    }
    for peer in ["bb8_tuned", "deadpool_tuned"] {
        t.push(ratio_target(
            ms,
            &format!("equal connections: ldapmux cap 1 (one user per connection) vs {peer} (size = concurrency)"),
            &named("ldapmux_cap1"),
            &named(peer),
            1.0,
            "peer not run",
        ));
    }
    for peer in ["bb8_tuned", "deadpool_tuned"] {
        // ldapmux at its defaults, if it used ≤ 1/8 of the peer's connections.
        let default_fewer = |c: usize| {
            let ours = find(ms, "ldapmux_default", c)?;
            let theirs = find(ms, peer, c)?;
            (ours.server_conns * 8 <= theirs.server_conns).then(|| "ldapmux_default".to_owned())
        };
        t.push(ratio_target(
            ms,
            &format!("≤ 1/8 of the connections: ldapmux defaults vs {peer}"),
            &default_fewer,
            &named(peer),
            0.9,
            "no concurrency where ldapmux used ≤ 1/8 of the peer's connections",
        ));
        // The fastest ldapmux setting of the run (defaults or the cap sweep) within 1/8.
        let best_fewer = |c: usize| {
            let theirs = find(ms, peer, c)?;
            ms.iter()
                .filter(|m| m.conc == c && is_ldapmux_setting(&m.contender))
                .filter(|m| m.server_conns * 8 <= theirs.server_conns)
                .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s))
                .map(|m| m.contender.clone())
        };
        t.push(ratio_target(
            ms,
            &format!(
                "≤ 1/8 of the connections: the fastest ldapmux setting of the sweep within that bound vs {peer}"
            ),
            &best_fewer,
            &named(peer),
            0.9,
            "no ldapmux setting used ≤ 1/8 of the peer's connections",
        ));
    }
    // Added latency at concurrency 1: the paired measurement when it ran,
    // else the windows' medians.
    {
        let windows = match (find(ms, "ldapmux_default", 1), find(ms, "raw_shared", 1)) {
            (Some(o), Some(r)) => Some((
                (o.p50_ms - r.p50_ms) * 1000.0,
                format!(
                    "windows: ldapmux p50 {:.1} µs vs raw single connection {:.1} µs",
                    o.p50_ms * 1000.0,
                    r.p50_ms * 1000.0
                ),
            )),
            _ => None,
        };
        let paired = find(ms, "ldapmux_paired_latency", 1).and_then(|p| {
            let added: f64 = p.get("added_p50_us")?.parse().ok()?;
            Some((
                added,
                format!(
                    "paired, {} alternating operations each: ldapmux p50 {:.1} µs vs raw {} ms, median of per-pair differences {} µs",
                    p.get("n").unwrap_or("?"),
                    p.p50_ms * 1000.0,
                    p.get("raw_p50_ms").unwrap_or("?"),
                    p.get("added_paired_median_us").unwrap_or("?")
                ),
            ))
        });
        let (measured, met) = match (&paired, &windows) {
            (Some((a, text)), w) => (
                format!(
                    "{a:.1} µs ({text}){}",
                    w.as_ref()
                        .map_or(String::new(), |(b, t)| format!("; {t}: {b:.1} µs"))
                ),
                *a <= 20.0,
            ),
            (None, Some((b, t))) => (format!("{b:.1} µs ({t})"), *b <= 20.0),
            (None, None) => ("not measured".into(), false),
        };
        t.push(TargetCheck {
            name: "added latency at concurrency 1 (p50, ldapmux − raw single connection)".into(),
            target: "≤ 20 µs".into(),
            measured,
            met,
        });
    }
    if let Some(m) = ms.iter().find(|m| m.contender == "ldapmux_cold_storm") {
        let opened = m.get("opened").unwrap_or("?");
        let expected = m.get("expected").unwrap_or("?");
        t.push(TargetCheck {
            name: format!("cold storm of {}: connections opened = what the caps allow", m.conc),
            target: format!("= {expected}"),
            measured: format!(
                "{opened} opened (pool), {} (slapd's total-connections delta), {} open at the end; last answer after {} ms, {} failed",
                m.get("opened_server").unwrap_or("?"),
                m.server_conns,
                m.get("last_answer_ms").unwrap_or("?"),
                m.failed
            ),
            met: opened == expected && m.failed == 0,
        });
    }
    if let (Some(tl), Some(fp)) = (tl, fp) {
        t.push(TargetCheck {
            name: "fail-over: errors surfaced to reads".into(),
            target: "0".into(),
            measured: format!("{} errors, {} ok operations", tl.errors, tl.ok),
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

/// Facts about the machine, for the document.
fn machine() -> Vec<(String, String)> {
    let cmd = |c: &str, args: &[&str]| {
        std::process::Command::new(c)
            .args(args)
            .output()
            .ok()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s.trim().to_owned()
            })
            .unwrap_or_else(|| "?".into())
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let slapd = cmd(ldapmux_harness::SLAPD_PATH, &["-VV"]);
    let slapd = slapd
        .lines()
        .find(|l| l.contains("slapd"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    vec![
        ("nproc".into(), cmd("nproc", &[])),
        ("CPU".into(), cpu),
        ("kernel".into(), cmd("uname", &["-sr"])),
        ("slapd".into(), slapd),
        ("rustc".into(), cmd("rustc", &["--version"])),
        ("date (UTC)".into(), cmd("date", &["-u", "+%Y-%m-%d %H:%M"])),
    ]
}

fn docs_err(path: &Path, e: impl std::fmt::Display) -> BenchError {
    BenchError::Docs {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Writes `benchmarks.md` and the charts into `dir`; returns the files written.
pub(crate) fn write_docs(
    dir: &Path,
    s: &BenchSummary,
    plan: &Plan,
    settings: &BTreeMap<String, String>,
) -> Result<Vec<PathBuf>, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| docs_err(dir, e))?;
    let mut files = Vec::new();
    let throughput = dir.join("throughput.svg");
    chart_throughput(&throughput, &s.measurements).map_err(|e| docs_err(&throughput, e))?;
    files.push(throughput);
    let frontier = dir.join("cap-frontier.svg");
    chart_frontier(&frontier, &s.measurements).map_err(|e| docs_err(&frontier, e))?;
    files.push(frontier);
    if let Some(tl) = &s.timeline {
        let f = dir.join("failover-timeline.svg");
        chart_timeline(&f, tl).map_err(|e| docs_err(&f, e))?;
        files.push(f);
    }
    let md = dir.join("benchmarks.md");
    std::fs::write(&md, markdown(s, plan, settings)).map_err(|e| docs_err(&md, e))?;
    files.insert(0, md);
    Ok(files)
}

/// How the plan's groups interleave, in words.
fn rounds_text(plan: &Plan) -> String {
    let mut parts = Vec::new();
    for g in &plan.groups {
        let names: Vec<String> = g.kinds.iter().map(|k| format!("`{}`", k.name())).collect();
        let at = g
            .concs
            .as_ref()
            .map_or("every concurrency".to_owned(), |c| {
                let c: Vec<String> = c.iter().map(|c| c.to_string()).collect();
                format!("concurrency {}", c.join(", "))
            });
        let rounds = match g.rounds_at_1 {
            Some(r) if r != g.rounds => format!("{} rounds ({r} at concurrency 1)", g.rounds),
            _ if g.rounds == 1 => "once".to_owned(),
            _ => format!("{} rounds", g.rounds),
        };
        parts.push(format!("{} at {at}: {rounds}", names.join(", ")));
    }
    format!(
        "{}. Within a round every contender of the group runs once; the order rotates by one \
         each round, so each contender's rounds are spread over the same minutes as the others'. \
         Tables give the median over rounds and the min–max spread of ops/s; ratios are ratios of \
         medians.",
        parts.join("; ")
    )
}

fn row(m: &Measurement) -> String {
    let spread = match (m.get("ops_min"), m.get("ops_max")) {
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => String::new(),
    };
    format!(
        "| {} | {:.0} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} | {} |",
        m.contender,
        m.ops_per_s,
        spread,
        m.p50_ms,
        m.p99_ms,
        m.failed,
        m.server_conns,
        m.get("opened").unwrap_or(""),
        m.get("client_us_per_op").unwrap_or(""),
        m.get("slapd_us_per_op").unwrap_or(""),
        m.get("foreign_cpu_pct").unwrap_or(""),
        m.get("rounds").unwrap_or("1"),
    )
}

fn markdown(s: &BenchSummary, plan: &Plan, settings: &BTreeMap<String, String>) -> String {
    let ms = &s.measurements;
    let mut d = String::new();
    let _ = writeln!(
        d,
        "# Benchmarks: ldapmux vs raw ldap3, bb8-ldap and deadpool\n"
    );
    let _ = writeln!(
        d,
        "Measured by `ldapmux-bench` ({} run, {:.0} s). Every figure below comes from one run on one \
         machine, against the same slapd; compare ratios, not absolutes (absolute figures swing \
         between runs on a shared 2-core box).\n",
        plan.name,
        s.elapsed.as_secs_f64()
    );
    let _ = writeln!(d, "## Reproduce\n");
    let _ = writeln!(
        d,
        "```sh\nmake bench                 # the full run, rewrites docs/results/\nldapmux bench --quick      # ≤ 90 s, prints the result lines only\ncargo run --release -p ldapmux-bench --example run -- --docs docs/results   # the same full run\n```\n"
    );
    let _ = writeln!(d, "## Machine\n\n| what | value |\n| --- | --- |");
    for (k, v) in machine() {
        let _ = writeln!(d, "| {k} | {v} |");
    }
    let _ = writeln!(
        d,
        "| load average (1/5/15 min) at start / end | {} / {} |",
        s.loadavg.0, s.loadavg.1
    );
    let _ = writeln!(
        d,
        "\nClient and slapd share the CPUs. The benchmark runs on its own tokio multi-thread runtime \
         with one worker per CPU.\n"
    );
    let _ = writeln!(d, "## Method\n");
    let _ = writeln!(
        d,
        "* One slapd (OpenLDAP, `ldapmux_harness::Slapd`): {} users, `threads {}`, mdb, everything \
         else the harness's defaults (anonymous reads, `conn_max_pending` 100). Nothing raised system-wide.\n\
         * Operation: `(uid=userN)`, N uniformly random, base `ou=people,dc=example,dc=com`, one level, \
         attributes `cn mail`; an operation counts as successful only with exactly one entry.\n\
         * Each contender at each concurrency gets fresh connections: set up, {:?} warm-up, {:?} \
         measuring window (operations completed inside it), then slapd's monitor is asked how many \
         client connections it has (`server conns`, the contender still holding them and still under \
         load), then everything is closed and the next contender starts only once slapd shows 0 \
         connections (bounded wait). `opened` = slapd's total-connections delta over the contender \
         (minus the monitor's own queries).\n\
         * Rounds: {}\n\
         * CPU per operation: user + system time of this process (`client µs/op`: tasks, pool, \
         ldap3) and of slapd (`slapd µs/op`) over the measuring window, from `/proc/<pid>/stat`, \
         divided by the successful operations. `others' CPU %`: CPU time used by every other \
         process during the window (busy time from `/proc/stat` minus this process and slapd), in \
         % of the machine. The machine is shared: before each window the run waits (at most {:?} \
         per window, {:?} in all) until other processes use at most {:.0} % of the CPU, and a window \
         during which they used more is measured once more (the second figure is kept either way).\n\
         * Latency: every successful operation's time from call to answer; p50/p99 by nearest rank.\n",
        plan.users,
        plan.slapd_threads,
        plan.window.warmup,
        plan.window.measure,
        rounds_text(plan),
        plan.quiet_wait,
        plan.quiet_budget,
        plan.retry_foreign_pct,
    );
    let _ = writeln!(
        d,
        "### Contender settings\n\n| contender | settings |\n| --- | --- |"
    );
    for (name, v) in settings {
        let _ = writeln!(d, "| {name} | {v} |");
    }
    let _ = writeln!(
        d,
        "\n## Targets (issue 8)\n\n| target | wanted | measured | |\n| --- | --- | --- | --- |"
    );
    for t in &s.targets {
        let _ = writeln!(
            d,
            "| {} | {} | {} | {} |",
            t.name,
            t.target,
            t.measured,
            if t.met { "met" } else { "**missed**" }
        );
    }
    let _ = writeln!(
        d,
        "\n`ratio_vs_raw_min` = {:.3} (ldapmux at its defaults over the better of raw (1) and (2), the lowest across concurrencies).\n",
        s.ratio_vs_raw_min
    );
    d.push_str(&analysis(s));
    let _ = writeln!(
        d,
        "\n## Throughput\n\n![throughput vs concurrency](throughput.svg)\n"
    );
    for c in concs(ms) {
        let _ = writeln!(
            d,
            "### Concurrency {c}\n\n| contender | ops/s (median) | spread | p50 ms | p99 ms | failed | server conns | opened | client µs/op | slapd µs/op | others' CPU % | rounds |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        );
        for m in ms
            .iter()
            .filter(|m| m.conc == c && !is_scenario(&m.contender))
        {
            let _ = writeln!(d, "{}", row(m));
        }
        for m in ms
            .iter()
            .filter(|m| m.conc == c && m.first_error.is_some() && !is_scenario(&m.contender))
        {
            let _ = writeln!(
                d,
                "\n`{}` first error: `{}`",
                m.contender,
                m.first_error.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(d);
    }
    let _ = writeln!(
        d,
        "## The cap frontier\n\nldapmux's users-per-connection cap decides how many connections a \
         load needs (⌈concurrency / cap⌉, the per-server limit raised to max(16, concurrency) for the \
         sweep). Throughput against the connections slapd saw:\n\n![cap frontier](cap-frontier.svg)\n\n\
         | conc | cap | server conns | ops/s | p99 ms |\n| --- | --- | --- | --- | --- |"
    );
    for c in concs(ms) {
        let mut pts: Vec<(u32, &Measurement)> = ms
            .iter()
            .filter(|m| m.conc == c)
            .filter_map(|m| {
                let cap = match m.contender.as_str() {
                    "ldapmux_default" => 64,
                    n => n.strip_prefix("ldapmux_cap")?.parse().ok()?,
                };
                Some((cap, m))
            })
            .collect();
        pts.sort_by_key(|p| p.0);
        for (cap, m) in pts {
            let label = if m.contender == "ldapmux_default" {
                "64 (default)".to_owned()
            } else {
                cap.to_string()
            };
            let _ = writeln!(
                d,
                "| {c} | {label} | {} | {:.0} | {:.3} |",
                m.server_conns, m.ops_per_s, m.p99_ms
            );
        }
    }
    if let Some(m) = find(ms, "ldapmux_paired_latency", 1) {
        let _ = writeln!(
            d,
            "\n## Added latency at concurrency 1 (paired)\n\nOne task alternates a search through a \
             fresh ldapmux pool (defaults, one connection) with one on a raw ldap3 connection opened \
             the way ldapmux opens its own (TCP_NODELAY, anonymous bind), the order swapped every \
             pair, against the same slapd, after a warm-up. Both halves of a pair see the same \
             moment of the machine, which the separate windows above do not.\n\n\
             | pairs | ldapmux p50 | raw p50 | added p50 | median per-pair difference | ldapmux p99 | raw p99 | failed |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | {} | {:.1} µs | {:.1} µs | {} µs | {} µs | {:.1} µs | {:.1} µs | {} |",
            m.get("n").unwrap_or("?"),
            m.p50_ms * 1e3,
            m.get("raw_p50_ms")
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
                * 1e3,
            m.get("added_p50_us").unwrap_or("?"),
            m.get("added_paired_median_us").unwrap_or("?"),
            m.p99_ms * 1e3,
            m.get("raw_p99_ms")
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
                * 1e3,
            m.failed
        );
    }
    if let Some(m) = ms.iter().find(|m| m.contender == "ldapmux_cold_storm") {
        let _ = writeln!(
            d,
            "\n## Cold storm\n\n{} simultaneous first requests (all released by one barrier) to a fresh \
             ldapmux pool at its defaults (64 users per connection, 16 connections per server).\n\n\
             | opened (pool) | opened (slapd delta) | expected | open at the end | last answer | p50 | p99 | failed |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | {} | {} | {} | {} | {} ms | {:.2} ms | {:.2} ms | {} |",
            m.conc,
            m.get("opened").unwrap_or("?"),
            m.get("opened_server").unwrap_or("?"),
            m.get("expected").unwrap_or("?"),
            m.server_conns,
            m.get("last_answer_ms").unwrap_or("?"),
            m.p50_ms,
            m.p99_ms,
            m.failed
        );
    }
    let cc: Vec<&Measurement> = ms
        .iter()
        .filter(|m| {
            m.contender.contains("connect_bind") || m.contender == "ldapmux_ldaps_first_search"
        })
        .collect();
    if !cc.is_empty() {
        let _ = writeln!(
            d,
            "\n## Connect + bind cost\n\nA slapd with TLS (certificate from the harness's test CA), \
             one connection at a time: connect, simple bind as `uid=user0`, unbind, wait for the \
             socket to close. `nodelay`: our own TCP socket with `TCP_NODELAY` handed to ldap3 (what \
             ldapmux does); `ldap3`: ldap3's own connect. `ldapmux_ldaps_first_search`: a fresh \
             ldapmux pool's first search over ldaps (connect, TLS, anonymous bind, search), timed from \
             the call to the answer.\n\n| what | n | per second | p50 ms | p99 ms | failed |\n| --- | --- | --- | --- | --- | --- |"
        );
        for m in cc {
            let _ = writeln!(
                d,
                "| {} | {} | {:.0} | {:.3} | {:.3} | {} |",
                m.contender,
                m.get("n").unwrap_or("?"),
                m.ops_per_s,
                m.p50_ms,
                m.p99_ms,
                m.failed
            );
        }
    }
    if let Some(tl) = &s.timeline {
        let _ = writeln!(
            d,
            "\n## Fail-over and fail-back\n\nTwo slapd, A preferred. Settings: {}.\n\n\
             ![fail-over timeline](failover-timeline.svg)\n\n\
             | event | ms since load start |\n| --- | --- |\n\
             | A killed (`kill -9`) | {:.0} |\n| pool shows A down | {} |\n| A restart asked | {:.0} |\n\
             | A answers again | {:.0} |\n| pool shows A returning (hold-down) | {} |\n\
             | every connection back on A | {} |\n\n\
             Errors surfaced to reads: {} (of {} successful operations); recovery after the kill: {} \
             (every operation in flight at the kill answered and a new one succeeded; the longest \
             operation caught by the kill took {:.1} ms); failed operations from the restart on: {}.\n\n\
             Buckets (100 ms) around the events:\n\n| t ms | ops/s | errors | conns A | conns B |\n| --- | --- | --- | --- | --- |",
            tl.settings,
            tl.kill_ms,
            opt(tl.down_seen_ms),
            tl.restart_ms,
            tl.restarted_ms,
            opt(tl.returning_ms),
            opt(tl.failback_ms),
            tl.errors,
            tl.ok,
            tl.recovery_ms
                .map_or("none".into(), |r| format!("{r:.1} ms")),
            tl.inflight_at_kill_max_ms,
            tl.failback_errors,
        );
        for b in &tl.buckets {
            let t = b.t_ms as f64;
            let near = |e: f64| (t - e).abs() <= 350.0;
            if near(tl.kill_ms)
                || near(tl.restarted_ms)
                || tl.failback_ms.is_some_and(near)
                || b.errors > 0
            {
                let _ = writeln!(
                    d,
                    "| {} | {:.0} | {} | {} | {} |",
                    b.t_ms, b.ops_per_s, b.errors, b.conns_a, b.conns_b
                );
            }
        }
    }
    if !s.notes.is_empty() {
        let _ = writeln!(d, "\n## Notes from the run\n");
        for n in &s.notes {
            let _ = writeln!(d, "* {n}");
        }
    }
    let _ = writeln!(d, "\n## Raw result lines\n\n```text");
    for l in &s.lines {
        let _ = writeln!(d, "{l}");
    }
    let _ = writeln!(d, "```");
    d
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.0}"))
}

/// Data-driven explanations of the misses.
fn analysis(s: &BenchSummary) -> String {
    let ms = &s.measurements;
    let mut d = String::from("### Why, where a target is missed\n\n");
    let mut any = false;
    for c in concs(ms) {
        let Some(ours) = find(ms, "ldapmux_default", c) else {
            continue;
        };
        let Some(best) = ["raw_shared", "raw_per_task"]
            .iter()
            .filter_map(|n| find(ms, n, c))
            .max_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s))
        else {
            continue;
        };
        let Some(r) = ratio(ours.ops_per_s, best.ops_per_s) else {
            continue;
        };
        if r >= 0.95 {
            continue;
        }
        any = true;
        let _ = write!(
            d,
            "* **Concurrency {c}**: ldapmux at its defaults did {:.0} ops/s on {} connection(s), \
             the best raw arrangement (`{}`) {:.0} on {} ({r:.2}×).",
            ours.ops_per_s, ours.server_conns, best.contender, best.ops_per_s, best.server_conns
        );
        if let Some(n) = find(ms, "raw_n_conns", c) {
            let _ = write!(
                d,
                " Raw ldap3 on the same {} connection(s) did {:.0}: the gap splits into the pool's \
                 own share (ldapmux / raw on the same connections = {:.2}×) and the connection \
                 count's share (raw on {} / `{}` on {} = {:.2}×).",
                n.server_conns,
                n.ops_per_s,
                ours.ops_per_s / n.ops_per_s,
                n.server_conns,
                best.contender,
                best.server_conns,
                n.ops_per_s / best.ops_per_s
            );
        }
        if let (Some(a), Some(b)) = (ours.get("slapd_us_per_op"), best.get("slapd_us_per_op")) {
            let _ = write!(
                d,
                " slapd spent {a} µs of CPU per operation on ldapmux's connection(s) and {b} µs \
                 under `{}`: with client and slapd sharing two cores, slapd is the bottleneck and \
                 throughput follows its cost per operation.",
                best.contender
            );
        }
        // The fewest connections with which an ldapmux setting reached 0.95× here.
        let enough = ms
            .iter()
            .filter(|m| m.conc == c && is_ldapmux_setting(&m.contender))
            .filter(|m| m.ops_per_s >= 0.95 * best.ops_per_s)
            .min_by_key(|m| m.server_conns);
        match enough {
            Some(m) => {
                let _ = write!(
                    d,
                    " The fewest connections with which ldapmux reached 0.95× here: `{}`, {} \
                     connections, {:.0} ops/s ({:.2}×).",
                    m.contender,
                    m.server_conns,
                    m.ops_per_s,
                    m.ops_per_s / best.ops_per_s
                );
            }
            None => {
                let _ = write!(d, " No ldapmux setting of the sweep reached 0.95× here.");
            }
        }
        d.push('\n');
    }
    if !any {
        d.push_str(
            "* ldapmux at its defaults is within 0.95× of the best raw arrangement at every \
             concurrency.\n",
        );
    }
    // Identical configurations measured separately: how far apart the same thing lands.
    let mut pairs = Vec::new();
    for c in concs(ms) {
        let mut same = vec![("ldapmux_default", "ldapmux_cap64")];
        if find(ms, "raw_n_conns", c).is_some_and(|m| m.server_conns == 1) {
            same.push(("raw_shared", "raw_n_conns"));
        }
        if c == 1 {
            same.push(("raw_shared", "raw_per_task"));
        }
        for (a, b) in same {
            if let (Some(x), Some(y)) = (find(ms, a, c), find(ms, b, c))
                && let Some(r) = ratio(x.ops_per_s, y.ops_per_s)
            {
                pairs.push(format!("c{c} `{a}`/`{b}` {r:.2}"));
            }
        }
    }
    if !pairs.is_empty() {
        let _ = writeln!(
            d,
            "\n**Noise floor.** The same configuration measured in separate windows of this run \
             (`ldapmux_cap64` is the default configuration; `raw_n_conns` with N = 1 and, at \
             concurrency 1, `raw_per_task` are `raw_shared`): {}. Differences of this size between \
             contenders are not significant.",
            pairs.join(", ")
        );
    }
    d
}

type ChartResult = Result<(), Box<dyn std::error::Error>>;

fn palette(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    C[i % C.len()]
}

fn chart_throughput(path: &Path, ms: &[Measurement]) -> ChartResult {
    let names = [
        "ldapmux_default",
        "ldapmux_cap1",
        "raw_shared",
        "raw_per_task",
        "raw_n_conns",
        "bb8_default",
        "bb8_tuned",
        "deadpool_default",
        "deadpool_tuned",
    ];
    let cs = concs(ms);
    let ymax = ms
        .iter()
        .filter(|m| names.contains(&m.contender.as_str()))
        .map(|m| m.ops_per_s)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Random uid searches: throughput vs concurrency (one slapd, same run)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..320f64).log_scale(), 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("concurrent tasks (log scale)")
        .y_desc("successful ops/s")
        .x_labels(10)
        .draw()?;
    for (i, name) in names.iter().enumerate() {
        let pts: Vec<(f64, f64)> = cs
            .iter()
            .filter_map(|&c| find(ms, name, c).map(|m| (c as f64, m.ops_per_s)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let color = palette(i);
        let width = if name.starts_with("ldapmux") { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn chart_frontier(path: &Path, ms: &[Measurement]) -> ChartResult {
    let is_ldapmux = |m: &&Measurement| is_ldapmux_setting(&m.contender);
    let xmax = ms.iter().map(|m| m.server_conns).max().unwrap_or(1).max(2) as f64 * 1.5;
    let ymax = ms
        .iter()
        .filter(|m| m.conc > 1 && !is_scenario(&m.contender))
        .map(|m| m.ops_per_s)
        .fold(1.0, f64::max)
        * 1.15;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput vs connections slapd saw (ldapmux cap sweep; raw and peers for reference)",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..xmax).log_scale(), 0f64..ymax)?;
    chart
        .configure_mesh()
        .x_desc("server connections (log scale)")
        .y_desc("successful ops/s")
        .draw()?;
    for (i, c) in concs(ms).into_iter().filter(|&c| c > 1).enumerate() {
        let color = palette(i);
        let mut pts: Vec<(f64, f64)> = ms
            .iter()
            .filter(|m| m.conc == c)
            .filter(is_ldapmux)
            .map(|m| (m.server_conns.max(1) as f64, m.ops_per_s))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(3)))?
            .label(format!("ldapmux, conc {c}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
        let raw: Vec<(f64, f64)> = ["raw_shared", "raw_n_conns", "raw_per_task"]
            .iter()
            .filter_map(|n| find(ms, n, c))
            .filter(|m| m.failed == 0)
            .map(|m| (m.server_conns.max(1) as f64, m.ops_per_s))
            .collect();
        chart
            .draw_series(
                raw.iter()
                    .map(|&p| TriangleMarker::new(p, 7, color.filled())),
            )?
            .label(format!("raw ldap3, conc {c}"))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 6, color.filled()));
        let peers: Vec<(f64, f64)> = [
            "bb8_default",
            "bb8_tuned",
            "deadpool_default",
            "deadpool_tuned",
        ]
        .iter()
        .filter_map(|n| find(ms, n, c))
        .map(|m| (m.server_conns.max(1) as f64, m.ops_per_s))
        .collect();
        chart
            .draw_series(
                peers
                    .iter()
                    .map(|&p| Cross::new(p, 6, color.stroke_width(2))),
            )?
            .label(format!("bb8 / deadpool, conc {c}"))
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn chart_timeline(path: &Path, tl: &Timeline) -> ChartResult {
    let tmax = tl.buckets.last().map_or(1.0, |b| b.t_ms as f64 / 1e3 + 0.1);
    let ymax = tl
        .buckets
        .iter()
        .map(|b| b.ops_per_s.max(b.errors as f64 * 10.0))
        .fold(1.0, f64::max)
        * 1.2;
    let cmax = tl
        .buckets
        .iter()
        .map(|b| b.conns_a.max(b.conns_b))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.5;
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "ldapmux fail-over and fail-back: ops/s and errors per 100 ms",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)?
        .set_secondary_coord(0f64..tmax, 0f64..cmax);
    chart
        .configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("per second (100 ms buckets)")
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("connections (pool's view)")
        .draw()?;
    let step = |f: &dyn Fn(&crate::Bucket) -> f64| -> Vec<(f64, f64)> {
        let mut v = Vec::new();
        for b in &tl.buckets {
            let t = b.t_ms as f64 / 1e3;
            v.push((t, f(b)));
            v.push((t + 0.1, f(b)));
        }
        v
    };
    let blue = palette(0);
    chart
        .draw_series(LineSeries::new(
            step(&|b| b.ops_per_s),
            blue.stroke_width(2),
        ))?
        .label("successful ops/s")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(3)));
    let red = palette(3);
    chart
        .draw_series(LineSeries::new(
            step(&|b| b.errors as f64 * 10.0),
            red.stroke_width(2),
        ))?
        .label("errors/s surfaced to reads")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red.stroke_width(3)));
    let green = palette(2);
    chart
        .draw_secondary_series(LineSeries::new(
            step(&|b| b.conns_a as f64),
            green.stroke_width(1),
        ))?
        .label("connections to A (preferred)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green.stroke_width(2)));
    let orange = palette(1);
    chart
        .draw_secondary_series(LineSeries::new(
            step(&|b| b.conns_b as f64),
            orange.stroke_width(1),
        ))?
        .label("connections to B")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2)));
    let mut events = vec![(tl.kill_ms, "kill -9 A"), (tl.restarted_ms, "A restarted")];
    if let Some(f) = tl.failback_ms {
        events.push((f, "failed back"));
    }
    for (ms, label) in events {
        let x = ms / 1e3;
        chart.draw_series(LineSeries::new(
            vec![(x, 0.0), (x, ymax)],
            BLACK.stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            label.to_owned(),
            (x + 0.03, ymax * 0.95),
            ("sans-serif", 14).into_font(),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
