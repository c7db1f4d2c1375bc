//! The pool's metrics with the `metrics` feature off: the same crate-internal
//! API as `metrics/`, each call a no-op, so that no call site needs a `cfg`.
//! The `metrics_*` settings are still accepted (a configuration file reads the
//! same in every build) and do nothing; no publishing task is started.

use std::time::Duration;

use ldapmux_core::{CloseReason, ConnErrorKind, CredKey, Purpose, UserKind};
use ldapmux_driver::Driver;

use crate::PoolConfig;
use crate::credential::CredTable;

#[path = "metrics/outcome.rs"]
mod outcome;
pub(crate) use outcome::Outcome;

/// Nothing to label with.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetricsConfig {
    /// Always `None`: nothing is published, so no task publishes.
    pub(crate) interval: Option<Duration>,
}

impl MetricsConfig {
    pub(crate) fn of(_config: &PoolConfig) -> MetricsConfig {
        MetricsConfig::default()
    }
}

/// No labels are kept.
#[derive(Clone, Debug)]
pub(crate) struct ConnLabels;

impl ConnLabels {
    pub(crate) fn new(
        _cfg: &MetricsConfig,
        _addr: &str,
        _cred: CredKey,
        _dn: Option<&str>,
        _purpose: Purpose,
    ) -> Self {
        ConnLabels
    }
}

/// Publishes nothing (the field keeps `Publisher::default()` the one way to
/// make one, as with the real publisher).
#[derive(Default)]
pub(crate) struct Publisher {
    _nothing: (),
}

impl Publisher {
    pub(crate) fn publish(
        &self,
        _cfg: &MetricsConfig,
        _driver: &Driver,
        _creds: &CredTable,
        _sockets: usize,
    ) {
    }

    pub(crate) fn zero_all(&self) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcquireResult {
    Granted,
    Failed,
    Timeout,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Closed {
    Core(#[allow(dead_code)] CloseReason),
    Lost,
    Unwanted,
    Forked,
}

pub(crate) fn describe() {}

pub(crate) fn record_op(_cfg: &MetricsConfig, _op: &'static str, _outcome: Outcome) {}

pub(crate) fn record_retry(_cfg: &MetricsConfig, _op: &'static str) {}

pub(crate) fn record_acquire(
    _cfg: &MetricsConfig,
    _kind: UserKind,
    _result: AcquireResult,
    _waited: Duration,
) {
}

pub(crate) fn record_opened(_cfg: &MetricsConfig, _conn: &ConnLabels) {}

pub(crate) fn record_closed(_cfg: &MetricsConfig, _conn: &ConnLabels, _why: Closed) {}

pub(crate) fn record_connect_failure(_cfg: &MetricsConfig, _addr: &str, _kind: ConnErrorKind) {}
