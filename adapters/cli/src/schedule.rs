//! The demo's script: when to kill the preferred server, bring it back,
//! reload the configuration and shut down, scaled to the run's length, and
//! the pool settings that make each step visible within it.

use std::time::Duration;

/// Shortest load phase the script fits in: a kill, a fail-over, a restart,
/// a probe, a hold-down, a fail-back, a reload and a shutdown.
pub const MIN_LENGTH: Duration = Duration::from_secs(8);

/// Time kept after the shutdown step for the pool to close its sockets
/// (bounded by the connect timeout + 1 s in `Pool::shutdown`).
pub const SHUTDOWN_ROOM: Duration = Duration::from_secs(2);

/// One scripted step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// SIGKILL the preferred server (A).
    Kill,
    /// Start A again on the same port with the same data.
    Restart,
    /// `Pool::reload` with a smaller user cap: a new generation.
    Reload,
    /// `Pool::shutdown` while the load still runs.
    Shutdown,
}

impl Step {
    /// A short name for logs and the status view.
    pub fn name(self) -> &'static str {
        match self {
            Step::Kill => "kill A",
            Step::Restart => "restart A",
            Step::Reload => "reload",
            Step::Shutdown => "shutdown",
        }
    }
}

/// The steps of one run, at offsets from the start of the load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    length: Duration,
    steps: Vec<(Duration, Step)>,
}

/// The load phase is too short for the script.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the load phase would last {length:?}, less than the {MIN_LENGTH:?} the script needs")]
pub struct TooShort {
    /// The length asked for.
    pub length: Duration,
}

impl Schedule {
    /// The script for a load phase of `length`: kill at 20 %, restart at
    /// 40 %, reload at 70 %, shutdown [`SHUTDOWN_ROOM`] before the end.
    pub fn new(length: Duration) -> Result<Schedule, TooShort> {
        if length < MIN_LENGTH {
            return Err(TooShort { length });
        }
        let at = |percent: u32| length * percent / 100;
        Ok(Schedule {
            length,
            steps: vec![
                (at(20), Step::Kill),
                (at(40), Step::Restart),
                (at(70), Step::Reload),
                (length - SHUTDOWN_ROOM, Step::Shutdown),
            ],
        })
    }

    /// Length of the load phase.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// Every step with its offset, in order.
    pub fn steps(&self) -> &[(Duration, Step)] {
        &self.steps
    }

    /// When `step` happens.
    pub fn at(&self, step: Step) -> Duration {
        self.steps
            .iter()
            .find(|(_, s)| *s == step)
            .map(|(t, _)| *t)
            .expect("every step is scheduled")
    }

    /// The first step strictly after `elapsed`, if any.
    pub fn next_after(&self, elapsed: Duration) -> Option<(Duration, Step)> {
        self.steps.iter().copied().find(|(t, _)| *t > elapsed)
    }

    /// Longest delay between probes of a down server: 2 s, less in short
    /// runs so that the restarted server is noticed before the reload.
    pub fn probe_max(&self) -> Duration {
        (self.length / 10).clamp(Duration::from_secs(1), Duration::from_secs(2))
    }

    /// Fail-back hold-down: long enough to watch (up to 3 s), short enough
    /// that probe + hold-down end well before the reload.
    pub fn hold_down(&self) -> Duration {
        (self.length / 10).clamp(Duration::from_millis(500), Duration::from_secs(3))
    }
}

/// The pool settings the demo runs with (shown in its header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoSettings {
    /// TCP connect + bind bound.
    pub connect_timeout: Duration,
    /// Whole-operation bound.
    pub operation_timeout: Duration,
    /// Fail-back hold-down.
    pub hold_down: Duration,
    /// First probe delay of a down server.
    pub probe_min: Duration,
    /// Longest delay between probes.
    pub probe_max: Duration,
    /// Users per connection before the reload.
    pub user_cap: u32,
    /// Users per connection after the reload.
    pub reload_user_cap: u32,
    /// Connections per server.
    pub conns_per_server: u32,
}

impl DemoSettings {
    /// The settings for `schedule`.
    pub fn for_schedule(schedule: &Schedule) -> DemoSettings {
        DemoSettings {
            connect_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(5),
            hold_down: schedule.hold_down(),
            probe_min: Duration::from_millis(250),
            probe_max: schedule.probe_max(),
            user_cap: 16,
            reload_user_cap: 4,
            conns_per_server: 16,
        }
    }

    /// One line for the header: `connect 1 s · operation 5 s · …`.
    pub fn describe(&self) -> String {
        format!(
            "connect timeout {} · operation timeout {} · fail-back hold-down {} · \
             probe backoff {}→{} · {} users/conn (reload: {}) · {} conns/server",
            secs(self.connect_timeout),
            secs(self.operation_timeout),
            secs(self.hold_down),
            secs(self.probe_min),
            secs(self.probe_max),
            self.user_cap,
            self.reload_user_cap,
            self.conns_per_server,
        )
    }
}

/// `1 s`, `250 ms`, `1.3 s`.
pub fn secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_ordered_and_inside_the_run() {
        for secs in [8, 10, 13, 20, 38, 58] {
            let s = Schedule::new(Duration::from_secs(secs)).unwrap();
            let times: Vec<_> = s.steps().iter().map(|(t, _)| *t).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            assert_eq!(s.steps().len(), 4);
            assert!(*times.last().unwrap() + SHUTDOWN_ROOM <= s.length());
        }
    }

    #[test]
    fn fail_back_fits_between_restart_and_reload() {
        for secs in [8, 13, 38, 58] {
            let s = Schedule::new(Duration::from_secs(secs)).unwrap();
            let d = DemoSettings::for_schedule(&s);
            // Worst case: the probe after the restart comes a full backoff
            // maximum later, then the hold-down.
            let failback = s.at(Step::Restart) + d.probe_max + d.hold_down;
            assert!(failback < s.at(Step::Reload), "{secs} s: {failback:?}");
        }
    }

    #[test]
    fn the_default_run_kills_at_a_fifth_and_holds_down_three_seconds() {
        let s = Schedule::new(Duration::from_secs(38)).unwrap();
        assert_eq!(s.at(Step::Kill), Duration::from_millis(7600));
        assert_eq!(s.at(Step::Restart), Duration::from_millis(15200));
        assert_eq!(s.at(Step::Shutdown), Duration::from_secs(36));
        assert_eq!(s.hold_down(), Duration::from_secs(3));
        assert_eq!(
            s.next_after(Duration::from_secs(8)),
            Some((Duration::from_millis(15200), Step::Restart))
        );
        assert_eq!(s.next_after(Duration::from_secs(37)), None);
    }

    #[test]
    fn too_short_is_refused() {
        let err = Schedule::new(Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("5s"), "{err}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(secs(Duration::from_millis(250)), "250 ms");
        assert_eq!(secs(Duration::from_secs(3)), "3 s");
        assert_eq!(secs(Duration::from_millis(1300)), "1.3 s");
        let s = Schedule::new(Duration::from_secs(38)).unwrap();
        let line = DemoSettings::for_schedule(&s).describe();
        assert!(line.starts_with("connect timeout 1 s · operation timeout 5 s"));
        assert!(line.contains("probe backoff 250 ms→2 s"), "{line}");
    }
}
