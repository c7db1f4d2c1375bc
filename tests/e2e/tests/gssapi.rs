//! SASL GSSAPI end to end (ldapmux's `gssapi` feature, on in this crate): a real MIT KDC on
//! 127.0.0.1 (`ldapmux_harness::Kdc`), slapd with Cyrus SASL's GSSAPI
//! plugin and its own keytab for `ldap/127.0.0.1`, and `authz-regexp`
//! mapping `uid=<principal>,cn=<realm>,cn=gssapi,cn=auth` to the user entry.
//!
//! The Kerberos library reads its configuration and credentials from the
//! environment (`KRB5_CONFIG`, `KRB5_CLIENT_KTNAME`, `KRB5CCNAME`), which a
//! test cannot change in its own (multi-threaded) process: each test starts
//! the KDC and slapd, then runs its pool half in a child process — this
//! same test binary, running only this test — with that environment.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ldapmux::{BuildError, ConnErrorKind, Credential, Pool};
use ldapmux_harness::{Kdc, REALM, Slapd};

/// Set in the child: the URL of the slapd the parent started.
const CHILD_URL: &str = "LDAPMUX_GSSAPI_URL";

/// The KDC, a principal `user` (tickets capped at `max_life`) with its
/// keytab, and a slapd that accepts GSSAPI binds for `ldap/127.0.0.1`.
struct Realm {
    kdc: Kdc,
    slapd: Slapd,
}

fn realm(users: &[(&str, Option<Duration>)]) -> Realm {
    let kdc = Kdc::start().unwrap_or_else(|e| panic!("starting the test KDC: {e}"));
    let service = kdc
        .add_principal("ldap/127.0.0.1", None)
        .unwrap_or_else(|e| panic!("{e}"));
    for (user, life) in users {
        kdc.add_principal(user, *life)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let plugin = Path::new("/usr/lib/x86_64-linux-gnu/sasl2/libgssapiv2.so");
    assert!(
        plugin.exists(),
        "Cyrus SASL's GSSAPI plugin is missing: apt-get install -y \
         libsasl2-modules-gssapi-mit (make test does this)"
    );
    let slapd = Slapd::builder()
        .users(10)
        .env("KRB5_CONFIG", kdc.krb5_conf().display().to_string())
        .env("KRB5_KTNAME", format!("FILE:{}", service.display()))
        // The acceptor's replay cache goes with the realm, not to /var/tmp.
        .env("KRB5RCACHEDIR", kdc.dir().display().to_string())
        .global_config("sasl-host 127.0.0.1")
        .global_config(format!("sasl-realm {REALM}"))
        .global_config(format!(
            "authz-regexp \"^uid=([^,]+),cn=[^,]+,cn=gssapi,cn=auth$\" \"uid=$1,{}\"",
            Slapd::people_base()
        ))
        .start()
        .unwrap_or_else(|e| panic!("starting slapd for GSSAPI: {e}"));
    Realm { kdc, slapd }
}

/// Runs `test` (this test's own name) again in a child process with the
/// realm's Kerberos environment and `keytab` as the client keytab; fails if
/// the child fails, showing its output.
fn run_child(test: &str, realm: &Realm, keytab: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, realm.slapd.url())
        .env("KRB5_CONFIG", realm.kdc.krb5_conf())
        .env("KRB5_CLIENT_KTNAME", keytab)
        .env(
            "KRB5CCNAME",
            format!("FILE:{}", realm.kdc.dir().join("client.ccache").display()),
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the child run of {test} failed:\n{text}"
    );
    println!("{text}");
}

fn keytab_of(realm: &Realm, user: &str) -> String {
    format!(
        "FILE:{}",
        realm.kdc.dir().join(format!("{user}.keytab")).display()
    )
}

/// The child's half: the URL, if this process is the child.
fn child_url() -> Option<String> {
    std::env::var(CHILD_URL).ok()
}

fn mapped(user: &str) -> String {
    format!("dn:uid={user},{}", Slapd::people_base()).to_lowercase()
}

/// slapd's own view, asked through `pool` (the monitor is readable by
/// all): the bind identity of each open client connection, lowercased.
async fn slapd_authz(pool: &Pool) -> Vec<String> {
    let entries = pool
        .search(
            "cn=Connections,cn=Monitor",
            ldapmux::Scope::OneLevel,
            "(objectClass=monitorConnection)",
            &["monitorConnectionAuthzDN"],
        )
        .await
        .unwrap();
    entries
        .iter()
        .filter_map(|e| e.attrs.get("monitorConnectionAuthzDN")?.first())
        .map(|dn| dn.to_lowercase())
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn gssapi_pooled_connections_bind_as_the_principal() {
    const NAME: &str = "gssapi_pooled_connections_bind_as_the_principal";
    let Some(url) = child_url() else {
        let realm = realm(&[("user6", None)]);
        run_child(NAME, &realm, &keytab_of(&realm, "user6"));
        return;
    };
    init_tracing();
    runtime().block_on(async {
        let pool = builder()
            .server(&url)
            .credential(Credential::gssapi(None))
            .max_users_per_connection(2)
            .spread_users_per_connection(1)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                let p = pool.clone();
                tokio::spawn(async move { p.whoami().await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().to_lowercase(), mapped("user6"));
        }
        let opened = pool.connections().len();
        assert!(opened >= 2, "several connections were bound: {opened}");
        let dn = Slapd::user_dn(6).to_lowercase();
        let seen = slapd_authz(&pool).await;
        assert!(
            seen.iter().filter(|a| **a == dn).count() >= 2 && seen.iter().all(|a| *a == dn),
            "slapd sees the connections bound as {dn}: {seen:?}"
        );
        // A principal of its own is another identity: its own connection.
        let named = pool.with_credential(Credential::gssapi(Some(format!("user6@{REALM}"))));
        assert_eq!(
            named.whoami().await.unwrap().to_lowercase(),
            mapped("user6")
        );
        assert_eq!(pool.connections().len(), opened + 1);
        pool.shutdown().await;

        // `ldapmux check` of a configuration file that asks for GSSAPI: the
        // plan names the mechanism and principal, and the probe's bound
        // connection is the principal's entry.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.toml");
        std::fs::write(
            &path,
            format!(
                "uri = [\"{url}\"]\nsasl_mech = \"GSSAPI\"\ngssapi_principal = \"user6@{REALM}\"\n"
            ),
        )
        .unwrap();
        let cfg = ldapmux::ConfigFile::read_toml(&path).unwrap();
        let plan = ldapmux_cli::config_check::plan(
            &ldapmux_cli::config_source::ConfigSource::file(&path),
            &cfg,
        )
        .join("\n");
        assert!(plan.contains(&format!("GSSAPI as user6@{REALM}")), "{plan}");
        let (_, reports) = ldapmux_cli::config_check::probe_servers(&cfg, Duration::from_secs(5))
            .await
            .unwrap();
        let shown = ldapmux_cli::check::render(&reports[0]);
        assert!(reports[0].ok(), "{shown}");
        assert_eq!(
            reports[0].identity.as_deref().map(str::to_lowercase),
            Some(mapped("user6")),
            "{shown}"
        );
    });
}

#[test]
fn gssapi_connections_are_retired_before_their_tickets_expire() {
    const NAME: &str = "gssapi_connections_are_retired_before_their_tickets_expire";
    const LIFE: Duration = Duration::from_secs(20);
    let Some(url) = child_url() else {
        let realm = realm(&[("user7", Some(LIFE))]);
        run_child(NAME, &realm, &keytab_of(&realm, "user7"));
        return;
    };
    init_tracing();
    runtime().block_on(async {
        let pool = builder()
            .server(&url)
            .credential(Credential::gssapi(None))
            .build()
            .unwrap();
        let ids = |p: &Pool| -> BTreeSet<_> { p.connections().iter().map(|c| c.id).collect() };
        let bound_at = Instant::now();
        assert_eq!(pool.whoami().await.unwrap().to_lowercase(), mapped("user7"));
        let first = ids(&pool);
        assert_eq!(first.len(), 1, "{first:?}");
        // Operations every 100 ms (bounded: 1.5 ticket lifetimes): every
        // one succeeds, and the first connection leaves before its ticket
        // ends, replaced by a new one.
        let mut gone_after = None;
        let mut seen = first.clone();
        while bound_at.elapsed() < LIFE * 3 / 2 {
            let me = pool
                .whoami()
                .await
                .unwrap_or_else(|e| panic!("an operation failed at {:?}: {e}", bound_at.elapsed()));
            assert_eq!(me.to_lowercase(), mapped("user7"));
            let now = ids(&pool);
            seen.extend(now.iter().copied());
            if gone_after.is_none() && now.is_disjoint(&first) {
                gone_after = Some(bound_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let gone_after = gone_after.expect("the first connection was never retired");
        println!("first connection retired after {gone_after:?}; connections seen: {seen:?}");
        assert!(
            gone_after < LIFE,
            "retired after {gone_after:?}, the ticket lasts {LIFE:?}"
        );
        assert!(seen.len() >= 2, "a new connection replaced it: {seen:?}");
        // slapd closed the retired connection too: it counts as many
        // connections bound as user7 as the pool has.
        let dn = format!("uid=user7,{}", Slapd::people_base()).to_lowercase();
        let open = pool.connections().len();
        assert_eq!(open, 1, "{:?}", pool.connections());
        let bound = slapd_authz(&pool).await;
        assert_eq!(
            bound.iter().filter(|a| **a == dn).count(),
            open,
            "{bound:?}"
        );
        pool.shutdown().await;
    });
}

#[test]
fn gssapi_with_a_missing_keytab_or_unknown_principal_is_a_typed_error() {
    const NAME: &str = "gssapi_with_a_missing_keytab_or_unknown_principal_is_a_typed_error";
    let Some(url) = child_url() else {
        let realm = realm(&[("user8", None)]);
        // The child's keytab does not exist.
        let missing = format!("FILE:{}", realm.kdc.dir().join("none.keytab").display());
        run_child(NAME, &realm, &missing);
        return;
    };
    init_tracing();
    runtime().block_on(async {
        let err = builder()
            .server(&url)
            .credential(Credential::gssapi(None))
            .build()
            .expect_err("a missing client keytab is refused at build time");
        assert!(matches!(err, BuildError::Gssapi(_)), "{err:?}");
        assert!(err.to_string().contains("none.keytab"), "{err}");
    });
}

#[test]
fn gssapi_with_a_principal_missing_from_the_keytab_is_an_invalid_credential() {
    const NAME: &str = "gssapi_with_a_principal_missing_from_the_keytab_is_an_invalid_credential";
    let Some(url) = child_url() else {
        let realm = realm(&[("user8", None)]);
        run_child(NAME, &realm, &keytab_of(&realm, "user8"));
        return;
    };
    init_tracing();
    runtime().block_on(async {
        let pool = builder()
            .server(&url)
            .credential(Credential::gssapi(Some(format!("nobody@{REALM}"))))
            .build()
            .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), pool.whoami())
            .await
            .expect("an answer within 10 s")
            .expect_err("no credentials for nobody");
        assert_eq!(
            err.conn_error_kind(),
            Some(ConnErrorKind::InvalidCredentials),
            "{err}"
        );
        pool.shutdown().await;
    });
}
