//! The public metric names, their label values and their descriptions.

use metrics::Unit;

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
/// is down, -1 while it was never reached: no connection to it has opened
/// or failed yet ([`Health::Unknown`](crate::Health::Unknown); a backup
/// server never needed, or any server before the first connect) (gauge).
/// Published for the servers of the current configuration and any server
/// with live connections. An alert on `== 0` fires for a server known down
/// only; to count the servers up, count the series `== 1` rather than sum.
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
    "change_password",
    "lease",
];

/// Every `outcome` label value of [`OPERATIONS_TOTAL`], derived from the
/// [`Error`] variant, never from its text:
///
/// | outcome | meaning |
/// | --- | --- |
/// | `ok` | success (a compare that answered false too) |
/// | `ldap_error` | [`Error::Ldap`]: the server answered with another result code |
/// | `invalid_credentials` | `authenticate`, `change_password`: the password was wrong; other operations: the server refused the pool's bind credential |
/// | `account_locked` | `authenticate`, `change_password`: the password policy says the account is locked |
/// | `password_expired` | `authenticate`, `change_password`: the password expired, no grace login left |
/// | `must_change` | `authenticate`: the password is right but was reset and must be changed |
/// | `password_refused` | `change_password`: the server refused the new password |
/// | `timeout` | [`Error::Timeout`] or no connection before the deadline |
/// | `unavailable` | no working connection: servers down, connects failing, tries used up |
/// | `outcome_unknown` | [`Error::OutcomeUnknown`]: a write whose connection died after sending |
/// | `lease_dead` | [`Error::LeaseDead`] |
/// | `invalid_request` | [`Error::InvalidRequest`] and other caller errors: nothing was sent |
/// | `shut_down` | the pool was shut down |
/// | `reloaded` | the configuration was reloaded under a waiting operation |
/// | `forked` | the process forked |
///
/// [`Error`]: crate::Error
/// [`Error::Ldap`]: crate::Error::Ldap
/// [`Error::Timeout`]: crate::Error::Timeout
/// [`Error::OutcomeUnknown`]: crate::Error::OutcomeUnknown
/// [`Error::LeaseDead`]: crate::Error::LeaseDead
/// [`Error::InvalidRequest`]: crate::Error::InvalidRequest
pub const OUTCOMES: &[&str] = &[
    "ok",
    "ldap_error",
    "invalid_credentials",
    "account_locked",
    "password_expired",
    "must_change",
    "password_refused",
    "timeout",
    "unavailable",
    "outcome_unknown",
    "lease_dead",
    "invalid_request",
    "shut_down",
    "reloaded",
    "forked",
];

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
    describe_gauge!(
        SERVER_UP,
        "1 while the server is up, 0 while down, -1 while never reached"
    );
    describe_gauge!(OPEN_SOCKETS, Unit::Count, "Open sockets");
}
