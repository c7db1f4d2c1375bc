//! [`EntryStream`]: a search whose entries are read one by one on one
//! connection held for the whole enumeration (a getent user).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use ldap3::controls::Control;
use ldap3::{ResultEntry, SearchEntry};
use ldapmux_core::ServerId;
use ldapmux_driver::Lease;

use crate::connect::{classify, is_conn_dead};
use crate::ops::{Started, not_conn_error};
use crate::paging::PagedSearch;
use crate::{Error, Pool};

type Item = Result<SearchEntry, Error>;

/// The entries of a streaming search, as a [`Stream`]. The connection is
/// held until the stream ends or is dropped. Each entry after the first asks
/// the pool whether the connection is still good: if it died meanwhile the
/// next item is the saved error and the stream ends (behaviour 10). The
/// first entry was read (with retries) by `streaming_search`; every later
/// entry is bounded by the operation timeout.
///
/// When the server pages ([`PoolBuilder::page_size`](crate::PoolBuilder::page_size)),
/// the next page is asked for on the stream's connection when one ends, so
/// the entries arrive as one sequence, each once. A connection carries one
/// paged search at a time: a stream given one that already does takes a
/// connection of its own instead. Dropping the stream before
/// its end tells the server to stop, in the background (an Abandon of the
/// page in flight and a page of size 0 with the last cookie, which discards
/// the paging state), then gives the connection back.
pub struct EntryStream {
    inner: Pin<Box<dyn Stream<Item = Item> + Send>>,
    tail: Arc<Mutex<Tail>>,
}

/// What the search's end carried besides entries: filled in when the
/// stream ends with success.
#[derive(Default)]
struct Tail {
    referrals: Vec<String>,
    controls: Vec<Control>,
}

impl std::fmt::Debug for EntryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryStream").finish_non_exhaustive()
    }
}

struct State {
    pool: Pool,
    lease: Option<Lease>,
    /// `None` once the stream has ended or handed the search to its cleanup.
    search: Option<Box<PagedSearch>>,
    /// The first item, read while the search could still be retried
    /// (`Some(None)`: the search had no entry).
    first: Option<Option<ResultEntry>>,
    server: ServerId,
    yielded: usize,
    tail: Arc<Mutex<Tail>>,
}

impl EntryStream {
    pub(crate) fn new(
        pool: Pool,
        started: Box<Started>,
        lease: Lease,
        server: ServerId,
    ) -> EntryStream {
        let Started { search, first } = *started;
        let tail = Arc::new(Mutex::new(Tail::default()));
        let state = State {
            pool,
            lease: Some(lease),
            search: Some(Box::new(search)),
            first: Some(first),
            server,
            yielded: 0,
            tail: tail.clone(),
        };
        let inner = futures_util::stream::unfold(Some(state), |state| async move {
            let mut state = state?;
            match state.next().await {
                Some(item @ Ok(_)) => Some((item, Some(state))),
                Some(item @ Err(_)) => Some((item, None)),
                None => None,
            }
        });
        EntryStream {
            inner: Box::pin(inner),
            tail,
        }
    }

    /// The URLs of the search continuation references (RFC 4511 §4.5.3)
    /// the search met, once the stream has ended with success (empty
    /// before): parts of the tree held elsewhere, not followed.
    pub fn referrals(&self) -> Vec<String> {
        lock(&self.tail).referrals.clone()
    }

    /// The response controls of the search's result, once the stream has
    /// ended with success (empty before; the paged results control, the
    /// pool's own, left out).
    pub fn controls(&self) -> Vec<Control> {
        lock(&self.tail).controls.clone()
    }

    /// The next entry; `None` at the end of a successful search.
    pub async fn next_entry(&mut self) -> Option<Item> {
        futures_util::StreamExt::next(self).await
    }
}

impl Stream for EntryStream {
    type Item = Item;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl State {
    async fn next(&mut self) -> Option<Item> {
        let lease = self.lease.as_mut()?;
        if self.yielded > 0
            && let Err(failure) = lease.get_next()
        {
            self.lease = None;
            return Some(Err(self.pool.pool_error(failure.error)));
        }
        let timeout = self.pool.op_timeout();
        let search = self.search.as_mut()?;
        let item = match self.first.take() {
            Some(first) => Ok(Ok(first)),
            None => tokio::time::timeout(timeout, search.next()).await,
        };
        match item {
            Ok(Ok(Some(entry))) => {
                self.yielded += 1;
                Some(Ok(SearchEntry::construct(entry)))
            }
            Ok(Ok(None)) => {
                let (referrals, controls) = search.end();
                *lock(&self.tail) = Tail {
                    referrals,
                    controls,
                };
                self.search = None;
                self.lease.take()?.release();
                None
            }
            Ok(Err(e)) if is_conn_dead(&e) => {
                let lease = self.lease.take()?;
                let failure = self.pool.report_dead(lease, classify(&e), true).await;
                Some(Err(self.pool.pool_error(failure.error)))
            }
            Ok(Err(e)) => {
                self.lease.take()?.release();
                Some(Err(not_conn_error(e)))
            }
            Err(_) => {
                let lease = self.lease.take()?;
                self.pool
                    .retire_after_timeout(lease, self.server, "streaming_search", timeout);
                Some(Err(Error::Timeout {
                    operation: "streaming_search",
                    after: timeout,
                }))
            }
        }
    }
}

impl Drop for State {
    /// A stream dropped before its end: the server is told to stop (the
    /// Abandon and the discard of the paging state) from a task on the
    /// pool's runtime, which then gives the connection back, so that the
    /// connection's next user never meets the old search's state.
    fn drop(&mut self) {
        let (Some(lease), Some(search)) = (self.lease.take(), self.search.take()) else {
            return;
        };
        if !search.running() {
            lease.release();
            return;
        }
        self.pool.runtime().spawn(async move {
            search.stop().await;
            lease.release();
        });
    }
}

fn lock(m: &Mutex<Tail>) -> std::sync::MutexGuard<'_, Tail> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
