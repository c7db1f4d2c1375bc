//! Issue 20: the pool against 389 Directory Server (Debian's `389-ds-base`),
//! one instance per test binary made by the harness (`Ds389`, `dscreate`
//! from a generated file, 127.0.0.1 only). Quirks met are in
//! docs/interop.md.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use ldap3::{LdapConnAsync, Mod as LMod};
use ldapmux::{AuthOutcome, ConnErrorKind, Credential, Mod, Password, Pool, Scope};
use ldapmux_harness::{DS389_ROOT_DN, DS389_ROOT_PW, DS389_SUFFIX, Ds389};
use tokio::sync::OnceCell;

const USERS: usize = 120;
const SIZE_LIMIT: usize = 50;
const READER: &str = "uid=reader,ou=people,dc=example,dc=com";
const READER_PW: &str = "reader-Pass-1";

fn people() -> String {
    format!("ou=people,{DS389_SUFFIX}")
}

fn user_dn(i: usize) -> String {
    format!("uid=user{i},{}", people())
}

async fn admin(ds: &Ds389) -> ldap3::Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(&ds.url()).await.expect("connect to 389");
    ldap3::drive!(conn);
    ldap.simple_bind(DS389_ROOT_DN, DS389_ROOT_PW)
        .await
        .unwrap()
        .success()
        .expect("bind as the directory manager");
    ldap
}

async fn replace(ldap: &mut ldap3::Ldap, dn: &str, attr: &str, value: &str) {
    ldap.modify(dn, vec![LMod::Replace(attr, HashSet::from([value]))])
        .await
        .unwrap()
        .success()
        .unwrap_or_else(|e| panic!("set {attr} on {dn}: {e}"));
}

/// The shared instance with ou=people, `USERS` users (password
/// `pw-user<i>`), a reader, a size limit of `SIZE_LIMIT` (paged searches
/// allowed more) and lockout after 3 failures.
async fn ds() -> &'static Ds389 {
    static READY: OnceCell<&'static Ds389> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            let ds = Ds389::shared().unwrap_or_else(|e| panic!("{e}"));
            let mut ldap = admin(ds).await;
            ldap.add(
                &people(),
                vec![
                    ("objectClass", HashSet::from(["organizationalUnit"])),
                    ("ou", HashSet::from(["people"])),
                ],
            )
            .await
            .unwrap()
            .success()
            .expect("add ou=people");
            for (dn, pw) in (0..USERS)
                .map(|i| (user_dn(i), format!("pw-user{i}")))
                .chain([(READER.to_owned(), READER_PW.to_owned())])
            {
                let uid = dn.split([',', '=']).nth(1).unwrap().to_owned();
                ldap.add(
                    &dn,
                    vec![
                        ("objectClass", HashSet::from(["inetOrgPerson"])),
                        ("uid", HashSet::from([uid.as_str()])),
                        ("cn", HashSet::from([uid.as_str()])),
                        ("sn", HashSet::from([uid.as_str()])),
                        ("userPassword", HashSet::from([pw.as_str()])),
                    ],
                )
                .await
                .unwrap()
                .success()
                .unwrap_or_else(|e| panic!("add {dn}: {e}"));
            }
            // Let users read people (389's default ACIs are sparse).
            replace(
                &mut ldap,
                &people(),
                "aci",
                "(targetattr=\"*\")(version 3.0; acl \"read\"; allow (read, search, compare) userdn=\"ldap:///all\";)",
            )
            .await;
            replace(&mut ldap, "cn=config", "nsslapd-sizelimit", &SIZE_LIMIT.to_string()).await;
            replace(&mut ldap, "cn=config", "nsslapd-pagedsizelimit", "1000").await;
            replace(&mut ldap, "cn=config", "passwordLockout", "on").await;
            replace(&mut ldap, "cn=config", "passwordMaxFailure", "3").await;
            replace(&mut ldap, "cn=config", "passwordLockoutDuration", "600").await;
            let _ = ldap.unbind().await;
            ds
        })
        .await
}

fn reader_pool(ds: &Ds389) -> Pool {
    builder()
        .server(ds.url())
        .credential(Credential::simple(READER, READER_PW))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_root_dse_names_the_389_project_and_offers_paging() {
    init_tracing();
    let ds = ds().await;
    let pool = reader_pool(ds);
    let dse = pool
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            &["vendorName", "supportedControl"],
        )
        .await
        .unwrap();
    let attrs = &dse[0].attrs;
    assert_eq!(attrs["vendorName"], vec!["389 Project".to_owned()]);
    assert!(
        attrs["supportedControl"].contains(&"1.2.840.113556.1.4.319".to_owned()),
        "paged results: {:?}",
        attrs["supportedControl"]
    );
    pool.shutdown().await;
    // `ldapmux check` says the same, over LDAPS with the instance's CA.
    let reports = ldapmux_cli::check::check(&check_options(ds)).await;
    let shown = ldapmux_cli::check::render(&reports[0]);
    assert!(reports[0].error.is_none(), "{shown}");
    assert!(shown.contains("; vendor 389 Project"), "{shown}");
    assert!(
        shown.contains("controls: ") && shown.contains("paged results"),
        "{shown}"
    );
    assert_eq!(
        reports[0].identity.as_deref().map(str::to_lowercase),
        Some(format!("dn: {READER}")),
        "389 answers WhoAmI: {shown}"
    );
    assert!(!shown.contains(READER_PW), "never the password: {shown}");
}

fn check_options(ds: &Ds389) -> ldapmux_cli::check::CheckOptions {
    ldapmux_cli::check::CheckOptions {
        urls: vec![ds.ldaps_url()],
        ca_file: Some(ds.ca_file()),
        starttls: false,
        bind_dn: Some(READER.to_owned()),
        password: Some(Password::new(READER_PW)),
        sasl_external: None,
        no_verify: false,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_an_unpaged_search_past_the_size_limit_is_typed_and_paging_gets_every_entry() {
    init_tracing();
    let ds = ds().await;
    let unpaged = builder()
        .server(ds.url())
        .credential(Credential::simple(READER, READER_PW))
        .page_size(None)
        .build()
        .unwrap();
    let err = unpaged
        .search(&people(), Scope::OneLevel, "(uid=user*)", &["uid"])
        .await
        .expect_err("past nsslapd-sizelimit");
    assert_eq!(err.rc(), Some(4), "sizeLimitExceeded: {err}");
    assert!(!is_down(&unpaged, &ds.url()), "an ordinary result");
    unpaged.shutdown().await;

    let pool = reader_pool(ds);
    let streamed: Vec<_> = pool
        .streaming_search(&people(), Scope::OneLevel, "(uid=user*)", &["uid"])
        .await
        .expect("the first page")
        .collect()
        .await;
    let dns: HashSet<String> = streamed
        .into_iter()
        .map(|e| e.expect("every item an entry").dn.to_lowercase())
        .collect();
    let want: HashSet<String> = (0..USERS).map(user_dn).collect();
    assert_eq!(dns, want, "paged: every user once");
    let found = pool
        .search(&people(), Scope::OneLevel, "(uid=user*)", &["uid"])
        .await
        .unwrap();
    assert_eq!(found.len(), USERS, "search pages by default");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_authenticate_right_wrong_and_locked_by_the_servers_own_lockout() {
    init_tracing();
    let ds = ds().await;
    let pool = reader_pool(ds);
    let right = pool
        .authenticate(&user_dn(1), &Password::new("pw-user1"))
        .await
        .unwrap();
    assert!(right.is_accepted(), "{right:?}");
    let wrong = pool
        .authenticate(&user_dn(1), &Password::new("nope"))
        .await
        .unwrap();
    assert_eq!(wrong, AuthOutcome::InvalidCredentials);
    let victim = user_dn(2);
    for _ in 0..3 {
        let outcome = pool
            .authenticate(&victim, &Password::new("nope"))
            .await
            .unwrap();
        assert!(
            matches!(
                outcome,
                AuthOutcome::InvalidCredentials | AuthOutcome::AccountLocked
            ),
            "{outcome:?}"
        );
    }
    let locked = pool.authenticate(&victim, &Password::new("pw-user2")).await;
    assert!(
        matches!(locked, Ok(AuthOutcome::AccountLocked)),
        "the right password on a locked account: {locked:?}"
    );
    assert!(!is_down(&pool, &ds.url()));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_a_write_reads_back() {
    init_tracing();
    let ds = ds().await;
    let pool = builder()
        .server(ds.url())
        .credential(Credential::simple(DS389_ROOT_DN, DS389_ROOT_PW))
        .build()
        .unwrap();
    let dn = user_dn(7);
    pool.modify(
        &dn,
        vec![Mod::Replace(
            "description",
            HashSet::from(["written by ldapmux"]),
        )],
    )
    .await
    .unwrap();
    let back = pool
        .search(&dn, Scope::Base, "(objectClass=*)", &["description"])
        .await
        .unwrap();
    assert_eq!(
        back[0].attrs["description"],
        vec!["written by ldapmux".to_owned()]
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_ldaps_and_starttls_with_the_servers_ca() {
    init_tracing();
    let ds = ds().await;
    let pool = |url: String, starttls: bool, ca: bool| {
        let mut b = builder()
            .server(url)
            .starttls(starttls)
            .credential(Credential::simple(READER, READER_PW));
        if ca {
            b = b.tls_ca_file(ds.ca_file());
        }
        b.build().unwrap()
    };
    let find = |pool: Pool| async move {
        let found = pool
            .search(&people(), Scope::OneLevel, "(uid=user7)", &["uid"])
            .await;
        pool.shutdown().await;
        found
    };
    for (name, url, starttls) in [
        ("ldaps", ds.ldaps_url(), false),
        ("starttls", ds.url(), true),
    ] {
        let found = find(pool(url.clone(), starttls, true))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        assert_eq!(found[0].dn, user_dn(7), "{name}");
        // Without the instance's CA (the system's roots only) the
        // certificate does not verify: a typed TLS error, never a bind.
        let refused = find(pool(url, starttls, false)).await;
        assert_eq!(
            refused.as_ref().err().and_then(|e| e.conn_error_kind()),
            Some(ConnErrorKind::Tls),
            "{name} without the CA: {refused:?}"
        );
    }
}

/// 389 DS 2.3 closes a connection idle past `nsslapd-idletimeout` (sending
/// no Notice of Disconnection: 389 has none), but only when some other
/// connection is active: it checks idle times after a poll that found
/// something to read (389 DS issue 6004, fixed in 2.5.1). The pool sees a
/// clean close of an idle connection: nothing fails, nothing is marked down,
/// the next read opens a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_an_idle_timeout_close_is_not_a_server_failure() {
    init_tracing();
    // An instance of its own: a 2 s idle limit would close the shared
    // instance's connections under the other tests.
    let ds = Ds389::start().unwrap_or_else(|e| panic!("{e}"));
    let mut poker = admin(&ds).await;
    replace(&mut poker, "cn=config", "nsslapd-idletimeout", "2").await;
    let pool = builder().server(ds.url()).build().unwrap();
    let read = || pool.search("", Scope::Base, "(objectClass=*)", &["vendorName"]);
    assert_eq!(read().await.unwrap().len(), 1);
    let opened = pool.status().counters.opens;
    assert_eq!(server_status(&pool, &ds.url()).conns, 1);
    // Idle past the limit while nothing else happens: 389 DS 2.3 closes
    // nothing yet (if this fails, the installed 389 checks idle time on its
    // own, as 2.5.1 does: update docs/interop.md).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server_status(&pool, &ds.url()).conns,
        1,
        "389 DS 2.3 closed an idle connection with no other activity"
    );
    // Activity on another connection makes 389 look at idle times.
    poker
        .search(
            "",
            ldap3::Scope::Base,
            "(objectClass=*)",
            vec!["vendorName"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    eventually(
        "the pool saw 389 close its idle connection",
        Duration::from_secs(5),
        || server_status(&pool, &ds.url()).conns == 0,
    )
    .await;
    assert!(
        ds.access_log()
            .contains("Idle Timeout (nsslapd-idletimeout) - T1"),
        "389's access log names the idle timeout"
    );
    assert!(!is_down(&pool, &ds.url()), "an idle close is not a failure");
    assert_eq!(read().await.unwrap().len(), 1, "served after the close");
    assert!(pool.status().counters.opens > opened, "a new connection");
    let _ = poker.unbind().await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_389_kill_9_under_load_retries_reads_on_a_slapd_then_fails_back() {
    init_tracing();
    // An instance of its own (it is killed and restarted) preferred, a slapd
    // second; the load reads the root DSE, which both serve anonymously.
    let ds = Ds389::start().unwrap_or_else(|e| panic!("{e}"));
    let slapd = common::slapd(1);
    let pool = builder()
        .preferred_server(ds.url())
        .server(slapd.url())
        .build()
        .unwrap();
    let mut served_by_389 = 0;
    let url = ds.url();
    // Fail-back: restarted with its data (`Ds389::restart`), 389 DS is
    // probed back to health and reads move back to it.
    let ds = std::cell::RefCell::new(ds);
    let vendor = kill_then_fail_back(
        &pool,
        &url,
        &slapd,
        || {
            served_by_389 = server_status(&pool, &url).conns;
            ds.borrow_mut().kill();
        },
        || ds.borrow_mut().restart().unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert!(served_by_389 > 0, "389 DS served the first reads");
    assert_eq!(vendor, ["389 Project"], "reads are served by 389 DS again");
    pool.shutdown().await;
}
