//! Active Directory's own password change, for servers that do not offer
//! Password Modify (RFC 3062): Windows AD and Samba AD answer it with
//! protocolError "not supported", and change a password instead by one
//! modify of `unicodePwd` that deletes the old value and adds the new
//! (MS-ADTS 3.1.1.3.1.5, "Password Change"), each value the password in
//! double quotes, UTF-16LE. Windows accepts it only on an encrypted
//! connection (`ldaps://` or StartTLS; otherwise unwillingToPerform).

use std::collections::HashSet;

use ldap3::{Ldap, LdapError, LdapResult, Mod};
use zeroize::Zeroizing;

use crate::Password;
use crate::auth::PasswordChange;
use crate::ppolicy::PolicyError;

/// `LDAP_CAP_ACTIVE_DIRECTORY_OID` in the root DSE's `supportedCapabilities`:
/// the server is Active Directory (Windows or Samba).
const AD_CAPABILITY_OID: &str = "1.2.840.113556.1.4.800";

/// The result code of an extended operation the server does not know
/// (RFC 4511 §4.12: protocolError).
pub(crate) const UNKNOWN_EXTENDED_OPERATION: u32 = 2;

/// Whether the server's root DSE says it is Active Directory (a root DSE
/// that cannot be read says no).
pub(crate) async fn is_active_directory(ldap: &mut Ldap) -> Result<bool, LdapError> {
    crate::root_dse::lists(ldap, "supportedCapabilities", AD_CAPABILITY_OID).await
}

/// `password` as a `unicodePwd` value: in double quotes, UTF-16LE (wiped
/// when dropped, like the password).
fn unicode_pwd(password: &Password) -> Zeroizing<Vec<u8>> {
    let mut value = Zeroizing::new(Vec::with_capacity(2 * password.expose().len() + 4));
    for unit in "\""
        .encode_utf16()
        .chain(password.expose().encode_utf16())
        .chain("\"".encode_utf16())
    {
        value.extend_from_slice(&unit.to_le_bytes());
    }
    value
}

/// Changes `dn`'s password from `old` to `new` on a connection bound as
/// that user (the caller checked `old` first).
pub(crate) async fn change(
    ldap: &mut Ldap,
    dn: &str,
    old: &Password,
    new: &Password,
) -> Result<PasswordChange, LdapError> {
    let (old, new) = (unicode_pwd(old), unicode_pwd(new));
    let attr: &[u8] = b"unicodePwd";
    let mods = vec![
        Mod::Delete(attr, HashSet::from([old.as_slice()])),
        Mod::Add(attr, HashSet::from([new.as_slice()])),
    ];
    let result = ldap.modify(dn, mods).await?;
    let reason = refusal_reason(&result);
    Ok(PasswordChange::answered(result, reason))
}

/// Why AD refused a new password. Both answer constraintViolation (19) with
/// `0000052D` (ERROR_PASSWORD_RESTRICTION); Windows says no more, Samba
/// names the rule in its text (docs/interop.md), which reads as the policy
/// reason OpenLDAP's ppolicy would send.
fn refusal_reason(result: &LdapResult) -> Option<PolicyError> {
    if result.rc != 19 || !result.text.starts_with("0000052D") {
        return None;
    }
    let text = result.text.as_str();
    if text.contains("too young") {
        Some(PolicyError::PasswordTooYoung)
    } else if text.contains("too short") {
        Some(PolicyError::PasswordTooShort)
    } else if text.contains("already used") {
        Some(PolicyError::PasswordInHistory)
    } else if text.contains("complexity") {
        Some(PolicyError::InsufficientPasswordQuality)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(rc: u32, text: &str) -> Option<PolicyError> {
        refusal_reason(&LdapResult {
            rc,
            matched: String::new(),
            text: text.to_owned(),
            refs: Vec::new(),
            ctrls: Vec::new(),
        })
    }

    #[test]
    fn a_unicode_pwd_value_is_the_quoted_password_in_utf16le() {
        assert_eq!(
            unicode_pwd(&Password::new("Aé1")).as_slice(),
            [0x22, 0, 0x41, 0, 0xe9, 0, 0x31, 0, 0x22, 0]
        );
    }

    #[test]
    fn sambas_refusals_read_as_the_policy_reasons_and_windows_as_none() {
        let samba = |rule: &str| {
            refused(
                19,
                &format!("0000052D: Constraint violation - check_password_restrictions: {rule}"),
            )
        };
        assert_eq!(
            samba("password is too young to change!"),
            Some(PolicyError::PasswordTooYoung)
        );
        assert_eq!(
            samba("the password is too short. It should be equal or longer than 7 characters!"),
            Some(PolicyError::PasswordTooShort)
        );
        assert_eq!(
            samba("the password was already used (in history)!"),
            Some(PolicyError::PasswordInHistory)
        );
        assert_eq!(
            samba("the password was already used (previous password)!"),
            Some(PolicyError::PasswordInHistory)
        );
        assert_eq!(
            samba("the password does not meet the complexity criteria!"),
            Some(PolicyError::InsufficientPasswordQuality)
        );
        // Windows: the code alone.
        assert_eq!(
            refused(
                19,
                "0000052D: AtrErr: DSID-03191083, #1:\n\t0: 0000052D: DSID-03191083, problem 1005 (CONSTRAINT_ATT_TYPE), data 0, Att 9005a (unicodePwd)"
            ),
            None
        );
        // Not a password restriction.
        assert_eq!(
            refused(
                53,
                "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0"
            ),
            None
        );
        assert_eq!(refused(19, "too short"), None);
    }
}
