//! What the demo shows, as plain values and text: one status line per
//! second, one line per event, and the closing summary with its checks.
//! The live terminal view (`tui`) draws the same values.
//!
//! Split by what is shown: [`mod@status_line`] (the figures and the line),
//! [`event_lines`] (one line per event), [`summary`] (the closing summary
//! and its checks), [`units`] (how durations and counts are written).
//! Everything is re-exported here.

pub mod event_lines;
pub mod status_line;
pub mod summary;
pub mod units;

pub use event_lines::{Names, collapse, describe};
pub use status_line::{GenView, HealthView, ServerView, StatusView, status_line};
pub use summary::{
    Check, FailBack, FailOver, ReloadView, ShutdownView, Summary, Verdicts, checks, render_summary,
};
pub use units::{count, ms, stamp};

/// Values the view tests share.
#[cfg(test)]
mod fixtures {
    use super::{HealthView, ServerView};

    /// Servers A, B, C on ports 4000–4002, up and idle.
    pub(crate) fn servers() -> Vec<ServerView> {
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
}
