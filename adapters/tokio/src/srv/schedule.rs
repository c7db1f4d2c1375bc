//! When to look up next: the TTL clamped to a floor and a ceiling; a failed
//! lookup backs off; a server marked down pulls the next lookup forward,
//! never closer than a floor to the previous one, so a flapping server or a
//! failing DNS cannot cause a storm of queries.

use std::time::Duration;

use tokio::time::Instant;

use super::SrvConfig;

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
    /// A schedule for `cfg`, the first lookup at `now`.
    pub(crate) fn new(cfg: &SrvConfig, now: Instant) -> Schedule {
        Schedule {
            refresh_min: cfg.refresh_min,
            refresh_max: cfg.refresh_max,
            failure_floor: cfg.failure_floor,
            last: now,
            next: now,
            failed_in_a_row: 0,
        }
    }
    /// When to look up next.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srv::testing::cfg;

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
}
