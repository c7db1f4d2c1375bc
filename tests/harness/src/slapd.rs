//! Real OpenLDAP `slapd` processes on 127.0.0.1 with their own config and data.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::HarnessError;
use crate::ca::{ServerCert, TestCa};
use crate::probe::probe_search;
use crate::process::{SlapdProcess, pid_alive};

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
/// Prefix of our temp dirs (followed by the owning process id).
const DIR_PREFIX: &str = "ldapmux-slapd-";
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

#[derive(Clone, Debug)]
struct TlsMaterial {
    cert: ServerCert,
    ca_pem: String,
}

/// Configures a test slapd; made by [`Slapd::builder`].
#[derive(Clone, Debug)]
#[must_use = "call .start() to run slapd"]
pub struct SlapdBuilder {
    users: usize,
    groups: usize,
    tls: Option<TlsMaterial>,
    threads: Option<u32>,
    sizelimit: Option<u64>,
    idle_timeout: Option<u32>,
    conn_max_pending: Option<u32>,
    conn_max_pending_auth: Option<u32>,
    global_lines: Vec<String>,
    database_lines: Vec<String>,
    extra: Extra,
}

/// Launch settings beyond the TCP ports: an `ldapi://` listener, and
/// environment variables for slapd (e.g. `KRB5_KTNAME`).
#[derive(Clone, Debug, Default)]
struct Extra {
    ldapi: bool,
    env: Vec<(String, String)>,
}

impl Default for SlapdBuilder {
    fn default() -> Self {
        SlapdBuilder {
            users: 100,
            groups: 5,
            tls: None,
            threads: None,
            sizelimit: None,
            idle_timeout: None,
            conn_max_pending: None,
            conn_max_pending_auth: None,
            global_lines: Vec::new(),
            database_lines: Vec::new(),
            extra: Extra::default(),
        }
    }
}

impl SlapdBuilder {
    /// Number of users `uid=user{i},ou=people,dc=example,dc=com`, `i` in `0..n`
    /// (default 100). Each is `inetOrgPerson` + `posixAccount` + `shadowAccount` with
    /// `cn: User {i}`, `sn: User{i}`, `mail`, `uidNumber` 10000+i,
    /// `gidNumber` 20000+(i mod groups), `homeDirectory` /home/user{i} and the
    /// plain-text `userPassword` `pw{i}` (simple bind works with it).
    pub fn users(mut self, n: usize) -> Self {
        self.users = n;
        self
    }

    /// Number of `posixGroup`s `cn=group{j},ou=groups,dc=example,dc=com` (default 5),
    /// `gidNumber` 20000+j; user `i` is a `memberUid` of group `i mod n`.
    pub fn groups(mut self, n: usize) -> Self {
        self.groups = n;
        self
    }

    /// Enables TLS with `cert` (issued by `ca`): a second `ldaps://` listener and
    /// StartTLS on the `ldap://` one.
    pub fn tls(mut self, cert: ServerCert, ca: &TestCa) -> Self {
        self.tls = Some(TlsMaterial {
            cert,
            ca_pem: ca.ca_pem().to_owned(),
        });
        self
    }

    /// slapd's worker threads (`threads`; slapd's default is 16).
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = Some(n);
        self
    }

    /// Server-side size limit for everyone but the root DN (`sizelimit`; default 500).
    pub fn sizelimit(mut self, n: u64) -> Self {
        self.sizelimit = Some(n);
        self
    }

    /// Seconds after which slapd closes idle connections (`idletimeout`; default off).
    pub fn idle_timeout(mut self, secs: u32) -> Self {
        self.idle_timeout = Some(secs);
        self
    }

    /// Pending operations per anonymous connection before slapd drops it
    /// (`conn_max_pending`; default 100).
    pub fn conn_max_pending(mut self, n: u32) -> Self {
        self.conn_max_pending = Some(n);
        self
    }

    /// Pending operations per bound connection before slapd drops it
    /// (`conn_max_pending_auth`; default 1000).
    pub fn conn_max_pending_auth(mut self, n: u32) -> Self {
        self.conn_max_pending_auth = Some(n);
        self
    }

    /// Also listens on an `ldapi://` socket in the server's temp dir
    /// ([`Slapd::ldapi_url`]), where SASL EXTERNAL binds with the client's
    /// Unix user and group.
    pub fn ldapi(mut self) -> Self {
        self.extra.ldapi = true;
        self
    }

    /// Sets an environment variable for slapd (e.g. `KRB5_KTNAME`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.env.push((key.into(), value.into()));
        self
    }

    /// Adds a raw line to the global section of `slapd.conf`.
    pub fn global_config(mut self, line: impl Into<String>) -> Self {
        self.global_lines.push(line.into());
        self
    }

    /// Adds a raw line to the mdb database section of `slapd.conf` (after the ACLs).
    pub fn database_config(mut self, line: impl Into<String>) -> Self {
        self.database_lines.push(line.into());
        self
    }

    /// Writes config and data to a fresh temp dir, loads the data with slapadd, starts
    /// slapd on free loopback port(s) and returns once it answers an LDAP search.
    ///
    /// Fails with [`HarnessError::SlapdMissing`] if slapd is not installed, and with
    /// [`HarnessError::Start`] (including slapd's output) if it does not come up
    /// within 10 s. A port taken between choosing and binding is retried.
    pub fn start(self) -> Result<Slapd, HarnessError> {
        require_slapd()?;
        remove_stale_dirs();
        let dir = TempDir::create()?;
        let paths = Paths::new(dir.path());
        fs::create_dir(&paths.db).map_err(|e| HarnessError::io("create db dir", e))?;
        if let Some(tls) = &self.tls {
            write_file(&paths.ca, tls.ca_pem.as_bytes())?;
            write_file(&paths.cert, tls.cert.cert_pem.as_bytes())?;
            write_file(&paths.key, tls.cert.key_pem.as_bytes())?;
        }
        write_file(&paths.conf, self.config(&paths).as_bytes())?;
        write_ldif(&paths.ldif, self.users, self.groups)
            .map_err(|e| HarnessError::io(format!("write {}", paths.ldif.display()), e))?;
        slapadd(&paths)?;

        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_ports(if self.tls.is_some() { 2 } else { 1 })?;
            let port = ports[0];
            let tls_port = ports.get(1).copied();
            let deadline = Instant::now() + START_DEADLINE;
            match launch(&paths, port, tls_port, &self.extra, deadline) {
                Ok(process) => {
                    return Ok(Slapd {
                        dir,
                        paths,
                        port,
                        tls_port,
                        extra: self.extra,
                        users: self.users,
                        groups: self.groups,
                        process: Some(process),
                    });
                }
                Err(LaunchError::PortInUse(e)) => last_err = Some(e),
                Err(LaunchError::Failed(e)) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    fn config(&self, paths: &Paths) -> String {
        let mut c = String::new();
        for schema in ["core", "cosine", "nis", "inetorgperson"] {
            let _ = writeln!(c, "include {SCHEMA_DIR}/{schema}.schema");
        }
        let _ = writeln!(c, "pidfile {}", quote(&paths.pid));
        let _ = writeln!(c, "argsfile {}", quote(&paths.args));
        let _ = writeln!(c, "modulepath {MODULE_DIR}");
        let _ = writeln!(c, "moduleload back_mdb");
        // back_monitor is built in on Debian; loading it is accepted either way.
        let _ = writeln!(c, "moduleload back_monitor");
        if let Some(n) = self.threads {
            let _ = writeln!(c, "threads {n}");
        }
        if let Some(n) = self.sizelimit {
            let _ = writeln!(c, "sizelimit {n}");
        }
        if let Some(n) = self.idle_timeout {
            let _ = writeln!(c, "idletimeout {n}");
        }
        if let Some(n) = self.conn_max_pending {
            let _ = writeln!(c, "conn_max_pending {n}");
        }
        if let Some(n) = self.conn_max_pending_auth {
            let _ = writeln!(c, "conn_max_pending_auth {n}");
        }
        if self.tls.is_some() {
            let _ = writeln!(c, "TLSCACertificateFile {}", quote(&paths.ca));
            let _ = writeln!(c, "TLSCertificateFile {}", quote(&paths.cert));
            let _ = writeln!(c, "TLSCertificateKeyFile {}", quote(&paths.key));
        }
        for line in &self.global_lines {
            let _ = writeln!(c, "{line}");
        }
        let _ = writeln!(c, "\ndatabase mdb");
        let _ = writeln!(c, "maxsize 1073741824");
        let _ = writeln!(c, "suffix \"{SUFFIX}\"");
        let _ = writeln!(c, "rootdn \"{ROOT_DN}\"");
        let _ = writeln!(c, "rootpw {ROOT_PW}");
        let _ = writeln!(c, "directory {}", quote(&paths.db));
        let _ = writeln!(c, "dbnosync");
        let _ = writeln!(c, "index objectClass eq");
        let _ = writeln!(c, "index uid eq");
        let _ = writeln!(c, "index memberUid eq");
        let _ = writeln!(
            c,
            "access to attrs=userPassword by self write by anonymous auth by * none"
        );
        let _ = writeln!(c, "access to * by * read");
        for line in &self.database_lines {
            let _ = writeln!(c, "{line}");
        }
        let _ = writeln!(c, "\ndatabase monitor");
        let _ = writeln!(c, "access to dn.subtree=\"cn=Monitor\" by * read");
        c
    }
}

/// The `ldapi://` URL of a socket path (slashes %2F-encoded; the path must
/// stay under 108 bytes, the temp dir's is about 50).
fn ldapi_url(path: &Path) -> String {
    format!("ldapi://{}", path.display().to_string().replace('/', "%2F"))
}

fn quote(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), HarnessError> {
    fs::write(path, contents).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// The LDIF of the suffix, the three containers, the users and the groups.
fn write_ldif(path: &Path, users: usize, groups: usize) -> io::Result<()> {
    let mut w = BufWriter::new(fs::File::create(path)?);
    writeln!(
        w,
        "dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n\
         dc: example\no: ldapmux test\n"
    )?;
    for (ou, base) in [
        ("people", PEOPLE_BASE),
        ("groups", GROUPS_BASE),
        ("scratch", SCRATCH_BASE),
    ] {
        writeln!(w, "dn: {base}\nobjectClass: organizationalUnit\nou: {ou}\n")?;
    }
    for i in 0..users {
        let gid = FIRST_GID as usize + if groups == 0 { 0 } else { i % groups };
        writeln!(
            w,
            "dn: {dn}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             objectClass: shadowAccount\nuid: user{i}\ncn: User {i}\nsn: User{i}\n\
             givenName: Test\nmail: user{i}@example.com\nuidNumber: {uid}\ngidNumber: {gid}\n\
             homeDirectory: /home/user{i}\nloginShell: /bin/sh\nuserPassword: {pw}\n",
            dn = Slapd::user_dn(i),
            uid = FIRST_UID as usize + i,
            pw = Slapd::user_password(i),
        )?;
    }
    for j in 0..groups {
        writeln!(
            w,
            "dn: {dn}\nobjectClass: posixGroup\ncn: group{j}\ngidNumber: {gid}",
            dn = Slapd::group_dn(j),
            gid = FIRST_GID as usize + j,
        )?;
        for i in (j..users).step_by(groups) {
            writeln!(w, "memberUid: user{i}")?;
        }
        writeln!(w)?;
    }
    w.flush()
}

fn slapadd(paths: &Paths) -> Result<(), HarnessError> {
    let out = Command::new(SLAPADD_PATH)
        .arg("-q")
        .arg("-f")
        .arg(&paths.conf)
        .arg("-l")
        .arg(&paths.ldif)
        .output()
        .map_err(|e| HarnessError::io(format!("run {SLAPADD_PATH}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(HarnessError::Start {
        reason: format!(
            "slapadd -q -f {} -l {} failed ({})",
            paths.conf.display(),
            paths.ldif.display(),
            out.status
        ),
        output: tail(&output),
    })
}

/// Picks `n` distinct free loopback ports (all bound at once, then released).
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, HarnessError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| HarnessError::io("bind 127.0.0.1:0 to find a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| HarnessError::io("local_addr of a probe listener", e))
}

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

/// A unique temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn create() -> Result<TempDir, HarnessError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{n}-{nanos:08x}",
            std::process::id()
        ));
        fs::create_dir(&path)
            .map_err(|e| HarnessError::io(format!("create {}", path.display()), e))?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes temp dirs left by test processes that no longer exist (a SIGKILLed test
/// binary cannot remove its own; its slapd was killed by the wrapper).
pub(crate) fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if owner != std::process::id() && !Path::new(&format!("/proc/{owner}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
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
