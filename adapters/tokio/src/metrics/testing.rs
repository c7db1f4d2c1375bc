//! Helpers of the unit tests of the metrics: a recorder that keeps values,
//! and a core pool with two servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ldapmux_core::ServerId;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};

/// A recorder keeping the last value of every counter and gauge.
#[derive(Default)]
pub(super) struct Rec {
    values: Mutex<HashMap<Key, Arc<Cell>>>,
}
#[derive(Default)]
struct Cell(AtomicU64);
impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.0.fetch_add(v, Ordering::SeqCst);
    }
    fn absolute(&self, v: u64) {
        self.0.fetch_max(v, Ordering::SeqCst);
    }
}
impl GaugeFn for Cell {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, v: f64) {
        self.0.store(v as u64, Ordering::SeqCst);
    }
}
impl Rec {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        self.values
            .lock()
            .unwrap()
            .entry(key.clone())
            .or_default()
            .clone()
    }
    /// The value of the metric `name` with exactly these labels.
    pub(super) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let values = self.values.lock().unwrap();
        values
            .iter()
            .find(|(k, _)| {
                k.name() == name
                    && k.labels().count() == labels.len()
                    && labels
                        .iter()
                        .all(|(lk, lv)| k.labels().any(|l| l.key() == *lk && l.value() == *lv))
            })
            .map(|(_, c)| c.0.load(Ordering::SeqCst))
    }
}
impl Recorder for Rec {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// A core pool with servers `ldap://a:389` and `ldap://b:389`.
pub(super) fn core_pool() -> ldapmux_core::Pool {
    let core = ldapmux_core::Config::builder()
        .server("ldap://a:389")
        .server("ldap://b:389")
        .build()
        .unwrap();
    ldapmux_core::Pool::new(core, 1, ldapmux_core::Instant::ZERO).unwrap()
}

/// The ids of servers a and b.
pub(super) fn ab() -> (ServerId, ServerId) {
    let s = core_pool().status().servers;
    (s[0].id, s[1].id)
}
