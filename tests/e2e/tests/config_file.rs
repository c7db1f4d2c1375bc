//! Configuration files against a real slapd: an `ldap.conf` + ldapmux TOML +
//! password file build a pool bound as the file's DN; `LDAPCONF` and
//! `LDAPURI` select the file and the servers, as libldap does.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ldapmux::{ConfigFile, PoolBuilder, Scope};
use ldapmux_harness::{ROOT_DN, ROOT_PW, SUFFIX, Slapd};

/// Set in the child process of the real-environment test.
const CHILD: &str = "LDAPMUX_E2E_CONFIG_FILE_CHILD";

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ldapmux-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `ldap.conf` names the server, base and bind DN; the TOML file includes
/// it, adds the password file and short timeouts. WhoAmI answers the DN
/// from the file; the password appears nowhere in `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_from_ldap_conf_and_toml_binds_as_the_files_dn() {
    common::init_tracing();
    let server = common::slapd(5);
    let dir = temp_dir("files");
    write(
        &dir,
        "ldap.conf",
        &format!(
            "# written by the e2e test\n\
             URI {url}\n\
             BASE {SUFFIX}\n\
             binddn {ROOT_DN}\n\
             NETWORK_TIMEOUT 2\n\
             TIMEOUT 10\n\
             TLS_REQCERT demand\n",
            url = server.url()
        ),
    );
    write(&dir, "root.pw", &format!("{ROOT_PW}\n"));
    let toml = write(
        &dir,
        "ldapmux.toml",
        "ldap_conf = \"ldap.conf\"\n\
         bind_password_file = \"root.pw\"\n\
         max_conns_per_server = 4\n\
         probe_backoff_min = \"100ms\"\n\
         probe_backoff_max = \"400ms\"\n\
         failback_hold_down = \"500ms\"\n",
    );

    let cfg = ConfigFile::read_toml(&toml).expect("the TOML file");
    assert_eq!(cfg.base(), Some(SUFFIX));
    assert_eq!(cfg.bind_dn(), Some(ROOT_DN));
    assert!(!format!("{cfg:?}").contains(ROOT_PW));

    let builder = PoolBuilder::from_toml(&toml).expect("the TOML file");
    assert!(!format!("{builder:?}").contains(ROOT_PW));
    let pool = builder.jitter_seed(7).build().expect("pool");
    assert_eq!(
        pool.whoami().await.unwrap().to_lowercase(),
        format!("dn:{}", ROOT_DN.to_lowercase())
    );
    let people = pool
        .search(
            cfg.base().unwrap(),
            Scope::Subtree,
            &format!("(uid={})", Slapd::user_uid(1)),
            &["cn"],
        )
        .await
        .unwrap();
    assert_eq!(people.len(), 1);
    pool.shutdown().await;

    // A wrong password in the file: the parse succeeds, the bind is refused.
    write(&dir, "root.pw", "not-the-root-password\n");
    let pool = PoolBuilder::from_toml(&toml)
        .unwrap()
        .operation_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = pool.whoami().await.unwrap_err();
    assert_eq!(
        err.conn_error_kind(),
        Some(ldapmux::ConnErrorKind::InvalidCredentials),
        "{err}"
    );
    pool.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `LDAPCONF` names the file, `LDAPURI` replaces its `URI` (here a port
/// nothing listens on): the pool reaches slapd through `LDAPURI` only.
/// Given as a map, so that no test changes the process environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldapconf_names_the_file_and_ldapuri_overrides_its_uri() {
    common::init_tracing();
    let server = common::slapd(5);
    let dir = temp_dir("envmap");
    let conf = write(
        &dir,
        "ldap.conf",
        &format!("URI ldap://127.0.0.1:1\nBASE {SUFFIX}\nNETWORK_TIMEOUT 2\n"),
    );
    let env: HashMap<String, String> = [
        ("LDAPCONF".to_owned(), conf.display().to_string()),
        ("LDAPURI".to_owned(), server.url()),
    ]
    .into();
    let cfg = ConfigFile::from_env_map(&env).unwrap();
    let url = server.url();
    assert_eq!(cfg.servers(), [(url.as_str(), false)]);
    assert_eq!(cfg.base(), Some(SUFFIX));
    let pool = cfg.builder().build().unwrap();
    // Anonymous: no BINDDN in the file.
    assert_eq!(pool.whoami().await.unwrap(), "");
    common::search_user(&pool, 2).await.unwrap();
    pool.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `PoolBuilder::from_env()` reads the real process environment. The
/// variables are set only in a child process running this same test, so no
/// other test sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_reads_ldapconf_and_ldapuri_from_the_process_environment() {
    const NAME: &str = "from_env_reads_ldapconf_and_ldapuri_from_the_process_environment";
    if std::env::var_os(CHILD).is_some() {
        let base = std::env::var("LDAPMUX_E2E_EXPECT_BASE").unwrap();
        let cfg = ConfigFile::from_env().expect("LDAPCONF/LDAPURI");
        assert_eq!(cfg.base(), Some(base.as_str()));
        let pool = PoolBuilder::from_env().unwrap().build().unwrap();
        assert_eq!(pool.whoami().await.unwrap(), "");
        common::search_user(&pool, 1).await.unwrap();
        pool.shutdown().await;
        println!("config_file child ok");
        return;
    }
    let server = common::slapd(3);
    let dir = temp_dir("procenv");
    let conf = write(
        &dir,
        "ldap.conf",
        &format!("URI ldap://127.0.0.1:1\nBASE {SUFFIX}\n"),
    );
    let out = tokio::task::spawn_blocking({
        let url = server.url();
        move || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .env("LDAPCONF", &conf)
                .env("LDAPURI", url)
                .env("LDAPMUX_E2E_EXPECT_BASE", SUFFIX)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("config_file child ok"),
        "child failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let _ = std::fs::remove_dir_all(&dir);
}
