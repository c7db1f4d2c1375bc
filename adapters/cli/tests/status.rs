//! `ldapmux status` end to end, against real slapd: the one-shot status
//! (health, the server in use), `--follow` with SIGHUP reloads (a good file
//! switches servers, an invalid one is refused and the old configuration
//! keeps serving) and a clean stop on SIGTERM / SIGINT (no slapd connection
//! left), and `--metrics-addr` (Prometheus text on loopback only).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Running, Scratch, free_port, http_get, run, text};
use ldapmux_harness::Slapd;

/// Bound on every wait for a line (a status line comes every second).
const WAIT: Duration = Duration::from_secs(15);

/// The line of `stdout` that mentions `url` among the server rows.
fn server_row<'a>(stdout: &'a str, url: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains(url))
        .unwrap_or_else(|| panic!("no server row for {url} in:\n{stdout}"))
}

/// The ` | `-separated part of a follow line about `url`.
fn part<'a>(line: &'a str, url: &str) -> &'a str {
    line.split(" | ")
        .find(|p| p.starts_with(url))
        .unwrap_or_else(|| panic!("no part for {url} in {line:?}"))
}

#[test]
fn status_shows_health_and_the_server_new_operations_go_to() {
    let mut a = Slapd::builder().users(5).start().expect("slapd A");
    let mut b = Slapd::builder().users(5).start().expect("slapd B");
    let dir = Scratch::new("status-once");
    let toml = dir.write(
        "pool.toml",
        &format!(
            "uri = [\"{}\", \"{}\"]\npreferred = [\"{}\"]\n",
            b.url(),
            a.url(),
            a.url()
        ),
    );
    let cfg = toml.to_str().unwrap();

    // Both running: the preferred A serves.
    let out = run(&["status", "--config", cfg]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("new operations go to: {}", a.url())),
        "{stdout}"
    );
    let row_a = server_row(&stdout, &a.url());
    assert!(
        row_a.starts_with("  1.") && row_a.contains("preferred"),
        "{stdout}"
    );
    assert!(
        row_a.contains(" Up ") && row_a.contains("1 connection (g"),
        "{stdout}"
    );
    assert!(row_a.contains("TLS off (plain LDAP)"), "{stdout}");
    assert!(stdout.contains("generation: g"), "{stdout}");
    // B, the backup, was not needed: the pool never contacted it and says
    // so, instead of claiming it up (issue 17).
    let row_b = server_row(&stdout, &b.url());
    assert!(
        row_b.contains(" Unknown (not contacted yet) ") && row_b.contains("0 connections"),
        "{stdout}"
    );

    // A down: B serves, A shows Down.
    a.kill();
    let out = run(&["status", "--config", cfg]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("new operations go to: {}", b.url())),
        "{stdout}"
    );
    assert!(
        server_row(&stdout, &a.url()).contains(" Down ("),
        "{stdout}"
    );
    assert!(server_row(&stdout, &b.url()).contains(" Up "), "{stdout}");

    // Nothing up: the read fails, exit 1, and it says why.
    b.kill();
    let out = run(&["status", "--config", cfg, "--timeout", "3"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("read (root DSE): FAILED"), "{stdout}");
    assert!(stdout.contains("new operations go to: none"), "{stdout}");
}

#[test]
fn status_of_an_invalid_file_exits_2_naming_file_line_and_key() {
    let dir = Scratch::new("status-bad");
    let toml = dir.write(
        "pool.toml",
        "uri = [\"ldap://127.0.0.1:1\"]\nstarttls = \"yes\"\n",
    );
    let out = run(&["status", "--config", toml.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:", toml.display())) && stderr.contains("starttls"),
        "{stderr}"
    );
}

#[test]
fn follow_reloads_on_sighup_refuses_an_invalid_file_and_stops_cleanly_on_sigterm() {
    let a = Slapd::builder().users(5).start().expect("slapd A");
    let b = Slapd::builder().users(5).start().expect("slapd B");
    let (a_url, b_url) = (a.url(), b.url());
    let dir = Scratch::new("status-follow");
    let toml = dir.write("pool.toml", &format!("uri = [\"{a_url}\"]\n"));
    let cfg = toml.to_str().unwrap().to_owned();
    let mut p = Running::spawn(&["status", "--config", &cfg, "--follow", "--interval", "1"]);

    // Handlers are installed before this line: signals are safe from here.
    p.wait_line("following", WAIT, |l| l.starts_with("following "));
    let first = p.wait_line("a status line", WAIT, |l| l.contains(" serving="));
    assert!(
        first.contains(&format!("serving={a_url} read=ok")),
        "{first}"
    );
    assert!(part(&first, &a_url).contains(" Up conns=1"), "{first}");
    // Periodic: a second line comes by itself.
    p.wait_line("a second status line", WAIT, |l| l.contains(" serving="));

    // A good new file with another server: reloaded, B serves.
    dir.write("pool.toml", &format!("uri = [\"{b_url}\"]\n"));
    p.signal("HUP");
    let reloaded = p.wait_line("reloaded", WAIT, |l| {
        l.starts_with("reloaded") || l.starts_with("reload refused")
    });
    assert!(
        reloaded.starts_with("reloaded") && reloaded.ends_with(&format!("servers {b_url}")),
        "{reloaded}\n{}",
        p.transcript()
    );
    let after = p.wait_line("a line served by B", WAIT, |l| l.contains(" serving="));
    assert!(
        after.contains(&format!("serving={b_url} read=ok")),
        "{after}"
    );
    assert!(part(&after, &b_url).contains(" Up conns=1"), "{after}");

    // An invalid file: refused with its error, B keeps serving.
    dir.write(
        "pool.toml",
        &format!("uri = [\"{a_url}\"]\nmax_users_per_conn = \"many\"\n"),
    );
    p.signal("HUP");
    let refused = p.wait_line("reload refused", WAIT, |l| {
        l.starts_with("reloaded") || l.starts_with("reload refused")
    });
    assert!(
        refused.starts_with(&format!("reload refused: {cfg}:2:"))
            && refused.contains("max_users_per_conn")
            && refused.ends_with("still serving with the previous configuration"),
        "{refused}"
    );
    for _ in 0..2 {
        let still = p.wait_line("a line after the refusal", WAIT, |l| {
            l.contains(" serving=")
        });
        assert!(
            still.contains(&format!("serving={b_url} read=ok")),
            "{still}"
        );
        assert!(part(&still, &b_url).contains(" Up "), "{still}");
    }

    // SIGTERM: the pool shuts down, exit 0, no connection left on either slapd.
    p.signal("TERM");
    let status = p.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{}", p.transcript());
    assert!(
        p.seen
            .iter()
            .any(|l| l == "SIGTERM: pool shut down (0 sockets left open), exiting"),
        "{}",
        p.transcript()
    );
    assert!(
        !p.seen.iter().any(|l| l.starts_with("stderr:")),
        "{}",
        p.transcript()
    );
    for s in [&a, &b] {
        s.wait_current_connections_blocking(0, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}\n{}", p.transcript()));
    }
}

#[test]
fn follow_serves_prometheus_text_on_loopback() {
    let a = Slapd::builder().users(5).start().expect("slapd A");
    let dir = Scratch::new("status-metrics");
    let toml = dir.write("pool.toml", &format!("uri = [\"{}\"]\n", a.url()));
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut p = Running::spawn(&[
        "status",
        "--config",
        toml.to_str().unwrap(),
        "--follow",
        "--interval",
        "1",
        "--metrics-addr",
        &addr.to_string(),
    ]);
    p.wait_line("the metrics URL", WAIT, |l| {
        l == format!("metrics: http://{addr}/metrics (Prometheus text)")
    });
    p.wait_line("following", WAIT, |l| l.starts_with("following "));
    p.wait_line("a good read", WAIT, |l| l.contains(" read=ok"));

    let (status, headers, body) = http_get(addr, "/metrics");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert!(
        content_type.is_some_and(|t| t.starts_with("text/plain")),
        "{headers:?}"
    );
    assert!(
        body.contains("# TYPE ldapmux_cli_status_reads_total counter"),
        "{body}"
    );
    let reads_ok = counter(&body, "ldapmux_cli_status_reads_total{outcome=\"ok\"}");
    assert!(reads_ok >= 1.0, "{body}");
    assert_eq!(
        counter(&body, "ldapmux_cli_reloads_total{result=\"ok\"}"),
        0.0,
        "{body}"
    );

    p.signal("HUP");
    p.wait_line("reloaded", WAIT, |l| l.starts_with("reloaded"));
    p.wait_line("a line after the reload", WAIT, |l| l.contains(" serving="));
    let (_, _, body) = http_get(addr, "/metrics");
    assert_eq!(
        counter(&body, "ldapmux_cli_reloads_total{result=\"ok\"}"),
        1.0,
        "{body}"
    );
    assert_eq!(
        counter(&body, "ldapmux_cli_reloads_total{result=\"refused\"}"),
        0.0,
        "{body}"
    );
    assert!(counter(&body, "ldapmux_cli_status_reads_total{outcome=\"ok\"}") > reads_ok);

    p.signal("INT");
    assert_eq!(p.wait_exit(WAIT).code(), Some(0), "{}", p.transcript());
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the metrics endpoint outlived the process"
    );
}

/// Passes once the library records through the `metrics` facade (the
/// metrics branch): the pool's own operation counter is exported.
#[test]
fn follow_exports_the_pools_own_metrics() {
    let a = Slapd::builder().users(5).start().expect("slapd A");
    let dir = Scratch::new("status-lib-metrics");
    let toml = dir.write("pool.toml", &format!("uri = [\"{}\"]\n", a.url()));
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut p = Running::spawn(&[
        "status",
        "--config",
        toml.to_str().unwrap(),
        "--follow",
        "--interval",
        "1",
        "--metrics-addr",
        &addr.to_string(),
    ]);
    p.wait_line("a good read", WAIT, |l| l.contains(" read=ok"));
    let (status, _, body) = http_get(addr, "/metrics");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let ops: f64 = body
        .lines()
        .filter(|l| l.starts_with("ldapmux_operations_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(ops >= 1.0, "no ldapmux_operations_total in:\n{body}");
    assert!(body.contains("ldapmux_server_up{"), "{body}");
    p.signal("TERM");
    assert_eq!(p.wait_exit(WAIT).code(), Some(0), "{}", p.transcript());
}

#[test]
fn a_non_loopback_metrics_address_is_refused() {
    let dir = Scratch::new("status-remote");
    let toml = dir.write("pool.toml", "uri = [\"ldap://127.0.0.1:1\"]\n");
    let port = free_port();
    let any = format!("0.0.0.0:{port}");
    let out = run(&[
        "status",
        "--config",
        toml.to_str().unwrap(),
        "--follow",
        "--metrics-addr",
        &any,
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing to serve metrics on {any}: not a loopback address"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--metrics-allow-remote"), "{stderr}");
    assert!(!stdout.contains("following"), "it did not start: {stdout}");

    // The demo (built with its feature) refuses it the same way, before
    // starting any slapd.
    if cfg!(feature = "demo") {
        let out = run(&["demo", "--plain", "--metrics-addr", &any]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
        assert!(stderr.contains("not a loopback address"), "{stderr}");
        assert!(!stdout.contains("slapd pid"), "{stdout}");
    }
}

/// The value of the sample `name{labels}` in Prometheus text.
fn counter(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{body}"))
}
