//! Running one cell: a pool through the proxy, the fault at its moment, the operation, and what the server saw.

use super::*;

/// Runs the cell's operation once; every await is bounded, and overrunning
/// a bound is itself a failure of the cell.
async fn run_op(cell: Cell, pool: Pool) -> Ran {
    let started = Instant::now();
    let bounded = |what: &'static str| {
        move |_| -> Ran {
            panic!(
                "{cell} {what} did not end within {:?} (operation {OP_TIMEOUT:?} + connect \
                 {CONNECT_TIMEOUT:?} + margin)",
                call_bound()
            )
        }
    };
    match cell.op {
        OpKind::Search => {
            let filter = format!("(uid={})", Slapd::user_uid(USER));
            let search = pool.search(Slapd::people_base(), Scope::OneLevel, &filter, &["uid"]);
            match tokio::time::timeout(call_bound(), search).await {
                Ok(Ok(entries)) if entries.len() == 1 => ran(Ok(()), started),
                Ok(Ok(entries)) => Ran {
                    class: Class::Other,
                    detail: format!("{} entries", entries.len()),
                    took: started.elapsed(),
                },
                Ok(Err(e)) => ran(Err(e), started),
                Err(e) => bounded("search")(e),
            }
        }
        OpKind::Enumerate => {
            let start =
                pool.streaming_search(Slapd::people_base(), Scope::OneLevel, ENUM_FILTER, &["uid"]);
            let mut stream = match tokio::time::timeout(call_bound(), start).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return ran(Err(e), started),
                Err(e) => return bounded("streaming_search")(e),
            };
            let mut entries = 0;
            // Each entry is bounded by the operation timeout; four items at most
            // (three entries, then the end).
            for _ in 0..4 {
                match tokio::time::timeout(OP_TIMEOUT + MARGIN, stream.next()).await {
                    Ok(Some(Ok(_))) => entries += 1,
                    Ok(Some(Err(e))) => return ran(Err(e), started),
                    Ok(None) if entries == 3 => return ran(Ok(()), started),
                    Ok(None) => {
                        return Ran {
                            class: Class::Other,
                            detail: format!("the stream ended after {entries} entries"),
                            took: started.elapsed(),
                        };
                    }
                    Err(_) => panic!(
                        "{cell} the next entry did not come within {:?}",
                        OP_TIMEOUT + MARGIN
                    ),
                }
            }
            panic!("{cell} the enumeration of 3 entries did not end");
        }
        OpKind::Write => {
            let write = async {
                if cell.uses_add() {
                    pool.add(&add_dn(), person(ADD_CN)).await
                } else {
                    let inc = Mod::Increment("uidNumber".to_owned(), "1".to_owned());
                    pool.modify(&Slapd::user_dn(USER), vec![inc]).await
                }
            };
            match tokio::time::timeout(call_bound(), write).await {
                Ok(r) => ran(r, started),
                Err(e) => bounded("write")(e),
            }
        }
        OpKind::Auth => {
            let password = Password::new(Slapd::user_password(USER));
            let dn = Slapd::user_dn(USER);
            let auth = pool.authenticate(&dn, &password);
            match tokio::time::timeout(call_bound(), auth).await {
                Ok(Ok(verdict)) if verdict.is_accepted() => ran(Ok(()), started),
                Ok(Ok(verdict)) => Ran {
                    class: Class::Other,
                    detail: format!("the right password was refused: {verdict:?}"),
                    took: started.elapsed(),
                },
                Ok(Err(e)) => ran(Err(e), started),
                Err(e) => bounded("authenticate")(e),
            }
        }
    }
}

fn pool_for(cell: Cell, proxy: &FaultProxy, seed: u64) -> Pool {
    let mut b = Pool::builder()
        .server(proxy.url())
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OP_TIMEOUT)
        .probe_backoff(PROBE_MIN, PROBE_MAX)
        .failback_hold_down(Duration::from_millis(200))
        .jitter_seed(seed);
    match cell.op {
        OpKind::Write => {
            b = b.credential(Credential::simple(
                ldapmux_harness::ROOT_DN,
                ldapmux_harness::ROOT_PW,
            ))
        }
        OpKind::Search | OpKind::Enumerate if cell.moment == Moment::Bind => {
            b = b.credential(Credential::simple(
                Slapd::user_dn(POOL_USER),
                Slapd::user_password(POOL_USER),
            ));
        }
        _ => {}
    }
    b.build().expect("pool")
}

/// Runs a blocking `Slapd` call (signals, waits for threads to stop, reaping)
/// on the blocking pool, so that it never stalls the runtime's two workers
/// and with them the timers of every cell running beside.
async fn off_runtime<T: Send + 'static>(
    mut server: Slapd,
    f: impl FnOnce(&mut Slapd) -> T + Send + 'static,
) -> (Slapd, T) {
    tokio::task::spawn_blocking(move || {
        let t = f(&mut server);
        (server, t)
    })
    .await
    .expect("blocking slapd call")
}

/// SIGKILL or SIGSTOP, off the runtime.
async fn kill_or_freeze(cell: Cell, server: Slapd) -> Slapd {
    let kill = cell.fault == Fault::Kill;
    off_runtime(server, move |s| if kill { s.kill() } else { s.freeze() })
        .await
        .0
}

async fn start_slapd() -> Slapd {
    tokio::task::spawn_blocking(|| Slapd::builder().users(10).groups(1).start())
        .await
        .expect("slapd start task")
        .unwrap_or_else(|e| panic!("starting slapd: {e}"))
}

/// Opens a warm connection of the kind the operation uses, and waits until
/// the server is trusted (`Health::Up`). Set-up, not what the cell tests: on
/// a loaded 2-core machine a first connect through the proxy to a slapd just
/// started can take longer than the cell's 1 s connect timeout (seen in CI:
/// `[stall reads × search × while idle]` failed here before any fault), which
/// also marks the server down. So a failed warm-up is tried again, bounded,
/// until a warm connection is open and the server is back to `Up`; the cell
/// then measures from that state (its counters are taken after this).
async fn warm(cell: Cell, pool: &Pool, url: &str) {
    let deadline = Instant::now() + WARM_WITHIN;
    loop {
        let why = match warm_once(cell, pool).await {
            Ok(()) => match server_status(pool, url).health {
                Health::Up => return,
                health => format!("the server is not trusted yet: {health:?}"),
            },
            Err(e) => format!("warming a connection: {e}"),
        };
        assert!(
            Instant::now() < deadline,
            "{cell} not warm within {WARM_WITHIN:?}: {why}"
        );
        // Paces the retries of the set-up (a probe or hold-down runs meanwhile).
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn warm_once(cell: Cell, pool: &Pool) -> Result<(), String> {
    match cell.op {
        OpKind::Write => {
            let mut lease = tokio::time::timeout(call_bound(), pool.lease(LeaseKind::Write))
                .await
                .map_err(|_| "no write lease in time".to_owned())?
                .map_err(|e| format!("a write connection: {e}"))?;
            let me = lease.whoami().await.map_err(|e| format!("whoami: {e}"))?;
            assert!(me.to_lowercase().contains("cn=admin"), "{cell} bound: {me}");
        }
        _ => {
            let filter = format!("(uid={})", Slapd::user_uid(POOL_USER));
            let search = pool.search(Slapd::people_base(), Scope::OneLevel, &filter, &["uid"]);
            let entries = tokio::time::timeout(call_bound(), search)
                .await
                .map_err(|_| "no search answer in time".to_owned())?
                .map_err(|e| format!("a read connection: {e}"))?;
            assert_eq!(entries.len(), 1);
        }
    }
    Ok(())
}

/// How many times slapd applied the write.
async fn applied(cell: Cell, server: &Slapd) -> usize {
    if cell.uses_add() {
        return server
            .count_entries(&add_dn(), "(objectClass=*)")
            .await
            .expect("count");
    }
    let base = FIRST_UID as usize + USER;
    for k in 0..3 {
        let filter = format!("(uidNumber={})", base + k);
        if server
            .count_entries(&Slapd::user_dn(USER), &filter)
            .await
            .expect("count")
            == 1
        {
            return k;
        }
    }
    panic!(
        "{cell} uidNumber of user {USER} is neither {base}, {} nor {}",
        base + 1,
        base + 2
    );
}

fn check_sends(cell: Cell, what: &str, got: usize, want: Sends) {
    match want {
        Sends::Exactly(n) => assert_eq!(got, n, "{cell} {what}: expected exactly {n}, saw {got}"),
        Sends::AtMost(n) => assert!(got <= n, "{cell} {what}: expected at most {n}, saw {got}"),
    }
}

/// One line of the report.
pub(crate) struct Report {
    pub(crate) cell: Cell,
    pub(crate) class: Class,
    pub(crate) took: Duration,
    pub(crate) sends: usize,
    pub(crate) storm: Option<(usize, usize)>,
    pub(crate) total: Duration,
}

pub(crate) async fn run_cell(cell: Cell, seed: u64) -> Report {
    let cell_started = Instant::now();
    let expect = expected(cell);
    let mut server = start_slapd().await;
    let proxy = FaultProxy::start(server.addr()).await.expect("proxy");
    let pool = pool_for(cell, &proxy, seed);
    // About the pool's clock's epoch: its status shows times as t+ since then.
    let pool_born = Instant::now();
    let url = proxy.url();
    // Shown only if the test fails: which cell the pool's log lines (which
    // name the address) belong to.
    println!("{cell}: the pool's server is {url}");

    if matches!(cell.moment, Moment::MidOp | Moment::Idle) {
        warm(cell, &pool, &url).await;
        assert!(proxy.live() >= 1, "{cell} a warm connection");
    }
    let lost_before = pool.status().counters.lost;
    let down_before = server_status(&pool, &url).counters.marked_down;
    let acquires_before = pool.status().counters.acquires;

    // Arm the fault, run the operation.
    let mut hold = None;
    let mut mid_op = None;
    let mut faulted = Vec::new();
    match (cell.proxy_mode(), cell.moment) {
        (Some(mode), Moment::Connect) => proxy.set_mode(mode),
        (Some(mode), Moment::Bind) => proxy.set_request_fault(Some(RequestKind::Bind), mode),
        (Some(mode), Moment::MidOp) => {
            mid_op = Some(proxy.arm_next_request(Some(cell.request_kind()), mode));
        }
        (Some(mode), Moment::Idle) => {
            faulted = proxy.set_live_conns_mode(mode);
            assert!(!faulted.is_empty(), "{cell} no live connection to fault");
        }
        (None, Moment::Connect | Moment::Idle) => server = kill_or_freeze(cell, server).await,
        (None, Moment::Bind | Moment::MidOp) => {
            // Hold the request at the proxy, then kill or freeze slapd under it.
            let kind = if cell.moment == Moment::Bind {
                RequestKind::Bind
            } else {
                cell.request_kind()
            };
            hold = Some(proxy.arm_next_request(Some(kind), ProxyMode::StallReads));
        }
    }
    if cell.moment == Moment::Idle
        && matches!(
            cell.fault,
            Fault::Reset | Fault::Fin | Fault::Garbage | Fault::Kill
        )
    {
        // The warm connection died while idle: the pool notices on its own.
        eventually(
            &format!("{cell} the pool noticed its idle connection die"),
            Duration::from_secs(3),
            || pool.status().counters.lost > lost_before,
        )
        .await;
    }
    let op = tokio::spawn(run_op(cell, pool.clone()));
    if let Some(mut armed) = hold {
        let conn = armed
            .wait(call_bound())
            .await
            .unwrap_or_else(|e| panic!("{cell} the request never reached the proxy: {e}"));
        server = kill_or_freeze(cell, server).await;
        proxy.set_conn_mode(conn, ProxyMode::Forward);
    }
    let outcome = op
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));

    // The outcome, within its bound.
    assert!(
        outcome.took <= call_bound(),
        "{cell} took {:?}, more than {:?}",
        outcome.took,
        call_bound()
    );
    assert!(
        expect.classes.contains(&outcome.class),
        "{cell} expected one of {:?}, got {:?}: {}",
        expect.classes,
        outcome.class,
        outcome.detail
    );
    // Tries: the pool's own count, and what reached the wire.
    let tries = pool.status().counters.acquires - acquires_before;
    assert!(
        (1..=3).contains(&tries),
        "{cell} {tries} tries: the budget is 3"
    );
    let sends = proxy.request_count(Some(cell.request_kind()), &cell.marker());
    check_sends(
        cell,
        "requests of the operation seen by the proxy",
        sends,
        expect.sends,
    );
    if matches!(cell.op, OpKind::Write | OpKind::Auth) {
        assert!(
            sends <= 1,
            "{cell} sent {sends} times: never retried after sending"
        );
    }
    if let Some(armed) = &mid_op {
        let hit = armed
            .conn()
            .unwrap_or_else(|| panic!("{cell} the fault never met the operation's request"));
        faulted.push(hit);
    }
    if cell.fault != Fault::Delay && !faulted.is_empty() {
        // The pool closes a connection that failed or timed out under an
        // operation (and before the fault is lifted, a held request must not
        // be released to the server by the test itself).
        eventually(
            &format!("{cell} the pool closed the faulted connection"),
            Duration::from_secs(5),
            || {
                let live = proxy.connections();
                faulted.iter().all(|id| live.iter().all(|c| c.id != *id))
            },
        )
        .await;
    }

    // No retry storm against a dead server: user traffic for a while, then
    // count the connect attempts.
    let mut storm = None;
    if cell.server_dead() {
        let since = Instant::now();
        let users: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.with_timeout(Duration::from_millis(500));
                tokio::spawn(async move {
                    let mut ops = 0usize;
                    let until = Instant::now() + STORM_WINDOW;
                    while Instant::now() < until {
                        let search = pool.search(
                            Slapd::people_base(),
                            Scope::OneLevel,
                            "(uid=user2)",
                            &["uid"],
                        );
                        let _ = tokio::time::timeout(call_bound(), search).await;
                        ops += 1;
                        // Paces the load generator (not a wait for a condition).
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    ops
                })
            })
            .collect();
        let mut ops = 0;
        for u in users {
            ops += u.await.expect("storm user");
        }
        let window = since.elapsed();
        let attempts = proxy.accepted_since(since);
        // Probes come at least PROBE_MIN apart; a server that answers the
        // (bind-less) probe but fails binds is retried once per probe.
        let bound = 2 * (window.as_millis() / PROBE_MIN.as_millis()) as usize + 3;
        assert!(
            attempts <= bound,
            "{cell} retry storm: {attempts} connect attempts in {window:?} with {ops} operations \
             (the probe backoff allows {bound})"
        );
        assert!(
            server_status(&pool, &url).counters.marked_down > down_before,
            "{cell} the server was marked down"
        );
        storm = Some((attempts, ops));
    }

    // The fault goes away; the pool serves again.
    proxy.clear_request_fault();
    proxy.set_mode(ProxyMode::Forward);
    match cell.fault {
        Fault::Kill => {
            server = off_runtime(server, |s| s.restart().expect("restart slapd"))
                .await
                .0;
        }
        Fault::Freeze => server = off_runtime(server, |s| s.thaw()).await.0,
        _ => {}
    }
    if cell.op == OpKind::Write {
        let n = applied(cell, &server).await;
        check_sends(cell, "times slapd applied the write", n, expect.applied);
        if outcome.class == Class::Ok {
            assert_eq!(n, 1, "{cell} a successful write is applied once");
        }
    }
    // The pool serves again (polled; on a timeout, the last answer and what the
    // pool and the proxy show, to tell a slow probe from a stuck pool).
    let probe = pool.with_timeout(OP_TIMEOUT);
    let deadline = Instant::now() + SERVE_AGAIN;
    loop {
        let last = match probe
            .search(
                Slapd::people_base(),
                Scope::OneLevel,
                "(uid=user2)",
                &["uid"],
            )
            .await
        {
            Ok(e) if e.len() == 1 => break,
            Ok(e) => format!("{} entries", e.len()),
            Err(e) => format!("{e}"),
        };
        if Instant::now() >= deadline {
            let direct = tokio::time::timeout(
                OP_TIMEOUT,
                server.count_entries(Slapd::people_base(), "(uid=user2)"),
            )
            .await;
            panic!(
                "{cell} the pool did not serve again within {SERVE_AGAIN:?} after the fault; \
                 last answer: {last}; slapd asked directly: {direct:?}; the pool's clock: \
                 about t+{:?}; server: {:?}; pool: {:?}; proxy: {} accepted, live {:?}",
                pool_born.elapsed(),
                server_status(&pool, &url),
                pool.status(),
                proxy.accepted(),
                proxy.connections()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !cell.server_dead() {
        assert_eq!(
            server_status(&pool, &url).counters.marked_down,
            down_before,
            "{cell} a fault on one connection never marks the server down"
        );
    }
    assert!(!is_down(&pool, &url), "{cell} up again");

    // Shutdown: nothing left anywhere.
    let left = pool.shutdown().await;
    assert_eq!(left, 0, "{cell} sockets left open after shutdown");
    eventually(
        &format!("{cell} the pool's status is empty after shutdown"),
        Duration::from_secs(3),
        || {
            let s = pool.status();
            s.shut_down && s.conns == 0 && s.users == 0 && s.generations.is_empty()
        },
    )
    .await;
    eventually(
        &format!("{cell} the proxy has no live connection after shutdown"),
        Duration::from_secs(5),
        || proxy.live() == 0,
    )
    .await;
    server
        .wait_current_connections(0, Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("{cell} slapd still counts our connections: {e}"));
    drop(proxy);
    // Stopping slapd and reaping it blocks: not on a worker.
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .expect("stopping slapd");

    Report {
        cell,
        class: outcome.class,
        took: outcome.took,
        sends,
        storm,
        total: cell_started.elapsed(),
    }
}
