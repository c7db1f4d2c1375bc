//! The pool's metrics in Prometheus' text format. The pool records through
//! the `metrics` facade; any recorder works. Here the Prometheus exporter's
//! recorder is installed without its HTTP listener and its rendering is
//! printed (serve it from your own `/metrics` route, or use the exporter's
//! listener instead).
//!
//! ```text
//! LDAP_URL=ldap://127.0.0.1:389 cargo run -p ldapmux --example metrics_prometheus
//! ```

use ldapmux::{Pool, Scope};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the Prometheus recorder for this process (once).
pub fn install() -> PrometheusHandle {
    PrometheusBuilder::new()
        .install_recorder()
        .expect("no other recorder installed")
}

/// Runs `reads` root DSE reads on `url` under the name `pool` and returns
/// the text Prometheus would scrape.
pub async fn run(
    handle: &PrometheusHandle,
    url: &str,
    reads: usize,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let pool = Pool::builder()
        .server(url)
        .metrics_name("example")
        .build()?;
    for _ in 0..reads {
        pool.search("", Scope::Base, "(objectClass=*)", &["1.1"])
            .await?;
    }
    // Gauges are published periodically and on demand.
    pool.publish_metrics();
    let text = handle.render();
    pool.shutdown().await;
    Ok(text)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("LDAP_URL").unwrap_or_else(|_| "ldap://127.0.0.1:389".into());
    let handle = install();
    print!("{}", run(&handle, &url, 10).await?);
    Ok(())
}
