//! [`ConnGuard`]: one leased connection for several blocking operations,
//! the twin of [`ldapmux::ConnGuard`].

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

use ldapmux::ldap3::exop::Exop;
use ldapmux::status::{ConnId, ServerId};
use ldapmux::{Error, Mod, Scope, SearchEntry};

use crate::instance::Instance;

/// One pooled connection leased for several operations, from
/// [`Pool::lease`](crate::Pool::lease): the blocking twin of
/// [`ldapmux::ConnGuard`] (no bind; each operation bounded by the operation
/// timeout and not retried; after the connection dies every call returns
/// [`Error::LeaseDead`]). Dropping the guard gives the connection back.
///
/// In a child process after a fork the connection is the parent's: every
/// call returns [`Error::Pool`]`(Forked)`, and dropping the guard leaves the
/// parent's connection alone.
pub struct ConnGuard {
    /// `None` only while being dropped.
    leased: Option<Leased>,
    server: ServerId,
    /// Asked once, in the process that leased: the child must not ask the
    /// parent's pool.
    server_url: String,
}

struct Leased {
    instance: Arc<Instance>,
    guard: ldapmux::ConnGuard,
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGuard")
            .field("conn", &self.conn())
            .field("server", &self.server)
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

impl ConnGuard {
    pub(crate) fn new(instance: Arc<Instance>, guard: ldapmux::ConnGuard) -> ConnGuard {
        ConnGuard {
            server: guard.server(),
            server_url: guard.server_url(),
            leased: Some(Leased { instance, guard }),
        }
    }

    /// Runs `f` on the async guard, on the calling thread.
    fn call<T>(
        &mut self,
        f: impl AsyncFnOnce(&mut ldapmux::ConnGuard) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Leased { instance, guard } = self.leased.as_mut().expect("present until dropped");
        if instance.forked() {
            return Err(Error::Pool {
                source: ldapmux::PoolError::Forked,
                server: None,
            });
        }
        instance.block_on(f(guard))
    }

    /// The pool's id of the leased connection (`None` once the guard saw
    /// it die; see [`ldapmux::ConnGuard::conn`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = pool.lease(ldapmux_blocking::LeaseKind::Read)?;
    /// println!("leased {:?}", conn.conn());
    /// # Ok(()) }
    /// ```
    pub fn conn(&self) -> Option<ConnId> {
        self.leased.as_ref().and_then(|l| l.guard.conn())
    }

    /// The server the connection goes to.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = pool.lease(ldapmux_blocking::LeaseKind::Read)?;
    /// assert_eq!(pool.server_url(conn.server()), Some(conn.server_url()));
    /// # Ok(()) }
    /// ```
    pub fn server(&self) -> ServerId {
        self.server
    }

    /// The server's URL.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let conn = pool.lease(ldapmux_blocking::LeaseKind::Read)?;
    /// println!("on {}", conn.server_url());
    /// # Ok(()) }
    /// ```
    pub fn server_url(&self) -> String {
        self.server_url.clone()
    }

    /// Searches on this connection (see [`ldapmux::ConnGuard::search`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{LeaseKind, Scope};
    /// let mut conn = pool.lease(LeaseKind::Read)?;
    /// let root = conn.search("", Scope::Base, "(objectClass=*)", &["namingContexts"])?;
    /// # Ok(()) }
    /// ```
    pub fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, Error> {
        self.call(async |g| g.search(base, scope, filter, attrs).await)
    }

    /// Searches with options on this connection (see
    /// [`ldapmux::ConnGuard::search_with`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{LeaseKind, Scope, SearchOptions};
    /// let mut conn = pool.lease(LeaseKind::Read)?;
    /// let found = conn.search_with("", Scope::Base, "(objectClass=*)", &["supportedControl"], &SearchOptions::new())?;
    /// # Ok(()) }
    /// ```
    pub fn search_with(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &ldapmux::SearchOptions,
    ) -> Result<ldapmux::SearchResults, Error> {
        self.call(async |g| g.search_with(base, scope, filter, attrs, options).await)
    }

    /// Compares on this connection (see [`ldapmux::ConnGuard::compare`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Read)?;
    /// let member = conn.compare("cn=admins,ou=groups,dc=example,dc=com", "memberUid", "alice")?;
    /// # Ok(()) }
    /// ```
    pub fn compare(
        &mut self,
        dn: &str,
        attr: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        let value = value.as_ref();
        self.call(async |g| g.compare(dn, attr, value).await)
    }

    /// Adds (write lease only; see [`ldapmux::ConnGuard::add`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::collections::HashSet;
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Write)?;
    /// conn.add(
    ///     "uid=carol,ou=people,dc=example,dc=com",
    ///     vec![("objectClass", HashSet::from(["inetOrgPerson"])), ("cn", HashSet::from(["Carol"])), ("sn", HashSet::from(["Example"]))],
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn add<S: AsRef<[u8]> + Eq + Hash>(
        &mut self,
        dn: &str,
        attrs: Vec<(S, HashSet<S>)>,
    ) -> Result<(), Error> {
        self.call(async |g| g.add(dn, attrs).await)
    }

    /// Modifies (write lease only; see [`ldapmux::ConnGuard::modify`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::collections::HashSet;
    /// use ldapmux_blocking::Mod;
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Write)?;
    /// let dn = "uid=carol,ou=people,dc=example,dc=com";
    /// conn.modify(dn, vec![Mod::Replace("mail", HashSet::from(["carol@example.com"]))])?;
    /// let read_back = conn.search(dn, ldapmux_blocking::Scope::Base, "(objectClass=*)", &["mail"])?;
    /// # Ok(()) }
    /// ```
    pub fn modify<S: AsRef<[u8]> + Eq + Hash>(
        &mut self,
        dn: &str,
        mods: Vec<Mod<S>>,
    ) -> Result<(), Error> {
        self.call(async |g| g.modify(dn, mods).await)
    }

    /// Deletes (write lease only; see [`ldapmux::ConnGuard::delete`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Write)?;
    /// conn.delete("uid=carol,ou=people,dc=example,dc=com")?;
    /// # Ok(()) }
    /// ```
    pub fn delete(&mut self, dn: &str) -> Result<(), Error> {
        self.call(async |g| g.delete(dn).await)
    }

    /// Renames or moves (write lease only; see
    /// [`ldapmux::ConnGuard::modify_dn`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Write)?;
    /// conn.modify_dn("uid=carol,ou=people,dc=example,dc=com", "uid=caroline", true, None)?;
    /// # Ok(()) }
    /// ```
    pub fn modify_dn(
        &mut self,
        dn: &str,
        rdn: &str,
        delete_old: bool,
        new_superior: Option<&str>,
    ) -> Result<(), Error> {
        self.call(async |g| g.modify_dn(dn, rdn, delete_old, new_superior).await)
    }

    /// An extended operation on this connection (not StartTLS; see
    /// [`ldapmux::ConnGuard::extended`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::ldap3::exop::WhoAmI;
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Read)?;
    /// let answer = conn.extended(WhoAmI)?;
    /// # Ok(()) }
    /// ```
    pub fn extended(&mut self, exop: impl Into<Exop>) -> Result<Exop, Error> {
        let exop = exop.into();
        self.call(async |g| g.extended(exop).await)
    }

    /// "Who am I?" on this connection: the identity it is bound as.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut conn = pool.lease(ldapmux_blocking::LeaseKind::Read)?;
    /// println!("bound as {:?}", conn.whoami()?);
    /// # Ok(()) }
    /// ```
    pub fn whoami(&mut self) -> Result<String, Error> {
        self.call(async |g| g.whoami().await)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(leased) = self.leased.take()
            && leased.instance.forked()
        {
            // The lease and the runtime are the parent's: giving the
            // connection back would touch the parent's pool from here.
            std::mem::forget(leased);
        }
    }
}
