//! Simple paged results (RFC 2696) on one connection: a [`PagedSearch`]
//! sends a search page by page, each page asking for the next with the
//! cookie the server returned, and reads out the entries as one sequence.
//! Which servers page is read once from their root DSE ([`Support`]).
//!
//! A paged search never leaves its connection: the server keeps the paging
//! state (the cookie) per connection, which is why an enumeration holds one
//! connection for its whole length (behaviour 10).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::FutureExt as _;
use ldap3::asn1::parse_tag;
use ldap3::controls::{Control, PagedResults, RawControl};
use ldap3::{Ldap, LdapError, LdapResult, ResultEntry, Scope, SearchStream};
use ldapmux_core::ServerId;

/// The simple paged results control (RFC 2696).
pub(crate) const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// One page's search in progress.
type Page = SearchStream<'static, String, Vec<String>>;

/// What the root DSE said of each server, read once per server and pool
/// generation (a reload forgets it: the servers may have been upgraded).
#[derive(Default)]
pub(crate) struct Support {
    known: Mutex<HashMap<ServerId, bool>>,
}

impl Support {
    /// The page size to use on `server` (`None`: one unpaged search), reading
    /// its root DSE on `ldap` the first time. A root DSE that cannot be read
    /// (an LDAP result other than success) counts as "does not page"; a dead
    /// connection is the caller's error like any other.
    pub(crate) async fn page_size(
        &self,
        setting: Option<NonZeroU32>,
        server: ServerId,
        ldap: &mut Ldap,
    ) -> Result<Option<NonZeroU32>, LdapError> {
        let Some(size) = setting else {
            return Ok(None);
        };
        Ok(self.learn(server, ldap).await?.then_some(size))
    }

    /// Whether `server` pages, reading its root DSE on `ldap` unless it is
    /// known already.
    pub(crate) async fn learn(&self, server: ServerId, ldap: &mut Ldap) -> Result<bool, LdapError> {
        if let Some(pages) = lock(&self.known).get(&server).copied() {
            return Ok(pages);
        }
        let pages = crate::root_dse::lists(ldap, "supportedControl", PAGED_RESULTS_OID).await?;
        tracing::debug!(%server, pages, "root DSE read: simple paged results");
        lock(&self.known).insert(server, pages);
        Ok(pages)
    }

    /// Forgets every server (a reload).
    pub(crate) fn forget(&self) {
        lock(&self.known).clear();
    }
}

/// Where one search runs, for paging: what the servers' root DSEs said,
/// and the server it runs on.
pub(crate) struct Paging<'a> {
    pub(crate) support: &'a Support,
    pub(crate) server: ServerId,
    /// Bound on each message sent to stop a search left unread (the
    /// connect timeout: a small round trip).
    pub(crate) stop_within: Duration,
}

impl Paging<'_> {
    /// The page size for this search (`None`: unpaged), see [`Support::page_size`].
    pub(crate) async fn page_size(
        &self,
        ldap: &mut Ldap,
        want: Option<NonZeroU32>,
    ) -> Result<Option<NonZeroU32>, LdapError> {
        self.support.page_size(want, self.server, ldap).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a search asks for, kept to ask for each page again.
pub(crate) struct Query {
    pub(crate) base: String,
    pub(crate) scope: Scope,
    pub(crate) filter: String,
    pub(crate) attrs: Vec<String>,
    /// Limits, alias dereferencing, types only.
    pub(crate) options: ldap3::SearchOptions,
    /// The caller's request controls, sent with every page.
    pub(crate) controls: Vec<RawControl>,
    /// Entries per page (`None`: unpaged).
    pub(crate) page_size: Option<NonZeroU32>,
}

/// A search read out page by page on one connection, or in one go when
/// `size` is `None` (paging off, or a server that does not page).
///
/// Dropped while the server still works on it, it sends an Abandon
/// ([`PagedSearch::stop`] also discards the paging state).
pub(crate) struct PagedSearch {
    ldap: Ldap,
    query: Query,
    size: Option<NonZeroU32>,
    page: Page,
    /// The cookie of the last page's answer: what the server keeps state
    /// for (empty before the first answer).
    cookie: Vec<u8>,
    /// The final result, once the last page has ended.
    done: Option<LdapResult>,
    /// Failed, ended, or abandoned: nothing runs on the server.
    over: bool,
    stop_within: Duration,
    /// The URLs of the search continuation references met so far (RFC 4511
    /// §4.5.3): kept apart, never handed out as entries.
    refs: Vec<String>,
}

impl PagedSearch {
    /// Sends the first page. A server keeps one paging state per
    /// connection (slapd answers a second paged search beside the first
    /// with "paged results cookie is invalid"): the core gives a paging
    /// search a connection no other paging search holds
    /// (`Request::paging`), and a paged `search` takes a private one.
    pub(crate) async fn start(
        ldap: &mut Ldap,
        query: Query,
        paging: &Paging<'_>,
    ) -> Result<PagedSearch, LdapError> {
        let size = paging.page_size(ldap, query.page_size).await?;
        let ldap = ldap.clone();
        let page = send_page(&ldap, &query, size, Vec::new()).await?;
        Ok(PagedSearch {
            ldap,
            query,
            size,
            page,
            cookie: Vec::new(),
            done: None,
            over: false,
            stop_within: paging.stop_within,
            refs: Vec::new(),
        })
    }

    /// The next entry, asking for the next page when one ends; `Ok(None)`
    /// after the last page. A page that ends other than with success is the
    /// error (`LdapResult`), and nothing follows it. Continuation
    /// references are kept in [`PagedSearch::referrals`]; intermediate
    /// responses are skipped (they belong to controls ldapmux does not send).
    pub(crate) async fn next(&mut self) -> Result<Option<ResultEntry>, LdapError> {
        let next = self.read().await;
        if next.is_err() {
            self.over = true;
        }
        next
    }

    async fn read(&mut self) -> Result<Option<ResultEntry>, LdapError> {
        loop {
            if self.done.is_some() {
                return Ok(None);
            }
            if let Some(entry) = self.page.next().await? {
                if entry.is_ref() {
                    self.refs.extend(ldap3::parse_refs(entry.0));
                    continue;
                }
                if entry.is_intermediate() {
                    continue;
                }
                return Ok(Some(entry));
            }
            let result = self.page.finish().await;
            let paged = self.size.is_some() && result.rc == 0;
            let cookie = if paged {
                response_cookie(&result.ctrls)?
            } else {
                None
            };
            match cookie {
                Some(cookie) if !cookie.is_empty() => {
                    self.page =
                        send_page(&self.ldap, &self.query, self.size, cookie.clone()).await?;
                    self.cookie = cookie;
                }
                _ => {
                    self.cookie.clear();
                    if result.rc != 0 {
                        self.done = Some(result.clone());
                        return Err(LdapError::LdapResult { result });
                    }
                    self.done = Some(result);
                    return Ok(None);
                }
            }
        }
    }

    /// After the end (`next` gave `Ok(None)`, so the result was success):
    /// the continuation references met, and the final result's response
    /// controls without the paged results control (the pool's own).
    pub(crate) fn end(&mut self) -> (Vec<String>, Vec<Control>) {
        self.over = true;
        let controls = self
            .done
            .as_mut()
            .map(|r| std::mem::take(&mut r.ctrls))
            .unwrap_or_default();
        let controls = controls
            .into_iter()
            .filter(|Control(_, raw)| raw.ctype != PAGED_RESULTS_OID)
            .collect();
        (std::mem::take(&mut self.refs), controls)
    }

    /// Whether the search still runs on the server (it was not read to its
    /// end and did not fail).
    pub(crate) fn running(&self) -> bool {
        !self.over && self.done.is_none()
    }
}

impl PagedSearch {
    /// Tells the server to stop, if the search still runs there: an
    /// Abandon of the page in flight, queued at once (the first poll of
    /// ldap3's call puts it on the connection's unbounded request channel,
    /// ahead of anything sent later, such as the unbind of a connection
    /// being closed; an Abandon has no answer to wait for). Returns the last
    /// cookie, whose paging state the server still keeps.
    fn abandon_now(&mut self) -> Option<Vec<u8>> {
        if !self.running() {
            return None;
        }
        self.over = true;
        let id = self.page.ldap_handle().last_id();
        let mut ldap = self.ldap.clone();
        let _ = ldap.abandon(id).now_or_never();
        tracing::debug!(msgid = id, "search abandoned");
        Some(std::mem::take(&mut self.cookie)).filter(|c| !c.is_empty())
    }

    /// Stops a search left unread whose connection lives on: the Abandon,
    /// then a page of size 0 with the last cookie, which discards the
    /// server's paging state (RFC 2696 §3), bounded by the connect timeout.
    pub(crate) async fn stop(mut self) {
        let Some(cookie) = self.abandon_now() else {
            return;
        };
        // The same search as its pages (RFC 2696), asking for none.
        let mut ldap = page_request(&self.ldap, &self.query, Some(0), cookie);
        let q = &self.query;
        let discard = ldap.search(&q.base, q.scope, &q.filter, q.attrs.clone());
        match tokio::time::timeout(self.stop_within, discard).await {
            Ok(Ok(r)) => tracing::debug!(rc = r.1.rc, "paging state discarded"),
            Ok(Err(e)) => tracing::debug!(error = %e, "paging state not discarded"),
            Err(_) => tracing::debug!("paging state not discarded in time"),
        }
    }
}

/// Dropped while the server still works on it (an operation past its
/// deadline, a stream whose cleanup could not be spawned): the Abandon
/// only. Its connection is closing (a timeout retires it; a paged search's
/// is private), which discards the paging state.
impl Drop for PagedSearch {
    fn drop(&mut self) {
        let _ = self.abandon_now();
    }
}

async fn send_page(
    ldap: &Ldap,
    query: &Query,
    size: Option<NonZeroU32>,
    cookie: Vec<u8>,
) -> Result<Page, LdapError> {
    let size = size.map(|n| i32::try_from(n.get()).unwrap_or(i32::MAX));
    page_request(ldap, query, size, cookie)
        .streaming_search(&query.base, query.scope, &query.filter, query.attrs.clone())
        .await
}

/// A handle for one page of `query`: its options, the caller's controls,
/// and the paged results control when `size` is given.
fn page_request(ldap: &Ldap, query: &Query, size: Option<i32>, cookie: Vec<u8>) -> Ldap {
    let mut ldap = ldap.clone();
    let mut controls = query.controls.clone();
    if let Some(size) = size {
        controls.push(PagedResults { size, cookie }.into());
    }
    if !controls.is_empty() {
        ldap.with_controls(controls);
    }
    ldap.with_search_options(query.options.clone());
    ldap
}

/// The cookie in a page's answer: `None` if the server sent no paged
/// results control (it did not page: the answer was complete), an error if
/// the control cannot be read (a server's protocol error, reported as
/// `protocolError`, rc 2, never a panic).
fn response_cookie(ctrls: &[Control]) -> Result<Option<Vec<u8>>, LdapError> {
    let Some(Control(_, raw)) = ctrls
        .iter()
        .find(|Control(_, raw)| raw.ctype == PAGED_RESULTS_OID)
    else {
        return Ok(None);
    };
    match raw.val.as_deref().and_then(parse_cookie) {
        Some(cookie) => Ok(Some(cookie)),
        None => Err(LdapError::LdapResult {
            result: LdapResult {
                rc: 2,
                matched: String::new(),
                text: "the server's paged results control could not be read".into(),
                refs: vec![],
                ctrls: vec![],
            },
        }),
    }
}

/// `SEQUENCE { size INTEGER, cookie OCTET STRING }`, without panicking on
/// anything else (ldap3's own parser panics).
fn parse_cookie(val: &[u8]) -> Option<Vec<u8>> {
    let (rest, tag) = parse_tag(val).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let mut parts = tag.expect_constructed()?.into_iter();
    parts.next()?.expect_primitive()?;
    let cookie = parts.next()?.expect_primitive()?;
    parts.next().is_none().then_some(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(size: i32, cookie: &[u8]) -> Vec<u8> {
        let raw: RawControl = PagedResults {
            size,
            cookie: cookie.to_vec(),
        }
        .into();
        raw.val.unwrap()
    }

    #[test]
    fn a_cookie_reads_back_as_ldap3_writes_it() {
        assert_eq!(parse_cookie(&encoded(500, b"abc")), Some(b"abc".to_vec()));
        assert_eq!(parse_cookie(&encoded(0, b"")), Some(Vec::new()));
    }

    #[test]
    fn a_malformed_control_is_a_protocol_error_not_a_panic() {
        let good = encoded(10, b"cookie");
        let bad: [&[u8]; 4] = [b"", b"\x30", &good[..good.len() - 1], b"\x04\x03abc"];
        for val in bad {
            assert_eq!(parse_cookie(val), None, "{val:?}");
        }
        let ctrl = |val: &[u8]| {
            Control(
                None,
                RawControl {
                    ctype: PAGED_RESULTS_OID.into(),
                    crit: false,
                    val: Some(val.to_vec()),
                },
            )
        };
        match response_cookie(&[ctrl(b"\x30\x01")]) {
            Err(LdapError::LdapResult { result }) => assert_eq!(result.rc, 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            response_cookie(&[ctrl(&good)]).unwrap(),
            Some(b"cookie".to_vec())
        );
        assert_eq!(response_cookie(&[]).unwrap(), None);
    }
}
