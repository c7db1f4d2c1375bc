//! SASL EXTERNAL end to end against slapd: over TLS with a client
//! certificate (slapd with `TLSVerifyClient demand` maps the certificate's
//! subject `cn=userN` to `uid=userN,ou=people,…` with `authz-regexp`), and
//! over `ldapi://` with the process's Unix credentials. Every pooled
//! connection binds as the mapped identity, identities never share a
//! connection (slapd's monitor says who each connection is bound as), and a
//! certificate slapd refuses is a typed TLS error, not a hang.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use ldapmux::{ClientCert, ConnErrorKind, Credential, Error, Pool};
use ldapmux_harness::{ServerCert, Slapd, TestCa};

/// A TLS slapd that demands a client certificate from `ca` and maps its
/// subject `cn=X` to `uid=X,ou=people,dc=example,dc=com`; also on ldapi.
fn external_server(ca: &TestCa) -> Slapd {
    Slapd::builder()
        .users(10)
        .tls(ca.issue(&["127.0.0.1"]), ca)
        .ldapi()
        .global_config("TLSVerifyClient demand")
        .global_config(format!(
            "authz-regexp \"^cn=([^,]+)$\" \"uid=$1,{}\"",
            Slapd::people_base()
        ))
        .start()
        .unwrap_or_else(|e| panic!("starting slapd with TLS and client certificates: {e}"))
}

/// Writes `cert` to `dir/<name>.pem` and `dir/<name>.key`.
fn write_cert(dir: &Path, name: &str, cert: &ServerCert) -> (PathBuf, PathBuf) {
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, &cert.cert_pem).unwrap();
    std::fs::write(&k, &cert.key_pem).unwrap();
    (c, k)
}

fn external(dir: &Path, name: &str, cert: &ServerCert) -> Credential {
    let (c, k) = write_cert(dir, name, cert);
    Credential::sasl_external_tls(ClientCert::from_pem_files(c, k).unwrap())
}

fn mapped(i: usize) -> String {
    format!("dn:{}", Slapd::user_dn(i)).to_lowercase()
}

/// `n` WhoAmI at once on `pool`, lowercased.
async fn whoami_all(pool: &Pool, n: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.whoami().await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().unwrap().to_lowercase());
    }
    out
}

/// slapd's bind identity of each open connection on its ldaps listener.
async fn ldaps_authz(server: &Slapd) -> Vec<String> {
    let port = format!(":{}", server.ldaps_port().unwrap());
    server
        .monitor_connections()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.local.ends_with(&port))
        .map(|c| c.authz_dn.to_lowercase())
        .collect()
}

fn assert_tls_error(result: Result<String, Error>, what: &str) {
    match result {
        Err(e) => assert_eq!(
            e.conn_error_kind(),
            Some(ConnErrorKind::Tls),
            "{what}: a TLS error, got {e}"
        ),
        Ok(me) => panic!("{what}: bound as {me}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_tls_binds_every_pooled_connection_as_the_certificate_subject() {
    init_tracing();
    let ca = TestCa::new("ldapmux-sasl");
    let server = external_server(&ca);
    let dir = server.dir().to_owned();
    let ca_file = ca.write_ca_file(&dir);
    let cred = external(&dir, "user3", &ca.issue_client(&Slapd::user_uid(3)));
    let pool = builder()
        .server(server.ldaps_url().unwrap())
        .tls_ca_file(&ca_file)
        .credential(cred.clone())
        // At most two operations a connection: 48 at once need several.
        .max_users_per_connection(2)
        .spread_users_per_connection(1)
        .build()
        .unwrap();
    for me in whoami_all(&pool, 48).await {
        assert_eq!(me, mapped(3));
    }
    // A connection spreading opened may still be between its handshake
    // and its bind: wait (bounded) until each has bound.
    eventually_async(
        "every open connection has bound",
        Duration::from_secs(5),
        || async { !ldaps_authz(&server).await.iter().any(String::is_empty) },
    )
    .await;
    let bound = ldaps_authz(&server).await;
    assert!(
        bound.len() >= 2,
        "several pooled connections were opened: {bound:?}"
    );
    for dn in &bound {
        assert_eq!(
            *dn,
            Slapd::user_dn(3).to_lowercase(),
            "every connection: {bound:?}"
        );
    }

    // StartTLS presents the certificate too.
    let starttls = builder()
        .server(server.url())
        .starttls(true)
        .tls_ca_file(&ca_file)
        .credential(cred)
        .build()
        .unwrap();
    assert_eq!(starttls.whoami().await.unwrap().to_lowercase(), mapped(3));
    pool.shutdown().await;
    starttls.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_identities_with_different_certificates_never_share_a_connection() {
    init_tracing();
    let ca = TestCa::new("ldapmux-sasl");
    let server = external_server(&ca);
    let dir = server.dir().to_owned();
    let cert3 = ca.issue_client(&Slapd::user_uid(3));
    let pool = builder()
        .server(server.ldaps_url().unwrap())
        .tls_ca_file(ca.write_ca_file(&dir))
        .credential(external(&dir, "user3", &cert3))
        .build()
        .unwrap();
    let other = pool.with_credential(external(&dir, "user4", &ca.issue_client("user4")));
    let (mine, theirs) = tokio::join!(whoami_all(&pool, 24), whoami_all(&other, 24));
    assert!(mine.iter().all(|m| *m == mapped(3)), "{mine:?}");
    assert!(theirs.iter().all(|m| *m == mapped(4)), "{theirs:?}");
    let bound = ldaps_authz(&server).await;
    let count = |i: usize| {
        let dn = Slapd::user_dn(i).to_lowercase();
        bound.iter().filter(|b| **b == dn).count()
    };
    assert!(count(3) >= 1 && count(4) >= 1, "{bound:?}");
    assert_eq!(
        count(3) + count(4),
        bound.len(),
        "no other identity: {bound:?}"
    );

    // The same certificate read again is the same identity: it rides the
    // open connections instead of opening one.
    let again = pool.with_credential(external(&dir, "user3-again", &cert3));
    let (me, opened) = connections_opened_during(&server, again.whoami()).await;
    assert_eq!(me.unwrap().to_lowercase(), mapped(3));
    assert_eq!(opened, 0, "the same client certificate shares connections");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_with_a_certificate_of_another_ca_or_expired_is_a_typed_tls_error() {
    init_tracing();
    let ca = TestCa::new("ldapmux-sasl");
    let stranger = TestCa::new("someone-else");
    let server = external_server(&ca);
    let dir = server.dir().to_owned();
    let ca_file = ca.write_ca_file(&dir);
    let cases = [
        (
            "a client certificate of another CA",
            stranger.issue_client("user3"),
        ),
        (
            "an expired client certificate",
            ca.issue_expired_client("user3"),
        ),
    ];
    for (what, cert) in cases {
        let pool = builder()
            .server(server.ldaps_url().unwrap())
            .tls_ca_file(&ca_file)
            .credential(external(&dir, "refused", &cert))
            .build()
            .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), pool.whoami())
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within 5 s"));
        assert_tls_error(result, what);
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_over_ldapi_binds_as_the_unix_peer_credentials() {
    init_tracing();
    let ca = TestCa::new("ldapmux-sasl");
    let server = external_server(&ca);
    let me = std::fs::metadata("/proc/self").unwrap();
    let pool = builder()
        .server(server.ldapi_url().unwrap())
        .credential(Credential::sasl_external_peer())
        .build()
        .unwrap();
    assert_eq!(
        pool.whoami().await.unwrap().to_lowercase(),
        format!(
            "dn:gidnumber={}+uidnumber={},cn=peercred,cn=external,cn=auth",
            me.gid(),
            me.uid()
        )
    );
    // Without a certificate, EXTERNAL is refused over TCP at build time.
    let err = builder()
        .server(server.ldaps_url().unwrap())
        .credential(Credential::sasl_external_peer())
        .build()
        .expect_err("EXTERNAL without a certificate on ldaps:// is refused");
    assert!(err.to_string().contains("ldapi://"), "{err}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_ldap_conf_and_ldapmux_check_report_the_mechanism_and_identity() {
    use ldapmux_cli::config_check;
    use ldapmux_cli::config_source::ConfigSource;
    init_tracing();
    let ca = TestCa::new("ldapmux-sasl");
    let server = external_server(&ca);
    let dir = server.dir().to_owned();
    let (cert, key) = write_cert(&dir, "user5", &ca.issue_client(&Slapd::user_uid(5)));
    let conf = dir.join("ldap.conf");
    std::fs::write(
        &conf,
        format!(
            "URI {}\nTLS_CACERT {}\nSASL_MECH EXTERNAL\nTLS_CERT {}\nTLS_KEY {}\n",
            server.ldaps_url().unwrap(),
            ca.write_ca_file(&dir).display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let cfg = ldapmux::ConfigFile::read_ldap_conf(&conf).unwrap();
    let plan = config_check::plan(&ConfigSource::file(&conf), &cfg).join("\n");
    assert!(
        plan.contains(&format!(
            "bind: SASL EXTERNAL with the client certificate {}",
            cert.display()
        )),
        "{plan}"
    );
    let (_, reports) = config_check::probe_servers(&cfg, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    let shown = ldapmux_cli::check::render(&reports[0]);
    assert_eq!(
        reports[0].identity.as_deref().map(str::to_lowercase),
        Some(mapped(5)),
        "{shown}"
    );
    assert!(
        shown.contains("bind:  SASL EXTERNAL with the client certificate"),
        "{shown}"
    );
    let key_text = std::fs::read_to_string(&key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap();
    assert!(!shown.contains(key_line) && !plan.contains(key_line));

    // The same from the command line: `ldapmux check URL --sasl-external`.
    let opts = ldapmux_cli::check::CheckOptions {
        urls: vec![server.ldaps_url().unwrap()],
        ca_file: Some(ca.write_ca_file(&dir)),
        starttls: false,
        bind_dn: None,
        password: None,
        sasl_external: Some(Some((cert.clone(), key.clone()))),
        no_verify: false,
        timeout: Duration::from_secs(5),
    };
    let reports = ldapmux_cli::check::check(&opts).await;
    let shown = ldapmux_cli::check::render(&reports[0]);
    assert_eq!(
        reports[0].identity.as_deref().map(str::to_lowercase),
        Some(mapped(5)),
        "{shown}"
    );
    assert!(
        shown.contains("bind:  SASL EXTERNAL with the client certificate"),
        "{shown}"
    );
    assert!(!shown.contains(key_line));
}
