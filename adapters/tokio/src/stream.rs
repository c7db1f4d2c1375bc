//! [`EntryStream`]: a search whose entries are read one by one on one
//! connection held for the whole enumeration (a getent user).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use ldap3::{ResultEntry, SearchEntry};
use ldapmux_core::ServerId;
use ldapmux_driver::Lease;

use crate::connect::{classify, is_conn_dead};
use crate::ops::{Search, Started, not_conn_error};
use crate::{Error, Pool};

type Item = Result<SearchEntry, Error>;

/// The entries of a streaming search, as a [`Stream`]. The connection is
/// held until the stream ends or is dropped. Each entry after the first asks
/// the pool whether the connection is still good: if it died meanwhile the
/// next item is the saved error and the stream ends (behaviour 10). The
/// first entry was read (with retries) by `streaming_search`; every later
/// entry is bounded by the operation timeout.
pub struct EntryStream {
    inner: Pin<Box<dyn Stream<Item = Item> + Send>>,
}

impl std::fmt::Debug for EntryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryStream").finish_non_exhaustive()
    }
}

struct State {
    pool: Pool,
    lease: Option<Lease>,
    search: Box<Search>,
    /// The first item, read while the search could still be retried
    /// (`Some(None)`: the search had no entry).
    first: Option<Option<ResultEntry>>,
    server: ServerId,
    yielded: usize,
}

impl EntryStream {
    pub(crate) fn new(
        pool: Pool,
        started: Box<Started>,
        lease: Lease,
        server: ServerId,
    ) -> EntryStream {
        let Started { search, first } = *started;
        let state = State {
            pool,
            lease: Some(lease),
            search: Box::new(search),
            first: Some(first),
            server,
            yielded: 0,
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
        }
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
        let item = match self.first.take() {
            Some(first) => Ok(Ok(first)),
            None => tokio::time::timeout(timeout, self.search.next()).await,
        };
        match item {
            Ok(Ok(Some(entry))) => {
                self.yielded += 1;
                Some(Ok(SearchEntry::construct(entry)))
            }
            Ok(Ok(None)) => {
                let result = self.search.finish().await;
                self.lease.take()?.release();
                match result.success() {
                    Ok(_) => None,
                    Err(e) => Some(Err(not_conn_error(e))),
                }
            }
            Ok(Err(e)) if is_conn_dead(&e) => {
                let lease = self.lease.take()?;
                let failure = lease.broken(classify(&e), true);
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
