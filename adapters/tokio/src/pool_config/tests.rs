//! `PoolConfig` as a value: its defaults are the core's, it survives a trip
//! through TOML unchanged, and `check` judges every value in one place.

// Written as a user outside the crate must (the type is #[non_exhaustive]).
#![allow(clippy::field_reassign_with_default)]

use std::time::Duration;

use super::*;
use crate::BuildError;

#[test]
fn the_defaults_are_the_cores_and_the_documented_ones() {
    let c = PoolConfig::default();
    let core = Config::default();
    assert_eq!(c.core_settings(), core);
    assert_eq!(c.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.op_timeout, Duration::from_secs(30));
    assert_eq!(c.read_idle_timeout, Some(Duration::from_secs(300)));
    assert!(c.tls_verify && c.tls_system_roots && !c.starttls && c.multiplexing);
    assert_eq!(c.bind_dn, None, "anonymous unless a bind DN is given");
}

#[test]
fn every_value_survives_a_round_trip_through_toml() {
    let mut c = PoolConfig::default();
    c.preferred = vec!["ldap://a:389".into()];
    c.uri = vec!["ldaps://b".into()];
    c.read_idle_timeout = None;
    c.connect_race_delay = None;
    c.max_conn_age = Some(Duration::from_millis(2500));
    c.sharing = Sharing::OnRequest;
    c.dns_srv_service = Some(SrvService::Ldaps);
    c.metrics_credential_labels
        .insert("cn=svc,dc=x".into(), "svc".into());
    c.jitter_seed = Some(7);
    let text = toml::to_string(&c).unwrap();
    let back: PoolConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, c, "{text}");
    assert!(text.contains("read_idle_timeout = \"off\""), "{text}");
    assert!(text.contains("max_conn_age = \"2s 500ms\""), "{text}");
}

#[test]
fn unknown_keys_and_bad_durations_are_refused_by_name() {
    let e = toml::from_str::<PoolConfig>("op_timeout_ms = 5\n").unwrap_err();
    assert!(e.message().contains("unknown field `op_timeout_ms`"), "{e}");
    let e = toml::from_str::<PoolConfig>("op_timeout = \"soon\"\n").unwrap_err();
    assert!(e.message().contains("\"5s\""), "{e}");
}

#[test]
fn check_names_the_field_of_each_bad_value() {
    let field = |edit: &dyn Fn(&mut PoolConfig)| {
        let mut c = PoolConfig::default();
        edit(&mut c);
        c.check().err().and_then(|e| e.field())
    };
    assert_eq!(field(&|_| {}), None, "no server is not judged by check");
    assert_eq!(
        field(&|c| c.op_timeout = Duration::ZERO),
        Some("op_timeout")
    );
    assert_eq!(
        field(&|c| c.max_users_per_conn = 0),
        Some("max_users_per_conn")
    );
    assert_eq!(
        field(&|c| c.probe_backoff_max = Duration::from_millis(1)),
        Some("probe_backoff_max")
    );
    assert_eq!(field(&|c| c.uri = vec!["ftp://x".into()]), Some("uri"));
    assert_eq!(
        field(&|c| c.uri = vec!["ldap://a".into(), "LDAP://A".into()]),
        Some("uri")
    );
    assert_eq!(
        field(&|c| c.dns_server = Some("127.0.0.1:53".parse().unwrap())),
        Some("dns_server")
    );
    assert_eq!(
        field(&|c| {
            c.dns_srv = Some("example.test".into());
            c.uri = vec!["ldap://a".into()];
        }),
        Some("dns_srv")
    );
    assert_eq!(
        field(&|c| c.metrics_interval = Some(Duration::ZERO)),
        Some("metrics_interval")
    );
    assert_eq!(field(&|c| c.bind_dn = Some(" ".into())), Some("bind_dn"));
    assert_eq!(
        field(&|c| {
            c.uri = vec!["ldaps://a".into()];
            c.tls_system_roots = false;
        }),
        Some("tls_system_roots")
    );
    // And a configuration that passes check is one checked() accepts
    // once it has a server.
    let mut c = PoolConfig::default();
    c.uri = vec!["ldap://a".into()];
    assert!(c.checked().is_ok());
    assert!(matches!(
        PoolConfig::default().checked().err(),
        Some(BuildError::Core(ldapmux_core::ConfigError::NoServers))
    ));
}

#[test]
fn a_password_in_a_url_never_shows_in_debug() {
    let mut c = PoolConfig::default();
    c.uri = vec!["ldap://user:hunter2-secret@a".into()];
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2-secret"), "{shown}");
    assert!(shown.contains("op_timeout"), "{shown}");
}

#[test]
fn sasl_keys_go_together() {
    let field = |text: &str| {
        let c: PoolConfig = toml::from_str(text).unwrap();
        c.check().err().and_then(|e| e.field())
    };
    let ok = "sasl_mech = \"EXTERNAL\"\ntls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\n";
    assert_eq!(field(ok), None);
    assert_eq!(
        field("sasl_mech = \"EXTERNAL\"\n"),
        None,
        "ldapi peer credentials"
    );
    assert_eq!(
        field("sasl_mech = \"EXTERNAL\"\nbind_dn = \"cn=x\"\n"),
        Some("bind_dn")
    );
    assert_eq!(
        field("sasl_mech = \"EXTERNAL\"\nbind_password_file = \"/pw\"\n"),
        Some("bind_password_file")
    );
    assert_eq!(
        field("sasl_mech = \"EXTERNAL\"\ntls_cert_file = \"/c.pem\"\n"),
        Some("tls_cert_file")
    );
    assert_eq!(field("tls_key_file = \"/k.pem\"\n"), Some("tls_key_file"));
    assert_eq!(
        field("tls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\n"),
        Some("tls_cert_file"),
        "a client certificate without EXTERNAL"
    );
    assert_eq!(
        field("gssapi_principal = \"svc@EXAMPLE.TEST\"\n"),
        Some("gssapi_principal")
    );
    let gssapi = field("sasl_mech = \"GSSAPI\"\n");
    assert_eq!(
        gssapi,
        if cfg!(feature = "gssapi") {
            None
        } else {
            Some("sasl_mech")
        }
    );
    let e = toml::from_str::<PoolConfig>("sasl_mech = \"PLAIN\"\n").unwrap_err();
    assert!(e.message().contains("EXTERNAL"), "{e}");
    let c: PoolConfig = toml::from_str(ok).unwrap();
    let back: PoolConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn the_builder_checks_that_the_servers_carry_the_sasl_credential() {
    let (cert, key) = crate::tls::tests::self_signed("svc");
    let cert = crate::ClientCert::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    let tls = crate::Credential::sasl_external_tls(cert);
    let builder = |url: &str, cred: &crate::Credential| {
        crate::PoolBuilder::new()
            .server(url)
            .credential(cred.clone())
    };
    let reason = |b: crate::PoolBuilder| b.settings().err().map(|e| e.to_string());
    assert_eq!(reason(builder("ldaps://a", &tls)), None);
    assert_eq!(reason(builder("ldap://a", &tls).starttls(true)), None);
    let plain = reason(builder("ldap://a", &tls)).unwrap();
    assert!(
        plain.contains("needs TLS") && plain.contains("ldap://a"),
        "{plain}"
    );
    let peer = crate::Credential::sasl_external_peer();
    assert_eq!(reason(builder("ldapi://%2Ftmp%2Fs", &peer)), None);
    let tcp = reason(builder("ldaps://a", &peer)).unwrap();
    assert!(tcp.contains("ldapi://"), "{tcp}");
    let shown = format!("{:?}", builder("ldaps://a", &tls).config());
    assert!(shown.contains("sasl_mech: \"EXTERNAL\""), "{shown}");
}
