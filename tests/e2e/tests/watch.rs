//! Live reload against real slapd: [`Pool::watch`] follows a TOML file under
//! load. A changed file becomes a new generation with zero failed
//! operations and the old generation freed; an invalid file is refused with
//! its error while the old configuration keeps serving; `reload_now` (what
//! SIGHUP calls) re-reads at once; the watch stops with the pool.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use ldapmux::{ConfigFile, ConfigWatch, Pool, ReloadError, WatchOptions, WatchReport};
use ldapmux_harness::Slapd;

/// A fresh directory for one test, removed when the guard drops.
fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ldapmux-e2e-watch-{name}-"))
        .tempdir()
        .unwrap()
}

/// Writes `text` to `path` as configuration managers do: a temporary file
/// renamed over the old one.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn toml_for(servers: &[&Slapd], extra: &str) -> String {
    let uris: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.url())).collect();
    format!("uri = [{}]\n{extra}", uris.join(", "))
}

/// A pool built from a TOML file listing `servers` (in a fresh directory
/// named after `name`), watched every `interval`. Returns the directory's
/// guard (keep it until the end of the test) and the file too.
fn watched_pool(
    name: &str,
    servers: &[&Slapd],
    interval: Duration,
) -> (tempfile::TempDir, PathBuf, Pool, ConfigWatch) {
    let dir = temp_dir(name);
    let path = dir.path().join("pool.toml");
    std::fs::write(&path, toml_for(servers, "")).unwrap();
    let pool = ConfigFile::read_toml(&path)
        .unwrap()
        .apply(builder())
        .build()
        .unwrap();
    let watch = pool
        .watch_with(
            &path,
            WatchOptions {
                interval,
                base: builder(),
            },
        )
        .unwrap();
    (dir, path, pool, watch)
}

/// The poll interval of the tests that watch the file.
const POLL: Duration = Duration::from_millis(50);

/// Waits (bounded) until the watch's report satisfies `done`.
async fn report_until(
    watch: &ConfigWatch,
    what: &str,
    done: impl Fn(&WatchReport) -> bool,
) -> WatchReport {
    let mut rx = watch.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = rx.borrow_and_update().clone();
            if done(&r) {
                return r;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    })
    .await;
    match waited {
        Ok(r) if done(&r) => r,
        Ok(r) => panic!("watch stopped before {what}: {r:?}"),
        Err(_) => panic!("{what} within 10 s: {:?}", watch.report()),
    }
}

/// The file moves the pool from A to B under load: one reload, zero failed
/// operations, A's connections closed, B serving, the old generation freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_reloads_the_pool_under_load_with_zero_failures() {
    init_tracing();
    let (a, b) = (slapd(100), slapd(100));
    let (_dir, path, pool, watch) = watched_pool("change", &[&a], POLL);
    let load = Load::start(&pool, 16, 100);
    load.wait_ok(300, Duration::from_secs(20)).await;
    let old = pool.status().current.unwrap();
    assert!(a.monitor_current_connections().await.unwrap() >= 1);

    replace(&path, &toml_for(&[&b], "op_timeout = \"9s\"\n"));
    let r = report_until(&watch, "the reload", |r| r.reloads == 1).await;
    assert_eq!((r.refused, r.last_error), (0, None));
    assert_ne!(pool.status().current.unwrap(), old, "a new generation");
    load.wait_ok(300, Duration::from_secs(20)).await;
    generation_freed(&pool, old).await;
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(b.monitor_current_connections().await.unwrap() >= 1);
    let tally = load.stop().await;
    assert_eq!(
        tally.failed(),
        0,
        "zero failed operations across the reload: {:?}",
        tally.first_errors()
    );
    // Nothing changed since: no further reload.
    assert_eq!(watch.report().reloads, 1);
    pool.shutdown().await;
}

/// An invalid file (an unknown key, then a bad URL) is refused with an error
/// naming the file, line and key; the old configuration keeps serving under
/// load; fixing the file reloads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_and_the_old_configuration_keeps_serving() {
    init_tracing();
    let (a, b) = (slapd(100), slapd(100));
    let (_dir, path, pool, watch) = watched_pool("invalid", &[&a], POLL);
    let load = Load::start(&pool, 8, 100);
    load.wait_ok(100, Duration::from_secs(20)).await;
    let generation = pool.status().current.unwrap();

    replace(&path, &toml_for(&[&b], "max_users_per_con = 4\n"));
    let r = report_until(&watch, "the refusal", |r| r.refused == 1).await;
    let error = r.last_error.unwrap();
    assert!(
        error.contains("pool.toml:2") && error.contains("max_users_per_con"),
        "the error names the file, line and key: {error}"
    );
    assert_eq!(r.reloads, 0);
    assert_eq!(pool.status().current.unwrap(), generation, "no reload");
    load.wait_ok(200, Duration::from_secs(20)).await;
    assert!(
        b.monitor_current_connections().await.unwrap() == 0,
        "B, named only by the refused file, is not used"
    );

    replace(&path, "uri = [\"ftp://127.0.0.1:1\"]\n");
    let r = report_until(&watch, "the second refusal", |r| r.refused == 2).await;
    assert!(r.last_error.unwrap().contains("ftp://"), "names the URL");
    assert_eq!(pool.status().current.unwrap(), generation, "no reload");
    load.wait_ok(200, Duration::from_secs(20)).await;

    replace(&path, &toml_for(&[&b], ""));
    let r = report_until(&watch, "the reload", |r| r.reloads == 1).await;
    assert_eq!(r.last_error, None, "a good reload clears the error");
    load.wait_ok(200, Duration::from_secs(20)).await;
    assert!(b.monitor_current_connections().await.unwrap() >= 1);
    let tally = load.stop().await;
    assert_eq!(tally.failed(), 0, "{:?}", tally.first_errors());
    pool.shutdown().await;
}

/// `reload_now` (SIGHUP) re-reads at once, without waiting for the poll,
/// and returns the typed error of an invalid file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_now_rereads_at_once_and_returns_the_files_error() {
    init_tracing();
    let (a, b) = (slapd(10), slapd(10));
    // A poll interval far beyond the test: only reload_now can reload.
    let (_dir, path, pool, watch) = watched_pool("now", &[&a], Duration::from_secs(3600));
    search_user(&pool, 1).await.unwrap();
    let before = pool.status().current.unwrap();
    std::fs::write(&path, toml_for(&[&b], "")).unwrap();
    watch.reload_now().await.unwrap();
    assert_ne!(pool.status().current.unwrap(), before);
    search_user(&pool, 2).await.unwrap();
    assert!(b.monitor_current_connections().await.unwrap() >= 1);

    std::fs::write(&path, "uri = [\"ldap://127.0.0.1:1\"]\nbogus = 1\n").unwrap();
    let after = pool.status().current.unwrap();
    match watch.reload_now().await {
        Err(ReloadError::File(e)) => assert!(e.to_string().contains("bogus"), "{e}"),
        other => panic!("an unknown key is refused: {other:?}"),
    }
    assert_eq!(pool.status().current.unwrap(), after);
    search_user(&pool, 3).await.unwrap();
    let r = watch.report();
    assert_eq!((r.reloads, r.refused), (1, 1));
    pool.shutdown().await;
}

/// The watch stops by itself when the pool shuts down, and when the last
/// handle to the pool is dropped (it never keeps a pool alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_stops_with_the_pool() {
    init_tracing();
    let a = slapd(10);
    let (_dir, _, pool, watch) = watched_pool("stop", &[&a], POLL);
    search_user(&pool, 1).await.unwrap();
    pool.shutdown().await;
    report_until(&watch, "the stop after shutdown", |r| !r.running).await;
    assert!(matches!(
        watch.reload_now().await,
        Err(ReloadError::PoolGone)
    ));

    let (_dir, _, pool, watch) = watched_pool("stop-drop", &[&a], POLL);
    search_user(&pool, 1).await.unwrap();
    drop(pool);
    report_until(&watch, "the stop after drop", |r| !r.running).await;
    a.wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap();
}
