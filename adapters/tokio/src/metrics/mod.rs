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

mod labels;
mod names;
mod outcome;
mod publish;
mod record;
#[cfg(test)]
mod testing;

pub(crate) use labels::{ConnLabels, MetricsConfig};
pub(crate) use names::describe;
pub use names::{
    ACQUIRE_SECONDS, CONNECT_FAILURES_TOTAL, CONNECTIONS, CONNECTIONS_CLOSED_TOTAL,
    CONNECTIONS_OPENED_TOTAL, FAILBACKS_TOTAL, FAILOVERS_TOTAL, HELD_BACK_TOTAL,
    LIVENESS_CHECKS_TOTAL, OPEN_SOCKETS, OPERATIONS_TOTAL, OPS, OUTCOMES,
    PROBES_BROUGHT_FORWARD_TOTAL, PROBES_TOTAL, RETRIES_TOTAL, SERVER_UP, STALE_VERDICTS_TOTAL,
    USERS, WAITERS,
};
pub(crate) use outcome::Outcome;
pub(crate) use publish::Publisher;
pub(crate) use record::{
    AcquireResult, Closed, record_acquire, record_closed, record_connect_failure, record_op,
    record_opened, record_retry,
};
