//! The load: one call of each kind with its answer checked (searches,
//! enumerations, compares, WhoAmI with four credentials, password checks,
//! adds and modifies of unique names), and the tasks that send them.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use ldap3::SearchEntry;
use ldapmux::{Credential, Mod, Password, Pool, Scope};
use ldapmux_harness::{FIRST_UID, ROOT_DN, ROOT_PW, SCRATCH_BASE, Slapd};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::record::{Rng, Run, WriteKind, write_id};
use crate::{CRED_USERS, GROUPS, USERS, common, hang_bound};

/// Handles the load tasks share.
#[derive(Clone)]
pub struct Handles {
    pool: Pool,
    admin: Pool,
    /// (user index, handle bound as that user).
    users: Vec<(usize, Pool)>,
}

impl Handles {
    /// The pool itself, its root handle, and one handle per `CRED_USERS` user.
    pub fn new(pool: &Pool) -> Handles {
        Handles {
            pool: pool.clone(),
            admin: pool.with_credential(Credential::simple(ROOT_DN, ROOT_PW)),
            users: CRED_USERS
                .iter()
                .map(|&i| {
                    let cred = Credential::simple(Slapd::user_dn(i), Slapd::user_password(i));
                    (i, pool.with_credential(cred))
                })
                .collect(),
        }
    }
}

fn first_value<'a>(e: &'a SearchEntry, attr: &str) -> Option<&'a str> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// A uid search for a random user; checks its uidNumber.
pub async fn search_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let i = rng.index(USERS);
    let filter = format!("(uid={})", Slapd::user_uid(i));
    let r = run
        .call(
            "search",
            false,
            h.pool.search(
                Slapd::people_base(),
                Scope::OneLevel,
                &filter,
                &["uidNumber"],
            ),
        )
        .await;
    if let Some(Ok(entries)) = r {
        let want = (FIRST_UID as usize + i).to_string();
        let got: Vec<_> = entries
            .iter()
            .map(|e| first_value(e, "uidNumber"))
            .collect();
        if got == [Some(want.as_str())] {
            run.ok("search");
        } else {
            run.violation(format!("search {filter}: wrong answer {got:?}"));
        }
    }
}

/// A uidNumber compare, equal or not at random; checks the verdict.
pub async fn compare_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let i = rng.index(USERS);
    let equal = rng.below(2) == 0;
    let value = FIRST_UID as usize + if equal { i } else { i + 1 };
    let r = run
        .call(
            "compare",
            false,
            h.pool
                .compare(&Slapd::user_dn(i), "uidNumber", value.to_string()),
        )
        .await;
    match r {
        Some(Ok(got)) if got == equal => run.ok("compare"),
        Some(Ok(got)) => run.violation(format!(
            "compare uidNumber={value} on user{i}: {got}, expected {equal}"
        )),
        _ => {}
    }
}

/// WhoAmI on the pool or a user's handle; checks the identity.
pub async fn whoami_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let c = rng.index(h.users.len() + 1);
    let (handle, want) = match c.checked_sub(1) {
        None => (&h.pool, String::new()),
        Some(k) => {
            let (i, handle) = &h.users[k];
            (handle, format!("dn:{}", Slapd::user_dn(*i)))
        }
    };
    if let Some(Ok(got)) = run.call("whoami", false, handle.whoami()).await {
        if got.eq_ignore_ascii_case(&want) {
            run.ok("whoami");
        } else {
            run.violation(format!(
                "whoami: {got:?} on a connection that must be bound as {want:?}"
            ));
        }
    }
}

/// A streaming search of one group, sometimes dropped half-way; checks
/// every entry and, if read to the end, the count.
pub async fn enumerate_one(run: &Run, h: &Handles, rng: &mut Rng) {
    let j = rng.index(GROUPS);
    // Sometimes the caller walks away half-way (the stream is dropped).
    let stop_after = (rng.below(4) == 0).then(|| 1 + rng.index(5));
    let filter = format!("(gidNumber={})", ldapmux_harness::FIRST_GID as usize + j);
    let r = run
        .call(
            "enumerate",
            false,
            h.pool
                .streaming_search(Slapd::people_base(), Scope::OneLevel, &filter, &["uid"]),
        )
        .await;
    let Some(Ok(mut stream)) = r else { return };
    let mut seen = HashSet::new();
    loop {
        if stop_after == Some(seen.len()) {
            drop(stream);
            run.ok("enumerate");
            return;
        }
        let item = run
            .call("enumerate", false, async {
                stream.next().await.transpose()
            })
            .await;
        match item {
            None | Some(Err(_)) => return,
            Some(Ok(None)) => break,
            Some(Ok(Some(e))) => {
                let uid = first_value(&e, "uid").unwrap_or_default().to_owned();
                let i: Option<usize> = uid.strip_prefix("user").and_then(|n| n.parse().ok());
                if i.is_none_or(|i| i % GROUPS != j) || !seen.insert(uid.clone()) {
                    run.violation(format!("enumerate {filter}: unexpected entry {uid:?}"));
                    return;
                }
            }
        }
    }
    let want = (0..USERS).filter(|i| i % GROUPS == j).count();
    if seen.len() == want {
        run.ok("enumerate");
    } else {
        run.violation(format!(
            "enumerate {filter}: ended after {} entries, expected {want}",
            seen.len()
        ));
    }
}

/// A password check, right or wrong at random; checks the verdict.
pub async fn authenticate_one(run: &Run, h: &Handles, rng: &mut Rng, n: u64) {
    let i = rng.index(USERS);
    let right = rng.below(4) != 0;
    let pw = if right {
        Slapd::user_password(i)
    } else {
        format!("wrong-{n}")
    };
    let r = run
        .call(
            "authenticate",
            false,
            h.pool.authenticate(&Slapd::user_dn(i), &Password::new(pw)),
        )
        .await;
    match r {
        Some(Ok(got)) if got.is_accepted() == right => run.ok("authenticate"),
        Some(Ok(got)) => run.violation(format!(
            "authenticate user{i} with the {} password: {got:?}",
            if right { "right" } else { "wrong" }
        )),
        _ => {}
    }
}

/// One write with a name used nowhere else: an add of `cn=<id>` or a modify
/// adding `description: <id>` to a user.
pub async fn write_one(run: &Run, h: &Handles, rng: &mut Rng, task: usize, n: u64) {
    let id = write_id(task, n);
    if rng.below(10) < 7 {
        let dn = format!("cn={id},{SCRATCH_BASE}");
        let r = run
            .call("add", true, h.admin.add(&dn, common::person(&id)))
            .await;
        if matches!(r, Some(Ok(()))) {
            run.ok("add");
        }
        run.record_write(task, n, WriteKind::Add, r);
    } else {
        let dn = Slapd::user_dn(rng.index(USERS));
        let mods = vec![Mod::Add(
            "description".to_owned(),
            HashSet::from([id.clone()]),
        )];
        let r = run.call("modify", true, h.admin.modify(&dn, mods)).await;
        if matches!(r, Some(Ok(()))) {
            run.ok("modify");
        }
        run.record_write(task, n, WriteKind::Modify, r);
    }
}

/// What a load task sends.
#[derive(Clone, Copy, Debug)]
enum Role {
    /// Searches, compares and WhoAmIs.
    Reader,
    /// Streaming searches.
    Enumerator,
    /// Adds and modifies.
    Writer,
    /// Password checks.
    Authenticator,
}

/// One load task: calls of its role until `stop`, with a little think time.
async fn load_task(
    run: Arc<Run>,
    h: Handles,
    role: Role,
    task: usize,
    mut rng: Rng,
    stop: CancellationToken,
) {
    let mut n = 0u64;
    while !stop.is_cancelled() {
        if !matches!(role, Role::Writer) && run.writes_only.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        n += 1;
        match role {
            Role::Reader => match rng.below(10) {
                0..=5 => search_one(&run, &h, &mut rng).await,
                6..=7 => compare_one(&run, &h, &mut rng).await,
                _ => whoami_one(&run, &h, &mut rng).await,
            },
            Role::Enumerator => enumerate_one(&run, &h, &mut rng).await,
            Role::Writer => write_one(&run, &h, &mut rng, task, n).await,
            Role::Authenticator => authenticate_one(&run, &h, &mut rng, n).await,
        }
        // The load's own pacing: a little think time, so that three slapd,
        // the proxies and the pool share two cores without starving probes.
        let think = match role {
            Role::Writer | Role::Authenticator => rng.ms(2, 10),
            _ => rng.ms(0, 4),
        };
        tokio::select! {
            _ = tokio::time::sleep(think) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// The load: eleven tasks (six readers, two enumerators, two writers, one
/// authenticator), each with its own seeded stream, all through one pool.
pub struct Load {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts every load task; task `n` draws from `root.fork(n)`.
    pub fn start(run: &Arc<Run>, handles: &Handles, root: &Rng) -> Load {
        let stop = CancellationToken::new();
        let roles = [
            (Role::Reader, 6),
            (Role::Enumerator, 2),
            (Role::Writer, 2),
            (Role::Authenticator, 1),
        ];
        let mut tasks = Vec::new();
        for (role, n) in roles {
            for _ in 0..n {
                let task = tasks.len();
                tasks.push(tokio::spawn(load_task(
                    run.clone(),
                    handles.clone(),
                    role,
                    task,
                    root.fork(task as u64),
                    stop.clone(),
                )));
            }
        }
        Load { stop, tasks }
    }

    /// The token cancelled when the load stops (other samplers of the load end with it).
    pub fn stopped(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops the load: every task must end within one bounded call.
    pub async fn stop(self, run: &Run) {
        self.stop.cancel();
        for task in self.tasks {
            match tokio::time::timeout(hang_bound() * 3, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => run.fail(&format!("a load task panicked: {e}")),
                Err(_) => run.fail("a load task did not end: a call hung outside the bounds"),
            }
        }
    }
}
