//! The smallest useful program: one server, anonymous reads, a search.
//!
//! ```text
//! LDAP_URL=ldap://127.0.0.1:389 LDAP_BASE=ou=people,dc=example,dc=com \
//!     cargo run -p ldapmux --example basic_search -- '(objectClass=person)'
//! ```
//!
//! With no credential the pool binds anonymously; add
//! `.credential(Credential::simple(dn, password))` to bind as a user.

use ldapmux::{Pool, Scope};

/// Searches `base` for `filter` on `url` and returns each entry's DN and
/// `cn` values.
pub async fn run(
    url: &str,
    base: &str,
    filter: &str,
) -> Result<Vec<(String, Vec<String>)>, Box<dyn std::error::Error + Send + Sync>> {
    let pool = Pool::builder().server(url).build()?;
    let entries = pool.search(base, Scope::Subtree, filter, &["cn"]).await?;
    pool.shutdown().await;
    Ok(entries
        .into_iter()
        .map(|e| {
            let cn = e.attrs.get("cn").cloned().unwrap_or_default();
            (e.dn, cn)
        })
        .collect())
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::var("LDAP_URL").unwrap_or_else(|_| "ldap://127.0.0.1:389".into());
    let base = std::env::var("LDAP_BASE").unwrap_or_else(|_| "dc=example,dc=com".into());
    let filter = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "(objectClass=*)".into());
    for (dn, cn) in run(&url, &base, &filter).await? {
        println!("{dn}  cn={}", cn.join(", "));
    }
    Ok(())
}
