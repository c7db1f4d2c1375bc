//! Loom checks of the state a runtime adapter keeps beside the driver
//! (`ldapmux_driver::shell`): the timer's wake-up rule never loses a
//! wake-up, and a close racing an open's completion closes the socket
//! exactly once. The tokio adapter runs these same types.
//!
//! Run with:
//! `RUSTFLAGS="--cfg ldapmux_loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p ldapmux-driver --release --test 'loom_*'`

#![cfg(ldapmux_loom)]

use std::time::Duration;

use ldapmux_core::{
    CloseReason, Config, ConnId, CredKey, Instant, Pool, Request, ServerId, UserKind,
};
use ldapmux_driver::shell::{Cell, ConnTable, Slot, TimerGate};
use ldapmux_driver::{Clock, Driver, Io, OpenRequest};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// A runtime whose opens are completed by the test, and whose timer task's
/// notifier keeps a wake-up until it is looked at (as tokio's
/// `Notify::notify_one` keeps a permit).
#[derive(Clone)]
struct Runtime {
    pending: Arc<Mutex<Vec<ConnId>>>,
    gate: Arc<TimerGate>,
    driver: Arc<Cell<Option<Driver>>>,
    woken: Arc<AtomicBool>,
}

impl Io for Runtime {
    fn open(&self, request: OpenRequest) {
        self.pending.lock().unwrap().push(request.conn);
    }
    fn close(&self, _: ConnId, _: CloseReason) {}
    fn abandon(&self, _: ConnId) {}
    fn probe(&self, _: ServerId, _: &str) {}
    fn timer_changed(&self) {
        if let Some(driver) = self.driver.get()
            && self.gate.must_wake(&driver)
        {
            self.woken.store(true, Ordering::SeqCst);
        }
    }
}

struct Zero;
impl Clock for Zero {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

/// The timer task plans its sleep while a user acquires (arming its
/// deadline and the connect's timeout) and the runtime opens the connection
/// (arming nothing earlier, or disarming): at the end, either the plan is
/// still the pool's next deadline or earlier, or the task was woken. The
/// gate is taken before the driver's lock in both paths; a reversed order
/// would deadlock here.
#[test]
fn loom_a_deadline_moved_earlier_always_wakes_the_timer() {
    loom::model(|| {
        let config = Config::builder()
            .server("ldap://127.0.0.1:3891")
            .build()
            .unwrap();
        let rt = Runtime {
            pending: Arc::new(Mutex::new(Vec::new())),
            gate: Arc::new(TimerGate::default()),
            driver: Arc::new(Cell::new(None)),
            woken: Arc::new(AtomicBool::new(false)),
        };
        let driver = Driver::new(
            Pool::new(config, 1, Instant::ZERO).unwrap(),
            rt.clone(),
            Zero,
        );
        rt.driver.replace(Some(driver.clone()));

        let done = Arc::new(AtomicBool::new(false));
        let user = {
            let (driver, done) = (driver.clone(), done.clone());
            thread::spawn(move || {
                let req = Request::new(UserKind::Search, CredKey::ANONYMOUS);
                driver
                    .acquire_blocking(req, Duration::from_secs(3600))
                    .expect("granted")
                    .release();
                done.store(true, Ordering::SeqCst);
            })
        };
        let timer = {
            let (gate, cell) = (rt.gate.clone(), rt.driver.clone());
            thread::spawn(move || cell.get().and_then(|driver| gate.plan(&driver)))
        };
        // The runtime: opens what the pool asks for, until the user is done.
        loop {
            let next = rt.pending.lock().unwrap().pop();
            match next {
                Some(conn) => {
                    let _ = driver.conn_opened(conn);
                }
                None if done.load(Ordering::SeqCst) => break,
                None => thread::yield_now(),
            }
        }
        user.join().unwrap();
        let plan = timer.join().unwrap();
        let next = driver.next_timeout();
        let earlier = match (next, plan) {
            (Some(next), Some(plan)) => next < plan,
            (Some(_), None) => true,
            (None, _) => false,
        };
        assert!(
            !earlier || rt.woken.load(Ordering::SeqCst),
            "the pool's deadline {next:?} is earlier than the timer's plan {plan:?} and nobody woke it"
        );
        // Break the driver -> runtime -> driver cycle, or loom reports a leak.
        rt.driver.replace(None);
    });
}

/// The id of the connection a fresh pool opens for its first user.
fn a_conn_id() -> ConnId {
    let config = Config::builder()
        .server("ldap://127.0.0.1:3891")
        .build()
        .unwrap();
    let mut pool = Pool::new(config, 1, Instant::ZERO).unwrap();
    pool.handle_acquire(
        Instant::ZERO,
        Request::new(UserKind::Search, CredKey::ANONYMOUS),
    );
    std::iter::from_fn(|| pool.poll_action())
        .find_map(|a| match a {
            ldapmux_core::Action::Open { conn, .. } => Some(conn),
            _ => None,
        })
        .expect("an open")
}

/// A socket that counts its closes.
struct Socket(Arc<AtomicUsize>);

impl Socket {
    fn close(self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The pool closes a connection while its opening task finishes: whoever
/// comes second under the table's lock learns the socket is theirs to
/// close. Exactly one close, nothing left in the table.
#[test]
fn loom_a_close_racing_an_open_closes_the_socket_once() {
    loom::model(|| {
        let table: Arc<ConnTable<(), Socket>> = Arc::new(ConnTable::default());
        let closes = Arc::new(AtomicUsize::new(0));
        let conn = a_conn_id();
        table.opening(conn, || ());
        let task = {
            let (table, closes) = (table.clone(), closes.clone());
            thread::spawn(move || {
                if let Err(socket) = table.opened(conn, Socket(closes), || ()) {
                    socket.close();
                }
            })
        };
        // The pool's close (the opening task is aborted if still opening; it
        // may finish its open regardless, as an abort is not instant).
        match table.take(conn) {
            Some(Slot::Open(socket)) => socket.close(),
            Some(Slot::Opening(())) | None => {}
        }
        task.join().unwrap();
        assert_eq!(closes.load(Ordering::SeqCst), 1, "closed exactly once");
        assert!(table.is_empty(), "nothing left behind");
    });
}
