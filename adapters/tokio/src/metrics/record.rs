//! Events, recorded where they happen: an operation's outcome, a retry, the
//! wait for a connection (through keys built once per configuration), and
//! a connection opened, closed or failed.

use std::time::Duration;

use ldapmux_core::{CloseReason, ConnErrorKind, Purpose, UserKind};
use metrics::{Key, Label, Metadata, SharedString};

use super::labels::{
    ConnLabels, MetricsConfig, close_reason_label, conn_error_label, kind_label, server_label,
};
use super::names::{
    ACQUIRE_SECONDS, CONNECT_FAILURES_TOTAL, CONNECTIONS_CLOSED_TOTAL, CONNECTIONS_OPENED_TOTAL,
    OPERATIONS_TOTAL, OPS, OUTCOMES, RETRIES_TOTAL,
};
use super::outcome::Outcome;

/// The keys an operation records under ([`OPERATIONS_TOTAL`] by op and
/// outcome, [`RETRIES_TOTAL`] by op, [`ACQUIRE_SECONDS`] by purpose and
/// result), built once per configuration: an operation then records without
/// allocating a label list or hashing it, which is all the facade costs
/// when no recorder is installed. A clone starts empty (it may get other
/// labels); the cache also remembers the `pool` label it was built with and
/// is bypassed if that ever differs.
#[derive(Default)]
pub(crate) struct KeyCache(std::sync::OnceLock<OpKeys>);

pub(crate) struct OpKeys {
    name: Option<SharedString>,
    /// `OPS.len() × OUTCOMES.len()`, by op then outcome.
    ops: Vec<Key>,
    /// By op.
    retries: Vec<Key>,
    /// By purpose (read, write, private) then result (granted, failed, timeout).
    acquire: Vec<Key>,
}

impl Clone for KeyCache {
    fn clone(&self) -> Self {
        KeyCache::default()
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

const PURPOSES: [&str; 4] = ["read", "write", "private", "bind"];
const ACQUIRE_RESULTS: [&str; 3] = ["granted", "failed", "timeout"];

/// What the `metrics` macros pass for a metric recorded from this module.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl MetricsConfig {
    /// The cached keys, if they match this configuration.
    fn keys(&self) -> Option<&OpKeys> {
        let keys = self.keys.0.get_or_init(|| self.build_keys());
        (keys.name == self.name).then_some(keys)
    }

    fn build_keys(&self) -> OpKeys {
        let key = |name: &'static str, pairs: &[(&'static str, &'static str)]| {
            let mut labels = Vec::with_capacity(pairs.len() + 1);
            if let Some(pool) = &self.name {
                labels.push(Label::new("pool", pool.clone()));
            }
            labels.extend(pairs.iter().map(|(k, v)| Label::from_static_parts(k, v)));
            Key::from_parts(name, labels)
        };
        OpKeys {
            name: self.name.clone(),
            ops: OPS
                .iter()
                .flat_map(|op| OUTCOMES.iter().map(move |o| (*op, *o)))
                .map(|(op, o)| key(OPERATIONS_TOTAL, &[("op", op), ("outcome", o)]))
                .collect(),
            retries: OPS
                .iter()
                .map(|op| key(RETRIES_TOTAL, &[("op", op)]))
                .collect(),
            acquire: PURPOSES
                .iter()
                .flat_map(|p| ACQUIRE_RESULTS.iter().map(move |r| (*p, *r)))
                .map(|(p, r)| key(ACQUIRE_SECONDS, &[("purpose", p), ("result", r)]))
                .collect(),
        }
    }
}

/// The index of `op` in [`OPS`].
fn op_index(op: &str) -> Option<usize> {
    OPS.iter().position(|o| *o == op)
}

/// An operation ended.
pub(crate) fn record_op(cfg: &MetricsConfig, op: &'static str, outcome: Outcome) {
    if let (Some(keys), Some(i)) = (cfg.keys(), op_index(op)) {
        let key = &keys.ops[i * OUTCOMES.len() + outcome as usize];
        metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
        return;
    }
    let labels = cfg.labels([
        ("op", SharedString::const_str(op)),
        ("outcome", SharedString::const_str(outcome.as_str())),
    ]);
    metrics::counter!(OPERATIONS_TOTAL, labels).increment(1);
}

/// An operation starts another try.
pub(crate) fn record_retry(cfg: &MetricsConfig, op: &'static str) {
    if let (Some(keys), Some(i)) = (cfg.keys(), op_index(op)) {
        let key = &keys.retries[i];
        metrics::with_recorder(|r| r.register_counter(key, &METADATA).increment(1));
        return;
    }
    let labels = cfg.labels([("op", SharedString::const_str(op))]);
    metrics::counter!(RETRIES_TOTAL, labels).increment(1);
}

/// How a try's wait for a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireResult {
    Granted,
    Failed,
    Timeout,
}

/// One try waited `waited` for the pool's answer.
pub(crate) fn record_acquire(
    cfg: &MetricsConfig,
    kind: UserKind,
    result: AcquireResult,
    waited: Duration,
) {
    if let Some(keys) = cfg.keys() {
        let p = match kind.purpose() {
            Purpose::Read => 0,
            Purpose::Write => 1,
            Purpose::Private => 2,
            Purpose::Bind => 3,
        };
        let key = &keys.acquire[p * ACQUIRE_RESULTS.len() + result as usize];
        metrics::with_recorder(|r| {
            r.register_histogram(key, &METADATA)
                .record(waited.as_secs_f64())
        });
        return;
    }
    let result = match result {
        AcquireResult::Granted => "granted",
        AcquireResult::Failed => "failed",
        AcquireResult::Timeout => "timeout",
    };
    let labels = cfg.labels([
        ("purpose", SharedString::const_str(kind_label(kind))),
        ("result", SharedString::const_str(result)),
    ]);
    metrics::histogram!(ACQUIRE_SECONDS, labels).record(waited.as_secs_f64());
}

/// A connection opened and bound.
pub(crate) fn record_opened(cfg: &MetricsConfig, conn: &ConnLabels) {
    let labels = cfg.labels([
        ("server", conn.server.clone()),
        ("credential", conn.credential.clone()),
        ("purpose", SharedString::const_str(conn.purpose)),
    ]);
    metrics::counter!(CONNECTIONS_OPENED_TOTAL, labels).increment(1);
}

/// Why the adapter let go of an open socket.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Closed {
    /// The core closed it.
    Core(CloseReason),
    /// The socket ended by itself.
    Lost,
    /// It opened after the pool gave up on it.
    Unwanted,
    /// Forgotten after a fork.
    Forked,
}

/// An open connection was closed, lost or abandoned.
pub(crate) fn record_closed(cfg: &MetricsConfig, conn: &ConnLabels, why: Closed) {
    let reason = match why {
        Closed::Core(r) => close_reason_label(r),
        Closed::Lost => "lost",
        Closed::Unwanted => "unwanted",
        Closed::Forked => "forked",
    };
    let labels = cfg.labels([
        ("server", conn.server.clone()),
        ("credential", conn.credential.clone()),
        ("purpose", SharedString::const_str(conn.purpose)),
        ("reason", SharedString::const_str(reason)),
    ]);
    metrics::counter!(CONNECTIONS_CLOSED_TOTAL, labels).increment(1);
}

/// A connection attempt to `addr` failed.
pub(crate) fn record_connect_failure(cfg: &MetricsConfig, addr: &str, kind: ConnErrorKind) {
    let labels = cfg.labels([
        ("server", server_label(addr)),
        ("kind", SharedString::const_str(conn_error_label(kind))),
    ]);
    metrics::counter!(CONNECT_FAILURES_TOTAL, labels).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Rec;

    /// The cached keys of the per-operation metrics are exactly the label
    /// sets the uncached path records (with and without a `pool` label).
    #[test]
    fn cached_operation_keys_match_their_labels() {
        for name in [None, Some(SharedString::from("p"))] {
            let cfg = MetricsConfig {
                name: name.clone(),
                ..MetricsConfig::default()
            };
            let rec = Rec::default();
            metrics::with_local_recorder(&rec, || {
                record_op(&cfg, "compare", Outcome::Reloaded);
                record_op(&cfg, "compare", Outcome::Reloaded);
                record_op(&cfg, "search", Outcome::Ok);
                record_retry(&cfg, "whoami");
            });
            let with_pool = |pairs: &[(&'static str, &'static str)]| {
                let mut v = pairs.to_vec();
                if name.is_some() {
                    v.push(("pool", "p"));
                }
                v
            };
            let ops = &with_pool(&[("op", "compare"), ("outcome", "reloaded")]);
            assert_eq!(rec.get(OPERATIONS_TOTAL, ops), Some(2));
            let ok = &with_pool(&[("op", "search"), ("outcome", "ok")]);
            assert_eq!(rec.get(OPERATIONS_TOTAL, ok), Some(1));
            assert_eq!(
                rec.get(RETRIES_TOTAL, &with_pool(&[("op", "whoami")])),
                Some(1)
            );
        }
        for (i, o) in [
            Outcome::Ok,
            Outcome::LdapError,
            Outcome::InvalidCredentials,
            Outcome::AccountLocked,
            Outcome::PasswordExpired,
            Outcome::MustChange,
            Outcome::PasswordRefused,
            Outcome::Timeout,
            Outcome::Unavailable,
            Outcome::OutcomeUnknown,
            Outcome::LeaseDead,
            Outcome::InvalidRequest,
            Outcome::ShutDown,
            Outcome::Reloaded,
            Outcome::Forked,
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(OUTCOMES[o as usize], o.as_str());
            assert_eq!(i, o as usize);
        }
        for (r, label) in [
            (AcquireResult::Granted, "granted"),
            (AcquireResult::Failed, "failed"),
            (AcquireResult::Timeout, "timeout"),
        ] {
            assert_eq!(ACQUIRE_RESULTS[r as usize], label);
        }
    }
}
