//! What the demo shows, as plain values and text: one status line per
//! second, one line per event, and the closing summary with its checks.
//! The live terminal view (`tui`) draws the same values.

use std::fmt::Write as _;
use std::time::Duration;

use crate::events::{Event, Source};
use crate::schedule::secs;
use crate::stats::{OpKind, Window};

/// A server's health as shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthView {
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
    /// `up`, `returning`, `down`.
    pub fn word(self) -> &'static str {
        match self {
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

/// `[  12.0s]`: the time column of every line.
pub fn stamp(t: Duration) -> String {
    format!("[{:>6.1}s]", t.as_secs_f64())
}

/// `0.52ms`, or `-` when nothing was measured.
pub fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.2}ms", d.as_secs_f64() * 1000.0),
        None => "-".to_owned(),
    }
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

/// Maps a server URL or id (`s0`) to its demo name (`A`).
pub trait Names {
    /// The name of the server with this URL or id, if known.
    fn name_of(&self, url_or_id: &str) -> Option<String>;
}

impl Names for [ServerView] {
    fn name_of(&self, key: &str) -> Option<String> {
        if let Some(i) = key.strip_prefix('s').and_then(|n| n.parse::<usize>().ok()) {
            return self.get(i).map(|s| s.name.clone());
        }
        self.iter()
            .find(|s| s.url.eq_ignore_ascii_case(key.trim_end_matches('/')))
            .map(|s| s.name.clone())
    }
}

/// Fields not worth showing (core-clock instants mean nothing to a reader).
const HIDDEN_FIELDS: &[&str] = &["next_probe", "until", "servers"];

/// The text of an event (without the time column).
pub fn describe(event: &Event, names: &[ServerView]) -> String {
    match event.source {
        Source::Demo => format!(">> {}", event.message),
        Source::Pool => {
            let mut s = format!("pool {}: {}", event.level, event.message);
            let mut extra = Vec::new();
            let mut named = false;
            for (k, v) in &event.fields {
                if HIDDEN_FIELDS.contains(&k.as_str()) {
                    continue;
                }
                match k.as_str() {
                    "server" | "addr" => match names.name_of(v) {
                        // The URLs were printed at the start: a letter is enough.
                        Some(n) if !named => {
                            extra.insert(0, format!("server {n}"));
                            named = true;
                        }
                        Some(_) => {}
                        None => extra.push(format!("{k}={v}")),
                    },
                    _ => extra.push(format!("{k}={v}")),
                }
            }
            if !extra.is_empty() {
                let _ = write!(s, " [{}]", extra.join(", "));
            }
            s
        }
    }
}

/// Folds runs of identical lines into one with a count (`… (×12)`): a
/// kill makes every operation on the dead connection say the same thing.
pub fn collapse(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for line in lines {
        match out.last_mut() {
            Some((last, n)) if *last == line => *n += 1,
            _ => out.push((line, 1)),
        }
    }
    out.into_iter()
        .map(|(l, n)| if n > 1 { format!("{l} (×{n})") } else { l })
        .collect()
}

/// The fail-over as measured (offsets from the load start unless said).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOver {
    /// When A was killed.
    pub kill_at: Duration,
    /// Kill → the pool reported A down.
    pub marked_down: Option<Duration>,
    /// Kill → first operation handed a connection to another server (seen by
    /// polling the pool every 20 ms).
    pub first_grant_elsewhere: Option<Duration>,
    /// Kill → first read started after the kill answered.
    pub first_read_ok: Option<Duration>,
    /// The slowest read that was in flight at the kill (retried).
    pub slowest_across: Option<Duration>,
    /// Reads that failed after the kill.
    pub failed_reads: u64,
}

/// The fail-back as measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailBack {
    /// When the restart began.
    pub restart_at: Duration,
    /// How long slapd took to answer again.
    pub restart_took: Duration,
    /// Restart done → a probe found A up (hold-down starts).
    pub probed_up: Option<Duration>,
    /// Restart done → first operation handed a connection to A again.
    pub serving_again: Option<Duration>,
    /// The hold-down in force.
    pub hold_down: Duration,
    /// Failures (any kind, expected ones excluded) from the restart to the reload.
    pub failed: u64,
}

/// The reload as measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadView {
    /// When.
    pub at: Duration,
    /// User cap before.
    pub from_cap: u32,
    /// User cap after.
    pub to_cap: u32,
    /// Generations before → after (`g0 → g1`).
    pub generations: String,
    /// Reload → the old generation freed.
    pub old_drained: Option<Duration>,
    /// Whether the pool accepted the new configuration.
    pub accepted: bool,
}

/// The shutdown as measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownView {
    /// When.
    pub at: Duration,
    /// How long `Pool::shutdown` took.
    pub took: Duration,
    /// Sockets still open when it returned.
    pub sockets_left: usize,
}

/// Everything the summary says.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Setup (starting the servers).
    pub setup: Duration,
    /// The load phase.
    pub load: Duration,
    /// Whole run, setup to summary.
    pub total: Duration,
    /// Users per server.
    pub users: usize,
    /// All operations.
    pub ops: Window,
    /// Connections opened / failed to open.
    pub opened: u64,
    /// Connections that failed to open.
    pub open_failures: u64,
    /// Connections found dead.
    pub lost: u64,
    /// Retries offered.
    pub retries: u64,
    /// The fail-over, if the kill happened.
    pub failover: Option<FailOver>,
    /// The fail-back, if the restart happened.
    pub failback: Option<FailBack>,
    /// The reload, if it happened.
    pub reload: Option<ReloadView>,
    /// The shutdown, if it happened.
    pub shutdown: Option<ShutdownView>,
    /// slapd pids the demo started (every start and restart).
    pub slapd_pids: Vec<u32>,
    /// Those still alive at the end.
    pub slapd_left: Vec<u32>,
    /// Stopped by Ctrl-C (or `q`) before the script ended.
    pub stopped_early: bool,
    /// Why it stopped early, when there is something to say about it.
    pub stop_note: Option<String>,
    /// The first distinct real failures.
    pub first_errors: Vec<(OpKind, String)>,
}

/// One check of the run against its own expectations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// Passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The run's checks; the demo exits 0 only if all pass.
pub fn checks(s: &Summary) -> Vec<Check> {
    let mut out = Vec::new();
    let failed_reads = s.ops.failed_reads();
    out.push(Check {
        name: "zero failed reads",
        ok: failed_reads == 0 && s.ops.kind(OpKind::Search).done() > 0,
        detail: format!(
            "{failed_reads} failed of {} searches and enumerations",
            count(s.ops.kind(OpKind::Search).done() + s.ops.kind(OpKind::Enumerate).done())
        ),
    });
    let failed = s.ops.failed();
    out.push(Check {
        name: "no unexpected failure",
        ok: failed == 0,
        detail: format!("{failed} failed operations of any kind"),
    });
    let (ok, detail) = match &s.failover {
        Some(f) => (
            f.marked_down.is_some() && f.first_read_ok.is_some(),
            format!(
                "A marked down: {}, first read answered: {}",
                after(f.marked_down),
                after(f.first_read_ok)
            ),
        ),
        None => (false, "the preferred server was not killed".to_owned()),
    };
    out.push(Check {
        name: "fail-over",
        ok,
        detail,
    });
    let (ok, detail) = match &s.failback {
        Some(f) => (
            f.serving_again.is_some(),
            format!("A serving again: {}", after(f.serving_again)),
        ),
        None => (false, "the preferred server was not restarted".to_owned()),
    };
    out.push(Check {
        name: "fail-back",
        ok,
        detail,
    });
    let (ok, detail) = match &s.reload {
        Some(r) => (
            r.accepted && r.old_drained.is_some(),
            format!(
                "{}, old generation drained: {}",
                r.generations,
                after(r.old_drained)
            ),
        ),
        None => (false, "no reload".to_owned()),
    };
    out.push(Check {
        name: "reload",
        ok,
        detail,
    });
    let (ok, detail) = match &s.shutdown {
        Some(sd) => (
            sd.sockets_left == 0,
            format!("{} sockets left", sd.sockets_left),
        ),
        None => (false, "no shutdown".to_owned()),
    };
    out.push(Check {
        name: "clean shutdown",
        ok,
        detail,
    });
    out.push(Check {
        name: "no slapd left",
        ok: s.slapd_left.is_empty() && !s.slapd_pids.is_empty(),
        detail: if s.slapd_left.is_empty() {
            format!("{} slapd processes started, all gone", s.slapd_pids.len())
        } else {
            format!("still alive: {:?}", s.slapd_left)
        },
    });
    out
}

/// `+12 ms` or `never`.
fn after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("+{}", short(d)),
        None => "never".to_owned(),
    }
}

/// `3 ms`, `1.25 s`.
fn short(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// `12 345` (thousands separated by a space).
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The closing summary, several lines (each under 100 columns).
pub fn render_summary(s: &Summary, checks: &[Check]) -> String {
    let mut ops = s.ops.clone();
    let mut o = String::new();
    let _ = writeln!(o, "== ldapmux demo: summary ==");
    let _ = writeln!(
        o,
        "ran {} (setup {}, load {}); 3 slapd with {} users each{}",
        short(s.total),
        short(s.setup),
        short(s.load),
        count(s.users as u64),
        if s.stopped_early {
            "; STOPPED EARLY"
        } else {
            ""
        }
    );
    if let Some(note) = &s.stop_note {
        let _ = writeln!(o, "  note: {note}");
    }
    let p50 = ops.percentile(0.5);
    let p99 = ops.percentile(0.99);
    let _ = writeln!(
        o,
        "ops done: {} ({:.0} ops/s on average, p50 {}, p99 {}); failed: {}",
        count(ops.done()),
        ops.ops_per_sec(),
        ms(p50),
        ms(p99),
        count(ops.failed()),
    );
    for kind in OpKind::ALL {
        let k = ops.kind(kind);
        let _ = writeln!(
            o,
            "  {:<13}{:>9} done, {} failed, slowest {}",
            kind.name(),
            count(k.done()),
            k.failed,
            short(k.max())
        );
        let mut notes = Vec::new();
        if kind == OpKind::Auth && k.rejected > 0 {
            notes.push(format!(
                "{} wrong passwords answered Ok(false): expected, not failures",
                count(k.rejected)
            ));
        }
        if k.cut > 0 {
            notes.push(format!(
                "{} cut mid-stream when their server died: expected (the error ends the stream; \
                 started again)",
                k.cut
            ));
        }
        if k.unknown > 0 && kind == OpKind::Auth {
            notes.push(format!(
                "{} lost with their server after the bind was sent: expected, never retried",
                k.unknown
            ));
        } else if k.unknown > 0 {
            notes.push(format!(
                "{} with outcome unknown (connection died after sending): expected, never retried",
                k.unknown
            ));
        }
        if k.shut_down > 0 {
            notes.push(format!("{} refused after shutdown: expected", k.shut_down));
        }
        for n in notes {
            let _ = writeln!(o, "      {n}");
        }
    }
    for (kind, e) in &s.first_errors {
        let _ = writeln!(o, "  failure ({}): {e}", kind.name());
    }
    let _ = writeln!(
        o,
        "connections: {} opened (≈{} private ones, one per authentication), {} failed to open,",
        count(s.opened),
        count(s.ops.kind(OpKind::Auth).done() + s.ops.kind(OpKind::Auth).failed),
        s.open_failures,
    );
    let _ = writeln!(o, "  {} found dead; retries offered: {}", s.lost, s.retries);
    if let Some(f) = &s.failover {
        let _ = writeln!(
            o,
            "fail-over: kill -9 of A at {:.1} s",
            f.kill_at.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "  A marked down {}; first read started after the kill answered {}",
            after(f.marked_down),
            after(f.first_read_ok)
        );
        let _ = writeln!(
            o,
            "  slowest read in flight across the kill {} (retried); {} failed reads",
            f.slowest_across.map_or("-".to_owned(), short),
            f.failed_reads
        );
    }
    if let Some(f) = &s.failback {
        let _ = writeln!(
            o,
            "fail-back: A restarted at {:.1} s (answering after {})",
            f.restart_at.as_secs_f64(),
            short(f.restart_took)
        );
        let _ = writeln!(
            o,
            "  probed up {}, hold-down {}, A serving again {}; {} failed ops until the reload",
            after(f.probed_up),
            secs(f.hold_down),
            after(f.serving_again),
            f.failed
        );
    }
    if let Some(r) = &s.reload {
        let _ = writeln!(
            o,
            "reload: at {:.1} s, users per connection {} → {} ({}): generations {},",
            r.at.as_secs_f64(),
            r.from_cap,
            r.to_cap,
            if r.accepted { "accepted" } else { "REFUSED" },
            r.generations,
        );
        let _ = writeln!(
            o,
            "  the old one drained and freed {}",
            after(r.old_drained)
        );
    }
    if let Some(sd) = &s.shutdown {
        let _ = writeln!(
            o,
            "shutdown: at {:.1} s under load, took {}, {} sockets left",
            sd.at.as_secs_f64(),
            short(sd.took),
            sd.sockets_left
        );
    }
    let _ = writeln!(
        o,
        "slapd: pids {:?} started, {} still running",
        s.slapd_pids,
        s.slapd_left.len()
    );
    let passed = checks.iter().filter(|c| c.ok).count();
    let _ = writeln!(o, "checks: {passed} of {} passed", checks.len());
    for c in checks {
        let _ = writeln!(
            o,
            "  {} {}: {}",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{OpKind, Outcome, Recorder};
    use std::time::Instant;

    fn servers() -> Vec<ServerView> {
        ["A", "B", "C"]
            .iter()
            .enumerate()
            .map(|(i, n)| ServerView {
                name: (*n).to_owned(),
                url: format!("ldap://127.0.0.1:{}", 4000 + i),
                pid: Some(100 + i as u32),
                health: HealthView::Up,
                conns: 0,
                users: 0,
                grants: 0,
            })
            .collect()
    }

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

    #[test]
    fn events_name_servers_by_letter() {
        let s = servers();
        let e = Event {
            at: Instant::now(),
            source: Source::Pool,
            level: tracing::Level::WARN,
            message: "server down: its connections are closed, operations fail over".into(),
            fields: vec![
                ("server".into(), "s0".into()),
                ("addr".into(), "ldap://127.0.0.1:4000".into()),
                ("next_probe".into(), "1.2s".into()),
            ],
        };
        assert_eq!(
            describe(&e, &s),
            "pool WARN: server down: its connections are closed, operations fail over [server A]"
        );
        let e = Event {
            source: Source::Demo,
            message: "kill -9 A".into(),
            fields: vec![],
            ..e
        };
        assert_eq!(describe(&e, &s), ">> kill -9 A");
        assert_eq!(s.name_of("s2").as_deref(), Some("C"));
        assert_eq!(s.name_of("ldap://127.0.0.1:4001/").as_deref(), Some("B"));
        assert_eq!(s.name_of("s9"), None);
    }

    #[test]
    fn repeated_lines_are_folded() {
        let l = |s: &str| s.to_owned();
        assert_eq!(
            collapse(vec![l("a"), l("b"), l("b"), l("b"), l("a")]),
            [l("a"), l("b (×3)"), l("a")]
        );
        assert!(collapse(Vec::new()).is_empty());
    }

    #[test]
    fn counts_are_grouped() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1 000");
        assert_eq!(count(1_234_567), "1 234 567");
    }

    fn good_summary() -> Summary {
        let t0 = Instant::now();
        let r = Recorder::new(t0);
        r.record(
            OpKind::Search,
            t0,
            t0 + Duration::from_millis(1),
            Outcome::Ok,
        );
        r.record(OpKind::Auth, t0, t0, Outcome::Rejected);
        r.record(OpKind::Write, t0, t0, Outcome::Unknown);
        r.roll(t0 + Duration::from_secs(1));
        Summary {
            ops: r.total(),
            failover: Some(FailOver {
                marked_down: Some(Duration::from_millis(3)),
                first_read_ok: Some(Duration::from_millis(4)),
                ..FailOver::default()
            }),
            failback: Some(FailBack {
                serving_again: Some(Duration::from_secs(2)),
                ..FailBack::default()
            }),
            reload: Some(ReloadView {
                accepted: true,
                old_drained: Some(Duration::from_millis(50)),
                generations: "g0 → g1".into(),
                ..ReloadView::default()
            }),
            shutdown: Some(ShutdownView::default()),
            slapd_pids: vec![1, 2, 3, 4],
            ..Summary::default()
        }
    }

    #[test]
    fn a_good_run_passes_every_check_and_says_what_is_expected() {
        let s = good_summary();
        let c = checks(&s);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let text = render_summary(&s, &c);
        assert!(text.contains("checks: 7 of 7 passed"), "{text}");
        assert!(
            text.contains("wrong passwords answered Ok(false)"),
            "{text}"
        );
        assert!(text.contains("1 with outcome unknown"), "{text}");
        assert!(text.contains("A marked down +3.0 ms"), "{text}");
        assert!(
            text.lines().all(|l| l.chars().count() < 100),
            "lines fit a terminal:\n{text}"
        );
    }

    #[test]
    fn failures_and_leftovers_fail_the_checks() {
        let mut s = good_summary();
        let t0 = Instant::now();
        let r = Recorder::new(t0);
        r.record(OpKind::Search, t0, t0, Outcome::Failed("no server".into()));
        r.roll(t0 + Duration::from_secs(1));
        s.ops = r.total();
        s.slapd_left = vec![4];
        s.reload = None;
        let c = checks(&s);
        let failed: Vec<_> = c.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        assert_eq!(
            failed,
            [
                "zero failed reads",
                "no unexpected failure",
                "reload",
                "no slapd left"
            ]
        );
        assert!(render_summary(&s, &c).contains("FAIL no slapd left: still alive: [4]"));
    }
}
