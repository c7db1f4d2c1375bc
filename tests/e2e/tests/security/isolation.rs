//! A user never gets a connection bound as someone else.

use super::*;

/// Six identities (four users, anonymous, and the pool's default credential
/// that a reload switches back and forth) plus a wrong password for a user
/// that is also in use with the right one, 4 tasks each, for 2 s: every
/// WhoAmI (through the pool and through a lease) names the caller's own
/// identity, the wrong password never succeeds, and a call started after a
/// reload returned sees the new default identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_never_gets_a_connection_bound_as_someone_else() {
    capture();
    let server = slapd(12);
    let pool = builder()
        .server(server.url())
        .credential(Credential::simple(
            Slapd::user_dn(8),
            Slapd::user_password(8),
        ))
        .max_users_per_connection(3)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Reloads begun and finished: a call that starts after `done` = k and
    // ends before `begun` = m may see the default of any reload k..=m.
    let begun = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let default_of = |reloads: u64| if reloads.is_multiple_of(2) { 8 } else { 9 };
    let checks = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    // (handle, expected identity: Some(user) / None anonymous / default).
    enum Who {
        User(usize),
        Anonymous,
        Default,
        Wrong,
    }
    let mut handles: Vec<(ldapmux::Pool, Who)> = (0..4)
        .map(|i| {
            (
                pool.with_credential(Credential::simple(
                    Slapd::user_dn(i),
                    Slapd::user_password(i),
                )),
                Who::User(i),
            )
        })
        .collect();
    handles.push((pool.with_credential(Credential::Anonymous), Who::Anonymous));
    handles.push((pool.clone(), Who::Default));
    handles.push((
        pool.with_credential(Credential::simple(Slapd::user_dn(0), "not-user0s-password")),
        Who::Wrong,
    ));
    let handles = Arc::new(handles);
    for h in 0..handles.len() {
        for t in 0..4 {
            let (handles, stop, begun, done, checks) = (
                handles.clone(),
                stop.clone(),
                begun.clone(),
                done.clone(),
                checks.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let (handle, who) = &handles[h];
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let from = done.load(Ordering::SeqCst);
                    let got = if (n + t).is_multiple_of(3) {
                        match handle.lease(LeaseKind::Read).await {
                            Ok(mut g) => g.whoami().await,
                            Err(e) => Err(e),
                        }
                    } else {
                        handle.whoami().await
                    };
                    let to = begun.load(Ordering::SeqCst);
                    match (who, got) {
                        (Who::User(i), Ok(id)) => assert_eq!(id.to_lowercase(), identity(*i)),
                        (Who::Anonymous, Ok(id)) => assert_eq!(id, ""),
                        (Who::Default, Ok(id)) => {
                            let id = id.to_lowercase();
                            assert!(
                                (from..=to).any(|r| id == identity(default_of(r))),
                                "{id} for a call between reloads {from} and {to}"
                            );
                        }
                        (Who::Wrong, Err(e)) => assert!(
                            matches!(
                                e,
                                Error::Pool {
                                    source: CoreError::InvalidCredentials { .. },
                                    ..
                                }
                            ),
                            "{e:?}"
                        ),
                        (Who::Wrong, Ok(id)) => {
                            panic!("a wrong password got a connection bound as {id}")
                        }
                        (_, Err(e)) => panic!("unexpected error: {e:?}"),
                    }
                    checks.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
    }
    // Reload the default credential back and forth while they run.
    for r in 1..=6u64 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        begun.store(r, Ordering::SeqCst);
        pool.reload(
            builder()
                .server(server.url())
                .credential(Credential::simple(
                    Slapd::user_dn(default_of(r)),
                    Slapd::user_password(default_of(r)),
                ))
                .max_users_per_connection(3),
        )
        .unwrap();
        done.store(r, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a task hung")
            .unwrap();
    }
    assert!(
        checks.load(Ordering::SeqCst) > 500,
        "enough calls were checked"
    );
    // slapd agrees: every open connection is bound as one of the identities.
    let allowed: HashSet<String> = [0, 1, 2, 3, 8, 9]
        .iter()
        .map(|&i| Slapd::user_dn(i).to_lowercase())
        .chain([String::new()])
        .collect();
    let seen = server.monitor_connections().await.unwrap();
    assert!(
        seen.iter()
            .all(|c| allowed.contains(&c.authz_dn.to_lowercase())),
        "{seen:?}"
    );
    pool.shutdown().await;
}
