//! `ldapmux check`: probes servers with the pool's own logic. Each URL gets
//! a one-server pool (the same connect, TLS, StartTLS and bind code as
//! production pools) that reads the root DSE and asks "who am I?".

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ldapmux::{ConnErrorKind, Credential, Error, Pool, Scheme, Scope, ServerUrl};

/// What `ldapmux check` runs with.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The servers.
    pub urls: Vec<String>,
    /// A PEM file of CA certificates to trust (besides the system roots).
    pub ca_file: Option<PathBuf>,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
    /// Bind DN (with `password`).
    pub bind_dn: Option<String>,
    /// The bind password, read from a file by the caller. Never printed.
    pub password: Option<ldapmux::Password>,
    /// Bind with SASL EXTERNAL: with this client certificate and key
    /// (`cert`, `key`) over TLS, or with the peer credentials over
    /// `ldapi://` when `None`.
    pub sasl_external: Option<Option<(PathBuf, PathBuf)>>,
    /// Accept any certificate.
    pub no_verify: bool,
    /// Bound on each server's check (connect + root DSE + whoami).
    pub timeout: Duration,
}

/// TLS as used for one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsState {
    /// Plain LDAP.
    Off,
    /// `ldaps://` or StartTLS, certificate verified.
    Verified,
    /// `ldaps://` or StartTLS, certificate NOT verified (`--no-verify`).
    Unverified,
    /// `ldapi://`: a local socket.
    LocalSocket,
}

impl TlsState {
    /// TLS for a server of `scheme` in a pool with StartTLS `starttls` and
    /// verification `verify`, and whether StartTLS applies to it.
    pub fn of(scheme: Scheme, starttls: bool, verify: bool) -> (TlsState, bool) {
        let starttls = starttls && scheme == Scheme::Ldap;
        let state = match (scheme, scheme == Scheme::Ldaps || starttls, verify) {
            (Scheme::Ldapi, _, _) => TlsState::LocalSocket,
            (_, false, _) => TlsState::Off,
            (_, true, true) => TlsState::Verified,
            (_, true, false) => TlsState::Unverified,
        };
        (state, starttls)
    }

    /// How it reads in the report, given how the check went.
    /// `unverified_by` names the setting that turned verification off
    /// (`--no-verify`, `TLS_REQCERT never`).
    pub fn describe(
        self,
        starttls: bool,
        error: Option<&CheckError>,
        unverified_by: &str,
    ) -> String {
        let how = if starttls { "StartTLS" } else { "ldaps" };
        let verify = match self {
            TlsState::Verified => "certificate verified".to_owned(),
            _ => format!("certificate NOT verified ({unverified_by})"),
        };
        match (self, error) {
            (TlsState::Off, _) => "off (plain LDAP)".to_owned(),
            (TlsState::LocalSocket, _) => "none needed (ldapi local socket)".to_owned(),
            (_, Some(e)) if e.kind == TLS_FAILURE => format!("{how}: FAILED ({})", e.kind),
            (_, Some(e)) if !e.reached => format!("{how}: not reached"),
            (_, _) => format!("on ({how}), {verify}"),
        }
    }
}

/// The error class of a TLS handshake or certificate failure.
pub const TLS_FAILURE: &str = "TLS failure (certificate or handshake)";

/// The result for one server.
#[derive(Clone, Debug)]
pub struct ServerReport {
    /// The URL as given.
    pub url: String,
    /// TLS as configured for it.
    pub tls: TlsState,
    /// Whether StartTLS was asked for.
    pub starttls: bool,
    /// The setting that turned certificate verification off, if it is off.
    pub unverified_by: &'static str,
    /// The bind DN used (anonymous if none).
    pub bind_dn: Option<String>,
    /// The SASL bind used instead, in words (`EXTERNAL with the client
    /// certificate /etc/…`); `None`: simple or anonymous.
    pub sasl: Option<String>,
    /// The root DSE's naming contexts, when it was read.
    pub naming_contexts: Vec<String>,
    /// The root DSE's vendor, when it says.
    pub vendor: Option<String>,
    /// The request controls the root DSE lists (`supportedControl`), OIDs.
    pub controls: Vec<String>,
    /// The identity the connection is bound as (`dn:…`, empty = anonymous).
    pub identity: Option<String>,
    /// The server answered WhoAmI (RFC 4532) with protocolError, as a server
    /// that does not offer an extended operation must (Samba AD): the bind
    /// worked (the root DSE was read on the bound connection), the identity
    /// is not known.
    pub whoami_not_offered: bool,
    /// What failed, typed.
    pub error: Option<CheckError>,
    /// How long the check took.
    pub took: Duration,
}

impl ServerReport {
    /// Reachable, and bound as asked.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Why a server failed its check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// The class: `connection refused`, `TLS`, `invalid credentials` …
    pub kind: &'static str,
    /// The pool's message.
    pub message: String,
    /// Whether the server was reached (TCP and TLS done) before it failed.
    pub reached: bool,
}

/// The class of a pool error, for operators.
pub fn error_kind(e: &Error) -> &'static str {
    match e.conn_error_kind() {
        Some(ConnErrorKind::Refused) => return "connection refused",
        Some(ConnErrorKind::Timeout) => return "timed out connecting",
        Some(ConnErrorKind::Tls) => return TLS_FAILURE,
        Some(ConnErrorKind::InvalidCredentials) => return "invalid credentials",
        Some(ConnErrorKind::Io) => return "connection failed (I/O)",
        Some(ConnErrorKind::ServerDown) => return "server down",
        _ => {}
    }
    match e {
        Error::Timeout { .. } => "timed out",
        Error::Ldap(_) => "LDAP error",
        Error::InvalidRequest(_) => "invalid request",
        Error::Pool {
            source: ldapmux::PoolError::NoServerAvailable,
            ..
        } => "no server available",
        Error::Pool {
            source: ldapmux::PoolError::AcquireTimeout,
            ..
        } => "timed out",
        _ => "error",
    }
}

/// A failure of `kind` (see [`error_kind`]).
pub fn fail(kind: &'static str, message: impl Into<String>) -> Option<CheckError> {
    let reached = matches!(kind, "invalid credentials" | "LDAP error");
    Some(CheckError {
        kind,
        message: message.into(),
        reached,
    })
}

/// Checks one server.
pub async fn check_one(url: &str, opts: &CheckOptions) -> ServerReport {
    let started = Instant::now();
    let mut report = blank_report(url, opts.bind_dn.clone());
    let parsed = match ServerUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            report.error = fail("invalid URL", e.to_string());
            return report;
        }
    };
    (report.tls, report.starttls) = TlsState::of(parsed.scheme(), opts.starttls, !opts.no_verify);
    let connect_timeout = opts.timeout.min(Duration::from_secs(3));
    let mut builder = Pool::builder()
        .server(url)
        .connect_timeout(connect_timeout)
        .operation_timeout(opts.timeout)
        .max_connections_per_server(1)
        .starttls(report.starttls)
        .danger_tls_verify(!opts.no_verify);
    if let Some(ca) = &opts.ca_file {
        builder = builder.tls_ca_file(ca.clone());
    }
    if let (Some(dn), Some(pw)) = (&opts.bind_dn, &opts.password) {
        builder = builder.credential(Credential::simple(dn.clone(), pw.clone()));
    }
    match &opts.sasl_external {
        Some(Some((cert, key))) => match ldapmux::ClientCert::from_pem_files(cert, key) {
            Ok(c) => {
                report.sasl = Some(crate::config_check::sasl_external(Some((cert, key))));
                builder = builder.credential(Credential::sasl_external_tls(c));
            }
            Err(e) => {
                report.error = fail("configuration", e.to_string());
                return report;
            }
        },
        Some(None) => {
            report.sasl = Some(crate::config_check::sasl_external(None));
            builder = builder.credential(Credential::sasl_external_peer());
        }
        None => {}
    }
    let pool = match builder.build() {
        Ok(p) => p,
        Err(e) => {
            report.error = fail("configuration", e.to_string());
            return report;
        }
    };
    probe(&pool, &mut report).await;
    pool.shutdown().await;
    report.took = started.elapsed();
    report
}

/// A report for `url` before it is probed: nothing known yet.
pub fn blank_report(url: &str, bind_dn: Option<String>) -> ServerReport {
    ServerReport {
        url: url.to_owned(),
        tls: TlsState::Off,
        starttls: false,
        unverified_by: NO_VERIFY_FLAG,
        bind_dn,
        sasl: None,
        naming_contexts: Vec::new(),
        vendor: None,
        controls: Vec::new(),
        identity: None,
        whoami_not_offered: false,
        error: None,
        took: Duration::ZERO,
    }
}

/// What turns verification off on the command line.
pub const NO_VERIFY_FLAG: &str = "--no-verify";

/// Reads the root DSE and asks "who am I?" through `pool` (a handle pinned
/// to one server, bounded by its timeout), filling in `report`.
pub async fn probe(pool: &Pool, report: &mut ServerReport) {
    let dse = pool
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            &[
                "namingContexts",
                "vendorName",
                "vendorVersion",
                "supportedControl",
            ],
        )
        .await;
    match dse {
        Ok(entries) => {
            if let Some(e) = entries.first() {
                report.naming_contexts = e.attrs.get("namingContexts").cloned().unwrap_or_default();
                // Samba lists some controls more than once.
                let mut controls = e.attrs.get("supportedControl").cloned().unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                controls.retain(|oid| seen.insert(oid.clone()));
                report.controls = controls;
                report.vendor = e
                    .attrs
                    .get("vendorName")
                    .and_then(|v| v.first().cloned())
                    .map(
                        |name| match e.attrs.get("vendorVersion").and_then(|v| v.first()) {
                            Some(ver) => format!("{name} {ver}"),
                            None => name,
                        },
                    );
            }
            match pool.whoami().await {
                Ok(id) => report.identity = Some(id),
                Err(e) if e.rc() == Some(PROTOCOL_ERROR) => report.whoami_not_offered = true,
                Err(e) => report.error = fail(error_kind(&e), e.to_string()),
            }
        }
        Err(e) => report.error = fail(error_kind(&e), e.to_string()),
    }
}

/// protocolError: what a server answers an extended operation it does not
/// offer (RFC 4511 §4.12).
const PROTOCOL_ERROR: u32 = 2;

/// Checks every server, one after the other.
pub async fn check(opts: &CheckOptions) -> Vec<ServerReport> {
    let mut out = Vec::new();
    for url in &opts.urls {
        out.push(check_one(url, opts).await);
    }
    out
}

/// The report of one server, a few lines.
pub fn render(r: &ServerReport) -> String {
    let mut lines = Vec::new();
    match &r.error {
        None => lines.push(format!(
            "{}: OK, reachable ({} ms)",
            r.url,
            r.took.as_millis()
        )),
        Some(e) => lines.push(format!("{}: FAILED: {}", r.url, e.kind)),
    }
    lines.push(format!(
        "  tls:   {}",
        r.tls
            .describe(r.starttls, r.error.as_ref(), r.unverified_by)
    ));
    let who = match (&r.sasl, &r.bind_dn) {
        (Some(sasl), _) => format!("SASL {sasl}"),
        (None, Some(dn)) => format!("simple bind as {dn}"),
        (None, None) => "anonymous".to_owned(),
    };
    match (&r.identity, &r.error) {
        (Some(id), _) => lines.push(format!(
            "  bind:  {who}: ok, whoami = {}",
            if id.is_empty() {
                "(anonymous)".to_owned()
            } else {
                id.clone()
            }
        )),
        (None, None) if r.whoami_not_offered => lines.push(format!(
            "  bind:  {who}: ok (the server does not offer WhoAmI: identity not shown)"
        )),
        (None, Some(e)) if e.kind == "invalid credentials" => {
            lines.push(format!("  bind:  {who}: rejected (invalid credentials)"));
        }
        (None, _) => lines.push(format!("  bind:  {who}: not done")),
    }
    if !r.naming_contexts.is_empty() || r.vendor.is_some() {
        lines.push(format!(
            "  root DSE: naming contexts {}{}",
            if r.naming_contexts.is_empty() {
                "-".to_owned()
            } else {
                r.naming_contexts.join(", ")
            },
            r.vendor
                .as_ref()
                .map_or(String::new(), |v| format!("; vendor {v}"))
        ));
    }
    if !r.controls.is_empty() {
        let names: Vec<&str> = r.controls.iter().map(|oid| control_name(oid)).collect();
        lines.push(format!("  controls: {}", names.join(", ")));
    }
    if let Some(e) = &r.error {
        lines.push(format!("  error: {}", e.message));
    }
    lines.join("\n")
}

/// The name of a control the pool, or an operator of a pool, cares about;
/// other OIDs as they are.
fn control_name(oid: &str) -> &str {
    match oid {
        "1.2.840.113556.1.4.319" => "paged results",
        "1.2.840.113556.1.4.473" => "server-side sort",
        "2.16.840.1.113730.3.4.9" => "VLV",
        "1.3.6.1.4.1.42.2.27.8.5.1" => "password policy",
        "2.16.840.1.113730.3.4.18" => "proxied authorization",
        "1.3.6.1.4.1.4203.1.9.1.1" => "sync (syncrepl)",
        "2.16.840.1.113730.3.4.2" => "manageDsaIT",
        "1.3.6.1.1.12" => "assertion",
        "1.3.6.1.1.13.1" => "pre-read",
        "1.3.6.1.1.13.2" => "post-read",
        "1.2.840.113556.1.4.1413" => "permissive modify",
        "1.3.6.1.1.22" => "don't use copy",
        other => other,
    }
}

/// Reads a password from a file: the first line, without its line end.
/// The password is never printed; errors name the file only.
pub fn read_password_file(path: &std::path::Path) -> Result<ldapmux::Password, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(format!(
            "the password file {} is empty (an empty simple bind would be unauthenticated)",
            path.display()
        ));
    }
    Ok(ldapmux::Password::new(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_states_read_well() {
        assert_eq!(
            TlsState::Off.describe(false, None, NO_VERIFY_FLAG),
            "off (plain LDAP)"
        );
        assert_eq!(
            TlsState::Unverified.describe(true, None, NO_VERIFY_FLAG),
            "on (StartTLS), certificate NOT verified (--no-verify)"
        );
        assert_eq!(
            TlsState::Verified.describe(false, None, NO_VERIFY_FLAG),
            "on (ldaps), certificate verified"
        );
        let refused = fail("connection refused", "x").unwrap();
        assert_eq!(
            TlsState::Verified.describe(false, Some(&refused), NO_VERIFY_FLAG),
            "ldaps: not reached"
        );
        let tls = fail(TLS_FAILURE, "bad cert").unwrap();
        assert_eq!(
            TlsState::Verified.describe(true, Some(&tls), NO_VERIFY_FLAG),
            "StartTLS: FAILED (TLS failure (certificate or handshake))"
        );
    }

    #[test]
    fn a_failed_report_names_the_kind_and_never_a_password() {
        let r = ServerReport {
            url: "ldap://127.0.0.1:1".into(),
            tls: TlsState::Off,
            starttls: false,
            unverified_by: NO_VERIFY_FLAG,
            bind_dn: Some("cn=admin,dc=example,dc=com".into()),
            sasl: None,
            naming_contexts: vec![],
            vendor: None,
            controls: vec![],
            identity: None,
            whoami_not_offered: false,
            error: fail("invalid credentials", "server s0 rejected the credential"),
            took: Duration::from_millis(3),
        };
        let text = render(&r);
        assert!(
            text.starts_with("ldap://127.0.0.1:1: FAILED: invalid credentials"),
            "{text}"
        );
        assert!(text.contains("bind:  simple bind as cn=admin,dc=example,dc=com: rejected"));
    }

    #[test]
    fn a_server_without_whoami_reads_bound_with_its_identity_unknown() {
        let mut r = blank_report("ldaps://127.0.0.1:1", Some("cn=admin".into()));
        r.whoami_not_offered = true;
        let text = render(&r);
        assert!(text.starts_with("ldaps://127.0.0.1:1: OK"), "{text}");
        assert!(
            text.contains("bind:  simple bind as cn=admin: ok (the server does not offer WhoAmI"),
            "{text}"
        );
    }

    #[test]
    fn password_files_give_their_first_line() {
        let dir = std::env::temp_dir().join(format!("ldapmux-cli-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let pw = read_password_file(&p).unwrap();
        assert!(!format!("{pw:?}").contains("s3cret"));
        std::fs::write(&p, "\n").unwrap();
        let err = read_password_file(&p).unwrap_err();
        assert!(err.contains("empty"), "{err}");
        assert!(read_password_file(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
