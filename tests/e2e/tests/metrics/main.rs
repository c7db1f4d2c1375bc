//! Metrics end to end: what the pool records through the `metrics` facade
//! equals what the test did and what slapd's own monitor counted
//! (operations completed by type, connections accepted, connections open,
//! connections per bound DN), across a kill, a restart and a reload; and no
//! label carries a bind DN or a password unless the caller asked.
//!
//! One recorder is installed for the whole test binary; each test gives its
//! pool its own `metrics_name` and reads only the series with that `pool`
//! label, so the tests can run in parallel. Pools publish their gauges only
//! on demand here (`metrics_interval(None)` + `Pool::publish_metrics`), so
//! every gauge read is of a known moment.

#[path = "../common/mod.rs"]
mod common;
mod counts;
mod events;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use ldapmux::metrics::*;
use ldapmux::{Credential, Error, LeaseKind, Mod, Password, Pool, Scope};
use ldapmux_harness::Slapd;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

// ----------------------------------------------------------------------
// A recorder that keeps every series
// ----------------------------------------------------------------------

/// One series: a counter's total, a gauge's value, or a histogram's count
/// and sum.
#[derive(Default)]
struct Cell {
    value: AtomicU64,
    samples: Mutex<Vec<f64>>,
}

impl CounterFn for Cell {
    fn increment(&self, v: u64) {
        self.value.fetch_add(v, Ordering::SeqCst);
    }
    fn absolute(&self, v: u64) {
        self.value.fetch_max(v, Ordering::SeqCst);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, v: f64) {
        let _ = self
            .value
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| {
                Some((f64::from_bits(x) + v).to_bits())
            });
    }
    fn decrement(&self, v: f64) {
        GaugeFn::increment(self, -v);
    }
    fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::SeqCst);
    }
}

impl HistogramFn for Cell {
    fn record(&self, v: f64) {
        self.samples.lock().unwrap().push(v);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Default)]
struct TestRecorder {
    series: Mutex<HashMap<(Kind, Key), Arc<Cell>>>,
}

impl TestRecorder {
    fn cell(&self, kind: Kind, key: &Key) -> Arc<Cell> {
        self.series
            .lock()
            .unwrap()
            .entry((kind, key.clone()))
            .or_default()
            .clone()
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(Kind::Counter, key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(Kind::Gauge, key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(Kind::Histogram, key))
    }
}

/// The recorder of this test binary, installed on first use.
fn recorder() -> &'static TestRecorder {
    static REC: OnceLock<&'static TestRecorder> = OnceLock::new();
    REC.get_or_init(|| {
        let rec: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(rec).expect("the only recorder of this binary");
        rec
    })
}

/// One series: its kind, name, labels and value.
type Series = (Kind, String, BTreeMap<String, String>, Arc<Cell>);

/// The series of one pool (by its `pool` label), as seen now.
struct View {
    series: Vec<Series>,
}

impl View {
    fn of(pool: &str) -> View {
        let all = recorder().series.lock().unwrap();
        let series = all
            .iter()
            .filter_map(|((kind, key), cell)| {
                let labels: BTreeMap<String, String> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (labels.get("pool").map(String::as_str) == Some(pool))
                    .then(|| (*kind, key.name().to_owned(), labels, cell.clone()))
            })
            .collect();
        View { series }
    }

    fn matching<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Arc<Cell>> + 'a {
        self.series.iter().filter_map(move |(k, n, l, cell)| {
            (*k == kind
                && n == name
                && labels
                    .iter()
                    .all(|(lk, lv)| l.get(*lk).map(String::as_str) == Some(*lv)))
            .then_some(cell)
        })
    }

    /// The sum of the counters `name` whose labels include `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(Kind::Counter, name, labels)
            .map(|c| c.value.load(Ordering::SeqCst))
            .sum()
    }

    /// The sum of the gauges `name` whose labels include `labels`.
    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(Kind::Gauge, name, labels)
            .map(|c| f64::from_bits(c.value.load(Ordering::SeqCst)))
            .sum()
    }

    /// Samples of the histograms `name` whose labels include `labels`.
    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.matching(Kind::Histogram, name, labels)
            .flat_map(|c| c.samples.lock().unwrap().clone())
            .collect()
    }

    /// Every label value of every series.
    fn label_values(&self) -> HashSet<String> {
        self.series
            .iter()
            .flat_map(|(_, _, l, _)| l.values().cloned())
            .collect()
    }

    /// Every distinct value of label `key` on metric `name`.
    fn values_of(&self, name: &str, key: &str) -> HashSet<String> {
        self.series
            .iter()
            .filter(|(_, n, _, _)| n == name)
            .filter_map(|(_, _, l, _)| l.get(key).cloned())
            .collect()
    }

    /// Gauges of the pool that are not 0, for failure messages.
    fn nonzero_gauges(&self) -> Vec<String> {
        self.series
            .iter()
            .filter(|(k, ..)| *k == Kind::Gauge)
            .filter_map(|(_, n, l, c)| {
                let v = f64::from_bits(c.value.load(Ordering::SeqCst));
                (v != 0.0).then(|| format!("{n}{l:?} = {v}"))
            })
            .collect()
    }
}

/// Publishes `pool`'s gauges and reads its series.
fn published(pool: &Pool, name: &str) -> View {
    pool.publish_metrics();
    View::of(name)
}

/// A pool of the common test builder with on-demand publication.
fn builder_named(name: &str) -> ldapmux::PoolBuilder {
    recorder();
    builder().metrics_name(name).metrics_interval(None)
}

// ----------------------------------------------------------------------
// slapd's own counts of operations
// ----------------------------------------------------------------------

/// `monitorOpCompleted` of every operation type (`Search`, `Bind`, …), in
/// one search on one anonymous connection.
async fn slapd_ops(server: &Slapd) -> HashMap<String, u64> {
    server
        .monitor_operations()
        .await
        .expect("monitor")
        .into_iter()
        .map(|(op, n)| (op, n.completed))
        .collect()
}

/// Operations slapd completed between two [`slapd_ops`] readings, by type.
fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

/// What a [`measured`] run saw on slapd: operations completed by type and
/// connections accepted, with the monitor's own queries taken out.
struct SlapdSaw {
    ops: HashMap<String, u64>,
    connections: u64,
}

/// Runs `f` between two readings of slapd's operation and connection
/// counters. The readings' own operations are measured first by the same
/// sequence with nothing in between, and subtracted.
async fn measured<T>(server: &Slapd, f: impl std::future::Future<Output = T>) -> (T, SlapdSaw) {
    let idle_before = slapd_ops(server).await;
    let (_, idle_conns) = connections_opened_during(server, async {}).await;
    let idle = delta(&idle_before, &slapd_ops(server).await);

    let before = slapd_ops(server).await;
    let (out, conns) = connections_opened_during(server, f).await;
    let busy = delta(&before, &slapd_ops(server).await);
    let ops = busy
        .iter()
        .map(|(k, v)| (k.clone(), v - idle.get(k).copied().unwrap_or(0)))
        .collect();
    (
        out,
        SlapdSaw {
            ops,
            connections: conns - idle_conns,
        },
    )
}

const SCOPE: Scope = Scope::OneLevel;
