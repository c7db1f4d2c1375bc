//! The `ldapmux` binary end to end: a short plain demo on real slapd, and
//! `check` against a live server and a closed port.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

#[cfg(feature = "demo")]
use ldapmux_harness::process_alive;
use ldapmux_harness::{ROOT_DN, ROOT_PW, Slapd};

const BIN: &str = env!("CARGO_BIN_EXE_ldapmux");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {BIN}: {e}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(feature = "demo")]
/// slapd processes whose command line names a harness temp dir of `owner`.
fn slapds_of(owner: u32) -> Vec<u32> {
    let needle = format!("ldapmux-slapd-{owner}-");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
                && process_alive(*pid)
        })
        .collect()
}

#[cfg(feature = "demo")]
/// Every `slapd pid N` the demo printed.
fn printed_pids(stdout: &str) -> Vec<u32> {
    stdout
        .match_indices("slapd pid ")
        .filter_map(|(i, m)| {
            let rest = &stdout[i + m.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[cfg(feature = "demo")]
#[test]
fn demo_plain_runs_the_script_passes_its_checks_and_leaves_nothing() {
    let started = Instant::now();
    let child = Command::new(BIN)
        .args(["demo", "--duration", "15", "--users", "500", "--plain"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the demo");
    let owner = child.id();
    let out = child.wait_with_output().expect("the demo ends");
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(out.status.success(), "exit {:?}\n{all}", out.status);
    assert!(took < Duration::from_secs(17), "took {took:?}\n{all}");

    let status_lines = stdout.lines().filter(|l| l.contains(" ops/s=")).count();
    assert!(status_lines >= 10, "{status_lines} status lines\n{all}");
    for step in [
        ">> kill: SIGKILL the preferred server A",
        ">> restart: A answers again",
        ">> reload: Pool::reload",
        ">> shutdown: done",
        ">> fail-over: operations now served by",
        ">> fail-back: the preferred server A serves again",
        "pool WARN: server down",
    ] {
        assert!(stdout.contains(step), "no line {step:?}\n{all}");
    }
    assert!(stdout.contains("== ldapmux demo: summary =="), "{all}");
    assert!(stdout.contains("PASS zero failed reads: 0 failed"), "{all}");
    assert!(stdout.contains("PASS paged enumerations: "), "{all}");
    assert!(
        stdout.contains("PASS password verdicts: 7 of 7 kinds seen"),
        "{all}"
    );
    assert!(stdout.contains("PASS bind connections reused: "), "{all}");
    assert!(stdout.contains("checks: 10 of 10 passed"), "{all}");

    let pids = printed_pids(&stdout);
    assert!(pids.len() >= 4, "3 starts and a restart: {pids:?}\n{all}");
    let alive: Vec<u32> = pids.into_iter().filter(|p| process_alive(*p)).collect();
    assert!(alive.is_empty(), "slapd still running: {alive:?}");
    assert!(
        slapds_of(owner).is_empty(),
        "slapd of the demo still running"
    );
}

#[test]
fn check_reports_a_live_server_with_and_without_a_bind() {
    let slapd = Slapd::builder().users(5).start().expect("slapd");
    let url = slapd.url();

    let out = run(&["check", &url]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{url}: OK, reachable")),
        "{stdout}"
    );
    assert!(stdout.contains("tls:   off (plain LDAP)"), "{stdout}");
    assert!(
        stdout.contains("anonymous: ok, whoami = (anonymous)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("naming contexts dc=example,dc=com"),
        "{stdout}"
    );
    // The controls the root DSE offers, known ones by name (slapd lists
    // paged results and manageDsaIT at least).
    let controls = stdout
        .lines()
        .find(|l| l.starts_with("  controls: "))
        .unwrap_or_else(|| panic!("no controls line: {stdout}"));
    assert!(controls.contains("paged results"), "{controls}");
    assert!(controls.contains("manageDsaIT"), "{controls}");

    let dir = std::env::temp_dir().join(format!("ldapmux-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good");
    let bad = dir.join("bad");
    std::fs::write(&good, format!("{ROOT_PW}\n")).unwrap();
    std::fs::write(&bad, "wrong-password-zz\n").unwrap();

    let out = run(&[
        "check",
        &url,
        "--bind-dn",
        ROOT_DN,
        "--password-file",
        good.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("whoami = dn:{ROOT_DN}")),
        "{stdout}"
    );
    assert!(!stdout.contains(ROOT_PW) && !stderr.contains(ROOT_PW));

    let out = run(&[
        "check",
        &url,
        "--bind-dn",
        ROOT_DN,
        "--password-file",
        bad.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("FAILED: invalid credentials"), "{stdout}");
    assert!(!stdout.contains("wrong-password-zz") && !stderr.contains("wrong-password-zz"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_of_a_closed_port_is_a_typed_refusal() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ldap://127.0.0.1:{port}");
    let started = Instant::now();
    let out = run(&["check", &url]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{url}: FAILED: connection refused")),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 1 server FAILED"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn help_reads_well() {
    let out = run(&["--help"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    let mut commands = vec!["check", "status"];
    if cfg!(feature = "demo") {
        commands.push("demo");
    }
    if cfg!(feature = "bench") {
        commands.push("bench");
    }
    for cmd in commands {
        assert!(stdout.contains(cmd), "{stdout}");
    }
    let out = run(&["demo", "--duration", "99"]);
    assert_eq!(out.status.code(), Some(2), "a bad value is a usage error");
}

/// The operators' build (no features) has neither `demo` nor `bench`.
#[cfg(not(any(feature = "demo", feature = "bench")))]
#[test]
fn the_operators_binary_has_no_demo_and_no_bench() {
    for cmd in ["demo", "bench"] {
        let out = run(&[cmd]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("unrecognized subcommand"),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn check_verifies_tls_against_the_given_ca_only() {
    use ldapmux_harness::TestCa;
    let ca = TestCa::new("ldapmux-cli-test");
    let slapd = Slapd::builder()
        .users(5)
        .tls(ca.issue(&["127.0.0.1", "localhost"]), &ca)
        .start()
        .expect("slapd with TLS");
    let dir = std::env::temp_dir().join(format!("ldapmux-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = ca.write_ca_file(&dir);
    let ldaps = slapd.ldaps_url().expect("an ldaps listener");

    let out = run(&["check", &ldaps, "--ca-file", ca_file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("on (ldaps), certificate verified"),
        "{stdout}"
    );

    let out = run(&[
        "check",
        &slapd.url(),
        "--starttls",
        "--ca-file",
        ca_file.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("on (StartTLS), certificate verified"),
        "{stdout}"
    );

    // Without the test CA the certificate is not trusted: a typed TLS error.
    let out = run(&["check", &ldaps]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("FAILED: TLS failure"), "{stdout}");

    let out = run(&["check", &ldaps, "--no-verify"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("certificate NOT verified"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
