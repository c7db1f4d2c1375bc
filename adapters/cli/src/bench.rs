//! `ldapmux bench`: the end-to-end benchmark of `ldapmux-bench` (ldapmux
//! against raw ldap3, bb8 + bb8-ldap and deadpool on the same real slapd).
//! Result lines go to stdout; progress and the targets to stderr.

use std::path::PathBuf;

use ldapmux_bench::{AuthFigures, BenchError, BenchOptions, BenchSummary};

/// Runs the benchmark with progress on stderr. `sweep_only`: only the core
/// group and the spread sweep (`pairs`, or the crate's default pairs).
pub async fn run(
    quick: bool,
    sweep_only: bool,
    pairs: Option<Vec<(u32, u32)>>,
    write_docs: Option<PathBuf>,
) -> Result<BenchSummary, BenchError> {
    let mut summary = ldapmux_bench::run(BenchOptions {
        quick,
        sweep_only,
        sweep_pairs: pairs,
        write_docs,
        progress: true,
    })
    .await?;
    if !sweep_only {
        eprintln!("bench: password checks (bind connections vs one connection per check)");
        let auth = ldapmux_bench::run_auth().await?;
        summary.checks.extend(auth.checks());
        summary.lines.extend(auth.lines);
    }
    Ok(summary)
}

/// The closing report of `ldapmux bench --auth` for stderr: its two targets.
pub fn auth_report(figures: &AuthFigures) -> String {
    let checks = figures.checks();
    checks.iter().map(check_line).collect::<Vec<_>>().join("\n")
}

fn check_line(t: &ldapmux_bench::TargetCheck) -> String {
    format!(
        "  check {} {}: target {}, measured {}",
        if t.met { "met   " } else { "MISSED" },
        t.name,
        t.target,
        t.measured
    )
}

/// The closing report for stderr: the targets (also on stdout), the
/// earlier issues' checks, notes, files written.
pub fn report(summary: &BenchSummary) -> String {
    let mut lines = vec![format!(
        "bench: done in {:.0} s; ratio_vs_raw_min={:.3}",
        summary.elapsed.as_secs_f64(),
        summary.ratio_vs_raw_min
    )];
    let met = summary.targets.iter().filter(|t| t.met).count();
    if !summary.targets.is_empty() {
        lines.push(format!("targets: {met} of {} met", summary.targets.len()));
    }
    for t in &summary.targets {
        lines.push(format!(
            "  {} {}: target {}, measured {}",
            if t.met { "met   " } else { "MISSED" },
            t.name,
            t.target,
            t.measured
        ));
    }
    lines.extend(summary.checks.iter().map(check_line));
    for n in &summary.notes {
        lines.push(format!("note: {n}"));
    }
    for d in &summary.docs {
        lines.push(format!("wrote {}", d.display()));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldapmux_bench::TargetCheck;

    #[test]
    fn the_report_lists_targets_and_files() {
        let s = BenchSummary {
            ratio_vs_raw_min: 0.9512,
            targets: vec![TargetCheck {
                name: "ldapmux vs raw N conns".into(),
                target: "≥ 0.97×".into(),
                measured: "0.95×".into(),
                met: false,
            }],
            docs: vec![PathBuf::from("docs/results/benchmarks.md")],
            ..BenchSummary::default()
        };
        let text = report(&s);
        assert!(text.contains("ratio_vs_raw_min=0.951"), "{text}");
        assert!(text.contains("targets: 0 of 1 met"), "{text}");
        assert!(text.contains("MISSED ldapmux vs raw N conns: target ≥ 0.97×, measured 0.95×"));
        assert!(text.contains("wrote docs/results/benchmarks.md"));
    }
}
