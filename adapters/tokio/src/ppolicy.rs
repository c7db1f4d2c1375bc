//! The password policy response control (draft-behera-ldap-password-policy,
//! as OpenLDAP's `ppolicy` overlay sends it), read without panicking: the
//! verdict a server gives with a bind or a password change. ldap3 has no
//! parser for it; [`crate::auth`] turns it into the caller's verdict.
//!
//! ```text
//! PasswordPolicyResponseValue ::= SEQUENCE {
//!    warning [0] CHOICE {
//!       timeBeforeExpiration [0] INTEGER (0 .. maxInt),
//!       graceAuthNsRemaining [1] INTEGER (0 .. maxInt) } OPTIONAL,
//!    error   [1] ENUMERATED { … } OPTIONAL }
//! ```

use ldap3::asn1::{PL, StructureTag, TagClass, parse_tag};

/// The control's OID.
pub(crate) const PPOLICY_OID: &str = "1.3.6.1.4.1.42.2.27.8.5.1";

/// A server's password policy verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PolicyResponse {
    pub(crate) warning: Option<PolicyWarning>,
    pub(crate) error: Option<PolicyError>,
}

/// A warning with an accepted bind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyWarning {
    /// Seconds until the password expires.
    TimeBeforeExpiration(u32),
    /// Binds left after expiry.
    GraceAuthNsRemaining(u32),
}

/// The password policy's reason for refusing a bind or a password change
/// (or, for `ChangeAfterReset`, for restricting a bind), as the server sent
/// it in the password policy response control (draft-behera).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The password expired.
    PasswordExpired,
    /// The account is locked.
    AccountLocked,
    /// The password was reset and must be changed before anything else.
    ChangeAfterReset,
    /// The user may not change this password.
    PasswordModNotAllowed,
    /// The change must give the old password.
    MustSupplyOldPassword,
    /// The new password is not good enough (the server's quality check).
    InsufficientPasswordQuality,
    /// The new password is shorter than the policy's minimum.
    PasswordTooShort,
    /// The password was changed too recently to change it again.
    PasswordTooYoung,
    /// The new password is one of the last ones used.
    PasswordInHistory,
    /// A value this version does not know (a newer draft), as sent.
    Other(u32),
}

impl PolicyError {
    fn of(n: u32) -> PolicyError {
        match n {
            0 => PolicyError::PasswordExpired,
            1 => PolicyError::AccountLocked,
            2 => PolicyError::ChangeAfterReset,
            3 => PolicyError::PasswordModNotAllowed,
            4 => PolicyError::MustSupplyOldPassword,
            5 => PolicyError::InsufficientPasswordQuality,
            6 => PolicyError::PasswordTooShort,
            7 => PolicyError::PasswordTooYoung,
            8 => PolicyError::PasswordInHistory,
            other => PolicyError::Other(other),
        }
    }
}

/// A non-negative BER integer of at most 4 bytes (after a leading zero).
fn small_uint(bytes: &[u8]) -> Option<u32> {
    let bytes = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        [first, ..] if first & 0x80 != 0 => return None,
        b => b,
    };
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    Some(bytes.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)))
}

fn context(tag: &StructureTag, id: u64) -> bool {
    tag.class == TagClass::Context && tag.id == id
}

/// Reads the control's value; `None` for anything malformed.
pub(crate) fn parse(value: &[u8]) -> Option<PolicyResponse> {
    let (rest, tag) = parse_tag(value).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut response = PolicyResponse::default();
    for part in tag.expect_constructed()? {
        if context(&part, 0) && response.warning.is_none() && response.error.is_none() {
            let mut choice = part.expect_constructed()?.into_iter();
            let inner = choice.next()?;
            if choice.next().is_some() {
                return None;
            }
            let PL::P(bytes) = &inner.payload else {
                return None;
            };
            let n = small_uint(bytes)?;
            response.warning = Some(match inner.id {
                0 if inner.class == TagClass::Context => PolicyWarning::TimeBeforeExpiration(n),
                1 if inner.class == TagClass::Context => PolicyWarning::GraceAuthNsRemaining(n),
                _ => return None,
            });
        } else if context(&part, 1) && response.error.is_none() {
            let bytes = part.expect_primitive()?;
            response.error = Some(PolicyError::of(small_uint(&bytes)?));
        } else {
            return None;
        }
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_the_draft_allows_reads_back() {
        // SEQUENCE {}
        assert_eq!(parse(&[0x30, 0x00]), Some(PolicyResponse::default()));
        // warning: timeBeforeExpiration 3600
        let ttl = [0x30, 0x06, 0xa0, 0x04, 0x80, 0x02, 0x0e, 0x10];
        assert_eq!(
            parse(&ttl).unwrap().warning,
            Some(PolicyWarning::TimeBeforeExpiration(3600))
        );
        // warning: graceAuthNsRemaining 2
        let grace = [0x30, 0x05, 0xa0, 0x03, 0x81, 0x01, 0x02];
        assert_eq!(
            parse(&grace).unwrap().warning,
            Some(PolicyWarning::GraceAuthNsRemaining(2))
        );
        // error: accountLocked
        let locked = [0x30, 0x03, 0x81, 0x01, 0x01];
        assert_eq!(
            parse(&locked).unwrap().error,
            Some(PolicyError::AccountLocked)
        );
        // warning and error: grace 0, changeAfterReset
        let both = [0x30, 0x08, 0xa0, 0x03, 0x81, 0x01, 0x00, 0x81, 0x01, 0x02];
        assert_eq!(
            parse(&both),
            Some(PolicyResponse {
                warning: Some(PolicyWarning::GraceAuthNsRemaining(0)),
                error: Some(PolicyError::ChangeAfterReset),
            })
        );
        // a value from a newer draft
        assert_eq!(
            parse(&[0x30, 0x03, 0x81, 0x01, 0x2a]).unwrap().error,
            Some(PolicyError::Other(42))
        );
        // 2^31 seconds with its leading zero
        let big = [
            0x30, 0x09, 0xa0, 0x07, 0x80, 0x05, 0x00, 0x80, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            parse(&big).unwrap().warning,
            Some(PolicyWarning::TimeBeforeExpiration(1 << 31))
        );
    }

    #[test]
    fn anything_malformed_is_none_never_a_panic() {
        let bad: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x05, 0xa0, 0x03, 0x81, 0x01], // truncated
            &[0x30, 0x03, 0x82, 0x01, 0x00],       // unknown part
            &[0x30, 0x03, 0x81, 0x01, 0xff],       // negative
            &[0x30, 0x04, 0xa0, 0x02, 0x82, 0x00], // unknown warning
            &[0x30, 0x03, 0xa1, 0x01, 0x00],       // error constructed
            &[0x30, 0x06, 0x81, 0x01, 0x01, 0x81, 0x01, 0x02], // two errors
            &[0x30, 0x00, 0x00],                   // trailing bytes
            &[0x04, 0x00],                         // not a sequence
            &[0x30, 0x08, 0x81, 0x06, 1, 2, 3, 4, 5, 6], // too big
        ];
        for value in bad {
            assert_eq!(parse(value), None, "{value:02x?}");
        }
    }
}
