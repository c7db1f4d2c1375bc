//! [`SlapdBuilder`]: what a test slapd serves (users, groups, TLS, overlays,
//! extra configuration) and writing its configuration and data.

use super::*;

#[derive(Clone, Debug)]
pub(super) struct TlsMaterial {
    pub(super) cert: ServerCert,
    pub(super) ca_pem: String,
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
pub(super) struct Extra {
    pub(super) ldapi: bool,
    pub(super) env: Vec<(String, String)>,
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
pub(super) fn ldapi_url(path: &Path) -> String {
    format!("ldapi://{}", path.display().to_string().replace('/', "%2F"))
}

fn quote(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), HarnessError> {
    fs::write(path, contents).map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

/// The LDIF of the suffix, the three containers, the users and the groups.
pub(super) fn write_ldif(path: &Path, users: usize, groups: usize) -> io::Result<()> {
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
