//! slapd's own view of its connections, read from the monitor backend (`cn=Monitor`).
//!
//! Every query opens its own connection (so it works whatever the pool under test
//! does), identifies that connection by its local address, and leaves it out of the
//! answers where the API says so. Each query is bounded by [`MONITOR_TIMEOUT`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, StdStream};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::HarnessError;
use crate::slapd::{ROOT_DN, ROOT_PW, Slapd};

/// slapd's count of one type of operation ([`Slapd::monitor_operations`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Operations of this type slapd started (`monitorOpInitiated`).
    pub initiated: u64,
    /// Operations of this type slapd finished (`monitorOpCompleted`).
    pub completed: u64,
}

/// Bound on each monitor query (connect, bind, search).
pub const MONITOR_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of [`Slapd::wait_current_connections`].
const POLL_INTERVAL: Duration = Duration::from_millis(10);

const CURRENT_DN: &str = "cn=Current,cn=Connections,cn=Monitor";
const TOTAL_DN: &str = "cn=Total,cn=Connections,cn=Monitor";
const CONNECTIONS_DN: &str = "cn=Connections,cn=Monitor";

/// One client connection as slapd's monitor reports it (`cn=Connection N`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorConn {
    /// `monitorConnectionNumber` (slapd's connection id, `conn=N` in its log).
    pub number: u64,
    /// `monitorConnectionPeerAddress`, e.g. `IP=127.0.0.1:54321`.
    pub peer: String,
    /// `monitorConnectionLocalAddress`, e.g. `IP=127.0.0.1:389`.
    pub local: String,
    /// `monitorConnectionAuthzDN`; empty for anonymous connections.
    pub authz_dn: String,
    /// `monitorConnectionListener`, e.g. `ldap://127.0.0.1:389/`.
    pub listener: String,
    /// `monitorConnectionOpsReceived`.
    pub ops_received: u64,
    /// `monitorConnectionOpsExecuting`.
    pub ops_executing: u64,
    /// `monitorConnectionOpsPending`.
    pub ops_pending: u64,
    /// `monitorConnectionOpsCompleted`.
    pub ops_completed: u64,
    /// `monitorConnectionMask`, e.g. `rx` (reading), `tx` (writing).
    pub mask: String,
}

impl MonitorConn {
    /// The peer as a socket address (`IP=127.0.0.1:54321` → `127.0.0.1:54321`).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer.strip_prefix("IP=")?.parse().ok()
    }
}

/// `IP=a.b.c.d:port`, the way slapd prints a peer address.
pub(crate) fn slapd_peer(addr: SocketAddr) -> String {
    format!("IP={addr}")
}

fn first<'a>(entry: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

fn first_u64(entry: &SearchEntry, attr: &str) -> Result<u64, HarnessError> {
    let v = first(entry, attr).ok_or_else(|| {
        HarnessError::Unexpected(format!("monitor entry {} has no {attr}", entry.dn))
    })?;
    v.parse().map_err(|_| {
        HarnessError::Unexpected(format!(
            "monitor entry {}: {attr} is {v:?}, not a number",
            entry.dn
        ))
    })
}

/// One short-lived LDAP connection of the harness.
struct Session {
    ldap: Ldap,
    local: SocketAddr,
    driver: JoinHandle<ldap3::result::Result<()>>,
}

impl Session {
    async fn open(url: &str, addr: SocketAddr, bind_root: bool) -> Result<Session, HarnessError> {
        let stream = tokio::time::timeout(MONITOR_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                HarnessError::Timeout(format!("connect to {addr} took over {MONITOR_TIMEOUT:?}"))
            })?
            .map_err(|e| HarnessError::io(format!("connect to slapd at {addr}"), e))?;
        let local = stream
            .local_addr()
            .map_err(|e| HarnessError::io("local_addr of the monitor connection", e))?;
        let _ = stream.set_nodelay(true);
        let std_stream = stream
            .into_std()
            .map_err(|e| HarnessError::io("into_std of the monitor connection", e))?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(MONITOR_TIMEOUT)
            .set_std_stream(StdStream::Tcp(std_stream));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| HarnessError::ldap(format!("open monitor connection to {url}"), e))?;
        let driver = tokio::spawn(conn.drive());
        if bind_root {
            ldap.with_timeout(MONITOR_TIMEOUT)
                .simple_bind(ROOT_DN, ROOT_PW)
                .await
                .and_then(|r| r.success())
                .map_err(|e| HarnessError::ldap(format!("bind as {ROOT_DN}"), e))?;
        }
        Ok(Session {
            ldap,
            local,
            driver,
        })
    }

    async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Vec<SearchEntry>, HarnessError> {
        let (entries, _) = self
            .ldap
            .with_timeout(MONITOR_TIMEOUT)
            .search(base, scope, filter, attrs)
            .await
            .and_then(|r| r.success())
            .map_err(|e| HarnessError::ldap(format!("search {base} {filter}"), e))?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    /// Unbinds and waits (bounded) for the driver to finish, so the connection is
    /// closed on our side when this returns.
    async fn close(mut self) {
        let _ = tokio::time::timeout(MONITOR_TIMEOUT, self.ldap.unbind()).await;
        if tokio::time::timeout(MONITOR_TIMEOUT, &mut self.driver)
            .await
            .is_err()
        {
            self.driver.abort();
        }
    }
}

impl Slapd {
    async fn session(&self, bind_root: bool) -> Result<Session, HarnessError> {
        Session::open(&self.url(), self.addr(), bind_root).await
    }

    async fn counter(&self, dn: &str) -> Result<u64, HarnessError> {
        let mut s = self.session(false).await?;
        let result = s
            .search(dn, Scope::Base, "(objectClass=*)", vec!["monitorCounter"])
            .await
            .and_then(|entries| match entries.first() {
                Some(e) => first_u64(e, "monitorCounter"),
                None => Err(HarnessError::Unexpected(format!("no monitor entry {dn}"))),
            });
        s.close().await;
        result
    }

    /// Client connections slapd has open now, not counting the one asking
    /// (`cn=Current,cn=Connections,cn=Monitor` minus one).
    pub async fn monitor_current_connections(&self) -> Result<u64, HarnessError> {
        let n = self.counter(CURRENT_DN).await?;
        n.checked_sub(1).ok_or_else(|| {
            HarnessError::Unexpected(format!("{CURRENT_DN} says 0 while we are connected"))
        })
    }

    /// Connections slapd accepted since it (re)started, including every monitor query
    /// (this one too) and the readiness probe.
    pub async fn monitor_total_connections(&self) -> Result<u64, HarnessError> {
        self.counter(TOTAL_DN).await
    }

    /// slapd's operation counts since it (re)started, by type (`Bind`,
    /// `Search`, `Modify`, …, from `cn=<Type>,cn=Operations,cn=Monitor`), read
    /// in one search on an anonymous connection that sends no bind, so that
    /// reading adds no Bind (it adds this Search and its Unbind).
    pub async fn monitor_operations(&self) -> Result<HashMap<String, OpCounts>, HarnessError> {
        let mut s = self.session(false).await?;
        let result = s
            .search(
                "cn=Operations,cn=Monitor",
                Scope::OneLevel,
                "(objectClass=*)",
                vec!["cn", "monitorOpInitiated", "monitorOpCompleted"],
            )
            .await
            .and_then(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        let name = first(e, "cn").ok_or_else(|| {
                            HarnessError::Unexpected(format!("monitor entry {} has no cn", e.dn))
                        })?;
                        let counts = OpCounts {
                            initiated: first_u64(e, "monitorOpInitiated")?,
                            completed: first_u64(e, "monitorOpCompleted")?,
                        };
                        Ok((name.to_owned(), counts))
                    })
                    .collect()
            });
        s.close().await;
        result
    }

    /// One entry per open client connection (`cn=Connection N`), without the asking
    /// connection, sorted by connection number. Binds as the root DN so that no size
    /// limit applies.
    pub async fn monitor_connections(&self) -> Result<Vec<MonitorConn>, HarnessError> {
        let mut s = self.session(true).await?;
        let result = s
            .search(
                CONNECTIONS_DN,
                Scope::OneLevel,
                "(objectClass=monitorConnection)",
                vec!["*", "+"],
            )
            .await;
        let own = slapd_peer(s.local);
        s.close().await;
        let mut conns = Vec::new();
        for e in result? {
            let conn = MonitorConn {
                number: first_u64(&e, "monitorConnectionNumber")?,
                peer: first(&e, "monitorConnectionPeerAddress")
                    .unwrap_or_default()
                    .to_owned(),
                local: first(&e, "monitorConnectionLocalAddress")
                    .unwrap_or_default()
                    .to_owned(),
                authz_dn: first(&e, "monitorConnectionAuthzDN")
                    .unwrap_or_default()
                    .to_owned(),
                listener: first(&e, "monitorConnectionListener")
                    .unwrap_or_default()
                    .to_owned(),
                ops_received: first_u64(&e, "monitorConnectionOpsReceived").unwrap_or(0),
                ops_executing: first_u64(&e, "monitorConnectionOpsExecuting").unwrap_or(0),
                ops_pending: first_u64(&e, "monitorConnectionOpsPending").unwrap_or(0),
                ops_completed: first_u64(&e, "monitorConnectionOpsCompleted").unwrap_or(0),
                mask: first(&e, "monitorConnectionMask")
                    .unwrap_or_default()
                    .to_owned(),
            };
            if conn.peer != own {
                conns.push(conn);
            }
        }
        conns.sort_by_key(|c| c.number);
        Ok(conns)
    }

    /// Polls [`Slapd::monitor_current_connections`] until it equals `want`; fails
    /// after `within` naming the last value (or error) seen.
    pub async fn wait_current_connections(
        &self,
        want: u64,
        within: Duration,
    ) -> Result<(), HarnessError> {
        let start = Instant::now();
        let deadline = start + within;
        let mut last = String::from("no answer yet");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.monitor_current_connections()).await {
                Ok(Ok(n)) if n == want => return Ok(()),
                Ok(Ok(n)) => last = format!("{n}"),
                Ok(Err(e)) => last = format!("error: {e}"),
                Err(_) => last = format!("{last} (then a query outlived the deadline)"),
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout(format!(
                    "slapd on port {} still reports {last} current connections (besides the \
                     monitor's own) after {:?}; expected {want}",
                    self.port(),
                    start.elapsed()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// [`Slapd::monitor_current_connections`] for code without a runtime (blocking
    /// clients, forked children): runs it on a private current-thread runtime (on a
    /// helper thread if called from inside a runtime).
    pub fn monitor_current_connections_blocking(&self) -> Result<u64, HarnessError> {
        block_on(self.monitor_current_connections())?
    }

    /// [`Slapd::wait_current_connections`] for code without a runtime.
    pub fn wait_current_connections_blocking(
        &self,
        want: u64,
        within: Duration,
    ) -> Result<(), HarnessError> {
        block_on(self.wait_current_connections(want, within))?
    }

    /// Number of entries under `base` (subtree, including `base`) matching `filter`,
    /// searched as the root DN (no ACLs, no size limit). For "exists exactly once"
    /// checks after writes with unknown outcome.
    pub async fn count_entries(&self, base: &str, filter: &str) -> Result<usize, HarnessError> {
        let mut s = self.session(true).await?;
        let result = match s.search(base, Scope::Subtree, filter, vec!["1.1"]).await {
            Ok(entries) => Ok(entries.len()),
            // noSuchObject: the base itself does not exist, so nothing matches.
            Err(e) if e.ldap_result_code() == Some(32) => Ok(0),
            Err(e) => Err(e),
        };
        s.close().await;
        result
    }
}

/// Runs `fut` to completion on a private current-thread runtime, on a scoped helper
/// thread when the caller is already inside a runtime (where `block_on` would panic).
fn block_on<F>(fut: F) -> Result<F::Output, HarnessError>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    let run = move || -> Result<F::Output, HarnessError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| HarnessError::io("build a current-thread tokio runtime", e))?;
        Ok(rt.block_on(fut))
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|scope| {
            scope
                .spawn(run)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        run()
    }
}
