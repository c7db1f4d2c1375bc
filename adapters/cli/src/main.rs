//! The `ldapmux` binary: see `ldapmux --help` and the `ldapmux_cli` crate.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ldapmux_cli::check::{self, CheckOptions};
use ldapmux_cli::cli::{Cli, Command};
use ldapmux_cli::demo::{self, DemoOptions};

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
            Command::Demo(args) => run_demo(args).await,
            Command::Check(args) => run_check(args).await,
            Command::Bench(args) => run_bench(args).await,
        }
    });
    // Leave no task behind (each subcommand already shut its pools down).
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

async fn run_demo(args: ldapmux_cli::cli::DemoArgs) -> ExitCode {
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
        no_verify: args.no_verify,
        timeout: Duration::from_secs(args.timeout),
    };
    let reports = check::check(&opts).await;
    for r in &reports {
        println!("{}", check::render(r));
    }
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

async fn run_bench(args: ldapmux_cli::cli::BenchArgs) -> ExitCode {
    match ldapmux_cli::bench::run(args.quick, args.write_docs).await {
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
