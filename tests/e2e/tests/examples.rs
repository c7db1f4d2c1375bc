//! The `ldapmux` crate's examples (`adapters/tokio/examples/`), compiled into
//! this test and run against real slapd, so an example that stops working
//! fails `make test` instead of misleading a newcomer.

mod common;

#[path = "../../../adapters/tokio/examples/basic_search.rs"]
mod basic_search;
#[path = "../../../adapters/tokio/examples/config_file_reload.rs"]
mod config_file_reload;
#[path = "../../../adapters/tokio/examples/failover_pair.rs"]
mod failover_pair;
#[path = "../../../adapters/tokio/examples/metrics_prometheus.rs"]
mod metrics_prometheus;
#[path = "../../../adapters/tokio/examples/streaming_enumeration.rs"]
mod streaming_enumeration;

use std::time::Duration;

use common::*;
use ldapmux::Health;
use ldapmux_harness::{PEOPLE_BASE, Slapd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_search_finds_one_user_by_uid() {
    let server = slapd(5);
    let filter = format!("(uid={})", Slapd::user_uid(2));
    let found = basic_search::run(&server.url(), PEOPLE_BASE, &filter)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .0
            .starts_with(&format!("uid={}", Slapd::user_uid(2)))
    );
    assert!(!found[0].1.is_empty(), "the entry's cn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_enumeration_counts_every_account() {
    let server = slapd(40);
    let (count, first) = streaming_enumeration::run(&server.url(), PEOPLE_BASE)
        .await
        .unwrap();
    assert_eq!(count, 40);
    assert_eq!(first.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_pair_reads_from_the_backup_while_the_preferred_is_down_and_comes_back() {
    let mut a = slapd(2);
    let b = slapd(2);
    let pool = failover_pair::pair(&a.url(), &b.url()).unwrap();
    let (served, _) = failover_pair::read_once(&pool, PEOPLE_BASE).await.unwrap();
    assert_eq!(served, a.url());
    a.kill();
    // The first lease after the kill may land on the dead connection; the
    // example takes a new one (at most 3 tries) and is answered by the backup.
    let (served, health) = failover_pair::read_once(&pool, PEOPLE_BASE).await.unwrap();
    assert_eq!(served, b.url(), "{health:?}");
    assert!(
        health
            .iter()
            .any(|(addr, h)| *addr == a.url() && matches!(h, Health::Down { .. })),
        "{health:?}"
    );
    a.restart().unwrap();
    eventually(
        "back on the preferred server after its hold-down",
        Duration::from_secs(20),
        || {
            // An open connection to the preferred server, and the backup's
            // drained away (make-before-break: the first can exist while
            // the backup still serves).
            let on = |c: &ldapmux::ConnInfo, s: &Slapd| {
                c.phase == ldapmux::ConnPhase::Open
                    && pool.server_url(c.server).as_deref() == Some(s.url().as_str())
            };
            let conns = pool.connections();
            conns.iter().any(|c| on(c, &a)) && !conns.iter().any(|c| on(c, &b))
        },
    )
    .await;
    let (served, _) = failover_pair::read_once(&pool, PEOPLE_BASE).await.unwrap();
    assert_eq!(served, a.url());
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_reload_applies_a_change_and_refuses_a_broken_file() {
    let server = slapd(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.toml");
    let write = |text: String| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    write(format!(
        "uri = [\"{}\"]\nbase = \"{PEOPLE_BASE}\"\n",
        server.url()
    ));
    let (pool, watch, found) = config_file_reload::start(&path, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(found, 1, "the base entry");
    write(format!(
        "uri = [\"{}\"]\nbase = \"{PEOPLE_BASE}\"\nop_timeout = \"7s\"\n",
        server.url()
    ));
    let report = config_file_reload::reload_now(&watch).await;
    assert_eq!((report.reloads, report.refused), (1, 0), "{report:?}");
    write("uri = [\"not a url\"]\n".into());
    let report = config_file_reload::reload_now(&watch).await;
    assert_eq!((report.reloads, report.refused), (1, 1), "{report:?}");
    assert!(report.last_error.is_some());
    search_user(&pool, 1)
        .await
        .expect("the old configuration serves");
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_prometheus_renders_the_pools_counters() {
    let server = slapd(2);
    let handle = metrics_prometheus::install();
    let text = metrics_prometheus::run(&handle, &server.url(), 5)
        .await
        .unwrap();
    let ok_line = text
        .lines()
        .find(|l| {
            l.starts_with("ldapmux_operations_total")
                && l.contains("pool=\"example\"")
                && l.contains("outcome=\"ok\"")
        })
        .unwrap_or_else(|| panic!("no ok operations line in:\n{text}"));
    assert!(ok_line.ends_with(" 5"), "{ok_line}");
    assert!(text.contains("ldapmux_server_up"), "{text}");
}
