//! The LDAP operations as values: an [`Op`] says what to send, [`exec`] sends
//! it on one ldap3 handle and gives a [`Reply`]. [`Pool`] (one operation per
//! lease, with retries) and [`ConnGuard`] (several on one lease) both run
//! them. Non-success results become `LdapError::LdapResult` here, which the
//! callers turn into [`Error::Ldap`]: a result, not a connection failure.
//!
//! [`Pool`]: crate::Pool
//! [`ConnGuard`]: crate::ConnGuard
//! [`Error::Ldap`]: crate::Error::Ldap

use std::collections::HashSet;
use std::num::NonZeroU32;

use ldap3::exop::{Exop, WhoAmI};
use ldap3::{Ldap, LdapError, Mod, ResultEntry, Scope, SearchEntry};
use ldapmux_core::UserKind;

use crate::error::LdapStatus;
use crate::paging::{PagedSearch, Paging, Query};
use crate::search::{SearchOptions, SearchResults};
use crate::{Error, Password};

/// A streaming search with its first item already read: inside the retry
/// loop, so that a search whose connection dies before its first entry is
/// retried like any read (behaviour 9). `first` is `None` when the search
/// ended without an entry (its result is read by `finish`).
pub(crate) struct Started {
    pub(crate) search: PagedSearch,
    pub(crate) first: Option<ResultEntry>,
}

const STARTTLS_OID: &str = "1.3.6.1.4.1.1466.20037";

/// One operation, borrowing what it sends from the caller's arguments (so a
/// retry can send it again, and a search costs no copies of its strings).
pub(crate) enum Op<'a> {
    Search {
        base: &'a str,
        scope: Scope,
        filter: &'a str,
        attrs: &'a [&'a str],
        options: &'a SearchOptions,
        /// Entries per page, resolved from the options and the pool's
        /// setting (`None`: unpaged). A paged `Search` runs on a private
        /// connection: slapd keeps one paging state per connection and
        /// refuses a second paged search beside it.
        page: Option<NonZeroU32>,
    },
    StartSearch {
        base: &'a str,
        scope: Scope,
        filter: &'a str,
        attrs: &'a [&'a str],
        options: &'a SearchOptions,
        /// Entries per page, resolved from the options and the pool's
        /// setting (`None`: unpaged), on the enumeration connection, which
        /// no other paging search holds (the core's `Request::paging`).
        page: Option<NonZeroU32>,
    },
    Compare {
        dn: &'a str,
        attr: &'a str,
        value: &'a [u8],
    },
    Add {
        dn: &'a str,
        attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)>,
    },
    Modify {
        dn: &'a str,
        mods: Vec<Mod<Vec<u8>>>,
    },
    Delete {
        dn: &'a str,
    },
    ModifyDn {
        dn: &'a str,
        rdn: &'a str,
        delete_old: bool,
        new_superior: Option<&'a str>,
    },
    Extended(Exop),
    WhoAmI,
    /// A password check: a bind sent by a user, on a bind (or private)
    /// connection, never on a shared one.
    Bind {
        dn: &'a str,
        password: &'a Password,
    },
    /// A password check, then Password Modify as that user, on the same
    /// bind (or private) connection.
    ChangePassword {
        dn: &'a str,
        old: &'a Password,
        new: &'a Password,
    },
    /// Nothing: take a connection for a [`ConnGuard`](crate::ConnGuard).
    Lease(UserKind),
}

/// What an [`Op`] gave back.
pub(crate) enum Reply {
    Found(SearchResults),
    Stream(Box<Started>),
    Bool(bool),
    Auth(crate::AuthOutcome),
    PasswordChange(crate::PasswordChange),
    Done,
    Exop(Exop),
    Identity(String),
}

impl Op<'_> {
    /// The operation's name, for spans and errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Search { .. } => "search",
            Op::StartSearch { .. } => "streaming_search",
            Op::Compare { .. } => "compare",
            Op::Add { .. } => "add",
            Op::Modify { .. } => "modify",
            Op::Delete { .. } => "delete",
            Op::ModifyDn { .. } => "modify_dn",
            Op::Extended(_) => "extended",
            Op::WhoAmI => "whoami",
            Op::Bind { .. } => "authenticate",
            Op::ChangePassword { .. } => "change_password",
            Op::Lease(_) => "lease",
        }
    }

    /// Whether it needs a connection of its own: a paged search (not an
    /// enumeration, which holds its shared enumeration connection for its
    /// whole length already).
    pub(crate) fn private(&self) -> bool {
        matches!(self, Op::Search { page: Some(_), .. })
    }

    /// Whether it runs a paged search on a shared connection: the core puts
    /// at most one such user on a connection (`Request::paging`), since a
    /// server keeps one paging state per connection.
    pub(crate) fn pages(&self) -> bool {
        matches!(self, Op::StartSearch { page: Some(_), .. })
    }

    /// The kind of pool user it is.
    pub(crate) fn kind(&self) -> UserKind {
        match self {
            Op::Search { .. } | Op::Compare { .. } | Op::Extended(_) | Op::WhoAmI => {
                UserKind::Search
            }
            Op::StartSearch { .. } => UserKind::Getent,
            Op::Add { .. } | Op::Modify { .. } | Op::Delete { .. } | Op::ModifyDn { .. } => {
                UserKind::Write
            }
            Op::Bind { .. } | Op::ChangePassword { .. } => UserKind::Auth,
            Op::Lease(kind) => *kind,
        }
    }

    /// Refuses what must never run on a pooled connection, before anything is sent.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self {
            Op::Extended(exop) if exop.name.as_deref() == Some(STARTTLS_OID) => {
                Err(Error::InvalidRequest(
                    "StartTLS on a pooled connection; use PoolBuilder::starttls".into(),
                ))
            }
            Op::Bind { password, .. } if password.is_empty() => Err(Error::InvalidRequest(
                "empty password: an empty simple bind is unauthenticated, refusing".into(),
            )),
            Op::Bind { dn, .. } | Op::ChangePassword { dn, .. } if dn.trim().is_empty() => {
                Err(Error::InvalidRequest("empty DN".into()))
            }
            Op::ChangePassword { old, new, .. } if old.is_empty() || new.is_empty() => {
                Err(Error::InvalidRequest(
                    "empty password: a change needs the old and the new one".into(),
                ))
            }
            // A paged search reads the root DSE (and may open a connection)
            // before it sends its filter: judge the filter first.
            Op::Search {
                filter,
                page: Some(_),
                ..
            }
            | Op::StartSearch {
                filter,
                page: Some(_),
                ..
            } if ldap3::parse_filter(filter).is_err() => {
                Err(Error::InvalidRequest("invalid search filter".into()))
            }
            Op::Search { options, .. } | Op::StartSearch { options, .. }
                if options.follow_referrals > 0 =>
            {
                Err(Error::InvalidRequest(
                    "referrals are followed by Pool::search_with only: a stream or a lease \
                     is one connection and gives the references back"
                        .into(),
                ))
            }
            Op::Search { options, .. } | Op::StartSearch { options, .. } => options.check(),
            _ => Ok(()),
        }
    }
}

/// Sends `op` on `ldap` (a connection to `paging.server`) and waits for its answer.
pub(crate) async fn exec(
    op: &Op<'_>,
    ldap: &mut Ldap,
    paging: &Paging<'_>,
) -> Result<Reply, LdapError> {
    Ok(match op {
        Op::Search {
            base,
            scope,
            filter,
            attrs,
            options,
            page,
        } => {
            // Every page on this connection; entries are kept until the
            // last page, so a retry after a dead connection starts afresh.
            let query = query(base, *scope, filter, attrs, options, *page);
            // Paged: on a private connection.
            let mut search = PagedSearch::start(ldap, query, paging).await?;
            let mut entries = Vec::new();
            while let Some(entry) = search.next().await? {
                entries.push(SearchEntry::construct(entry));
            }
            let (referrals, controls) = search.end();
            Reply::Found(SearchResults {
                entries,
                referrals,
                controls,
            })
        }
        Op::StartSearch {
            base,
            scope,
            filter,
            attrs,
            options,
            page,
        } => {
            let query = query(base, *scope, filter, attrs, options, *page);
            let mut search = PagedSearch::start(ldap, query, paging).await?;
            let first = search.next().await?;
            Reply::Stream(Box::new(Started { search, first }))
        }
        Op::Compare { dn, attr, value } => {
            Reply::Bool(ldap.compare(dn, attr, *value).await?.equal()?)
        }
        Op::Add { dn, attrs } => {
            ldap.add(dn, attrs.clone()).await?.success()?;
            Reply::Done
        }
        Op::Modify { dn, mods } => {
            ldap.modify(dn, mods.clone()).await?.success()?;
            Reply::Done
        }
        Op::Delete { dn } => {
            ldap.delete(dn).await?.success()?;
            Reply::Done
        }
        Op::ModifyDn {
            dn,
            rdn,
            delete_old,
            new_superior,
        } => {
            ldap.modifydn(dn, rdn, *delete_old, new_superior.as_deref())
                .await?
                .success()?;
            Reply::Done
        }
        Op::Extended(exop) => {
            let ldap3::result::ExopResult(exop, result) = ldap.extended(exop.clone()).await?;
            result.success()?;
            Reply::Exop(exop)
        }
        Op::WhoAmI => {
            // An anonymous connection may get no value at all (ldap3's parser
            // would panic on that), so read the bytes directly.
            let ldap3::result::ExopResult(exop, result) = ldap.extended(WhoAmI).await?;
            result.success()?;
            Reply::Identity(
                exop.val
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default(),
            )
        }
        Op::Bind { dn, password } => Reply::Auth(crate::auth::check(ldap, dn, password).await?),
        Op::ChangePassword { dn, old, new } => {
            Reply::PasswordChange(crate::auth::change(ldap, dn, old, new).await?)
        }
        Op::Lease(_) => Reply::Done,
    })
}

/// After `op` ran out of time on `ldap` (its future dropped): asks the
/// server to abandon it (RFC 4511 §4.11), so that it stops working on it.
/// The first poll queues the Abandon on the connection ahead of anything
/// sent later (such as the unbind of the connection being retired); an
/// Abandon has no answer to wait for. A search does this itself when
/// dropped ([`PagedSearch`]); a bind cannot be abandoned; a write's outcome
/// stays unknown either way.
pub(crate) fn abandon_timed_out(op: &Op<'_>, ldap: &Ldap) {
    if matches!(
        op,
        Op::Search { .. }
            | Op::StartSearch { .. }
            | Op::Bind { .. }
            | Op::ChangePassword { .. }
            | Op::Lease(_)
    ) {
        return;
    }
    let mut ldap = ldap.clone();
    let id = ldap.last_id();
    let _ = futures_util::FutureExt::now_or_never(ldap.abandon(id));
    tracing::debug!(op = op.name(), msgid = id, "timed-out operation abandoned");
}

/// The search as the pager keeps it (it outlives the caller's strings).
fn query(
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    options: &SearchOptions,
    page: Option<NonZeroU32>,
) -> Query {
    Query {
        base: base.to_owned(),
        scope,
        filter: filter.to_owned(),
        attrs: attrs.iter().map(|a| (*a).to_owned()).collect(),
        options: options.ldap3(),
        controls: options.controls.clone(),
        page_size: page,
    }
}

/// An error that is not a dead connection, as the caller sees it.
pub(crate) fn not_conn_error(e: LdapError) -> Error {
    match e {
        LdapError::LdapResult { result } => Error::Ldap(LdapStatus::of(result)),
        LdapError::FilterParsing => Error::InvalidRequest("invalid search filter".into()),
        LdapError::AddNoValues => {
            Error::InvalidRequest("an attribute of the entry has no value".into())
        }
        other => Error::InvalidRequest(other.to_string()),
    }
}

/// Unwraps the reply an operation is known to give.
macro_rules! reply {
    ($reply:expr, $variant:ident) => {
        match $reply {
            $crate::ops::Reply::$variant(v) => v,
            _ => unreachable!(concat!(
                "operation did not answer with ",
                stringify!($variant)
            )),
        }
    };
}
pub(crate) use reply;

/// An entry's attributes as [`Op::Add`] keeps them, from any string-like
/// type ldap3 takes (`&str`, `String`, `Vec<u8>`, …).
pub(crate) fn owned_attrs<S: AsRef<[u8]> + Eq + std::hash::Hash>(
    attrs: Vec<(S, HashSet<S>)>,
) -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
    let bytes = |s: S| s.as_ref().to_vec();
    attrs
        .into_iter()
        .map(|(name, values)| (bytes(name), values.into_iter().map(bytes).collect()))
        .collect()
}

/// Modifications as [`Op::Modify`] keeps them, from any string-like type.
pub(crate) fn owned_mods<S: AsRef<[u8]> + Eq + std::hash::Hash>(
    mods: Vec<Mod<S>>,
) -> Vec<Mod<Vec<u8>>> {
    let bytes = |s: S| s.as_ref().to_vec();
    let set = |v: HashSet<S>| v.into_iter().map(bytes).collect();
    mods.into_iter()
        .map(|m| match m {
            Mod::Add(a, v) => Mod::Add(bytes(a), set(v)),
            Mod::Delete(a, v) => Mod::Delete(bytes(a), set(v)),
            Mod::Replace(a, v) => Mod::Replace(bytes(a), set(v)),
            Mod::Increment(a, v) => Mod::Increment(bytes(a), bytes(v)),
        })
        .collect()
}
