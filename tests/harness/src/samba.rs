//! A real Samba Active Directory domain controller on loopback (Debian's
//! `samba-ad-dc`), for the `interop_ad` tests.
//!
//! The domain (`LDAPMUX.TEST`, `DC=ldapmux,DC=test`) is provisioned with
//! `samba-tool domain provision` into a temp dir; nothing under `/etc` is read
//! or written. Samba has no setting for its LDAP port (389, LDAPS 636), so each
//! DC listens on an address of its own in 127.0.0.0/8 (all loopback on Linux)
//! rather than on a random port of 127.0.0.1. Its Kerberos KDC (Samba's
//! embedded Heimdal) listens on port 88 of the same address.
//!
//! What differs from a stock provision, and why (see
//! `docs/results/interop-ad-log.md`):
//! - `server services = ldap, kdc` and `-M single`: one process, nothing but
//!   LDAP and Kerberos;
//! - `ldap server require strong auth = no`: simple binds over plain LDAP
//!   (Samba refuses them by default with "BindSimple: Transport encryption
//!   required.");
//! - a server certificate from the harness's [`TestCa`] with an IP SAN for the
//!   listen address (Samba's self-made one names only the host, no SAN);
//! - the SPN `ldap/<address>` on the DC's account, so a GSSAPI client that uses
//!   the address as host name finds the service;
//! - a `krb5.conf` naming the KDC (the generated one relies on DNS).
//!
//! Provisioning takes a few seconds: tests share one DC per test binary
//! ([`SambaDc::shared`]). Samba runs under the slapd wrapper (`process.rs`): it
//! is SIGKILLed and reaped when the [`SambaDc`] is dropped or the test process
//! dies; the wrapper then removes the temp dir too (a shared DC lives in a
//! static and is never dropped).

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::ca::TestCa;
use crate::process::{REMOVE_DIR_ENV, SlapdProcess, run_tool};
use crate::tempdir::{TempDir, remove_stale_dirs};

/// Where Debian's `samba` package installs the AD DC daemon.
pub const SAMBA_PATH: &str = "/usr/sbin/samba";
/// Where Debian's `samba-common-bin` installs `samba-tool`.
pub const SAMBA_TOOL_PATH: &str = "/usr/bin/samba-tool";
/// The system Python, which has Samba's modules (a pyenv `python3` may not).
const PYTHON: &str = "/usr/bin/python3";
/// The Kerberos realm (and DNS domain, upper case) of every test DC.
pub const AD_REALM: &str = "LDAPMUX.TEST";
/// The NetBIOS domain name.
pub const AD_DOMAIN: &str = "LDAPMUX";
/// The domain's naming context.
pub const AD_BASE: &str = "DC=ldapmux,DC=test";
/// The Administrator's DN.
pub const AD_ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=ldapmux,DC=test";
/// The Administrator's password (meets AD's default complexity rules).
pub const AD_ADMIN_PASSWORD: &str = "Ldapmux-Adm1n";
/// The DC's host name (`dc.ldapmux.test`, NetBIOS `DC`).
const HOST_NAME: &str = "dc";
/// How long provisioning may take (about 2.5 s on a 2-core machine).
const PROVISION_DEADLINE: Duration = Duration::from_secs(120);
/// How long a start may take, until LDAP, LDAPS and Kerberos accept.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Ports the DC listens on, which must be free on its address.
const PORTS: [u16; 6] = [389, 636, 3268, 3269, 88, 464];
/// smb.conf settings the harness replaces in the provisioned file.
const OVERRIDDEN: [&str; 9] = [
    "interfaces",
    "bind interfaces only",
    "server services",
    "log file",
    "pid directory",
    "ntp signd socket directory",
    "winbindd socket directory",
    "ldap server require strong auth",
    "tls enabled",
];

/// Checks that the Samba AD DC is installed.
///
/// The error says `/usr/sbin/samba not found: install the Samba AD DC with
/// apt-get install -y samba-ad-dc samba-ad-provision (make test does this)`.
pub fn require_samba() -> Result<(), HarnessError> {
    for path in [SAMBA_PATH, SAMBA_TOOL_PATH, PYTHON] {
        if !Path::new(path).is_file() {
            return Err(HarnessError::Unexpected(format!(
                "{path} not found: install the Samba AD DC with apt-get install -y \
                 samba-ad-dc samba-ad-provision (make test does this)"
            )));
        }
    }
    Ok(())
}

/// A running Samba AD DC. Dropping it kills samba and removes its directory.
pub struct SambaDc {
    // Field order: the process dies before the directory goes.
    process: Option<SlapdProcess>,
    dir: TempDir,
    ip: Ipv4Addr,
    /// Whether the wrapper removes `dir` when samba dies (the shared DC).
    remove_on_death: bool,
}

impl std::fmt::Debug for SambaDc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SambaDc")
            .field("dir", &self.dir.path())
            .field("ip", &self.ip)
            .finish()
    }
}

/// The address of the `attempt`-th try: 127.77.X.Y from this process's pid, so
/// that test binaries (and other users of the machine) running at once differ.
fn candidate_ip(attempt: u32) -> Ipv4Addr {
    let n = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(attempt.wrapping_mul(7919));
    let (x, y) = ((n >> 8) as u8, (n as u8).clamp(1, 254));
    Ipv4Addr::new(127, 77, x, y)
}

/// Whether every port the DC needs can be bound on `ip` now.
fn ports_free(ip: Ipv4Addr) -> bool {
    PORTS
        .iter()
        .all(|p| TcpListener::bind(SocketAddr::from((ip, *p))).is_ok())
}

impl SambaDc {
    /// The DC shared by every test of this binary, provisioned and started on
    /// first use. A failed start is remembered: every caller gets its message.
    pub fn shared() -> Result<&'static SambaDc, HarnessError> {
        static SHARED: OnceLock<Result<SambaDc, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| SambaDc::provision_and_run(true).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| HarnessError::Unexpected(format!("the shared Samba DC: {e}")))
    }

    /// Provisions a fresh domain into a temp dir and starts a DC of the
    /// caller's own; returns once LDAP, LDAPS and Kerberos accept TCP
    /// connections. It can be killed and restarted; dropping it removes it.
    pub fn start() -> Result<SambaDc, HarnessError> {
        SambaDc::provision_and_run(false)
    }

    fn provision_and_run(remove_on_death: bool) -> Result<SambaDc, HarnessError> {
        require_samba()?;
        remove_stale_dirs();
        // Each start of this process tries its own addresses: two DCs
        // provisioning at once must not both pick the one still free.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let first = NEXT.fetch_add(64, Ordering::Relaxed);
        let ip = (first..first + 64)
            .map(candidate_ip)
            .find(|ip| ports_free(*ip))
            .ok_or_else(|| {
                HarnessError::Unexpected(format!(
                    "no address in 127.77.0.0/16 with ports {PORTS:?} free (tried 64)"
                ))
            })?;
        let mut dc = SambaDc {
            process: None,
            dir: TempDir::create()?,
            ip,
            remove_on_death,
        };
        dc.provision()?;
        dc.write_tls()?;
        dc.write_config()?;
        dc.samba_tool(&[
            "spn",
            "add",
            &format!("ldap/{ip}"),
            &format!("{}$", HOST_NAME.to_uppercase()),
        ])?;
        dc.run()?;
        Ok(dc)
    }

    /// Runs samba in the foreground under the wrapper; waits until it listens.
    fn run(&mut self) -> Result<(), HarnessError> {
        let log = self.log_path();
        let conf = self.smb_conf().display().to_string();
        let args: Vec<String> = [
            "-s",
            &conf,
            "-F",
            "-M",
            "single",
            "--debug-stdout",
            "-d",
            "1",
            "--no-process-group",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // The wrapper removes the shared DC's dir once samba is dead: it lives
        // in a static, never dropped, and its dir must not outlive the test
        // binary. A DC of a test's own keeps it until dropped, to restart.
        let mut env = self.env();
        if self.remove_on_death {
            env.push((REMOVE_DIR_ENV.into(), self.dir().display().to_string()));
        }
        self.process = Some(SlapdProcess::spawn(
            Path::new(SAMBA_PATH),
            &args,
            &env,
            &log,
        )?);
        self.wait_listening()
    }

    /// Kills samba if it runs and starts it again on the same address with the
    /// same domain; returns once it listens again.
    ///
    /// Panics when called on the shared DC, whose directory the wrapper
    /// removes when it dies (a bug in the test).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        assert!(
            !self.remove_on_death,
            "SambaDc::restart: the shared DC cannot restart"
        );
        self.kill();
        self.run()
    }

    fn wait_listening(&self) -> Result<(), HarnessError> {
        let deadline = Instant::now() + START_DEADLINE;
        for port in [389, 636, 88] {
            let addr = SocketAddr::from((self.ip, port));
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                let alive = self.process.as_ref().is_some_and(|p| p.alive());
                if !alive || Instant::now() >= deadline {
                    return Err(HarnessError::Start {
                        reason: format!(
                            "samba {} on {addr} within {START_DEADLINE:?}",
                            if alive {
                                "did not listen"
                            } else {
                                "exited before listening"
                            }
                        ),
                        output: self.log(),
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// The directory holding the domain's databases and configuration.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The loopback address the DC listens on (127.77.x.y).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ldap://ADDRESS:389`.
    pub fn url(&self) -> String {
        format!("ldap://{}:389", self.ip)
    }

    /// `ldaps://ADDRESS:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:636", self.ip)
    }

    /// The address of the LDAP port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, 389))
    }

    /// The PEM file of the CA that issued the DC's certificate (whose SAN is
    /// [`SambaDc::ip`]).
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("tls").join("ca.pem")
    }

    /// The Administrator's DN.
    pub fn admin_dn(&self) -> &'static str {
        AD_ADMIN_DN
    }

    /// The Administrator's password.
    pub fn admin_password(&self) -> &'static str {
        AD_ADMIN_PASSWORD
    }

    /// The domain's naming context, `DC=ldapmux,DC=test`.
    pub fn base(&self) -> &'static str {
        AD_BASE
    }

    /// The `krb5.conf` clients must use (`KRB5_CONFIG`): the realm's KDC on
    /// this DC's address, no DNS, no reverse lookups (the LDAP service is
    /// `ldap/ADDRESS`).
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir().join("krb5.conf")
    }

    /// What samba printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// samba's pid, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.pid())
    }

    /// SIGKILLs samba (and reaps it): a server crash. Connections are reset
    /// by the kernel; the address stops answering. A DC of a test's own can
    /// [`restart`](SambaDc::restart).
    pub fn kill(&mut self) {
        // The wrapper SIGKILLs and reaps samba when its pipe closes (and
        // removes the shared DC's directory).
        drop(self.process.take());
    }

    /// The DN of a user made by [`SambaDc::add_user`].
    pub fn user_dn(name: &str) -> String {
        format!("CN={name},CN=Users,{AD_BASE}")
    }

    /// Adds the user `name` (sAMAccountName) under `CN=Users` with `password`
    /// (which must meet AD's complexity rules) and returns its DN.
    pub fn add_user(&self, name: &str, password: &str) -> Result<String, HarnessError> {
        self.samba_tool(&["user", "add", name, password])?;
        Ok(SambaDc::user_dn(name))
    }

    /// Creates `OU=ou` under the domain with `n` users `CN={ou}NNNN` (no
    /// password, so they cannot bind) in one transaction on the database
    /// (1 100 users take about 2 s; over LDAP 20 s). Returns the OU's DN.
    pub fn add_bulk_users(&self, ou: &str, n: usize) -> Result<String, HarnessError> {
        let script = self.dir().join("bulk.py");
        fs::write(&script, BULK_PY)
            .map_err(|e| HarnessError::io(format!("write {}", script.display()), e))?;
        let args = [
            script.display().to_string(),
            self.smb_conf().display().to_string(),
            self.private().join("sam.ldb").display().to_string(),
            ou.to_owned(),
            n.to_string(),
        ];
        run(PYTHON, &args, &self.env())?;
        Ok(format!("OU={ou},{AD_BASE}"))
    }

    /// The DN of the query policy whose `lDAPAdminLimits` Samba applies.
    pub fn query_policy_dn(&self) -> String {
        format!(
            "CN=Default Query Policy,CN=Query-Policies,CN=Directory Service,\
             CN=Windows NT,CN=Services,CN=Configuration,{AD_BASE}"
        )
    }

    /// Sets one of the query policy's `lDAPAdminLimits` (`MaxConnIdleTime`,
    /// `MaxPageSize`, ...) to `value`, as an administrator over LDAP. Samba
    /// applies it to connections opened afterwards, without a restart.
    pub async fn set_admin_limit(&self, name: &str, value: u64) -> Result<(), HarnessError> {
        let url = self.url();
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url)
            .await
            .map_err(|e| HarnessError::ldap(format!("connect to {url}"), e))?;
        let driver = tokio::spawn(conn.drive());
        let timeout = Duration::from_secs(10);
        ldap.with_timeout(timeout)
            .simple_bind(AD_ADMIN_DN, AD_ADMIN_PASSWORD)
            .await
            .and_then(|r| r.success())
            .map_err(|e| HarnessError::ldap(format!("bind as {AD_ADMIN_DN}"), e))?;
        let dn = self.query_policy_dn();
        let (entries, _) = ldap
            .with_timeout(timeout)
            .search(
                &dn,
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["lDAPAdminLimits"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| HarnessError::ldap(format!("read lDAPAdminLimits of {dn}"), e))?;
        let prefix = format!("{}=", name.to_lowercase());
        let old: HashSet<String> = entries
            .into_iter()
            .flat_map(|e| {
                ldap3::SearchEntry::construct(e)
                    .attrs
                    .into_values()
                    .flatten()
            })
            .filter(|v| v.to_lowercase().starts_with(&prefix))
            .collect();
        let mut mods = Vec::new();
        if !old.is_empty() {
            mods.push(ldap3::Mod::Delete("lDAPAdminLimits".to_owned(), old));
        }
        mods.push(ldap3::Mod::Add(
            "lDAPAdminLimits".to_owned(),
            HashSet::from([format!("{name}={value}")]),
        ));
        ldap.with_timeout(timeout)
            .modify(&dn, mods)
            .await
            .and_then(|r| r.success())
            .map_err(|e| HarnessError::ldap(format!("set {name}={value} on {dn}"), e))?;
        let _ = ldap.unbind().await;
        driver.abort();
        Ok(())
    }

    /// The sAMAccountName (and CN) of the `i`-th user of [`SambaDc::add_bulk_users`].
    pub fn bulk_user(ou: &str, i: usize) -> String {
        format!("{ou}{i:04}")
    }

    /// Runs `samba-tool ARGS -s smb.conf -H sam.ldb` (directly on the
    /// database, with the running DC) and returns what it printed.
    pub fn samba_tool(&self, args: &[&str]) -> Result<String, HarnessError> {
        let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        all.extend([
            "-s".to_owned(),
            self.smb_conf().display().to_string(),
            "-H".to_owned(),
            self.private().join("sam.ldb").display().to_string(),
        ]);
        run(SAMBA_TOOL_PATH, &all, &self.env())
    }

    fn private(&self) -> PathBuf {
        self.dir().join("private")
    }

    fn smb_conf(&self) -> PathBuf {
        self.dir().join("etc").join("smb.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("samba.out")
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![("KRB5_CONFIG".into(), self.krb5_conf().display().to_string())]
    }

    fn provision(&self) -> Result<(), HarnessError> {
        let started = Instant::now();
        let args: Vec<String> = [
            "domain",
            "provision",
            &format!("--targetdir={}", self.dir().display()),
            &format!("--realm={AD_REALM}"),
            &format!("--domain={AD_DOMAIN}"),
            &format!("--host-name={HOST_NAME}"),
            "--server-role=dc",
            "--dns-backend=NONE",
            "--use-rfc2307",
            &format!("--adminpass={AD_ADMIN_PASSWORD}"),
            &format!("--host-ip={}", self.ip),
            &format!("--option=interfaces={}/8", self.ip),
            "--option=bind interfaces only=yes",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        run(SAMBA_TOOL_PATH, &args, &self.env())?;
        if started.elapsed() > PROVISION_DEADLINE {
            return Err(HarnessError::Timeout(format!(
                "samba-tool domain provision took {:?}, more than {PROVISION_DEADLINE:?}",
                started.elapsed()
            )));
        }
        Ok(())
    }

    /// The CA, and the DC's certificate for its address, in `DIR/tls`; Samba
    /// refuses a key file others can read.
    fn write_tls(&self) -> Result<(), HarnessError> {
        let ca = TestCa::new("ldapmux-samba-test");
        let cert = ca.issue(&[&self.ip.to_string()]);
        let tls = self.dir().join("tls");
        fs::create_dir_all(&tls)
            .map_err(|e| HarnessError::io(format!("create {}", tls.display()), e))?;
        for (name, text) in [
            ("ca.pem", ca.ca_pem()),
            ("cert.pem", &cert.cert_pem),
            ("key.pem", &cert.key_pem),
        ] {
            let path = tls.join(name);
            fs::write(&path, text)
                .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        }
        let key = tls.join("key.pem");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(|e| HarnessError::io(format!("chmod 600 {}", key.display()), e))
    }

    /// Rewrites the provisioned smb.conf: its `[global]` section without the
    /// settings the harness replaces, plus the harness's; no shares.
    fn write_config(&self) -> Result<(), HarnessError> {
        let path = self.smb_conf();
        let provisioned = fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        let mut conf = String::from("[global]\n");
        for line in provisioned
            .lines()
            .skip_while(|l| l.trim() != "[global]")
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with('['))
        {
            let key = line.split('=').next().unwrap_or("").trim().to_lowercase();
            if !key.is_empty() && !key.starts_with('#') && !OVERRIDDEN.contains(&key.as_str()) {
                let _ = writeln!(conf, "{line}");
            }
        }
        let (dir, ip) = (self.dir().display().to_string(), self.ip);
        let _ = write!(
            conf,
            "\tinterfaces = {ip}/8\n\tbind interfaces only = yes\n\
             \tserver services = ldap, kdc\n\tlog file = {dir}/log.%m\n\
             \tpid directory = {dir}/run\n\tntp signd socket directory = {dir}/ntp_signd\n\
             \twinbindd socket directory = {dir}/winbindd\n\
             \tldap server require strong auth = no\n\ttls enabled = yes\n\
             \ttls cafile = {dir}/tls/ca.pem\n\ttls certfile = {dir}/tls/cert.pem\n\
             \ttls keyfile = {dir}/tls/key.pem\n"
        );
        for sub in ["run", "ntp_signd", "winbindd"] {
            let p = self.dir().join(sub);
            fs::create_dir_all(&p)
                .map_err(|e| HarnessError::io(format!("create {}", p.display()), e))?;
        }
        fs::write(&path, conf)
            .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))?;
        let krb5 = format!(
            "[libdefaults]\n default_realm = {AD_REALM}\n dns_lookup_realm = false\n \
             dns_lookup_kdc = false\n rdns = false\n dns_canonicalize_hostname = false\n \
             udp_preference_limit = 1\n\n[realms]\n {AD_REALM} = {{\n  kdc = {ip}:88\n  \
             kpasswd_server = {ip}:464\n }}\n\n[domain_realm]\n {ip} = {AD_REALM}\n \
             .ldapmux.test = {AD_REALM}\n"
        );
        let path = self.krb5_conf();
        fs::write(&path, krb5).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        // The wrapper SIGKILLs and reaps samba when its pipe closes.
        self.process.take();
    }
}

/// Runs `program args` and returns its output; an error quotes the output.
fn run(program: &str, args: &[String], env: &[(String, String)]) -> Result<String, HarnessError> {
    let mut command = Command::new(program);
    command.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    run_tool(command)
}

/// Adds an OU and `n` users in one transaction on sam.ldb (`BULK_PY SMB_CONF
/// SAM_LDB OU N`).
const BULK_PY: &str = r#"import sys
from samba.samdb import SamDB
from samba.param import LoadParm
from samba.auth import system_session
lp = LoadParm()
lp.load(sys.argv[1])
db = SamDB(url=sys.argv[2], session_info=system_session(), lp=lp)
base = db.domain_dn()
ou, n = sys.argv[3], int(sys.argv[4])
db.transaction_start()
try:
    db.add({"dn": "OU=%s,%s" % (ou, base), "objectClass": "organizationalUnit"})
    for i in range(n):
        name = "%s%04d" % (ou, i)
        db.add({"dn": "CN=%s,OU=%s,%s" % (name, ou, base), "objectClass": "user",
                "sAMAccountName": name})
    db.transaction_commit()
except Exception:
    db.transaction_cancel()
    raise
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_addresses_are_loopback_and_vary() {
        let a: Vec<Ipv4Addr> = (0..8).map(candidate_ip).collect();
        assert!(a.iter().all(|ip| ip.is_loopback() && ip.octets()[3] != 0));
        assert!(a.windows(2).all(|w| w[0] != w[1]), "{a:?}");
    }
}
