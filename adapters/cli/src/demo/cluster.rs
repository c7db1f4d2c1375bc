//! The cluster: three slapd on 127.0.0.1 started side by side (A, B, C),
//! announced with their pids, and stopped at the end with a check that none
//! is left running.

use ldapmux_harness::{HarnessError, Slapd};

use super::display::say;
use super::shared::{Meta, NAMES};
use super::{GROUPS, SLAPD_THREADS};
use crate::view;

/// Starts the three servers in parallel, each with `users` users. If one
/// fails, the others are stopped and its error returned.
pub(super) async fn start(users: usize) -> Result<Vec<Slapd>, HarnessError> {
    say(&format!(
        "ldapmux demo: starting 3 slapd on 127.0.0.1 ({} users, {GROUPS} groups, threads {SLAPD_THREADS} each)…",
        view::count(users as u64)
    ));
    let mut starts = Vec::new();
    for _ in 0..3 {
        starts.push(tokio::task::spawn_blocking(move || {
            Slapd::builder()
                .users(users)
                .groups(GROUPS)
                .threads(SLAPD_THREADS)
                // Unpaged searches capped at 500 entries, paged ones not,
                // as a large directory is run: "enumerate all" pages.
                .database_config(
                    "limits * size.soft=500 size.hard=500 size.pr=500 size.prtotal=unlimited",
                )
                // Password policies for the accounts of `policy`.
                .global_config(super::policy::SLAPD_GLOBAL)
                .database_config(super::policy::SLAPD_DATABASE[0])
                .database_config(super::policy::SLAPD_DATABASE[1])
                .start()
        }));
    }
    let mut slapds = Vec::new();
    let mut first_err = None;
    for s in starts {
        match s.await {
            Ok(Ok(slapd)) => slapds.push(slapd),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => panic!("slapd start task: {e}"),
        }
    }
    if let Some(e) = first_err {
        stop(slapds);
        return Err(e);
    }
    Ok(slapds)
}

/// Prints each server's name, URL and pid; returns the pids and what the
/// view shows next to each server.
pub(super) fn announce(slapds: &[Slapd]) -> (Vec<u32>, Vec<Meta>) {
    let mut slapd_pids = Vec::new();
    let mut meta = Vec::new();
    for (i, s) in slapds.iter().enumerate() {
        let pid = s.pid();
        slapd_pids.extend(pid);
        meta.push(Meta { url: s.url(), pid });
        say(&format!(
            "server {}: {}  slapd pid {}{}",
            NAMES[i],
            s.url(),
            pid.map_or("?".to_owned(), |p| p.to_string()),
            if i == 0 { "  (preferred)" } else { "" }
        ));
    }
    (slapd_pids, meta)
}

/// Stops the servers (blocking: slapd is waited for).
pub(super) fn stop(slapds: Vec<Slapd>) {
    tokio::task::block_in_place(|| drop(slapds));
}

/// The slapd of `pids` (every start and restart) still alive.
pub(super) fn left_running(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|&p| ldapmux_harness::process_alive(p))
        .collect()
}
