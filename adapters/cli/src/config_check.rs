//! `ldapmux check --config FILE`: what a pool built from a configuration
//! would do — servers in the order it uses them, TLS per server, the bind
//! DN, the timeouts and caps in effect — then every server probed with that
//! very configuration (one pool, one handle pinned to each server).

use std::time::{Duration, Instant};

use ldapmux::{BuildError, ConfigFile, Pool, PoolBuilder, ServerUrl};

use crate::check::{self, ServerReport, TlsState};
use crate::config_source::ConfigSource;
use crate::settings::Settings;

/// What turns certificate verification off in a configuration file.
pub const REQCERT_NEVER: &str = "TLS_REQCERT never";

/// TLS for one configured server, as the pool will use it.
pub fn tls_of(url: &str, settings: &Settings) -> (TlsState, bool) {
    match ServerUrl::parse(url) {
        Ok(u) => TlsState::of(u.scheme(), settings.starttls, settings.tls_verify),
        // build() refuses it; say so rather than guess.
        Err(_) => (TlsState::Off, false),
    }
}

/// One server's TLS as the plan reads, e.g. `on (StartTLS), certificate
/// verified against the CA file /etc/ca.pem and the system roots`.
pub fn describe_tls(url: &str, settings: &Settings) -> String {
    let (tls, starttls) = tls_of(url, settings);
    match tls {
        TlsState::Verified => format!(
            "{} against {}",
            tls.describe(starttls, None, REQCERT_NEVER),
            settings.trust()
        ),
        _ => tls.describe(starttls, None, REQCERT_NEVER),
    }
}

/// The plan: what the pool would do with `cfg`. Never shows a password.
pub fn plan(source: &ConfigSource, cfg: &ConfigFile) -> Vec<String> {
    let settings = Settings::of(&cfg.builder());
    let mut lines = vec![format!("configuration: {source}")];
    if !cfg.files().is_empty() {
        let files: Vec<String> = cfg
            .files()
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        lines.push(format!("files read, in order: {}", files.join(", ")));
    }
    if let Some(domain) = cfg.dns_srv() {
        let asked = match cfg.dns_server() {
            Some(addr) => format!("name server {addr}"),
            None => "the system's name servers".to_owned(),
        };
        lines.push(format!(
            "servers: from the DNS SRV records of {}.{domain} ({asked}), \
             in RFC 2782 order, looked up below",
            cfg.dns_srv_service().label()
        ));
    } else {
        lines.push("servers, in the order the pool uses them:".to_owned());
    }
    let servers = cfg.servers();
    let width = servers.iter().map(|(u, _)| u.len()).max().unwrap_or(0);
    for (i, (url, preferred)) in servers.iter().enumerate() {
        lines.push(format!(
            "  {}. {url:<width$}  {:<9}  TLS {}",
            i + 1,
            if *preferred { "preferred" } else { "" },
            describe_tls(url, &settings)
        ));
    }
    lines.push(match (sasl_bind(cfg.config()), cfg.bind_dn()) {
        (Some(sasl), _) => format!("bind: SASL {sasl}"),
        (None, Some(dn)) => {
            format!("bind: simple bind as {dn} (password read from its file, not shown)")
        }
        (None, None) => "bind: anonymous".to_owned(),
    });
    if let Some(base) = cfg.base() {
        lines.push(format!("base: {base}"));
    }
    lines.extend(settings.lines());
    lines
}

/// The SASL bind a configuration asks for, in words (`None`: simple or
/// anonymous). Names the files, never the key's content.
pub fn sasl_bind(config: &ldapmux::PoolConfig) -> Option<String> {
    let mech = config.sasl_mech?;
    Some(match (mech, &config.tls_cert_file, &config.tls_key_file) {
        (ldapmux::SaslMech::External, Some(cert), Some(key)) => sasl_external(Some((cert, key))),
        (ldapmux::SaslMech::External, _, _) => sasl_external(None),
        (ldapmux::SaslMech::Gssapi, _, _) => format!(
            "GSSAPI as {} (the Kerberos credentials of the environment: \
             KRB5_CLIENT_KTNAME or KRB5CCNAME)",
            config
                .gssapi_principal
                .as_deref()
                .unwrap_or("the default principal")
        ),
        (other, _, _) => other.to_string(),
    })
}

/// A SASL EXTERNAL bind in words: with the client certificate and key
/// files `(cert, key)` (named, the key never shown), or with the Unix peer
/// credentials.
pub fn sasl_external(files: Option<(&std::path::Path, &std::path::Path)>) -> String {
    match files {
        Some((cert, key)) => format!(
            "EXTERNAL with the client certificate {} (key {}, not shown)",
            cert.display(),
            key.display()
        ),
        None => "EXTERNAL with the Unix peer credentials (ldapi://)".to_owned(),
    }
}

/// Builds the pool `builder` describes, looking its servers up in DNS
/// first when it follows DNS SRV.
pub async fn build_pool(builder: PoolBuilder) -> Result<Pool, BuildError> {
    match builder.into_dns_srv() {
        Ok(srv) => srv.build().await,
        Err(listed) => listed.build(),
    }
}

/// The DNS SRV answer a discovered pool uses, one line per record in the
/// order the pool uses them (empty for fixed servers).
pub fn discovered_lines(pool: &Pool) -> Vec<String> {
    let Some(st) = pool.dns_srv_status() else {
        return Vec::new();
    };
    let mut lines = vec![format!("DNS SRV answer for {}:", st.name)];
    for r in &st.records {
        lines.push(format!(
            "  priority {:>5}  weight {:>5}  {}:{}",
            r.priority, r.weight, r.target, r.port
        ));
    }
    lines.push(format!(
        "servers, in the order the pool uses them: {}",
        st.servers.join(", ")
    ));
    lines
}

/// Builds the pool `cfg` describes and probes each of its servers in order
/// (root DSE, whoami), each bounded by `timeout`. A configuration the
/// builder refuses is an error (nothing is probed); so is a DNS SRV lookup
/// that finds no server ([`BuildError::Discovery`]). Returns the DNS
/// answer's lines ([`discovered_lines`]) and the reports.
pub async fn probe_servers(
    cfg: &ConfigFile,
    timeout: Duration,
) -> Result<(Vec<String>, Vec<ServerReport>), BuildError> {
    let builder = cfg.builder();
    let settings = Settings::of(&builder);
    let pool: Pool = build_pool(builder).await?;
    let discovered = discovered_lines(&pool);
    let servers: Vec<String> = match pool.dns_srv_status() {
        Some(st) => st.servers,
        None => cfg
            .servers()
            .into_iter()
            .map(|(u, _)| u.to_owned())
            .collect(),
    };
    let mut reports = Vec::new();
    for url in &servers {
        let url = url.as_str();
        let started = Instant::now();
        let mut report = check::blank_report(url, cfg.bind_dn().map(str::to_owned));
        report.sasl = sasl_bind(cfg.config());
        (report.tls, report.starttls) = tls_of(url, &settings);
        report.unverified_by = REQCERT_NEVER;
        check::probe(&pool.with_server(url).with_timeout(timeout), &mut report).await;
        report.took = started.elapsed();
        reports.push(report);
    }
    pool.shutdown().await;
    Ok((discovered, reports))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn the_plan_lists_preferred_servers_first_and_never_the_password() {
        let dir = std::env::temp_dir().join(format!("ldapmux-cli-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "pw", "plan-secret-pw\n");
        write(&dir, "ca.pem", "");
        let toml = write(
            &dir,
            "pool.toml",
            r#"
uri = ["ldap://b.example:389", "ldaps://a.example"]
preferred = ["ldaps://a.example"]
bind_dn = "cn=reader,dc=example,dc=com"
bind_password_file = "pw"
tls_ca_file = "ca.pem"
starttls = true
connect_timeout = "1500ms"
max_conns_per_server = 4
"#,
        );
        let source = ConfigSource::file(&toml);
        let cfg = source.load().unwrap();
        let text = plan(&source, &cfg).join("\n");
        let a = text.find("1. ldaps://a.example").expect(&text);
        let b = text.find("2. ldap://b.example:389").expect(&text);
        assert!(a < b, "{text}");
        assert!(
            text.contains("preferred  TLS on (ldaps), certificate verified against the CA file"),
            "{text}"
        );
        assert!(
            text.contains("TLS on (StartTLS), certificate verified"),
            "{text}"
        );
        assert!(
            text.contains("simple bind as cn=reader,dc=example,dc=com"),
            "{text}"
        );
        assert!(text.contains("connect 1.5s"), "{text}");
        assert!(text.contains("4 connections per server"), "{text}");
        assert!(!text.contains("plan-secret-pw"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reqcert_never_reads_as_unverified() {
        let dir = std::env::temp_dir().join(format!("ldapmux-cli-plan2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = write(
            &dir,
            "ldap.conf",
            "URI ldaps://a.example\nTLS_REQCERT never\n",
        );
        let source = ConfigSource::file(&conf);
        let text = plan(&source, &source.load().unwrap()).join("\n");
        assert!(
            text.contains("certificate NOT verified (TLS_REQCERT never)"),
            "{text}"
        );
        assert!(text.contains("bind: anonymous"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
