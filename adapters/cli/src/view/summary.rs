//! The closing summary: what the run measured (fail-over, fail-back,
//! reload, shutdown), the checks it is judged by, and their text.

use std::fmt::Write as _;
use std::time::Duration;

use super::units::{after, count, ms, short};
use crate::schedule::secs;
use crate::stats::{OpKind, Window};

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

/// Password checks' verdicts, as the servers sent them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// Accepted with no warning.
    pub accepted: u64,
    /// Accepted, with the seconds left before the password expires.
    pub warned: u64,
    /// Accepted on a grace login of an expired password.
    pub grace: u64,
    /// Wrong password.
    pub invalid: u64,
    /// Account locked.
    pub locked: u64,
    /// Password expired, no grace login left.
    pub expired: u64,
    /// Reset by the administrator: must be changed.
    pub must_change: u64,
}

impl Verdicts {
    /// Counts `v`.
    pub fn count(&mut self, v: &ldapmux::AuthOutcome) {
        use ldapmux::AuthOutcome as A;
        let slot = match v {
            A::Accepted {
                expires_in: Some(_),
                ..
            } => &mut self.warned,
            A::Accepted {
                grace_logins_left: Some(_),
                ..
            } => &mut self.grace,
            A::Accepted { .. } => &mut self.accepted,
            A::InvalidCredentials => &mut self.invalid,
            A::AccountLocked => &mut self.locked,
            A::PasswordExpired => &mut self.expired,
            A::MustChange => &mut self.must_change,
            _ => return,
        };
        *slot += 1;
    }

    /// Two lines for the summary.
    fn describe(&self) -> [String; 2] {
        [
            format!(
                "verdicts: {} accepted, {} warned of expiry, {} on grace logins,",
                count(self.accepted),
                count(self.warned),
                count(self.grace),
            ),
            format!(
                "  {} wrong password, {} locked, {} expired, {} must change",
                count(self.invalid),
                count(self.locked),
                count(self.expired),
                count(self.must_change)
            ),
        ]
    }

    fn kinds_seen(&self) -> usize {
        [
            self.accepted,
            self.warned,
            self.grace,
            self.invalid,
            self.locked,
            self.expired,
            self.must_change,
        ]
        .iter()
        .filter(|n| **n > 0)
        .count()
    }
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
    /// Password checks' verdicts.
    pub verdicts: Verdicts,
    /// Bind connections the pool opened for password checks.
    pub bind_opens: u64,
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
            count(
                s.ops.kind(OpKind::Search).done()
                    + s.ops.kind(OpKind::Enumerate).done()
                    + s.ops.kind(OpKind::Paged).done()
            )
        ),
    });
    let paged = s.ops.kind(OpKind::Paged);
    out.push(Check {
        name: "paged enumerations",
        ok: paged.ok > 0 && paged.failed == 0,
        detail: format!(
            "{} of all {} users (unpaged capped at 500), each complete; {} failed",
            count(paged.ok),
            count(s.users as u64),
            paged.failed
        ),
    });
    let auth = s.ops.kind(OpKind::Auth).done();
    out.push(Check {
        name: "password verdicts",
        ok: s.verdicts.kinds_seen() == 7,
        detail: format!(
            "{} of 7 kinds seen, each the one its account's policy gives",
            s.verdicts.kinds_seen()
        ),
    });
    out.push(Check {
        name: "bind connections reused",
        ok: s.bind_opens > 0 && s.bind_opens * 10 <= auth,
        detail: format!(
            "{} password checks on {} bind connections opened",
            count(auth),
            count(s.bind_opens)
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

/// The closing summary, several lines (each under 100 columns).
pub fn render_summary(s: &Summary, checks: &[Check]) -> String {
    let ops = s.ops.clone();
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
        if kind == OpKind::Auth {
            notes.extend(s.verdicts.describe());
        }
        if kind == OpKind::Auth && k.rejected > 0 {
            notes.push(format!(
                "{} wrong passwords answered InvalidCredentials: expected, not failures",
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
        "connections: {} opened ({} for password checks), {} failed to open,",
        count(s.opened),
        count(s.bind_opens),
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
        for _ in 0..9 {
            r.record(OpKind::Auth, t0, t0, Outcome::Ok);
        }
        r.record(OpKind::Write, t0, t0, Outcome::Unknown);
        r.record(
            OpKind::Paged,
            t0,
            t0 + Duration::from_millis(90),
            Outcome::Ok,
        );
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
            verdicts: Verdicts {
                accepted: 4,
                warned: 1,
                grace: 1,
                invalid: 1,
                locked: 1,
                expired: 1,
                must_change: 1,
            },
            bind_opens: 1,
            ..Summary::default()
        }
    }

    #[test]
    fn a_good_run_passes_every_check_and_says_what_is_expected() {
        let s = good_summary();
        let c = checks(&s);
        assert!(c.iter().all(|c| c.ok), "{c:?}");
        let text = render_summary(&s, &c);
        assert!(text.contains("checks: 10 of 10 passed"), "{text}");
        assert!(
            text.contains("wrong passwords answered InvalidCredentials"),
            "{text}"
        );
        assert!(
            text.contains("1 wrong password, 1 locked, 1 expired, 1 must change"),
            "{text}"
        );
        assert!(text.contains("7 of 7 kinds seen"), "{text}");
        assert!(text.contains("10 password checks on 1 bind connections opened"));
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
        s.verdicts.locked = 0;
        let c = checks(&s);
        let failed: Vec<_> = c.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        assert_eq!(
            failed,
            [
                "zero failed reads",
                "paged enumerations",
                "password verdicts",
                "bind connections reused",
                "no unexpected failure",
                "reload",
                "no slapd left"
            ]
        );
        assert!(render_summary(&s, &c).contains("FAIL no slapd left: still alive: [4]"));
    }
}
