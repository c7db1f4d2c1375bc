//! What the runtime reports reaches the pool, and what a lease does reaches it
//! too: each report below changes what the pool says, so a report dropped on
//! the floor (a method that only returns `Ok(())`) is caught.

#![cfg(not(ldapmux_loom))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ldapmux_core::{
    CloseReason, Config, ConnError, ConnErrorKind, ConnId, CredKey, Error, Health, Instant, Pool,
    Request, ServerId, UserKind,
};
use ldapmux_driver::{Clock, Driver, Io, OpenRequest, SystemClock};

/// Records opens and probes; every open is completed by the test.
#[derive(Clone, Default)]
struct Recorder {
    opens: Arc<Mutex<Vec<OpenRequest>>>,
    probes: Arc<Mutex<Vec<ServerId>>>,
}

impl Io for Recorder {
    fn open(&self, request: OpenRequest) {
        self.opens.lock().unwrap().push(request);
    }
    fn close(&self, _: ConnId, _: CloseReason) {}
    fn abandon(&self, _: ConnId) {}
    fn probe(&self, server: ServerId, _: &str) {
        self.probes.lock().unwrap().push(server);
    }
    fn timer_changed(&self) {}
}

const A: &str = "ldap://127.0.0.1:3891";

fn config() -> Config {
    Config::builder()
        .server(A)
        .failback_hold_down(Duration::ZERO)
        .default_acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn driver() -> (Driver, Recorder) {
    let io = Recorder::default();
    let pool = Pool::new(config(), 1, Instant::ZERO).unwrap();
    (Driver::new(pool, io.clone(), SystemClock::new()), io)
}

fn last_open(io: &Recorder) -> ConnId {
    io.opens.lock().unwrap().last().expect("an open").conn
}

/// Starts a blocking acquire on another thread; returns once the pool asked
/// for a connection.
fn waiting(
    driver: &Driver,
    io: &Recorder,
    kind: UserKind,
) -> std::thread::JoinHandle<Result<ldapmux_driver::Lease, ldapmux_driver::Failure>> {
    let opens = io.opens.lock().unwrap().len();
    let d = driver.clone();
    let t = std::thread::spawn(move || {
        d.acquire_blocking(
            Request::new(kind, CredKey::ANONYMOUS),
            Duration::from_secs(10),
        )
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while io.opens.lock().unwrap().len() == opens && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(driver.pending_waits() >= 1, "the waiter is registered");
    t
}

#[test]
fn a_failed_open_fails_its_waiter_with_the_runtimes_error() {
    let (driver, io) = driver();
    let t = waiting(&driver, &io, UserKind::Write);
    let conn = last_open(&io);
    driver
        .conn_open_failed(conn, ConnError::new(ConnErrorKind::Refused, "refused"))
        .unwrap();
    let failure = t.join().unwrap().unwrap_err();
    assert!(
        matches!(failure.error, Error::ConnectFailed { ref cause, .. } if cause.kind == ConnErrorKind::Refused),
        "{failure}"
    );
    assert_eq!(driver.pending_waits(), 0);
    // The same report twice is refused: the connection is gone.
    assert!(
        driver
            .conn_open_failed(conn, ConnError::new(ConnErrorKind::Refused, "again"))
            .is_err()
    );
}

#[test]
fn a_lost_connection_is_closed_and_a_probe_answer_brings_its_server_back() {
    let (driver, io) = driver();
    let t = waiting(&driver, &io, UserKind::Search);
    let conn = last_open(&io);
    driver.conn_opened(conn).unwrap();
    let lease = t.join().unwrap().unwrap();
    lease.release();
    assert_eq!(driver.status().users, 0, "release reaches the pool");
    assert_eq!(driver.status().conns, 1);
    driver
        .conn_lost(conn, ConnError::new(ConnErrorKind::Io, "reset"))
        .unwrap();
    assert_eq!(driver.status().conns, 0, "the lost connection is closed");
    assert!(
        driver
            .conn_lost(conn, ConnError::new(ConnErrorKind::Io, "x"))
            .is_err()
    );

    // Down, then the probe's answer brings it back up.
    let a = driver.inspect(|p| p.server_id(A)).unwrap();
    let t = waiting(&driver, &io, UserKind::Search);
    driver
        .conn_open_failed(
            last_open(&io),
            ConnError::new(ConnErrorKind::Refused, "down"),
        )
        .unwrap();
    let _ = t.join().unwrap();
    assert!(matches!(
        driver.inspect(|p| p.health(a)),
        Some(Health::Down { .. })
    ));
    driver.probe_result(a, true).unwrap();
    assert_eq!(driver.inspect(|p| p.health(a)), Some(Health::Up));
}

#[test]
fn a_reload_starts_a_new_generation_and_a_bad_one_is_refused() {
    let (driver, _) = driver();
    let first = driver.inspect(|p| p.current_generation());
    driver.reload(config()).unwrap();
    let second = driver.inspect(|p| p.current_generation());
    assert_ne!(first, second);
    let mut bad = config();
    bad.max_users_per_conn = 0;
    assert!(driver.reload(bad).is_err());
    assert_eq!(driver.inspect(|p| p.current_generation()), second);
}

#[test]
fn an_enumeration_reads_on_until_its_connection_dies_then_gets_the_saved_error() {
    let (driver, io) = driver();
    let t = waiting(&driver, &io, UserKind::Getent);
    let conn = last_open(&io);
    driver.conn_opened(conn).unwrap();
    let mut getent = t.join().unwrap().unwrap();
    assert_eq!(getent.get_next(), Ok(()));
    assert_eq!(getent.get_next(), Ok(()), "as often as it likes");
    driver
        .conn_lost(conn, ConnError::new(ConnErrorKind::Io, "reset"))
        .unwrap();
    let failure = getent.get_next().unwrap_err();
    assert!(
        matches!(failure.error, Error::ConnectionLost { .. }) && !failure.retry,
        "the saved error, no retry after entries were read: {failure}"
    );
    // Finished: later calls are refused, not resumed.
    assert!(getent.get_next().is_err());
    drop(getent);
    assert_eq!(driver.status().users, 0);
}

#[test]
fn get_next_answers_only_its_own_user() {
    // Two enumerations on one shared connection; each GetNext resumes its own.
    let (driver, io) = driver();
    let t1 = waiting(&driver, &io, UserKind::Getent);
    let conn = last_open(&io);
    driver.conn_opened(conn).unwrap();
    let mut g1 = t1.join().unwrap().unwrap();
    let g2 = driver
        .acquire_blocking(
            Request::new(UserKind::Getent, CredKey::ANONYMOUS),
            Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(g2.conn(), conn);
    assert_eq!(g1.get_next(), Ok(()));
    g2.release();
    // g1 still reads; g2's user is gone and cannot be resumed by g1's call.
    assert_eq!(g1.get_next(), Ok(()));
    assert_eq!(driver.status().users, 1);
}

#[test]
fn the_system_clock_starts_near_zero_and_moves_forward() {
    let clock = SystemClock::new();
    let t0 = clock.now();
    std::thread::sleep(Duration::from_millis(5));
    let t1 = clock.now();
    assert!(t1.saturating_duration_since(t0) >= Duration::from_millis(5));
    assert!(t0.as_nanos() < Duration::from_secs(60).as_nanos() as u64);
}

#[test]
fn the_driver_prints_without_its_internals() {
    let (driver, _) = driver();
    assert_eq!(format!("{driver:?}"), "Driver { .. }");
}

#[test]
fn get_next_on_a_plain_search_is_refused_and_the_lease_still_releases() {
    let (driver, io) = driver();
    let t = waiting(&driver, &io, UserKind::Search);
    driver.conn_opened(last_open(&io)).unwrap();
    let mut lease = t.join().unwrap().unwrap();
    let refused = lease.get_next().unwrap_err();
    assert!(
        matches!(refused.error, Error::UnexpectedEvent { .. }),
        "{refused}"
    );
    // A caller's mistake does not end the lease: it is still held, then released.
    assert_eq!(driver.status().users, 1);
    lease.release();
    assert_eq!(driver.status().users, 0);
}
