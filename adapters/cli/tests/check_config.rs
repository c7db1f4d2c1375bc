//! `ldapmux check --config FILE` end to end, against real slapd: the plan
//! (servers in order, preferred marked, bind DN, never the password), the
//! probes, and the exit status (0 all good, 1 a server failed, 2 an
//! invalid configuration naming file:line:key).

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, run, text};
use ldapmux_harness::{ROOT_DN, ROOT_PW, Slapd};

/// The line of `stdout` that starts (after indentation) with `prefix`.
fn line_starting<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{stdout}"))
}

#[test]
fn a_good_toml_lists_servers_in_pool_order_probes_each_and_hides_the_password() {
    let a = Slapd::builder().users(5).start().expect("slapd A");
    let b = Slapd::builder().users(5).start().expect("slapd B");
    let dir = Scratch::new("check-good");
    dir.write("bind.pw", &format!("{ROOT_PW}\n"));
    // B first in `uri`, A preferred: the pool uses A first.
    let toml = dir.write(
        "pool.toml",
        &format!(
            "uri = [\"{b}\", \"{a}\"]\npreferred = [\"{a}\"]\nbind_dn = \"{ROOT_DN}\"\n\
             bind_password_file = \"bind.pw\"\nmax_conns_per_server = 3\nop_timeout = \"4s\"\n",
            a = a.url(),
            b = b.url()
        ),
    );
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{all}");

    let first = line_starting(&stdout, "1. ");
    let second = line_starting(&stdout, "2. ");
    assert!(
        first.contains(&a.url()) && first.contains("preferred"),
        "{all}"
    );
    assert!(
        second.contains(&b.url()) && !second.contains("preferred"),
        "{all}"
    );
    assert!(first.contains("TLS off (plain LDAP)"), "{all}");
    assert!(
        stdout.contains(&format!("bind: simple bind as {ROOT_DN}")),
        "{all}"
    );
    assert!(stdout.contains("operation 4s"), "{all}");
    assert!(stdout.contains("3 connections per server"), "{all}");
    // Both probed with the configured credential, A first.
    let a_ok = stdout.find(&format!("{}: OK, reachable", a.url()));
    let b_ok = stdout.find(&format!("{}: OK, reachable", b.url()));
    assert!(matches!((a_ok, b_ok), (Some(x), Some(y)) if x < y), "{all}");
    assert_eq!(
        stdout.matches(&format!("whoami = dn:{ROOT_DN}")).count(),
        2,
        "{all}"
    );
    assert!(stdout.contains("2 of 2 servers OK"), "{all}");
    assert!(
        !stdout.contains(ROOT_PW) && !stderr.contains(ROOT_PW),
        "{all}"
    );

    // The same servers from an ldap.conf: no bind, file order.
    let conf = dir.write("ldap.conf", &format!("URI {} {}\n", b.url(), a.url()));
    let out = run(&["check", "--config", conf.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(line_starting(&stdout, "1. ").contains(&b.url()), "{stdout}");
    assert!(stdout.contains("bind: anonymous"), "{stdout}");
    assert!(stdout.contains("(ldap.conf)"), "{stdout}");

    // --env: LDAPURI as libldap reads it (LDAPCONF unset).
    let out = std::process::Command::new(common::BIN)
        .args(["check", "--env"])
        .env("LDAPURI", format!("{} {}", a.url(), b.url()))
        .env_remove("LDAPCONF")
        .output()
        .expect("run ldapmux");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(line_starting(&stdout, "1. ").contains(&a.url()), "{stdout}");
    assert!(
        stdout.contains("the environment (LDAPCONF / LDAPURI)"),
        "{stdout}"
    );
    assert!(stdout.contains("2 of 2 servers OK"), "{stdout}");
}

#[test]
fn a_bad_key_or_an_unsupported_one_exits_2_naming_file_line_and_key() {
    let dir = Scratch::new("check-bad");
    let toml = dir.write(
        "pool.toml",
        "uri = [\"ldap://127.0.0.1:1\"]\n\nmax_conections_per_server = 4\n",
    );
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!(
        "{}:3: unknown key `max_conections_per_server`",
        toml.display()
    );
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    assert!(!stdout.contains("probing"), "nothing is probed: {stdout}");

    let conf = dir.write(
        "ldap.conf",
        "URI ldap://127.0.0.1:1\nSASL_MECH DIGEST-MD5\n",
    );
    let out = run(&["check", "--config", conf.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!("{}:2: SASL_MECH is not supported", conf.display());
    assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");

    // A password file that is not there: named, exit 2.
    let toml = dir.write(
        "nopw.toml",
        "uri = [\"ldap://127.0.0.1:1\"]\nbind_dn = \"cn=x\"\nbind_password_file = \"missing.pw\"\n",
    );
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:3: bind_password_file", toml.display())),
        "{stderr}"
    );
}

#[test]
fn one_server_down_exits_1_and_names_the_error_the_other_still_passes() {
    let a = Slapd::builder().users(5).start().expect("slapd A");
    let mut b = Slapd::builder().users(5).start().expect("slapd B");
    let b_url = b.url();
    b.kill();
    let dir = Scratch::new("check-down");
    let toml = dir.write(
        "pool.toml",
        &format!(
            "uri = [\"{}\", \"{b_url}\"]\nconnect_timeout = \"2s\"\n",
            a.url()
        ),
    );
    let started = Instant::now();
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        stdout.contains(&format!("{}: OK, reachable", a.url())),
        "{all}"
    );
    assert!(
        stdout.contains(&format!("{b_url}: FAILED: connection refused")),
        "{all}"
    );
    assert!(stdout.contains("1 of 2 servers FAILED"), "{all}");
    assert!(started.elapsed() < Duration::from_secs(15), "{all}");
}

#[test]
fn tls_settings_from_the_file_reach_the_probes() {
    use ldapmux_harness::TestCa;
    let ca = TestCa::new("ldapmux-cli-check-config");
    let slapd = Slapd::builder()
        .users(5)
        .tls(ca.issue(&["127.0.0.1", "localhost"]), &ca)
        .start()
        .expect("slapd with TLS");
    let ldaps = slapd.ldaps_url().expect("an ldaps listener");
    let dir = Scratch::new("check-tls");
    let ca_file = ca.write_ca_file(dir.path());

    // The test CA from the file: verified, and said so with what is trusted.
    let toml = dir.write(
        "pool.toml",
        &format!(
            "uri = [\"{ldaps}\", \"{}\"]\nstarttls = true\ntls_ca_file = \"{}\"\n",
            slapd.url(),
            ca_file.display()
        ),
    );
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let want = format!(
        "TLS on (ldaps), certificate verified against the CA file {}",
        ca_file.display()
    );
    assert!(line_starting(&stdout, "1. ").contains(&want), "{stdout}");
    assert!(
        line_starting(&stdout, "2. ").contains("TLS on (StartTLS), certificate verified"),
        "{stdout}"
    );
    assert!(
        stdout.contains("tls:   on (StartTLS), certificate verified"),
        "{stdout}"
    );

    // Without the CA the system roots do not trust it: a typed TLS failure.
    let toml = dir.write("noca.toml", &format!("uri = [\"{ldaps}\"]\n"));
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{ldaps}: FAILED: TLS failure")),
        "{stdout}"
    );

    // ldap.conf with TLS_REQCERT never: passes, and says it is not verified.
    let conf = dir.write("ldap.conf", &format!("URI {ldaps}\nTLS_REQCERT never\n"));
    let out = run(&["check", "--config", conf.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("tls:   on (ldaps), certificate NOT verified (TLS_REQCERT never)"),
        "{stdout}"
    );
}

/// A TOML file that finds its servers in DNS SRV: `check --config` looks
/// the records up on the loopback DNS server the test runs, shows the
/// answer and the RFC 2782 order (B's lower priority first), and probes
/// both; `status --config` reads through B. With no record left, both say
/// the lookup failed and exit 1 (nothing wrong with the file).
#[test]
fn a_dns_srv_configuration_shows_the_answer_in_priority_order_and_probes_it() {
    let a = Slapd::builder().users(5).start().expect("slapd A");
    let b = Slapd::builder().users(5).start().expect("slapd B");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let zone = |records: &[(u16, u16, u16)]| ldapmux_harness::dns::ldap_zone(60, records);
    let dns = rt.block_on(ldapmux_harness::dns::DnsServer::start(&zone(&[
        (20, 0, a.port()),
        (10, 0, b.port()),
    ])));
    let dir = Scratch::new("check-srv");
    let toml = dir.write(
        "pool.toml",
        &format!(
            "dns_srv = \"example.test\"\ndns_server = \"{}\"\nop_timeout = \"4s\"\n",
            dns.addr
        ),
    );
    let (ua, ub) = (
        format!("ldap://localhost:{}", a.port()),
        format!("ldap://localhost:{}", b.port()),
    );
    let out = run(&["check", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        stdout.contains("from the DNS SRV records of _ldap._tcp.example.test"),
        "{all}"
    );
    assert!(
        stdout.contains("DNS SRV answer for _ldap._tcp.example.test."),
        "{all}"
    );
    assert!(
        stdout.contains(&format!(
            "servers, in the order the pool uses them: {ub}, {ua}"
        )),
        "{all}"
    );
    let b_ok = stdout.find(&format!("{ub}: OK, reachable"));
    let a_ok = stdout.find(&format!("{ua}: OK, reachable"));
    assert!(matches!((b_ok, a_ok), (Some(x), Some(y)) if x < y), "{all}");
    assert!(stdout.contains("2 of 2 servers OK"), "{all}");
    assert!(dns.queries() >= 1, "the DNS server was asked");

    let out = run(&["status", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        line_starting(&stdout, "new operations go to").contains(&ub),
        "{stdout}"
    );

    rt.block_on(dns.set_zone(&zone(&[])));
    for cmd in ["check", "status"] {
        let out = run(&[cmd, "--config", toml.to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stdout}\n{stderr}");
        assert!(stdout.contains("DNS SRV lookup FAILED"), "{cmd}: {stdout}");
    }
}
