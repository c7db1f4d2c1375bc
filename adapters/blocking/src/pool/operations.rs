//! The pool's LDAP operations, each the blocking twin of the
//! [`ldapmux::Pool`] method of the same name (same arguments, same result).

use std::collections::HashSet;
use std::hash::Hash;

use ldapmux::ldap3::exop::Exop;
use ldapmux::{
    AuthOutcome, Error, LeaseKind, Mod, Password, PasswordChange, Scope, SearchEntry,
    SearchOptions, SearchResults,
};

use super::Pool;
use crate::{ConnGuard, Entries};

impl Pool {
    /// Searches and returns every entry (see [`ldapmux::Pool::search`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::Scope;
    /// let found = pool.search("ou=people,dc=example,dc=com", Scope::OneLevel, "(uid=alice)", &["cn", "mail"])?;
    /// for entry in &found {
    ///     println!("{} {:?}", entry.dn, entry.attrs.get("mail"));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, Error> {
        self.run(async |p| p.search(base, scope, filter, attrs).await)
    }

    /// A search read entry by entry on one connection (behaviour 10; see
    /// [`ldapmux::Pool::streaming_search`]): the entries as a blocking
    /// [`Iterator`] where the async pool gives a `Stream`.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::Scope;
    /// for entry in pool.streaming_search("ou=people,dc=example,dc=com", Scope::Subtree, "(objectClass=posixAccount)", &["uid"])? {
    ///     println!("{}", entry?.dn);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn streaming_search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Entries, Error> {
        let (instance, pool) = self.for_operation()?;
        let stream = instance.block_on(pool.streaming_search(base, scope, filter, attrs))?;
        Ok(Entries::new(instance, stream))
    }

    /// Searches with options and returns the entries, the continuation
    /// references and the response controls (see
    /// [`ldapmux::Pool::search_with`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{Scope, SearchOptions};
    /// let options = SearchOptions::new().size_limit(10);
    /// let found = pool.search_with("ou=people,dc=example,dc=com", Scope::OneLevel, "(uid=a*)", &["cn"], &options)?;
    /// println!("{} entries", found.entries.len());
    /// # Ok(()) }
    /// ```
    pub fn search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &SearchOptions,
    ) -> Result<SearchResults, Error> {
        self.run(async |p| p.search_with(base, scope, filter, attrs, options).await)
    }

    /// A streaming search with options (see
    /// [`ldapmux::Pool::streaming_search_with`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{Scope, SearchOptions};
    /// let options = SearchOptions::new().page_size(Some(1000));
    /// let mut entries = pool.streaming_search_with("ou=people,dc=example,dc=com", Scope::Subtree, "(uid=*)", &["uid"], &options)?;
    /// for entry in entries.by_ref() {
    ///     println!("{}", entry?.dn);
    /// }
    /// println!("referrals: {:?}", entries.referrals());
    /// # Ok(()) }
    /// ```
    pub fn streaming_search_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        options: &SearchOptions,
    ) -> Result<Entries, Error> {
        let (instance, pool) = self.for_operation()?;
        let stream =
            instance.block_on(pool.streaming_search_with(base, scope, filter, attrs, options))?;
        Ok(Entries::new(instance, stream))
    }

    /// Compares an attribute value: `Ok(true)` if equal (see
    /// [`ldapmux::Pool::compare`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let is_admin = pool.compare("cn=admins,ou=groups,dc=example,dc=com", "memberUid", "alice")?;
    /// # Ok(()) }
    /// ```
    pub fn compare(&self, dn: &str, attr: &str, value: impl AsRef<[u8]>) -> Result<bool, Error> {
        let value = value.as_ref();
        self.run(async |p| p.compare(dn, attr, value).await)
    }

    /// Adds an entry (see [`ldapmux::Pool::add`]: never retried once sent).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), ldapmux_blocking::Error> {
    /// use std::collections::HashSet;
    /// pool.add(
    ///     "uid=carol,ou=people,dc=example,dc=com",
    ///     vec![
    ///         ("objectClass", HashSet::from(["inetOrgPerson"])),
    ///         ("cn", HashSet::from(["Carol"])),
    ///         ("sn", HashSet::from(["Example"])),
    ///     ],
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn add<S: AsRef<[u8]> + Eq + Hash>(
        &self,
        dn: &str,
        attrs: Vec<(S, HashSet<S>)>,
    ) -> Result<(), Error> {
        self.run(async |p| p.add(dn, attrs).await)
    }

    /// Modifies an entry (see [`ldapmux::Pool::modify`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), ldapmux_blocking::Error> {
    /// use std::collections::HashSet;
    /// use ldapmux_blocking::Mod;
    /// let dn = "uid=carol,ou=people,dc=example,dc=com";
    /// pool.modify(dn, vec![Mod::Replace("mail", HashSet::from(["carol@example.com"]))])?;
    /// # Ok(()) }
    /// ```
    pub fn modify<S: AsRef<[u8]> + Eq + Hash>(
        &self,
        dn: &str,
        mods: Vec<Mod<S>>,
    ) -> Result<(), Error> {
        self.run(async |p| p.modify(dn, mods).await)
    }

    /// Deletes an entry (see [`ldapmux::Pool::delete`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.delete("uid=carol,ou=people,dc=example,dc=com")?;
    /// # Ok(()) }
    /// ```
    pub fn delete(&self, dn: &str) -> Result<(), Error> {
        self.run(async |p| p.delete(dn).await)
    }

    /// Renames or moves an entry (see [`ldapmux::Pool::modify_dn`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// pool.modify_dn("uid=carol,ou=people,dc=example,dc=com", "uid=caroline", true, None)?;
    /// # Ok(()) }
    /// ```
    pub fn modify_dn(
        &self,
        dn: &str,
        rdn: &str,
        delete_old: bool,
        new_superior: Option<&str>,
    ) -> Result<(), Error> {
        self.run(async |p| p.modify_dn(dn, rdn, delete_old, new_superior).await)
    }

    /// Runs an extended operation on a read connection and returns the
    /// server's response (see [`ldapmux::Pool::extended`]; not StartTLS).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::ldap3::exop::WhoAmI;
    /// let answer = pool.extended(WhoAmI)?;
    /// println!("{:?}", answer.val);
    /// # Ok(()) }
    /// ```
    pub fn extended(&self, exop: impl Into<Exop>) -> Result<Exop, Error> {
        let exop = exop.into();
        self.run(async |p| p.extended(exop).await)
    }

    /// "Who am I?" (RFC 4532) on a pooled read connection (see
    /// [`ldapmux::Pool::whoami`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// let me = pool.whoami()?; // "" when bound anonymously
    /// # Ok(()) }
    /// ```
    pub fn whoami(&self) -> Result<String, Error> {
        self.run(async |p| p.whoami().await)
    }

    /// Checks a password on one of the server's bind connections and
    /// returns the password policy's verdict (see
    /// [`ldapmux::Pool::authenticate`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{AuthOutcome, Password};
    /// let verdict = pool.authenticate("uid=alice,ou=people,dc=example,dc=com", &Password::new("alices-pw"))?;
    /// if verdict == AuthOutcome::AccountLocked { println!("locked"); }
    /// # Ok(()) }
    /// ```
    pub fn authenticate(&self, dn: &str, password: &Password) -> Result<AuthOutcome, Error> {
        self.run(async |p| p.authenticate(dn, password).await)
    }

    /// Changes a password as its user, with the policy's refusal reasons
    /// (see [`ldapmux::Pool::change_password`]).
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{Password, PasswordChange};
    /// let dn = "uid=alice,ou=people,dc=example,dc=com";
    /// let done = pool.change_password(dn, &Password::new("alices-pw"), &Password::new("a new passphrase"))?;
    /// assert_eq!(done, PasswordChange::Changed);
    /// # Ok(()) }
    /// ```
    pub fn change_password(
        &self,
        dn: &str,
        old: &Password,
        new: &Password,
    ) -> Result<PasswordChange, Error> {
        self.run(async |p| p.change_password(dn, old, new).await)
    }

    /// Leases one connection for several operations ([`ConnGuard`]; see
    /// [`ldapmux::Pool::lease`]). The lease ends when the guard is dropped.
    ///
    /// ```no_run
    /// # fn f(pool: ldapmux_blocking::Pool) -> Result<(), Box<dyn std::error::Error>> {
    /// use ldapmux_blocking::{LeaseKind, Scope};
    /// let mut conn = pool.lease(LeaseKind::Read)?;
    /// let a = conn.search("dc=example,dc=com", Scope::Base, "(objectClass=*)", &["1.1"])?;
    /// let b = conn.whoami()?; // the same connection, on the same server
    /// println!("{} served both", conn.server_url());
    /// # Ok(()) }
    /// ```
    pub fn lease(&self, kind: LeaseKind) -> Result<ConnGuard, Error> {
        let (instance, pool) = self.for_operation()?;
        let guard = instance.block_on(pool.lease(kind))?;
        Ok(ConnGuard::new(instance, guard))
    }
}
