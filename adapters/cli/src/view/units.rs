//! How the demo writes durations and counts: the time column, latencies,
//! offsets and grouped digits.

use std::time::Duration;

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

/// `+12 ms` or `never`.
pub(crate) fn after(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("+{}", short(d)),
        None => "never".to_owned(),
    }
}

/// `3 ms`, `1.25 s`.
pub(crate) fn short(d: Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1 000");
        assert_eq!(count(1_234_567), "1 234 567");
    }
}
