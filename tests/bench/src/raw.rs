//! Raw ldap3 connections for the baselines, and the deadpool manager.

use std::net::SocketAddr;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};
use ldapmux_harness::PEOPLE_BASE;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// Attributes every contender asks for.
pub(crate) const ATTRS: [&str; 2] = ["cn", "mail"];

/// Bound on opening one raw connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The driving task of an ldap3 connection.
pub(crate) type Drive = JoinHandle<ldap3::result::Result<()>>;

/// Opens one connection the way ldapmux does: TCP with `TCP_NODELAY`, then
/// ldap3 on that stream, then an anonymous simple bind.
pub(crate) async fn connect_nodelay(
    url: &str,
    addr: SocketAddr,
) -> Result<(Ldap, Drive), LdapError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| io_timeout())??;
    stream.set_nodelay(true)?;
    let std = stream.into_std()?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_std_stream(StdStream::Tcp(std));
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url).await?;
    let drive = tokio::spawn(conn.drive());
    match tokio::time::timeout(CONNECT_TIMEOUT, ldap.simple_bind("", "")).await {
        Ok(Ok(r)) => {
            if let Err(e) = r.success() {
                drive.abort();
                return Err(e);
            }
        }
        Ok(Err(e)) => {
            drive.abort();
            return Err(e);
        }
        Err(_) => {
            drive.abort();
            return Err(io_timeout());
        }
    }
    Ok((ldap, drive))
}

fn io_timeout() -> LdapError {
    LdapError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "connect timed out",
    ))
}

/// Unbinds (bounded) and waits for the driving task to end (bounded), then aborts it.
pub(crate) async fn close(mut ldap: Ldap, drive: Drive) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ldap.unbind()).await;
    drop(ldap);
    let abort = drive.abort_handle();
    if tokio::time::timeout(Duration::from_secs(1), drive)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// The search every contender runs: `(uid=userN)` one level under
/// `ou=people`, success required, entries parsed as ldapmux parses them.
/// Returns the number of entries.
pub(crate) async fn search(ldap: &mut Ldap, filter: &str) -> Result<usize, LdapError> {
    let (entries, _) = ldap
        .search(PEOPLE_BASE, Scope::OneLevel, filter, ATTRS.to_vec())
        .await?
        .success()?;
    Ok(entries.into_iter().map(SearchEntry::construct).count())
}

/// Whether an ldap3 error means the connection is gone (not an LDAP result).
pub(crate) fn conn_dead(e: &LdapError) -> bool {
    !matches!(
        e,
        LdapError::LdapResult { .. } | LdapError::FilterParsing | LdapError::Timeout { .. }
    )
}

/// One raw connection shared by some tasks; whoever first sees it dead
/// reconnects it (a plain application's "reconnect on error").
pub(crate) struct ConnSlot {
    url: String,
    addr: SocketAddr,
    state: Mutex<SlotState>,
}

struct SlotState {
    generation: u64,
    conn: Option<(Ldap, Drive)>,
    reconnects: u64,
}

impl ConnSlot {
    /// Opens the connection.
    pub(crate) async fn open(url: &str, addr: SocketAddr) -> Result<ConnSlot, LdapError> {
        let conn = connect_nodelay(url, addr).await?;
        Ok(ConnSlot {
            url: url.to_owned(),
            addr,
            state: Mutex::new(SlotState {
                generation: 0,
                conn: Some(conn),
                reconnects: 0,
            }),
        })
    }

    /// The current handle and its generation (`None` while it is down).
    pub(crate) async fn current(&self) -> Option<(Ldap, u64)> {
        let st = self.state.lock().await;
        st.conn.as_ref().map(|(l, _)| (l.clone(), st.generation))
    }

    /// The connection of generation `seen` died: reconnect it unless someone
    /// already did. Returns the new handle, or `None` if the reconnect failed.
    pub(crate) async fn refresh(&self, seen: u64) -> Option<(Ldap, u64)> {
        let mut st = self.state.lock().await;
        if st.generation != seen
            && let Some((l, _)) = &st.conn
        {
            return Some((l.clone(), st.generation));
        }
        if let Some((_, drive)) = st.conn.take() {
            drive.abort();
        }
        st.generation += 1;
        st.reconnects += 1;
        match connect_nodelay(&self.url, self.addr).await {
            Ok((l, d)) => {
                st.conn = Some((l.clone(), d));
                Some((l, st.generation))
            }
            Err(_) => None,
        }
    }

    /// How many times the connection was re-opened.
    pub(crate) async fn reconnects(&self) -> u64 {
        self.state.lock().await.reconnects
    }

    /// Unbinds and closes the connection.
    pub(crate) async fn close(&self) {
        let conn = self.state.lock().await.conn.take();
        if let Some((ldap, drive)) = conn {
            close(ldap, drive).await;
        }
    }
}

/// A small `deadpool::managed::Manager` for ldap3 (there is no stock one):
/// connects with ldap3's own connect (as `bb8-ldap` does, no bind), and on
/// recycle either reads the root DSE (`verify`, the same check `bb8-ldap`
/// runs on check-out) or checks nothing.
pub(crate) struct DeadpoolLdap {
    pub(crate) url: String,
    pub(crate) verify: bool,
}

impl deadpool::managed::Manager for DeadpoolLdap {
    type Type = Ldap;
    type Error = LdapError;

    async fn create(&self) -> Result<Ldap, LdapError> {
        let settings = LdapConnSettings::new().set_conn_timeout(CONNECT_TIMEOUT);
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url).await?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    async fn recycle(
        &self,
        ldap: &mut Ldap,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<LdapError> {
        if ldap.is_closed() {
            return Err(deadpool::managed::RecycleError::message(
                "connection closed",
            ));
        }
        if self.verify {
            ldap.with_timeout(Duration::from_secs(1))
                .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
                .await?
                .success()?;
        }
        Ok(())
    }
}
