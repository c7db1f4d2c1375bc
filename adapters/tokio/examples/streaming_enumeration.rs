//! Enumerates a large subtree as a stream (what `getent passwd` does): one
//! connection is kept for the whole enumeration, entries arrive as the
//! server sends them, and a failure after the first entry ends the stream
//! with its error instead of restarting from the top.
//!
//! ```text
//! LDAP_URL=ldap://127.0.0.1:389 LDAP_BASE=ou=people,dc=example,dc=com \
//!     cargo run -p ldapmux --example streaming_enumeration
//! ```

use ldapmux::{Pool, Scope};

/// Streams every `posixAccount` under `base` on `url`; returns how many
/// there were and the first few `uid`s.
pub async fn run(
    url: &str,
    base: &str,
) -> Result<(usize, Vec<String>), Box<dyn std::error::Error + Send + Sync>> {
    let pool = Pool::builder().server(url).build()?;
    let mut stream = pool
        .streaming_search(base, Scope::Subtree, "(objectClass=posixAccount)", &["uid"])
        .await?;
    let (mut count, mut first) = (0, Vec::new());
    while let Some(entry) = stream.next_entry().await {
        let entry = entry?;
        count += 1;
        if first.len() < 3 {
            first.extend(entry.attrs.get("uid").into_iter().flatten().cloned());
        }
    }
    drop(stream);
    pool.shutdown().await;
    Ok((count, first))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("LDAP_URL").unwrap_or_else(|_| "ldap://127.0.0.1:389".into());
    let base = std::env::var("LDAP_BASE").unwrap_or_else(|_| "dc=example,dc=com".into());
    let (count, first) = run(&url, &base).await?;
    println!("{count} accounts, first: {}", first.join(", "));
    Ok(())
}
