//! `ldapmux status --follow`: a status line every interval; SIGHUP re-reads
//! the configuration and reloads the pool (an invalid one is refused and the
//! old one keeps serving); SIGINT / SIGTERM shut the pool down.
//!
//! Signals are handled between two reads: a read in progress finishes first
//! (it is bounded by `--timeout`), then the signal is acted on.

use std::time::{Duration, Instant};

use ldapmux::{ConfigFile, Pool};
use tokio::signal::unix::{SignalKind, signal};

use crate::config_source::ConfigSource;
use crate::metrics_http::RELOADS;
use crate::status::{self, Snapshot};

/// How `--follow` runs.
#[derive(Clone, Copy, Debug)]
pub struct FollowOptions {
    /// Between two status lines.
    pub interval: Duration,
    /// Bound on each read.
    pub timeout: Duration,
}

/// Why following stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// What a SIGHUP did.
#[derive(Debug)]
pub enum Reload {
    /// The new configuration serves.
    Done(Box<ConfigFile>),
    /// Refused, with the error as printed; the old configuration serves.
    Refused(String),
}

/// Re-reads `source` and reloads `pool` with it.
pub fn reload(source: &ConfigSource, pool: &Pool) -> Reload {
    let outcome = match source.load() {
        Err(e) => Reload::Refused(e.to_string()),
        // As Pool::watch does: an edit of the server list alone keeps the
        // connections to servers still listed.
        Ok(cfg) => match pool.reload_keeping_servers(cfg.builder()) {
            Ok(()) => Reload::Done(Box::new(cfg)),
            Err(e) => Reload::Refused(e.to_string()),
        },
    };
    let result = match outcome {
        Reload::Done(_) => "ok",
        Reload::Refused(_) => "refused",
    };
    metrics::counter!(RELOADS, "result" => result).increment(1);
    outcome
}

/// Follows `pool` (built from `cfg`, read from `source`) until SIGINT or
/// SIGTERM, then shuts it down. Prints to stdout. The signal handlers are
/// in place before the first line is printed.
pub async fn follow(
    source: &ConfigSource,
    mut cfg: ConfigFile,
    pool: &Pool,
    opts: FollowOptions,
) -> std::io::Result<Stop> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let started = Instant::now();
    println!(
        "following {source}: a status line every {}s; SIGHUP reloads the configuration, \
         SIGINT or SIGTERM stop (pid {})",
        opts.interval.as_secs_f64(),
        std::process::id()
    );
    let print_line = async |cfg: &ConfigFile| {
        let read = status::read(pool, opts.timeout).await;
        // Gauges as of this line, for the next scrape.
        pool.publish_metrics();
        let snap = Snapshot::of(pool);
        println!("{}", status::line(started.elapsed(), cfg, &snap, &read));
    };
    let mut tick = tokio::time::interval(opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = loop {
        tokio::select! {
            _ = tick.tick() => print_line(&cfg).await,
            _ = hup.recv() => {
                match reload(source, pool) {
                    Reload::Done(new) => {
                        cfg = *new;
                        let servers: Vec<&str> = cfg.servers().into_iter().map(|(u, _)| u).collect();
                        println!("reloaded {source}: servers {}", servers.join(", "));
                    }
                    Reload::Refused(e) => println!(
                        "reload refused: {e}; still serving with the previous configuration"
                    ),
                }
                print_line(&cfg).await;
            }
            _ = int.recv() => break Stop::Interrupt,
            _ = term.recv() => break Stop::Terminate,
        }
    };
    let left = pool.shutdown().await;
    println!(
        "{}: pool shut down ({left} sockets left open), exiting",
        stop.name()
    );
    Ok(stop)
}
