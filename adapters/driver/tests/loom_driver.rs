//! Loom checks of the driver's lock and wake-ups.
//!
//! Run with:
//! `RUSTFLAGS="--cfg ldapmux_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p ldapmux-driver --release --test 'loom_*'`
//!
//! Each model runs 2–3 threads over the real pool. Loom explores their
//! interleavings and reports deadlocks (including lock-order ones), and leaked
//! `Arc`s. Each model then asserts that every waiter got exactly one outcome,
//! the pool's invariants hold, and every count is back to zero.

#![cfg(ldapmux_loom)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ldapmux_core::{
    CloseReason, Config, ConnError, ConnErrorKind, ConnId, CredKey, Error, Instant, Pool, Request,
    ServerId, UserKind,
};
use ldapmux_driver::{Clock, Driver, Io, OpenRequest};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

const LONG: Duration = Duration::from_secs(3600);

/// A runtime whose opens are completed by a test thread. With `reenter`
/// set, every I/O call also calls back into the driver, as a runtime may do
/// (e.g. to read the next deadline): that deadlocks if the driver ever did
/// I/O while holding its lock.
#[derive(Clone, Default)]
struct Runtime {
    pending: Arc<Mutex<Vec<ConnId>>>,
    reenter: Arc<Mutex<Option<Driver>>>,
}

impl Runtime {
    fn reenter(&self) {
        let driver = self.reenter.lock().unwrap().clone();
        if let Some(driver) = driver {
            let _ = driver.next_timeout();
        }
    }
}

impl Io for Runtime {
    fn open(&self, request: OpenRequest) {
        self.reenter();
        self.pending.lock().unwrap().push(request.conn);
    }
    fn close(&self, conn: ConnId, _: CloseReason) {
        self.pending.lock().unwrap().retain(|c| *c != conn);
    }
    fn abandon(&self, _: ConnId) {}
    fn probe(&self, _: ServerId, _: &str) {}
    fn timer_changed(&self) {
        self.reenter();
    }
}

struct Zero;
impl Clock for Zero {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

fn config(cap: u32) -> Config {
    Config::builder()
        .server("ldap://127.0.0.1:3891")
        .max_users_per_conn(cap)
        .build()
        .unwrap()
}

fn setup(cap: u32) -> (Driver, Runtime) {
    let rt = Runtime::default();
    let driver = Driver::new(
        Pool::new(config(cap), 1, Instant::ZERO).unwrap(),
        rt.clone(),
        Zero,
    );
    (driver, rt)
}

fn search() -> Request {
    Request::new(UserKind::Search, CredKey::ANONYMOUS)
}

/// Acts as the runtime until `done` says the users are finished: opens (or
/// fails) every connection the pool asks for. Reports about connections the
/// pool has since closed are refused, which is fine.
fn serve(driver: &Driver, rt: &Runtime, done: &AtomicBool, fail: bool) {
    while !done.load(Ordering::SeqCst) {
        let next = rt.pending.lock().unwrap().pop();
        match next {
            Some(conn) if fail => {
                let _ = driver
                    .conn_open_failed(conn, ConnError::new(ConnErrorKind::Refused, "refused"));
            }
            Some(conn) => {
                let _ = driver.conn_opened(conn);
            }
            None => thread::yield_now(),
        }
    }
}

/// Runs `f` as a user of the pool on a new thread; `done` is set when it
/// returns, which ends the runtime's `serve` loop.
fn spawn_user<T: Send + 'static>(
    driver: &Driver,
    done: &Arc<AtomicBool>,
    f: impl FnOnce(&Driver) -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let (driver, done) = (driver.clone(), done.clone());
    thread::spawn(move || {
        let result = f(&driver);
        done.store(true, Ordering::SeqCst);
        result
    })
}

fn all_back_to_zero(driver: &Driver) {
    driver
        .inspect(|p| p.check_invariants())
        .expect("invariants");
    let s = driver.status();
    assert_eq!(s.users, 0, "users left");
    assert_eq!(s.queued, 0);
    assert_eq!(driver.pending_waits(), 0, "a wait slot leaked");
    for g in &s.generations {
        assert_eq!(g.users, 0);
    }
}

#[test]
fn loom_two_users_race_to_acquire_and_release() {
    loom::model(|| {
        let (driver, rt) = setup(2);
        let finished = Arc::new(StdAtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let users: Vec<_> = (0..2)
            .map(|_| {
                let (driver, done, finished) = (driver.clone(), done.clone(), finished.clone());
                thread::spawn(move || {
                    let lease = driver.acquire_blocking(search(), LONG).expect("granted");
                    lease.release();
                    if finished.fetch_add(1, StdOrdering::SeqCst) == 1 {
                        done.store(true, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        serve(&driver, &rt, &done, false);
        for u in users {
            u.join().unwrap();
        }
        all_back_to_zero(&driver);
        assert_eq!(
            driver.status().conns,
            1,
            "the two users shared one connection"
        );
    });
}

#[test]
fn loom_io_may_call_back_into_the_driver() {
    loom::model(|| {
        let (driver, rt) = setup(2);
        *rt.reenter.lock().unwrap() = Some(driver.clone());
        let done = Arc::new(AtomicBool::new(false));
        let user = spawn_user(&driver, &done, |driver| {
            driver
                .acquire_blocking(search(), LONG)
                .expect("granted")
                .release();
        });
        serve(&driver, &rt, &done, false);
        user.join().unwrap();
        // Break the driver -> runtime -> driver cycle, or loom reports a leak.
        *rt.reenter.lock().unwrap() = None;
        all_back_to_zero(&driver);
    });
}

#[test]
fn loom_a_connection_fails_while_others_wait_on_it() {
    loom::model(|| {
        let (driver, rt) = setup(2);
        let done = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(StdAtomicUsize::new(0));
        let users: Vec<_> = (0..2)
            .map(|_| {
                let (driver, done, finished) = (driver.clone(), done.clone(), finished.clone());
                thread::spawn(move || {
                    let r = driver.acquire_blocking(search(), LONG);
                    if finished.fetch_add(1, StdOrdering::SeqCst) == 1 {
                        done.store(true, Ordering::SeqCst);
                    }
                    r.map(|l| l.conn())
                })
            })
            .collect();
        serve(&driver, &rt, &done, true);
        for u in users {
            // Exactly one outcome each, and it is the connection's error.
            let failure = u.join().unwrap().expect_err("the connection never opened");
            assert!(
                matches!(
                    failure.error,
                    Error::ConnectFailed { .. } | Error::NoServerAvailable
                ),
                "{failure}"
            );
        }
        all_back_to_zero(&driver);
        assert_eq!(driver.status().conns, 0);
    });
}

#[derive(Default)]
struct CountingWaker(StdAtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, StdOrdering::SeqCst);
    }
}

#[test]
fn loom_cancel_races_with_grant() {
    loom::model(|| {
        let (driver, rt) = setup(2);
        let done = Arc::new(AtomicBool::new(false));
        let wakes = std::sync::Arc::new(CountingWaker::default());
        let waker = Waker::from(wakes.clone());
        let user = spawn_user(&driver, &done, move |driver| {
            let mut fut = driver.acquire(search());
            let first = std::pin::Pin::new(&mut fut).poll(&mut Context::from_waker(&waker));
            // Give up: whether or not the grant already came.
            matches!(first, Poll::Ready(Ok(_)))
        });
        serve(&driver, &rt, &done, false);
        let _ = user.join().unwrap();
        assert!(
            wakes.0.load(StdOrdering::SeqCst) <= 1,
            "woken more than once"
        );
        all_back_to_zero(&driver);
    });
}

#[test]
fn loom_reload_races_with_acquire() {
    loom::model(|| {
        let (driver, rt) = setup(2);
        let done = Arc::new(AtomicBool::new(false));
        let user = spawn_user(&driver, &done, |driver| {
            let lease = driver.acquire_blocking(search(), LONG).expect("granted");
            let generation = driver.inspect(|p| p.conn(lease.conn()).map(|c| c.generation));
            lease.release();
            generation
        });
        let reloader = {
            let driver = driver.clone();
            thread::spawn(move || driver.reload(config(2)).expect("valid reload"))
        };
        serve(&driver, &rt, &done, false);
        assert!(user.join().unwrap().is_some());
        reloader.join().unwrap();
        all_back_to_zero(&driver);
        // The old generation was freed once its user and connections left.
        let s = driver.status();
        assert_eq!(s.generations.len(), 1, "{:?}", s.generations);
    });
}

#[test]
fn loom_shutdown_races_with_acquire() {
    loom::model(|| {
        let (driver, rt) = setup(2);
        let done = Arc::new(AtomicBool::new(false));
        let user = spawn_user(&driver, &done, |driver| {
            driver
                .acquire_blocking(search(), LONG)
                .map(|lease| lease.release())
        });
        let stopper = {
            let driver = driver.clone();
            thread::spawn(move || driver.shutdown())
        };
        serve(&driver, &rt, &done, false);
        if let Err(f) = user.join().unwrap() {
            assert_eq!(f.error, Error::ShutDown);
        }
        stopper.join().unwrap();
        let s = driver.status();
        assert!(s.shut_down);
        assert_eq!((s.users, s.conns, s.generations.len()), (0, 0, 0));
        assert_eq!(driver.pending_waits(), 0);
    });
}
