//! [`Entries`]: the entries of a streaming search as a blocking iterator,
//! the twin of [`ldapmux::EntryStream`].

use std::sync::Arc;

use ldapmux::{EntryStream, Error, SearchEntry};

use crate::instance::Instance;

/// The entries of [`Pool::streaming_search`](crate::Pool::streaming_search),
/// as a blocking [`Iterator`] (the async pool's is a `Stream`, see
/// [`ldapmux::EntryStream`]). The connection is held until the iterator
/// ends or is dropped; after an error it ends.
///
/// In a child process after a fork the connection is the parent's: the next
/// item is [`Error::Pool`]`(Forked)`, then the iterator ends, and dropping it
/// leaves the parent's connection alone.
pub struct Entries {
    /// `None` once ended (after a fork) or while being dropped.
    streaming: Option<Streaming>,
}

struct Streaming {
    instance: Arc<Instance>,
    stream: EntryStream,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries").finish_non_exhaustive()
    }
}

impl Entries {
    pub(crate) fn new(instance: Arc<Instance>, stream: EntryStream) -> Entries {
        Entries {
            streaming: Some(Streaming { instance, stream }),
        }
    }

    /// The continuation references the search met, once it has ended
    /// with success (see [`ldapmux::EntryStream::referrals`]).
    pub fn referrals(&self) -> Vec<String> {
        self.streaming
            .as_ref()
            .map(|s| s.stream.referrals())
            .unwrap_or_default()
    }

    /// The response controls of the search's result, once it has ended
    /// with success (see [`ldapmux::EntryStream::controls`]).
    pub fn controls(&self) -> Vec<ldapmux::ldap3::controls::Control> {
        self.streaming
            .as_ref()
            .map(|s| s.stream.controls())
            .unwrap_or_default()
    }
}

impl Iterator for Entries {
    type Item = Result<SearchEntry, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        let streaming = self.streaming.as_mut()?;
        if streaming.instance.forked() {
            std::mem::forget(self.streaming.take());
            return Some(Err(Error::Pool {
                source: ldapmux::PoolError::Forked,
                server: None,
            }));
        }
        streaming.instance.block_on(streaming.stream.next_entry())
    }
}

impl Drop for Entries {
    fn drop(&mut self) {
        if let Some(streaming) = self.streaming.take()
            && streaming.instance.forked()
        {
            // The stream's lease and the runtime are the parent's.
            std::mem::forget(streaming);
        }
    }
}
