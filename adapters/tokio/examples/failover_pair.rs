//! A preferred server and a backup: reads go to the first, move to the
//! second while it is down, and come back (after the fail-back hold-down)
//! when it answers again. Run it, stop the first server, start it again, and
//! watch the lines.
//!
//! ```text
//! LDAP_URLS=ldap://127.0.0.1:3891,ldap://127.0.0.1:3892 LDAP_BASE=dc=example,dc=com \
//!     cargo run -p ldapmux --example failover_pair
//! ```

use std::time::Duration;

use ldapmux::{Health, Pool, Scope};

/// One read on `pool`; returns the URL of the server that answered and how
/// each configured server stands.
pub async fn read_once(
    pool: &Pool,
    base: &str,
) -> Result<(String, Vec<(String, Health)>), ldapmux::Error> {
    // A lease keeps one connection and says which server it is on. Unlike
    // the pool's own operations, a lease is not retried: if its connection
    // died (say the server was just killed), take a new one, which the
    // pool places on a live connection or server.
    let mut tries = 0;
    let served_by = loop {
        tries += 1;
        let mut guard = pool.lease(ldapmux::LeaseKind::Read).await?;
        match guard
            .search(base, Scope::Base, "(objectClass=*)", &["1.1"])
            .await
        {
            Ok(_) => break guard.server_url(),
            Err(ldapmux::Error::LeaseDead(_)) if tries < 3 => continue,
            Err(e) => return Err(e),
        }
    };
    let servers = pool
        .status()
        .servers
        .into_iter()
        .map(|s| (s.addr, s.health))
        .collect();
    Ok((served_by, servers))
}

/// A pool with `preferred` first and `backup` after it.
pub fn pair(preferred: &str, backup: &str) -> Result<Pool, ldapmux::BuildError> {
    Pool::builder()
        .preferred_server(preferred)
        .server(backup)
        .connect_timeout(Duration::from_secs(2))
        .failback_hold_down(Duration::from_secs(5))
        .build()
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let urls = std::env::var("LDAP_URLS")
        .unwrap_or_else(|_| "ldap://127.0.0.1:3891,ldap://127.0.0.1:3892".into());
    let base = std::env::var("LDAP_BASE").unwrap_or_else(|_| "dc=example,dc=com".into());
    let (preferred, backup) = urls
        .split_once(',')
        .ok_or("LDAP_URLS: two URLs, comma-separated")?;
    let pool = pair(preferred, backup)?;
    for _ in 0..120 {
        match read_once(&pool, &base).await {
            Ok((server, health)) => println!("served by {server}; {health:?}"),
            Err(e) => println!("failed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    pool.shutdown().await;
    Ok(())
}
