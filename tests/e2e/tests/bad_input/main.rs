//! Bad input end to end: malformed server lists and URLs, unknown schemes,
//! wrong bind credentials, invalid filters and DNs, oversized results, a
//! server that does not speak LDAP, and TLS that cannot be verified or is
//! not there. Each gives a typed error naming its cause, within its
//! timeout, and the same pool keeps serving other users.

#[path = "../common/mod.rs"]
mod common;
mod credentials;
mod not_ldap;
mod requests;
mod tls;
mod urls;

use not_ldap::{Fake, FakeServer};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use ldapmux::{BuildError, ConnErrorKind, Credential, Error, Password, Scope};
use ldapmux::{ConfigError, PoolError as CoreError};
use ldapmux_harness::{Slapd, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The connect timeout of [`common::builder`].
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Slack for a loaded 2-core machine on top of a timeout.
const SLACK: Duration = Duration::from_secs(2);

/// Runs `f`, asserting it ends within `within`; returns its output.
async fn within<T>(what: &str, within: Duration, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = tokio::time::timeout(within, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not end within {within:?}"));
    assert!(
        start.elapsed() <= within,
        "{what}: took {:?}",
        start.elapsed()
    );
    out
}

fn assert_pool_error(e: &Error, kind: ConnErrorKind, what: &str) {
    assert!(
        matches!(e, Error::Pool { source: CoreError::ConnectFailed { cause, .. }, .. } if cause.kind == kind),
        "{what}: expected ConnectFailed with {kind:?}, got {e:?}"
    );
    assert_eq!(e.conn_error_kind(), Some(kind), "{what}: {e}");
    // The message names the server by its URL, never by the core's id.
    let Error::Pool {
        server: Some(url), ..
    } = e
    else {
        panic!("{what}: no server URL in {e:?}");
    };
    let shown = e.to_string();
    assert!(
        shown.contains(&format!("could not connect to {url}")),
        "{what}: {shown}"
    );
    assert!(!shown.contains(" s0"), "{what}: {shown}");
}
