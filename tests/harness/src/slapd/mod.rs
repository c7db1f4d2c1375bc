//! Real OpenLDAP `slapd` processes on 127.0.0.1 with their own config and data.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::ca::{ServerCert, TestCa};
use crate::ports::free_ports;
use crate::probe::probe_search;
use crate::process::{SlapdProcess, pid_alive};
use crate::tempdir::{TempDir, remove_stale_dirs};

/// Where the Debian package installs slapd.
pub const SLAPD_PATH: &str = "/usr/sbin/slapd";
/// Where the Debian package installs slapadd.
pub const SLAPADD_PATH: &str = "/usr/sbin/slapadd";
/// Where the Debian package installs the schema files.
const SCHEMA_DIR: &str = "/etc/ldap/schema";
/// Where the Debian package installs the backend modules.
const MODULE_DIR: &str = "/usr/lib/ldap";

/// The suffix (naming context) of every test server.
pub const SUFFIX: &str = "dc=example,dc=com";
/// The root DN of every test server (not subject to ACLs or limits).
pub const ROOT_DN: &str = "cn=admin,dc=example,dc=com";
/// The root DN's password (plain text).
pub const ROOT_PW: &str = "ldapmux-root-secret";
/// Container of the `uid=userN` entries.
pub const PEOPLE_BASE: &str = "ou=people,dc=example,dc=com";
/// Container of the `cn=groupN` entries.
pub const GROUPS_BASE: &str = "ou=groups,dc=example,dc=com";
/// An empty container for write tests.
pub const SCRATCH_BASE: &str = "ou=scratch,dc=example,dc=com";
/// First `uidNumber` (user `i` has `FIRST_UID + i`).
pub const FIRST_UID: u32 = 10000;
/// First `gidNumber` (group `j` has `FIRST_GID + j`).
pub const FIRST_GID: u32 = 20000;

/// How long a start or restart may take before it fails.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How many fresh ports a first start tries when slapd cannot bind.
const PORT_ATTEMPTS: usize = 5;
/// Bound on each blocking readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Keep at most this many bytes of slapd output in errors.
const OUTPUT_LIMIT: usize = 8192;

/// Checks that slapd (and slapadd) are installed; returns slapd's path.
///
/// The error's `Display` is `slapd not found at /usr/sbin/slapd: install it with
/// apt-get install -y slapd ldap-utils (make test does this)`.
pub fn require_slapd() -> Result<PathBuf, HarnessError> {
    require_at(Path::new(SLAPD_PATH))?;
    require_at(Path::new(SLAPADD_PATH))?;
    Ok(PathBuf::from(SLAPD_PATH))
}

fn require_at(path: &Path) -> Result<(), HarnessError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(HarnessError::SlapdMissing {
            path: path.to_owned(),
        })
    }
}

mod builder;

pub use builder::SlapdBuilder;
use builder::{Extra, ldapi_url};

fn tail(s: &str) -> String {
    if s.len() <= OUTPUT_LIMIT {
        return s.to_owned();
    }
    let mut start = s.len() - OUTPUT_LIMIT;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes cut ...]\n{}", &s[start..])
}

fn log_since(path: &Path, offset: u64) -> String {
    match fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(
            bytes.get(offset as usize..).unwrap_or_default(),
        )),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

enum LaunchError {
    /// slapd could not bind its port(s): try other ports (first start) or wait.
    PortInUse(HarnessError),
    Failed(HarnessError),
}

/// Starts slapd on the given ports and waits (until `deadline`) until it answers.
fn launch(
    paths: &Paths,
    port: u16,
    tls_port: Option<u16>,
    extra: &Extra,
    deadline: Instant,
) -> Result<SlapdProcess, LaunchError> {
    let mut urls = format!("ldap://127.0.0.1:{port}/");
    if let Some(tp) = tls_port {
        let _ = write!(urls, " ldaps://127.0.0.1:{tp}/");
    }
    if extra.ldapi {
        let _ = write!(urls, " {}", ldapi_url(&paths.ldapi));
    }
    let args = vec![
        "-d".to_owned(),
        "none".to_owned(),
        "-h".to_owned(),
        urls.clone(),
        "-f".to_owned(),
        paths.conf.display().to_string(),
    ];
    let offset = fs::metadata(&paths.log).map(|m| m.len()).unwrap_or(0);
    let process = SlapdProcess::spawn(Path::new(SLAPD_PATH), &args, &extra.env, &paths.log)
        .map_err(LaunchError::Failed)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut last_probe: String;
    loop {
        if !process.alive() {
            // slapd writes its last words before exiting; the wrapper reaps it later.
            drop(process);
            let output = log_since(&paths.log, offset);
            let err = HarnessError::Start {
                reason: format!("slapd -h \"{urls}\" exited before answering"),
                output: output.clone(),
            };
            return Err(if output.contains("Address already in use") {
                LaunchError::PortInUse(err)
            } else {
                LaunchError::Failed(err)
            });
        }
        match probe_search(addr, SUFFIX, PROBE_TIMEOUT) {
            Ok(()) => {
                // slapd opens all listeners before serving any: the ldaps one is up too.
                let tls_ok = match tls_port {
                    None => Ok(()),
                    Some(tp) => TcpStream::connect_timeout(
                        &SocketAddr::from((Ipv4Addr::LOCALHOST, tp)),
                        PROBE_TIMEOUT,
                    )
                    .map(drop),
                };
                match tls_ok {
                    Ok(()) => return Ok(process),
                    Err(e) => last_probe = format!("ldaps port {tls_port:?}: {e}"),
                }
            }
            Err(e) => last_probe = e.to_string(),
        }
        if Instant::now() >= deadline {
            drop(process);
            return Err(LaunchError::Failed(HarnessError::Start {
                reason: format!(
                    "slapd -h \"{urls}\" did not answer a search of {SUFFIX} within \
                     {START_DEADLINE:?} (last probe: {last_probe})"
                ),
                output: log_since(&paths.log, offset),
            }));
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// File layout of one test server's temp dir.
#[derive(Debug)]
struct Paths {
    conf: PathBuf,
    ldif: PathBuf,
    db: PathBuf,
    log: PathBuf,
    pid: PathBuf,
    args: PathBuf,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ldapi: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Paths {
        Paths {
            conf: dir.join("slapd.conf"),
            ldif: dir.join("data.ldif"),
            db: dir.join("db"),
            log: dir.join("slapd.log"),
            pid: dir.join("slapd.pid"),
            args: dir.join("slapd.args"),
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            ldapi: dir.join("ldapi"),
        }
    }
}

/// A running test slapd. Dropping it kills slapd, reaps it and removes its temp dir.
///
/// Serves `dc=example,dc=com` from an mdb database loaded with the builder's users and
/// groups, plus `cn=Monitor`. Listens on `ldap://127.0.0.1:PORT/` and, with TLS, on
/// `ldaps://127.0.0.1:PORT2/`. Anonymous users can read everything but passwords.
#[derive(Debug)]
pub struct Slapd {
    // Field order matters: the process is killed (in Drop) before the dir is removed.
    dir: TempDir,
    paths: Paths,
    port: u16,
    tls_port: Option<u16>,
    extra: Extra,
    users: usize,
    groups: usize,
    process: Option<SlapdProcess>,
}

impl std::fmt::Debug for SlapdProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlapdProcess")
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Slapd {
    /// A builder with the defaults: 100 users, 5 groups, no TLS.
    pub fn builder() -> SlapdBuilder {
        SlapdBuilder::default()
    }

    /// Starts a server with the defaults (`Slapd::builder().start()`).
    pub fn start() -> Result<Slapd, HarnessError> {
        Slapd::builder().start()
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS available when TLS is on).
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The `ldapi://` URL when [`SlapdBuilder::ldapi`] was asked for.
    pub fn ldapi_url(&self) -> Option<String> {
        self.extra.ldapi.then(|| ldapi_url(&self.paths.ldapi))
    }

    /// `ldaps://127.0.0.1:PORT2` when TLS is on.
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    /// The `ldap://` port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `ldaps://` port when TLS is on.
    pub fn ldaps_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `127.0.0.1:PORT` (for [`crate::FaultProxy::start`]).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `dc=example,dc=com`.
    pub fn suffix(&self) -> &str {
        SUFFIX
    }

    /// `cn=admin,dc=example,dc=com`.
    pub fn root_dn(&self) -> &str {
        ROOT_DN
    }

    /// The root DN's password.
    pub fn root_pw(&self) -> &str {
        ROOT_PW
    }

    /// `uid=user{i},ou=people,dc=example,dc=com`.
    pub fn user_dn(i: usize) -> String {
        format!("uid=user{i},{PEOPLE_BASE}")
    }

    /// `user{i}`, the `uid` of user `i`.
    pub fn user_uid(i: usize) -> String {
        format!("user{i}")
    }

    /// `pw{i}`, the password of user `i`.
    pub fn user_password(i: usize) -> String {
        format!("pw{i}")
    }

    /// `cn=group{j},ou=groups,dc=example,dc=com`.
    pub fn group_dn(j: usize) -> String {
        format!("cn=group{j},{GROUPS_BASE}")
    }

    /// `ou=people,dc=example,dc=com`.
    pub fn people_base() -> &'static str {
        PEOPLE_BASE
    }

    /// `ou=groups,dc=example,dc=com`.
    pub fn groups_base() -> &'static str {
        GROUPS_BASE
    }

    /// `ou=scratch,dc=example,dc=com`: exists, empty at start, for write tests.
    pub fn scratch_base() -> &'static str {
        SCRATCH_BASE
    }

    /// Number of users loaded.
    pub fn users(&self) -> usize {
        self.users
    }

    /// Number of groups loaded.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The temp dir holding config, data, certificates and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything slapd printed so far (across restarts), possibly truncated.
    pub fn log(&self) -> String {
        log_since(&self.paths.log, 0)
    }

    /// slapd's pid while a process exists (`None` after [`Slapd::kill`]).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(SlapdProcess::pid)
    }

    /// Whether slapd is alive (running or frozen).
    ///
    /// Takes `&mut self` only for symmetry with [`Slapd::kill`]; nothing is reaped here.
    pub fn is_running(&mut self) -> bool {
        self.process.as_ref().is_some_and(SlapdProcess::alive)
    }

    /// SIGKILLs slapd (a frozen one too) and reaps it. Idempotent.
    ///
    /// When this returns, the process is gone and its ports are closed.
    pub fn kill(&mut self) {
        // Dropping the process closes the wrapper's stdin: it SIGKILLs and reaps slapd.
        drop(self.process.take());
    }

    /// SIGSTOPs slapd; returns once every slapd thread is stopped. Connections stay
    /// open and the kernel still accepts new TCP connections, but nothing answers.
    ///
    /// Panics if slapd is not running (a bug in the test).
    pub fn freeze(&self) {
        let process = self
            .process
            .as_ref()
            .unwrap_or_else(|| panic!("Slapd::freeze: slapd on port {} was killed", self.port));
        if let Err(e) = process.stop() {
            panic!("Slapd::freeze on port {}: {e}", self.port);
        }
    }

    /// SIGCONTs slapd; returns once no slapd thread is stopped. No-op if slapd is dead.
    pub fn thaw(&self) {
        if let Some(process) = &self.process
            && let Err(e) = process.cont()
        {
            panic!("Slapd::thaw on port {}: {e}", self.port);
        }
    }

    /// Kills slapd if it runs, then starts it again on the same port(s) with the same
    /// config and data; returns once it answers. If the port is briefly taken by
    /// something else, retries until the 10 s deadline.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match launch(&self.paths, self.port, self.tls_port, &self.extra, deadline) {
                Ok(process) => {
                    self.process = Some(process);
                    return Ok(());
                }
                Err(LaunchError::PortInUse(e)) if Instant::now() >= deadline => return Err(e),
                Err(LaunchError::PortInUse(_)) => thread::sleep(Duration::from_millis(20)),
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
        // `dir` is removed by its own Drop, after this.
    }
}

/// Whether a process with this pid exists and is not a zombie. For tests that check
/// that no slapd survived.
pub fn process_alive(pid: u32) -> bool {
    pid_alive(pid)
}

#[cfg(test)]
mod tests {
    use super::builder::write_ldif;
    use super::*;

    #[test]
    fn missing_slapd_message_is_exact() {
        let err = require_at(Path::new("/usr/sbin/slapd-not-here")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "slapd not found at /usr/sbin/slapd-not-here: install it with apt-get install -y \
             slapd ldap-utils (make test does this)"
        );
        let err = HarnessError::SlapdMissing {
            path: PathBuf::from(SLAPD_PATH),
        };
        assert_eq!(
            err.to_string(),
            "slapd not found at /usr/sbin/slapd: install it with apt-get install -y slapd \
             ldap-utils (make test does this)"
        );
    }

    #[test]
    fn ldif_has_users_groups_and_containers() {
        let dir = TempDir::create().unwrap();
        let path = dir.path().join("t.ldif");
        write_ldif(&path, 7, 3).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("\ndn: uid=user").count(), 7);
        assert_eq!(text.matches("objectClass: posixGroup").count(), 3);
        assert!(text.contains("dn: ou=scratch,dc=example,dc=com\n"));
        assert!(text.contains("uidNumber: 10006\n"));
        assert!(text.contains("userPassword: pw6\n"));
        // user 4 is in group 1 (4 mod 3).
        let g1 = &text[text.find("dn: cn=group1,").unwrap()..];
        let g1 = &g1[..g1.find("\n\n").unwrap()];
        assert!(g1.contains("memberUid: user4"), "{g1}");
        assert!(!g1.contains("memberUid: user5"), "{g1}");
        // No groups: no group entries and no division by zero.
        write_ldif(&path, 2, 0).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("posixGroup"));
        assert!(text.contains("gidNumber: 20000\n"));
    }

    #[test]
    fn tail_keeps_the_end() {
        let s = "x".repeat(OUTPUT_LIMIT + 10) + "END";
        let t = tail(&s);
        assert!(t.ends_with("END"));
        assert!(t.len() < s.len() + 40);
    }
}
