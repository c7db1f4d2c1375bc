//! The public types of DNS SRV discovery: which records to ask for, one
//! record, what discovery is doing, and why a lookup gave no servers.

use std::time::Duration;

use ldapmux_core::Blame;

/// Which SRV records name the servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrvService {
    /// `_ldap._tcp.<domain>`, giving `ldap://` URLs (the default; combine
    /// with [`PoolBuilder::starttls`](crate::PoolBuilder::starttls) for StartTLS).
    #[default]
    Ldap,
    /// `_ldaps._tcp.<domain>`, giving `ldaps://` URLs.
    Ldaps,
}

impl SrvService {
    /// The record name's prefix: `_ldap._tcp` or `_ldaps._tcp`.
    pub fn label(self) -> &'static str {
        match self {
            SrvService::Ldap => "_ldap._tcp",
            SrvService::Ldaps => "_ldaps._tcp",
        }
    }
    /// The URL scheme of the servers these records name.
    pub(super) fn scheme(self) -> &'static str {
        match self {
            SrvService::Ldap => "ldap",
            SrvService::Ldaps => "ldaps",
        }
    }
}

/// A snapshot of DNS SRV discovery ([`Pool::dns_srv_status`](crate::Pool::dns_srv_status)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SrvStatus {
    /// The name looked up, e.g. `_ldap._tcp.example.com.`.
    pub name: String,
    /// The servers in use, in the order the pool prefers them.
    pub servers: Vec<String>,
    /// The records behind them, in the same order.
    pub records: Vec<SrvRecord>,
    /// Lookups done (the first, at build, included).
    pub lookups: u64,
    /// Lookups that failed or gave no usable server (the servers were kept).
    pub lookup_failures: u64,
    /// Answers that changed the server list (each one a reload).
    pub changes: u64,
    /// Lookups pulled forward because a listed server was marked down.
    pub failure_lookups: u64,
    /// The error of the last lookup, if it failed.
    pub last_error: Option<SrvError>,
    /// Time until the next scheduled lookup (`None` once stopped).
    pub next_lookup_in: Option<Duration>,
    /// Whether the discovery task still runs (false after shutdown or drop).
    pub running: bool,
}

/// One SRV record (RFC 2782), its target without the final dot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// TCP port.
    pub port: u16,
    /// Host name, lower case, e.g. `ldap1.example.com`; `.` for "no service".
    pub target: String,
}

/// Why a DNS SRV lookup gave no servers. The pool keeps the servers it has.
/// [`SrvError::blame`] says whose fault it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrvError {
    /// The lookup failed: no answer in time, refused, SERVFAIL, network.
    /// The DNS server or the network is to blame.
    #[error("DNS lookup of {name} failed: {reason}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        reason: String,
    },
    /// The name does not exist or has no SRV records: the zone (or the
    /// configured domain) is wrong.
    #[error("no SRV records for {name}")]
    NoRecords {
        /// The name looked up.
        name: String,
    },
    /// The only record has the target `.`: the zone says the service is
    /// not available in this domain (RFC 2782).
    #[error("{name}: the service is explicitly not available (SRV target \".\")")]
    ServiceUnavailable {
        /// The name looked up.
        name: String,
    },
    /// Records came back but none makes a usable server URL (port 0, a
    /// target that is not a host name).
    #[error("no usable SRV record for {name}: {reason}")]
    NoUsableRecord {
        /// The name looked up.
        name: String,
        /// Why the records were skipped.
        reason: String,
    },
    /// The resolver could not be set up (system configuration unreadable).
    #[error("DNS resolver configuration: {0}")]
    Resolver(String),
}

impl SrvError {
    /// Whose fault it is: [`Blame::Server`] for a failed lookup (DNS server
    /// or network), [`Blame::Configuration`] for what the zone or the
    /// resolver configuration says.
    pub fn blame(&self) -> Blame {
        match self {
            SrvError::Lookup { .. } => Blame::Server,
            _ => Blame::Configuration,
        }
    }
}
