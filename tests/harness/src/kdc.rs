//! A real MIT Kerberos KDC on 127.0.0.1 (Debian's `krb5-kdc`), for the
//! GSSAPI tests: its own realm, database, `krb5.conf` and `kdc.conf` in a
//! temp dir, principals and keytabs made with `kadmin.local`.
//!
//! The KDC runs under the same wrapper as slapd (`process.rs`): it is
//! SIGKILLed and reaped when the [`Kdc`] is dropped, or when the test process
//! dies. Clients find it through [`Kdc::krb5_conf`] (`KRB5_CONFIG`): the
//! Kerberos library reads its configuration from the environment, so a test
//! runs its Kerberos clients in a child process with that environment.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::ports::free_ports;
use crate::process::{SlapdProcess, run_tool};
use crate::tempdir::TempDir;

/// Where Debian's `krb5-kdc` installs the KDC.
pub const KRB5KDC_PATH: &str = "/usr/sbin/krb5kdc";
/// Where Debian's `krb5-kdc` installs the database tool.
pub const KDB5_UTIL_PATH: &str = "/usr/sbin/kdb5_util";
/// Where Debian's `krb5-admin-server` installs the local admin tool.
pub const KADMIN_LOCAL_PATH: &str = "/usr/sbin/kadmin.local";
/// The realm of every test KDC.
pub const REALM: &str = "EXAMPLE.TEST";
/// How long a start may take.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Checks that the KDC tools are installed.
///
/// The error says `krb5kdc not found at /usr/sbin/krb5kdc: install it with
/// apt-get install -y krb5-kdc krb5-admin-server krb5-user (make test does this)`.
pub fn require_kdc() -> Result<(), HarnessError> {
    for path in [KRB5KDC_PATH, KDB5_UTIL_PATH, KADMIN_LOCAL_PATH] {
        if !Path::new(path).is_file() {
            return Err(HarnessError::Unexpected(format!(
                "{path} not found: install the MIT KDC with apt-get install -y krb5-kdc \
                 krb5-admin-server krb5-user libsasl2-modules-gssapi-mit (make test does this)"
            )));
        }
    }
    Ok(())
}

/// A running test KDC for [`REALM`]. Dropping it kills the KDC and removes
/// its directory (database, keytabs, configuration).
pub struct Kdc {
    // Field order: the process dies before the directory goes.
    process: Option<SlapdProcess>,
    dir: TempDir,
    port: u16,
}

impl std::fmt::Debug for Kdc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kdc")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .finish()
    }
}

impl Kdc {
    /// Creates the realm's database and starts the KDC on a free loopback
    /// port; returns once it accepts TCP connections.
    pub fn start() -> Result<Kdc, HarnessError> {
        require_kdc()?;
        let dir = TempDir::create()?;
        let port = free_ports(1)?[0];
        let kdc = Kdc {
            process: None,
            dir,
            port,
        };
        kdc.write_config()?;
        kdc.run(
            KDB5_UTIL_PATH,
            &["create", "-s", "-r", REALM, "-P", "ldapmux-master"],
        )?;
        let log = kdc.dir().join("krb5kdc.out");
        let process = SlapdProcess::spawn(
            Path::new(KRB5KDC_PATH),
            &["-n".to_owned()],
            &kdc.env(),
            &log,
        )?;
        let mut kdc = kdc;
        kdc.process = Some(process);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(kdc);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Start {
                    reason: format!("krb5kdc did not listen on {addr} within {START_DEADLINE:?}"),
                    output: fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The directory holding the database, configuration and keytabs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `krb5.conf` clients must use (`KRB5_CONFIG`): this realm, its KDC
    /// on 127.0.0.1 over TCP, no DNS and no reverse lookups (host names are
    /// used as given: the service `ldap/127.0.0.1`).
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }

    /// Adds `principal` with a random key, exports it to a keytab of its own
    /// in the KDC's directory and returns the keytab's path. `max_life`
    /// caps the lifetime of its tickets (e.g. 20 s to see them expire).
    pub fn add_principal(
        &self,
        principal: &str,
        max_life: Option<Duration>,
    ) -> Result<PathBuf, HarnessError> {
        let mut add = String::from("addprinc -randkey");
        if let Some(life) = max_life {
            let _ = write!(add, " -maxlife \"{} seconds\"", life.as_secs());
        }
        let _ = write!(add, " {principal}");
        self.run(KADMIN_LOCAL_PATH, &["-r", REALM, "-q", &add])?;
        let safe: String = principal
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let keytab = self.dir().join(format!("{safe}.keytab"));
        let export = format!("ktadd -k {} {principal}", keytab.display());
        self.run(KADMIN_LOCAL_PATH, &["-r", REALM, "-q", &export])?;
        Ok(keytab)
    }

    /// `KRB5_CONFIG` and `KRB5_KDC_PROFILE` for this KDC's tools.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            (
                "KRB5_KDC_PROFILE".into(),
                self.dir().join("kdc.conf").display().to_string(),
            ),
        ]
    }

    fn write_config(&self) -> Result<(), HarnessError> {
        let (dir, port) = (self.dir().display().to_string(), self.port);
        let krb5 = format!(
            "[libdefaults]\n default_realm = {REALM}\n dns_lookup_realm = false\n \
             dns_lookup_kdc = false\n rdns = false\n dns_canonicalize_hostname = false\n \
             udp_preference_limit = 1\n\n[realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n"
        );
        let kdc = format!(
            "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\n\
             [realms]\n {REALM} = {{\n  database_name = {dir}/principal\n  \
             key_stash_file = {dir}/stash\n  acl_file = {dir}/kadm5.acl\n  max_life = 10h\n }}\n\n\
             [logging]\n kdc = FILE:{dir}/kdc.log\n"
        );
        for (name, text) in [("krb5.conf", krb5), ("kdc.conf", kdc)] {
            let path = self.dir().join(name);
            fs::write(&path, text)
                .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        }
        Ok(())
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), HarnessError> {
        let mut command = Command::new(program);
        command.args(args).envs(self.env());
        let text = run_tool(command)?;
        // kadmin.local exits 0 even when its query fails: read what it said.
        if !text.contains("rror") {
            return Ok(());
        }
        Err(HarnessError::Start {
            reason: format!("{program} {args:?} failed (exit status: 0)"),
            output: text,
        })
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        // The wrapper SIGKILLs and reaps the KDC when its pipe closes.
        self.process.take();
    }
}
