//! The pool against a real Active Directory: a Samba AD domain controller
//! (`samba-ad-dc`), provisioned once for this test binary into a temp dir and
//! listening on its own loopback address ([`SambaDc::shared`]). Every test
//! name contains `interop_ad`, so `cargo test -p ldapmux-e2e --test
//! interop_ad` (or the filter `interop_ad`) runs this suite alone.
//!
//! Samba's quirks these tests meet are in `docs/results/interop-ad-log.md`.

mod common;

use std::collections::HashSet;

use common::{builder, init_tracing};
use futures_util::StreamExt;
use ldapmux::{AuthOutcome, Credential, Password, PasswordChange, PolicyError, Pool, Scope};
use ldapmux_harness::SambaDc;
use tokio::sync::OnceCell;

/// More than Windows AD's MaxPageSize (1 000): an unpaged search of them all
/// is refused by Windows, so a client must page.
const BULK_USERS: usize = 1100;
const BULK_OU: &str = "bulk";

fn dc() -> &'static SambaDc {
    SambaDc::shared().unwrap_or_else(|e| panic!("{e}"))
}

/// The shared DC with its [`BULK_USERS`] users added (once).
async fn dc_with_bulk_users() -> &'static SambaDc {
    static ADDED: OnceCell<String> = OnceCell::const_new();
    let dc = dc();
    ADDED
        .get_or_init(|| async {
            dc.add_bulk_users(BULK_OU, BULK_USERS)
                .unwrap_or_else(|e| panic!("adding {BULK_USERS} users: {e}"))
        })
        .await;
    dc
}

fn admin_pool(url: String) -> Pool {
    let dc = dc();
    builder()
        .server(url)
        .tls_ca_file(dc.ca_file())
        .credential(Credential::simple(dc.admin_dn(), dc.admin_password()))
        .build()
        .unwrap()
}

fn values(entry: &ldapmux::SearchEntry, attr: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_root_dse_is_samba_and_offers_paging() {
    init_tracing();
    let dc = dc();
    // The root DSE is readable anonymously (everything else needs a bind).
    let pool = builder().server(dc.url()).build().unwrap();
    let entries = pool
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            &[
                "vendorName",
                "supportedControl",
                "supportedExtension",
                "defaultNamingContext",
                "supportedSASLMechanisms",
            ],
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let dse = &entries[0];
    let vendor = values(dse, "vendorName");
    assert!(vendor.iter().any(|v| v.contains("Samba")), "{vendor:?}");
    assert_eq!(values(dse, "defaultNamingContext"), [dc.base()]);
    let controls = values(dse, "supportedControl");
    assert!(
        controls.iter().any(|c| c == "1.2.840.113556.1.4.319"),
        "paged results offered: {controls:?}"
    );
    assert!(
        values(dse, "supportedSASLMechanisms")
            .iter()
            .any(|m| m == "GSSAPI")
    );
    // Samba lists no extended operation, not even StartTLS, which it offers.
    assert!(values(dse, "supportedExtension").is_empty(), "{dse:?}");
    pool.shutdown().await;
    // `ldapmux check` says the same, over LDAPS with the DC's CA.
    let opts = ldapmux_cli::check::CheckOptions {
        urls: vec![dc.ldaps_url()],
        ca_file: Some(dc.ca_file()),
        starttls: false,
        bind_dn: Some(dc.admin_dn().to_owned()),
        password: Some(ldapmux::Password::new(dc.admin_password())),
        sasl_external: None,
        no_verify: false,
        timeout: std::time::Duration::from_secs(10),
    };
    let reports = ldapmux_cli::check::check(&opts).await;
    let shown = ldapmux_cli::check::render(&reports[0]);
    assert!(reports[0].error.is_none(), "{shown}");
    assert!(shown.contains("; vendor Samba Team"), "{shown}");
    // Samba answers WhoAmI with protocolError: bound, identity unknown.
    assert!(
        shown.contains("ok (the server does not offer WhoAmI"),
        "{shown}"
    );
    assert!(shown.contains("paged results"), "{shown}");
    assert!(
        !shown.contains(dc.admin_password()),
        "never the password: {shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_anonymous_search_below_the_root_dse_is_refused() {
    init_tracing();
    let dc = dc();
    let pool = builder().server(dc.url()).build().unwrap();
    let e = pool
        .search(dc.base(), Scope::Base, "(objectClass=*)", &["dc"])
        .await
        .unwrap_err();
    // operationsError, "00002020: Operation unavailable without authentication".
    assert!(matches!(&e, ldapmux::Error::Ldap(s) if s.rc == 1), "{e:?}");
    assert!(e.to_string().contains("without authentication"), "{e}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_bound_search_finds_the_administrator_over_ldap_ldaps_and_starttls() {
    init_tracing();
    let dc = dc();
    let plain = admin_pool(dc.url());
    let ldaps = admin_pool(dc.ldaps_url());
    let starttls = builder()
        .server(dc.url())
        .starttls(true)
        .tls_ca_file(dc.ca_file())
        .credential(Credential::simple(dc.admin_dn(), dc.admin_password()))
        .build()
        .unwrap();
    for (name, pool) in [("ldap", &plain), ("ldaps", &ldaps), ("starttls", &starttls)] {
        let found = pool
            .search(
                dc.base(),
                Scope::Subtree,
                "(sAMAccountName=Administrator)",
                &["sAMAccountName", "userPrincipalName"],
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert!(
            found[0].dn.eq_ignore_ascii_case(dc.admin_dn()),
            "{name}: {}",
            found[0].dn
        );
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_paged_enumeration_returns_all_1100_users_each_once() {
    init_tracing();
    let dc = dc_with_bulk_users().await;
    let ou = format!("OU={BULK_OU},{}", dc.base());
    let want: HashSet<String> = (0..BULK_USERS)
        .map(|i| format!("CN={},{ou}", SambaDc::bulk_user(BULK_OU, i)).to_lowercase())
        .collect();
    let pool = admin_pool(dc.url());

    let streamed: Vec<_> = pool
        .streaming_search(&ou, Scope::OneLevel, "(objectClass=user)", &["cn"])
        .await
        .expect("the first page")
        .collect()
        .await;
    let n = streamed.len();
    let dns: HashSet<String> = streamed
        .into_iter()
        .map(|e| e.expect("every item an entry").dn.to_lowercase())
        .collect();
    assert_eq!(n, BULK_USERS, "streaming_search: no entry twice");
    assert_eq!(dns, want, "streaming_search: every user");

    let found = pool
        .search(&ou, Scope::OneLevel, "(objectClass=user)", &["cn"])
        .await
        .unwrap();
    assert_eq!(found.len(), BULK_USERS);
    let dns: HashSet<String> = found.into_iter().map(|e| e.dn.to_lowercase()).collect();
    assert_eq!(dns, want, "search: every user");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_samba_does_not_enforce_max_page_size() {
    init_tracing();
    // Windows AD refuses an unpaged answer past MaxPageSize (1 000) with
    // sizeLimitExceeded, and caps pages at it. Samba 4.17 enforces neither:
    // what the pool gets when paging is off, or pages are larger.
    let dc = dc_with_bulk_users().await;
    let ou = format!("OU={BULK_OU},{}", dc.base());
    for page_size in [None, Some(2000)] {
        let pool = builder()
            .server(dc.url())
            .page_size(page_size)
            .credential(Credential::simple(dc.admin_dn(), dc.admin_password()))
            .build()
            .unwrap();
        let found = pool
            .search(&ou, Scope::OneLevel, "(objectClass=user)", &["cn"])
            .await
            .unwrap_or_else(|e| panic!("page size {page_size:?}: {e}"));
        assert_eq!(found.len(), BULK_USERS, "page size {page_size:?}");
        pool.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_authenticate_right_and_wrong_password() {
    init_tracing();
    let dc = dc();
    let dn = dc.add_user("authuser", "Auth-Us3r-Pass").unwrap();
    let pool = builder().server(dc.url()).build().unwrap();
    let right = pool
        .authenticate(&dn, &Password::new("Auth-Us3r-Pass"))
        .await
        .unwrap();
    assert!(right.is_accepted(), "{right:?}");
    let wrong = pool
        .authenticate(&dn, &Password::new("not-the-password"))
        .await
        .unwrap();
    assert_eq!(wrong, AuthOutcome::InvalidCredentials);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_write_and_read_back_a_contact() {
    init_tracing();
    let dc = dc();
    let pool = admin_pool(dc.url());
    let dn = format!("CN=ldapmux-contact,CN=Users,{}", dc.base());
    let attrs: Vec<(String, HashSet<String>)> = vec![
        ("objectClass".into(), ["contact".into()].into()),
        ("description".into(), ["written by the pool".into()].into()),
    ];
    pool.add(&dn, attrs).await.unwrap();
    pool.modify(
        &dn,
        vec![ldapmux::Mod::Replace(
            "description".to_owned(),
            HashSet::from(["modified by the pool".to_owned()]),
        )],
    )
    .await
    .unwrap();
    let found = pool
        .search(&dn, Scope::Base, "(objectClass=contact)", &["description"])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(values(&found[0], "description"), ["modified by the pool"]);
    pool.delete(&dn).await.unwrap();
    let gone = pool
        .search(&dn, Scope::Base, "(objectClass=*)", &["cn"])
        .await
        .unwrap_err();
    // noSuchObject
    assert!(
        matches!(&gone, ldapmux::Error::Ldap(s) if s.rc == 32),
        "{gone:?}"
    );
    pool.shutdown().await;
}

/// A simple bind with ldap3 directly: the server's own result code and text.
async fn raw_bind(url: &str, dn: &str, password: &str) -> (u32, String) {
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(url).await.unwrap();
    ldap3::drive!(conn);
    let result = ldap.simple_bind(dn, password).await.unwrap();
    let _ = ldap.unbind().await;
    (result.rc, result.text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_lockout_after_three_failures_refuses_the_right_password() {
    init_tracing();
    let dc = dc();
    // The domain's own lockout (not a ppolicy overlay): 3 failures lock.
    dc.samba_tool(&[
        "domain",
        "passwordsettings",
        "set",
        "--account-lockout-threshold=3",
    ])
    .unwrap();
    let (user, password) = ("lockuser", "L0ck-User-Pass");
    let dn = dc.add_user(user, password).unwrap();
    let pool = builder().server(dc.url()).build().unwrap();
    assert!(
        pool.authenticate(&dn, &Password::new(password))
            .await
            .unwrap()
            .is_accepted()
    );
    for _ in 0..3 {
        let (rc, text) = raw_bind(&dc.url(), &dn, "wrong-password").await;
        assert_eq!(rc, 49, "{text}");
    }
    // Locked: AD's invalidCredentials with "data 775" in the diagnostic
    // message, even for the right password.
    let (rc, text) = raw_bind(&dc.url(), &dn, password).await;
    assert_eq!(rc, 49, "{text}");
    assert!(text.contains("data 775"), "{text}");
    let outcome = pool
        .authenticate(&dn, &Password::new(password))
        .await
        .unwrap();
    // AD sends no ppolicy control: the pool reads AD's "data 775".
    assert_eq!(outcome, AuthOutcome::AccountLocked);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_kdc_issues_tickets_for_the_ldap_service() {
    init_tracing();
    let dc = dc();
    let cache = tempfile::tempdir().unwrap();
    let ccache = format!("FILE:{}", cache.path().join("ccache").display());
    let run = |program: &str, args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(program)
            .args(args)
            .env("KRB5_CONFIG", dc.krb5_conf())
            .env("KRB5CCNAME", &ccache)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{program} {args:?}: {text}");
        text
    };
    let admin = format!("Administrator@{}", ldapmux_harness::AD_REALM);
    run("kinit", &[&admin], &format!("{}\n", dc.admin_password()));
    let service = format!("ldap/{}", dc.ip());
    let kvno = run("kvno", &[&service], "");
    assert!(kvno.contains("kvno = "), "{kvno}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_idle_close_by_max_conn_idle_time_is_not_a_server_failure() {
    init_tracing();
    // A DC of its own: a short idle limit would close the shared DC's
    // connections under the other tests.
    let dc = SambaDc::start().unwrap_or_else(|e| panic!("{e}"));
    dc.set_admin_limit("MaxConnIdleTime", 2).await.unwrap();
    let pool = builder()
        .server(dc.url())
        .credential(Credential::simple(dc.admin_dn(), dc.admin_password()))
        .build()
        .unwrap();
    let search = || {
        pool.search(
            dc.base(),
            Scope::Subtree,
            "(sAMAccountName=Administrator)",
            &["cn"],
        )
    };
    assert_eq!(search().await.unwrap().len(), 1);
    let opened = pool.status().counters.opens;
    // Samba closes the idle connection after 2 s with a plain FIN: no Notice
    // of Disconnection (see docs/results/interop-ad-log.md).
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(
        search().await.unwrap().len(),
        1,
        "served after the idle close"
    );
    let status = pool.status();
    assert!(
        status.counters.opens > opened,
        "a new connection replaced the closed one: {status:?}"
    );
    assert!(!common::is_down(&pool, &dc.url()), "{status:?}");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_kill_9_of_the_dc_under_load_retries_reads_on_a_slapd_then_fails_back() {
    init_tracing();
    // A DC of its own (it is killed and restarted) preferred, a slapd as the
    // second server; the load reads the root DSE, which both serve
    // anonymously.
    let dc = SambaDc::start().unwrap_or_else(|e| panic!("{e}"));
    let slapd = common::slapd(1);
    let pool = builder()
        .preferred_server(dc.url())
        .server(slapd.url())
        .build()
        .unwrap();
    // Fail-back: restarted with its domain (`SambaDc::restart`), the DC is
    // probed back to health and reads move back to it.
    let url = dc.url();
    let dc = std::cell::RefCell::new(dc);
    let vendor = common::kill_then_fail_back(
        &pool,
        &url,
        &slapd,
        || dc.borrow_mut().kill(),
        || dc.borrow_mut().restart().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert!(
        vendor.first().is_some_and(|v| v.starts_with("Samba Team")),
        "reads are served by the DC again: {vendor:?}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ad_change_password_through_unicode_pwd_with_the_domains_refusals() {
    init_tracing();
    // A DC of its own: the test changes the domain's password settings.
    let dc = SambaDc::start().unwrap_or_else(|e| panic!("{e}"));
    let (first, second) = ("Ch4nge-Me-Now", "N3w-Passw0rd-X");
    let dn = dc.add_user("pwuser", first).unwrap();
    let pool = builder()
        .server(dc.ldaps_url())
        .tls_ca_file(dc.ca_file())
        .build()
        .unwrap();
    let change = |old: &str, new: &str| {
        let (pool, dn) = (pool.clone(), dn.clone());
        let (old, new) = (Password::new(old), Password::new(new));
        async move { pool.change_password(&dn, &old, &new).await.unwrap() }
    };
    let refused = |outcome: PasswordChange| match outcome {
        PasswordChange::Refused { reason, status } => {
            assert_eq!(status.rc, 19, "constraintViolation: {status:?}");
            assert!(status.text.starts_with("0000052D"), "{status:?}");
            reason
        }
        other => panic!("expected a refusal, got {other:?}"),
    };

    // Samba offers no Password Modify (RFC 3062): the pool falls back to
    // AD's unicodePwd change, and the domain's rules answer. A new
    // account's password is younger than the default minimum age (a day).
    assert_eq!(
        refused(change(first, second).await),
        Some(PolicyError::PasswordTooYoung)
    );
    dc.samba_tool(&["domain", "passwordsettings", "set", "--min-pwd-age=0"])
        .unwrap();
    assert_eq!(
        refused(change(first, "Ab1-").await),
        Some(PolicyError::PasswordTooShort)
    );
    assert_eq!(
        refused(change(first, "aaaaaaaaaaaa").await),
        Some(PolicyError::InsufficientPasswordQuality)
    );
    assert_eq!(
        refused(change(first, first).await),
        Some(PolicyError::PasswordInHistory)
    );
    // A wrong old password is the check's verdict; nothing is sent to change.
    assert_eq!(
        change("Not-The-0ld-One", second).await,
        PasswordChange::NotAuthenticated(AuthOutcome::InvalidCredentials)
    );
    // Every refusal left the first password in force.
    assert!(
        pool.authenticate(&dn, &Password::new(first))
            .await
            .unwrap()
            .is_accepted()
    );

    assert_eq!(change(first, second).await, PasswordChange::Changed);
    assert!(
        pool.authenticate(&dn, &Password::new(second))
            .await
            .unwrap()
            .is_accepted()
    );
    // Samba quirk, pinned: the previous password still binds right after
    // the change (Samba's "old password allowed period", 60 minutes by
    // default, is the setting that matches; not tried here).
    assert!(
        pool.authenticate(&dn, &Password::new(first))
            .await
            .unwrap()
            .is_accepted()
    );
    // Back to the first: in the history the domain keeps.
    assert_eq!(
        refused(change(second, first).await),
        Some(PolicyError::PasswordInHistory)
    );
    // An administrator's reset with "must change at next logon"
    // (pwdLastSet 0): the check says so (AD's data 773), and the user can
    // still change it.
    let admin = builder()
        .server(dc.ldaps_url())
        .tls_ca_file(dc.ca_file())
        .credential(Credential::simple(dc.admin_dn(), dc.admin_password()))
        .build()
        .unwrap();
    admin
        .modify(
            &dn,
            vec![ldapmux::Mod::Replace("pwdLastSet", HashSet::from(["0"]))],
        )
        .await
        .unwrap();
    let third = "Th1rd-Passw0rd-Z";
    assert_eq!(
        pool.authenticate(&dn, &Password::new(second))
            .await
            .unwrap(),
        AuthOutcome::MustChange
    );
    // AD refuses the bind itself (data 773), so the change goes out on a
    // connection left anonymous: the old password in the modify is the proof.
    assert_eq!(change(second, third).await, PasswordChange::Changed);
    assert!(
        pool.authenticate(&dn, &Password::new(third))
            .await
            .unwrap()
            .is_accepted()
    );
    admin.shutdown().await;
    pool.shutdown().await;
}
