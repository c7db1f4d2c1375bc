//! A 389 Directory Server instance on 127.0.0.1 (issue 20), created with
//! `dscreate from-file` from a generated file into a temporary directory.
//!
//! lib389 (`dscreate`) starts and stops the instance with `systemctl start
//! dirsrv@NAME`; there is no systemd here, so a stand-in `systemctl` (a shell
//! script in the instance's directory, first on `PATH` for `dscreate` only)
//! runs `ns-slapd` as a daemon for the install. The instance is then stopped
//! and run in the foreground (`-d 0`) under the harness's wrapper, like slapd:
//! it dies with the test process. Data, logs, locks and sockets live in the
//! temporary directory; only the configuration must stay in
//! `/etc/dirsrv/slapd-NAME` (lib389 insists), removed on drop (the shared
//! instance's by the wrapper, when `ns-slapd` dies with the test binary) and,
//! for an instance left by an interrupted run (its name carries the pid), by
//! the next start.
//!
//! Each instance serves LDAPS on a second port and StartTLS on the first with a
//! certificate from the harness's [`TestCa`] for `127.0.0.1` (an IP SAN: the
//! certificate lib389 makes names only `localhost`), imported into the NSS
//! database 389 keeps its keys in; both ports listen on 127.0.0.1 only (389
//! listens on every address by default). Creating one takes about 3 s; tests
//! share one per test binary ([`Ds389::shared`]). An instance of a test's own
//! ([`Ds389::start`]) can be killed and restarted ([`Ds389::restart`]) with its
//! data.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::ca::TestCa;
use crate::ports::free_ports;
use crate::process::{REMOVE_DIR_ENV, SlapdProcess, run_tool};
use crate::tempdir::TempDir;

/// Where `ns-slapd` is installed by Debian's `389-ds-base`.
pub const NS_SLAPD_PATH: &str = "/usr/sbin/ns-slapd";
/// The suffix of the instance's one backend.
pub const DS389_SUFFIX: &str = "dc=example,dc=com";
/// The directory manager.
pub const DS389_ROOT_DN: &str = "cn=Directory Manager";
/// Its password.
pub const DS389_ROOT_PW: &str = "ldapmux-389-secret";
/// Instance names start with this, then the pid of the process that made it.
const NAME_PREFIX: &str = "lmxt";
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The NSS nickname lib389 gives the server certificate (its TLS
/// configuration names it), and the one the harness's CA is imported as.
const SERVER_CERT: &str = "Server-Cert";
const CA_NICK: &str = "ldapmux-test-ca";

/// The stand-in for `systemctl`, as lib389 calls it during `dscreate`.
const SYSTEMCTL: &str = r#"#!/bin/sh
act="$1"; name="${2#dirsrv@}"; name="${name%.service}"
pidf="$LDAPMUX_DS_RUN/slapd-$name.pid"
alive() { [ -s "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
case "$act" in
  start)
    alive && exit 0
    /usr/sbin/ns-slapd -D "/etc/dirsrv/slapd-$name" -i "$pidf" || exit 1
    i=0; while [ $i -lt 300 ]; do
      alive && grep -q "slapd started" "$LDAPMUX_DS_LOG/errors" 2>/dev/null && exit 0
      sleep 0.1; i=$((i+1)); done
    exit 1;;
  stop)
    alive && kill "$(cat "$pidf")"
    i=0; while [ $i -lt 300 ]; do alive || exit 0; sleep 0.1; i=$((i+1)); done
    exit 1;;
  is-active) alive && { echo active; exit 0; }; echo inactive; exit 3;;
  *) exit 0;;
esac
"#;

/// A running 389 DS instance. Dropping it kills `ns-slapd` and removes the
/// instance.
pub struct Ds389 {
    process: Option<SlapdProcess>,
    name: String,
    port: u16,
    tls_port: u16,
    /// Whether the wrapper removes `dir` when `ns-slapd` dies: for the shared
    /// instance, held in a `static` and never dropped. An instance of a test's
    /// own keeps its directory until dropped, so that it can restart.
    remove_on_death: bool,
    dir: TempDir,
}

impl std::fmt::Debug for Ds389 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ds389")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("tls_port", &self.tls_port)
            .finish_non_exhaustive()
    }
}

fn require_389() -> Result<(), HarnessError> {
    for (p, package) in [
        (NS_SLAPD_PATH, "389-ds-base"),
        ("/usr/sbin/dscreate", "389-ds-base"),
        ("/usr/bin/openssl", "openssl"),
        ("/usr/bin/certutil", "libnss3-tools"),
        ("/usr/bin/pk12util", "libnss3-tools"),
    ] {
        if !Path::new(p).exists() {
            return Err(HarnessError::Unexpected(format!(
                "{p} not found: install it with apt-get install -y {package} \
                 (make test does this)"
            )));
        }
    }
    Ok(())
}

/// Removes instance configurations whose creating process is gone.
fn remove_stale_instances() {
    let Ok(entries) = fs::read_dir("/etc/dirsrv") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("slapd-{NAME_PREFIX}")) else {
            continue;
        };
        let pid = rest.split('n').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

impl Ds389 {
    /// The instance shared by this test binary (created on first use).
    pub fn shared() -> Result<&'static Ds389, HarnessError> {
        static SHARED: OnceLock<Result<Ds389, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Ds389::create_and_run(true).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HarnessError::Unexpected(format!("the shared 389 DS: {e}")))
    }

    /// Creates an instance of the caller's own and starts it; returns once it
    /// answers TCP. It can be killed and restarted; dropping it removes it.
    pub fn start() -> Result<Ds389, HarnessError> {
        Ds389::create_and_run(false)
    }

    fn create_and_run(remove_on_death: bool) -> Result<Ds389, HarnessError> {
        require_389()?;
        remove_stale_instances();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{NAME_PREFIX}{}n{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ports = free_ports(2)?;
        let mut ds = Ds389 {
            process: None,
            name,
            port: ports[0],
            tls_port: ports[1],
            remove_on_death,
            dir: TempDir::create()?,
        };
        ds.create()?;
        ds.install_tls()?;
        ds.edit_config(&[
            ("nsslapd-listenhost", "127.0.0.1"),
            ("nsslapd-securelistenhost", "127.0.0.1"),
            // Every close in the access log at once (T1 is an idle timeout).
            ("nsslapd-accesslog-logbuffering", "off"),
        ])?;
        ds.run()?;
        Ok(ds)
    }

    fn sub(&self, d: &str) -> PathBuf {
        self.dir.path().join(d)
    }

    fn create(&self) -> Result<(), HarnessError> {
        for d in ["bin", "db", "log", "run", "lock", "ldif", "bak", "tmp"] {
            fs::create_dir_all(self.sub(d))
                .map_err(|e| HarnessError::io(format!("create {d}"), e))?;
        }
        let systemctl = self.sub("bin").join("systemctl");
        fs::write(&systemctl, SYSTEMCTL).map_err(|e| HarnessError::io("write systemctl", e))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io("chmod systemctl", e))?;
        let d = |s: &str| self.sub(s).display().to_string();
        let inf = format!(
            "[general]\nfull_machine_name = localhost\nstart = True\n\
             strict_host_checking = False\nselinux = False\nsystemd = False\n\
             [slapd]\ninstance_name = {}\nport = {}\nsecure_port = {}\n\
             root_dn = {DS389_ROOT_DN}\nroot_password = {DS389_ROOT_PW}\n\
             self_sign_cert = True\ndb_dir = {}\nlog_dir = {}\nrun_dir = {}\n\
             lock_dir = {}\nldif_dir = {}\nbackup_dir = {}\ntmp_dir = {}\n\
             [backend-userroot]\nsuffix = {DS389_SUFFIX}\ncreate_suffix_entry = True\n\
             sample_entries = no\n",
            self.name,
            self.port,
            self.tls_port,
            d("db"),
            d("log"),
            d("run"),
            d("lock"),
            d("ldif"),
            d("bak"),
            d("tmp"),
        );
        let inf_path = self.sub("ds.inf");
        fs::write(&inf_path, inf).map_err(|e| HarnessError::io("write ds.inf", e))?;
        let mut dscreate = self.tool("/usr/sbin/dscreate");
        dscreate.arg("from-file").arg(&inf_path);
        run_tool(dscreate)?;
        // Stop the daemon dscreate started: the harness runs it in the
        // foreground, under its wrapper.
        let stop = self
            .tool(&systemctl.display().to_string())
            .args(["stop", &format!("dirsrv@{}", self.name)])
            .status()
            .map_err(|e| HarnessError::io("stop the installed instance", e))?;
        if !stop.success() {
            return Err(HarnessError::Unexpected(format!(
                "the instance {} did not stop after dscreate",
                self.name
            )));
        }
        Ok(())
    }

    /// A lib389 tool with the stand-in `systemctl` first on `PATH`.
    fn tool(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", self.sub("bin").display()))
            .env("LDAPMUX_DS_RUN", self.sub("run"))
            .env("LDAPMUX_DS_LOG", self.sub("log"));
        c
    }

    /// `/etc/dirsrv/slapd-NAME`: `dse.ldif` and the NSS database.
    fn config_dir(&self) -> PathBuf {
        PathBuf::from(format!("/etc/dirsrv/slapd-{}", self.name))
    }

    /// Replaces the certificate lib389 made (for `localhost`, from its own CA)
    /// with one from a [`TestCa`] for `127.0.0.1`, under the nickname 389's TLS
    /// configuration names, and trusts only that CA. The instance is stopped.
    fn install_tls(&self) -> Result<(), HarnessError> {
        let ca = TestCa::new("ldapmux-389-test");
        let cert = ca.issue(&["127.0.0.1"]);
        let tls = self.sub("tls");
        fs::create_dir_all(&tls).map_err(|e| HarnessError::io("create tls", e))?;
        for (file, text) in [
            ("ca.pem", ca.ca_pem()),
            ("cert.pem", cert.cert_pem.as_str()),
            ("key.pem", cert.key_pem.as_str()),
        ] {
            fs::write(tls.join(file), text)
                .map_err(|e| HarnessError::io(format!("write {file}"), e))?;
        }
        let db = self.config_dir().display().to_string();
        let pin = format!("{db}/pwdfile.txt");
        let p12 = tls.join("server.p12").display().to_string();
        let [cert_pem, key_pem, ca_pem] =
            ["cert.pem", "key.pem", "ca.pem"].map(|f| tls.join(f).display().to_string());
        let steps: [(&str, &[&str]); 5] = [
            (
                "/usr/bin/openssl",
                &[
                    "pkcs12",
                    "-export",
                    "-name",
                    SERVER_CERT,
                    "-in",
                    &cert_pem,
                    "-inkey",
                    &key_pem,
                    "-out",
                    &p12,
                    "-passout",
                    "pass:ldapmux",
                ],
            ),
            (
                "/usr/bin/certutil",
                &["-F", "-d", &db, "-n", SERVER_CERT, "-f", &pin],
            ),
            (
                "/usr/bin/certutil",
                &["-D", "-d", &db, "-n", "Self-Signed-CA"],
            ),
            (
                "/usr/bin/certutil",
                &[
                    "-A", "-d", &db, "-n", CA_NICK, "-t", "CT,,", "-a", "-i", &ca_pem, "-f", &pin,
                ],
            ),
            (
                "/usr/bin/pk12util",
                &["-i", &p12, "-d", &db, "-k", &pin, "-W", "ldapmux"],
            ),
        ];
        for (program, args) in steps {
            let mut command = Command::new(program);
            command.args(args);
            run_tool(command)?;
        }
        Ok(())
    }

    /// Sets attributes of `cn=config` in `dse.ldif` (the instance is stopped):
    /// each replaces the attribute's values, or adds it.
    fn edit_config(&self, attrs: &[(&str, &str)]) -> Result<(), HarnessError> {
        let path = self.config_dir().join("dse.ldif");
        let text = fs::read_to_string(&path).map_err(|e| HarnessError::io("read dse.ldif", e))?;
        let edited = set_config_attrs(&text, attrs).ok_or_else(|| {
            HarnessError::Unexpected(format!("no cn=config entry in {}", path.display()))
        })?;
        fs::write(&path, edited).map_err(|e| HarnessError::io("write dse.ldif", e))
    }

    /// Runs `ns-slapd` in the foreground under the wrapper; waits until it
    /// accepts TCP.
    fn run(&mut self) -> Result<(), HarnessError> {
        let args: Vec<String> = vec![
            "-D".into(),
            format!("/etc/dirsrv/slapd-{}", self.name),
            "-i".into(),
            self.sub("run").join("fg.pid").display().to_string(),
            "-d".into(),
            "0".into(),
        ];
        let env: Vec<(String, String)> = if self.remove_on_death {
            // Its configuration in /etc/dirsrv goes too.
            vec![(
                REMOVE_DIR_ENV.to_owned(),
                format!(
                    "{}:{}",
                    self.dir.path().display(),
                    self.config_dir().display()
                ),
            )]
        } else {
            Vec::new()
        };
        let log = self.sub("ns-slapd.out");
        self.process = Some(SlapdProcess::spawn(
            Path::new(NS_SLAPD_PATH),
            &args,
            &env,
            &log,
        )?);
        let deadline = Instant::now() + START_DEADLINE;
        let addr = self.addr();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            let alive = self.process.as_ref().is_some_and(|p| p.alive());
            if !alive || Instant::now() >= deadline {
                return Err(HarnessError::Start {
                    reason: format!(
                        "ns-slapd {} on {addr} within {START_DEADLINE:?}",
                        if alive {
                            "did not listen"
                        } else {
                            "exited before listening"
                        }
                    ),
                    output: fs::read_to_string(self.sub("log").join("errors")).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILLs `ns-slapd` and reaps it (the wrapper does). The shared
    /// instance's directory goes with it; an own instance can
    /// [`restart`](Ds389::restart).
    pub fn kill(&mut self) {
        drop(self.process.take());
    }

    /// Kills `ns-slapd` if it runs and starts it again on the same ports with
    /// the same configuration and data (after a SIGKILL, 389 recovers its
    /// database first); returns once it answers TCP.
    ///
    /// Panics when called on the shared instance, whose directory the
    /// wrapper removes when it dies (a bug in the test).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        assert!(
            !self.remove_on_death,
            "Ds389::restart: the shared instance cannot restart"
        );
        self.kill();
        self.run()
    }

    /// `ldaps://127.0.0.1:PORT2` (the certificate is for `127.0.0.1`).
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    /// The PEM file of the CA that issued the instance's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.sub("tls").join("ca.pem")
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The address of its LDAP port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its instance name (`slapd-NAME` under `/etc/dirsrv`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's access log (connections, operations, closes).
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.sub("log").join("access")).unwrap_or_default()
    }
}

/// `text` (a `dse.ldif`) with `attrs` set in its `cn=config` entry, or `None`
/// if it has none. Entries are separated by blank lines; the attributes set
/// here are never folded.
fn set_config_attrs(text: &str, attrs: &[(&str, &str)]) -> Option<String> {
    let mut found = false;
    let entries: Vec<String> = text
        .split("\n\n")
        .map(|entry| {
            if !entry.trim_start().starts_with("dn: cn=config\n") {
                return entry.to_owned();
            }
            found = true;
            let named = |line: &str, name: &str| {
                line.split_once(':')
                    .is_some_and(|(a, _)| a.eq_ignore_ascii_case(name))
            };
            let mut lines: Vec<String> = entry
                .lines()
                .filter(|l| !attrs.iter().any(|(name, _)| named(l, name)))
                .map(str::to_owned)
                .collect();
            lines.extend(attrs.iter().map(|(name, value)| format!("{name}: {value}")));
            lines.join("\n")
        })
        .collect();
    found.then(|| entries.join("\n\n"))
}

impl Drop for Ds389 {
    fn drop(&mut self) {
        self.process = None;
        let _ = fs::remove_dir_all(format!("/etc/dirsrv/slapd-{}", self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::set_config_attrs;

    #[test]
    fn config_attributes_are_replaced_or_added_in_cn_config_only() {
        let dse = "dn: cn=config\ncn: config\nnsslapd-port: 389\nNSSLAPD-listenhost: ::\n\n\
                   dn: cn=other,cn=config\nnsslapd-port: 1\n";
        let out = set_config_attrs(
            dse,
            &[
                ("nsslapd-listenhost", "127.0.0.1"),
                ("nsslapd-idletimeout", "2"),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "dn: cn=config\ncn: config\nnsslapd-port: 389\nnsslapd-listenhost: 127.0.0.1\n\
             nsslapd-idletimeout: 2\n\ndn: cn=other,cn=config\nnsslapd-port: 1\n"
        );
        assert_eq!(set_config_attrs("dn: cn=x\n", &[("a", "b")]), None);
    }
}
