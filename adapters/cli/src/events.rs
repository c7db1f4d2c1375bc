//! The demo's event log: the pool's own `tracing` events at INFO and WARN
//! (server down, server up again, fail-back, connection lost, reload,
//! shutdown …), captured by a [`CaptureLayer`], and the demo's own steps.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Where an event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The demo's script or its observations (kill, restart, fail-over seen …).
    Demo,
    /// A `tracing` event of the `ldapmux` crate.
    Pool,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When it was recorded.
    pub at: Instant,
    /// Who said it.
    pub source: Source,
    /// WARN or INFO.
    pub level: Level,
    /// The message.
    pub message: String,
    /// Other fields, in order, formatted.
    pub fields: Vec<(String, String)>,
}

impl Event {
    /// A field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Most events kept; later ones are counted and dropped.
const CAPACITY: usize = 50_000;

#[derive(Debug, Default)]
struct Log {
    events: Vec<Event>,
    dropped: u64,
}

/// A shared, bounded, append-only list of events.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    inner: Arc<Mutex<Log>>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> EventLog {
        EventLog::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an event.
    pub fn push(&self, event: Event) {
        let mut g = self.lock();
        if g.events.len() < CAPACITY {
            g.events.push(event);
        } else {
            g.dropped += 1;
        }
    }

    /// Appends one of the demo's own events, stamped now.
    pub fn demo(&self, level: Level, message: impl Into<String>) {
        self.push(Event {
            at: Instant::now(),
            source: Source::Demo,
            level,
            message: message.into(),
            fields: Vec::new(),
        });
    }

    /// Events from index `from` on, and the index to ask from next time.
    pub fn since(&self, from: usize) -> (Vec<Event>, usize) {
        let g = self.lock();
        let from = from.min(g.events.len());
        (g.events[from..].to_vec(), g.events.len())
    }

    /// Every event kept.
    pub fn all(&self) -> Vec<Event> {
        self.lock().events.clone()
    }

    /// The first event after `after` that `pred` accepts.
    pub fn first_after(&self, after: Instant, pred: impl Fn(&Event) -> bool) -> Option<Event> {
        self.lock()
            .events
            .iter()
            .find(|e| e.at >= after && pred(e))
            .cloned()
    }
}

/// A `tracing_subscriber` layer that appends every event it sees to an
/// [`EventLog`]. Pair it with [`filter`] so that it sees only the pool's
/// INFO and WARN events.
#[derive(Clone, Debug)]
pub struct CaptureLayer {
    log: EventLog,
}

impl CaptureLayer {
    /// A layer appending to `log`.
    pub fn new(log: EventLog) -> CaptureLayer {
        CaptureLayer { log }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Fields {
    /// A second `message` (an event with a field named `message` besides
    /// its text, e.g. `warn!(message, "connection lost")`) is appended.
    fn add(&mut self, field: &Field, value: String) {
        if field.name() != "message" {
            self.fields.push((field.name().to_owned(), value));
        } else if self.message.is_empty() {
            self.message = value;
        } else {
            self.message = format!("{}: {value}", self.message);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.add(field, text);
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.log.push(Event {
            at: Instant::now(),
            source: Source::Pool,
            level: *event.metadata().level(),
            message: fields.message,
            fields: fields.fields,
        });
    }
}

/// The pool's events at INFO and above (its DEBUG spans and TRACE events
/// stay disabled at their call sites: no cost per operation).
pub fn filter() -> Targets {
    Targets::new().with_target("ldapmux", Level::INFO)
}

/// Installs a [`CaptureLayer`] on `log` as the process's subscriber.
/// Returns `false` if a subscriber was already installed.
pub fn install(log: &EventLog) -> bool {
    let subscriber =
        tracing_subscriber::registry().with(CaptureLayer::new(log.clone()).with_filter(filter()));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_keeps_info_and_warn_of_ldapmux_only() {
        let log = EventLog::new();
        let subscriber = tracing_subscriber::registry()
            .with(CaptureLayer::new(log.clone()).with_filter(filter()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(target: "ldapmux::runtime", server = %"s0", addr = "ldap://127.0.0.1:1", "server down: x");
            tracing::info!(target: "ldapmux::pool", "configuration reloaded: new generation");
            tracing::debug!(target: "ldapmux::runtime", "closing connection");
            tracing::warn!(target: "other", "not ours");
            let message = "server closed the connection";
            tracing::warn!(target: "ldapmux::runtime", conn = 3, message, "connection lost");
        });
        let events = log.all();
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(
            events[2].message.contains("connection lost")
                && events[2].message.contains("server closed the connection"),
            "{events:?}"
        );
        assert_eq!(events[0].message, "server down: x");
        assert_eq!(events[0].level, Level::WARN);
        assert_eq!(events[0].field("addr"), Some("ldap://127.0.0.1:1"));
        assert_eq!(events[0].field("server"), Some("s0"));
        assert_eq!(events[1].message, "configuration reloaded: new generation");
        let (tail, next) = log.since(1);
        assert_eq!((tail.len(), next), (2, 3));
        assert!(log.since(5).0.is_empty());
        let t = events[0].at;
        assert!(
            log.first_after(t, |e| e.message.starts_with("configuration"))
                .is_some()
        );
    }
}
