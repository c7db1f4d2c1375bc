//! Opening one connection: TCP with `TCP_NODELAY`, TLS or StartTLS with the
//! shared rustls configuration, then the one and only bind. Also the
//! classification of ldap3's errors into what the core acts on.

use std::io;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, StdStream};
use ldapmux_core::{ConnError, ConnErrorKind};
use tokio::task::JoinHandle;

use crate::Credential;
use crate::builder::Settings;
use crate::url::{Scheme, ServerUrl};

/// An open, bound connection: the handle users clone, and the task driving
/// its socket (when it ends, the connection is dead).
pub(crate) struct Opened {
    pub(crate) ldap: Ldap,
    pub(crate) drive: JoinHandle<ldap3::result::Result<()>>,
}

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
    let mut ldap_settings = LdapConnSettings::new()
        .set_conn_timeout(settings.core.connect_timeout)
        .set_config(settings.tls.clone())
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
    let tls = match url.scheme() {
        Scheme::Ldaps => Some("TLS handshake"),
        Scheme::Ldap if settings.starttls => Some("StartTLS"),
        _ => None,
    };
    let (conn, mut ldap) = LdapConnAsync::with_settings(ldap_settings, url.as_str())
        .await
        .map_err(|e| classify_connect(&e, tls))?;
    let mut drive = tokio::spawn(conn.drive());
    let bound = match cred {
        Credential::Simple { dn, password } => {
            ldap.simple_bind(dn, password.expose()).await.map(Some)
        }
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
            Some(match why {
                Ok(Ok(Err(cause))) => {
                    let c = classify(&cause);
                    ConnError::new(
                        c.kind,
                        format!(
                            "no LDAP answer to the bind: {} (is it an LDAP server?)",
                            c.message
                        ),
                    )
                }
                Ok(Ok(Ok(()))) => ConnError::new(
                    ConnErrorKind::Io,
                    "the server closed the connection without answering the bind",
                ),
                _ => classify(&e),
            })
        }
        Err(e) => Some(classify(&e)),
    };
    if let Some(error) = failure {
        drive.abort();
        return Err(error);
    }
    Ok(Opened { ldap, drive })
}

/// Connects and reads the root DSE: the probe of a down server and the
/// liveness check of a suspect one.
pub(crate) async fn probe(settings: &Settings, url: &ServerUrl) -> Result<(), ConnError> {
    let Opened { mut ldap, drive } = open(settings, url, &Credential::Anonymous, false).await?;
    let result = ldap
        .search("", ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"])
        .await
        .map_err(|e| classify(&e));
    let _ = ldap.unbind().await;
    drive.abort();
    result.map(|_| ())
}

fn bind_refused(cred: &Credential, rc: u32, text: &str) -> ConnError {
    let who = cred.dn().unwrap_or("anonymous");
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
