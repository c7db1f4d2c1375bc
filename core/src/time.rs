//! Virtual time: the core never reads a clock, every input carries `now`.

use std::fmt;
use std::time::Duration;

/// A point on the caller's clock, in nanoseconds since an epoch the caller chose.
///
/// The core only compares and adds instants, so any monotonic source works: a
/// runtime's `Instant` minus a start instant, a test's counter, a model's step.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// An instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1_000_000_000))
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `d` before `self`, or the epoch if that is earlier.
    pub fn saturating_sub(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(nanos))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the far future instead of overflowing.
    fn add(self, rhs: Duration) -> Instant {
        let nanos = u64::try_from(rhs.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0 / 1_000_000;
        write!(f, "t+{}.{:03}s", ms / 1000, ms % 1000)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Instant;
    use std::time::Duration;

    #[test]
    fn instants_print_as_seconds_and_milliseconds_since_the_epoch() {
        let t = Instant::ZERO + Duration::from_millis(62_345);
        assert_eq!(format!("{t:?}"), "t+62.345s");
        assert_eq!(t.to_string(), "t+62.345s");
        assert_eq!(Instant::ZERO.to_string(), "t+0.000s");
    }

    #[test]
    fn elapsed_time_saturates_at_zero() {
        let (early, late) = (
            Instant::ZERO + Duration::from_secs(1),
            Instant::ZERO + Duration::from_secs(3),
        );
        assert_eq!(
            late.saturating_duration_since(early),
            Duration::from_secs(2)
        );
        assert_eq!(early.saturating_duration_since(late), Duration::ZERO);
    }
}
