//! The driver with a fake runtime and a manual clock: futures, blocking waits,
//! cancellation, shutdown, verdicts, re-entrant I/O and timers.

#![cfg(not(ldapmux_loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ldapmux_core::{
    CloseReason, Config, ConnError, ConnErrorKind, ConnId, CredKey, Error, Instant, Pool, Request,
    ServerId, UserKind,
};
use ldapmux_driver::{Clock, Driver, Failure, Io, OpenRequest};

#[derive(Default)]
struct FakeIo {
    opens: Mutex<Vec<OpenRequest>>,
    closes: Mutex<Vec<(ConnId, CloseReason)>>,
    timer_changes: AtomicUsize,
    /// When set, `open` completes synchronously by calling back into the driver.
    open_at_once: Mutex<Option<Driver>>,
}

#[derive(Clone, Default)]
struct Runtime(Arc<FakeIo>);

impl Io for Runtime {
    fn open(&self, request: OpenRequest) {
        let inline = self.0.open_at_once.lock().unwrap().clone();
        match inline {
            Some(driver) => driver.conn_opened(request.conn).expect("opening"),
            None => self.0.opens.lock().unwrap().push(request),
        }
    }
    fn close(&self, conn: ConnId, reason: CloseReason) {
        self.0.closes.lock().unwrap().push((conn, reason));
    }
    fn abandon(&self, _: ConnId) {}
    fn probe(&self, _: ServerId, _: &str) {}
    fn timer_changed(&self) {
        self.0.timer_changes.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct ManualClock(Arc<AtomicU64>);

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.0.load(Ordering::SeqCst))
    }
}

impl ManualClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }
}

fn setup() -> (Driver, Runtime, ManualClock) {
    let config = Config::builder()
        .server("ldap://127.0.0.1:3891")
        .max_users_per_conn(4)
        .default_acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rt = Runtime::default();
    let clock = ManualClock::default();
    let driver = Driver::new(
        Pool::new(config, 1, Instant::ZERO).unwrap(),
        rt.clone(),
        clock.clone(),
    );
    (driver, rt, clock)
}

fn search() -> Request {
    Request::new(UserKind::Search, CredKey::ANONYMOUS)
}

/// Counts how often it is woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
    let waker = Waker::from(waker.clone());
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

fn last_open(rt: &Runtime) -> ConnId {
    rt.0.opens
        .lock()
        .unwrap()
        .last()
        .expect("an open was requested")
        .conn
}

#[test]
fn a_future_is_woken_once_when_its_connection_opens() {
    let (driver, rt, _) = setup();
    let waker = Arc::new(CountingWaker::default());
    let mut fut = driver.acquire(search());
    assert!(poll_once(&mut fut, &waker).is_pending());
    let conn = last_open(&rt);
    assert_eq!(waker.0.load(Ordering::SeqCst), 0);
    driver.conn_opened(conn).unwrap();
    assert_eq!(waker.0.load(Ordering::SeqCst), 1, "woken exactly once");
    let Poll::Ready(Ok(lease)) = poll_once(&mut fut, &waker) else {
        panic!("granted")
    };
    assert_eq!(lease.conn(), conn);
    assert_eq!(driver.status().users, 1);
    drop(lease);
    assert_eq!(driver.status().users, 0, "dropping the lease releases it");
    assert_eq!(driver.pending_waits(), 0);
    driver.inspect(|p| p.check_invariants()).unwrap();
}

#[test]
fn coalesced_blocking_waiters_all_get_the_one_connection() {
    let (driver, rt, _) = setup();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let d = driver.clone();
            std::thread::spawn(move || {
                d.acquire_blocking(search(), Duration::from_secs(10))
                    .map(|l| l.conn())
            })
        })
        .collect();
    // Wait (bounded by time, not by a spin count: a loaded machine may not schedule
    // the three threads within any fixed number of yields) until all three are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while driver.status().users < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(driver.status().users, 3);
    assert_eq!(
        rt.0.opens.lock().unwrap().len(),
        1,
        "one socket for three users"
    );
    let conn = last_open(&rt);
    driver.conn_opened(conn).unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), conn);
    }
    assert_eq!(driver.status().users, 0);
}

#[test]
fn dropping_a_pending_future_cancels_it_and_it_is_never_woken() {
    let (driver, rt, _) = setup();
    let waker = Arc::new(CountingWaker::default());
    let mut fut = driver.acquire(search());
    assert!(poll_once(&mut fut, &waker).is_pending());
    drop(fut);
    assert_eq!(driver.status().users, 0);
    assert_eq!(driver.pending_waits(), 0);
    // The shared connection keeps opening for later users, and wakes no one.
    driver.conn_opened(last_open(&rt)).unwrap();
    assert_eq!(waker.0.load(Ordering::SeqCst), 0);
    assert_eq!(driver.status().conns, 1);
}

#[test]
fn a_grant_that_arrives_after_the_last_poll_is_released_when_the_future_drops() {
    let (driver, rt, _) = setup();
    let waker = Arc::new(CountingWaker::default());
    let mut fut = driver.acquire(search());
    assert!(poll_once(&mut fut, &waker).is_pending());
    driver.conn_opened(last_open(&rt)).unwrap();
    assert_eq!(driver.status().users, 1, "granted, not yet collected");
    drop(fut);
    assert_eq!(driver.status().users, 0, "released on drop");
    driver.inspect(|p| p.check_invariants()).unwrap();
}

#[test]
fn a_blocking_wait_times_out_and_cancels() {
    let (driver, _, _) = setup();
    let r = driver.acquire_blocking(search(), Duration::from_millis(20));
    assert_eq!(
        r.err(),
        Some(Failure {
            error: Error::AcquireTimeout,
            retry: false
        })
    );
    assert_eq!(driver.status().users, 0);
    assert_eq!(driver.pending_waits(), 0);
}

#[test]
fn shutdown_fails_waiters_and_interrupts_leases() {
    let (driver, rt, _) = setup();
    let waker = Arc::new(CountingWaker::default());
    let mut first = driver.acquire(search());
    assert!(poll_once(&mut first, &waker).is_pending());
    driver.conn_opened(last_open(&rt)).unwrap();
    let Poll::Ready(Ok(lease)) = poll_once(&mut first, &waker) else {
        panic!()
    };
    let mut second = driver.acquire(Request::new(UserKind::Write, CredKey::ANONYMOUS));
    assert!(poll_once(&mut second, &waker).is_pending());
    driver.shutdown();
    let Poll::Ready(Err(failure)) = poll_once(&mut second, &waker) else {
        panic!("failed")
    };
    assert_eq!(
        failure,
        Failure {
            error: Error::ShutDown,
            retry: false
        }
    );
    let verdict = lease.broken(ConnError::new(ConnErrorKind::Io, "reset"), true);
    assert_eq!(
        verdict,
        Failure {
            error: Error::ShutDown,
            retry: false
        }
    );
    assert!(
        rt.0.closes
            .lock()
            .unwrap()
            .iter()
            .all(|(_, r)| *r == CloseReason::Shutdown)
    );
    let later = driver.acquire_blocking(search(), Duration::from_secs(1));
    assert_eq!(later.err().map(|f| f.error), Some(Error::ShutDown));
    assert_eq!(driver.pending_waits(), 0);
}

#[test]
fn a_broken_lease_gets_the_pools_verdict() {
    let (driver, rt, _) = setup();
    *rt.0.open_at_once.lock().unwrap() = Some(driver.clone());
    let read = driver
        .acquire_blocking(search(), Duration::from_secs(1))
        .unwrap();
    let verdict = read.broken(ConnError::new(ConnErrorKind::Io, "reset"), true);
    assert!(verdict.retry, "a read is retried");
    assert!(matches!(verdict.error, Error::ConnectionLost { .. }));
    let write = driver
        .acquire_blocking(
            Request::new(UserKind::Write, CredKey::ANONYMOUS),
            Duration::from_secs(1),
        )
        .unwrap();
    let verdict = write.broken(ConnError::new(ConnErrorKind::Io, "reset"), true);
    assert!(
        !verdict.retry,
        "a write that may have been sent is never retried"
    );
    *rt.0.open_at_once.lock().unwrap() = None;
    assert_eq!(driver.status().users, 0);
}

#[test]
fn io_may_call_back_into_the_driver_synchronously() {
    let (driver, rt, _) = setup();
    *rt.0.open_at_once.lock().unwrap() = Some(driver.clone());
    // open() re-enters the driver from inside the acquire: no deadlock.
    let lease = driver
        .acquire_blocking(search(), Duration::from_secs(1))
        .unwrap();
    assert_eq!(driver.status().users, 1);
    let mut getent = driver
        .acquire_blocking(
            Request::new(UserKind::Getent, CredKey::ANONYMOUS),
            Duration::from_secs(1),
        )
        .unwrap();
    assert_eq!(getent.get_next(), Ok(()));
    drop(lease);
    drop(getent);
    *rt.0.open_at_once.lock().unwrap() = None;
    assert_eq!(driver.status().users, 0);
}

#[test]
fn the_runtime_is_told_when_the_deadline_changes_and_timers_fire() {
    let (driver, rt, clock) = setup();
    let before = rt.0.timer_changes.load(Ordering::SeqCst);
    let waker = Arc::new(CountingWaker::default());
    let mut fut = driver.acquire(search());
    assert!(poll_once(&mut fut, &waker).is_pending());
    assert!(rt.0.timer_changes.load(Ordering::SeqCst) > before);
    let at = driver.next_timeout().expect("a deadline");
    // The runtime sleeps until then and fires the timer.
    clock.advance(Duration::from_nanos(at.as_nanos()));
    driver.on_timer();
    let Poll::Ready(Err(failure)) = poll_once(&mut fut, &waker) else {
        panic!()
    };
    assert!(
        matches!(
            failure.error,
            Error::ConnectFailed { .. } | Error::AcquireTimeout
        ),
        "{failure}"
    );
    assert_eq!(waker.0.load(Ordering::SeqCst), 1);
}
