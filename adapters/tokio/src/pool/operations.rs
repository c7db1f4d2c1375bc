//! The pool's LDAP operations: each asks for a connection of its kind,
//! runs once or retries as [`crate::retry`] decides, and gives the
//! connection back.

use std::collections::HashSet;
use std::hash::Hash;
use std::num::NonZeroU32;

use ldap3::exop::Exop;
use ldap3::{Mod, Scope, SearchEntry};

use super::{LeaseKind, Pool};
use ldapmux_core::{ServerId, UserKind};

use crate::ops::{Op, reply};
use crate::paging::Paging;
use crate::search::{self, SearchOptions, SearchResults};
use crate::{ConnGuard, EntryStream, Error};

impl Pool {
    /// Searches and returns every entry. A result other than success
    /// (noSuchObject, sizeLimitExceeded, …) is [`Error::Ldap`].
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::Scope;
    /// let found = pool.search("ou=people,dc=example,dc=com", Scope::OneLevel, "(uid=alice)", &["cn", "mail"]).await?;
    /// for entry in &found {
    ///     println!("{} {:?}", entry.dn, entry.attrs.get("mail"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, Error> {
        Ok(self
            .search_with(base, scope, filter, attrs, &search::PLAIN)
            .await?
            .entries)
    }

    /// Searches with [`SearchOptions`] (limits, alias dereferencing, types
    /// only, request controls, the page size) and returns the entries with
    /// what the answer carried besides them: the continuation references
    /// and the response controls. A result other than success is
    /// [`Error::Ldap`] with the server's code: `sizeLimitExceeded` (4),
    /// `timeLimitExceeded` (3), `unavailableCriticalExtension` (12) for a
    /// critical control the server does not know.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::{Scope, SearchOptions, ldap_escape};
    /// let name = "O'Brien (sales)";
    /// let filter = format!("(cn={})", ldap_escape(name));
    /// let options = SearchOptions::new().size_limit(10);
    /// let found = pool.search_with("dc=example,dc=com", Scope::Subtree, &filter, &["mail"], &options).await?;
    /// println!("{} entries, {} referrals", found.entries.len(), found.referrals.len());
    /// # Ok(()) }
    /// ```
    pub async fn search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &SearchOptions,
    ) -> Result<SearchResults, Error> {
        if options.follow_referrals > 0 {
            options.check()?;
            return self
                .search_following(base, scope, filter, attrs, options)
                .await;
        }
        let op = |page| Op::Search {
            base,
            scope,
            filter,
            attrs,
            options,
            page,
        };
        let pool_page = self.inner.shared.settings().page_size;
        match options.page_size {
            Some(size) => Ok(reply!(
                self.run(&op(size.and_then(NonZeroU32::new))).await?,
                Found
            )),
            // The pool's setting: unpaged first, on a shared connection;
            // paged, on a connection of its own, only when the server
            // capped the answer (a limit of the caller's own is no cap).
            None => match self.run(&op(None)).await {
                Err(Error::Ldap(status))
                    if status.rc == 4 && options.size_limit == 0 && pool_page.is_some() =>
                {
                    tracing::debug!(base, filter, "the server capped an unpaged search: paging");
                    Ok(reply!(self.run(&op(pool_page)).await?, Found))
                }
                result => Ok(reply!(result?, Found)),
            },
        }
    }

    /// Searches and streams the entries, keeping one connection for the
    /// whole enumeration (behaviour 10). The first entry is read before this
    /// returns, within the operation timeout: until then a dead connection
    /// is retried like any read (behaviour 9). If the connection dies later,
    /// the next item is the error and the stream ends.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::Scope;
    /// let mut stream = pool.streaming_search("ou=people,dc=example,dc=com", Scope::Subtree, "(objectClass=posixAccount)", &["uid"]).await?;
    /// while let Some(entry) = stream.next_entry().await {
    ///     println!("{}", entry?.dn);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn streaming_search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<EntryStream, Error> {
        self.streaming_search_with(base, scope, filter, attrs, &search::PLAIN)
            .await
    }

    /// [`Pool::streaming_search`] with [`SearchOptions`]; the stream's
    /// [`EntryStream::referrals`] and [`EntryStream::controls`] give what
    /// the answer carried besides the entries once it has ended.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::{Scope, SearchOptions};
    /// let options = SearchOptions::new().page_size(Some(1000)).types_only(true);
    /// let mut stream = pool.streaming_search_with("dc=example,dc=com", Scope::Subtree, "(objectClass=*)", &["cn"], &options).await?;
    /// while let Some(entry) = stream.next_entry().await {
    ///     println!("{}", entry?.dn);
    /// }
    /// println!("referrals: {:?}", stream.referrals());
    /// # Ok(()) }
    /// ```
    pub async fn streaming_search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &SearchOptions,
    ) -> Result<EntryStream, Error> {
        let page = match options.page_size {
            Some(size) => size.and_then(NonZeroU32::new),
            None => self.inner.shared.settings().page_size,
        };
        let op = Op::StartSearch {
            base,
            scope,
            filter,
            attrs,
            options,
            page,
        };
        let (reply, lease, _, server) = self.acquire_and_run(&op).await?;
        Ok(EntryStream::new(
            self.clone(),
            reply!(reply, Stream),
            lease,
            server,
        ))
    }

    /// Compares an attribute value: `Ok(true)` if equal.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let is_admin = pool.compare("cn=admins,ou=groups,dc=example,dc=com", "memberUid", "alice").await?;
    /// # Ok(()) }
    /// ```
    pub async fn compare(
        &self,
        dn: &str,
        attr: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<bool, Error> {
        let op = Op::Compare {
            dn,
            attr,
            value: value.as_ref(),
        };
        Ok(reply!(self.run(&op).await?, Bool))
    }

    /// Adds an entry. Never retried once sent: if the connection dies after
    /// the request may have reached the server, [`Error::OutcomeUnknown`].
    /// Names and values are any string-like type, as in ldap3.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), ldapmux::Error> {
    /// use std::collections::HashSet;
    /// pool.add(
    ///     "uid=carol,ou=people,dc=example,dc=com",
    ///     vec![
    ///         ("objectClass", HashSet::from(["inetOrgPerson"])),
    ///         ("cn", HashSet::from(["Carol"])),
    ///         ("sn", HashSet::from(["Example"])),
    ///     ],
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn add<S: AsRef<[u8]> + Eq + Hash>(
        &self,
        dn: &str,
        attrs: Vec<(S, HashSet<S>)>,
    ) -> Result<(), Error> {
        let attrs = crate::ops::owned_attrs(attrs);
        self.run(&Op::Add { dn, attrs }).await.map(drop)
    }

    /// Modifies an entry (see [`Pool::add`] for the retry rule).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), ldapmux::Error> {
    /// use std::collections::HashSet;
    /// use ldapmux::Mod;
    /// let dn = "uid=carol,ou=people,dc=example,dc=com";
    /// pool.modify(dn, vec![Mod::Replace("mail", HashSet::from(["carol@example.com"]))])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn modify<S: AsRef<[u8]> + Eq + Hash>(
        &self,
        dn: &str,
        mods: Vec<Mod<S>>,
    ) -> Result<(), Error> {
        let mods = crate::ops::owned_mods(mods);
        self.run(&Op::Modify { dn, mods }).await.map(drop)
    }

    /// Deletes an entry (see [`Pool::add`] for the retry rule).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.delete("uid=carol,ou=people,dc=example,dc=com").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, dn: &str) -> Result<(), Error> {
        self.run(&Op::Delete { dn }).await.map(drop)
    }

    /// Renames or moves an entry (see [`Pool::add`] for the retry rule).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.modify_dn("uid=carol,ou=people,dc=example,dc=com", "uid=caroline", true, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn modify_dn(
        &self,
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
        self.run(&op).await.map(drop)
    }

    /// Runs an extended operation on a read connection and returns the
    /// server's response. Not StartTLS (refused: use [`PoolBuilder::starttls`](crate::PoolBuilder::starttls)).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::ldap3::exop::WhoAmI;
    /// let answer = pool.extended(WhoAmI).await?;
    /// println!("{:?}", answer.val);
    /// # Ok(()) }
    /// ```
    pub async fn extended(&self, exop: impl Into<Exop>) -> Result<Exop, Error> {
        Ok(reply!(self.run(&Op::Extended(exop.into())).await?, Exop))
    }

    /// "Who am I?" (RFC 4532) on a read connection: the identity the pooled
    /// connection is bound as (`dn:…`, or empty for anonymous).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let me = pool.whoami().await?; // "" when bound anonymously
    /// # Ok(()) }
    /// ```
    pub async fn whoami(&self) -> Result<String, Error> {
        Ok(reply!(self.run(&Op::WhoAmI).await?, Identity))
    }

    /// Checks a password with a simple bind as `dn`, carrying the password
    /// policy request control, and returns the server's verdict: accepted
    /// (with an expiry warning or the grace logins left, when the server
    /// says), invalid credentials, account locked, password expired, or
    /// must change now ([`AuthOutcome`](crate::AuthOutcome)).
    ///
    /// The check runs on one of the server's bind connections (behaviour 1,
    /// as the pool keeps it): used by one check at a time, re-bound by each,
    /// never given to a search or a write, closed when a bind's answer is
    /// neither success nor invalidCredentials (that answer is returned as
    /// [`Error::Ldap`]). [`PoolBuilder::bind_connections_per_server`](crate::PoolBuilder::bind_connections_per_server)
    /// sets how many (0: a fresh connection per check, closed after).
    /// An empty password is refused without asking the server (an empty
    /// simple bind is unauthenticated and would "succeed").
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::{AuthOutcome, Password};
    /// let dn = "uid=alice,ou=people,dc=example,dc=com";
    /// match pool.authenticate(dn, &Password::new("alices-pw")).await? {
    ///     AuthOutcome::Accepted { grace_logins_left: Some(n), .. } => println!("expired: {n} logins left"),
    ///     AuthOutcome::Accepted { .. } => println!("welcome"),
    ///     AuthOutcome::MustChange => println!("change your password now"),
    ///     AuthOutcome::AccountLocked => println!("locked"),
    ///     other => println!("refused: {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn authenticate(
        &self,
        dn: &str,
        password: &crate::Password,
    ) -> Result<crate::AuthOutcome, Error> {
        let op = Op::Bind { dn, password };
        Ok(reply!(self.run(&op).await?, Auth))
    }

    /// Changes `dn`'s password from `old` to `new` as that user: a check of
    /// `old` ([`Pool::authenticate`]'s, a reset password that must change
    /// included), then the Password Modify extended operation (RFC 3062)
    /// with the old password and the password policy request control, on
    /// the same bind connection. A refusal by the server's policy (too
    /// short, in history, too young, not good enough) comes back with its
    /// reason ([`PasswordChange::Refused`](crate::PasswordChange::Refused)).
    ///
    /// Active Directory (Windows or Samba) has no Password Modify: when the
    /// server answers it "not supported" and its root DSE names it AD, the
    /// change is AD's own, a modify of `unicodePwd` deleting the old value
    /// and adding the new. Windows takes it only over `ldaps://` or
    /// StartTLS. Its refusal is constraintViolation `0000052D`, whose reason
    /// Samba names (too young, too short, in history, not complex enough:
    /// read as the [`PolicyError`](crate::PolicyError) they are) and
    /// Windows does not (`reason: None`).
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::{Password, PasswordChange, PolicyError};
    /// let dn = "uid=alice,ou=people,dc=example,dc=com";
    /// let (old, new) = (Password::new("alices-pw"), Password::new("a longer passphrase"));
    /// match pool.change_password(dn, &old, &new).await? {
    ///     PasswordChange::Changed => println!("changed"),
    ///     PasswordChange::Refused { reason: Some(PolicyError::PasswordInHistory), .. } => println!("used before"),
    ///     other => println!("not changed: {other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn change_password(
        &self,
        dn: &str,
        old: &crate::Password,
        new: &crate::Password,
    ) -> Result<crate::PasswordChange, Error> {
        let op = Op::ChangePassword { dn, old, new };
        Ok(reply!(self.run(&op).await?, PasswordChange))
    }

    /// Leases one connection for several operations ([`ConnGuard`](crate::ConnGuard)). The
    /// lease ends when the guard is dropped.
    ///
    /// ```no_run
    /// # async fn f(pool: ldapmux::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux::{LeaseKind, Scope};
    /// let mut conn = pool.lease(LeaseKind::Read).await?;
    /// let a = conn.search("dc=example,dc=com", Scope::Base, "(objectClass=*)", &["1.1"]).await?;
    /// let b = conn.whoami().await?; // the same connection, on the same server
    /// println!("{} served both", conn.server_url());
    /// # Ok(()) }
    /// ```
    pub async fn lease(&self, kind: LeaseKind) -> Result<ConnGuard, Error> {
        let user_kind = match kind {
            LeaseKind::Read => UserKind::Search,
            LeaseKind::Write => UserKind::Write,
        };
        let (_, lease, ldap, server) = self.acquire_and_run(&Op::Lease(user_kind)).await?;
        Ok(ConnGuard::new(self.clone(), lease, ldap, server, kind))
    }

    /// How a search on `server` pages under the current settings (for a
    /// [`ConnGuard`], whose operations run outside the retry loop).
    pub(crate) fn paging(&self, server: ServerId) -> Paging<'_> {
        self.inner
            .shared
            .paging(&self.inner.shared.settings(), server)
    }
}
