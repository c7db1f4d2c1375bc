//! One line per event: pool events with servers named by letter, the
//! demo's own steps, and runs of identical lines folded.

use std::fmt::Write as _;

use super::status_line::ServerView;
use crate::events::{Event, Source};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::fixtures::servers;
    use std::time::Instant;

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
}
