//! Gauges and the core's counters, published from one snapshot of the core
//! taken under its lock; a label set gone from the next snapshot is set to 0.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use ldapmux_core::{CredKey, Health, Purpose, ServerId, Status};
use ldapmux_driver::Driver;
use metrics::{Label, SharedString};

use super::labels::{MetricsConfig, purpose_label, server_label};
use super::names::{
    CONNECTIONS, FAILBACKS_TOTAL, FAILOVERS_TOTAL, HELD_BACK_TOTAL, LIVENESS_CHECKS_TOTAL,
    OPEN_SOCKETS, PROBES_BROUGHT_FORWARD_TOTAL, PROBES_TOTAL, SERVER_UP, STALE_VERDICTS_TOTAL,
    USERS, WAITERS,
};
use crate::credential::CredTable;

/// What a publication reads from the core, under its lock once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) status: Option<Status>,
    /// Per live connection: server, credential, purpose, state label.
    pub(crate) conns: Vec<(ServerId, CredKey, Purpose, &'static str)>,
    /// Users waiting for a connection being opened.
    pub(crate) conn_waiters: usize,
    /// Addresses of the current configuration's servers.
    pub(crate) configured: Vec<String>,
    /// The runtime's open sockets.
    pub(crate) sockets: usize,
}

impl Snapshot {
    /// Reads the core (one lock) and the runtime's socket count.
    pub(crate) fn take(driver: &Driver, sockets: usize) -> Snapshot {
        driver.inspect(|p| {
            let mut conn_waiters = 0;
            let conns = p
                .conns()
                .map(|c| {
                    conn_waiters += c.waiters.len();
                    let state = match c.phase {
                        ldapmux_core::ConnPhase::Connecting => "connecting",
                        ldapmux_core::ConnPhase::Open => "open",
                        ldapmux_core::ConnPhase::Draining => "draining",
                        ldapmux_core::ConnPhase::Broken(_) => "broken",
                    };
                    (c.server, c.cred, c.purpose, state)
                })
                .collect();
            Snapshot {
                status: Some(p.status()),
                conns,
                conn_waiters,
                configured: p
                    .config()
                    .map(|c| c.servers.iter().map(|s| s.addr.clone()).collect())
                    .unwrap_or_default(),
                sockets,
            }
        })
    }
}

type MetricKey = (&'static str, Vec<Label>);

/// The values one snapshot gives: gauges, and the core's counters.
#[derive(Debug, Default)]
pub(crate) struct Values {
    pub(crate) gauges: HashMap<MetricKey, f64>,
    pub(crate) counters: Vec<(MetricKey, u64)>,
}

impl Values {
    /// Computes every gauge and core counter of `snap`. `dn` gives the bind
    /// DN of a credential key (for its label).
    pub(crate) fn of(
        cfg: &MetricsConfig,
        snap: &Snapshot,
        dn: impl Fn(CredKey) -> Option<String>,
    ) -> Values {
        let mut v = Values::default();
        let Some(status) = &snap.status else {
            return v;
        };
        let addr = |id: ServerId| {
            status
                .servers
                .get(id.index())
                .map_or_else(|| id.to_string(), |s| s.addr.clone())
        };
        let mut cred_labels: HashMap<CredKey, SharedString> = HashMap::new();
        let mut server_labels: HashMap<ServerId, SharedString> = HashMap::new();
        for &(server, cred, purpose, state) in &snap.conns {
            let s = server_labels
                .entry(server)
                .or_insert_with(|| server_label(&addr(server)))
                .clone();
            let c = cred_labels
                .entry(cred)
                .or_insert_with(|| cfg.credential_label(cred, dn(cred).as_deref()))
                .clone();
            let key = (
                CONNECTIONS,
                cfg.labels([
                    ("server", s),
                    ("credential", c),
                    ("purpose", SharedString::const_str(purpose_label(purpose))),
                    ("state", SharedString::const_str(state)),
                ]),
            );
            *v.gauges.entry(key).or_insert(0.0) += 1.0;
        }
        v.gauges.insert(
            (WAITERS, cfg.labels([])),
            (status.queued + snap.conn_waiters) as f64,
        );
        v.gauges
            .insert((OPEN_SOCKETS, cfg.labels([])), snap.sockets as f64);
        for s in &status.servers {
            let label = server_label(&s.addr);
            let configured = snap
                .configured
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&s.addr));
            if configured || s.conns > 0 {
                v.gauges.insert(
                    (SERVER_UP, cfg.labels([("server", label.clone())])),
                    up_value(s.health),
                );
                v.gauges.insert(
                    (USERS, cfg.labels([("server", label.clone())])),
                    f64::from(s.users),
                );
            }
            for (name, value) in [
                (FAILOVERS_TOTAL, s.counters.marked_down),
                (FAILBACKS_TOTAL, s.counters.marked_up),
                (PROBES_TOTAL, s.counters.probes),
                (LIVENESS_CHECKS_TOTAL, s.counters.checks),
                (STALE_VERDICTS_TOTAL, s.counters.stale_verdicts),
                (HELD_BACK_TOTAL, s.counters.held_back),
                (PROBES_BROUGHT_FORWARD_TOTAL, s.counters.brought_forward),
            ] {
                v.counters
                    .push(((name, cfg.labels([("server", label.clone())])), value));
            }
        }
        v
    }
}

/// The value of [`SERVER_UP`] for a server in `health`: 1 up (its fail-back
/// hold-down included), 0 down, -1 never reached yet ([`Health::Unknown`]:
/// neither known up nor known down, so an alert on 0 does not fire for it).
fn up_value(health: Health) -> f64 {
    match health {
        Health::Up | Health::Returning { .. } => 1.0,
        Health::Down { .. } => 0.0,
        _ => -1.0,
    }
}

/// Publishes snapshots, remembering which gauge label sets it set so that
/// one gone from the next snapshot is set to 0.
#[derive(Default)]
pub(crate) struct Publisher {
    published: Mutex<HashSet<MetricKey>>,
}

impl Publisher {
    /// Takes a snapshot and publishes it. Serialised, so an older snapshot
    /// never overwrites a newer one. Lock order: this, then the driver's.
    pub(crate) fn publish(
        &self,
        cfg: &MetricsConfig,
        driver: &Driver,
        creds: &CredTable,
        sockets: usize,
    ) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let snap = Snapshot::take(driver, sockets);
        let values = Values::of(cfg, &snap, |k| creds.dn(k));
        apply(&mut published, values);
    }

    /// Sets every gauge this pool published to 0 (the pool is gone).
    pub(crate) fn zero_all(&self) {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        apply(&mut published, Values::default());
    }
}

/// Sets `values`, and 0 for every label set in `published` not in them.
fn apply(published: &mut HashSet<MetricKey>, values: Values) {
    for (name, labels) in published.drain() {
        if !values.gauges.contains_key(&(name, labels.clone())) {
            metrics::gauge!(name, labels).set(0.0);
        }
    }
    for ((name, labels), value) in values.counters {
        metrics::counter!(name, labels).absolute(value);
    }
    for ((name, labels), value) in values.gauges {
        metrics::gauge!(name, labels.clone()).set(value);
        published.insert((name, labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{Rec, ab, core_pool};

    /// A pool that has reached both its servers (it has connections to
    /// them): both report [`Health::Up`].
    fn snapshot(conns: Vec<(ServerId, CredKey, Purpose, &'static str)>) -> Snapshot {
        let mut status = core_pool().status();
        for s in &mut status.servers {
            s.health = Health::Up;
        }
        Snapshot {
            status: Some(status),
            conns,
            conn_waiters: 2,
            configured: vec!["ldap://a:389".into(), "ldap://b:389".into()],
            sockets: 0,
        }
    }

    #[test]
    fn each_core_counter_of_a_server_is_exported_under_its_own_name() {
        let cfg = MetricsConfig::default();
        let mut snap = snapshot(vec![]);
        let status = snap.status.as_mut().expect("status");
        let c = &mut status.servers[0].counters;
        (c.marked_down, c.marked_up, c.probes) = (1, 2, 3);
        (c.checks, c.stale_verdicts, c.held_back, c.brought_forward) = (4, 5, 6, 7);
        let addr = status.servers[0].addr.clone();
        let values = Values::of(&cfg, &snap, |_| None);
        let of = |name: &str| {
            values
                .counters
                .iter()
                .find(|((n, labels), _)| *n == name && labels.iter().any(|l| l.value() == addr))
                .map(|(_, v)| *v)
        };
        assert_eq!(of(FAILOVERS_TOTAL), Some(1));
        assert_eq!(of(FAILBACKS_TOTAL), Some(2));
        assert_eq!(of(PROBES_TOTAL), Some(3));
        assert_eq!(of(LIVENESS_CHECKS_TOTAL), Some(4));
        assert_eq!(of(STALE_VERDICTS_TOTAL), Some(5));
        assert_eq!(of(HELD_BACK_TOTAL), Some(6));
        assert_eq!(of(PROBES_BROUGHT_FORWARD_TOTAL), Some(7));
    }

    #[test]
    fn server_up_is_1_up_or_returning_0_down_and_minus_1_never_reached() {
        use ldapmux_core::Instant;
        let cfg = MetricsConfig::default();
        let at = Instant::from_secs(1);
        let down = |probing| Health::Down {
            since: at,
            next_probe: at,
            probing,
        };
        for (health, want) in [
            (Health::Up, 1.0),
            (Health::Returning { until: at }, 1.0),
            (down(false), 0.0),
            (down(true), 0.0),
            (Health::Unknown, -1.0),
        ] {
            let mut snap = snapshot(vec![]);
            let status = snap.status.as_mut().expect("status");
            status.servers[0].health = health;
            let addr = status.servers[0].addr.clone();
            let values = Values::of(&cfg, &snap, |_| None);
            let up = values
                .gauges
                .iter()
                .find(|((n, labels), _)| {
                    *n == SERVER_UP && labels.iter().any(|l| l.value() == addr)
                })
                .map(|(_, v)| *v);
            assert_eq!(up, Some(want), "{health:?}");
        }
        // A fresh pool has reached neither of its servers.
        let mut snap = snapshot(vec![]);
        snap.status = Some(core_pool().status());
        let values = Values::of(&cfg, &snap, |_| None);
        let ups: Vec<f64> = values
            .gauges
            .iter()
            .filter(|((n, _), _)| *n == SERVER_UP)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(ups, vec![-1.0, -1.0]);
    }

    #[test]
    fn gauges_aggregate_and_a_vanished_label_set_goes_to_zero() {
        let rec = Rec::default();
        let cfg = MetricsConfig {
            name: Some("p".into()),
            ..MetricsConfig::default()
        };
        let publisher = Publisher::default();
        let (a, b) = ab();
        let dn = |k: CredKey| (k == CredKey(1)).then(|| "cn=reader,dc=x".to_owned());
        let conn = |server: &str, cred: &str, state: &str| {
            rec.get(
                CONNECTIONS,
                &[
                    ("pool", "p"),
                    ("server", server),
                    ("credential", cred),
                    ("purpose", "read"),
                    ("state", state),
                ],
            )
        };
        metrics::with_local_recorder(&rec, || {
            let snap = snapshot(vec![
                (a, CredKey(1), Purpose::Read, "open"),
                (a, CredKey(1), Purpose::Read, "open"),
                (b, CredKey::ANONYMOUS, Purpose::Read, "open"),
            ]);
            let mut published = publisher.published.lock().unwrap();
            apply(&mut published, Values::of(&cfg, &snap, dn));
        });
        assert_eq!(conn("ldap://a:389", "cred-1", "open"), Some(2));
        assert_eq!(conn("ldap://b:389", "anonymous", "open"), Some(1));
        assert_eq!(rec.get(WAITERS, &[("pool", "p")]), Some(2));
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://b:389")]),
            Some(1)
        );

        // Server b's connection closes, one of a's drains.
        metrics::with_local_recorder(&rec, || {
            let snap = snapshot(vec![
                (a, CredKey(1), Purpose::Read, "open"),
                (a, CredKey(1), Purpose::Read, "draining"),
            ]);
            let mut published = publisher.published.lock().unwrap();
            apply(&mut published, Values::of(&cfg, &snap, dn));
        });
        assert_eq!(conn("ldap://a:389", "cred-1", "open"), Some(1));
        assert_eq!(conn("ldap://a:389", "cred-1", "draining"), Some(1));
        assert_eq!(conn("ldap://b:389", "anonymous", "open"), Some(0));

        // Server b is removed by a reload.
        metrics::with_local_recorder(&rec, || {
            let mut snap = snapshot(vec![]);
            snap.configured.pop();
            let mut published = publisher.published.lock().unwrap();
            apply(&mut published, Values::of(&cfg, &snap, dn));
        });
        assert_eq!(conn("ldap://a:389", "cred-1", "open"), Some(0));
        assert_eq!(conn("ldap://a:389", "cred-1", "draining"), Some(0));
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://b:389")]),
            Some(0)
        );
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://a:389")]),
            Some(1)
        );

        // The pool goes away.
        metrics::with_local_recorder(&rec, || publisher.zero_all());
        assert_eq!(
            rec.get(SERVER_UP, &[("pool", "p"), ("server", "ldap://a:389")]),
            Some(0)
        );
        assert!(publisher.published.lock().unwrap().is_empty());
    }

    #[test]
    fn dn_labels_merge_two_passwords_of_one_dn_into_one_series() {
        let rec = Rec::default();
        let cfg = MetricsConfig {
            bind_dn_labels: true,
            ..MetricsConfig::default()
        };
        let (a, _) = ab();
        // Keys 1 and 2: the same DN under two passwords.
        let snap = snapshot(vec![
            (a, CredKey(1), Purpose::Read, "open"),
            (a, CredKey(2), Purpose::Read, "open"),
        ]);
        metrics::with_local_recorder(&rec, || {
            let mut published = HashSet::new();
            apply(
                &mut published,
                Values::of(&cfg, &snap, |_| Some("cn=svc,dc=x".into())),
            );
        });
        assert_eq!(
            rec.get(
                CONNECTIONS,
                &[
                    ("server", "ldap://a:389"),
                    ("credential", "cn=svc,dc=x"),
                    ("purpose", "read"),
                    ("state", "open"),
                ]
            ),
            Some(2)
        );
    }
}
