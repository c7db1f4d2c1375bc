//! `ldapmux bench --auth` (and the end of every `ldapmux bench` run):
//! password checks per second from 8 tasks, on one slapd, over `ldap://`
//! and `ldaps://`. The baseline is one fresh connection per check (connect,
//! TLS, bind, unbind: what nslcd and SSSD do, and what a new user of raw
//! ldap3 writes first); beside it raw ldap3 re-binding one connection per
//! task, ldapmux with its bind connections (the default) and ldapmux with
//! them off. Rounds alternate between the contenders, so all see the same
//! machine; each figure is a median, and the ratios compare medians of one
//! run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, StdStream};
use ldapmux::{AuthOutcome, Password};
use ldapmux_harness::{Slapd, TestCa};

use crate::BenchError;
use crate::stats::{median, ratio};

/// Tasks checking passwords at once.
pub const AUTH_TASKS: usize = 8;
/// Checks per task and round.
const CHECKS_PER_TASK: usize = 150;
const ROUNDS: usize = 5;
const USERS: usize = 100;
/// The issue's targets: reused bind connections over one connection per check.
pub const AUTH_TARGET_LDAP: f64 = 1.5;
/// The same over `ldaps://`, where each fresh connection costs a handshake.
pub const AUTH_TARGET_LDAPS: f64 = 3.0;

/// What the password-check benchmark measured.
#[derive(Debug, Clone)]
pub struct AuthFigures {
    /// `(contender, transport, checks per second)`, medians.
    pub rates: Vec<(&'static str, &'static str, f64)>,
    /// ldapmux (bind connections) over one fresh connection per check, `ldap://`.
    pub ratio_ldap: f64,
    /// The same over `ldaps://`.
    pub ratio_ldaps: f64,
    /// The result lines printed.
    pub lines: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    /// Connect, (TLS,) bind, unbind for every check.
    RawFresh,
    /// One raw connection per task, re-bound by each check.
    RawRebind,
    /// ldapmux at its defaults: reused bind connections.
    Ldapmux,
    /// ldapmux with `bind_connections_per_server(0)`.
    LdapmuxOff,
}

impl Contender {
    const ALL: [Contender; 4] = [
        Contender::RawFresh,
        Contender::RawRebind,
        Contender::Ldapmux,
        Contender::LdapmuxOff,
    ];

    fn name(self) -> &'static str {
        match self {
            Contender::RawFresh => "raw_ldap3_connection_per_check",
            Contender::RawRebind => "raw_ldap3_rebind_per_task",
            Contender::Ldapmux => "ldapmux_bind_connections",
            Contender::LdapmuxOff => "ldapmux_connection_per_check",
        }
    }
}

/// One transport's server address and TLS trust.
struct Target {
    name: &'static str,
    url: String,
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    ca_file: std::path::PathBuf,
}

/// Runs the comparison (about 30 s) and prints one line per contender and
/// transport, then `auth_reuse_ratio=<R>` (`ldap://`) and
/// `auth_reuse_ratio_ldaps=<R>`.
pub async fn run_auth() -> Result<AuthFigures, BenchError> {
    let ca = TestCa::new("ldapmux auth bench CA");
    let server = tokio::task::spawn_blocking(move || {
        let cert = ca.issue(&["127.0.0.1"]);
        Slapd::builder()
            .users(USERS)
            .threads(4)
            .tls(cert, &ca)
            .start()
            .map(|s| (s, ca))
    })
    .await
    .map_err(|e| BenchError::Setup(format!("slapd start task: {e}")))?
    .map_err(|e| BenchError::Slapd(e.to_string()))?;
    let (server, ca) = server;
    let ca_file = ca.write_ca_file(server.dir());
    let tls = ca.rustls_client_config();
    let targets = [
        Target {
            name: "ldap",
            url: server.url(),
            port: server.port(),
            tls: tls.clone(),
            ca_file: ca_file.clone(),
        },
        Target {
            name: "ldaps",
            url: server.ldaps_url().expect("TLS is on"),
            port: server.ldaps_port().expect("TLS is on"),
            tls,
            ca_file,
        },
    ];
    let mut rates = Vec::new();
    let mut lines = Vec::new();
    let mut ratios = Vec::new();
    for target in &targets {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Contender::ALL.len()];
        let pools = [pool(target, None)?, pool(target, Some(0))?];
        // One warm-up round (connections, handshakes), then the measured ones.
        for round in 0..=ROUNDS {
            for (k, who) in Contender::ALL.into_iter().enumerate() {
                let rate = match who {
                    Contender::Ldapmux => round_pooled(&pools[0]).await?,
                    Contender::LdapmuxOff => round_pooled(&pools[1]).await?,
                    raw => round_raw(target, raw).await?,
                };
                if round > 0 {
                    samples[k].push(rate);
                }
            }
        }
        for p in pools {
            p.shutdown().await;
        }
        let med: Vec<f64> = samples.iter().map(|s| median(s).unwrap_or(0.0)).collect();
        for (k, who) in Contender::ALL.into_iter().enumerate() {
            rates.push((who.name(), target.name, med[k]));
            lines.push(format!(
                "auth contender={} transport={} tasks={AUTH_TASKS} checks_per_round={} checks_per_s={:.0}",
                who.name(),
                target.name,
                AUTH_TASKS * CHECKS_PER_TASK,
                med[k]
            ));
        }
        ratios.push(ratio(med[2], med[0]).unwrap_or(0.0));
    }
    let (ratio_ldap, ratio_ldaps) = (ratios[0], ratios[1]);
    lines.push(format!("auth_reuse_ratio={ratio_ldap:.3}"));
    lines.push(format!("auth_reuse_ratio_ldaps={ratio_ldaps:.3}"));
    for line in &lines {
        println!("{line}");
    }
    Ok(AuthFigures {
        rates,
        ratio_ldap,
        ratio_ldaps,
        lines,
    })
}

impl AuthFigures {
    /// The issue's two targets, met or missed.
    pub fn checks(&self) -> Vec<crate::TargetCheck> {
        [
            ("ldap://", self.ratio_ldap, AUTH_TARGET_LDAP),
            ("ldaps://", self.ratio_ldaps, AUTH_TARGET_LDAPS),
        ]
        .into_iter()
        .map(|(transport, measured, target)| crate::TargetCheck {
            name: format!(
                "password checks on bind connections vs one connection per check over {transport}"
            ),
            target: format!("≥ {target}×"),
            measured: format!("{measured:.2}×"),
            met: measured >= target,
        })
        .collect()
    }
}

fn pool(target: &Target, bind_conns: Option<u32>) -> Result<ldapmux::Pool, BenchError> {
    let mut b = ldapmux::Pool::builder()
        .server(target.url.clone())
        .tls_system_roots(false)
        .tls_ca_file(&target.ca_file);
    if let Some(n) = bind_conns {
        b = b.bind_connections_per_server(n);
    }
    b.build()
        .map_err(|e| BenchError::Setup(format!("ldapmux pool: {e}")))
}

/// User `(t, n)`'s DN and password.
fn user(t: usize, n: usize) -> (String, String) {
    let i = (t * 13 + n) % USERS;
    (Slapd::user_dn(i), Slapd::user_password(i))
}

/// One round of checks from [`AUTH_TASKS`] tasks through `pool`; checks/s.
async fn round_pooled(pool: &ldapmux::Pool) -> Result<f64, BenchError> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..AUTH_TASKS)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..CHECKS_PER_TASK {
                    let (dn, pw) = user(t, n);
                    match pool.authenticate(&dn, &Password::new(pw)).await {
                        Ok(AuthOutcome::Accepted { .. }) => {}
                        other => return Err(format!("ldapmux check of {dn}: {other:?}")),
                    }
                }
                Ok(())
            })
        })
        .collect();
    finish(tasks, started).await
}

/// One round of raw ldap3 checks: a fresh connection per check, or one
/// connection per task re-bound by each.
async fn round_raw(target: &Target, how: Contender) -> Result<f64, BenchError> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..AUTH_TASKS)
        .map(|t| {
            let (url, port, tls) = (target.url.clone(), target.port, target.tls.clone());
            tokio::spawn(async move {
                let mut kept = None;
                for n in 0..CHECKS_PER_TASK {
                    let (dn, pw) = user(t, n);
                    if how == Contender::RawFresh || kept.is_none() {
                        kept = Some(connect(&url, port, &tls).await?);
                    }
                    let (ldap, _) = kept.as_mut().expect("connected");
                    let r = ldap
                        .simple_bind(&dn, &pw)
                        .await
                        .map_err(|e| format!("raw bind: {e}"))?;
                    if r.rc != 0 {
                        return Err(format!("raw check of {dn}: rc {}", r.rc));
                    }
                    if how == Contender::RawFresh {
                        close(kept.take().expect("connected")).await;
                    }
                }
                if let Some(c) = kept {
                    close(c).await;
                }
                Ok(())
            })
        })
        .collect();
    finish(tasks, started).await
}

type Conn = (
    ldap3::Ldap,
    tokio::task::JoinHandle<ldap3::result::Result<()>>,
);

/// TCP with `TCP_NODELAY` (as ldapmux opens it), then ldap3 (with TLS for
/// `ldaps://`, the certificate verified against the test CA).
async fn connect(url: &str, port: u16, tls: &Arc<rustls::ClientConfig>) -> Result<Conn, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let settings = LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(5))
        .set_config(tls.clone())
        .set_std_stream(StdStream::Tcp(
            stream.into_std().map_err(|e| e.to_string())?,
        ));
    let (conn, ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|e| format!("ldap3 connect: {e}"))?;
    Ok((ldap, tokio::spawn(conn.drive())))
}

async fn close((ldap, drive): Conn) {
    crate::raw::close(ldap, drive).await;
}

async fn finish(
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
    started: Instant,
) -> Result<f64, BenchError> {
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Setup(format!("check task: {e}")))?
            .map_err(BenchError::Setup)?;
    }
    Ok((AUTH_TASKS * CHECKS_PER_TASK) as f64 / started.elapsed().as_secs_f64())
}
