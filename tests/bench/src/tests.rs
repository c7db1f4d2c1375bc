//! The crate's own tests: a tiny end-to-end run against one slapd, and the
//! arithmetic behind the printed figures.

use std::time::Duration;

use super::*;

fn m(name: &str, conc: usize, ops: f64, failed: u64, conns: u64) -> Measurement {
    Measurement {
        contender: name.into(),
        conc,
        ops_per_s: ops,
        p50_ms: 1.0,
        p99_ms: 2.0,
        failed,
        server_conns: conns,
        first_error: None,
        extra: Vec::new(),
    }
}

#[test]
fn result_lines_have_the_required_fields_in_order() {
    let mut x = m("ldapmux_default", 16, 12345.6, 0, 1);
    x.extra.push(("opened".into(), "1".into()));
    let line = x.line();
    assert!(
        line.starts_with(
            "contender=ldapmux_default conc=16 ops_per_s=12346 p99_ms=2.000 server_conns=1 "
        ),
        "{line}"
    );
    let kv = parse_line(&line).expect("parses");
    assert_eq!(kv["opened"], "1");
    assert_eq!(kv["failed"], "0");
    assert!(parse_line("contender=x junk").is_none());
    assert!(parse_line("=x").is_none());
}

#[test]
fn ratio_vs_raw_takes_the_better_raw_and_the_worst_concurrency() {
    let ms = vec![
        m("ldapmux_default", 1, 90.0, 0, 1),
        m("raw_shared", 1, 100.0, 0, 1),
        m("raw_per_task", 1, 80.0, 0, 1),
        m("ldapmux_default", 256, 150.0, 0, 4),
        m("raw_shared", 256, 1.0, 500, 1),
        m("raw_per_task", 256, 100.0, 0, 256),
    ];
    // c1: 90 / max(100, 80) = 0.9; c256: 150 / 100 = 1.5; minimum 0.9.
    let r = ratio_vs_raw_min(&ms, &[1, 256]);
    assert!((r - 0.9).abs() < 1e-9, "{r}");
    // A concurrency with no figures is skipped, not a zero.
    let r = ratio_vs_raw_min(&ms, &[1, 64, 256]);
    assert!((r - 0.9).abs() < 1e-9, "{r}");
    assert!(ratio_vs_raw_min(&[], &[1]).is_nan());
}

#[test]
fn rounds_aggregate_to_medians_and_sums() {
    let mut rounds = vec![
        m("raw_per_task", 16, 100.0, 1, 16),
        m("raw_per_task", 16, 300.0, 0, 16),
        m("raw_per_task", 16, 200.0, 2, 17),
    ];
    for (r, cpu) in rounds.iter_mut().zip(["30.0", "10.0", "20.0"]) {
        r.extra.push(("client_us_per_op".into(), cpu.into()));
        r.extra.push(("opened".into(), "16".into()));
    }
    let a = aggregate(&rounds);
    assert_eq!(a.ops_per_s, 200.0);
    assert_eq!(a.failed, 3);
    assert_eq!(a.server_conns, 17);
    assert_eq!(a.get("rounds"), Some("3"));
    assert_eq!(a.get("ops_min"), Some("100"));
    assert_eq!(a.get("ops_max"), Some("300"));
    assert_eq!(a.get("client_us_per_op"), Some("20.0"));
    assert_eq!(a.get("opened"), Some("16"));
}

#[test]
fn targets_compare_at_each_concurrency() {
    let ms = vec![
        m("ldapmux_default", 16, 97.0, 0, 1),
        m("raw_n_conns", 16, 100.0, 0, 1),
        m("ldapmux_default", 64, 90.0, 0, 1),
        m("raw_n_conns", 64, 100.0, 0, 1),
        m("raw_shared", 64, 5.0, 10, 1),
        m("bb8_tuned", 64, 95.0, 0, 64),
    ];
    let t = report::targets(&ms, None, None);
    let overhead = &t[0];
    assert!(!overhead.met, "0.90 at c64 misses 0.97: {overhead:?}");
    assert!(
        overhead.measured.contains("c16: 0.97×"),
        "{}",
        overhead.measured
    );
    let zero = t
        .iter()
        .find(|t| t.name.starts_with("zero failed"))
        .unwrap();
    assert!(zero.met, "{zero:?}");
    // 1 connection vs 64: ≤ 1/8, and 90 / 95 ≥ 0.9.
    let fewer = t
        .iter()
        .find(|t| t.name.contains("1/8") && t.name.contains("bb8"))
        .unwrap();
    assert!(fewer.met, "{fewer:?}");
    // Not measured is not met.
    let dp = t
        .iter()
        .find(|t| t.name.contains("1/8") && t.name.contains("deadpool"))
        .unwrap();
    assert!(!dp.met, "{dp:?}");
}

/// A tiny run end to end: raw ldap3 one connection per task and ldapmux at its
/// defaults, concurrency 1 and 4, 200 ms windows, against one real slapd.
#[test]
fn tiny_run_end_to_end_against_slapd() {
    ldapmux_harness::require_slapd().expect("slapd is installed (make test installs it)");
    let plan = Plan {
        name: "test",
        users: 1000,
        slapd_threads: 4,
        concs: vec![1, 4],
        groups: vec![Group {
            kinds: vec![Kind::Ldapmux(None), Kind::RawPerTask],
            rounds: 1,
            rounds_at_1: None,
            concs: None,
        }],
        window: Window {
            warmup: Duration::from_millis(100),
            measure: Duration::from_millis(200),
        },
        cold_storm: None,
        paired_latency: None,
        retry_foreign_pct: 100.0,
        retry_budget: Duration::ZERO,
        quiet_wait: Duration::ZERO,
        quiet_budget: Duration::ZERO,
        connect_cost: None,
        failover: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ldapmux-bench-test-{}", std::process::id()));
    let s = rt
        .block_on(run_plan(plan, Some(dir.clone()), false, false))
        .expect("the tiny run works");
    assert_eq!(s.lines.len(), 5, "{:#?}", s.lines);
    for line in &s.lines[..4] {
        let kv = parse_line(line).unwrap_or_else(|| panic!("unparsable: {line}"));
        let conc: usize = kv["conc"].parse().unwrap();
        let ops: f64 = kv["ops_per_s"].parse().unwrap();
        let conns: u64 = kv["server_conns"].parse().unwrap();
        let p99: f64 = kv["p99_ms"].parse().unwrap();
        assert!(ops > 0.0 && p99 > 0.0, "{line}");
        // slapd's monitor saw exactly the connections the contender held.
        let own: u64 = kv["own_conns"].parse().unwrap();
        assert_eq!(conns, own, "{line}");
        match kv["contender"].as_str() {
            "raw_per_task" => {
                assert_eq!(kv["failed"], "0", "{line}");
                assert_eq!(conns, conc as u64, "{line}");
                assert_eq!(kv["opened"], conc.to_string(), "{line}");
            }
            "ldapmux_default" => {
                assert_eq!(kv["failed"], "0", "{line}");
                assert_eq!(conns, 1, "at most 64 users share one connection: {line}");
            }
            other => panic!("unexpected contender {other}"),
        }
    }
    let last = parse_line(&s.lines[4]).unwrap();
    let r: f64 = last["ratio_vs_raw_min"].parse().unwrap();
    assert!(r > 0.0 && (r - s.ratio_vs_raw_min).abs() < 1e-3, "{r}");
    // The document and charts were written and name what ran.
    let md = std::fs::read_to_string(dir.join("benchmarks.md")).unwrap();
    assert!(md.contains("| raw_per_task |"), "{md}");
    for f in ["throughput.svg", "cap-frontier.svg"] {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(svg.starts_with("<svg"), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cpu_ticks_parse_proc_stat() {
    let stat = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 1 0 100 0 0";
    assert_eq!(window::parse_cpu_ticks(stat), Some(287));
    assert_eq!(window::parse_cpu_ticks("garbage"), None);
    assert!(
        window::cpu_ticks(None).is_some(),
        "/proc/self/stat is readable"
    );
}
