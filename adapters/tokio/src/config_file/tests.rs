//! Reading `ldap.conf`, TOML and the environment into a `PoolConfig`:
//! every key, and every error naming its file, line and key.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SECRET: &str = "pw-Zebra-Quokka-4711";

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir() -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "ldapmux-config-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn conf(text: &str) -> Result<ConfigFile, ConfigFileError> {
    let d = dir();
    ConfigFile::read_ldap_conf(write(&d, "ldap.conf", text))
}

/// A TOML file next to a password file holding SECRET.
fn toml_file(text: &str) -> (PathBuf, Result<ConfigFile, ConfigFileError>) {
    let d = dir();
    write(&d, "pw", &format!("{SECRET}\n"));
    let p = write(&d, "ldapmux.toml", text);
    let r = ConfigFile::read_toml(&p);
    (p, r)
}

fn assert_at(e: &ConfigFileError, file: &Path, want_line: usize, want_key: &str) {
    let (path, line, key) = match e {
        ConfigFileError::UnknownKey { path, line, key }
        | ConfigFileError::Unsupported {
            path, line, key, ..
        }
        | ConfigFileError::BadValue {
            path, line, key, ..
        }
        | ConfigFileError::PasswordFile {
            path, line, key, ..
        }
        | ConfigFileError::Incomplete {
            path, line, key, ..
        } => (path, *line, key.as_str()),
        other => panic!("no file/line/key in {other:?}"),
    };
    assert_eq!(path, file, "{e}");
    assert_eq!(line, want_line, "{e}");
    assert_eq!(key, want_key, "{e}");
    let shown = e.to_string();
    assert!(shown.contains(&file.display().to_string()), "{shown}");
    assert!(shown.contains(&format!(":{want_line}:")), "{shown}");
    assert!(shown.contains(want_key), "{shown}");
    assert!(!shown.contains(SECRET) && !format!("{e:?}").contains(SECRET));
}

#[test]
fn ldap_conf_every_key_comments_blank_lines_and_case() {
    let c = conf(
        "# a comment\n\n   \n\
         uri ldap://a:389 ldaps://b:636,ldap://c\n\
         \tBase   dc=example,dc=com  \n\
         TLS_CACERT /etc/ssl/ca.pem\n\
         tls_reqcert demand\n\
         NETWORK_TIMEOUT 3\n\
         Timeout 7\n\
         REFERRALS off\n",
    )
    .unwrap();
    assert_eq!(
        c.servers(),
        [
            ("ldap://a:389", false),
            ("ldaps://b:636", false),
            ("ldap://c", false)
        ]
    );
    assert_eq!(c.base(), Some("dc=example,dc=com"));
    assert_eq!(
        c.ca_file().map(PathBuf::as_path),
        Some(Path::new("/etc/ssl/ca.pem"))
    );
    assert!(c.config().tls_verify && c.given.contains_key("tls_verify"));
    assert_eq!(c.config().connect_timeout, Duration::from_secs(3));
    assert_eq!(c.config().op_timeout, Duration::from_secs(7));
    assert!(c.bind_dn().is_none());
    assert!(format!("{:?}", c.builder()).contains("/etc/ssl/ca.pem"));
}

#[test]
fn tls_reqcert_never_only_when_explicit_and_allow_try_are_demand() {
    let c = conf("URI ldap://a\n").unwrap();
    assert!(c.config().tls_verify && !c.given.contains_key("tls_verify"));
    for (v, verify) in [
        ("never", false),
        ("NEVER", false),
        ("allow", true),
        ("try", true),
        ("demand", true),
        ("hard", true),
    ] {
        let c = conf(&format!("URI ldap://a\nTLS_REQCERT {v}\n")).unwrap();
        assert_eq!(c.config().tls_verify, verify, "{v}");
    }
}

#[test]
fn ldap_conf_errors_name_file_line_and_key() {
    let cases: &[(&str, usize, &str)] = &[
        ("URI ldap://a\nFOO bar\n", 2, "FOO"),
        ("URI ldap://a\n\nSASL_MECH DIGEST-MD5\n", 3, "SASL_MECH"),
        ("sasl_authcid x\n", 1, "sasl_authcid"),
        ("TLS_CERT /x.pem\n", 1, "TLS_CERT"),
        ("SIZELIMIT 10\n", 1, "SIZELIMIT"),
        ("REFERRALS on\n", 1, "REFERRALS"),
        ("# c\nTLS_REQCERT sometimes\n", 2, "TLS_REQCERT"),
        ("NETWORK_TIMEOUT 0\n", 1, "NETWORK_TIMEOUT"),
        ("TIMEOUT soon\n", 1, "TIMEOUT"),
        ("URI ftp://x\n", 1, "URI"),
        ("URI\n", 1, "URI"),
        ("URI ldap://a\nBINDDN cn=admin\n", 2, "BINDDN"),
    ];
    for (text, line, key) in cases {
        let d = dir();
        let p = write(&d, "ldap.conf", text);
        let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
        assert_at(&e, &p, *line, key);
    }
    let d = dir();
    let p = write(&d, "ldap.conf", "SASL_MECH PLAIN\n");
    assert!(matches!(
        ConfigFile::read_ldap_conf(&p).unwrap_err(),
        ConfigFileError::Unsupported { .. }
    ));
    let e = ConfigFile::read_ldap_conf(d.join("missing.conf")).unwrap_err();
    assert!(matches!(e, ConfigFileError::Read { .. }), "{e}");
    assert!(e.to_string().contains("missing.conf"), "{e}");
}

#[test]
fn a_password_key_is_unknown_and_its_value_never_shown() {
    let d = dir();
    let p = write(&d, "ldap.conf", &format!("URI ldap://a\nBINDPW {SECRET}\n"));
    let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
    assert_at(&e, &p, 2, "BINDPW");
    assert!(e.to_string().contains("bind_password_file"), "{e}");
}

#[test]
fn toml_every_key() {
    let (p, c) = toml_file(
        "uri = [\"ldap://a\", \"ldap://b\", \"ldap://c\"]\n\
         preferred = [\"ldap://b\"]\n\
         base = \"dc=example,dc=com\"\n\
         bind_dn = \"cn=admin,dc=example,dc=com\"\n\
         bind_password_file = \"pw\"\n\
         tls_ca_file = \"ca.pem\"\n\
         tls_system_roots = false\n\
         starttls = true\n\
         max_users_per_conn = 8\n\
         max_conns_per_server = 3\n\
         spread_users_per_conn = 2\n\
         spread_conns_per_server = 5\n\
         bind_conns_per_server = 2\n\
         connect_race_delay = \"off\"\n\
         failback_hold_down = \"250ms\"\n\
         probe_backoff_min = \"20ms\"\n\
         probe_backoff_max = \"400ms\"\n\
         connect_timeout = \"1s 500ms\"\n\
         op_timeout = \"2.5s\"\n",
    );
    let c = c.unwrap();
    let d = p.parent().unwrap();
    assert_eq!(
        c.servers(),
        [("ldap://b", true), ("ldap://a", false), ("ldap://c", false)]
    );
    assert_eq!(c.base(), Some("dc=example,dc=com"));
    assert_eq!(c.bind_dn(), Some("cn=admin,dc=example,dc=com"));
    assert_eq!(c.password.as_ref().unwrap().expose(), SECRET);
    assert_eq!(c.ca_file(), Some(&d.join("ca.pem")));
    let cfg = c.config();
    assert!(!cfg.tls_system_roots);
    assert!(cfg.starttls);
    assert_eq!(cfg.max_users_per_conn, 8);
    assert_eq!(cfg.max_conns_per_server, 3);
    assert_eq!(cfg.spread_users_per_conn, 2);
    assert_eq!(cfg.spread_conns_per_server, 5);
    assert_eq!(cfg.bind_conns_per_server, 2);
    assert_eq!(cfg.connect_race_delay, None, "\"off\" turns racing off");
    assert_eq!(cfg.failback_hold_down, Duration::from_millis(250));
    assert_eq!(cfg.probe_backoff_min, Duration::from_millis(20));
    assert_eq!(cfg.probe_backoff_max, Duration::from_millis(400));
    assert_eq!(cfg.connect_timeout, Duration::from_millis(1500));
    assert_eq!(cfg.op_timeout, Duration::from_millis(2500));
    let b = c.builder();
    assert_eq!(b.config().probe_backoff_max, Duration::from_millis(400));
    for shown in [format!("{c:?}"), format!("{b:?}")] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("cn=admin"), "{shown}");
    }
}

#[test]
fn toml_includes_ldap_conf_and_overrides_it() {
    let d = dir();
    write(&d, "pw", &format!("{SECRET}\r\n"));
    write(
        &d,
        "ldap.conf",
        "URI ldap://x ldap://y\nBASE dc=x\nBINDDN cn=from-conf\nTIMEOUT 9\n",
    );
    let p = write(
        &d,
        "ldapmux.toml",
        "ldap_conf = \"ldap.conf\"\npreferred = [\"LDAP://Y\"]\nbind_password_file = \"pw\"\ntimeout_is_not_here = 1\n",
    );
    let e = ConfigFile::read_toml(&p).unwrap_err();
    assert_at(&e, &p, 4, "timeout_is_not_here");
    let p = write(
        &d,
        "ldapmux.toml",
        "ldap_conf = \"ldap.conf\"\npreferred = [\"LDAP://Y\"]\nbind_password_file = \"pw\"\nop_timeout = \"100ms\"\nprobe_backoff_max = \"5s\"\n",
    );
    let c = ConfigFile::read_toml(&p).unwrap();
    assert_eq!(c.servers(), [("LDAP://Y", true), ("ldap://x", false)]);
    assert_eq!(c.base(), Some("dc=x"));
    assert_eq!(c.bind_dn(), Some("cn=from-conf"));
    // One trailing CRLF/LF is trimmed, nothing else.
    assert_eq!(c.password.as_ref().unwrap().expose(), SECRET);
    assert_eq!(c.config().op_timeout, Duration::from_millis(100));
    assert_eq!(c.files(), [d.join("ldap.conf"), p.clone()]);
    // The missing bound keeps its default.
    let b = c.builder();
    assert_eq!(
        (b.config().probe_backoff_min, b.config().probe_backoff_max),
        (Duration::from_secs(1), Duration::from_secs(5))
    );
    c.builder().settings().unwrap();
}

#[test]
fn toml_errors_name_file_line_and_key() {
    let cases: &[(&str, usize, &str)] = &[
        ("uri = [\"ldap://a\"]\nbogus = 1\n", 2, "bogus"),
        (
            "uri = [\"ldap://a\"]\nbind_password = \"x\"\n",
            2,
            "bind_password",
        ),
        (
            "uri = [\"ldap://a\"]\nmax_users_per_conn = \"many\"\n",
            2,
            "max_users_per_conn",
        ),
        (
            "uri = [\"ldap://a\"]\n\nmax_conns_per_server = 0\n",
            3,
            "max_conns_per_server",
        ),
        (
            "uri = [\"ldap://a\"]\nmax_conns_per_server = 99999999999\n",
            2,
            "max_conns_per_server",
        ),
        (
            "uri = [\"ldap://a\"]\nop_timeout = \"-5\"\n",
            2,
            "op_timeout",
        ),
        (
            "uri = [\"ldap://a\"]\nconnect_timeout = \"0s\"\n",
            2,
            "connect_timeout",
        ),
        ("uri = [\n  \"ldap://a\",\n  \"ftp://b\",\n]\n", 1, "uri"),
        ("uri = []\n", 1, "uri"),
        ("uri = [\"ldap://a\"]\nbind_dn = \"\"\n", 2, "bind_dn"),
        (
            "uri = [\"ldap://a\"]\nprobe_backoff_min = \"500ms\"\nprobe_backoff_max = \"10ms\"\n",
            3,
            "probe_backoff_max",
        ),
        ("uri = [\"ldap://a\"]\nbind_dn = \"cn=a\"\n", 2, "bind_dn"),
        (
            "uri = [\"ldap://a\"]\nbind_password_file = \"pw\"\n",
            2,
            "bind_password_file",
        ),
        (
            "uri = [\"ldap://a\"]\nbind_dn = \"cn=a\"\nbind_password_file = \"nope\"\n",
            3,
            "bind_password_file",
        ),
    ];
    for (text, line, key) in cases {
        let (p, r) = toml_file(text);
        assert_at(&r.unwrap_err(), &p, *line, key);
    }
    let (p, r) = toml_file("uri = [\"ldap://a\"\n");
    match r.unwrap_err() {
        ConfigFileError::Syntax { path, line, .. }
        | ConfigFileError::BadValue { path, line, .. } => {
            assert_eq!(path, p);
            assert_eq!(line, 1);
        }
        other => panic!("{other:?}"),
    }
    let (p, r) = toml_file("ldap_conf = \"absent.conf\"\n");
    match r.unwrap_err() {
        ConfigFileError::Read { path, .. } => {
            assert_eq!(path, p.parent().unwrap().join("absent.conf"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn password_file_empty_unreadable_or_not_utf8() {
    let d = dir();
    let toml = "uri = [\"ldap://a\"]\nbind_dn = \"cn=a\"\nbind_password_file = \"pw\"\n";
    for (content, reason) in [
        (b"\n".as_slice(), "empty"),
        (b"".as_slice(), "empty"),
        (b"\xff\xfe-pw-Zebra-Quokka-4711".as_slice(), "not UTF-8"),
    ] {
        std::fs::write(d.join("pw"), content).unwrap();
        let p = write(&d, "ldapmux.toml", toml);
        let e = ConfigFile::read_toml(&p).unwrap_err();
        assert_at(&e, &p, 3, "bind_password_file");
        assert!(matches!(e, ConfigFileError::PasswordFile { .. }));
        assert!(e.to_string().contains(reason), "{e}");
        assert!(
            e.to_string().contains(&d.join("pw").display().to_string()),
            "{e}"
        );
    }
    // Only one trailing newline is removed.
    std::fs::write(d.join("pw"), format!("{SECRET}\n\n")).unwrap();
    let c = ConfigFile::read_toml(write(&d, "ldapmux.toml", toml)).unwrap();
    assert_eq!(c.password.unwrap().expose(), format!("{SECRET}\n"));
}

#[test]
fn env_map_ldapconf_then_ldapuri() {
    let d = dir();
    let conf = write(&d, "ldap.conf", "URI ldap://from-conf\nBASE dc=env\n");
    let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let c = ConfigFile::from_env_map(&env(&[("LDAPCONF", conf.to_str().unwrap())])).unwrap();
    assert_eq!(c.servers(), [("ldap://from-conf", false)]);
    let c = ConfigFile::from_env_map(&env(&[
        ("LDAPCONF", conf.to_str().unwrap()),
        ("LDAPURI", "ldap://u1 ldap://u2"),
    ]))
    .unwrap();
    assert_eq!(c.servers(), [("ldap://u1", false), ("ldap://u2", false)]);
    assert_eq!(c.base(), Some("dc=env"));
    let c = ConfigFile::from_env_map(&env(&[("LDAPURI", "ldap://only")])).unwrap();
    assert_eq!(c.servers(), [("ldap://only", false)]);
    for (vars, var) in [
        (env(&[]), "LDAPCONF"),
        (env(&[("LDAPURI", "  ")]), "LDAPCONF"),
        (env(&[("LDAPURI", "http://x")]), "LDAPURI"),
    ] {
        match ConfigFile::from_env_map(&vars).unwrap_err() {
            ConfigFileError::Env { var: v, .. } => assert_eq!(v, var),
            other => panic!("{other:?}"),
        }
    }
    let e = ConfigFile::from_env_map(&env(&[("LDAPCONF", "/nonexistent/ldap.conf")])).unwrap_err();
    assert!(matches!(e, ConfigFileError::Read { .. }), "{e}");
}
#[test]
fn dns_srv_keys_replace_the_uri_and_are_checked() {
    let d = dir();
    write(&d, "ldap.conf", "URI ldap://127.0.0.1:1\n");
    let p = write(
        &d,
        "ldapmux.toml",
        "ldap_conf = \"ldap.conf\"\ndns_srv = \"example.test\"\n\
         dns_srv_service = \"LDAPS\"\ndns_server = \"127.0.0.1:5353\"\n",
    );
    let cfg = ConfigFile::read_toml(&p).unwrap();
    assert_eq!(cfg.dns_srv(), Some("example.test"));
    assert!(cfg.servers().is_empty(), "DNS replaces URI");
    #[cfg(feature = "dns-srv")]
    {
        assert!(cfg.builder().uses_dns_srv());
        assert!(
            !ConfigFile::read_ldap_conf(d.join("ldap.conf"))
                .unwrap()
                .builder()
                .uses_dns_srv()
        );
    }
    #[cfg(not(feature = "dns-srv"))]
    {
        let err = cfg.builder().build().unwrap_err().to_string();
        assert!(
            err.contains("dns_srv") && err.contains("`dns-srv` feature"),
            "{err}"
        );
    }

    let (p, r) = toml_file("uri = [\"ldap://a\"]\ndns_srv = \"example.test\"\n");
    assert_at(&r.unwrap_err(), &p, 2, "dns_srv");
    let (p, r) = toml_file("dns_srv = \"example.test\"\ndns_srv_service = \"http\"\n");
    assert_at(&r.unwrap_err(), &p, 2, "dns_srv_service");
    let (p, r) = toml_file("dns_srv = \"example.test\"\ndns_server = \"localhost\"\n");
    assert_at(&r.unwrap_err(), &p, 2, "dns_server");
    let (p, r) = toml_file("uri = [\"ldap://a\"]\ndns_server = \"127.0.0.1:53\"\n");
    assert_at(&r.unwrap_err(), &p, 2, "dns_server");
    let (p, r) = toml_file("dns_srv = \" \"\n");
    assert_at(&r.unwrap_err(), &p, 1, "dns_srv");
}

#[test]
fn ldap_conf_values_are_judged_by_the_one_check_and_mapped_to_their_line() {
    // NETWORK_TIMEOUT 0 reaches PoolConfig::check as `connect_timeout = "0s"`;
    // its error comes back at the ldap.conf line that gave it.
    let d = dir();
    let p = write(&d, "ldap.conf", "URI ldap://a\n# c\nNETWORK_TIMEOUT 0\n");
    let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
    assert_at(&e, &p, 3, "NETWORK_TIMEOUT");
    assert!(
        e.to_string().contains("connect_timeout must be positive"),
        "{e}"
    );
}

#[test]
fn apply_replaces_only_the_keys_the_file_gives() {
    let (_, c) = toml_file("uri = [\"ldap://file\"]\nop_timeout = \"3s\"\n");
    let b = c.unwrap().apply(
        PoolBuilder::new()
            .server("ldap://builder")
            .max_users_per_connection(7)
            .operation_timeout(Duration::from_secs(9)),
    );
    assert_eq!(b.config().servers(), [("ldap://file", false)]);
    assert_eq!(b.config().op_timeout, Duration::from_secs(3));
    assert_eq!(b.config().max_users_per_conn, 7, "not in the file: kept");
}

#[test]
fn toml_durations_are_human_and_off_turns_a_setting_off() {
    let (_, c) = toml_file(
        "uri = [\"ldap://a\"]\nread_idle_timeout = \"never\"\nmax_conn_age = \"1h\"\n\
         metrics_interval = \"off\"\nwrite_idle_timeout = \"1m 30s\"\n",
    );
    let c = c.unwrap();
    let cfg = c.config();
    assert_eq!(cfg.read_idle_timeout, None);
    assert_eq!(cfg.max_conn_age, Some(Duration::from_secs(3600)));
    assert_eq!(cfg.metrics_interval, None);
    assert_eq!(cfg.write_idle_timeout, Duration::from_secs(90));
    let (p, r) = toml_file("uri = [\"ldap://a\"]\nop_timeout = 30\n");
    let e = r.unwrap_err();
    assert_at(&e, &p, 2, "op_timeout");
}

#[test]
fn page_size_is_a_count_or_off_in_both_files_and_zero_is_refused_at_its_line() {
    let c = conf("URI ldap://a\n").unwrap();
    assert_eq!(c.config().page_size, Some(500), "the default pages");
    let c = conf("URI ldap://a\nPAGESIZE 1000\n").unwrap();
    assert_eq!(c.config().page_size, Some(1000));
    let c = conf("URI ldap://a\npagesize OFF\n").unwrap();
    assert_eq!(c.config().page_size, None);
    let (_, c) = toml_file("uri = [\"ldap://a\"]\npage_size = 250\n");
    assert_eq!(c.unwrap().config().page_size, Some(250));
    let (_, c) = toml_file("uri = [\"ldap://a\"]\npage_size = \"off\"\n");
    assert_eq!(c.unwrap().config().page_size, None);

    let d = dir();
    let p = write(&d, "ldap.conf", "URI ldap://a\nPAGESIZE 0\n");
    let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
    assert_at(&e, &p, 2, "PAGESIZE");
    assert!(e.to_string().contains("page_size"), "{e}");
    for bad in ["PAGESIZE many\n", "PAGESIZE -3\n"] {
        let p = write(&d, "ldap.conf", bad);
        let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
        assert_at(&e, &p, 1, "PAGESIZE");
    }
    for bad in [
        "page_size = 0\n",
        "page_size = -1\n",
        "page_size = \"lots\"\n",
        "page_size = 3000000000\n",
    ] {
        let (p, r) = toml_file(&format!("uri = [\"ldap://a\"]\n{bad}"));
        let e = r.unwrap_err();
        assert_at(&e, &p, 2, "page_size");
    }
}

#[test]
fn ldap_conf_sasl_external_with_a_client_certificate() {
    let d = dir();
    let (cert, key) = crate::tls::tests::self_signed("svc");
    write(&d, "c.pem", &cert);
    write(&d, "k.pem", &key);
    let text = format!(
        "URI ldaps://a\nSASL_MECH external\nTLS_CERT {c}\nTLS_KEY {k}\n",
        c = d.join("c.pem").display(),
        k = d.join("k.pem").display()
    );
    let p = write(&d, "ldap.conf", &text);
    let c = ConfigFile::read_ldap_conf(&p).unwrap();
    assert_eq!(c.config().sasl_mech, Some(crate::SaslMech::External));
    assert_eq!(
        c.config().tls_key_file.as_deref(),
        Some(d.join("k.pem").as_path())
    );
    let cred = c.builder().credential_checked().unwrap();
    assert!(matches!(
        cred,
        crate::Credential::SaslExternal {
            client_cert: Some(_)
        }
    ));
    // A key file that is not there: named with the file, line and key.
    let text = text.replace("k.pem", "gone.pem");
    let p = write(&d, "ldap.conf", &text);
    let e = ConfigFile::read_ldap_conf(&p).unwrap_err();
    assert_at(&e, &p, 4, "TLS_KEY");
    assert!(e.to_string().contains("gone.pem"), "{e}");
    // A simple-bind builder takes the file's SASL credential whole.
    let p = write(
        &d,
        "ldap.conf",
        "URI ldapi://%2Ftmp%2Fs\nSASL_MECH EXTERNAL\n",
    );
    let b = crate::PoolBuilder::new().credential(crate::Credential::simple("cn=x", "pw"));
    let b = ConfigFile::read_ldap_conf(&p).unwrap().apply(b);
    assert_eq!(b.config().bind_dn, None);
    assert!(matches!(
        b.credential_checked().unwrap(),
        crate::Credential::SaslExternal { client_cert: None }
    ));
}

#[test]
fn ldap_conf_sasl_mech_gssapi_needs_the_feature() {
    let d = dir();
    let p = write(
        &d,
        "ldap.conf",
        "URI ldap://kdc.example\nSASL_MECH GSSAPI\n",
    );
    let read = ConfigFile::read_ldap_conf(&p);
    if cfg!(feature = "gssapi") {
        let c = read.unwrap();
        assert_eq!(c.config().sasl_mech, Some(crate::SaslMech::Gssapi));
    } else {
        let e = read.unwrap_err();
        assert_at(&e, &p, 2, "SASL_MECH");
        assert!(e.to_string().contains("`gssapi` feature"), "{e}");
    }
}
