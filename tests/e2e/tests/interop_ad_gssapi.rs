//! SASL GSSAPI against Active Directory (ldapmux's `gssapi` feature): a Samba AD
//! DC ([`SambaDc`]) whose embedded Heimdal KDC issues the tickets, the MIT
//! GSSAPI library on the client side (ldapmux's `gssapi` feature).
//!
//! As in `gssapi.rs`, the Kerberos library reads its configuration and
//! credentials from the environment, so the pool half runs in a child
//! process (this test binary, this test only) with `KRB5_CONFIG` naming the
//! DC's KDC and `KRB5CCNAME` a ticket cache the parent filled with `kinit`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{builder, init_tracing};
use ldapmux::{Credential, Scope};
use ldapmux_harness::{AD_BASE, AD_REALM, SambaDc};

/// Set in the child: the URL of the DC the parent started.
const CHILD_URL: &str = "LDAPMUX_AD_GSSAPI_URL";

#[test]
fn interop_ad_gssapi_bind_with_a_ticket_from_sambas_kdc() {
    const NAME: &str = "interop_ad_gssapi_bind_with_a_ticket_from_sambas_kdc";
    init_tracing();
    if let Ok(url) = std::env::var(CHILD_URL) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let pool = builder()
                .server(url)
                .credential(Credential::gssapi(None))
                .build()
                .unwrap();
            // Below the root DSE Samba answers bound users only: an answer
            // proves the GSSAPI bind.
            let found = pool
                .search(
                    AD_BASE,
                    Scope::Subtree,
                    "(sAMAccountName=Administrator)",
                    &["cn"],
                )
                .await
                .unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            pool.shutdown().await;
        });
        return;
    }
    let dc = SambaDc::shared().unwrap_or_else(|e| panic!("{e}"));
    let cache = tempfile::tempdir().unwrap();
    let ccache = format!("FILE:{}", cache.path().join("ccache").display());
    let mut kinit = Command::new("kinit")
        .arg(format!("Administrator@{AD_REALM}"))
        .env("KRB5_CONFIG", dc.krb5_conf())
        .env("KRB5CCNAME", &ccache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kinit (krb5-user)");
    writeln!(kinit.stdin.take().unwrap(), "{}", dc.admin_password()).unwrap();
    let out = kinit.wait_with_output().unwrap();
    assert!(out.status.success(), "kinit: {out:?}");

    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, dc.url())
        .env("KRB5_CONFIG", dc.krb5_conf())
        .env("KRB5CCNAME", &ccache)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the child run of {NAME} failed:\n{text}"
    );
}
