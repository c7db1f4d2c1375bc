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
//! `/etc/dirsrv/slapd-NAME` (lib389 insists), removed on drop and, for an
//! instance left by a killed run (its name carries the pid), by the next start.
//! Creating one takes about 2 s; tests share one per test binary
//! ([`Ds389::shared`]).

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::process::{REMOVE_DIR_ENV, SlapdProcess};
use crate::slapd::{TempDir, free_ports};

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
    dir: TempDir,
}

impl std::fmt::Debug for Ds389 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ds389")
            .field("name", &self.name)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn require_389() -> Result<(), HarnessError> {
    for p in [NS_SLAPD_PATH, "/usr/sbin/dscreate"] {
        if !Path::new(p).exists() {
            return Err(HarnessError::Unexpected(format!(
                "{p} not found: install 389 Directory Server with apt-get install -y \
                 389-ds-base (make test does this)"
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
            .get_or_init(|| Ds389::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HarnessError::Unexpected(format!("the shared 389 DS: {e}")))
    }

    /// Creates an instance and starts it; returns once it answers TCP.
    pub fn start() -> Result<Ds389, HarnessError> {
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
            dir: TempDir::create()?,
        };
        ds.create(ports[1])?;
        ds.run()?;
        Ok(ds)
    }

    fn sub(&self, d: &str) -> PathBuf {
        self.dir.path().join(d)
    }

    fn create(&self, secure_port: u16) -> Result<(), HarnessError> {
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
             [slapd]\ninstance_name = {}\nport = {}\nsecure_port = {secure_port}\n\
             root_dn = {DS389_ROOT_DN}\nroot_password = {DS389_ROOT_PW}\n\
             self_sign_cert = False\ndb_dir = {}\nlog_dir = {}\nrun_dir = {}\n\
             lock_dir = {}\nldif_dir = {}\nbackup_dir = {}\ntmp_dir = {}\n\
             [backend-userroot]\nsuffix = {DS389_SUFFIX}\ncreate_suffix_entry = True\n\
             sample_entries = no\n",
            self.name,
            self.port,
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
        let out = self
            .tool("/usr/sbin/dscreate")
            .arg("from-file")
            .arg(&inf_path)
            .output()
            .map_err(|e| HarnessError::io("run dscreate", e))?;
        if !out.status.success() {
            return Err(HarnessError::Start {
                reason: format!(
                    "dscreate from-file for {} failed ({})",
                    self.name, out.status
                ),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
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
        let env = vec![(
            REMOVE_DIR_ENV.to_owned(),
            self.dir.path().display().to_string(),
        )];
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

    /// SIGKILLs `ns-slapd` (the wrapper does, and removes the instance's
    /// directory: a killed instance does not come back).
    pub fn kill(&mut self) {
        drop(self.process.take());
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

impl Drop for Ds389 {
    fn drop(&mut self) {
        self.process = None;
        let _ = fs::remove_dir_all(format!("/etc/dirsrv/slapd-{}", self.name));
    }
}
