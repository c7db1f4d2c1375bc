//! Password-policy accounts (slapd's `ppolicy` overlay): five accounts on
//! every server, each under a policy of its own and set up before the load
//! (one locked by a failed bind, one expired, one reset by the
//! administrator, one near its expiry, one expired with grace logins), and
//! the task that checks them again and again: each verdict must be the one
//! its policy gives, on whichever server answers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldapmux::{AuthOutcome, Credential, Mod, Password, Pool};
use ldapmux_harness::{ROOT_DN, ROOT_PW, SCRATCH_BASE};

use super::load::{auth_error, recorded};
use super::shared::Shared;
use crate::stats::{OpKind, Outcome};

/// What an account's policy makes of its right password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Locked,
    Expired,
    MustChange,
    Warned,
    Grace,
}

/// A policy's attributes, `(name, value)`.
type Policy = &'static [(&'static str, &'static str)];

/// `(uid, expected verdict, the policy's attributes)`.
const ACCOUNTS: [(&str, Expect, Policy); 5] = [
    (
        "pp-locked",
        Expect::Locked,
        &[
            ("pwdMaxFailure", "1"),
            ("pwdLockout", "TRUE"),
            ("pwdLockoutDuration", "0"),
        ],
    ),
    (
        "pp-expired",
        Expect::Expired,
        &[("pwdMaxAge", "1"), ("pwdGraceAuthNLimit", "0")],
    ),
    ("pp-reset", Expect::MustChange, &[("pwdMustChange", "TRUE")]),
    (
        "pp-warned",
        Expect::Warned,
        &[("pwdMaxAge", "86400"), ("pwdExpireWarning", "172800")],
    ),
    (
        "pp-grace",
        Expect::Grace,
        &[("pwdMaxAge", "1"), ("pwdGraceAuthNLimit", "1000000")],
    ),
];

/// The slapd.conf lines that load the overlay (no default policy: the
/// load's ordinary users have none).
pub(super) const SLAPD_GLOBAL: &str = "moduleload ppolicy";
/// The database lines: the overlay, and a locked account's bind says so.
pub(super) const SLAPD_DATABASE: [&str; 2] = ["overlay ppolicy", "ppolicy_use_lockout"];

/// Waits this long after the setup before the first check: the expired
/// accounts' maximum age (1 s) has passed on every server by then.
const AGEING: Duration = Duration::from_secs(2);

fn dn(uid: &str) -> String {
    format!("uid={uid},{SCRATCH_BASE}")
}

fn password(uid: &str) -> String {
    format!("{uid}-password")
}

/// Sets the accounts up on every server of `urls`, each through a pool of
/// its own (as the root DN for the entries, anonymously for the failed
/// bind that locks one). Returns when the checks may start.
pub(super) async fn setup(urls: &[String]) -> Result<Instant, String> {
    for url in urls {
        let pool = Pool::builder()
            .server(url.clone())
            .build()
            .map_err(|e| e.to_string())?;
        let admin = pool.with_credential(Credential::simple(ROOT_DN, ROOT_PW));
        let result = setup_one(&pool, &admin).await;
        pool.shutdown().await;
        result.map_err(|e| format!("{url}: {e}"))?;
    }
    Ok(Instant::now() + AGEING)
}

async fn setup_one(pool: &Pool, admin: &Pool) -> Result<(), ldapmux::Error> {
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<HashSet<_>>();
    for (uid, expect, attrs) in ACCOUNTS {
        let policy = format!("cn={uid}-policy,{SCRATCH_BASE}");
        let mut entry = vec![
            (
                "objectClass".to_owned(),
                set(&["organizationalRole", "pwdPolicy"]),
            ),
            ("cn".to_owned(), set(&[&format!("{uid}-policy")])),
            ("pwdAttribute".to_owned(), set(&["userPassword"])),
        ];
        entry.extend(attrs.iter().map(|(k, v)| ((*k).to_owned(), set(&[v]))));
        admin.add(&policy, entry).await?;
        let pw = password(uid);
        admin
            .add(
                &dn(uid),
                vec![
                    ("objectClass".to_owned(), set(&["inetOrgPerson"])),
                    ("uid".to_owned(), set(&[uid])),
                    ("cn".to_owned(), set(&[uid])),
                    ("sn".to_owned(), set(&[uid])),
                    ("userPassword".to_owned(), set(&[&pw])),
                    ("pwdPolicySubentry".to_owned(), set(&[&policy])),
                ],
            )
            .await?;
        match expect {
            // One failed bind locks it.
            Expect::Locked => {
                pool.authenticate(&dn(uid), &Password::new("not-the-password"))
                    .await?;
            }
            // The administrator sets the password: it must be changed.
            Expect::MustChange => {
                admin
                    .modify(
                        &dn(uid),
                        vec![Mod::Replace("userPassword".to_owned(), set(&[&pw]))],
                    )
                    .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether `verdict` is what `expect` gives.
fn fits(expect: Expect, verdict: &AuthOutcome) -> bool {
    matches!(
        (expect, verdict),
        (Expect::Locked, AuthOutcome::AccountLocked)
            | (Expect::Expired, AuthOutcome::PasswordExpired)
            | (Expect::MustChange, AuthOutcome::MustChange)
            | (
                Expect::Warned,
                AuthOutcome::Accepted {
                    expires_in: Some(_),
                    grace_logins_left: None,
                },
            )
            | (
                Expect::Grace,
                AuthOutcome::Accepted {
                    expires_in: None,
                    grace_logins_left: Some(_),
                },
            )
    )
}

/// Checks the accounts' right passwords in turn from `ready_at` on; a
/// verdict other than the policy's is a failure.
pub(super) async fn policy_task(shared: Arc<Shared>, ready_at: Instant) {
    tokio::time::sleep_until(ready_at.into()).await;
    for n in 0usize.. {
        let (uid, expect, _) = ACCOUNTS[n % ACCOUNTS.len()];
        let start = Instant::now();
        let outcome = match shared
            .pool
            .authenticate(&dn(uid), &Password::new(password(uid)))
            .await
        {
            Ok(verdict) => {
                shared.tally(&verdict);
                if fits(expect, &verdict) {
                    Outcome::Ok
                } else {
                    Outcome::Failed(format!(
                        "{uid} (policy: {expect:?}) had the verdict {verdict:?}"
                    ))
                }
            }
            Err(e) => auth_error(&e),
        };
        if !recorded(&shared, OpKind::Auth, start, outcome).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_fits_its_verdict_only() {
        let verdicts = [
            AuthOutcome::AccountLocked,
            AuthOutcome::PasswordExpired,
            AuthOutcome::MustChange,
            AuthOutcome::Accepted {
                expires_in: Some(Duration::from_secs(60)),
                grace_logins_left: None,
            },
            AuthOutcome::Accepted {
                expires_in: None,
                grace_logins_left: Some(3),
            },
        ];
        for (i, (_, expect, _)) in ACCOUNTS.iter().enumerate() {
            for (j, v) in verdicts.iter().enumerate() {
                assert_eq!(fits(*expect, v), i == j, "{expect:?} {v:?}");
            }
            assert!(!fits(*expect, &AuthOutcome::ACCEPTED));
            assert!(!fits(*expect, &AuthOutcome::InvalidCredentials));
        }
    }
}
