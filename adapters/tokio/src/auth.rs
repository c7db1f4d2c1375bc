//! Password checks and changes with the password policy's verdict: the
//! bind (or Password Modify, RFC 3062) carries the password policy request
//! control, and the server's response control (draft-behera, as OpenLDAP's
//! `ppolicy` overlay sends it) says why a check failed or what the caller
//! must do next.

use std::time::Duration;

use ldap3::controls::RawControl;
use ldap3::exop::PasswordModify;
use ldap3::{Ldap, LdapError, LdapResult};

use crate::ppolicy::{self, PolicyResponse, PolicyWarning};
use crate::{LdapStatus, Password};

pub use crate::ppolicy::PolicyError;

/// A password check's verdict ([`Pool::authenticate`](crate::Pool::authenticate)).
///
/// Servers without a password policy answer only `Accepted` (with no
/// warning) or `InvalidCredentials`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthOutcome {
    /// The password is right.
    Accepted {
        /// How long until the password expires, when the server warns.
        expires_in: Option<Duration>,
        /// Binds left after the password expired (grace logins), when the
        /// server says: the password must be changed before they run out.
        grace_logins_left: Option<u32>,
    },
    /// Wrong password, or no such entry (servers do not tell which).
    InvalidCredentials,
    /// The account is locked: too many failed binds, or by an administrator.
    /// The password was not checked.
    AccountLocked,
    /// The password expired and no grace login is left.
    PasswordExpired,
    /// The password is right but was reset by an administrator: it must be
    /// changed ([`Pool::change_password`](crate::Pool::change_password))
    /// before anything else is allowed.
    MustChange,
}

impl AuthOutcome {
    /// Whether the password was accepted without a condition (grace logins
    /// and expiry warnings included; [`AuthOutcome::MustChange`] is not).
    pub fn is_accepted(&self) -> bool {
        matches!(self, AuthOutcome::Accepted { .. })
    }

    /// A plain acceptance, with no warning.
    pub const ACCEPTED: AuthOutcome = AuthOutcome::Accepted {
        expires_in: None,
        grace_logins_left: None,
    };

    /// The `outcome` label of this verdict in the operations metric.
    pub(crate) fn label(&self) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        match self {
            AuthOutcome::Accepted { .. } => Outcome::Ok,
            AuthOutcome::InvalidCredentials => Outcome::InvalidCredentials,
            AuthOutcome::AccountLocked => Outcome::AccountLocked,
            AuthOutcome::PasswordExpired => Outcome::PasswordExpired,
            AuthOutcome::MustChange => Outcome::MustChange,
        }
    }
}

/// What became of a password change ([`Pool::change_password`](crate::Pool::change_password)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordChange {
    /// The new password is in force.
    Changed,
    /// The old password did not authenticate: the check's verdict (never
    /// [`AuthOutcome::Accepted`] or [`AuthOutcome::MustChange`], which go on
    /// to the change). Nothing was changed.
    NotAuthenticated(AuthOutcome),
    /// The server refused the new password. Nothing was changed.
    Refused {
        /// The policy's reason, when the server gave one (too short, in
        /// history, too young, not good enough, …).
        reason: Option<PolicyError>,
        /// The server's result (constraintViolation, insufficientAccess, …).
        status: LdapStatus,
    },
}

impl PasswordChange {
    /// A change's answer: success, or a refusal with `reason` (what the
    /// server said of why, when it did) and the server's result.
    pub(crate) fn answered(result: LdapResult, reason: Option<PolicyError>) -> PasswordChange {
        if result.rc == 0 {
            return PasswordChange::Changed;
        }
        PasswordChange::Refused {
            reason,
            status: LdapStatus::of(result),
        }
    }
}

/// The password policy request control: no value, not critical (a server
/// without a policy ignores it).
fn request_control() -> Vec<RawControl> {
    vec![RawControl {
        ctype: ppolicy::PPOLICY_OID.to_owned(),
        crit: false,
        val: None,
    }]
}

/// The policy response in `result`'s controls, if any (a malformed one reads
/// as none: the result code still decides).
fn policy_of(result: &LdapResult) -> PolicyResponse {
    result
        .ctrls
        .iter()
        .find(|c| c.1.ctype == ppolicy::PPOLICY_OID)
        .and_then(|c| c.1.val.as_deref())
        .and_then(ppolicy::parse)
        .unwrap_or_default()
}

/// A bind's result as a verdict; `None` for a result that is neither
/// success nor invalidCredentials (busy, unwilling, …), which the caller
/// reports as an LDAP error and after which the connection is retired.
fn verdict(result: &LdapResult) -> Option<AuthOutcome> {
    let policy = policy_of(result);
    match (result.rc, policy.error) {
        (0, Some(PolicyError::ChangeAfterReset)) => Some(AuthOutcome::MustChange),
        (0, _) => Some(AuthOutcome::Accepted {
            expires_in: match policy.warning {
                Some(PolicyWarning::TimeBeforeExpiration(s)) => {
                    Some(Duration::from_secs(u64::from(s)))
                }
                _ => None,
            },
            grace_logins_left: match policy.warning {
                Some(PolicyWarning::GraceAuthNsRemaining(n)) => Some(n),
                _ => None,
            },
        }),
        // 389 DS refuses a locked account's bind with constraintViolation
        // (19), the policy control saying accountLocked, or alone with
        // "Exceed password retry limit".
        (49 | 19, Some(PolicyError::AccountLocked)) => Some(AuthOutcome::AccountLocked),
        (19, None) if result.text.contains("Exceed password retry limit") => {
            Some(AuthOutcome::AccountLocked)
        }
        (49, Some(PolicyError::PasswordExpired)) => Some(AuthOutcome::PasswordExpired),
        (49, _) => Some(match ad_data_code(&result.text) {
            Some(0x775) => AuthOutcome::AccountLocked,
            Some(0x532) => AuthOutcome::PasswordExpired,
            Some(0x773) => AuthOutcome::MustChange,
            _ => AuthOutcome::InvalidCredentials,
        }),
        _ => None,
    }
}

/// Active Directory (and Samba AD) sends no password policy control: the
/// reason for an invalidCredentials is a hex code after `data ` in the
/// diagnostic message (`80090308: LdapErr: DSID-0C0903A9, comment:
/// AcceptSecurityContext error, data 775, v1db1`): 52e wrong password, 775
/// locked, 532 password expired, 773 must change, 533 disabled, 701 account
/// expired. docs/interop.md.
fn ad_data_code(text: &str) -> Option<u32> {
    let (_, rest) = text.split_once(", data ")?;
    let code = rest.split([',', ' ']).next()?;
    u32::from_str_radix(code, 16).ok()
}

/// Binds `ldap` as `dn` with the policy control: the verdict, or the
/// result as an error when it is neither.
pub(crate) async fn check(
    ldap: &mut Ldap,
    dn: &str,
    password: &Password,
) -> Result<AuthOutcome, LdapError> {
    let result = ldap
        .with_controls(request_control())
        .simple_bind(dn, password.expose())
        .await?;
    verdict(&result).ok_or(LdapError::LdapResult { result })
}

/// Checks `old` for `dn`, then asks for `new` in its place (Password
/// Modify, as the user, with the old password: servers with
/// `pwdSafeModify` insist on it). A server that does not know Password
/// Modify and says it is Active Directory gets AD's own change instead
/// ([`crate::ad_password`]).
pub(crate) async fn change(
    ldap: &mut Ldap,
    dn: &str,
    old: &Password,
    new: &Password,
) -> Result<PasswordChange, LdapError> {
    match check(ldap, dn, old).await? {
        AuthOutcome::Accepted { .. } | AuthOutcome::MustChange => {}
        refused => return Ok(PasswordChange::NotAuthenticated(refused)),
    }
    let exop = PasswordModify {
        user_id: Some(dn),
        old_pass: Some(old.expose()),
        new_pass: Some(new.expose()),
    };
    let ldap3::result::ExopResult(_, result) =
        ldap.with_controls(request_control()).extended(exop).await?;
    if result.rc == crate::ad_password::UNKNOWN_EXTENDED_OPERATION
        && crate::ad_password::is_active_directory(ldap).await?
    {
        return crate::ad_password::change(ldap, dn, old, new).await;
    }
    let reason = policy_of(&result).error;
    Ok(PasswordChange::answered(result, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::controls::Control;

    fn result(rc: u32, policy: Option<&[u8]>) -> LdapResult {
        LdapResult {
            rc,
            matched: String::new(),
            text: String::new(),
            refs: Vec::new(),
            ctrls: policy
                .map(|v| {
                    vec![Control(
                        None,
                        RawControl {
                            ctype: ppolicy::PPOLICY_OID.to_owned(),
                            crit: false,
                            val: Some(v.to_vec()),
                        },
                    )]
                })
                .unwrap_or_default(),
        }
    }

    #[test]
    fn active_directorys_data_codes_read_as_their_verdicts() {
        let ad = |code: &str| {
            let mut r = result(49, None);
            r.text = format!(
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {code}, v1db1"
            );
            verdict(&r)
        };
        assert_eq!(ad("52e"), Some(AuthOutcome::InvalidCredentials));
        let mut ds389 = result(19, None);
        ds389.text = "Exceed password retry limit. Please try later.".into();
        assert_eq!(verdict(&ds389), Some(AuthOutcome::AccountLocked));
        assert_eq!(
            verdict(&result(19, None)),
            None,
            "another constraint violation"
        );
        assert_eq!(ad("775"), Some(AuthOutcome::AccountLocked));
        assert_eq!(ad("532"), Some(AuthOutcome::PasswordExpired));
        assert_eq!(ad("773"), Some(AuthOutcome::MustChange));
        assert_eq!(ad("533"), Some(AuthOutcome::InvalidCredentials));
        assert_eq!(ad("zzz"), Some(AuthOutcome::InvalidCredentials));
        // Not AD's shape: no code read.
        assert_eq!(ad_data_code("invalid credentials, data"), None);
        assert_eq!(ad_data_code(""), None);
    }

    #[test]
    fn each_bind_answer_reads_as_its_verdict() {
        assert_eq!(verdict(&result(0, None)), Some(AuthOutcome::ACCEPTED));
        assert_eq!(
            verdict(&result(49, None)),
            Some(AuthOutcome::InvalidCredentials)
        );
        // error: accountLocked (1), passwordExpired (0), changeAfterReset (2)
        let locked = [0x30, 0x03, 0x81, 0x01, 0x01];
        assert_eq!(
            verdict(&result(49, Some(&locked))),
            Some(AuthOutcome::AccountLocked)
        );
        let expired = [0x30, 0x03, 0x81, 0x01, 0x00];
        assert_eq!(
            verdict(&result(49, Some(&expired))),
            Some(AuthOutcome::PasswordExpired)
        );
        let reset = [0x30, 0x03, 0x81, 0x01, 0x02];
        assert_eq!(
            verdict(&result(0, Some(&reset))),
            Some(AuthOutcome::MustChange)
        );
        // warnings: graceAuthNsRemaining 2, timeBeforeExpiration 3600
        let grace = [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02];
        assert_eq!(
            verdict(&result(0, Some(&grace))),
            Some(AuthOutcome::Accepted {
                expires_in: None,
                grace_logins_left: Some(2)
            })
        );
        let ttl = [0x30, 0x06, 0xa0, 0x04, 0x80, 0x02, 0x0e, 0x10];
        assert_eq!(
            verdict(&result(0, Some(&ttl))),
            Some(AuthOutcome::Accepted {
                expires_in: Some(Duration::from_secs(3600)),
                grace_logins_left: None
            })
        );
        // A malformed control: the result code decides.
        assert_eq!(
            verdict(&result(49, Some(&[0x30]))),
            Some(AuthOutcome::InvalidCredentials)
        );
        // Neither success nor invalidCredentials: not a verdict.
        assert_eq!(verdict(&result(51, None)), None);
        assert_eq!(verdict(&result(53, Some(&locked))), None);
    }
}
