//! `--metrics-addr`: the pool's metrics (recorded through the `metrics`
//! facade) served as Prometheus text at `http://ADDR/metrics` by
//! `metrics-exporter-prometheus`.
//!
//! Secure by default: the endpoint has no authentication, so only a
//! loopback address is accepted unless the operator explicitly allows a
//! remote one ([`MetricsError::NotLoopback`]).

use std::net::SocketAddr;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tokio::task::JoinHandle;

/// The exporter could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A non-loopback address without `--metrics-allow-remote`.
    #[error(
        "refusing to serve metrics on {addr}: not a loopback address, and the endpoint has \
         no authentication; use 127.0.0.1:PORT or [::1]:PORT, or pass --metrics-allow-remote \
         to expose it to the network anyway"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The listener or the recorder could not be set up (address in use, a
    /// recorder already installed, …).
    #[error("cannot serve metrics on {addr}: {reason}")]
    Start {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// Refuses `addr` unless it is a loopback address or `allow_remote`.
pub fn check_addr(addr: SocketAddr, allow_remote: bool) -> Result<(), MetricsError> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(MetricsError::NotLoopback { addr })
    }
}

/// The CLI's own counter of SIGHUP reloads, by `result` (`ok`, `refused`).
pub const RELOADS: &str = "ldapmux_cli_reloads_total";
/// The CLI's own counter of `status` reads, by `outcome` (`ok`, `error`).
pub const STATUS_READS: &str = "ldapmux_cli_status_reads_total";

/// Histogram buckets (seconds) for the library's acquire latency: from a
/// shared connection at hand (well under a millisecond) to a connect timeout.
const ACQUIRE_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// A running metrics endpoint; dropping it stops serving.
#[derive(Debug)]
pub struct MetricsEndpoint {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Installs the Prometheus recorder as the process's `metrics` recorder
    /// and serves it at `addr`. Call once, inside a tokio runtime, before
    /// the pool is built (so that none of its metrics are missed).
    pub fn start(addr: SocketAddr, allow_remote: bool) -> Result<MetricsEndpoint, MetricsError> {
        check_addr(addr, allow_remote)?;
        let start = |reason: String| MetricsError::Start { addr, reason };
        let (recorder, exporter) = PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                Matcher::Full("ldapmux_acquire_seconds".to_owned()),
                &ACQUIRE_BUCKETS,
            )
            .and_then(PrometheusBuilder::build)
            .map_err(|e| start(e.to_string()))?;
        metrics::set_global_recorder(recorder).map_err(|e| start(e.to_string()))?;
        let task = tokio::spawn(async move {
            if let Err(e) = exporter.await {
                eprintln!("ldapmux: the metrics endpoint stopped: {e:?}");
            }
        });
        Ok(MetricsEndpoint { addr, task })
    }

    /// Where it serves.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Describes the metrics `ldapmux status` records itself and shows them at
/// zero from the start, so a scrape can tell "none yet" from "not exported".
/// A no-op without a recorder.
pub fn describe_status_metrics() {
    metrics::describe_counter!(
        RELOADS,
        "Configuration reloads asked for with SIGHUP, by result: ok, or refused (invalid file)"
    );
    metrics::describe_counter!(
        STATUS_READS,
        "Reads `ldapmux status` made through the pool, by outcome (ok, error)"
    );
    for result in ["ok", "refused"] {
        metrics::counter!(RELOADS, "result" => result).increment(0);
    }
    for outcome in ["ok", "error"] {
        metrics::counter!(STATUS_READS, "outcome" => outcome).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_allowed() {
        let local: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let local6: SocketAddr = "[::1]:9464".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        let lan: SocketAddr = "192.0.2.7:9464".parse().unwrap();
        assert!(check_addr(local, false).is_ok());
        assert!(check_addr(local6, false).is_ok());
        for addr in [any, lan] {
            let err = check_addr(addr, false).unwrap_err();
            assert!(matches!(err, MetricsError::NotLoopback { .. }));
            assert!(err.to_string().contains("--metrics-allow-remote"), "{err}");
            assert!(check_addr(addr, true).is_ok());
        }
    }
}
