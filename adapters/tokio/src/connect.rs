//! Opening one connection: TCP with `TCP_NODELAY`, TLS or StartTLS with the
//! shared rustls configuration, then the one and only bind. Also the
//! classification of ldap3's errors into what the core acts on.

use std::io;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, StdStream};
use ldapmux_core::{ConnError, ConnErrorKind};
use tokio::task::JoinHandle;

use std::sync::Arc;

use crate::builder::Settings;
use crate::url::{Scheme, ServerUrl};
use crate::{Credential, tls};

/// An open, bound connection: the handle users clone, and the task driving
/// its socket (when it ends, the connection is dead).
pub(crate) struct Opened {
    pub(crate) ldap: Ldap,
    pub(crate) drive: JoinHandle<ldap3::result::Result<()>>,
    /// When the credentials it was bound with end (GSSAPI tickets): the
    /// runtime reports it to the core (`Event::ConnExpires`), which retires
    /// the connection a margin before.
    pub(crate) expires_at: Option<std::time::Instant>,
    /// The server's unsolicited notifications (RFC 4511 §4.4): a Notice of
    /// Disconnection tells the core the connection is going away.
    pub(crate) notices: Notices,
}

/// Where a connection's unsolicited notifications arrive.
pub(crate) type Notices =
    tokio::sync::mpsc::UnboundedReceiver<(ldap3::asn1::Tag, Vec<ldap3::controls::Control>)>;

/// Connects to `url` and binds with `cred`. The caller bounds it with the
/// connect timeout. `bind_anonymous`: send an anonymous simple bind so that
/// the server has provably answered once (a frozen server accepts TCP but
/// never answers); a private AUTH connection skips it, its user's bind is the
/// first exchange.
pub(crate) async fn open(
    settings: &Settings,
    url: &ServerUrl,
    cred: &Credential,
    bind_anonymous: bool,
) -> Result<Opened, ConnError> {
    open_with(
        settings,
        url,
        cred,
        tls_config(settings, cred),
        bind_anonymous,
    )
    .await
}

/// [`open`] with the TLS configuration given.
async fn open_with(
    settings: &Settings,
    url: &ServerUrl,
    cred: &Credential,
    tls: Arc<rustls::ClientConfig>,
    bind_anonymous: bool,
) -> Result<Opened, ConnError> {
    let mut ldap_settings = LdapConnSettings::new()
        .set_conn_timeout(settings.core.connect_timeout)
        .set_config(tls)
        .set_starttls(settings.starttls && url.scheme() == Scheme::Ldap);
    if url.scheme() != Scheme::Ldapi {
        let stream = tokio::net::TcpStream::connect((url.host(), url.port()))
            .await
            .map_err(|e| io_error("connect", &e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| io_error("set TCP_NODELAY", &e))?;
        let std = stream.into_std().map_err(|e| io_error("connect", &e))?;
        ldap_settings = ldap_settings.set_std_stream(StdStream::Tcp(std));
    }
    let tls_step = match url.scheme() {
        Scheme::Ldaps => Some("TLS handshake"),
        Scheme::Ldap if settings.starttls => Some("StartTLS"),
        _ => None,
    };
    let (mut conn, mut ldap) = LdapConnAsync::with_settings(ldap_settings, url.as_str())
        .await
        .map_err(|e| classify_connect(&e, tls_step))?;
    let notices = conn.unsolicited();
    let mut drive = tokio::spawn(conn.drive());
    #[cfg_attr(not(feature = "gssapi"), allow(unused_mut))]
    let mut expires_at = None;
    let bound = match cred {
        #[cfg(feature = "gssapi")]
        Credential::Gssapi { principal } => {
            match crate::gssapi::bind(&ldap, principal.as_deref(), url.host()).await {
                Ok((result, at)) => {
                    expires_at = at;
                    Ok(Some(result))
                }
                Err(LdapError::GssapiOperationError(why)) => {
                    drive.abort();
                    return Err(ConnError::new(
                        ConnErrorKind::InvalidCredentials,
                        format!("GSSAPI bind as {} failed: {why}", cred.describe()),
                    ));
                }
                Err(e) => Err(e),
            }
        }
        Credential::Simple { dn, password } => {
            ldap.simple_bind(dn, password.expose()).await.map(Some)
        }
        Credential::SaslExternal { .. } => ldap.sasl_external_bind().await.map(Some),
        Credential::Anonymous if bind_anonymous => ldap.simple_bind("", "").await.map(Some),
        Credential::Anonymous => Ok(None),
    };
    let failure = match bound {
        Ok(None) => None,
        Ok(Some(result)) if result.rc == 0 => None,
        Ok(Some(result)) => Some(bind_refused(cred, result.rc, &result.text)),
        // The connection died before the bind was answered: the driving
        // task, ending, knows why (e.g. the server sent something that is
        // not LDAP); ldap3 only says "channel closed".
        Err(e) if is_conn_dead(&e) => {
            let why = tokio::time::timeout(std::time::Duration::from_millis(200), &mut drive).await;
            let cause = match why {
                Ok(Ok(Err(cause))) => Some(classify(&cause)),
                Ok(Ok(Ok(()))) => None,
                _ => Some(classify(&e)),
            };
            Some(dead_at_bind(cred, cause))
        }
        Err(e) => Some(classify(&e)),
    };
    if let Some(error) = failure {
        drive.abort();
        return Err(error);
    }
    Ok(Opened {
        ldap,
        drive,
        expires_at,
        notices,
    })
}

/// Why a connection died before its bind was answered; `cause`: what its
/// driving task ended with (`None`: the server closed it cleanly).
///
/// A TLS 1.3 server judges the client certificate after the client has
/// finished its half of the handshake, so a refused certificate shows only
/// in answer to the bind: as an alert, or (GnuTLS's slapd) as the session
/// closed without one. With a client certificate presented, a session that
/// ends there is taken for that refusal: a TLS error, the certificate's
/// fault, never a hang nor a generic I/O error.
fn dead_at_bind(cred: &Credential, cause: Option<ConnError>) -> ConnError {
    let who = cred.describe();
    let why = cause.as_ref().map_or_else(
        || "the server closed the connection".to_owned(),
        |c| c.message.clone(),
    );
    let timed_out = cause
        .as_ref()
        .is_some_and(|c| c.kind == ConnErrorKind::Timeout);
    if cred.client_cert().is_some() && !timed_out {
        return ConnError::new(
            ConnErrorKind::Tls,
            format!(
                "the TLS session ended at the bind as {who}: the server refused the \
                 client certificate (untrusted, expired or not for this server?): {why}"
            ),
        );
    }
    match cause {
        Some(c) if c.kind == ConnErrorKind::Tls => ConnError::new(
            ConnErrorKind::Tls,
            format!("the TLS session ended before the bind as {who} was answered: {why}"),
        ),
        Some(c) => ConnError::new(
            c.kind,
            format!("no LDAP answer to the bind: {why} (is it an LDAP server?)"),
        ),
        None => ConnError::new(
            ConnErrorKind::Io,
            "the server closed the connection without answering the bind",
        ),
    }
}

/// The TLS configuration a connection bound with `cred` uses: the
/// generation's, presenting the client certificate of a SASL EXTERNAL
/// credential.
fn tls_config(settings: &Settings, cred: &Credential) -> Arc<rustls::ClientConfig> {
    match cred.client_cert() {
        Some(cert) => tls::with_client_cert(&settings.tls, cert),
        None => settings.tls.clone(),
    }
}

/// Connects and reads the root DSE: the probe of a down server and the
/// liveness check of a suspect one. A pool bound with a client certificate
/// presents it here too (a server with `TLSVerifyClient demand` refuses
/// TLS without one), but does not bind with it.
pub(crate) async fn probe(settings: &Settings, url: &ServerUrl) -> Result<(), ConnError> {
    let tls = tls_config(settings, &settings.credential);
    let anonymous = &Credential::Anonymous;
    let Opened {
        mut ldap, drive, ..
    } = open_with(settings, url, anonymous, tls, false).await?;
    let result = ldap
        .search("", ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await
        .map_err(|e| classify(&e));
    let _ = ldap.unbind().await;
    drive.abort();
    result.map(|_| ())
}

fn bind_refused(cred: &Credential, rc: u32, text: &str) -> ConnError {
    let who = cred.describe();
    let kind = match rc {
        // busy, unavailable, other: the server is not well.
        51 | 52 | 80 => ConnErrorKind::Io,
        // Any other answer (invalidCredentials, invalidDNSyntax,
        // inappropriateAuthentication, …) is about this credential: the
        // server is healthy, and other users' connections must not suffer.
        _ => ConnErrorKind::InvalidCredentials,
    };
    ConnError::new(
        kind,
        format!(
            "bind as {who} refused: {} ({rc}) {text}",
            crate::error::result_name(rc)
        ),
    )
}

fn io_error(what: &str, e: &io::Error) -> ConnError {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnErrorKind::Refused,
        io::ErrorKind::TimedOut => ConnErrorKind::Timeout,
        _ if is_tls(e) => ConnErrorKind::Tls,
        _ => ConnErrorKind::Io,
    };
    ConnError::new(kind, format!("{what}: {e}"))
}

fn is_tls(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

/// Errors while setting up the connection (TLS, StartTLS; the TCP connect
/// is done before). `tls`: the TLS step required, if any. With TLS required,
/// every failure here is a TLS failure (a plain-text answer to a TLS
/// handshake, a server that closes on StartTLS …): never a fallback.
fn classify_connect(e: &LdapError, tls: Option<&str>) -> ConnError {
    match e {
        // StartTLS refused by the server: never fall back to plain text.
        LdapError::LdapResult { result } => ConnError::new(
            ConnErrorKind::Tls,
            format!(
                "StartTLS refused: {} ({}) {}",
                crate::error::result_name(result.rc),
                result.rc,
                result.text
            ),
        ),
        other => {
            let error = classify(other);
            match tls {
                Some(step) if error.kind != ConnErrorKind::Timeout => ConnError::new(
                    ConnErrorKind::Tls,
                    format!("{step} failed: {}", error.message),
                ),
                _ => error,
            }
        }
    }
}

/// Classifies an error seen on an open (or opening) connection.
pub(crate) fn classify(e: &LdapError) -> ConnError {
    match e {
        LdapError::Io { source } => io_error("I/O", source),
        LdapError::Timeout { .. } => ConnError::new(ConnErrorKind::Timeout, e.to_string()),
        _ => ConnError::new(ConnErrorKind::Io, e.to_string()),
    }
}

/// Whether `e` means the connection is dead (rather than an LDAP result or a
/// malformed request).
pub(crate) fn is_conn_dead(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
            | LdapError::EndOfStream
    )
}

/// Whether the request behind `e` may have reached the server: only an
/// `OpSend` (the connection's task was already gone) proves it did not.
pub(crate) fn request_sent(e: &LdapError) -> bool {
    !matches!(e, LdapError::OpSend { .. })
}
