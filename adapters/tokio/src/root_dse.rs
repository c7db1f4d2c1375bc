//! Reading what a server says of itself in its root DSE (RFC 4512 §5.1).

use ldap3::{Ldap, LdapError, Scope, SearchEntry};

/// Whether the root DSE's `attr` lists `value` (an OID, compared exactly).
/// A root DSE that cannot be read (an LDAP result other than success) says
/// no; a dead connection is the caller's error like any other.
pub(crate) async fn lists(ldap: &mut Ldap, attr: &str, value: &str) -> Result<bool, LdapError> {
    let result = ldap
        .search("", Scope::Base, "(objectClass=*)", vec![attr])
        .await?;
    let Ok((entries, _)) = result.success() else {
        return Ok(false);
    };
    Ok(entries.into_iter().map(SearchEntry::construct).any(|e| {
        e.attrs
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(attr))
            .flat_map(|(_, values)| values)
            .any(|v| v == value)
    }))
}
