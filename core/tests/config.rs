//! Configuration checks: every way a configuration can be wrong gets its own typed
//! error, found before a pool exists, and the edges of each limit are accepted.

use std::time::Duration;

use ldapmux_core::{Config, ConfigError, Instant, Pool, ServerConfig, Sharing};

fn one_server() -> ldapmux_core::ConfigBuilder {
    Config::builder().server("ldap://a")
}

#[test]
fn a_configuration_without_servers_is_refused() {
    assert_eq!(Config::builder().build(), Err(ConfigError::NoServers));
}

#[test]
fn an_empty_or_blank_address_is_refused_with_its_position() {
    assert_eq!(
        one_server().server("   ").build(),
        Err(ConfigError::EmptyServerAddress { index: 1 })
    );
    assert_eq!(
        Config::builder().server("").build(),
        Err(ConfigError::EmptyServerAddress { index: 0 })
    );
}

#[test]
fn a_server_listed_twice_is_refused_whatever_its_case() {
    assert_eq!(
        one_server().server("ldap://b").server("LDAP://A").build(),
        Err(ConfigError::DuplicateServer {
            addr: "LDAP://A".into()
        })
    );
    // Preferred and plain entries share one list.
    assert_eq!(
        one_server().preferred_server("ldap://a").build(),
        Err(ConfigError::DuplicateServer {
            addr: "ldap://a".into()
        })
    );
}

#[test]
fn sixty_five_thousand_five_hundred_and_thirty_five_servers_fit_one_more_does_not() {
    let mut config = Config::default();
    config.servers = (0..u16::MAX)
        .map(|i| ServerConfig {
            addr: format!("ldap://s{i}"),
            preference: None,
        })
        .collect();
    assert_eq!(config.validate(), Ok(()), "u16::MAX servers are allowed");
    config.servers.push(ServerConfig {
        addr: "ldap://one-too-many".into(),
        preference: None,
    });
    assert_eq!(config.validate(), Err(ConfigError::TooManyServers));
}

#[test]
fn limits_must_be_at_least_one_and_one_is_enough() {
    assert_eq!(
        one_server().max_users_per_conn(0).build(),
        Err(ConfigError::ZeroLimit {
            field: "max_users_per_conn"
        })
    );
    assert_eq!(
        one_server().max_conns_per_server(0).build(),
        Err(ConfigError::ZeroLimit {
            field: "max_conns_per_server"
        })
    );
    let config = one_server()
        .max_users_per_conn(1)
        .max_conns_per_server(1)
        .build()
        .expect("1 is a valid limit");
    assert_eq!(
        (config.max_users_per_conn, config.max_conns_per_server),
        (1, 1)
    );
}

#[test]
fn durations_that_must_be_positive_are_named_when_zero() {
    let zero = Duration::ZERO;
    assert_eq!(
        one_server().connect_timeout(zero).build(),
        Err(ConfigError::ZeroDuration {
            field: "connect_timeout"
        })
    );
    assert_eq!(
        one_server()
            .probe_backoff(zero, Duration::from_secs(1))
            .build(),
        Err(ConfigError::ZeroDuration {
            field: "probe_backoff_min"
        })
    );
    assert_eq!(
        one_server().default_acquire_timeout(zero).build(),
        Err(ConfigError::ZeroDuration {
            field: "default_acquire_timeout"
        })
    );
    // One nanosecond is positive.
    let tiny = Duration::from_nanos(1);
    assert!(
        one_server()
            .connect_timeout(tiny)
            .probe_backoff(tiny, tiny)
            .default_acquire_timeout(tiny)
            .build()
            .is_ok()
    );
}

#[test]
fn the_backoff_ceiling_may_equal_the_floor_but_not_sit_below_it() {
    let s = Duration::from_secs(1);
    assert!(one_server().probe_backoff(s, s).build().is_ok());
    assert_eq!(
        one_server()
            .probe_backoff(s, s - Duration::from_nanos(1))
            .build(),
        Err(ConfigError::BackoffRange)
    );
}

#[test]
fn the_builder_sets_every_field_it_names() {
    let d = |s| Duration::from_secs(s);
    let config = one_server()
        .preferred_server("ldap://p")
        .sharing(Sharing::OnRequest)
        .connect_timeout(d(2))
        .write_idle_timeout(d(3))
        .read_idle_timeout(Some(d(4)))
        .max_conn_age(Some(d(5)))
        .failback_hold_down(d(6))
        .probe_backoff(d(7), d(8))
        .default_acquire_timeout(d(9))
        .build()
        .unwrap();
    assert_eq!(
        config.servers,
        vec![
            ServerConfig {
                addr: "ldap://a".into(),
                preference: None
            },
            ServerConfig {
                addr: "ldap://p".into(),
                preference: Some(0)
            },
        ]
    );
    assert_eq!(config.sharing, Sharing::OnRequest);
    assert_eq!(config.connect_timeout, d(2));
    assert_eq!(config.write_idle_timeout, d(3));
    assert_eq!(config.read_idle_timeout, Some(d(4)));
    assert_eq!(config.max_conn_age, Some(d(5)));
    assert_eq!(config.failback_hold_down, d(6));
    assert_eq!(
        (config.probe_backoff_min, config.probe_backoff_max),
        (d(7), d(8))
    );
    assert_eq!(config.default_acquire_timeout, d(9));
}

#[test]
fn a_pool_is_never_built_from_a_bad_configuration() {
    let mut config = Config::default();
    config.max_users_per_conn = 0;
    config.servers.push(ServerConfig {
        addr: "ldap://a".into(),
        preference: None,
    });
    assert!(Pool::new(config, 1, Instant::ZERO).is_err());
}

#[test]
fn the_settings_alone_are_checked_before_any_server_is_known() {
    // An adapter that finds its servers in DNS checks the rest first: no
    // placeholder server needed, and a bad limit is still found.
    let mut c = Config::default();
    assert_eq!(c.validate_settings(), Ok(()));
    assert_eq!(c.validate(), Err(ConfigError::NoServers));
    c.max_conns_per_server = 0;
    assert_eq!(
        c.validate_settings(),
        Err(ConfigError::ZeroLimit {
            field: "max_conns_per_server"
        })
    );
    c.max_conns_per_server = 1;
    c.probe_backoff_max = Duration::ZERO;
    assert_eq!(c.validate_settings(), Err(ConfigError::BackoffRange));
}
