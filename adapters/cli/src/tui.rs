//! The live terminal view of the demo (ratatui + crossterm): servers,
//! connections, generations, throughput and events, redrawn in place.
//!
//! [`Tui`] owns the terminal: raw mode and the alternate screen are left
//! when it is dropped, and ratatui's panic hook restores the terminal
//! before a panic message is printed.

use std::io;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, Wrap};
use ratatui::{DefaultTerminal, Frame};
use tokio_util::sync::CancellationToken;

use crate::view::{HealthView, StatusView, count, ms};

/// One live connection as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnRow {
    /// `c3`.
    pub id: String,
    /// `A`.
    pub server: String,
    /// `g0`.
    pub generation: String,
    /// `read`, `write`, `private`.
    pub purpose: String,
    /// `open`, `connecting`, `draining`, `broken`.
    pub phase: String,
    /// Users on it.
    pub users: u32,
    /// Users waiting for it to open.
    pub waiters: usize,
}

/// Everything one frame shows.
#[derive(Clone, Debug, Default)]
pub struct LiveView {
    /// Top line: time, next step.
    pub title: String,
    /// The pool settings.
    pub settings: String,
    /// Figures of the last second and the pool's state now.
    pub status: StatusView,
    /// Operations per second, one value per second so far.
    pub history: Vec<u64>,
    /// Live connections.
    pub conns: Vec<ConnRow>,
    /// Event lines, oldest first.
    pub events: Vec<String>,
    /// Operations by kind so far (one line).
    pub totals: String,
}

/// The terminal in raw mode on the alternate screen.
pub struct Tui {
    terminal: DefaultTerminal,
}

impl std::fmt::Debug for Tui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tui").finish_non_exhaustive()
    }
}

impl Tui {
    /// Enters raw mode and the alternate screen (installs ratatui's panic
    /// hook, which restores the terminal first).
    pub fn start() -> io::Result<Tui> {
        let terminal = ratatui::try_init()?;
        Ok(Tui { terminal })
    }

    /// Draws one frame.
    pub fn draw(&mut self, view: &LiveView) -> io::Result<()> {
        self.terminal.draw(|f| draw(f, view)).map(drop)
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}

/// Reads keys until `done` is cancelled: `q`, Esc or Ctrl-C call `on_stop` (in
/// raw mode Ctrl-C is a key, not a signal). Polls every 100 ms.
pub fn watch_keys(done: CancellationToken, on_stop: impl Fn() + Send + 'static) {
    while !done.is_cancelled() {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {
                if let Ok(TermEvent::Key(k)) = event::read()
                    && k.kind == KeyEventKind::Press
                {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                        on_stop();
                    }
                }
            }
            Ok(false) => {}
            Err(_) => return,
        }
    }
}

fn health_span(h: HealthView) -> Span<'static> {
    match h {
        HealthView::Unknown => Span::styled("NOT REACHED", Style::new().fg(Color::Gray)),
        HealthView::Up => Span::styled("UP", Style::new().fg(Color::Green).bold()),
        HealthView::Returning { left } => Span::styled(
            format!("RETURNING {:.1} s", left.as_secs_f64()),
            Style::new().fg(Color::Yellow).bold(),
        ),
        HealthView::Down { probing } => Span::styled(
            if probing { "DOWN (probing)" } else { "DOWN" },
            Style::new().fg(Color::Red).bold(),
        ),
    }
}

/// Draws `view` into `f` (used by [`Tui::draw`]; testable on a `TestBackend`).
pub fn draw(f: &mut Frame<'_>, view: &LiveView) {
    let s = &view.status;
    let servers_height = u16::try_from(s.servers.len()).unwrap_or(3) + 3;
    let [header, servers, middle, bottom, footer] = Layout::vertical([
        Constraint::Length(5),
        Constraint::Length(servers_height),
        Constraint::Length(6),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(f.area());

    let head = Paragraph::new(vec![
        Line::from(view.settings.clone()).dim(),
        Line::from(view.totals.clone()),
    ])
    .wrap(Wrap { trim: true })
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(Span::styled(view.title.clone(), Style::new().bold())),
    );
    f.render_widget(head, header);

    let rows = s.servers.iter().map(|sv| {
        Row::new(vec![
            Line::from(sv.name.clone()).bold(),
            Line::from(sv.url.clone()),
            Line::from(sv.pid.map_or("killed".to_owned(), |p| p.to_string())),
            Line::from(health_span(sv.health)),
            Line::from(sv.conns.to_string()),
            Line::from(sv.users.to_string()),
            Line::from(count(sv.grants)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(2),
            Constraint::Length(22),
            Constraint::Length(7),
            Constraint::Length(16),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Length(10),
        ],
    )
    .header(
        Row::new(vec!["", "url", "pid", "health", "conns", "users", "served"])
            .style(Style::new().add_modifier(Modifier::UNDERLINED)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(" servers (preference order) "),
    );
    f.render_widget(table, servers);

    let [spark, figures] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(middle);
    let width = usize::from(spark.width.saturating_sub(2)).max(1);
    let tail = &view.history[view.history.len().saturating_sub(width)..];
    f.render_widget(
        Sparkline::default()
            .block(Block::default().borders(Borders::ALL).title(" ops/s "))
            .data(tail)
            .style(Style::new().fg(Color::Cyan)),
        spark,
    );
    let gens: Vec<String> = s
        .generations
        .iter()
        .map(|g| {
            format!(
                "{} {} ({} conns, {} users)",
                g.id,
                if g.active { "current" } else { "draining" },
                g.conns,
                g.users
            )
        })
        .collect();
    let fig = Paragraph::new(vec![
        Line::from(vec![
            Span::styled(format!("{:.0} ops/s", s.ops_per_sec), Style::new().bold()),
            Span::raw(format!("   p50 {}   p99 {}", ms(s.p50), ms(s.p99))),
        ]),
        Line::from(vec![
            Span::styled(
                format!("failed {}", s.failed),
                if s.failed == 0 {
                    Style::new().fg(Color::Green)
                } else {
                    Style::new().fg(Color::Red).bold()
                },
            ),
            Span::raw(format!(
                "   expected {}   retries {}",
                s.expected, s.retries
            )),
        ]),
        Line::from(format!(
            "connections {} (opened {})   waiting users {}   cap {}/conn",
            s.conns, s.opened, s.waiting, s.user_cap
        )),
        Line::from(format!(
            "generations: {}{}",
            if gens.is_empty() {
                "-".to_owned()
            } else {
                gens.join(", ")
            },
            if s.shut_down { "   SHUT DOWN" } else { "" }
        )),
    ])
    .block(Block::default().borders(Borders::ALL).title(" pool "));
    f.render_widget(fig, figures);

    let [conns_area, events_area] =
        Layout::horizontal([Constraint::Length(52), Constraint::Min(20)]).areas(bottom);
    draw_conns(f, conns_area, view);
    let height = usize::from(events_area.height.saturating_sub(2));
    let width = usize::from(events_area.width.saturating_sub(2)).max(1);
    let lines: Vec<Line> = last_lines(&view.events, width, height)
        .iter()
        .map(|e| {
            let style = if e.contains(">>") {
                Style::new().fg(Color::Magenta).bold()
            } else if e.contains("WARN") {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            };
            Line::styled(e.clone(), style)
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" events ")),
        events_area,
    );
    f.render_widget(
        Line::from(" q / Esc / Ctrl-C: stop early (the pool shuts down, the servers are stopped)")
            .dim(),
        footer,
    );
}

/// The last lines of `lines` that fit in `height` rows of `width`
/// columns once wrapped.
pub fn last_lines(lines: &[String], width: usize, height: usize) -> &[String] {
    let mut rows = 0;
    let mut first = lines.len();
    while first > 0 {
        let need = lines[first - 1].chars().count().div_ceil(width).max(1);
        if rows + need > height {
            break;
        }
        rows += need;
        first -= 1;
    }
    &lines[first..]
}

fn draw_conns(f: &mut Frame<'_>, area: Rect, view: &LiveView) {
    let rows = view.conns.iter().map(|c| {
        let phase_style = match c.phase.as_str() {
            "open" => Style::new().fg(Color::Green),
            "connecting" => Style::new().fg(Color::Cyan),
            "draining" => Style::new().fg(Color::Yellow),
            _ => Style::new().fg(Color::Red),
        };
        Row::new(vec![
            Line::from(c.id.clone()),
            Line::from(c.server.clone()),
            Line::from(c.generation.clone()),
            Line::from(c.purpose.clone()),
            Line::styled(c.phase.clone(), phase_style),
            Line::from(c.users.to_string()),
            Line::from(c.waiters.to_string()),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(3),
            Constraint::Length(4),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(5),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new(vec![
            "conn", "srv", "gen", "purpose", "phase", "users", "waiters",
        ])
        .style(Style::new().add_modifier(Modifier::UNDERLINED)),
    )
    .block(
        Block::default()
            .borders(Borders::ALL)
            .title(format!(" connections ({}) ", view.conns.len())),
    );
    f.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{GenView, ServerView};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn the_newest_events_that_fit_are_kept() {
        let lines: Vec<String> = ["a".repeat(25), "b".repeat(5), "c".repeat(10)]
            .into_iter()
            .collect();
        assert_eq!(last_lines(&lines, 10, 2), &lines[1..]);
        assert_eq!(last_lines(&lines, 10, 5), &lines[..]);
        assert_eq!(last_lines(&lines, 10, 4), &lines[1..]);
        assert!(last_lines(&lines, 10, 0).is_empty());
    }

    #[test]
    fn a_frame_shows_servers_connections_and_events() {
        let view = LiveView {
            title: " ldapmux demo · 9.0 s of 38.0 s · next: restart A at 15.2 s ".into(),
            settings: "connect timeout 1 s".into(),
            status: StatusView {
                ops_per_sec: 12345.0,
                servers: vec![
                    ServerView {
                        name: "A".into(),
                        url: "ldap://127.0.0.1:4000".into(),
                        pid: None,
                        health: HealthView::Down { probing: false },
                        conns: 0,
                        users: 0,
                        grants: 1000,
                    },
                    ServerView {
                        name: "B".into(),
                        url: "ldap://127.0.0.1:4001".into(),
                        pid: Some(77),
                        health: HealthView::Up,
                        conns: 1,
                        users: 12,
                        grants: 50,
                    },
                ],
                generations: vec![GenView {
                    id: "g0".into(),
                    active: true,
                    conns: 1,
                    users: 12,
                }],
                user_cap: 16,
                ..StatusView::default()
            },
            history: vec![10, 20, 30],
            conns: vec![ConnRow {
                id: "c7".into(),
                server: "B".into(),
                generation: "g0".into(),
                purpose: "read".into(),
                phase: "open".into(),
                users: 12,
                waiters: 0,
            }],
            events: vec!["[   7.6s] >> kill -9 A".into()],
            totals: "search 100".into(),
        };
        let render = |w: u16, h: u16| -> String {
            let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
            terminal.draw(|f| draw(f, &view)).unwrap();
            terminal
                .backend()
                .buffer()
                .content()
                .iter()
                .map(|c| c.symbol())
                .collect()
        };
        let text = render(120, 32);
        for needle in [
            "next: restart A",
            "DOWN",
            "killed",
            "12345 ops/s",
            "c7",
            ">> kill -9 A",
            "g0 current",
            "Ctrl-C",
        ] {
            assert!(text.contains(needle), "{needle} missing at 120x32");
        }
        // The smallest usual terminal still shows the essentials.
        let text = render(80, 24);
        for needle in ["next: restart A", "DOWN", "c7", ">> kill -9 A", "Ctrl-C"] {
            assert!(text.contains(needle), "{needle} missing at 80x24");
        }
    }
}
