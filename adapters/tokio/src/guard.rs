//! [`ConnGuard`]: one leased connection for several operations.

use std::collections::HashSet;

use ldap3::exop::Exop;
use ldap3::{Ldap, Mod, Scope, SearchEntry};
use ldapmux_core::{ConnId, ServerId, UserKind};
use ldapmux_driver::Lease;

use crate::connect::{classify, is_conn_dead, request_sent};
use crate::metrics::Outcome;
use crate::ops::{self, Op, Reply, not_conn_error, reply};
use crate::pool::LeaseKind;
use crate::{Error, Pool, SearchOptions, SearchResults};

/// One pooled connection leased for several operations, for when they must
/// run on the same connection (a read after a write on the same server, a
/// batch). It offers ldap3's operations but **no bind**: the connection stays
/// bound as the pool bound it. Each operation is bounded by the operation
/// timeout and is not retried. If the guard sees the connection die, it
/// reports it to the pool at once and every later call returns
/// [`Error::LeaseDead`]. Dropping the guard gives the connection back.
pub struct ConnGuard {
    pool: Pool,
    lease: Option<Lease>,
    ldap: Ldap,
    server: ServerId,
    kind: LeaseKind,
    dead: Option<String>,
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGuard")
            .field("conn", &self.lease.as_ref().map(Lease::conn))
            .field("server", &self.server)
            .field("kind", &self.kind)
            .field("dead", &self.dead)
            .finish()
    }
}

impl ConnGuard {
    pub(crate) fn new(
        pool: Pool,
        lease: Lease,
        ldap: Ldap,
        server: ServerId,
        kind: LeaseKind,
    ) -> Self {
        ConnGuard {
            pool,
            lease: Some(lease),
            ldap,
            server,
            kind,
            dead: None,
        }
    }

    /// The pool's id of the leased connection.
    pub fn conn(&self) -> Option<ConnId> {
        self.lease.as_ref().map(Lease::conn)
    }

    /// The server the connection goes to.
    pub fn server(&self) -> ServerId {
        self.server
    }

    /// The server's URL.
    pub fn server_url(&self) -> String {
        self.pool.server_url(self.server).unwrap_or_default()
    }

    /// Searches (see [`Pool::search`]).
    pub async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, Error> {
        let op = Op::Search {
            base,
            scope,
            filter,
            attrs,
            options: &crate::search::PLAIN,
            page: None,
        };
        Ok(reply!(self.call(&op).await?, Found).entries)
    }

    /// Searches with options (see [`Pool::search_with`]), on this connection.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::{LeaseKind, Scope, SearchOptions};
    /// let mut conn = pool.lease(LeaseKind::Read).await?;
    /// let options = SearchOptions::new().size_limit(1);
    /// let found = conn.search_with("dc=example,dc=com", Scope::Base, "(objectClass=*)", &["1.1"], &options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn search_with(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &SearchOptions,
    ) -> Result<SearchResults, Error> {
        if matches!(options.page_size, Some(Some(_))) {
            return Err(Error::InvalidRequest(
                "a lease is a shared connection and its searches are unpaged: \
                 a paged search needs a connection of its own (Pool::search_with)"
                    .into(),
            ));
        }
        let op = Op::Search {
            base,
            scope,
            filter,
            attrs,
            options,
            page: None,
        };
        Ok(reply!(self.call(&op).await?, Found))
    }

    /// Compares (see [`Pool::compare`]).
    pub async fn compare(
        &mut self,
        dn: &str,
        attr: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        let op = Op::Compare {
            dn,
            attr,
            value: value.as_ref(),
        };
        Ok(reply!(self.call(&op).await?, Bool))
    }

    /// Adds (write lease only; see [`Pool::add`](crate::Pool::add)).
    pub async fn add<S: AsRef<[u8]> + Eq + std::hash::Hash>(
        &mut self,
        dn: &str,
        attrs: Vec<(S, HashSet<S>)>,
    ) -> Result<(), Error> {
        let attrs = crate::ops::owned_attrs(attrs);
        self.call(&Op::Add { dn, attrs }).await.map(drop)
    }

    /// Modifies (write lease only; see [`Pool::modify`](crate::Pool::modify)).
    pub async fn modify<S: AsRef<[u8]> + Eq + std::hash::Hash>(
        &mut self,
        dn: &str,
        mods: Vec<Mod<S>>,
    ) -> Result<(), Error> {
        let mods = crate::ops::owned_mods(mods);
        self.call(&Op::Modify { dn, mods }).await.map(drop)
    }

    /// Deletes (write lease only).
    pub async fn delete(&mut self, dn: &str) -> Result<(), Error> {
        self.call(&Op::Delete { dn }).await.map(drop)
    }

    /// Renames or moves (write lease only).
    pub async fn modify_dn(
        &mut self,
        dn: &str,
        rdn: &str,
        delete_old: bool,
        new_superior: Option<&str>,
    ) -> Result<(), Error> {
        let op = Op::ModifyDn {
            dn,
            rdn,
            delete_old,
            new_superior,
        };
        self.call(&op).await.map(drop)
    }

    /// An extended operation (not StartTLS, see [`Pool::extended`]).
    pub async fn extended(&mut self, exop: impl Into<Exop>) -> Result<Exop, Error> {
        Ok(reply!(self.call(&Op::Extended(exop.into())).await?, Exop))
    }

    /// "Who am I?" on this connection: the identity it is bound as.
    pub async fn whoami(&mut self) -> Result<String, Error> {
        Ok(reply!(self.call(&Op::WhoAmI).await?, Identity))
    }

    /// [`ConnGuard::try_call`], counted in
    /// [`OPERATIONS_TOTAL`](crate::metrics::OPERATIONS_TOTAL) by its outcome.
    async fn call(&mut self, op: &Op<'_>) -> Result<Reply, Error> {
        let result = self.try_call(op).await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::of_error(e),
        };
        self.pool.record_op(op.name(), outcome);
        result
    }

    async fn try_call(&mut self, op: &Op<'_>) -> Result<Reply, Error> {
        op.check()?;
        let name = op.name();
        if let Some(why) = &self.dead {
            return Err(Error::LeaseDead(why.clone()));
        }
        let write = op.kind() == UserKind::Write;
        if write && self.kind != LeaseKind::Write {
            return Err(Error::InvalidRequest(format!(
                "{name} on a read lease; lease with LeaseKind::Write"
            )));
        }
        let timeout = self.pool.op_timeout();
        let paging = self.pool.paging(self.server);
        match tokio::time::timeout(timeout, ops::exec(op, &mut self.ldap, &paging)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) if is_conn_dead(&e) => {
                let sent = request_sent(&e);
                let error = classify(&e);
                self.dead = Some(error.to_string());
                if let Some(lease) = self.lease.take() {
                    let _ = self.pool.report_dead(lease, error.clone(), sent).await;
                }
                if write && sent {
                    return Err(self
                        .pool
                        .outcome_unknown(name, self.server, error.to_string()));
                }
                Err(Error::LeaseDead(error.to_string()))
            }
            Ok(Err(e)) => Err(not_conn_error(e)),
            Err(_) => {
                self.dead = Some(format!("{name} timed out"));
                ops::abandon_timed_out(op, &self.ldap);
                if let Some(lease) = self.lease.take() {
                    self.pool
                        .retire_after_timeout(lease, self.server, name, timeout);
                }
                if write {
                    return Err(self.pool.outcome_unknown(
                        name,
                        self.server,
                        format!("no answer within {timeout:?}"),
                    ));
                }
                Err(Error::Timeout {
                    operation: name,
                    after: timeout,
                })
            }
        }
    }
}
