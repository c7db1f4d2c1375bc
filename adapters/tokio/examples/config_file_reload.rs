//! A pool built from an ldapmux TOML file and reloaded when the file
//! changes (or on demand, as a daemon does on SIGHUP). An invalid new file
//! is refused with its error; the old configuration keeps serving.
//!
//! ```text
//! cat > /tmp/pool.toml <<'TOML'
//! uri = ["ldap://127.0.0.1:389"]
//! base = "dc=example,dc=com"
//! TOML
//! cargo run -p ldapmux --example config_file_reload -- /tmp/pool.toml
//! ```
//!
//! Edit the file while it runs (add a server, change a timeout): each line
//! shows the reloads applied and refused so far.

use std::path::Path;
use std::time::Duration;

use ldapmux::{ConfigFile, Pool, Scope, WatchOptions, WatchReport};

/// Builds a pool from `path`, watches it every `interval`, and reads once
/// through it. Returns the pool, its watch, and the number of entries the
/// read found at the file's `base`.
pub async fn start(
    path: &Path,
    interval: Duration,
) -> Result<(Pool, ldapmux::ConfigWatch, usize), Box<dyn std::error::Error>> {
    let config = ConfigFile::read_toml(path)?;
    let base = config.base().unwrap_or("").to_owned();
    let pool = config.builder().build()?;
    let watch = pool.watch_with(
        path,
        WatchOptions {
            interval,
            ..WatchOptions::default()
        },
    )?;
    let found = pool
        .search(&base, Scope::Base, "(objectClass=*)", &["1.1"])
        .await?
        .len();
    Ok((pool, watch, found))
}

/// Reloads now, whether or not the file changed; returns the watch's report.
pub async fn reload_now(watch: &ldapmux::ConfigWatch) -> WatchReport {
    if let Err(e) = watch.reload_now().await {
        eprintln!("reload refused: {e}");
    }
    watch.report()
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: config_file_reload FILE.toml")?;
    let (pool, watch, found) = start(Path::new(&path), Duration::from_secs(1)).await?;
    println!("read {found} entries at the file's base");
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = watch.report();
        println!(
            "reloads {}, refused {}, last error {:?}",
            r.reloads, r.refused, r.last_error
        );
    }
    pool.shutdown().await;
    Ok(())
}
