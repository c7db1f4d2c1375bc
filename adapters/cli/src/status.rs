//! `ldapmux status`: a pool built from a configuration, one read through
//! it, and its status — servers with health, connections per server and
//! generation, TLS, and the server new operations go to.
//!
//! "Where new operations go" is not computed from the health table: it is
//! the server the read actually ran on.

use std::time::{Duration, Instant};

use ldapmux::status::{GenId, GenPhase};
use ldapmux::{ConfigFile, ConnInfo, Health, LeaseKind, Pool, Scope, ServerUrl, Status};

use crate::check::{CheckError, error_kind, fail};
use crate::config_check::describe_tls;
use crate::config_source::ConfigSource;
use crate::metrics_http::STATUS_READS;
use crate::settings::Settings;

/// How one read through the pool went.
#[derive(Clone, Debug)]
pub struct Read {
    /// The server it ran on.
    pub server: Option<String>,
    /// How long it took.
    pub took: Duration,
    /// What failed, typed.
    pub error: Option<CheckError>,
}

impl Read {
    /// Succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Reads the root DSE through `pool` on a leased read connection (the way
/// any search is placed), bounded by `timeout`, and notes the server.
pub async fn read(pool: &Pool, timeout: Duration) -> Read {
    let started = Instant::now();
    let handle = pool.with_timeout(timeout);
    let attempt = async {
        let mut lease = handle.lease(LeaseKind::Read).await?;
        let server = lease.server_url();
        lease
            .search("", Scope::Base, "(objectClass=*)", &["1.1"])
            .await?;
        Ok::<_, ldapmux::Error>(server)
    };
    let (server, error) = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(server)) => (Some(server), None),
        Ok(Err(e)) => (None, fail(error_kind(&e), e.to_string())),
        Err(_) => (
            None,
            fail("timed out", format!("no answer within {timeout:?}")),
        ),
    };
    let outcome = if error.is_none() { "ok" } else { "error" };
    metrics::counter!(STATUS_READS, "outcome" => outcome).increment(1);
    Read {
        server,
        took: started.elapsed(),
        error,
    }
}

/// The pool's state at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The status.
    pub status: Status,
    /// Every live connection.
    pub conns: Vec<ConnInfo>,
    /// Now, on the pool's clock.
    pub now: ldapmux::status::Instant,
    /// The servers of the DNS SRV answer in use, if the pool follows DNS.
    pub discovered: Option<Vec<String>>,
}

impl Snapshot {
    /// Takes one.
    pub fn of(pool: &Pool) -> Snapshot {
        Snapshot {
            status: pool.status(),
            conns: pool.connections(),
            now: pool.now(),
            discovered: pool.dns_srv_status().map(|s| s.servers),
        }
    }
}

/// One server as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRow {
    /// Its URL.
    pub url: String,
    /// Preferred in the configuration.
    pub preferred: bool,
    /// In the current configuration (else: left over from an earlier one,
    /// shown while it still has connections).
    pub configured: bool,
    /// Health: `Unknown (not contacted yet)`, `Up`, `Returning (…)`, `Down (…)`.
    pub health: String,
    /// Live connections to it, per generation (current first).
    pub conns: Vec<(GenId, u32)>,
    /// TLS as the configuration sets it.
    pub tls: String,
}

impl ServerRow {
    /// Live connections to it.
    pub fn total(&self) -> u32 {
        self.conns.iter().map(|(_, n)| n).sum()
    }

    /// `1 connection (g1: 1)`.
    pub fn conns_text(&self) -> String {
        let n = self.total();
        let mut s = format!("{n} connection{}", if n == 1 { "" } else { "s" });
        if !self.conns.is_empty() {
            let per: Vec<String> = self
                .conns
                .iter()
                .map(|(g, n)| format!("{g}: {n}"))
                .collect();
            s.push_str(&format!(" ({})", per.join(", ")));
        }
        s
    }
}

/// Health as an operator reads it. A server the pool has not reached yet (a
/// backup never needed) is `Unknown`, not `Up`: nothing is known of it.
pub fn health_text(h: &Health, now: ldapmux::status::Instant) -> String {
    match *h {
        Health::Unknown => "Unknown (not contacted yet)".to_owned(),
        Health::Up => "Up".to_owned(),
        Health::Returning { until } => format!(
            "Returning (fail-back in {:.1}s)",
            until.saturating_duration_since(now).as_secs_f64()
        ),
        Health::Down { probing: true, .. } => "Down (probing)".to_owned(),
        Health::Down { next_probe, .. } => format!(
            "Down (next probe in {:.1}s)",
            next_probe.saturating_duration_since(now).as_secs_f64()
        ),
        other => other.to_string(),
    }
}

/// Whether a configured URL and a pool's server address name one server
/// (same scheme, host in any case, and port, defaults filled in).
fn same_server(configured: &str, addr: &str) -> bool {
    match (ServerUrl::parse(configured), ServerUrl::parse(addr)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host().eq_ignore_ascii_case(b.host())
                && a.port() == b.port()
        }
        _ => configured.trim().eq_ignore_ascii_case(addr.trim()),
    }
}

/// The configured servers in the order the pool uses them, then any other
/// server that still has connections (from a configuration before a reload).
pub fn rows(cfg: &ConfigFile, snap: &Snapshot) -> Vec<ServerRow> {
    let settings = Settings::of(&cfg.builder());
    let current = snap.status.current;
    let conns_of = |index: usize| {
        let mut per: Vec<(GenId, u32)> = Vec::new();
        for c in snap.conns.iter().filter(|c| c.server.index() == index) {
            match per.iter_mut().find(|(g, _)| *g == c.generation) {
                Some((_, n)) => *n += 1,
                None => per.push((c.generation, 1)),
            }
        }
        per.sort_by_key(|(g, _)| (Some(*g) != current, *g));
        per
    };
    let mut out = Vec::new();
    let mut shown = vec![false; snap.status.servers.len()];
    // A pool that follows DNS uses the answer's servers, all preferred.
    let listed: Vec<(&str, bool)> = match &snap.discovered {
        Some(urls) => urls.iter().map(|u| (u.as_str(), true)).collect(),
        None => cfg.servers(),
    };
    for (url, preferred) in listed {
        let found = snap
            .status
            .servers
            .iter()
            .position(|s| same_server(url, &s.addr));
        if let Some(i) = found {
            shown[i] = true;
        }
        out.push(ServerRow {
            url: url.to_owned(),
            preferred,
            configured: true,
            health: found.map_or("not contacted yet".to_owned(), |i| {
                health_text(&snap.status.servers[i].health, snap.now)
            }),
            conns: found.map(conns_of).unwrap_or_default(),
            tls: describe_tls(url, &settings),
        });
    }
    for (i, s) in snap.status.servers.iter().enumerate() {
        let conns = conns_of(i);
        if !shown[i] && !conns.is_empty() {
            out.push(ServerRow {
                url: s.addr.clone(),
                preferred: false,
                configured: false,
                health: health_text(&s.health, snap.now),
                conns,
                tls: "as configured before the reload".to_owned(),
            });
        }
    }
    out
}

/// `g2 current (1 connection); g1 draining (2 connections)`.
fn generations(status: &Status) -> String {
    if status.shut_down {
        return "none (shut down)".to_owned();
    }
    let mut gens = status.generations.clone();
    gens.sort_by_key(|g| (g.phase != GenPhase::Active, g.id));
    let parts: Vec<String> = gens
        .iter()
        .map(|g| {
            let phase = match g.phase {
                GenPhase::Active => "current",
                GenPhase::Detached => "draining",
            };
            let s = if g.conns == 1 { "" } else { "s" };
            format!("{} {phase} ({} connection{s})", g.id, g.conns)
        })
        .collect();
    parts.join("; ")
}

/// The read, as one phrase: `ok on ldap://a (2 ms)`.
fn read_text(r: &Read) -> String {
    match (&r.server, &r.error) {
        (_, Some(e)) => format!("FAILED: {} ({})", e.kind, e.message),
        (Some(s), None) => format!("ok on {s} ({} ms)", r.took.as_millis()),
        (None, None) => "ok".to_owned(),
    }
}

/// The full report of `ldapmux status`.
pub fn render(source: &ConfigSource, cfg: &ConfigFile, snap: &Snapshot, read: &Read) -> String {
    let rows = rows(cfg, snap);
    let mut lines = vec![
        format!("configuration: {source}"),
        format!("read (root DSE): {}", read_text(read)),
        format!(
            "new operations go to: {}",
            read.server
                .as_deref()
                .filter(|_| read.ok())
                .unwrap_or("none (the read found no server)")
        ),
        format!("generation: {}", generations(&snap.status)),
        "servers, in the order the pool uses them:".to_owned(),
    ];
    let url_w = rows.iter().map(|r| r.url.len()).max().unwrap_or(0);
    let health_w = rows.iter().map(|r| r.health.len()).max().unwrap_or(0);
    let conns_w = rows.iter().map(|r| r.conns_text().len()).max().unwrap_or(0);
    let mut n = 0;
    for r in &rows {
        let index = if r.configured {
            n += 1;
            format!("{n}.")
        } else {
            "-".to_owned()
        };
        let tag = match (r.configured, r.preferred) {
            (false, _) => "old",
            (true, true) => "preferred",
            (true, false) => "",
        };
        lines.push(format!(
            "  {index:<3} {:<url_w$}  {tag:<9}  {:<health_w$}  {:<conns_w$}  TLS {}",
            r.url,
            r.health,
            r.conns_text(),
            r.tls
        ));
    }
    lines.push(format!(
        "pool: {} connections, {} users, {} queued for a connection slot",
        snap.status.conns, snap.status.users, snap.status.queued
    ));
    lines.join("\n")
}

/// One status line for `--follow`:
/// `[   5.0s] serving=ldap://a read=ok 2ms gen=g1 | ldap://a Up conns=1 | …`.
pub fn line(elapsed: Duration, cfg: &ConfigFile, snap: &Snapshot, read: &Read) -> String {
    let serving = read
        .server
        .as_deref()
        .filter(|_| read.ok())
        .unwrap_or("none");
    let outcome = match &read.error {
        None => format!("ok {}ms", read.took.as_millis()),
        Some(e) => format!("FAILED({})", e.kind),
    };
    let current = snap
        .status
        .current
        .map_or("none".to_owned(), |g| g.to_string());
    let mut parts = vec![format!(
        "[{:>7.1}s] serving={serving} read={outcome} gen={current}",
        elapsed.as_secs_f64()
    )];
    for r in rows(cfg, snap) {
        let per = if r.conns.len() > 1 {
            let per: Vec<String> = r.conns.iter().map(|(g, n)| format!("{g}:{n}")).collect();
            format!(" ({})", per.join(" "))
        } else {
            String::new()
        };
        let old = if r.configured { "" } else { " (old)" };
        parts.push(format!(
            "{}{old} {} conns={}{per}",
            r.url,
            r.health,
            r.total()
        ));
    }
    parts.push(format!("queued={}", snap.status.queued));
    parts.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldapmux::status::Instant as PoolInstant;

    #[test]
    fn health_reads_as_unknown_up_returning_or_down() {
        let now = PoolInstant::from_secs(10);
        assert_eq!(
            health_text(&Health::Unknown, now),
            "Unknown (not contacted yet)"
        );
        assert_eq!(health_text(&Health::Up, now), "Up");
        assert_eq!(
            health_text(
                &Health::Returning {
                    until: PoolInstant::from_millis(22_500)
                },
                now
            ),
            "Returning (fail-back in 12.5s)"
        );
        let down = |probing| Health::Down {
            since: PoolInstant::from_secs(1),
            next_probe: PoolInstant::from_secs(12),
            probing,
        };
        assert_eq!(health_text(&down(true), now), "Down (probing)");
        assert_eq!(health_text(&down(false), now), "Down (next probe in 2.0s)");
    }

    #[test]
    fn servers_match_their_configured_spelling() {
        assert!(same_server(
            "LDAP://Host.Example",
            "ldap://host.example:389"
        ));
        assert!(!same_server(
            "ldap://host.example:3890",
            "ldap://host.example:389"
        ));
    }
}
