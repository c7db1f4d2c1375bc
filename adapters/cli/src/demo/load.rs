//! The load: searches, enumerations, authentications and writes through
//! the pool, each kind in its own tasks, with every outcome recorded.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ldapmux::{Credential, EntryStream, Error, Password, Scope};
use ldapmux_harness::{ROOT_DN, ROOT_PW, SCRATCH_BASE, Slapd};
use tokio::task::JoinSet;

use super::GROUPS;
use super::shared::Shared;
use crate::stats::{OpKind, Outcome, Rng};

/// The load: searches, enumerations, authentications and writes, each in
/// its own tasks, until told to stop or the pool is shut down.
pub(super) fn spawn_load(
    shared: &Arc<Shared>,
    users: usize,
    policies_ready: std::time::Instant,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for i in 0..12 {
        set.spawn(search_task(shared.clone(), users, 100 + i));
    }
    for i in 0..2 {
        set.spawn(enumerate_task(shared.clone(), users, 200 + i));
    }
    for i in 0..2 {
        set.spawn(auth_task(shared.clone(), users, 300 + i));
    }
    set.spawn(paged_task(shared.clone(), users));
    set.spawn(super::policy::policy_task(shared.clone(), policies_ready));
    set.spawn(write_task(shared.clone()));
    set
}

/// Enumerates every user, again and again: more entries than the servers
/// answer an unpaged search (500), so it pages; each must be complete.
async fn paged_task(shared: Arc<Shared>, users: usize) {
    loop {
        let start = Instant::now();
        let outcome = match shared
            .pool
            .streaming_search(Slapd::people_base(), Scope::OneLevel, "(uid=*)", &["1.1"])
            .await
        {
            Err(e) => classify(&e),
            Ok(mut stream) => {
                let (count, outcome) = read_out(&mut stream, "all users").await;
                if outcome == Outcome::Ok && count != users {
                    Outcome::Failed(format!("all users: {count} entries, expected {users}"))
                } else {
                    outcome
                }
            }
        };
        if !recorded(&shared, OpKind::Paged, start, outcome).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Stops the load: every operation now fails at once with ShutDown; tasks
/// still running after 3 s are aborted.
pub(super) async fn stop(shared: &Shared, mut load: JoinSet<()>) {
    shared.stop_load.cancel();
    let deadline = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = load.join_next() => if next.is_none() { break },
            _ = &mut deadline => { load.abort_all(); break; }
        }
    }
}

/// How a pool error counts.
pub(super) fn classify(e: &Error) -> Outcome {
    if e.is_shut_down() {
        Outcome::ShutDown
    } else {
        Outcome::Failed(e.to_string())
    }
}

/// Reads a stream to its end: the entries read, and how it ended (a
/// connection cut by a kill is expected, by design: behaviour 10).
async fn read_out(stream: &mut EntryStream, what: &str) -> (usize, Outcome) {
    let mut count = 0usize;
    let mut outcome = Outcome::Ok;
    while let Some(item) = stream.next_entry().await {
        match item {
            Ok(_) => count += 1,
            Err(e) if e.is_shut_down() => outcome = Outcome::ShutDown,
            Err(e) if e.conn_error_kind().is_some() => outcome = Outcome::Cut,
            Err(e) => outcome = Outcome::Failed(format!("{what} after {count} entries: {e}")),
        }
    }
    (count, outcome)
}

/// Records one operation of `kind` begun at `start`, pauses a little after
/// a failure, and says whether the task goes on (no stop asked, no
/// shutdown seen).
pub(super) async fn recorded(
    shared: &Shared,
    kind: OpKind,
    start: Instant,
    outcome: Outcome,
) -> bool {
    shared
        .rec
        .record(kind, start, Instant::now(), outcome.clone());
    if matches!(outcome, Outcome::Failed(_)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !shared.stop_load.is_cancelled() && outcome != Outcome::ShutDown
}

/// A password check's error as the load counts it: a connection that died
/// after the bind was sent is expected at a kill (never retried, by design).
pub(super) fn auth_error(e: &Error) -> Outcome {
    match e {
        Error::Pool {
            source: ldapmux::PoolError::ConnectionLost { .. },
            ..
        } => Outcome::Unknown,
        e => classify(e),
    }
}

async fn search_task(shared: Arc<Shared>, users: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    loop {
        let i = rng.below(users);
        let filter = format!("(uid={})", Slapd::user_uid(i));
        let start = Instant::now();
        let r = shared
            .pool
            .search(
                Slapd::people_base(),
                Scope::OneLevel,
                &filter,
                &["cn", "uidNumber"],
            )
            .await;
        let outcome = match r {
            Ok(entries) if entries.len() == 1 => Outcome::Ok,
            Ok(entries) => Outcome::Failed(format!("{} entries for {filter}", entries.len())),
            Err(e) => classify(&e),
        };
        if !recorded(&shared, OpKind::Search, start, outcome).await {
            return;
        }
    }
}

async fn enumerate_task(shared: Arc<Shared>, users: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    loop {
        n += 1;
        // Every other enumeration lists the groups, the others a slice of
        // the people (`user42*`: user42 and user420–429).
        let (base, filter, attrs, expect) = if n.is_multiple_of(2) {
            (
                Slapd::groups_base(),
                "(objectClass=posixGroup)".to_owned(),
                vec!["cn", "gidNumber"],
                Some(GROUPS),
            )
        } else {
            let lo = (users / 100).max(1);
            let hi = (users / 10).max(lo + 1);
            let k = lo + rng.below(hi - lo);
            (
                Slapd::people_base(),
                format!("(uid=user{k}*)"),
                vec!["uid"],
                None,
            )
        };
        let start = Instant::now();
        let outcome = match shared
            .pool
            .streaming_search(base, Scope::OneLevel, &filter, &attrs)
            .await
        {
            Err(e) => classify(&e),
            Ok(mut stream) => {
                let (count, outcome) = read_out(&mut stream, &filter).await;
                match expect {
                    Some(want) if outcome == Outcome::Ok && count != want => {
                        Outcome::Failed(format!("{filter}: {count} entries, expected {want}"))
                    }
                    _ if outcome == Outcome::Ok && count == 0 => {
                        Outcome::Failed(format!("{filter}: no entries"))
                    }
                    _ => outcome,
                }
            }
        };
        if !recorded(&shared, OpKind::Enumerate, start, outcome).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn auth_task(shared: Arc<Shared>, users: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut n = 0u64;
    loop {
        n += 1;
        let i = rng.below(users);
        let wrong = n.is_multiple_of(4);
        let password = if wrong {
            Password::new(format!("not-{}", Slapd::user_password(i)))
        } else {
            Password::new(Slapd::user_password(i))
        };
        let start = Instant::now();
        let outcome = match shared
            .pool
            .authenticate(&Slapd::user_dn(i), &password)
            .await
        {
            Ok(verdict) if verdict.is_accepted() != wrong => {
                shared.tally(&verdict);
                if wrong {
                    Outcome::Rejected
                } else {
                    Outcome::Ok
                }
            }
            Ok(verdict) => Outcome::Failed(format!(
                // (not tallied: the summary counts the verdicts as expected)
                "the {} password of user{i} had the verdict {verdict:?}",
                if wrong { "wrong" } else { "right" },
            )),
            Err(e) => auth_error(&e),
        };
        if !recorded(&shared, OpKind::Auth, start, outcome).await {
            return;
        }
        // Checks reuse the servers' bind connections (a fresh connection per
        // check, as before issue 19, left loopback ports in TIME_WAIT).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

static WRITE_SEQ: AtomicU64 = AtomicU64::new(0);

async fn write_task(shared: Arc<Shared>) {
    let admin = shared
        .pool
        .with_credential(Credential::simple(ROOT_DN, ROOT_PW));
    let run = std::process::id();
    loop {
        let n = WRITE_SEQ.fetch_add(1, Ordering::Relaxed);
        let cn = format!("demo-{run}-{n}");
        let dn = format!("cn={cn},{SCRATCH_BASE}");
        let attrs = vec![
            (
                "objectClass".to_owned(),
                HashSet::from(["top".to_owned(), "organizationalRole".to_owned()]),
            ),
            ("cn".to_owned(), HashSet::from([cn])),
            (
                "description".to_owned(),
                HashSet::from(["written by ldapmux demo".to_owned()]),
            ),
        ];
        let start = Instant::now();
        let outcome = match admin.add(&dn, attrs).await {
            Ok(()) => Outcome::Ok,
            Err(Error::OutcomeUnknown { .. }) => Outcome::Unknown,
            Err(e) => classify(&e),
        };
        if !recorded(&shared, OpKind::Write, start, outcome).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
