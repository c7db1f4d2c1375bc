//! SASL GSSAPI (Kerberos V5) binds, with the `gssapi` feature.
//!
//! The Kerberos library takes its configuration and credentials from the
//! process environment (`KRB5_CONFIG`, `KRB5_CLIENT_KTNAME` for a client
//! keytab, `KRB5CCNAME` for a credential cache): ldapmux never sets those
//! (changing the environment of a running, multi-threaded process is
//! unsound, and it would change every pool's credentials at once). A pool
//! chooses its identity by principal, within the keytab or cache collection
//! the process was started with. docs/security.md, "GSSAPI".
//!
//! The library blocks (files, DNS, the KDC): the bind runs on tokio's
//! blocking pool, never on a worker thread.

use std::time::Instant;

use cross_krb5::{Cred, InitiateFlags, K5Cred};
use ldap3::{Ldap, LdapError, LdapResult};

use crate::BuildError;

/// Binds `ldap` with GSSAPI as `principal` (`None`: the default one) to the
/// service `ldap/<host>`. Returns the bind's result and when the Kerberos
/// credentials it was bound with end (`None` if the library does not
/// say); the core retires the connection a margin before
/// (`Event::ConnExpires`).
pub(crate) async fn bind(
    ldap: &Ldap,
    principal: Option<&str>,
    host: &str,
) -> Result<(LdapResult, Option<Instant>), LdapError> {
    let mut ldap = ldap.clone();
    let principal = principal.map(str::to_owned);
    let host = host.to_owned();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let cred = acquire(principal.as_deref())?;
        let result = runtime.block_on(ldap.sasl_gssapi_cred_bind(cred, &host))?;
        // The credentials as they are after the bind (a client keytab may
        // have fetched a new ticket for it): the service ticket the bind
        // used ends no later than they do.
        let expires_at = acquire(principal.as_deref()).ok().and_then(|cred| {
            let gss: libgssapi::credential::Cred = cred.into();
            let lifetime = gss.lifetime().ok()?;
            Some(Instant::now() + lifetime)
        });
        Ok((result, expires_at))
    })
    .await
    .map_err(|e| LdapError::GssapiOperationError(format!("the GSSAPI bind task failed: {e}")))?
}

fn acquire(principal: Option<&str>) -> Result<Cred, LdapError> {
    Cred::client_acquire(InitiateFlags::empty(), principal)
        .map_err(|e| LdapError::GssapiOperationError(format!("no Kerberos credentials: {e:#}")))
}

/// Checks, at build time, what can be checked of the environment: a client
/// keytab named by `KRB5_CLIENT_KTNAME` (a path, or `FILE:path`) must be
/// readable; `KRB5_CONFIG` must name readable files.
pub(crate) fn check_environment() -> Result<(), BuildError> {
    if let Some(name) = std::env::var_os("KRB5_CLIENT_KTNAME") {
        let name = name.to_string_lossy().into_owned();
        let path = name.strip_prefix("FILE:").unwrap_or(&name);
        if !name.contains(':') || name.starts_with("FILE:") {
            std::fs::File::open(path).map_err(|e| {
                BuildError::Gssapi(format!(
                    "the client keytab KRB5_CLIENT_KTNAME={name} cannot be read: {e}"
                ))
            })?;
        }
    }
    if let Some(files) = std::env::var_os("KRB5_CONFIG") {
        for file in std::env::split_paths(&files) {
            std::fs::File::open(&file).map_err(|e| {
                BuildError::Gssapi(format!(
                    "the Kerberos configuration KRB5_CONFIG={} cannot be read: {e}",
                    file.display()
                ))
            })?;
        }
    }
    Ok(())
}
