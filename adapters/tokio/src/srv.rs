//! DNS SRV discovery (RFC 2782): the servers come from `_ldap._tcp.<domain>`
//! or `_ldaps._tcp.<domain>`, ordered by priority and weight, and are looked
//! up again on a schedule and soon after a server fails. A changed answer
//! becomes [`Pool::reload_keeping_servers`]: connections to servers still
//! listed stay, the others drain (behaviour 11).
//!
//! The parts, from pure to I/O:
//!
//! * [`rfc2782_order`]: the order of one answer, from a seeded RNG.
//! * [`Schedule`]: when to look up next, from instants given to it (TTL
//!   clamped to a floor and a ceiling; a failed lookup backs off; a server
//!   marked down pulls the next lookup forward, never closer than a floor to
//!   the previous one, so a flapping server or a failing DNS cannot cause a
//!   storm of queries).
//! * `lookup`: one query through `hickory-resolver`.
//! * `run`: the task that ties them to a pool it holds weakly; it ends when
//!   the pool shuts down or is dropped (and is aborted then).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use ldapmux_core::Blame;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::pool::WeakPool;
use crate::runtime::Notice;
use crate::url::ServerUrl;
use crate::{BuildError, Pool, PoolBuilder};

/// Which SRV records name the servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SrvService {
    /// `_ldap._tcp.<domain>`, giving `ldap://` URLs (the default; combine
    /// with [`PoolBuilder::starttls`] for StartTLS).
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
    fn scheme(self) -> &'static str {
        match self {
            SrvService::Ldap => "ldap",
            SrvService::Ldaps => "ldaps",
        }
    }
}

/// The discovery settings a builder carries ([`PoolBuilder::dns_srv`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SrvConfig {
    domain: String,
    service: SrvService,
    name_server: Option<SocketAddr>,
    refresh_min: Duration,
    refresh_max: Duration,
    failure_floor: Duration,
    lookup_timeout: Duration,
}

impl SrvConfig {
    fn new(domain: String) -> SrvConfig {
        SrvConfig {
            domain,
            service: SrvService::Ldap,
            name_server: None,
            refresh_min: Duration::from_secs(30),
            refresh_max: Duration::from_secs(3600),
            failure_floor: Duration::from_secs(5),
            lookup_timeout: Duration::from_secs(5),
        }
    }

    /// The fully qualified SRV name, e.g. `_ldap._tcp.example.com.`.
    fn name(&self) -> Result<Name, BuildError> {
        let domain = self.domain.trim().trim_end_matches('.');
        let bad = |reason: String| BuildError::InvalidField {
            field: "dns_srv",
            reason,
        };
        if domain.is_empty() {
            return Err(bad("empty domain".into()));
        }
        let text = format!("{}.{domain}.", self.service.label());
        let name = Name::from_ascii(&text).map_err(|e| bad(format!("{domain:?}: {e}")))?;
        Ok(name)
    }

    fn check(&self) -> Result<Name, BuildError> {
        let bad = |field, reason: &str| {
            Err(BuildError::InvalidField {
                field,
                reason: reason.into(),
            })
        };
        if self.refresh_min.is_zero() || self.refresh_min > self.refresh_max {
            return bad(
                "dns_refresh",
                "the floor must be positive and not above the ceiling",
            );
        }
        if self.failure_floor.is_zero() {
            return bad("dns_failure_refresh", "must be positive");
        }
        if self.lookup_timeout.is_zero() {
            return bad("dns_timeout", "must be positive");
        }
        if self.name_server.is_some_and(|a| a.port() == 0) {
            return bad("dns_server", "port 0");
        }
        self.name()
    }
}

// ----------------------------------------------------------------------
// Builder and pool API
// ----------------------------------------------------------------------

impl PoolBuilder {
    /// Finds the servers in DNS: the SRV records of `_ldap._tcp.<domain>`
    /// (or `_ldaps._tcp`, [`PoolBuilder::dns_srv_service`]). Build with
    /// [`PoolBuilder::build_discovered`]; the plain [`PoolBuilder::build`]
    /// refuses, as it cannot wait for the first answer. Servers must not
    /// also be listed by hand.
    pub fn dns_srv(mut self, domain: impl Into<String>) -> Self {
        let domain = domain.into();
        match &mut self.srv {
            Some(c) => c.domain = domain,
            None => self.srv = Some(SrvConfig::new(domain)),
        }
        self
    }

    /// Whether this builder finds its servers in DNS ([`PoolBuilder::dns_srv`]):
    /// then it is built with [`PoolBuilder::build_discovered`].
    pub fn uses_dns_srv(&self) -> bool {
        self.srv.is_some()
    }

    fn srv_mut(&mut self) -> &mut SrvConfig {
        self.srv
            .get_or_insert_with(|| SrvConfig::new(String::new()))
    }

    /// Which records to ask for (default [`SrvService::Ldap`]).
    pub fn dns_srv_service(mut self, service: SrvService) -> Self {
        self.srv_mut().service = service;
        self
    }

    /// Ask this name server (UDP, then TCP for long answers) instead of the
    /// system's (`/etc/resolv.conf`), e.g. `127.0.0.1:5353`.
    pub fn dns_server(mut self, addr: SocketAddr) -> Self {
        self.srv_mut().name_server = Some(addr);
        self
    }

    /// The answer is looked up again when its TTL (the smallest of its
    /// records') runs out, but no sooner than `floor` and no later than
    /// `ceiling` (default 30 s and 1 h).
    pub fn dns_refresh(mut self, floor: Duration, ceiling: Duration) -> Self {
        let c = self.srv_mut();
        c.refresh_min = floor;
        c.refresh_max = ceiling;
        self
    }

    /// After a listed server is marked down, the answer is looked up again
    /// at once, but never sooner than `floor` after the previous lookup; a
    /// failed lookup is retried after `floor`, doubling up to the refresh
    /// ceiling (default 5 s).
    pub fn dns_failure_refresh(mut self, floor: Duration) -> Self {
        self.srv_mut().failure_floor = floor;
        self
    }

    /// Bound on one lookup, retries included (default 5 s).
    pub fn dns_timeout(mut self, d: Duration) -> Self {
        self.srv_mut().lookup_timeout = d;
        self
    }

    /// Looks the servers up ([`PoolBuilder::dns_srv`]), builds the pool
    /// with them as its preferred servers in RFC 2782 order, and starts the
    /// task that follows the answer. Fails with [`BuildError::Discovery`]
    /// if the first lookup fails or gives no usable server (nothing to
    /// start with), and like [`PoolBuilder::build`] for the rest.
    pub async fn build_discovered(mut self) -> Result<Pool, BuildError> {
        let Some(cfg) = self.srv.take() else {
            return Err(BuildError::InvalidField {
                field: "dns_srv",
                reason: "build_discovered() needs dns_srv(domain)".into(),
            });
        };
        let name = cfg.check()?;
        if self.has_servers() {
            return Err(listed_by_hand());
        }
        // Template for every generation: all but the servers. Checked now,
        // with a placeholder server, so that a bad setting fails here and
        // not at the first change of the answer.
        self.settings_with_placeholder()?;
        let runtime = match self.runtime_handle() {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?,
        };
        let resolver = resolver(&cfg).map_err(BuildError::Discovery)?;
        let mut rng = SplitMix64::new(self.seed_or_default() ^ 0x5352_565f_4c44_4150);
        let answer = lookup(&resolver, &name, &cfg).await;
        let now = Instant::now();
        let answer = answer.map_err(BuildError::Discovery)?;
        let ordered = answer
            .order(&mut rng, cfg.service)
            .map_err(BuildError::Discovery)?;
        let pool = self.clone().with_urls(&ordered.urls).build_static()?;
        let mut schedule = Schedule::new(&cfg, now);
        schedule.resolved(now, answer.ttl);
        tracing::info!(name = %name, servers = ?ordered.urls, ttl = ?answer.ttl, "servers discovered through DNS SRV");
        let status = Arc::new(Mutex::new(SrvStatus {
            name: name.to_ascii(),
            servers: ordered.urls.clone(),
            records: ordered.records.clone(),
            lookups: 1,
            lookup_failures: 0,
            changes: 0,
            failure_lookups: 0,
            last_error: None,
            next_lookup_in: Some(schedule.next().saturating_duration_since(now)),
            running: true,
        }));
        let template = Arc::new(Mutex::new(self));
        let state = Running {
            pool: pool.weak_pool(),
            template: template.clone(),
            cfg: cfg.clone(),
            name,
            resolver,
            rng,
            schedule,
            current: answer,
            notices: pool.notices(),
            urls: ordered.urls,
            status: status.clone(),
        };
        let task = runtime.spawn(state.run()).abort_handle();
        pool.set_discovery(Discovery {
            task,
            status,
            template,
            cfg,
        });
        Ok(pool)
    }
}

/// A builder that follows DNS also lists servers by hand: one source only.
fn listed_by_hand() -> BuildError {
    BuildError::InvalidField {
        field: "dns_srv",
        reason: "the servers come from DNS: do not also list servers".into(),
    }
}

impl Pool {
    /// What DNS SRV discovery is doing, if the pool was built with
    /// [`PoolBuilder::build_discovered`]: the answer in use, lookups,
    /// failures, changes and the last error.
    pub fn dns_srv_status(&self) -> Option<SrvStatus> {
        self.discovery().map(Discovery::status)
    }
}

/// The discovery task of a pool; aborted when dropped (with the pool) or
/// stopped (at shutdown).
pub(crate) struct Discovery {
    task: AbortHandle,
    status: Arc<Mutex<SrvStatus>>,
    /// Everything but the servers, for every generation; shared with the
    /// task. Held while reloading, so a reload by hand and a new answer
    /// never interleave.
    template: Arc<Mutex<PoolBuilder>>,
    /// The discovery settings the pool was built with.
    cfg: SrvConfig,
}

impl Discovery {
    /// A reload by hand ([`Pool::reload`], [`Pool::watch`]) of a pool that
    /// follows DNS: `builder` must carry the same discovery settings and no
    /// servers; it becomes the template of later answers, and the pool is
    /// reloaded with it and the servers of the current answer.
    pub(crate) fn reload(
        &self,
        pool: &Pool,
        mut builder: PoolBuilder,
        keep_listed: bool,
    ) -> Result<(), BuildError> {
        let refuse = |reason: String| {
            Err(BuildError::InvalidField {
                field: "dns_srv",
                reason,
            })
        };
        let Some(cfg) = builder.srv.take() else {
            return refuse(
                "this pool follows DNS SRV: a new configuration must keep dns_srv \
                 (servers cannot be listed by hand)"
                    .into(),
            );
        };
        if builder.has_servers() {
            return Err(listed_by_hand());
        }
        if cfg != self.cfg {
            return refuse(format!(
                "the DNS SRV settings cannot change on a running pool (it follows {}): \
                 build a new pool",
                self.status.lock().expect("srv status").name
            ));
        }
        builder.settings_with_placeholder()?;
        let mut template = self.template.lock().expect("srv template");
        let urls = self.status.lock().expect("srv status").servers.clone();
        pool.reload_with(builder.clone().with_urls(&urls), keep_listed)?;
        *template = builder;
        Ok(())
    }

    pub(crate) fn stop(&self) {
        self.task.abort();
    }
    fn status(&self) -> SrvStatus {
        let mut s = self.status.lock().expect("srv status").clone();
        s.running = !self.task.is_finished();
        if !s.running {
            s.next_lookup_in = None;
        }
        s
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A snapshot of DNS SRV discovery ([`Pool::dns_srv_status`]).
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

// ----------------------------------------------------------------------
// Ordering (RFC 2782)
// ----------------------------------------------------------------------

/// A small seeded RNG (SplitMix64): the order of an answer replays from the
/// builder's [`jitter_seed`](PoolBuilder::jitter_seed).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..=max` (the bias of a 64-bit modulo is below 2^-40 here).
    fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}

/// Orders records as RFC 2782 says: lowest priority first; within one
/// priority, a weighted random order (weight-0 records first in the list,
/// so they are picked only when the draw is 0: a small chance while others
/// have weight). All weights 0: a uniform shuffle (the RFC leaves it open;
/// this spreads clients like the weighted case would). Target `.` records
/// are left out; a target listed twice keeps its first place.
pub(crate) fn rfc2782_order(records: &[SrvRecord], rng: &mut SplitMix64) -> Vec<SrvRecord> {
    let mut sorted: Vec<&SrvRecord> = records.iter().filter(|r| r.target != ".").collect();
    sorted.sort_by_key(|r| r.priority);
    let mut out: Vec<SrvRecord> = Vec::with_capacity(sorted.len());
    for group in sorted.chunk_by(|a, b| a.priority == b.priority) {
        // Zero weights first, the rest as they came (stable).
        let mut left: Vec<&SrvRecord> = group.iter().filter(|r| r.weight == 0).copied().collect();
        left.extend(group.iter().filter(|r| r.weight > 0));
        let total: u64 = left.iter().map(|r| u64::from(r.weight)).sum();
        if total == 0 {
            // Fisher–Yates.
            for i in (1..left.len()).rev() {
                let j = rng.up_to(i as u64) as usize;
                left.swap(i, j);
            }
            out.extend(left.into_iter().cloned());
            continue;
        }
        while !left.is_empty() {
            let total: u64 = left.iter().map(|r| u64::from(r.weight)).sum();
            let draw = rng.up_to(total);
            let mut running = 0u64;
            let pick = left
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= draw
                })
                .expect("the running sum reaches the total");
            out.push(left.remove(pick).clone());
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert((r.target.clone(), r.port)));
    out
}

/// One answer: its records (sorted, to compare answers) and TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Answer {
    name: String,
    records: Vec<SrvRecord>,
    ttl: Duration,
}

/// An answer in the order the pool will use, with its URLs.
struct Ordered {
    records: Vec<SrvRecord>,
    urls: Vec<String>,
}

impl Answer {
    /// Orders the answer and makes URLs; an answer with no usable server is
    /// an error (the caller keeps its servers).
    fn order(&self, rng: &mut SplitMix64, service: SrvService) -> Result<Ordered, SrvError> {
        if self.records.iter().all(|r| r.target == ".") {
            return Err(SrvError::ServiceUnavailable {
                name: self.name.clone(),
            });
        }
        let mut records = Vec::new();
        let mut urls = Vec::new();
        let mut skipped = Vec::new();
        for r in rfc2782_order(&self.records, rng) {
            match record_url(&r, service) {
                Ok(url) => {
                    records.push(r);
                    urls.push(url);
                }
                Err(why) => skipped.push(why),
            }
        }
        if !skipped.is_empty() {
            tracing::warn!(name = %self.name, skipped = ?skipped, "SRV records skipped");
        }
        if urls.is_empty() {
            return Err(SrvError::NoUsableRecord {
                name: self.name.clone(),
                reason: skipped.join("; "),
            });
        }
        Ok(Ordered { records, urls })
    }
}

/// The server URL of a record: the target host name is kept (TLS checks the
/// certificate against it; it is resolved when a connection opens).
fn record_url(r: &SrvRecord, service: SrvService) -> Result<String, String> {
    if r.port == 0 {
        return Err(format!("{}: port 0", r.target));
    }
    let url = format!("{}://{}:{}", service.scheme(), r.target, r.port);
    ServerUrl::parse(&url)
        .map(|u| u.as_str().to_owned())
        .map_err(|e| e.to_string())
}

// ----------------------------------------------------------------------
// Schedule
// ----------------------------------------------------------------------

/// When to look up next. Pure: every method takes `now`.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    refresh_min: Duration,
    refresh_max: Duration,
    failure_floor: Duration,
    /// Start of the last lookup.
    last: Instant,
    next: Instant,
    /// Lookups failed in a row.
    failed_in_a_row: u32,
}

impl Schedule {
    fn new(cfg: &SrvConfig, now: Instant) -> Schedule {
        Schedule {
            refresh_min: cfg.refresh_min,
            refresh_max: cfg.refresh_max,
            failure_floor: cfg.failure_floor,
            last: now,
            next: now,
            failed_in_a_row: 0,
        }
    }
    pub(crate) fn next(&self) -> Instant {
        self.next
    }
    /// A lookup started at `now` gave an answer with this TTL.
    pub(crate) fn resolved(&mut self, now: Instant, ttl: Duration) {
        self.last = now;
        self.failed_in_a_row = 0;
        self.next = now + ttl.clamp(self.refresh_min, self.refresh_max);
    }
    /// A lookup started at `now` failed: retry after the failure floor,
    /// doubling, up to the ceiling.
    pub(crate) fn failed(&mut self, now: Instant) {
        self.last = now;
        self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
        let doublings = (self.failed_in_a_row - 1).min(20);
        let gap = self
            .failure_floor
            .saturating_mul(1u32 << doublings)
            .min(self.refresh_max);
        self.next = now + gap;
    }
    /// A listed server was marked down at `now`: look up as soon as the
    /// floor after the last lookup allows. Returns whether this moved the
    /// next lookup earlier.
    pub(crate) fn server_failed(&mut self, now: Instant) -> bool {
        let soon = now.max(self.last + self.failure_floor);
        if soon < self.next {
            self.next = soon;
            true
        } else {
            false
        }
    }
}

// ----------------------------------------------------------------------
// I/O: the resolver and the task
// ----------------------------------------------------------------------

fn resolver(cfg: &SrvConfig) -> Result<TokioResolver, SrvError> {
    let mut builder = match cfg.name_server {
        Some(addr) => {
            let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut ns.connections {
                c.port = addr.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| SrvError::Resolver(e.to_string()))?,
    };
    builder.options_mut().timeout = cfg.lookup_timeout;
    builder
        .build()
        .map_err(|e| SrvError::Resolver(e.to_string()))
}

/// One lookup, bounded by the lookup timeout, never from the resolver's
/// cache (the schedule already follows the TTL; a lookup after a failure
/// must ask the server).
async fn lookup(
    resolver: &TokioResolver,
    name: &Name,
    cfg: &SrvConfig,
) -> Result<Answer, SrvError> {
    let text = name.to_ascii();
    resolver.clear_cache();
    let result = tokio::time::timeout(cfg.lookup_timeout, resolver.srv_lookup(name.clone())).await;
    let lookup = match result {
        Err(_) => {
            return Err(SrvError::Lookup {
                name: text,
                reason: format!("no answer within {:?}", cfg.lookup_timeout),
            });
        }
        Ok(Err(e)) if e.is_no_records_found() => return Err(SrvError::NoRecords { name: text }),
        Ok(Err(e)) => {
            return Err(SrvError::Lookup {
                name: text,
                reason: e.to_string(),
            });
        }
        Ok(Ok(lookup)) => lookup,
    };
    let mut ttl = u32::MAX;
    let mut records: Vec<SrvRecord> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::SRV(srv) => {
                ttl = ttl.min(record.ttl);
                let target = if srv.target.is_root() {
                    ".".to_owned()
                } else {
                    srv.target
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase()
                };
                Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target,
                })
            }
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(SrvError::NoRecords { name: text });
    }
    records.sort();
    records.dedup();
    Ok(Answer {
        name: text,
        records,
        ttl: Duration::from_secs(u64::from(ttl)),
    })
}

/// The state of a running discovery task.
struct Running {
    pool: WeakPool,
    template: Arc<Mutex<PoolBuilder>>,
    cfg: SrvConfig,
    name: Name,
    resolver: TokioResolver,
    rng: SplitMix64,
    schedule: Schedule,
    current: Answer,
    urls: Vec<String>,
    /// The pool's notices: a listed server marked down brings the next
    /// lookup forward (no polling).
    notices: tokio::sync::broadcast::Receiver<Notice>,
    status: Arc<Mutex<SrvStatus>>,
}

impl Running {
    async fn run(mut self) {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let failed = tokio::select! {
                _ = tokio::time::sleep_until(self.schedule.next()) => false,
                notice = self.notices.recv() => match notice {
                    Ok(Notice::MarkedDown(addr)) => self.urls.iter().any(|u| u.eq_ignore_ascii_case(&addr)),
                    // Notices were missed: one of them may have been ours.
                    Err(RecvError::Lagged(_)) => true,
                    // The pool is gone.
                    Err(RecvError::Closed) => return,
                },
            };
            // Hold the pool only while looking at it: a lookup must not
            // keep a dropped pool alive.
            let Some(pool) = self.pool.upgrade() else {
                return;
            };
            let shut_down = pool.status().shut_down;
            drop(pool);
            if shut_down {
                return;
            }
            let now = Instant::now();
            if failed && self.schedule.server_failed(now) {
                tracing::info!(name = %self.name, "a listed server was marked down: DNS SRV lookup brought forward");
                self.status.lock().expect("srv status").failure_lookups += 1;
            }
            if now >= self.schedule.next() {
                self.lookup_and_apply(now).await;
            }
            let next_in = self
                .schedule
                .next()
                .saturating_duration_since(Instant::now());
            self.status.lock().expect("srv status").next_lookup_in = Some(next_in);
        }
    }

    async fn lookup_and_apply(&mut self, now: Instant) {
        let result = lookup(&self.resolver, &self.name, &self.cfg).await;
        let result = result.and_then(|answer| {
            if answer.records == self.current.records {
                return Ok((answer, None));
            }
            let ordered = answer.order(&mut self.rng, self.cfg.service)?;
            Ok((answer, Some(ordered)))
        });
        let mut status = self.status.lock().expect("srv status");
        status.lookups += 1;
        match result {
            Ok((answer, changed)) => {
                self.schedule.resolved(now, answer.ttl);
                status.last_error = None;
                if let Some(ordered) = changed {
                    drop(status);
                    self.apply(answer, ordered);
                } else {
                    tracing::debug!(name = %self.name, "DNS SRV answer unchanged");
                }
            }
            Err(e) => {
                self.schedule.failed(now);
                status.lookup_failures += 1;
                tracing::warn!(error = %e, servers = ?self.urls, "DNS SRV lookup gave no servers; keeping the current ones");
                status.last_error = Some(e);
            }
        }
    }

    /// A new answer: reload keeping the connections to servers still listed.
    fn apply(&mut self, answer: Answer, ordered: Ordered) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let template = self.template.lock().expect("srv template");
        let builder = template.clone().with_urls(&ordered.urls);
        match pool.reload_with(builder, true) {
            Ok(()) => {
                tracing::info!(name = %self.name, from = ?self.urls, to = ?ordered.urls, "DNS SRV answer changed: servers reloaded");
                self.current = answer;
                self.urls = ordered.urls.clone();
                let mut status = self.status.lock().expect("srv status");
                status.changes += 1;
                status.servers = ordered.urls;
                status.records = ordered.records;
            }
            Err(e) => {
                // The template was checked at build: only the URLs can be
                // refused here. Keep the servers; try the answer again next
                // time (the current answer is unchanged).
                tracing::warn!(error = %e, "reload with the new DNS SRV answer refused; keeping the current servers");
                let mut status = self.status.lock().expect("srv status");
                status.lookup_failures += 1;
                status.last_error = Some(SrvError::NoUsableRecord {
                    name: answer.name,
                    reason: e.to_string(),
                });
            }
        }
    }
}

impl PoolBuilder {
    /// This builder with `urls` as its preferred servers, in order.
    fn with_urls(self, urls: &[String]) -> PoolBuilder {
        urls.iter().fold(self, |b, u| b.preferred_server(u.clone()))
    }

    /// Checks the settings other than the servers.
    fn settings_with_placeholder(&self) -> Result<(), BuildError> {
        self.clone()
            .preferred_server("ldap://placeholder.invalid")
            .settings()
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn targets(v: &[SrvRecord]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn lower_priority_always_comes_first_whatever_the_weights() {
        let records = [
            rec(20, 65535, 389, "c"),
            rec(10, 1, 389, "a"),
            rec(30, 65535, 389, "d"),
            rec(10, 0, 389, "b"),
        ];
        for seed in 0..500 {
            let order = rfc2782_order(&records, &mut SplitMix64::new(seed));
            let prios: Vec<u16> = order.iter().map(|r| r.priority).collect();
            assert_eq!(prios, [10, 10, 20, 30], "seed {seed}");
            assert_eq!(targets(&order[2..]), ["c", "d"]);
        }
    }

    #[test]
    fn first_choice_follows_the_weights_over_many_seeds() {
        let records = [
            rec(0, 70, 389, "a"),
            rec(0, 20, 389, "b"),
            rec(0, 10, 389, "c"),
        ];
        let n = 20_000;
        let mut first = std::collections::HashMap::new();
        for seed in 0..n {
            let order = rfc2782_order(&records, &mut SplitMix64::new(seed));
            assert_eq!(order.len(), 3);
            *first.entry(order[0].target.clone()).or_insert(0u32) += 1;
        }
        for (t, want) in [("a", 0.70), ("b", 0.20), ("c", 0.10)] {
            let got = f64::from(first[t]) / n as f64;
            // Draw in 0..=100: a gets 71/101 of first places (the 0 draw
            // picks the first record), b 20/101, c 10/101.
            assert!((got - want).abs() < 0.02, "{t}: {got} vs {want}");
        }
    }

    #[test]
    fn weight_zero_has_a_small_but_real_chance() {
        let records = [rec(0, 0, 389, "zero"), rec(0, 100, 389, "heavy")];
        let n = 20_000u32;
        let zero_first = (0..u64::from(n))
            .filter(|&s| rfc2782_order(&records, &mut SplitMix64::new(s))[0].target == "zero")
            .count() as f64;
        let share = zero_first / f64::from(n);
        // Chance 1/101 per RFC 2782's draw in 0..=total.
        assert!(share > 0.004 && share < 0.02, "{share}");
    }

    #[test]
    fn all_zero_weights_shuffle_uniformly() {
        let records = [rec(0, 0, 1, "a"), rec(0, 0, 2, "b"), rec(0, 0, 3, "c")];
        let mut first = std::collections::HashMap::new();
        for seed in 0..9_000 {
            let order = rfc2782_order(&records, &mut SplitMix64::new(seed));
            *first.entry(order[0].target.clone()).or_insert(0u32) += 1;
        }
        for t in ["a", "b", "c"] {
            assert!((2_700..3_300).contains(&first[t]), "{t}: {first:?}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_order() {
        let records: Vec<SrvRecord> = (0..8).map(|i| rec(0, 10, 389 + i, "h")).collect();
        let a = rfc2782_order(&records, &mut SplitMix64::new(42));
        let b = rfc2782_order(&records, &mut SplitMix64::new(42));
        assert_eq!(a, b);
        let differs = (0..20).any(|s| rfc2782_order(&records, &mut SplitMix64::new(s)) != a);
        assert!(differs, "the order depends on the seed");
    }

    #[test]
    fn a_dot_target_means_no_service_and_is_never_a_server() {
        let answer = Answer {
            name: "_ldap._tcp.example.test.".into(),
            records: vec![rec(0, 0, 0, ".")],
            ttl: Duration::from_secs(60),
        };
        let err = answer
            .order(&mut SplitMix64::new(1), SrvService::Ldap)
            .err()
            .expect("no service");
        assert!(matches!(err, SrvError::ServiceUnavailable { .. }), "{err}");
        assert_eq!(err.blame(), Blame::Configuration);
        // Mixed with real records (a broken zone): the dot is skipped.
        let order = rfc2782_order(
            &[rec(0, 0, 0, "."), rec(1, 0, 389, "ldap1.example.test")],
            &mut SplitMix64::new(1),
        );
        assert_eq!(targets(&order), ["ldap1.example.test"]);
    }

    #[test]
    fn urls_keep_the_host_name_and_follow_the_service() {
        let answer = Answer {
            name: "_ldaps._tcp.example.test.".into(),
            records: vec![
                rec(10, 0, 636, "ldap2.example.test"),
                rec(0, 0, 3636, "ldap1.example.test"),
                rec(5, 0, 0, "broken.example.test"),
                rec(7, 0, 636, "ldap1.example.test"),
            ],
            ttl: Duration::from_secs(60),
        };
        let o = answer
            .order(&mut SplitMix64::new(3), SrvService::Ldaps)
            .unwrap();
        assert_eq!(
            o.urls,
            [
                "ldaps://ldap1.example.test:3636",
                "ldaps://ldap1.example.test:636",
                "ldaps://ldap2.example.test:636"
            ]
        );
        let only_bad = Answer {
            records: vec![rec(5, 0, 0, "broken.example.test")],
            ..answer
        };
        let e = only_bad
            .order(&mut SplitMix64::new(3), SrvService::Ldap)
            .err()
            .unwrap();
        assert!(matches!(e, SrvError::NoUsableRecord { .. }), "{e}");
    }

    #[test]
    fn a_duplicate_target_keeps_its_best_place() {
        let order = rfc2782_order(
            &[
                rec(10, 0, 389, "a"),
                rec(0, 0, 389, "a"),
                rec(5, 0, 389, "b"),
            ],
            &mut SplitMix64::new(9),
        );
        assert_eq!(order.len(), 2);
        assert_eq!((order[0].priority, order[0].target.as_str()), (0, "a"));
    }

    fn cfg() -> SrvConfig {
        let mut c = SrvConfig::new("example.test".into());
        c.refresh_min = Duration::from_secs(10);
        c.refresh_max = Duration::from_secs(600);
        c.failure_floor = Duration::from_secs(2);
        c
    }

    #[test]
    fn the_ttl_sets_the_next_lookup_within_floor_and_ceiling() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&cfg(), t0);
        s.resolved(t0, Duration::from_secs(60));
        assert_eq!(s.next(), t0 + Duration::from_secs(60));
        s.resolved(t0, Duration::from_secs(0));
        assert_eq!(s.next(), t0 + Duration::from_secs(10), "floor");
        s.resolved(t0, Duration::from_secs(86_400));
        assert_eq!(s.next(), t0 + Duration::from_secs(600), "ceiling");
    }

    #[test]
    fn failed_lookups_back_off_from_the_floor_to_the_ceiling() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&cfg(), t0);
        let gaps: Vec<u64> = (0..12)
            .map(|_| {
                s.failed(t0);
                (s.next() - t0).as_secs()
            })
            .collect();
        assert_eq!(gaps, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600, 600]);
        s.resolved(t0, Duration::from_secs(60));
        s.failed(t0);
        assert_eq!(s.next() - t0, Duration::from_secs(2), "reset by an answer");
    }

    #[test]
    fn a_server_failure_brings_the_lookup_forward_but_not_closer_than_the_floor() {
        let t0 = Instant::now();
        let mut s = Schedule::new(&cfg(), t0);
        s.resolved(t0, Duration::from_secs(300));
        // Right after a lookup: no sooner than the floor.
        assert!(s.server_failed(t0 + Duration::from_millis(500)));
        assert_eq!(s.next(), t0 + Duration::from_secs(2));
        // Already that soon: nothing moves, nothing counted.
        assert!(!s.server_failed(t0 + Duration::from_secs(1)));
        // Long after the last lookup: at once.
        let t1 = t0 + Duration::from_secs(100);
        s.resolved(t0, Duration::from_secs(300));
        assert!(s.server_failed(t1));
        assert_eq!(s.next(), t1);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_field() {
        let field = |c: SrvConfig| match c.check() {
            Err(BuildError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(SrvConfig::new(" ".into())), "dns_srv");
        assert_eq!(field(SrvConfig::new("bad..name".into())), "dns_srv");
        let mut c = cfg();
        c.refresh_min = Duration::from_secs(700);
        assert_eq!(field(c), "dns_refresh");
        let mut c = cfg();
        c.failure_floor = Duration::ZERO;
        assert_eq!(field(c), "dns_failure_refresh");
        let mut c = cfg();
        c.name_server = Some("127.0.0.1:0".parse().unwrap());
        assert_eq!(field(c), "dns_server");
        assert_eq!(
            cfg().check().unwrap().to_ascii(),
            "_ldap._tcp.example.test."
        );
    }

    #[tokio::test]
    async fn plain_build_refuses_and_build_discovered_needs_a_domain() {
        let e = PoolBuilder::new()
            .dns_srv("example.test")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("build_discovered"), "{e}");
        let e = PoolBuilder::new()
            .server("ldap://127.0.0.1:1")
            .build_discovered()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("dns_srv"), "{e}");
        let e = PoolBuilder::new()
            .dns_srv("example.test")
            .server("ldap://127.0.0.1:1")
            .build_discovered()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("do not also list servers"), "{e}");
    }
}
