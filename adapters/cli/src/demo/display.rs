//! What is shown while the demo runs: one status line per second and one
//! line per event (plain), or the live view.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::{Shared, lock};
use crate::tui::{LiveView, Tui};
use crate::view;

/// Prints a line to stdout (setup and plain mode), flushing at once so a
/// pipe sees it.
pub(super) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The display: one status line per second and one line per event (plain),
/// or the live view redrawn four times a second.
pub(super) async fn display(shared: Arc<Shared>, mut tui: Option<Tui>) -> std::io::Result<()> {
    let period = if tui.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_millis(100)
    };
    let mut tick = tokio::time::interval(period);
    let mut cursor = 0;
    let mut next_second = 1u64;
    let mut last_second = Default::default();
    let mut history: Vec<u64> = Vec::new();
    let mut event_lines: Vec<String> = Vec::new();
    loop {
        tick.tick().await;
        let finishing = shared.stop_display.is_cancelled();
        let (mut status, conns) = shared.status_view();
        let (new_events, next) = shared.log.since(cursor);
        cursor = next;
        let lines = view::collapse(
            new_events
                .iter()
                .map(|e| {
                    format!(
                        "{} {}",
                        view::stamp(shared.t(e.at)),
                        view::describe(e, &status.servers)
                    )
                })
                .collect(),
        );
        for line in lines {
            if tui.is_none() {
                say(&line);
            }
            event_lines.push(line);
        }
        if event_lines.len() > 500 {
            event_lines.drain(..event_lines.len() - 500);
        }
        let now = Instant::now();
        let due = now >= shared.t0 + Duration::from_secs(next_second);
        if due || finishing {
            let w = shared.rec.roll(now);
            history.push(w.ops_per_sec().round() as u64);
            last_second = (w.ops_per_sec(), w.percentile(0.5), w.percentile(0.99));
            while shared.t0 + Duration::from_secs(next_second) <= now {
                next_second += 1;
            }
        }
        (status.ops_per_sec, status.p50, status.p99) = last_second;
        match tui.as_mut() {
            None => {
                if due || finishing {
                    say(&view::status_line(&status));
                }
            }
            Some(t) => {
                let next = *lock(&shared.next_step);
                let title = format!(
                    " ldapmux demo · {:.1} s of {:.1} s · {} ",
                    status.t.as_secs_f64(),
                    shared.schedule.length().as_secs_f64(),
                    match next {
                        Some((at, step)) =>
                            format!("next: {} at {:.1} s", step.name(), at.as_secs_f64()),
                        None => "finishing".to_owned(),
                    }
                );
                let view = LiveView {
                    title,
                    settings: shared.settings.describe(),
                    status,
                    history: history.clone(),
                    conns,
                    events: event_lines.clone(),
                    totals: shared.rec.totals_line(),
                };
                t.draw(&view)?;
            }
        }
        if finishing {
            return Ok(());
        }
    }
}
