//! The `ldapmux` binary: see `ldapmux --help` and the `ldapmux_cli` crate.
//! `demo` and `bench` are there only when built with the features of the
//! same names (`make demo`, `make bench`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ldapmux_cli::check::{self, CheckOptions, ServerReport};
use ldapmux_cli::cli::{Cli, Command, StatusArgs};
use ldapmux_cli::config_check;
use ldapmux_cli::config_source::ConfigSource;
#[cfg(feature = "demo")]
use ldapmux_cli::demo::{self, DemoOptions};
use ldapmux_cli::follow::{self, FollowOptions};
use ldapmux_cli::metrics_http::{self, MetricsEndpoint};
use ldapmux_cli::status::{self, Snapshot};

/// Exit status of an invalid configuration or command line.
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ldapmux: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match cli.command {
            #[cfg(feature = "demo")]
            Command::Demo(args) => run_demo(args).await,
            Command::Check(args) => run_check(args).await,
            Command::Status(args) => run_status(args).await,
            #[cfg(feature = "bench")]
            Command::Bench(args) => run_bench(args).await,
        }
    });
    // Leave no task behind (each subcommand already shut its pools down).
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

#[cfg(feature = "demo")]
async fn run_demo(args: ldapmux_cli::cli::DemoArgs) -> ExitCode {
    let _metrics = match args.metrics.metrics_addr {
        Some(addr) => match MetricsEndpoint::start(addr, args.metrics.metrics_allow_remote) {
            Ok(m) => {
                println!("metrics: {} (Prometheus text)", m.url());
                Some(m)
            }
            Err(e) => {
                eprintln!("ldapmux demo: {e}");
                return ExitCode::from(USAGE);
            }
        },
        None => None,
    };
    let opts = DemoOptions {
        duration: Duration::from_secs(args.duration),
        users: usize::try_from(args.users).unwrap_or(usize::MAX),
        plain: args.plain,
    };
    match demo::run(opts).await {
        Ok(report) => {
            print!("{}", report.summary);
            if report.stopped_early {
                ExitCode::from(130)
            } else if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("ldapmux demo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_check(args: ldapmux_cli::cli::CheckArgs) -> ExitCode {
    let timeout = Duration::from_secs(args.timeout);
    if let Some(source) = ConfigSource::from_args(args.config.as_deref(), args.env) {
        return run_check_config(&source, timeout).await;
    }
    let password = match &args.password_file {
        Some(path) => match check::read_password_file(path) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("ldapmux check: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let opts = CheckOptions {
        urls: args.urls,
        ca_file: args.ca_file,
        starttls: args.starttls,
        bind_dn: args.bind_dn,
        password,
        sasl_external: args.sasl_external.then(|| args.tls_cert.zip(args.tls_key)),
        no_verify: args.no_verify,
        timeout,
    };
    let reports = check::check(&opts).await;
    for r in &reports {
        println!("{}", check::render(r));
    }
    verdict(&reports)
}

/// `check --config`: the plan, then every server probed with it.
async fn run_check_config(source: &ConfigSource, timeout: Duration) -> ExitCode {
    let cfg = match source.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("ldapmux check: invalid configuration: {e}");
            return ExitCode::from(USAGE);
        }
    };
    for line in config_check::plan(source, &cfg) {
        println!("{line}");
    }
    println!();
    println!(
        "probing each server with this configuration (root DSE, whoami; at most {}s each):",
        timeout.as_secs()
    );
    let reports = match config_check::probe_servers(&cfg, timeout).await {
        Ok((discovered, r)) => {
            for line in discovered {
                println!("{line}");
            }
            r
        }
        Err(ldapmux::BuildError::Discovery(e)) => {
            // The servers could not be found: the deployment's problem,
            // not the file's.
            println!("DNS SRV lookup FAILED: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("ldapmux check: invalid configuration: {e}");
            return ExitCode::from(USAGE);
        }
    };
    for r in &reports {
        println!("{}", check::render(r));
    }
    verdict(&reports)
}

/// `N of N servers OK` (exit 0) or `F of N servers FAILED` (exit 1).
fn verdict(reports: &[ServerReport]) -> ExitCode {
    let failed = reports.iter().filter(|r| !r.ok()).count();
    let n = reports.len();
    let servers = if n == 1 { "server" } else { "servers" };
    if failed == 0 {
        println!("{n} of {n} {servers} OK");
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {n} {servers} FAILED");
        ExitCode::FAILURE
    }
}

async fn run_status(args: StatusArgs) -> ExitCode {
    let Some(source) = ConfigSource::from_args(args.config.as_deref(), args.env) else {
        eprintln!("ldapmux status: give --config FILE or --env");
        return ExitCode::from(USAGE);
    };
    // Before the pool exists, so that none of its metrics are missed.
    let metrics = match args.metrics_addr {
        Some(addr) => match MetricsEndpoint::start(addr, args.metrics_allow_remote) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("ldapmux status: {e}");
                return ExitCode::from(USAGE);
            }
        },
        None => None,
    };
    let cfg = match source.load() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("ldapmux status: invalid configuration: {e}");
            return ExitCode::from(USAGE);
        }
    };
    let pool = match config_check::build_pool(cfg.builder()).await {
        Ok(p) => p,
        Err(ldapmux::BuildError::Discovery(e)) => {
            println!("DNS SRV lookup FAILED: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("ldapmux status: invalid configuration: {source}: {e}");
            return ExitCode::from(USAGE);
        }
    };
    if let Some(m) = &metrics {
        metrics_http::describe_status_metrics();
        println!("metrics: {} (Prometheus text)", m.url());
    }
    let timeout = Duration::from_secs(args.timeout);
    if args.follow {
        let opts = FollowOptions {
            interval: Duration::from_secs(args.interval),
            timeout,
        };
        return match follow::follow(&source, cfg, &pool, opts).await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ldapmux status: cannot handle signals: {e}");
                pool.shutdown().await;
                ExitCode::FAILURE
            }
        };
    }
    let read = status::read(&pool, timeout).await;
    println!(
        "{}",
        status::render(&source, &cfg, &Snapshot::of(&pool), &read)
    );
    pool.shutdown().await;
    if read.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(feature = "bench")]
async fn run_bench(args: ldapmux_cli::cli::BenchArgs) -> ExitCode {
    if args.auth {
        return match ldapmux_bench::run_auth().await {
            Ok(f) => {
                eprintln!("{}", ldapmux_cli::bench::auth_report(&f));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ldapmux bench --auth: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.paged {
        return match ldapmux_bench::run_paged().await {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ldapmux bench --paged: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match ldapmux_cli::bench::run(
        args.quick,
        args.sweep_only,
        args.pairs.map(|p| p.0),
        args.write_docs,
    )
    .await
    {
        Ok(summary) => {
            eprintln!("{}", ldapmux_cli::bench::report(&summary));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ldapmux bench: {e}");
            ExitCode::FAILURE
        }
    }
}
