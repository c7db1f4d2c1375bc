//! What the proxy shows of its connections and requests, and the handle of
//! an armed one-shot fault.

use super::*;

/// The id of one proxied connection, unique per proxy, in accept order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProxyConnId(pub u64);

impl std::fmt::Display for ProxyConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proxy-conn#{}", self.0)
    }
}

/// A live proxied connection, as [`FaultProxy::connections`] shows it.
#[derive(Clone, Debug)]
pub struct ProxyConn {
    /// Its id.
    pub id: ProxyConnId,
    /// When it was accepted.
    pub accepted_at: Instant,
    /// Its mode now.
    pub mode: ProxyMode,
    /// Requests it has sent (framed, counted when read from the client).
    pub requests: u64,
    /// Bytes forwarded to the server.
    pub bytes_to_server: u64,
    /// Bytes written to the client (garbage included).
    pub bytes_to_client: u64,
}

/// One request read from a client.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// The connection it came on.
    pub conn: ProxyConnId,
    /// Its operation.
    pub kind: RequestKind,
    /// When the proxy had read all of it.
    pub at: Instant,
    /// The whole LDAP message (or the unframed chunk, for `Other`).
    pub bytes: Vec<u8>,
}

impl RequestRecord {
    /// Whether the message contains `needle` (a DN, a filter value …).
    pub fn contains(&self, needle: &[u8]) -> bool {
        !needle.is_empty() && self.bytes.windows(needle.len()).any(|w| w == needle)
    }
}

/// A one-shot fault armed by [`FaultProxy::arm_next_request`]; says which
/// connection it hit.
#[derive(Debug)]
pub struct Armed {
    pub(super) fired: watch::Receiver<Option<ProxyConnId>>,
}

impl Armed {
    /// The connection the fault took effect on, if it has.
    pub fn conn(&self) -> Option<ProxyConnId> {
        *self.fired.borrow()
    }

    /// Waits (at most `within`) until the fault took effect; returns the
    /// connection. `TimedOut` names the wait; `BrokenPipe` if the proxy is gone.
    pub async fn wait(&mut self, within: Duration) -> io::Result<ProxyConnId> {
        match tokio::time::timeout(within, self.fired.wait_for(Option::is_some)).await {
            Ok(Ok(id)) => Ok(id.expect("waited for Some")),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the fault was disarmed (replaced by another, or the proxy dropped) before it took effect",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no matching request reached the proxy within {within:?}"),
            )),
        }
    }
}
