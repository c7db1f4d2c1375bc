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

#[test]
fn an_event_in_the_wrong_state_names_the_state_it_found() {
    let config = Config::builder().server("ldap://a").build().unwrap();
    let mut pool = Pool::new(config, 1, Instant::ZERO).unwrap();
    let now = Instant::ZERO;
    let user = pool.handle_acquire(
        now,
        ldapmux_core::Request::new(ldapmux_core::UserKind::Search, CredKey::ANONYMOUS),
    );
    let conn = std::iter::from_fn(|| pool.poll_action())
        .find_map(|a| match a {
            ldapmux_core::Action::Open { conn, .. } => Some(conn),
            _ => None,
        })
        .unwrap();
    // Released before it was granted: the user is still waiting.
    assert_eq!(
        pool.handle(now, Event::Release { user }),
        Err(ldapmux_core::Error::UnexpectedEvent {
            event: "Release",
            object: user.to_string(),
            state: "Waiting"
        })
    );
    pool.handle(now, Event::ConnOpened { conn }).unwrap();
    // Opened twice: the connection is already open.
    assert_eq!(
        pool.handle(now, Event::ConnOpened { conn }),
        Err(ldapmux_core::Error::UnexpectedEvent {
            event: "ConnOpened",
            object: conn.to_string(),
            state: "Open"
        })
    );
}

#[test]
fn a_status_prints_one_line_per_server_then_the_generations_and_counters() {
    use ldapmux_core::{Action, Request, UserKind};
    let config = Config::builder()
        .preferred_server("ldap://a")
        .server("ldap://b")
        .max_users_per_conn(8)
        .build()
        .unwrap();
    let mut pool = Pool::new(config, 1, Instant::ZERO).unwrap();
    let b = pool.server_id("ldap://b").unwrap();
    pool.handle(Instant::ZERO, Event::ServerDown { server: b })
        .unwrap();
    pool.handle_acquire(
        Instant::ZERO,
        Request::new(UserKind::Search, CredKey::ANONYMOUS),
    );
    let conn = std::iter::from_fn(|| pool.poll_action())
        .find_map(|a| match a {
            Action::Open { conn, .. } => Some(conn),
            _ => None,
        })
        .unwrap();
    pool.handle(Instant::ZERO, Event::ConnOpened { conn })
        .unwrap();
    let status = pool.status();
    let next_probe = match status.servers[1].health {
        ldapmux_core::Health::Down { next_probe, .. } => next_probe,
        h => panic!("{h:?}"),
    };
    let g = status.current.unwrap();
    assert_eq!(
        status.to_string(),
        format!(
            "pool {g}: 1 users (0 queued) on 1 connections, up to 8 users per connection\n\
             \x20 s0 ldap://a: up; 1 connections, 1 users; 1 opened, 0 failed to open, marked down 0 times\n\
             \x20 s1 ldap://b: down since t+0.000s, next probe at {next_probe}; 0 connections, 0 users; 0 opened, 0 failed to open, marked down 1 times\n\
             \x20 generations: {g} (current: 1 users, 1 connections)\n\
             \x20 counters: 1 acquires, 1 grants, 0 failed, 0 retries offered, 0 timed out, 0 connections found dead"
        )
    );
    pool.handle(Instant::ZERO, Event::Shutdown).unwrap();
    assert!(
        pool.status()
            .to_string()
            .starts_with("pool (shut down): 0 users")
    );
}
