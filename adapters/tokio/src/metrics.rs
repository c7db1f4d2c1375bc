//! The pool's counters, gauges and histogram through the [`metrics`] facade.
//!
//! Nothing is exported here: the application installs a recorder (a
//! Prometheus exporter, say) and the pool records into it. Without a
//! recorder every call is a no-op of the facade.
//!
//! Three kinds of figures, each recorded where it is exact and cheap:
//!
//! * **Events the adapter sees** (an operation's outcome, a retry, the wait
//!   for a connection, a socket opened or closed) are recorded where they
//!   happen, on the operation's task. An operation costs one counter and one
//!   histogram sample per try; nothing takes the driver's lock for metrics.
//! * **Counters the core keeps** (a server marked down or up, probes) are
//!   copied with [`Counter::absolute`](metrics::Counter::absolute) when the
//!   gauges are published, so they are never counted twice.
//! * **Gauges** (connections by server, credential, purpose and state;
//!   waiters; users; server health; open sockets) are read from one snapshot
//!   of the core taken under its lock, every
//!   [`PoolBuilder::metrics_interval`](crate::PoolBuilder::metrics_interval)
//!   (default 1 s) by a task of the pool, after a reload and a shutdown, and
//!   on [`Pool::publish_metrics`](crate::Pool::publish_metrics). A label set
//!   that was published and is gone from the new snapshot (a server removed
//!   by a reload, the last connection of a credential closed) is set to 0,
//!   never left at its last value; dropping the pool sets every gauge it
//!   published to 0.
//!
//! Labels never carry a password. Server labels are URLs with any
//! `user:password@` part redacted; credential labels are `anonymous`,
//! `cred-N` (the pool's opaque number for a credential), a label the caller
//! chose ([`PoolBuilder::metrics_credential_label`]), or the bind DN only if
//! the caller opted in ([`PoolBuilder::metrics_bind_dn_labels`]). A password
//! check's DN is never a label: its private connection is unbound until the
//! check, so it counts as `anonymous`.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | [`OPERATIONS_TOTAL`] | counter | `op`, `outcome` |
//! | [`RETRIES_TOTAL`] | counter | `op` |
//! | [`ACQUIRE_SECONDS`] | histogram | `purpose`, `result` |
//! | [`CONNECTIONS_OPENED_TOTAL`] | counter | `server`, `credential`, `purpose` |
//! | [`CONNECTIONS_CLOSED_TOTAL`] | counter | `server`, `credential`, `purpose`, `reason` |
//! | [`CONNECT_FAILURES_TOTAL`] | counter | `server`, `kind` |
//! | [`FAILOVERS_TOTAL`] | counter | `server` |
//! | [`FAILBACKS_TOTAL`] | counter | `server` |
//! | [`PROBES_TOTAL`] | counter | `server` |
//! | [`LIVENESS_CHECKS_TOTAL`] | counter | `server` |
//! | [`STALE_VERDICTS_TOTAL`] | counter | `server` |
//! | [`HELD_BACK_TOTAL`] | counter | `server` |
//! | [`PROBES_BROUGHT_FORWARD_TOTAL`] | counter | `server` |
//! | [`CONNECTIONS`] | gauge | `server`, `credential`, `purpose`, `state` |
//! | [`USERS`] | gauge | `server` |
//! | [`WAITERS`] | gauge | |
//! | [`SERVER_UP`] | gauge | `server` |
//! | [`OPEN_SOCKETS`] | gauge | |
//!
//! Every metric also has a `pool` label when
//! [`PoolBuilder::metrics_name`](crate::PoolBuilder::metrics_name) is set.
//!
//! [`PoolBuilder::metrics_credential_label`]: crate::PoolBuilder::metrics_credential_label
//! [`PoolBuilder::metrics_bind_dn_labels`]: crate::PoolBuilder::metrics_bind_dn_labels

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldapmux_core::{
    CloseReason, ConnErrorKind, CredKey, Health, Purpose, ServerId, Status, UserKind,
};
use ldapmux_driver::Driver;
use metrics::{Key, Label, Metadata, SharedString, Unit};

use crate::Error;
use crate::credential::CredTable;

/// Operations by kind and outcome (counter). `op` is the method called
/// (see [`OPS`]); `outcome` one of [`OUTCOMES`]. A [`ConnGuard`]'s calls
/// count too; a streaming search counts once, when its first entry is read.
///
/// [`ConnGuard`]: crate::ConnGuard
pub const OPERATIONS_TOTAL: &str = "ldapmux_operations_total";
/// Retries: further tries of a read whose connection failed or died
/// (counter, by `op`). Counted when the pool starts the new try.
pub const RETRIES_TOTAL: &str = "ldapmux_retries_total";
/// Seconds from asking the pool for a connection to its answer, per try
/// (histogram). `purpose`: `read`, `write`, `private`; `result`: `granted`,
/// `failed` (the pool answered with an error) or `timeout` (the operation's
/// deadline passed first).
pub const ACQUIRE_SECONDS: &str = "ldapmux_acquire_seconds";
/// Connections opened and bound (counter). Counts every connection the
/// server accepted and bound, including one the pool no longer wanted when
/// it opened.
pub const CONNECTIONS_OPENED_TOTAL: &str = "ldapmux_connections_opened_total";
/// Connections closed or lost (counter). `reason`: `idle`, `max_age`,
/// `broken`, `server_down`, `fail_back`, `reload`, `shutdown`, `done`,
/// `connect_timeout`, `make_room` (the core's close reasons), `lost` (the
/// socket ended by itself), `unwanted` (opened after the pool gave up on
/// it), `forked` (left to the parent process).
pub const CONNECTIONS_CLOSED_TOTAL: &str = "ldapmux_connections_closed_total";
/// Connection attempts that failed (counter). `kind`: `refused`, `timeout`,
/// `tls`, `invalid_credentials`, `io`, `server_down`. Opens held back
/// because the credential was refused moments ago are not attempts.
pub const CONNECT_FAILURES_TOTAL: &str = "ldapmux_connect_failures_total";
/// Fail-overs: times the server was marked down (counter, from the core):
/// its connections were closed and operations moved to the next server.
pub const FAILOVERS_TOTAL: &str = "ldapmux_failovers_total";
/// Fail-backs: times the server was marked up again after being down
/// (counter, from the core). Read connections move back to it after the
/// fail-back hold-down when it is preferred over the servers in use.
pub const FAILBACKS_TOTAL: &str = "ldapmux_failbacks_total";
/// Probes sent to a down or returning server (counter, from the core).
pub const PROBES_TOTAL: &str = "ldapmux_probes_total";
/// Liveness checks of an up server, each started by an operation that got
/// no answer in time (counter, from the core).
pub const LIVENESS_CHECKS_TOTAL: &str = "ldapmux_liveness_checks_total";
/// Failed liveness checks that marked nothing down because the server
/// answered after the check began (counter, from the core).
pub const STALE_VERDICTS_TOTAL: &str = "ldapmux_stale_verdicts_total";
/// Opens not sent because the server refused their credential moments ago
/// (counter, from the core): the callers got `InvalidCredentials` at once.
pub const HELD_BACK_TOTAL: &str = "ldapmux_refused_binds_held_back_total";
/// Probes brought forward for operations that found every server down
/// (counter, from the core; also counted in [`PROBES_TOTAL`]).
pub const PROBES_BROUGHT_FORWARD_TOTAL: &str = "ldapmux_probes_brought_forward_total";
/// Live connections (gauge). `state`: `connecting`, `open`, `draining`
/// (no new users; closes when the last leaves), `broken` (died; closes when
/// the last user leaves). `purpose`: `read`, `write`, `private`.
pub const CONNECTIONS: &str = "ldapmux_connections";
/// Users on connections to the server (gauge).
pub const USERS: &str = "ldapmux_users";
/// Users waiting for a connection: queued behind a connection limit or
/// waiting for one being opened (gauge).
pub const WAITERS: &str = "ldapmux_waiters";
/// 1 while the server is up (including its fail-back hold-down), 0 while it
/// is down (gauge). Published for the servers of the current configuration
/// and any server with live connections.
pub const SERVER_UP: &str = "ldapmux_server_up";
/// Sockets whose connection task still runs, the runtime's own count (gauge).
pub const OPEN_SOCKETS: &str = "ldapmux_open_sockets";

/// Every `op` label value of [`OPERATIONS_TOTAL`].
pub const OPS: &[&str] = &[
    "search",
    "streaming_search",
    "compare",
    "add",
    "modify",
    "delete",
    "modify_dn",
    "extended",
    "whoami",
    "authenticate",
    "lease",
];

/// Every `outcome` label value of [`OPERATIONS_TOTAL`], derived from the
/// [`Error`] variant, never from its text:
///
/// | outcome | meaning |
/// | --- | --- |
/// | `ok` | success (a compare that answered false too) |
/// | `ldap_error` | [`Error::Ldap`]: the server answered with another result code |
/// | `invalid_credentials` | `authenticate`: the password was wrong; other operations: the server refused the pool's bind credential |
/// | `timeout` | [`Error::Timeout`] or no connection before the deadline |
/// | `unavailable` | no working connection: servers down, connects failing, tries used up |
/// | `outcome_unknown` | [`Error::OutcomeUnknown`]: a write whose connection died after sending |
/// | `lease_dead` | [`Error::LeaseDead`] |
/// | `invalid_request` | [`Error::InvalidRequest`] and other caller errors: nothing was sent |
/// | `shut_down` | the pool was shut down |
/// | `reloaded` | the configuration was reloaded under a waiting operation |
/// | `forked` | the process forked |
pub const OUTCOMES: &[&str] = &[
    "ok",
    "ldap_error",
    "invalid_credentials",
    "timeout",
    "unavailable",
    "outcome_unknown",
    "lease_dead",
    "invalid_request",
    "shut_down",
    "reloaded",
    "forked",
];

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// `OutcomeUnknown` mirrors `Error::OutcomeUnknown`.
#[allow(clippy::enum_variant_names)]
pub(crate) enum Outcome {
    Ok,
    LdapError,
    InvalidCredentials,
    Timeout,
    Unavailable,
    OutcomeUnknown,
    LeaseDead,
    InvalidRequest,
    ShutDown,
    Reloaded,
    Forked,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::LdapError => "ldap_error",
            Outcome::InvalidCredentials => "invalid_credentials",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::OutcomeUnknown => "outcome_unknown",
            Outcome::LeaseDead => "lease_dead",
            Outcome::InvalidRequest => "invalid_request",
            Outcome::ShutDown => "shut_down",
            Outcome::Reloaded => "reloaded",
            Outcome::Forked => "forked",
        }
    }

    /// The outcome of an operation that failed with `error`.
    pub(crate) fn of_error(error: &Error) -> Outcome {
        use ldapmux_core::Error as Core;
        match error {
            Error::Ldap(_) => Outcome::LdapError,
            Error::OutcomeUnknown { .. } => Outcome::OutcomeUnknown,
            Error::Timeout { .. } => Outcome::Timeout,
            Error::InvalidRequest(_) => Outcome::InvalidRequest,
            Error::LeaseDead(_) => Outcome::LeaseDead,
            Error::Pool(core) => match core {
                Core::InvalidCredentials { .. } => Outcome::InvalidCredentials,
                Core::ConnectFailed { cause, .. } | Core::ConnectionLost { cause, .. }
                    if cause.kind == ConnErrorKind::InvalidCredentials =>
                {
                    Outcome::InvalidCredentials
                }
                Core::AcquireTimeout => Outcome::Timeout,
                Core::ShutDown => Outcome::ShutDown,
                Core::Reloaded => Outcome::Reloaded,
                Core::Forked => Outcome::Forked,
                other => match other.blame() {
                    ldapmux_core::Blame::Server => Outcome::Unavailable,
                    ldapmux_core::Blame::Lifecycle => Outcome::ShutDown,
                    ldapmux_core::Blame::Configuration | ldapmux_core::Blame::Caller => {
                        Outcome::InvalidRequest
                    }
                },
            },
        }
    }
}

/// What the builder says about metrics; part of each generation's settings.
#[derive(Clone, Debug)]
pub(crate) struct MetricsConfig {
    /// The `pool` label, if any.
    pub(crate) name: Option<SharedString>,
    /// Label credentials with their bind DN (opt-in).
    pub(crate) bind_dn_labels: bool,
    /// Caller-chosen credential labels by bind DN (compared case-insensitively).
    pub(crate) cred_labels: Vec<(String, SharedString)>,
    /// How often the gauges are published (`None`: only on demand).
    pub(crate) interval: Option<Duration>,
    /// The keys of the per-operation metrics, built on first use.
    pub(crate) keys: KeyCache,
}

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

const PURPOSES: [&str; 3] = ["read", "write", "private"];
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

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            name: None,
            bind_dn_labels: false,
            cred_labels: Vec::new(),
            interval: Some(Duration::from_secs(1)),
            keys: KeyCache::default(),
        }
    }
}

impl MetricsConfig {
    /// `pairs` plus the `pool` label if set.
    fn labels<const N: usize>(&self, pairs: [(&'static str, SharedString); N]) -> Vec<Label> {
        let mut labels = Vec::with_capacity(N + 1);
        if let Some(name) = &self.name {
            labels.push(Label::new("pool", name.clone()));
        }
        labels.extend(pairs.into_iter().map(|(k, v)| Label::new(k, v)));
        labels
    }

    /// The label of the credential `key` whose bind DN is `dn` (`None`:
    /// anonymous or unknown). Never a password; the DN only if opted in.
    pub(crate) fn credential_label(&self, key: CredKey, dn: Option<&str>) -> SharedString {
        if key == CredKey::ANONYMOUS {
            return SharedString::const_str("anonymous");
        }
        if let Some(dn) = dn {
            if let Some((_, label)) = self
                .cred_labels
                .iter()
                .find(|(d, _)| d.eq_ignore_ascii_case(dn))
            {
                return label.clone();
            }
            if self.bind_dn_labels {
                return SharedString::from(Arc::<str>::from(dn));
            }
        }
        SharedString::from(format!("cred-{}", key.0))
    }
}

/// The `server` label of an address: the URL with any password redacted.
pub(crate) fn server_label(addr: &str) -> SharedString {
    SharedString::from(Arc::<str>::from(crate::url::redacted(addr)))
}

fn purpose_label(p: Purpose) -> &'static str {
    match p {
        Purpose::Read => "read",
        Purpose::Write => "write",
        Purpose::Private => "private",
    }
}

/// The `purpose` label of an operation kind.
pub(crate) fn kind_label(kind: UserKind) -> &'static str {
    purpose_label(kind.purpose())
}

fn close_reason_label(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Idle => "idle",
        CloseReason::MaxAge => "max_age",
        CloseReason::Broken => "broken",
        CloseReason::ServerDown => "server_down",
        CloseReason::FailBack => "fail_back",
        CloseReason::Reload => "reload",
        CloseReason::Shutdown => "shutdown",
        CloseReason::Done => "done",
        CloseReason::ConnectTimeout => "connect_timeout",
        CloseReason::MakeRoom => "make_room",
        CloseReason::RaceLost => "race_lost",
        CloseReason::SiblingBroken => "sibling_broken",
        _ => "other",
    }
}

fn conn_error_label(k: ConnErrorKind) -> &'static str {
    match k {
        ConnErrorKind::Refused => "refused",
        ConnErrorKind::Timeout => "timeout",
        ConnErrorKind::Tls => "tls",
        ConnErrorKind::InvalidCredentials => "invalid_credentials",
        ConnErrorKind::Io => "io",
        ConnErrorKind::ServerDown => "server_down",
        _ => "other",
    }
}

// ----------------------------------------------------------------------
// Events, recorded where they happen
// ----------------------------------------------------------------------

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

/// The labels of one connection, computed once when it opens.
#[derive(Clone, Debug)]
pub(crate) struct ConnLabels {
    pub(crate) server: SharedString,
    pub(crate) credential: SharedString,
    pub(crate) purpose: &'static str,
}

impl ConnLabels {
    pub(crate) fn new(
        cfg: &MetricsConfig,
        addr: &str,
        cred: CredKey,
        dn: Option<&str>,
        purpose: Purpose,
    ) -> Self {
        ConnLabels {
            server: server_label(addr),
            credential: cfg.credential_label(cred, dn),
            purpose: purpose_label(purpose),
        }
    }
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

/// Describes every metric to the recorder (units and help texts for
/// exporters). Cheap; called when a pool starts, so a recorder installed
/// before any pool gets the descriptions.
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        OPERATIONS_TOTAL,
        Unit::Count,
        "LDAP pool operations by kind and outcome"
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Further tries of reads whose connection failed"
    );
    describe_histogram!(
        ACQUIRE_SECONDS,
        Unit::Seconds,
        "Wait for a pooled connection, per try"
    );
    describe_counter!(
        CONNECTIONS_OPENED_TOTAL,
        Unit::Count,
        "LDAP connections opened and bound"
    );
    describe_counter!(
        CONNECTIONS_CLOSED_TOTAL,
        Unit::Count,
        "LDAP connections closed or lost, by reason"
    );
    describe_counter!(
        CONNECT_FAILURES_TOTAL,
        Unit::Count,
        "Failed connection attempts, by kind"
    );
    describe_counter!(
        FAILOVERS_TOTAL,
        Unit::Count,
        "Times a server was marked down"
    );
    describe_counter!(
        FAILBACKS_TOTAL,
        Unit::Count,
        "Times a server was marked up again"
    );
    describe_counter!(
        PROBES_TOTAL,
        Unit::Count,
        "Probes of down or returning servers"
    );
    describe_counter!(
        LIVENESS_CHECKS_TOTAL,
        Unit::Count,
        "Liveness checks after an operation timed out"
    );
    describe_counter!(
        STALE_VERDICTS_TOTAL,
        Unit::Count,
        "Failed checks overruled by a fresher answer"
    );
    describe_counter!(
        HELD_BACK_TOTAL,
        Unit::Count,
        "Opens held back after a refused bind"
    );
    describe_counter!(
        PROBES_BROUGHT_FORWARD_TOTAL,
        Unit::Count,
        "Probes brought forward with every server down"
    );
    describe_gauge!(CONNECTIONS, Unit::Count, "Live LDAP connections");
    describe_gauge!(USERS, Unit::Count, "Operations on connections to a server");
    describe_gauge!(WAITERS, Unit::Count, "Operations waiting for a connection");
    describe_gauge!(SERVER_UP, "1 while the server is up, 0 while down");
    describe_gauge!(OPEN_SOCKETS, Unit::Count, "Open sockets");
}

// ----------------------------------------------------------------------
// Gauges and the core's counters, published from a snapshot
// ----------------------------------------------------------------------

/// What a publication reads from the core, under its lock once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) status: Option<Status>,
    /// Per live connection: server, credential, purpose, state label.
    pub(crate) conns: Vec<(ServerId, CredKey, Purpose, &'static str)>,
    /// Users waiting for a connection being opened.
    pub(crate) conn_waiters: usize,
    /// Addresses of the current configuration's servers.
    pub(crate) configured: Vec<String>,
    /// The runtime's open sockets.
    pub(crate) sockets: usize,
}

impl Snapshot {
    /// Reads the core (one lock) and the runtime's socket count.
    pub(crate) fn take(driver: &Driver, sockets: usize) -> Snapshot {
        driver.inspect(|p| {
            let mut conn_waiters = 0;
            let conns = p
                .conns()
                .map(|c| {
                    conn_waiters += c.waiters.len();
                    let state = match c.phase {
                        ldapmux_core::ConnPhase::Connecting => "connecting",
                        ldapmux_core::ConnPhase::Open => "open",
                        ldapmux_core::ConnPhase::Draining => "draining",
                        ldapmux_core::ConnPhase::Broken(_) => "broken",
                    };
                    (c.server, c.cred, c.purpose, state)
                })
                .collect();
            Snapshot {
                status: Some(p.status()),
                conns,
                conn_waiters,
                configured: p
                    .config()
                    .map(|c| c.servers.iter().map(|s| s.addr.clone()).collect())
                    .unwrap_or_default(),
                sockets,
            }
        })
    }
}

type MetricKey = (&'static str, Vec<Label>);

/// The values one snapshot gives: gauges, and the core's counters.
#[derive(Debug, Default)]
pub(crate) struct Values {
    pub(crate) gauges: HashMap<MetricKey, f64>,
    pub(crate) counters: Vec<(MetricKey, u64)>,
}

impl Values {
    /// Computes every gauge and core counter of `snap`. `dn` gives the bind
    /// DN of a credential key (for its label).
    pub(crate) fn of(
        cfg: &MetricsConfig,
        snap: &Snapshot,
        dn: impl Fn(CredKey) -> Option<String>,
    ) -> Values {
        let mut v = Values::default();
        let Some(status) = &snap.status else {
            return v;
        };
        let addr = |id: ServerId| {
            status
                .servers
                .get(id.index())
                .map_or_else(|| id.to_string(), |s| s.addr.clone())
        };
        let mut cred_labels: HashMap<CredKey, SharedString> = HashMap::new();
        let mut server_labels: HashMap<ServerId, SharedString> = HashMap::new();
        for &(server, cred, purpose, state) in &snap.conns {
            let s = server_labels
                .entry(server)
                .or_insert_with(|| server_label(&addr(server)))
                .clone();
            let c = cred_labels
                .entry(cred)
                .or_insert_with(|| cfg.credential_label(cred, dn(cred).as_deref()))
                .clone();
            let key = (
                CONNECTIONS,
                cfg.labels([
                    ("server", s),
                    ("credential", c),
                    ("purpose", SharedString::const_str(purpose_label(purpose))),
                    ("state", SharedString::const_str(state)),
                ]),
            );
            *v.gauges.entry(key).or_insert(0.0) += 1.0;
        }
        v.gauges.insert(
            (WAITERS, cfg.labels([])),
            (status.queued + snap.conn_waiters) as f64,
        );
        v.gauges
            .insert((OPEN_SOCKETS, cfg.labels([])), snap.sockets as f64);
        for s in &status.servers {
            let label = server_label(&s.addr);
            let configured = snap
                .configured
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&s.addr));
            if configured || s.conns > 0 {
                let up = !matches!(s.health, Health::Down { .. });
                v.gauges.insert(
                    (SERVER_UP, cfg.labels([("server", label.clone())])),
                    if up { 1.0 } else { 0.0 },
                );
                v.gauges.insert(
                    (USERS, cfg.labels([("server", label.clone())])),
                    f64::from(s.users),
                );
            }
            for (name, value) in [
                (FAILOVERS_TOTAL, s.counters.marked_down),
                (FAILBACKS_TOTAL, s.counters.marked_up),
                (PROBES_TOTAL, s.counters.probes),
                (LIVENESS_CHECKS_TOTAL, s.counters.checks),
                (STALE_VERDICTS_TOTAL, s.counters.stale_verdicts),
                (HELD_BACK_TOTAL, s.counters.held_back),
                (PROBES_BROUGHT_FORWARD_TOTAL, s.counters.brought_forward),
            ] {
                v.counters
                    .push(((name, cfg.labels([("server", label.clone())])), value));
            }
        }
        v
    }
}

/// Publishes snapshots, remembering which gauge label sets it set so that
/// one gone from the next snapshot is set to 0.
#[derive(Default)]
pub(crate) struct Publisher {
    published: Mutex<HashSet<MetricKey>>,
}

impl Publisher {
    /// Takes a snapshot and publishes it. Serialised, so an older snapshot
    /// never overwrites a newer one. Lock order: this, then the driver's.
    pub(crate) fn publish(
        &self,
        cfg: &MetricsConfig,
        driver: &Driver,
        creds: &CredTable,
        sockets: usize,
    ) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let snap = Snapshot::take(driver, sockets);
        let values = Values::of(cfg, &snap, |k| creds.dn(k));
        apply(&mut published, values);
    }

    /// Sets every gauge this pool published to 0 (the pool is gone).
    pub(crate) fn zero_all(&self) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        apply(&mut published, Values::default());
    }
}

/// Sets `values`, and 0 for every label set in `published` not in them.
fn apply(published: &mut HashSet<MetricKey>, values: Values) {
    for (name, labels) in published.drain() {
        if !values.gauges.contains_key(&(name, labels.clone())) {
            metrics::gauge!(name, labels).set(0.0);
        }
    }
    for ((name, labels), value) in values.counters {
        metrics::counter!(name, labels).absolute(value);
    }
    for ((name, labels), value) in values.gauges {
        metrics::gauge!(name, labels.clone()).set(value);
        published.insert((name, labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldapmux_core::ConnError;
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
    };
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A recorder keeping the last value of every counter and gauge.
    #[derive(Default)]
    struct Rec {
        values: Mutex<HashMap<Key, Arc<Cell>>>,
    }
    #[derive(Default)]
    struct Cell(AtomicU64);
    impl CounterFn for Cell {
        fn increment(&self, v: u64) {
            self.0.fetch_add(v, Ordering::SeqCst);
        }
        fn absolute(&self, v: u64) {
            self.0.fetch_max(v, Ordering::SeqCst);
        }
    }
    impl GaugeFn for Cell {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, v: f64) {
            self.0.store(v as u64, Ordering::SeqCst);
        }
    }
    impl Rec {
        fn cell(&self, key: &Key) -> Arc<Cell> {
            self.values
                .lock()
                .unwrap()
                .entry(key.clone())
                .or_default()
                .clone()
        }
        fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
            let values = self.values.lock().unwrap();
            values
                .iter()
                .find(|(k, _)| {
                    k.name() == name
                        && k.labels().count() == labels.len()
                        && labels
                            .iter()
                            .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv))
                })
                .map(|(_, c)| c.0.load(Ordering::SeqCst))
        }
    }
    impl Recorder for Rec {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.cell(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.cell(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    /// A core pool with servers `ldap://a:389` and `ldap://b:389`.
    fn core_pool() -> ldapmux_core::Pool {
        let core = ldapmux_core::Config::builder()
            .server("ldap://a:389")
            .server("ldap://b:389")
            .build()
            .unwrap();
        ldapmux_core::Pool::new(core, 1, ldapmux_core::Instant::ZERO).unwrap()
    }

    /// The ids of servers a and b.
    fn ab() -> (ServerId, ServerId) {
        let s = core_pool().status().servers;
        (s[0].id, s[1].id)
    }

    #[test]
    fn every_error_variant_has_its_outcome() {
        use ldapmux_core::Error as Core;
        let (a, b) = ab();
        let lost = |kind| Core::ConnectionLost {
            server: a,
            cause: ConnError::new(kind, "x"),
        };
        let cases: Vec<(Error, Outcome)> = vec![
            (
                Error::Ldap(crate::LdapStatus {
                    rc: 32,
                    matched: String::new(),
                    text: "invalid credentials timeout".into(),
                }),
                Outcome::LdapError,
            ),
            (
                Error::OutcomeUnknown {
                    operation: "add",
                    server: "ldap://h".into(),
                    cause: "timeout".into(),
                },
                Outcome::OutcomeUnknown,
            ),
            (
                Error::Timeout {
                    operation: "search",
                    after: Duration::from_secs(1),
                },
                Outcome::Timeout,
            ),
            (
                Error::InvalidRequest("shut down".into()),
                Outcome::InvalidRequest,
            ),
            (Error::LeaseDead("timeout".into()), Outcome::LeaseDead),
            (
                Error::Pool(Core::InvalidCredentials { server: a }),
                Outcome::InvalidCredentials,
            ),
            (
                Error::Pool(Core::ConnectFailed {
                    server: a,
                    cause: ConnError::new(ConnErrorKind::InvalidCredentials, "refused"),
                }),
                Outcome::InvalidCredentials,
            ),
            (
                Error::Pool(Core::ConnectFailed {
                    server: a,
                    cause: ConnError::new(ConnErrorKind::Refused, "invalid credentials"),
                }),
                Outcome::Unavailable,
            ),
            (Error::Pool(lost(ConnErrorKind::Io)), Outcome::Unavailable),
            (Error::Pool(lost(ConnErrorKind::Tls)), Outcome::Unavailable),
            (
                Error::Pool(Core::ServerDown { server: b }),
                Outcome::Unavailable,
            ),
            (Error::Pool(Core::NoServerAvailable), Outcome::Unavailable),
            (Error::Pool(Core::AcquireTimeout), Outcome::Timeout),
            (Error::Pool(Core::ShutDown), Outcome::ShutDown),
            (Error::Pool(Core::Reloaded), Outcome::Reloaded),
            (Error::Pool(Core::Forked), Outcome::Forked),
            (Error::Pool(Core::UnknownServer(b)), Outcome::InvalidRequest),
            (Error::Pool(Core::ServerTableFull), Outcome::InvalidRequest),
            (
                Error::Pool(Core::Config(ldapmux_core::ConfigError::NoServers)),
                Outcome::InvalidRequest,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(Outcome::of_error(&error), want, "{error:?}");
            assert!(OUTCOMES.contains(&want.as_str()), "{want:?} not listed");
        }
    }

    #[test]
    fn credential_labels_show_no_dn_unless_asked_and_never_a_password() {
        let dn = "uid=alice,ou=people,dc=example,dc=com";
        let mut cfg = MetricsConfig::default();
        assert_eq!(
            &*cfg.credential_label(CredKey::ANONYMOUS, None),
            "anonymous"
        );
        assert_eq!(&*cfg.credential_label(CredKey(3), Some(dn)), "cred-3");
        assert_eq!(&*cfg.credential_label(CredKey(4), None), "cred-4");
        cfg.bind_dn_labels = true;
        assert_eq!(&*cfg.credential_label(CredKey(3), Some(dn)), dn);
        assert_eq!(
            &*cfg.credential_label(CredKey::ANONYMOUS, None),
            "anonymous"
        );
        cfg.cred_labels.push((
            "UID=Alice,ou=people,dc=example,dc=com".into(),
            "reader".into(),
        ));
        assert_eq!(&*cfg.credential_label(CredKey(3), Some(dn)), "reader");
    }

    #[test]
    fn server_labels_redact_a_password() {
        assert_eq!(
            &*server_label("ldap://127.0.0.1:389"),
            "ldap://127.0.0.1:389"
        );
        let shown = server_label("ldaps://admin:s3cret@h:636/");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("admin"), "{shown}");
        assert_eq!(&*shown, "ldaps://<redacted>@h:636/");
    }

    #[test]
    fn the_pool_label_comes_first_when_set() {
        let mut cfg = MetricsConfig::default();
        let l = cfg.labels([("op", "search".into())]);
        assert_eq!(l, vec![Label::new("op", "search")]);
        cfg.name = Some("main".into());
        let l = cfg.labels([("op", "search".into())]);
        assert_eq!(
            l,
            vec![Label::new("pool", "main"), Label::new("op", "search")]
        );
    }

    fn snapshot(conns: Vec<(ServerId, CredKey, Purpose, &'static str)>) -> Snapshot {
        Snapshot {
            status: Some(core_pool().status()),
            conns,
            conn_waiters: 2,
            configured: vec!["ldap://a:389".into(), "ldap://b:389".into()],
            sockets: 0,
        }
    }

    #[test]
    fn each_core_counter_of_a_server_is_exported_under_its_own_name() {
        let cfg = MetricsConfig::default();
        let mut snap = snapshot(vec![]);
        let status = snap.status.as_mut().expect("status");
        let c = &mut status.servers[0].counters;
        (c.marked_down, c.marked_up, c.probes) = (1, 2, 3);
        (c.checks, c.stale_verdicts, c.held_back, c.brought_forward) = (4, 5, 6, 7);
        let addr = status.servers[0].addr.clone();
        let values = Values::of(&cfg, &snap, |_| None);
        let of = |name: &str| {
            values
                .counters
                .iter()
                .find(|((n, labels), _)| *n == name && labels.iter().any(|l| l.value() == addr))
                .map(|(_, v)| *v)
        };
        assert_eq!(of(FAILOVERS_TOTAL), Some(1));
        assert_eq!(of(FAILBACKS_TOTAL), Some(2));
        assert_eq!(of(PROBES_TOTAL), Some(3));
        assert_eq!(of(LIVENESS_CHECKS_TOTAL), Some(4));
        assert_eq!(of(STALE_VERDICTS_TOTAL), Some(5));
        assert_eq!(of(HELD_BACK_TOTAL), Some(6));
        assert_eq!(of(PROBES_BROUGHT_FORWARD_TOTAL), Some(7));
    }

    #[test]
    fn gauges_aggregate_and_a_vanished_label_set_goes_to_zero() {
        let rec = Rec::default();
        let cfg = MetricsConfig {
            name: Some("p".into()),
            ..MetricsConfig::default()
        };
        let publisher = Publisher::default();
        let (a, b) = ab();
        let dn = |k: CredKey| (k == CredKey(1)).then(|| "cn=reader,dc=x".to_owned());
        let conn = |server: &str, cred: &str, state: &str| {
            rec.get(
                CONNECTIONS,
                &[
                    ("pool", "p"),
                    ("server", server),
                    ("credential", cred),
                    ("purpose", "read"),
                    ("state", state),
                ],
            )
        };
        metrics::with_local_recorder(&rec, || {
            let snap = snapshot(vec![
                (a, CredKey(1), Purpose::Read, "open"),
                (a, CredKey(1), Purpose::Read, "open"),
                (b, CredKey::ANONYMOUS, Purpose::Read, "open"),
            ]);
            let mut published = publisher.published.lock().unwrap();
            apply(&mut published, Values::of(&cfg, &snap, dn));
        });
        assert_eq!(conn("ldap://a:389", "cred-1", "open"), Some(2));
        assert_eq!(conn("ldap://b:389", "anonymous", "open"), Some(1));
        assert_eq!(rec.get(WAITERS, &[("pool", "p")]), Some(2));
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://b:389")]),
            Some(1)
        );

        // Server b's connection closes, one of a's drains.
        metrics::with_local_recorder(&rec, || {
            let snap = snapshot(vec![
                (a, CredKey(1), Purpose::Read, "open"),
                (a, CredKey(1), Purpose::Read, "draining"),
            ]);
            let mut published = publisher.published.lock().unwrap();
            apply(&mut published, Values::of(&cfg, &snap, dn));
        });
        assert_eq!(conn("ldap://a:389", "cred-1", "open"), Some(1));
        assert_eq!(conn("ldap://a:389", "cred-1", "draining"), Some(1));
        assert_eq!(conn("ldap://b:389", "anonymous", "open"), Some(0));

        // Server b is removed by a reload.
        metrics::with_local_recorder(&rec, || {
            let mut snap = snapshot(vec![]);
            snap.configured.pop();
            let mut published = publisher.published.lock().unwrap();
            apply(&mut published, Values::of(&cfg, &snap, dn));
        });
        assert_eq!(conn("ldap://a:389", "cred-1", "open"), Some(0));
        assert_eq!(conn("ldap://a:389", "cred-1", "draining"), Some(0));
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://b:389")]),
            Some(0)
        );
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://a:389")]),
            Some(1)
        );

        // The pool goes away.
        metrics::with_local_recorder(&rec, || publisher.zero_all());
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://a:389")]),
            Some(0)
        );
        assert!(publisher.published.lock().unwrap().is_empty());
    }

    #[test]
    fn dn_labels_merge_two_passwords_of_one_dn_into_one_series() {
        let rec = Rec::default();
        let cfg = MetricsConfig {
            bind_dn_labels: true,
            ..MetricsConfig::default()
        };
        let (a, _) = ab();
        // Keys 1 and 2: the same DN under two passwords.
        let snap = snapshot(vec![
            (a, CredKey(1), Purpose::Read, "open"),
            (a, CredKey(2), Purpose::Read, "open"),
        ]);
        metrics::with_local_recorder(&rec, || {
            let mut published = HashSet::new();
            apply(
                &mut published,
                Values::of(&cfg, &snap, |_| Some("cn=svc,dc=x".into())),
            );
        });
        assert_eq!(
            rec.get(
                CONNECTIONS,
                &[
                    ("server", "ldap://a:389"),
                    ("credential", "cn=svc,dc=x"),
                    ("purpose", "read"),
                    ("state", "open"),
                ]
            ),
            Some(2)
        );
    }

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
