//! `benchmarks.md`: the machine, the plan, every measurement and its sections.

use super::*;

/// Facts about the machine, for the document.
pub(super) fn machine() -> Vec<(String, String)> {
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

pub(super) fn docs_err(path: &Path, e: impl std::fmt::Display) -> BenchError {
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
    let frontier = dir.join("spread-frontier.svg");
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
pub(super) fn rounds_text(plan: &Plan) -> String {
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

pub(super) fn row(m: &Measurement) -> String {
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

pub(super) fn markdown(
    s: &BenchSummary,
    plan: &Plan,
    settings: &BTreeMap<String, String>,
) -> String {
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
        "```sh\nmake bench                 # the full run, rewrites docs/results/\ncargo run --release -p ldapmux-cli --features bench -- bench --quick   # about 70 s, prints the result lines and targets only\ncargo run --release -p ldapmux-cli --features bench -- bench --sweep-only [--pairs 2x4,4x8]   # ≤ 6 min: defaults, raw and the spread sweep\ncargo run --release -p ldapmux-bench --example run -- --docs docs/results   # the same full run\n```\n"
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
         else the harness's defaults (anonymous reads, `conn_max_pending` 100). Nothing raised \
         system-wide; the benchmark raises its own soft open-files limit (slapd, its child, inherits \
         it) for the 1024-connection windows.\n\
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
    let met = s.targets.iter().filter(|t| t.met).count();
    let _ = writeln!(
        d,
        "\n## Targets (issue 15)\n\nAt the defaults, against the same slapd in the same run. \
         **targets: {met} of {} met.**\n\n| target | wanted | measured | |\n| --- | --- | --- | --- |",
        s.targets.len()
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
    if !s.checks.is_empty() {
        let _ = writeln!(
            d,
            "\nChecks of earlier issues, not counted above:\n\n| check | wanted | measured | |\n| --- | --- | --- | --- |"
        );
        for t in &s.checks {
            let _ = writeln!(
                d,
                "| {} | {} | {} | {} |",
                t.name,
                t.target,
                t.measured,
                if t.met { "met" } else { "**missed**" }
            );
        }
    }
    let _ = writeln!(
        d,
        "\n`ratio_vs_raw_min` = {:.3} (ldapmux at its defaults over the best raw arrangement — the \
         most ops/s of `raw_shared`, `raw_per_task` and `raw_n_conns` among those with 0 failed \
         operations — the lowest across concurrencies).\n",
        s.ratio_vs_raw_min
    );
    d.push_str(&analysis(&s.measurements));
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
    d.push_str(&spread_section(ms));
    d.push_str(&blackhole_section(ms));
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
             ldapmux pool at its defaults ({} users per connection, {} connections per server).\n\n\
             | opened (pool) | opened (slapd delta) | expected | open at the end | last answer | p50 | p99 | failed |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | {} | {} | {} | {} | {} ms | {:.2} ms | {:.2} ms | {} |",
            m.conc,
            ldapmux_core::DEFAULT_MAX_USERS_PER_CONN,
            ldapmux_core::DEFAULT_MAX_CONNS_PER_SERVER,
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

/// The spread sweep: every pair's throughput and connections, and a table
/// to choose the defaults from.
pub(super) fn spread_section(ms: &[Measurement]) -> String {
    let mut d = String::new();
    let (du, dc) = default_spread();
    let mut pairs: Vec<(u32, u32)> = ms.iter().filter_map(|m| spread_of(&m.contender)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let sweep_concs: Vec<usize> = {
        let mut c: Vec<usize> = ms
            .iter()
            .filter(|m| spread_of(&m.contender).is_some())
            .map(|m| m.conc)
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let _ = writeln!(
        d,
        "## The spread sweep (choosing the defaults)\n\n`ldapmux_spreadUxT` = ldapmux with \
         `spread_users_per_connection(U)` and `spread_connections_per_server(T)`, everything else \
         at its defaults (`max_users_per_connection` included). The defaults are U = {du}, T = {dc} \
         (`ldapmux_default`, marked in the chart). Throughput against the connections slapd saw, \
         raw ldap3 and the peers for reference:\n\n![spread frontier](spread-frontier.svg)\n"
    );
    if pairs.is_empty() {
        d.push_str("No spread sweep in this run.\n");
        return d;
    }
    // One row per pair: × best raw and connections at each concurrency.
    let head: Vec<String> = sweep_concs.iter().map(|c| format!("c{c}")).collect();
    let _ = writeln!(
        d,
        "| U×T | × best raw ({}) | min | server conns ({}) | ≥ 0.95× and ≤ 1/4 of raw_per_task's conns (c ≥ 64) everywhere |\n| --- | --- | --- | --- | --- |",
        head.join(" / "),
        head.join(" / ")
    );
    let mut rows: Vec<(String, String)> = pairs
        .iter()
        .map(|&(u, t)| (format!("ldapmux_spread{u}x{t}"), format!("{u}×{t}")))
        .collect();
    rows.push(("ldapmux_default".into(), format!("{du}×{dc} (defaults)")));
    for (name, label) in rows {
        let mut rs = Vec::new();
        let mut conns = Vec::new();
        let mut lo = f64::INFINITY;
        let mut good = true;
        for &c in &sweep_concs {
            let m = find(ms, &name, c);
            let r = m.and_then(|m| ratio(m.ops_per_s, best_raw(ms, c)?.ops_per_s));
            match r {
                Some(r) => {
                    lo = lo.min(r);
                    good &= r >= 0.95;
                    rs.push(format!("{r:.2}"));
                }
                None => {
                    good = false;
                    rs.push("—".into());
                }
            }
            conns.push(m.map_or("—".into(), |m| m.server_conns.to_string()));
            if c >= 64 {
                let few = match (m, find(ms, "raw_per_task", c)) {
                    (Some(m), Some(p)) => m.server_conns * 4 <= p.server_conns && m.failed == 0,
                    _ => false,
                };
                good &= few;
            }
        }
        let _ = writeln!(
            d,
            "| {label} | {} | {} | {} | {} |",
            rs.join(" / "),
            if lo.is_finite() {
                format!("{lo:.2}")
            } else {
                "—".into()
            },
            conns.join(" / "),
            if good { "yes" } else { "no" }
        );
    }
    let _ = writeln!(
        d,
        "\n| conc | contender | server conns | ops/s | spread | × best raw | p99 ms | failed |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    for &c in &sweep_concs {
        let best = best_raw(ms, c);
        let mut pts: Vec<&Measurement> = ms
            .iter()
            .filter(|m| m.conc == c)
            .filter(|m| spread_of(&m.contender).is_some() || m.contender == "ldapmux_default")
            .collect();
        pts.sort_by_key(|m| (m.server_conns, m.contender.clone()));
        for m in pts {
            let spread = match (m.get("ops_min"), m.get("ops_max")) {
                (Some(a), Some(b)) => format!("{a}–{b}"),
                _ => String::new(),
            };
            let r = best
                .and_then(|b| ratio(m.ops_per_s, b.ops_per_s))
                .map_or("—".into(), |r| format!("{r:.2}"));
            let _ = writeln!(
                d,
                "| {c} | {} | {} | {:.0} | {spread} | {r} | {:.3} | {} |",
                m.contender, m.server_conns, m.ops_per_s, m.p99_ms, m.failed
            );
        }
        if let Some(b) = best {
            let _ = writeln!(
                d,
                "| {c} | best raw: {} | {} | {:.0} | | 1.00 | {:.3} | 0 |",
                b.contender, b.server_conns, b.ops_per_s, b.p99_ms
            );
        }
    }
    d
}

/// The black-holed preferred server scenario, as a table.
pub(super) fn blackhole_section(ms: &[Measurement]) -> String {
    let rows: Vec<&Measurement> = ms
        .iter()
        .filter(|m| m.contender.starts_with("ldapmux_blackhole"))
        .collect();
    let mut d = String::new();
    if rows.is_empty() {
        return d;
    }
    let _ = writeln!(
        d,
        "\n## First reads with a black-holed preferred server\n\nThe preferred server is the \
         harness's fault proxy in black-hole mode on 127.0.0.1 (TCP accepted, nothing answered, \
         nothing forwarded); the second server is the run's slapd. `connect_timeout` {} ms, every \
         other setting default. Each line is a new pool (as a new user would build it), then the \
         reads: all at once (conc = reads) or one after the other (`_seq`); each read's time from \
         call to answer. `_norace` turns connect racing off (`connect_race_delay(None)`): the \
         before.\n\n| scenario | reads | race delay | p50 ms | p99 ms | max ms | failed | connects to the black hole | opened on slapd |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        crate::scenarios::BLACKHOLE_CONNECT_TIMEOUT.as_millis()
    );
    for m in rows {
        let _ = writeln!(
            d,
            "| {} | {} | {} | {:.1} | {:.1} | {} | {} | {} | {} |",
            m.contender,
            m.get("n").unwrap_or("?"),
            m.get("race_delay_ms")
                .map_or("?".into(), |v| if v == "off" {
                    "off".to_owned()
                } else {
                    format!("{v} ms")
                }),
            m.p50_ms,
            m.p99_ms,
            m.get("max_ms").unwrap_or("?"),
            m.failed,
            m.get("blackhole_accepts").unwrap_or("?"),
            m.get("opened_server").unwrap_or("?"),
        );
    }
    d
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |x| format!("{x:.0}"))
}
