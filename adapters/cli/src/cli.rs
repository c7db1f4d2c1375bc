//! The command line, as `clap` derives it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ldapmux: a shared, fail-over LDAP connection pool. This command checks
/// your servers with the pool's own logic and shows the status of a pool
/// built from your configuration.
#[derive(Debug, Parser)]
#[command(name = "ldapmux", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[cfg(feature = "demo")]
    /// Watch the pool live on three local slapd servers: fail-over,
    /// fail-back, reload and shutdown under load.
    ///
    /// Starts three slapd processes on 127.0.0.1 (A preferred, then B, then
    /// C), runs searches, enumerations, authentications and writes through
    /// one pool, kills A with SIGKILL, restarts it, reloads the pool's
    /// configuration and shuts the pool down, then prints a summary. In a
    /// terminal the view redraws in place (q or Ctrl-C stops early);
    /// piped, or with --plain, it prints one status line per second and one
    /// line per event. Nothing is left running afterwards. Exits 0 when
    /// the run passed its own checks (zero failed reads, fail-over,
    /// fail-back, reload, clean shutdown, no slapd left).
    Demo(DemoArgs),
    /// Probe LDAP servers with the pool's own connect, TLS and bind logic.
    ///
    /// For each URL a one-server pool reads the root DSE and asks "who am
    /// I?". Prints, per server: reachable or the typed error (connection
    /// refused, TLS certificate, invalid credentials, timeout …), TLS on
    /// and verified, and the bind result. Exits 0 only if every server
    /// passed. The password is read from a file and never printed.
    ///
    /// With --config FILE (or --env) instead of URLs, reads the pool
    /// configuration as the library does and first prints what the pool
    /// would do: the servers in the order it uses them (preferred marked),
    /// TLS per server, the bind DN (never the password), the timeouts and
    /// caps in effect; then probes every server with that configuration.
    /// Exits 2 if the configuration is invalid (the error names the file,
    /// line and key), 1 if a server failed, 0 if all passed.
    Check(CheckArgs),
    /// Build a pool from a configuration file, read through it, and print
    /// its status.
    ///
    /// Prints each configured server with its health (Up, Down, Returning
    /// during the fail-back hold-down), connections per server and
    /// generation, TLS, and the server new operations go to. Exits 0 if
    /// the read succeeded, 1 if it failed, 2 if the configuration is
    /// invalid.
    ///
    /// With --follow it keeps running and prints a status line every
    /// --interval; SIGHUP re-reads the configuration (an invalid one is
    /// refused with its error and the pool keeps the old one); SIGINT or
    /// SIGTERM shut the pool down and exit 0.
    Status(StatusArgs),
    #[cfg(feature = "bench")]
    /// Benchmark ldapmux against raw ldap3, bb8 + bb8-ldap and deadpool on
    /// one local slapd.
    ///
    /// Prints one line per contender and concurrency on stdout
    /// (contender=… conc=… ops_per_s=… p99_ms=… server_conns=…) and a final
    /// ratio_vs_raw_min=… line; progress and the targets go to stderr.
    Bench(BenchArgs),
}

#[cfg(feature = "demo")]
/// Options of `ldapmux demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Length of the whole run in seconds, server start-up included (12–60).
    #[arg(long, value_name = "SECS", default_value_t = 40,
          value_parser = clap::value_parser!(u64).range(12..=60))]
    pub duration: u64,
    /// Users in each server's directory.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=200_000))]
    pub users: u64,
    /// Print one status line per second instead of the live view (the
    /// default when stdout is not a terminal).
    #[arg(long)]
    pub plain: bool,
    /// Serve the pool's metrics as Prometheus text at http://ADDR/metrics.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

#[cfg(feature = "demo")]
/// `--metrics-addr` and its safety switch (of `ldapmux demo`).
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Serve the pool's metrics as Prometheus text at http://IP:PORT/metrics.
    /// Only a loopback address (127.0.0.1, ::1) unless
    /// --metrics-allow-remote: the endpoint has no authentication.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<SocketAddr>,
    /// Allow a --metrics-addr that is not a loopback address (anyone who can
    /// reach it reads the metrics).
    #[arg(long, requires = "metrics_addr")]
    pub metrics_allow_remote: bool,
}

/// Options of `ldapmux check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Servers to check: ldap://host:port, ldaps://host:port or ldapi://…
    #[arg(value_name = "URL", required_unless_present_any = ["config", "env"],
          conflicts_with_all = ["config", "env"])]
    pub urls: Vec<String>,
    /// Check the pool configuration in this file instead of URLs: an
    /// ldapmux TOML file if the name ends in .toml, an OpenLDAP ldap.conf
    /// otherwise.
    #[arg(long, value_name = "FILE", conflicts_with = "env")]
    pub config: Option<PathBuf>,
    /// Check the configuration LDAPCONF / LDAPURI give, as libldap reads them.
    #[arg(long)]
    pub env: bool,
    /// PEM file of CA certificates to trust, besides the system roots.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["config", "env"])]
    pub ca_file: Option<PathBuf>,
    /// Upgrade ldap:// connections with StartTLS (never falls back to plain).
    #[arg(long, conflicts_with_all = ["config", "env"])]
    pub starttls: bool,
    /// Bind with this DN (simple bind) instead of anonymously.
    #[arg(long, value_name = "DN", requires = "password_file",
          conflicts_with_all = ["config", "env"])]
    pub bind_dn: Option<String>,
    /// File whose first line is the bind password.
    #[arg(long, value_name = "PATH", requires = "bind_dn")]
    pub password_file: Option<PathBuf>,
    /// Bind with SASL EXTERNAL instead: the client certificate of
    /// --tls-cert / --tls-key over TLS, or the Unix peer credentials over
    /// ldapi:// without them.
    #[arg(long, conflicts_with_all = ["config", "env", "bind_dn"])]
    pub sasl_external: bool,
    /// PEM file of the client certificate (chain) for --sasl-external.
    #[arg(long, value_name = "PATH", requires_all = ["sasl_external", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of its private key (read, never printed).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Accept any TLS certificate and host name (dangerous: testing only).
    #[arg(long, conflicts_with_all = ["config", "env"])]
    pub no_verify: bool,
    /// Seconds each server gets (connect, root DSE read, whoami).
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout: u64,
}

/// Options of `ldapmux status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The pool configuration: an ldapmux TOML file if the name ends in
    /// .toml, an OpenLDAP ldap.conf otherwise.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "env",
        conflicts_with = "env"
    )]
    pub config: Option<PathBuf>,
    /// Use the configuration LDAPCONF / LDAPURI give, as libldap reads them.
    #[arg(long)]
    pub env: bool,
    /// Keep running: a status line every --interval, SIGHUP reloads the
    /// configuration, SIGINT / SIGTERM stop.
    #[arg(long)]
    pub follow: bool,
    /// Seconds between two status lines with --follow.
    #[arg(long, value_name = "SECS", default_value_t = 5, requires = "follow",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,
    /// Seconds each read through the pool may take.
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub timeout: u64,
    /// With --follow: serve the pool's metrics as Prometheus text at
    /// http://IP:PORT/metrics. Only a loopback address (127.0.0.1, ::1)
    /// unless --metrics-allow-remote: the endpoint has no authentication.
    #[arg(long, value_name = "IP:PORT", requires = "follow")]
    pub metrics_addr: Option<SocketAddr>,
    /// Allow a --metrics-addr that is not a loopback address (anyone who can
    /// reach it reads the metrics).
    #[arg(long, requires = "metrics_addr")]
    pub metrics_allow_remote: bool,
}

#[cfg(feature = "bench")]
/// The pairs of `ldapmux bench --pairs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepPairs(pub Vec<(u32, u32)>);

#[cfg(feature = "bench")]
fn parse_pairs(s: &str) -> Result<SweepPairs, String> {
    ldapmux_bench::parse_pairs(s)
        .map(SweepPairs)
        .ok_or_else(|| format!("{s:?}: want pairs like 2x4,4x8 (both ≥ 1)"))
}

#[cfg(feature = "bench")]
/// Options of `ldapmux bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A short run (about 2 minutes) instead of the full sweep.
    #[arg(long, conflicts_with = "sweep_only")]
    pub quick: bool,
    /// Only ldapmux at its defaults, the raw arrangements and the spread
    /// sweep (about 6 minutes): the figures the spread defaults are chosen from.
    #[arg(long)]
    pub sweep_only: bool,
    /// The spread sweep's (spread_users_per_connection x
    /// spread_connections_per_server) pairs, e.g. 2x4,4x8,8x8.
    #[arg(long, value_name = "UxT,...", value_parser = parse_pairs)]
    pub pairs: Option<SweepPairs>,
    /// Write benchmarks.md and the SVG charts into this directory.
    #[arg(long, value_name = "DIR")]
    pub write_docs: Option<PathBuf>,
    /// Only paged enumeration (about 20 s): entries per second of
    /// ldapmux's streaming_search against raw ldap3's PagedResults adapter.
    #[arg(long, conflicts_with_all = ["quick", "sweep_only", "write_docs"])]
    pub paged: bool,
    /// Only password checks (about 30 s): checks per second from 8 tasks on
    /// reused bind connections against one connection per check, over
    /// ldap:// and ldaps:// (`auth_reuse_ratio=<R>`).
    #[arg(long, conflicts_with_all = ["quick", "sweep_only", "write_docs", "paged"])]
    pub auth: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[cfg(feature = "demo")]
    #[test]
    fn demo_defaults_and_bounds() {
        let cli = Cli::try_parse_from(["ldapmux", "demo"]).unwrap();
        let Command::Demo(d) = cli.command else {
            panic!("demo")
        };
        assert_eq!((d.duration, d.users, d.plain), (40, 10_000, false));
        assert!(Cli::try_parse_from(["ldapmux", "demo", "--duration", "61"]).is_err());
        assert!(Cli::try_parse_from(["ldapmux", "demo", "--duration", "5"]).is_err());
    }

    /// The operators' build has no `demo` and no `bench` subcommand.
    #[test]
    fn demo_and_bench_are_subcommands_only_with_their_features() {
        let demo = Cli::try_parse_from(["ldapmux", "demo"]);
        assert_eq!(demo.is_ok(), cfg!(feature = "demo"));
        let bench = Cli::try_parse_from(["ldapmux", "bench", "--quick"]);
        assert_eq!(bench.is_ok(), cfg!(feature = "bench"));
        for (name, on) in [
            ("demo", cfg!(feature = "demo")),
            ("bench", cfg!(feature = "bench")),
        ] {
            let listed = Cli::command()
                .get_subcommands()
                .any(|c| c.get_name() == name);
            assert_eq!(listed, on, "{name}");
        }
    }

    #[test]
    fn check_needs_a_url_and_a_password_file_with_a_dn() {
        assert!(Cli::try_parse_from(["ldapmux", "check"]).is_err());
        assert!(
            Cli::try_parse_from([
                "ldapmux",
                "check",
                "ldap://127.0.0.1:1",
                "--bind-dn",
                "cn=x"
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "ldapmux",
            "check",
            "ldap://127.0.0.1:1",
            "ldaps://127.0.0.1:2",
            "--bind-dn",
            "cn=x",
            "--password-file",
            "/tmp/pw",
        ])
        .unwrap();
        let Command::Check(c) = cli.command else {
            panic!("check")
        };
        assert_eq!(c.urls.len(), 2);
    }

    #[test]
    fn check_takes_urls_or_a_configuration_not_both() {
        let cli = Cli::try_parse_from(["ldapmux", "check", "--config", "/etc/p.toml"]).unwrap();
        let Command::Check(c) = cli.command else {
            panic!("check")
        };
        assert!(c.urls.is_empty() && c.config.is_some());
        assert!(Cli::try_parse_from(["ldapmux", "check", "--env"]).is_ok());
        for bad in [
            &["check", "ldap://a", "--config", "/p.toml"][..],
            &["check", "--config", "/p.toml", "--env"],
            &["check", "--config", "/p.toml", "--starttls"],
            &["check", "--env", "--no-verify"],
        ] {
            let args = std::iter::once("ldapmux").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_needs_a_configuration_and_metrics_need_follow() {
        assert!(Cli::try_parse_from(["ldapmux", "status"]).is_err());
        let cli = Cli::try_parse_from(["ldapmux", "status", "--config", "/p.toml"]).unwrap();
        let Command::Status(s) = cli.command else {
            panic!("status")
        };
        assert_eq!((s.follow, s.interval, s.timeout), (false, 5, 5));
        assert!(
            Cli::try_parse_from([
                "ldapmux",
                "status",
                "--env",
                "--follow",
                "--interval",
                "1",
                "--metrics-addr",
                "127.0.0.1:9464"
            ])
            .is_ok()
        );
        for bad in [
            &["status", "--env", "--interval", "2"][..],
            &["status", "--env", "--follow", "--interval", "0"],
            &["status", "--env", "--metrics-addr", "127.0.0.1:9464"],
            &["status", "--env", "--follow", "--metrics-addr", "localhost"],
            &["status", "--env", "--follow", "--metrics-allow-remote"],
        ] {
            let args = std::iter::once("ldapmux").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}
