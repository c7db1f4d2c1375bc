//! The once-a-second status line and the values it (and each frame of the
//! live view) shows: servers, generations, figures.

use std::fmt::Write as _;
use std::time::Duration;

use super::units::{ms, stamp};

/// A server's health as shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthView {
    /// Not reached yet: the pool has not connected to it (a backup never
    /// needed); used in its preference order as an up server is.
    Unknown,
    /// Up and used in its preference order.
    Up,
    /// Answers probes again; used after the hold-down (`left` to go).
    Returning {
        /// Time left in the hold-down (approximate).
        left: Duration,
    },
    /// Down; probed with backoff.
    Down {
        /// A probe is in flight.
        probing: bool,
    },
}

impl HealthView {
    /// `unknown`, `up`, `returning`, `down`.
    pub fn word(self) -> &'static str {
        match self {
            HealthView::Unknown => "unknown",
            HealthView::Up => "up",
            HealthView::Returning { .. } => "returning",
            HealthView::Down { .. } => "down",
        }
    }
}

/// One server as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerView {
    /// `A`, `B`, `C`.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// slapd's pid while it runs.
    pub pid: Option<u32>,
    /// Health.
    pub health: HealthView,
    /// Live connections.
    pub conns: u32,
    /// Users on them.
    pub users: u32,
    /// Users ever handed a connection to it.
    pub grants: u64,
}

/// One generation as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenView {
    /// `g0`, `g1`.
    pub id: String,
    /// Current (else draining after a reload).
    pub active: bool,
    /// Connections counted in it.
    pub conns: u32,
    /// Users counted in it.
    pub users: u32,
}

/// Everything one status line (or one frame of the live view) shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusView {
    /// Time since the load started.
    pub t: Duration,
    /// Operations done per second in the last second.
    pub ops_per_sec: f64,
    /// Median latency in the last second.
    pub p50: Option<Duration>,
    /// 99th percentile latency in the last second.
    pub p99: Option<Duration>,
    /// Real failures so far.
    pub failed: u64,
    /// Expected non-successes so far (cut enumerations, unknown writes, shut down).
    pub expected: u64,
    /// Retries the pool offered so far.
    pub retries: u64,
    /// Live connections.
    pub conns: usize,
    /// Connections opened so far.
    pub opened: u64,
    /// Users waiting for a connection (queued or waiting for an open).
    pub waiting: usize,
    /// Servers in preference order.
    pub servers: Vec<ServerView>,
    /// Live generations.
    pub generations: Vec<GenView>,
    /// Users per connection in force.
    pub user_cap: u32,
    /// Whether the pool is shut down.
    pub shut_down: bool,
}

/// The once-a-second line of the plain view.
pub fn status_line(v: &StatusView) -> String {
    let mut s = format!(
        "{} ops/s={:.0} p50={} p99={} failed={} expected={} retries={} | conns={} opened={} waiting={} |",
        stamp(v.t),
        v.ops_per_sec,
        ms(v.p50),
        ms(v.p99),
        v.failed,
        v.expected,
        v.retries,
        v.conns,
        v.opened,
        v.waiting,
    );
    for server in &v.servers {
        let _ = write!(s, " {}={}", server.name, server.health.word());
        if server.conns > 0 || server.health == HealthView::Up {
            let _ = write!(s, ":{}c/{}u", server.conns, server.users);
        }
    }
    let _ = write!(s, " | gen=");
    let gens: Vec<String> = v
        .generations
        .iter()
        .map(|g| {
            if g.active {
                g.id.clone()
            } else {
                format!("{}(draining {}c/{}u)", g.id, g.conns, g.users)
            }
        })
        .collect();
    if gens.is_empty() {
        s.push('-');
    } else {
        s.push_str(&gens.join(","));
    }
    if v.shut_down {
        s.push_str(" SHUT DOWN");
    } else {
        let _ = write!(s, " cap={}", v.user_cap);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::fixtures::servers;

    #[test]
    fn a_status_line_has_every_figure() {
        let mut servers = servers();
        servers[0].health = HealthView::Down { probing: true };
        servers[1].conns = 2;
        servers[1].users = 9;
        let v = StatusView {
            t: Duration::from_millis(12_000),
            ops_per_sec: 14_210.4,
            p50: Some(Duration::from_micros(520)),
            p99: Some(Duration::from_micros(3100)),
            failed: 0,
            expected: 1,
            retries: 12,
            conns: 3,
            opened: 31,
            waiting: 0,
            servers,
            generations: vec![
                GenView {
                    id: "g0".into(),
                    active: false,
                    conns: 1,
                    users: 2,
                },
                GenView {
                    id: "g1".into(),
                    active: true,
                    conns: 2,
                    users: 7,
                },
            ],
            user_cap: 4,
            shut_down: false,
        };
        assert_eq!(
            status_line(&v),
            "[  12.0s] ops/s=14210 p50=0.52ms p99=3.10ms failed=0 expected=1 retries=12 | \
             conns=3 opened=31 waiting=0 | A=down B=up:2c/9u C=up:0c/0u | \
             gen=g0(draining 1c/2u),g1 cap=4"
        );
    }
}
