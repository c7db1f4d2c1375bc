//! Password checks and changes against slapd's `ppolicy` overlay (issue
//! 19): each verdict exactly as the server sent it — lockout after N
//! failures, an expired password and its grace logins, an expiry warning,
//! must-change after an administrator's reset, the quality rules of a
//! change — and no password in any log.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use ldapmux::{AuthOutcome, Credential, Mod, Password, PasswordChange, PolicyError, Pool};
use ldapmux_harness::{SCRATCH_BASE, Slapd};

/// The default policy's DN.
fn policy_dn() -> String {
    format!("cn=default,{SCRATCH_BASE}")
}

/// slapd with the `ppolicy` overlay, `ppolicy_use_lockout` (a locked
/// account's bind says so), and a default policy of `attrs`.
async fn policy_slapd(attrs: &[(&str, &str)]) -> (Slapd, Pool) {
    let server = Slapd::builder()
        .users(10)
        .global_config("moduleload ppolicy")
        .database_config("overlay ppolicy")
        .database_config(format!("ppolicy_default \"{}\"", policy_dn()))
        .database_config("ppolicy_use_lockout")
        .start()
        .unwrap_or_else(|e| panic!("{e}"));
    let admin = builder()
        .server(server.url())
        .credential(Credential::simple(server.root_dn(), server.root_pw()))
        .build()
        .unwrap();
    let mut entry: Vec<(String, HashSet<String>)> = vec![
        (
            "objectClass".into(),
            HashSet::from(["organizationalRole".into(), "pwdPolicy".into()]),
        ),
        ("cn".into(), HashSet::from(["default".into()])),
        (
            "pwdAttribute".into(),
            HashSet::from(["userPassword".into()]),
        ),
    ];
    for (name, value) in attrs {
        entry.push(((*name).into(), HashSet::from([(*value).into()])));
    }
    admin.add(&policy_dn(), entry).await.unwrap();
    (server, admin)
}

fn anonymous(server: &Slapd) -> Pool {
    builder().server(server.url()).build().unwrap()
}

/// Sets user `i`'s password as the root DN: an administrator's reset.
async fn reset(admin: &Pool, i: usize, password: &str) {
    admin
        .modify(
            &Slapd::user_dn(i),
            vec![Mod::Replace(
                "userPassword".to_owned(),
                HashSet::from([password.to_owned()]),
            )],
        )
        .await
        .unwrap();
}

async fn check(pool: &Pool, i: usize, password: &str) -> AuthOutcome {
    pool.authenticate(&Slapd::user_dn(i), &Password::new(password))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppolicy_lockout_after_three_failures_reads_account_locked() {
    let (server, admin) = policy_slapd(&[
        ("pwdMaxFailure", "3"),
        ("pwdLockout", "TRUE"),
        ("pwdLockoutDuration", "0"),
    ])
    .await;
    let pool = anonymous(&server);
    let right = Slapd::user_password(1);
    assert_eq!(check(&pool, 1, &right).await, AuthOutcome::ACCEPTED);
    for _ in 0..3 {
        assert_eq!(
            check(&pool, 1, "wrong").await,
            AuthOutcome::InvalidCredentials
        );
    }
    // Locked: the right password no longer opens it, and the verdict says
    // why; a wrong one reads the same.
    assert_eq!(check(&pool, 1, &right).await, AuthOutcome::AccountLocked);
    assert_eq!(check(&pool, 1, "wrong").await, AuthOutcome::AccountLocked);
    // Another account is untouched.
    let other = Slapd::user_password(2);
    assert_eq!(check(&pool, 2, &other).await, AuthOutcome::ACCEPTED);
    // The administrator unlocks it (pwdAccountLockedTime removed).
    admin
        .modify(
            &Slapd::user_dn(1),
            vec![Mod::Delete(
                "pwdAccountLockedTime".to_owned(),
                HashSet::new(),
            )],
        )
        .await
        .unwrap();
    assert_eq!(check(&pool, 1, &right).await, AuthOutcome::ACCEPTED);
    pool.shutdown().await;
    admin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppolicy_an_expired_password_counts_its_grace_logins_down_then_expires() {
    let (server, admin) = policy_slapd(&[("pwdMaxAge", "1"), ("pwdGraceAuthNLimit", "2")]).await;
    let pool = anonymous(&server);
    // A fresh password (its pwdChangedTime is now), one second to live.
    reset(&admin, 3, "fresh-password-3").await;
    assert!(check(&pool, 3, "fresh-password-3").await.is_accepted());
    // A password can only age on the server's clock (slapd keeps
    // pwdChangedTime to itself): let 2 s pass, twice the policy's maximum
    // age. Waiting longer changes nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grace = |n| AuthOutcome::Accepted {
        expires_in: None,
        grace_logins_left: Some(n),
    };
    assert_eq!(check(&pool, 3, "fresh-password-3").await, grace(1));
    assert_eq!(check(&pool, 3, "fresh-password-3").await, grace(0));
    assert_eq!(
        check(&pool, 3, "fresh-password-3").await,
        AuthOutcome::PasswordExpired
    );
    // A wrong password stays wrong, expired or not.
    assert_eq!(
        check(&pool, 3, "not-it").await,
        AuthOutcome::InvalidCredentials
    );
    pool.shutdown().await;
    admin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppolicy_a_password_near_its_expiry_is_accepted_with_the_seconds_left() {
    let (server, admin) =
        // Warned within two hours of expiry: at once, for an hour's password
        // (slapd warns when the time left is below the warning).
        policy_slapd(&[("pwdMaxAge", "3600"), ("pwdExpireWarning", "7200")]).await;
    let pool = anonymous(&server);
    reset(&admin, 4, "warned-password-4").await;
    match check(&pool, 4, "warned-password-4").await {
        AuthOutcome::Accepted {
            expires_in: Some(left),
            grace_logins_left: None,
        } => assert!(
            left > Duration::from_secs(3500) && left <= Duration::from_secs(3600),
            "{left:?}"
        ),
        other => panic!("no expiry warning: {other:?}"),
    }
    pool.shutdown().await;
    admin.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppolicy_must_change_after_a_reset_until_the_user_changes_it() {
    let capture = Capture::trace();
    let (server, admin) = policy_slapd(&[("pwdMustChange", "TRUE")]).await;
    let pool = anonymous(&server);
    let (temporary, chosen) = ("Temporary-Reset-5a", "Chosen-By-User-5b");
    reset(&admin, 5, temporary).await;
    assert_eq!(check(&pool, 5, temporary).await, AuthOutcome::MustChange);
    // A change with a wrong old password changes nothing.
    let dn = Slapd::user_dn(5);
    assert_eq!(
        pool.change_password(&dn, &Password::new("wrong-old"), &Password::new(chosen))
            .await
            .unwrap(),
        PasswordChange::NotAuthenticated(AuthOutcome::InvalidCredentials)
    );
    assert_eq!(
        pool.change_password(&dn, &Password::new(temporary), &Password::new(chosen))
            .await
            .unwrap(),
        PasswordChange::Changed
    );
    assert_eq!(check(&pool, 5, chosen).await, AuthOutcome::ACCEPTED);
    assert_eq!(
        check(&pool, 5, temporary).await,
        AuthOutcome::InvalidCredentials
    );
    pool.shutdown().await;
    admin.shutdown().await;
    let logs = capture.text();
    assert!(
        logs.contains("change_password") || logs.contains("ldapmux.op"),
        "tracing events were captured"
    );
    for secret in [temporary, chosen, "wrong-old"] {
        assert!(!logs.contains(secret), "{secret} logged");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppolicy_a_change_is_refused_with_the_policys_reason() {
    let (server, admin) = policy_slapd(&[
        ("pwdMinLength", "8"),
        ("pwdCheckQuality", "2"),
        ("pwdInHistory", "3"),
    ])
    .await;
    let pool = anonymous(&server);
    let dn = Slapd::user_dn(6);
    let first = Slapd::user_password(6);
    let change = |old: String, new: &'static str| {
        let (pool, dn) = (&pool, &dn);
        async move {
            pool.change_password(dn, &Password::new(old), &Password::new(new))
                .await
                .unwrap()
        }
    };
    let reason = |c: PasswordChange| match c {
        PasswordChange::Refused { reason, status } => {
            assert_eq!(status.rc, 19, "constraintViolation: {status:?}");
            reason
        }
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(
        reason(change(first.clone(), "short").await),
        Some(PolicyError::PasswordTooShort)
    );
    assert_eq!(
        change(first.clone(), "long-enough-6a").await,
        PasswordChange::Changed
    );
    // Back to the first one: in the history of the last three.
    assert_eq!(
        reason(change("long-enough-6a".into(), "long-enough-6a").await),
        Some(PolicyError::PasswordInHistory)
    );
    // Changes now have to wait an hour.
    admin
        .modify(
            &policy_dn(),
            vec![Mod::Replace(
                "pwdMinAge".to_owned(),
                HashSet::from(["3600".to_owned()]),
            )],
        )
        .await
        .unwrap();
    assert_eq!(
        reason(change("long-enough-6a".into(), "long-enough-6b").await),
        Some(PolicyError::PasswordTooYoung)
    );
    // Nothing refused was changed.
    assert_eq!(
        check(&pool, 6, "long-enough-6a").await,
        AuthOutcome::ACCEPTED
    );
    pool.shutdown().await;
    admin.shutdown().await;
}

#[test]
fn ppolicy_the_blocking_twin_reads_the_same_verdicts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, admin) = rt.block_on(policy_slapd(&[
        ("pwdMaxFailure", "2"),
        ("pwdLockout", "TRUE"),
        ("pwdMustChange", "TRUE"),
    ]));
    rt.block_on(reset(&admin, 7, "reset-by-admin-7"));
    let pool = ldapmux_blocking::Pool::new(builder().server(server.url())).unwrap();
    let dn = Slapd::user_dn(7);
    let auth = |pw: &str| pool.authenticate(&dn, &Password::new(pw)).unwrap();
    assert_eq!(auth("reset-by-admin-7"), AuthOutcome::MustChange);
    assert_eq!(
        pool.change_password(
            &dn,
            &Password::new("reset-by-admin-7"),
            &Password::new("chosen-by-user-7")
        )
        .unwrap(),
        PasswordChange::Changed
    );
    assert_eq!(auth("chosen-by-user-7"), AuthOutcome::ACCEPTED);
    assert_eq!(auth("wrong"), AuthOutcome::InvalidCredentials);
    assert_eq!(auth("wrong"), AuthOutcome::InvalidCredentials);
    assert_eq!(auth("chosen-by-user-7"), AuthOutcome::AccountLocked);
    assert_eq!(pool.shutdown(), 0);
    rt.block_on(admin.shutdown());
}
