//! Tests of the harness itself, against real slapd processes.

use std::io::{BufRead, BufReader};
use std::net::TcpStream as StdTcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, StdStream};
use ldapmux_harness::{FaultProxy, ProxyMode, RequestKind, Slapd, TestCa, process_alive};

const WAIT: Duration = Duration::from_secs(5);

/// Opens an ldap3 connection and spawns its driver.
async fn connect_with(url: &str, settings: LdapConnSettings) -> Result<Ldap, LdapError> {
    let (conn, ldap) = LdapConnAsync::with_settings(settings, url).await?;
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    Ok(ldap)
}

async fn connect(url: &str) -> Ldap {
    connect_with(url, LdapConnSettings::new().set_conn_timeout(WAIT))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Searches user `i` by uid and returns its entry.
async fn find_user(ldap: &mut Ldap, i: usize, timeout: Duration) -> Result<SearchEntry, LdapError> {
    let (entries, _) = ldap
        .with_timeout(timeout)
        .search(
            Slapd::people_base(),
            Scope::Subtree,
            &format!("(uid=user{i})"),
            vec!["cn", "uidNumber", "userPassword"],
        )
        .await?
        .success()?;
    assert_eq!(entries.len(), 1, "exactly one user{i}");
    Ok(SearchEntry::construct(entries.into_iter().next().unwrap()))
}

/// Polls until `pid` is gone (bounded).
fn assert_gone(pid: u32) {
    let deadline = Instant::now() + WAIT;
    while process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "slapd pid {pid} still alive after {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_bind_and_monitor_counts() {
    let t0 = Instant::now();
    let slapd = Slapd::builder().start().expect("start slapd");
    eprintln!("slapd with 100 users started in {:?}", t0.elapsed());
    let pid = slapd.pid().unwrap();

    // Data: one user by uid, password hidden from anonymous, 100 accounts, groups.
    let mut ldap = connect(&slapd.url()).await;
    let user = find_user(&mut ldap, 42, WAIT).await.unwrap();
    assert_eq!(user.dn, Slapd::user_dn(42));
    assert_eq!(user.attrs["cn"], vec!["User 42"]);
    assert_eq!(user.attrs["uidNumber"], vec!["10042"]);
    assert!(
        !user.attrs.contains_key("userPassword"),
        "ACL hides passwords"
    );
    assert_eq!(
        slapd
            .count_entries(Slapd::people_base(), "(objectClass=posixAccount)")
            .await
            .unwrap(),
        100
    );
    assert_eq!(
        slapd
            .count_entries(Slapd::groups_base(), "(memberUid=user3)")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        slapd
            .count_entries(Slapd::scratch_base(), "(objectClass=*)")
            .await
            .unwrap(),
        1
    );

    // Simple bind as user3 with its password; a wrong password is rejected.
    let mut user3 = connect(&slapd.url()).await;
    user3
        .simple_bind(&Slapd::user_dn(3), &Slapd::user_password(3))
        .await
        .unwrap()
        .success()
        .expect("bind as user3");
    let mut wrong = connect(&slapd.url()).await;
    let rc = wrong
        .simple_bind(&Slapd::user_dn(3), "nope")
        .await
        .unwrap()
        .rc;
    assert_eq!(rc, 49, "invalidCredentials");
    wrong.unbind().await.unwrap();

    // slapd's view: ldap + user3 (the `wrong` one may still be closing).
    slapd.wait_current_connections(2, WAIT).await.unwrap();
    let base = slapd.monitor_current_connections().await.unwrap();
    assert_eq!(base, 2);
    // Monitor queries do not leak into the next answer.
    for _ in 0..10 {
        assert_eq!(slapd.monitor_current_connections().await.unwrap(), base);
    }

    // Three more connections, one of them on a socket whose address we know.
    let total_before = slapd.monitor_total_connections().await.unwrap();
    let stream = tokio::net::TcpStream::connect(slapd.addr()).await.unwrap();
    let known = stream.local_addr().unwrap();
    let settings =
        LdapConnSettings::new().set_std_stream(StdStream::Tcp(stream.into_std().unwrap()));
    let mut extra = vec![
        connect_with(&slapd.url(), settings).await.unwrap(),
        connect(&slapd.url()).await,
        connect(&slapd.url()).await,
    ];
    slapd
        .wait_current_connections(base + 3, WAIT)
        .await
        .unwrap();
    let conns = slapd.monitor_connections().await.unwrap();
    assert_eq!(conns.len() as u64, base + 3, "{conns:#?}");
    let mine = conns
        .iter()
        .find(|c| c.peer_addr() == Some(known))
        .unwrap_or_else(|| panic!("no monitor entry for {known}: {conns:#?}"));
    assert_eq!(mine.authz_dn, "");
    assert!(
        conns
            .iter()
            .any(|c| c.authz_dn.eq_ignore_ascii_case(&Slapd::user_dn(3))),
        "user3's connection shows its authz DN: {conns:#?}"
    );
    let total_after = slapd.monitor_total_connections().await.unwrap();
    assert!(
        total_after >= total_before + 4,
        "{total_before} -> {total_after}"
    );

    for mut l in extra.drain(..) {
        l.unbind().await.unwrap();
    }
    slapd.wait_current_connections(base, WAIT).await.unwrap();
    drop(slapd);
    assert_gone(pid);
}

/// The blocking variants work without a runtime; a plain TCP connection counts.
#[test]
fn monitor_blocking_outside_runtime() {
    let slapd = Slapd::builder().users(3).groups(1).start().unwrap();
    assert_eq!(slapd.monitor_current_connections_blocking().unwrap(), 0);
    let tcp = StdTcpStream::connect(slapd.addr()).unwrap();
    slapd.wait_current_connections_blocking(1, WAIT).unwrap();
    drop(tcp);
    slapd.wait_current_connections_blocking(0, WAIT).unwrap();
    let err = slapd
        .wait_current_connections_blocking(7, Duration::from_millis(100))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("still reports 0") && err.contains("expected 7"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_restart_freeze_thaw() {
    let mut slapd = Slapd::builder().users(10).start().unwrap();
    let port = slapd.port();
    let first_pid = slapd.pid().unwrap();
    assert!(slapd.is_running());

    // A write made before SIGKILL survives the restart (mdb with dbnosync: the page
    // cache outlives the process).
    let mut root = connect(&slapd.url()).await;
    root.simple_bind(slapd.root_dn(), slapd.root_pw())
        .await
        .unwrap()
        .success()
        .unwrap();
    let dn = format!("cn=before-kill,{}", Slapd::scratch_base());
    root.add(
        &dn,
        vec![
            ("objectClass", ["organizationalRole"].into()),
            ("cn", ["before-kill"].into()),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();

    slapd.kill();
    assert!(!slapd.is_running());
    assert_eq!(slapd.pid(), None);
    let err = slapd
        .monitor_current_connections()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("connect to slapd"), "{err}");
    assert!(!process_alive(first_pid));
    let err = StdTcpStream::connect(slapd.addr()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    slapd.kill(); // idempotent

    let t = Instant::now();
    slapd.restart().unwrap();
    eprintln!("restart took {:?}", t.elapsed());
    assert_eq!(slapd.port(), port);
    assert_ne!(slapd.pid(), Some(first_pid));
    let mut ldap = connect(&slapd.url()).await;
    find_user(&mut ldap, 7, WAIT)
        .await
        .expect("answers after restart");
    assert_eq!(
        slapd.count_entries(&dn, "(objectClass=*)").await.unwrap(),
        1
    );
    assert_eq!(
        slapd
            .count_entries(&format!("cn=nope,{dn}"), "(objectClass=*)")
            .await
            .unwrap(),
        0
    );

    // Frozen: TCP stays up, nothing answers.
    slapd.freeze();
    assert!(slapd.is_running(), "a frozen slapd is still alive");
    let t = Instant::now();
    let err = find_user(&mut ldap, 1, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, LdapError::Timeout { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    slapd.thaw();
    find_user(&mut ldap, 1, WAIT)
        .await
        .expect("answers after thaw");

    // Killing a frozen slapd works and restart comes back on the same port.
    slapd.freeze();
    let frozen_pid = slapd.pid().unwrap();
    slapd.restart().unwrap();
    assert!(!process_alive(frozen_pid));
    assert_eq!(slapd.port(), port);
    let mut ldap = connect(&slapd.url()).await;
    find_user(&mut ldap, 2, WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_ldaps_and_starttls() {
    let ca = TestCa::new("ldapmux harness CA");
    let cert = ca.issue(&["127.0.0.1", "localhost"]);
    let slapd = Slapd::builder()
        .users(5)
        .groups(1)
        .tls(cert, &ca)
        .start()
        .unwrap();
    let ldaps = slapd.ldaps_url().expect("TLS on");
    assert_ne!(slapd.ldaps_port(), Some(slapd.port()));

    let settings = || {
        LdapConnSettings::new()
            .set_conn_timeout(WAIT)
            .set_config(ca.rustls_client_config())
    };
    let mut l = connect_with(&ldaps, settings())
        .await
        .expect("ldaps with the test CA");
    find_user(&mut l, 4, WAIT).await.unwrap();

    let mut l = connect_with(&slapd.url(), settings().set_starttls(true))
        .await
        .expect("StartTLS");
    l.simple_bind(&Slapd::user_dn(2), &Slapd::user_password(2))
        .await
        .unwrap()
        .success()
        .unwrap();

    // A client trusting another CA refuses the certificate.
    let other = TestCa::new("someone else");
    let bad = LdapConnSettings::new()
        .set_conn_timeout(WAIT)
        .set_config(other.rustls_client_config());
    assert!(connect_with(&ldaps, bad).await.is_err());

    let dir = std::env::temp_dir();
    let path = ca.write_ca_file(&dir);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), ca.ca_pem());
    std::fs::remove_file(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_modes() {
    let slapd = Slapd::builder().users(10).groups(1).start().unwrap();
    let proxy = FaultProxy::start(slapd.addr()).await.unwrap();
    assert!(
        FaultProxy::start("192.0.2.1:389".parse().unwrap())
            .await
            .is_err(),
        "loopback only"
    );

    // Forward.
    let mut a = connect(&proxy.url()).await;
    find_user(&mut a, 1, WAIT)
        .await
        .expect("search through the proxy");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(proxy.live(), 1);
    slapd.wait_current_connections(1, WAIT).await.unwrap();

    // Blackhole: existing and new connections hang; new ones never reach slapd.
    proxy.set_mode(ProxyMode::Blackhole);
    let err = find_user(&mut a, 2, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, LdapError::Timeout { .. }), "{err:?}");
    let mut b = connect(&proxy.url()).await;
    let err = find_user(&mut b, 2, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, LdapError::Timeout { .. }), "{err:?}");
    assert_eq!(slapd.monitor_current_connections().await.unwrap(), 1);
    proxy.set_mode(ProxyMode::Forward);
    find_user(&mut a, 3, WAIT).await.expect("forwarding again");
    find_user(&mut b, 3, WAIT)
        .await
        .expect("lazily connected after the blackhole");

    // reset_all makes an in-flight operation fail (not time out).
    proxy.set_mode(ProxyMode::Blackhole);
    let mut c = a.clone();
    let in_flight = tokio::spawn(async move { find_user(&mut c, 4, WAIT).await });
    // In flight: the proxy has read the request (and, blackholed, holds its answer).
    let deadline = Instant::now() + WAIT;
    while proxy.request_count(Some(RequestKind::Search), b"user4") == 0 {
        assert!(
            Instant::now() < deadline,
            "the search never reached the proxy"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let t = Instant::now();
    proxy.reset_all();
    let err = in_flight.await.unwrap().unwrap_err();
    assert!(!matches!(err, LdapError::Timeout { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let deadline = Instant::now() + WAIT;
    while proxy.live() > 0 {
        assert!(
            Instant::now() < deadline,
            "live {} after reset_all",
            proxy.live()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    slapd.wait_current_connections(0, WAIT).await.unwrap();
    proxy.set_mode(ProxyMode::Forward);

    // Refuse: accepted, then reset.
    proxy.set_mode(ProxyMode::Refuse);
    let before = proxy.accepted();
    let refused = match connect_with(&proxy.url(), LdapConnSettings::new()).await {
        Err(e) => e,
        Ok(mut l) => find_user(&mut l, 1, WAIT).await.unwrap_err(),
    };
    assert!(!matches!(refused, LdapError::Timeout { .. }), "{refused:?}");
    assert_eq!(proxy.accepted(), before + 1);
    proxy.set_mode(ProxyMode::Forward);

    // CutAfterRequest: the add fails on the client, but happened exactly once.
    let mut w = connect(&proxy.url()).await;
    w.simple_bind(slapd.root_dn(), slapd.root_pw())
        .await
        .unwrap()
        .success()
        .unwrap();
    proxy.set_mode(ProxyMode::CutAfterRequest);
    let dn = format!("cn=cut-1,{}", Slapd::scratch_base());
    let add = w
        .with_timeout(WAIT)
        .add(
            &dn,
            vec![
                ("objectClass", ["organizationalRole"].into()),
                ("cn", ["cut-1"].into()),
            ],
        )
        .await;
    assert!(add.is_err(), "the client must not see the answer: {add:?}");
    assert_eq!(proxy.mode(), ProxyMode::Forward, "one shot");
    assert_eq!(
        slapd
            .count_entries(Slapd::scratch_base(), "(cn=cut-1)")
            .await
            .unwrap(),
        1
    );
    let mut d = connect(&proxy.url()).await;
    find_user(&mut d, 5, WAIT)
        .await
        .expect("new connections are forwarded again");

    // Dropping the proxy closes everything.
    drop(proxy);
    let err = find_user(&mut d, 5, WAIT).await.unwrap_err();
    assert!(!matches!(err, LdapError::Timeout { .. }), "{err:?}");
    slapd.wait_current_connections(0, WAIT).await.unwrap();
}

#[test]
fn drop_kills_slapd_and_removes_its_dir() {
    let slapd = Slapd::builder().users(1).groups(0).start().unwrap();
    let pid = slapd.pid().unwrap();
    let dir = slapd.dir().to_owned();
    let addr = slapd.addr();
    assert!(process_alive(pid));
    assert!(dir.join("slapd.conf").exists());
    drop(slapd);
    assert!(!process_alive(pid), "slapd {pid} survived drop");
    assert!(!dir.exists(), "{} not removed", dir.display());
    assert!(StdTcpStream::connect(addr).is_err());
}

/// Helper for `sigkill_of_the_test_process_kills_slapd`: started in a child process,
/// starts a slapd, prints its pid and waits to be killed.
#[test]
#[ignore = "helper process for sigkill_of_the_test_process_kills_slapd"]
fn child_holds_slapd() {
    if std::env::var_os("LDAPMUX_HARNESS_CHILD").is_none() {
        return;
    }
    let slapd = Slapd::builder().users(1).groups(0).start().unwrap();
    println!("SLAPD_PID={} PORT={}", slapd.pid().unwrap(), slapd.port());
    // Blocks until the parent closes our stdin or kills us.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(slapd);
}

#[test]
fn sigkill_of_the_test_process_kills_slapd() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_slapd",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LDAPMUX_HARNESS_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read the child's output on a helper thread so that the wait is bounded.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            // libtest prints "test child_holds_slapd ... " before our line.
            if let Some(at) = line.find("SLAPD_PID=") {
                let rest = &line[at + "SLAPD_PID=".len()..];
                let mut parts = rest.split(" PORT=");
                let pid: u32 = parts.next().unwrap().parse().unwrap();
                let port: u16 = parts.next().unwrap().trim().parse().unwrap();
                let _ = tx.send((pid, port));
                return;
            }
        }
    });
    let found = rx.recv_timeout(Duration::from_secs(20)).ok();
    if found.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (pid, port) = found.expect("child printed slapd's pid");
    assert!(process_alive(pid));
    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();
    assert_gone(pid);
    assert!(StdTcpStream::connect(("127.0.0.1", port)).is_err());
}

/// A restart whose port is taken keeps retrying (bounded) and succeeds once it is free.
#[test]
fn restart_retries_while_the_port_is_taken() {
    let mut slapd = Slapd::builder().users(1).groups(0).start().unwrap();
    let log = slapd.dir().join("slapd.log");
    slapd.kill();
    let squatter = std::net::TcpListener::bind(slapd.addr()).expect("take slapd's port");
    std::thread::scope(|s| {
        let restart = s.spawn(|| slapd.restart());
        // Wait until slapd has failed to bind at least once, then free the port.
        let deadline = Instant::now() + WAIT;
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Address already in use")
        {
            assert!(Instant::now() < deadline, "no bind failure logged");
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(squatter);
        restart
            .join()
            .unwrap()
            .expect("restart once the port is free");
    });
    assert!(slapd.is_running());
    assert_eq!(slapd.monitor_current_connections_blocking().unwrap(), 0);
}
