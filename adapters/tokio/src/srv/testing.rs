//! Helpers of the unit tests of discovery.

use std::time::Duration;

use super::{SrvConfig, SrvRecord};

/// A record.
pub(super) fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port,
        target: target.into(),
    }
}

/// The targets of `v`, in order.
pub(super) fn targets(v: &[SrvRecord]) -> Vec<&str> {
    v.iter().map(|r| r.target.as_str()).collect()
}

/// Settings with a 10 s floor, a 600 s ceiling and a 2 s failure floor.
pub(super) fn cfg() -> SrvConfig {
    let mut c = SrvConfig::new("example.test".into());
    c.refresh_min = Duration::from_secs(10);
    c.refresh_max = Duration::from_secs(600);
    c.failure_floor = Duration::from_secs(2);
    c
}
