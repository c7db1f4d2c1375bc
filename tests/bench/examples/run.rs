//! Runs the benchmark: `cargo run --release -p ldapmux-bench --example run --
//! [--quick | --sweep [--pairs 2x4,4x8]] [--docs DIR]`. `--sweep`: only
//! ldapmux at its defaults, the raw arrangements and the spread sweep (≤ 6 min).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = ldapmux_bench::BenchOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--sweep" | "--sweep-only" => opts.sweep_only = true,
            "--pairs" => {
                let p = args.next().ok_or("--pairs needs e.g. 2x4,4x8")?;
                opts.sweep_pairs =
                    Some(ldapmux_bench::parse_pairs(&p).ok_or("--pairs wants e.g. 2x4,4x8")?);
            }
            "--quiet" => opts.progress = false,
            "--docs" => {
                opts.write_docs = Some(PathBuf::from(
                    args.next().ok_or("--docs needs a directory")?,
                ))
            }
            other => {
                return Err(
                    format!("unknown argument {other}; use --quick, --sweep, --pairs UxT,..., --quiet, --docs DIR").into(),
                );
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(ldapmux_bench::run(opts))?;
    for t in &summary.checks {
        eprintln!(
            "{} {}: {} ({})",
            if t.met { "met   " } else { "MISSED" },
            t.name,
            t.measured,
            t.target
        );
    }
    eprintln!("elapsed {:.1} s", summary.elapsed.as_secs_f64());
    Ok(())
}
