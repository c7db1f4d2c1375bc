//! What the core prints: ids, errors and events read the same in every log line,
//! so an operator can follow one connection or server from line to line.

use ldapmux_core::{Config, ConnError, ConnErrorKind, CredKey, Event, Instant, Pool};

#[test]
fn servers_and_credentials_print_as_short_stable_names() {
    let config = Config::builder()
        .server("ldap://a")
        .server("ldap://b")
        .build()
        .unwrap();
    let pool = Pool::new(config, 1, Instant::ZERO).unwrap();
    let s = pool.server_id("ldap://b").unwrap();
    assert_eq!(format!("{s}"), "s1");
    assert_eq!(format!("{s:?}"), "s1");
    assert_eq!(format!("{}", CredKey::ANONYMOUS), "anon");
    assert_eq!(format!("{:?}", CredKey::ANONYMOUS), "anon");
    assert_eq!(format!("{}", CredKey(7)), "k7");
    assert_eq!(format!("{:?}", CredKey(7)), "k7");
}

#[test]
fn a_connection_error_prints_its_kind_then_its_message() {
    let e = ConnError::new(ConnErrorKind::Refused, "connect to 127.0.0.1:9 refused");
    assert_eq!(e.to_string(), "Refused: connect to 127.0.0.1:9 refused");
}

#[test]
fn events_name_themselves() {
    assert_eq!(Event::Shutdown.name(), "Shutdown");
    assert_eq!(Event::Forked.name(), "Forked");
    assert_eq!(Event::MultiplexUnsupported.name(), "MultiplexUnsupported");
}
