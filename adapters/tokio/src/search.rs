//! [`SearchOptions`]: how one search is sent (limits, alias dereferencing,
//! types only, request controls, its page size), and [`SearchResults`]:
//! what came back besides the entries (continuation references, the
//! result's response controls).

use std::time::Duration;

use ldap3::controls::{Control, RawControl};
use ldap3::{DerefAliases, SearchEntry};

use crate::Error;
use crate::paging::PAGED_RESULTS_OID;

/// How one search is sent, for [`Pool::search_with`](crate::Pool::search_with),
/// [`Pool::streaming_search_with`](crate::Pool::streaming_search_with) and
/// [`ConnGuard::search_with`](crate::ConnGuard::search_with). The default is
/// what [`Pool::search`](crate::Pool::search) sends: no limits of the
/// client's own, aliases never dereferenced, values returned, no controls,
/// the pool's page size.
///
/// ```
/// use std::time::Duration;
/// use ldapmux::SearchOptions;
/// use ldapmux::ldap3::controls::{MakeCritical, ManageDsaIt};
///
/// // Referral objects as entries (RFC 3296), from a server that must know the control.
/// let options = SearchOptions::new()
///     .size_limit(100)
///     .time_limit(Duration::from_secs(5))
///     .control(ManageDsaIt.critical());
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SearchOptions {
    pub(crate) size_limit: u32,
    pub(crate) time_limit: u32,
    pub(crate) deref: DerefAliases,
    pub(crate) types_only: bool,
    pub(crate) controls: Vec<RawControl>,
    pub(crate) page_size: Option<Option<u32>>,
    pub(crate) follow_referrals: u8,
}

/// The options of a plain search.
pub(crate) static PLAIN: SearchOptions = SearchOptions {
    size_limit: 0,
    time_limit: 0,
    deref: DerefAliases::Never,
    types_only: false,
    controls: Vec::new(),
    page_size: None,
    follow_referrals: 0,
};

impl SearchOptions {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` entries (0: no limit of the client's; the server's own
    /// limits apply either way). Past it the search ends with
    /// `sizeLimitExceeded` ([`Error::Ldap`], rc 4). With paging, the
    /// server applies it to the whole search, not to each page.
    pub fn size_limit(mut self, n: u32) -> Self {
        self.size_limit = n;
        self
    }

    /// At most this long on the server, in whole seconds rounded up (zero:
    /// no limit of the client's); past it `timeLimitExceeded` (rc 3). The
    /// pool's operation timeout bounds the whole call either way.
    pub fn time_limit(mut self, limit: Duration) -> Self {
        let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
        self.time_limit = u32::try_from(secs).unwrap_or(u32::MAX);
        self
    }

    /// How aliases are dereferenced (default: never).
    pub fn deref(mut self, deref: DerefAliases) -> Self {
        self.deref = deref;
        self
    }

    /// Attribute names only, no values.
    pub fn types_only(mut self, on: bool) -> Self {
        self.types_only = on;
        self
    }

    /// A request control, sent with the search (with every page of it).
    /// Its criticality is the control's: a server that does not know a
    /// critical control refuses the search with
    /// `unavailableCriticalExtension` (rc 12). The paged results control is
    /// the pool's own ([`SearchOptions::page_size`]) and is refused here.
    pub fn control(mut self, control: impl Into<RawControl>) -> Self {
        self.controls.push(control.into());
        self
    }

    /// This search's page size, instead of the pool's
    /// ([`PoolBuilder::page_size`](crate::PoolBuilder::page_size)): `Some(n)`
    /// pages from the start, on a connection of its own; `None` never pages.
    /// Left unset, `search_with` asks unpaged first and pages only when the
    /// server caps the answer, and a stream pages with the pool's size (on
    /// its enumeration connection, or on one of its own if another search
    /// pages there). A
    /// lease ([`ConnGuard`](crate::ConnGuard)) refuses `Some(n)`: it is a
    /// shared connection.
    pub fn page_size(mut self, size: Option<u32>) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Follow referrals, at most `hops` deep (default 0: never). Only
    /// [`Pool::search_with`](crate::Pool::search_with) follows them (a
    /// stream and a lease are one connection each: they give the
    /// references back). Each referral's search runs on a referral
    /// connection to its server (never shared with other users), bound
    /// with the pool's credential only if the configuration lists that
    /// server and anonymously otherwise: a referral never carries a
    /// password to a server nobody configured. A search made twice (a
    /// loop), more than `hops` hops, or a URL that is not `ldap://` or
    /// `ldaps://` is [`Error::Referral`] naming the URL.
    pub fn follow_referrals(mut self, hops: u8) -> Self {
        self.follow_referrals = hops;
        self
    }

    /// Refuses what cannot be sent, before anything is.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.page_size == Some(Some(0)) {
            return Err(Error::InvalidRequest(
                "a page size of 0 asks for no entries (None: unpaged)".into(),
            ));
        }
        if self.controls.iter().any(|c| c.ctype == PAGED_RESULTS_OID) {
            return Err(Error::InvalidRequest(
                "the paged results control is the pool's: use SearchOptions::page_size".into(),
            ));
        }
        if let Some(c) = self.controls.iter().find(|c| c.ctype.trim().is_empty()) {
            return Err(Error::InvalidRequest(format!(
                "a control without an OID (critical: {})",
                c.crit
            )));
        }
        if i32::try_from(self.size_limit).is_err() || i32::try_from(self.time_limit).is_err() {
            return Err(Error::InvalidRequest(
                "a size or time limit above what LDAP can say (2^31 - 1)".into(),
            ));
        }
        Ok(())
    }

    /// ldap3's search parameters.
    pub(crate) fn ldap3(&self) -> ldap3::SearchOptions {
        let limit = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        ldap3::SearchOptions::new()
            .sizelimit(limit(self.size_limit))
            .timelimit(limit(self.time_limit))
            .deref(self.deref)
            .typesonly(self.types_only)
    }
}

/// What a search with options gave back: the entries, and what an answer
/// carries besides them.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SearchResults {
    /// The entries, each once, in the server's order.
    pub entries: Vec<SearchEntry>,
    /// The URLs of the search continuation references (RFC 4511 §4.5.3):
    /// parts of the tree held elsewhere, which the pool does not follow.
    pub referrals: Vec<String>,
    /// The response controls of the search's result (of its last page; the
    /// paged results control, which is the pool's, left out).
    pub controls: Vec<Control>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::controls::{MakeCritical, PagedResults};

    #[test]
    fn what_cannot_be_sent_is_refused_naming_why() {
        let refused = |o: SearchOptions| match o.check() {
            Err(Error::InvalidRequest(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(SearchOptions::new().page_size(Some(0))).contains("page size of 0"));
        let paged = PagedResults {
            size: 10,
            cookie: vec![],
        };
        assert!(refused(SearchOptions::new().control(paged.critical())).contains("page_size"));
        assert!(refused(SearchOptions::new().size_limit(u32::MAX)).contains("2^31"));
        let no_oid = RawControl {
            ctype: " ".into(),
            crit: true,
            val: None,
        };
        assert!(refused(SearchOptions::new().control(no_oid)).contains("OID"));
        SearchOptions::new()
            .page_size(None)
            .size_limit(5)
            .check()
            .unwrap();
    }

    #[test]
    fn a_time_limit_is_whole_seconds_rounded_up() {
        let secs = |d| SearchOptions::new().time_limit(d).time_limit;
        assert_eq!(secs(Duration::ZERO), 0);
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_secs(5)), 5);
        assert_eq!(secs(Duration::from_millis(5_001)), 6);
    }
}
