//! The shared state every runtime adapter keeps beside the [`Driver`]: its
//! connection table, the wake-up rule of its one timer, and cells for the
//! driver and the settings. They live here, on the crate's one
//! synchronisation shim, so the loom checks (`tests/loom_shell.rs`) see the
//! same locks the adapters run; an adapter holds no lock of its own.
//!
//! Lock order (docs/locking.md): a [`TimerGate`] before the driver's lock
//! (it reads [`Driver::next_timeout`] under the gate); a [`ConnTable`] and a
//! [`Cell`] are never held while another lock is taken, except the
//! runtime's own task spawner in [`ConnTable::opening`].

use std::collections::HashMap;

use ldapmux_core::{ConnId, Instant};

use crate::Driver;
use crate::sync::{Mutex, lock};

/// A value shared by reference and replaced whole (the driver handle, the
/// settings in force): readers get a clone, a writer swaps it.
pub struct Cell<T>(Mutex<T>);

impl<T> std::fmt::Debug for Cell<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell").finish_non_exhaustive()
    }
}

impl<T: Clone> Cell<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Cell<T> {
        Cell(Mutex::new(value))
    }

    /// A clone of the value.
    pub fn get(&self) -> T {
        lock(&self.0).clone()
    }

    /// Replaces the value; returns the old one.
    pub fn replace(&self, value: T) -> T {
        std::mem::replace(&mut *lock(&self.0), value)
    }
}

/// A connection as the runtime holds it: `H` is the handle of the task
/// opening it, `S` the open socket.
#[derive(Debug)]
pub enum Slot<H, S> {
    /// Being opened by a task.
    Opening(H),
    /// Open and bound.
    Open(S),
}

/// The runtime's connections. An open and a close of one connection may
/// race (the pool closes a connection whose open is still running): the
/// opening task's [`ConnTable::opened`] and the close's
/// [`ConnTable::take`] decide under one lock who owns the socket, so it is
/// closed exactly once and never left behind.
pub struct ConnTable<H, S> {
    slots: Mutex<HashMap<ConnId, Slot<H, S>>>,
}

impl<H, S> std::fmt::Debug for ConnTable<H, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("slots", &self.len())
            .finish()
    }
}

impl<H, S> Default for ConnTable<H, S> {
    fn default() -> Self {
        ConnTable {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<H, S> ConnTable<H, S> {
    /// Starts opening `conn`: `start` spawns the task (under the table's
    /// lock, so the slot exists before the task can look for it).
    pub fn opening(&self, conn: ConnId, start: impl FnOnce() -> H) {
        let mut slots = lock(&self.slots);
        let task = start();
        slots.insert(conn, Slot::Opening(task));
    }

    /// The opening task of `conn` has its socket. `Err(socket)`: the
    /// connection was closed meanwhile, the socket is no one's and the
    /// caller closes it. `on_insert` runs under the lock once the socket
    /// is in the table (e.g. to count it before anyone can take it).
    pub fn opened(&self, conn: ConnId, socket: S, on_insert: impl FnOnce()) -> Result<(), S> {
        let mut slots = lock(&self.slots);
        if !matches!(slots.get(&conn), Some(Slot::Opening(_))) {
            return Err(socket);
        }
        on_insert();
        slots.insert(conn, Slot::Open(socket));
        Ok(())
    }

    /// The opening task of `conn` failed: forgets the slot.
    pub fn failed(&self, conn: ConnId) {
        lock(&self.slots).remove(&conn);
    }

    /// Takes `conn` out (to close or abandon it): the caller aborts the
    /// opening task or closes the socket.
    pub fn take(&self, conn: ConnId) -> Option<Slot<H, S>> {
        lock(&self.slots).remove(&conn)
    }

    /// Reads the open socket of `conn`.
    pub fn with_open<R>(&self, conn: ConnId, f: impl FnOnce(&S) -> R) -> Option<R> {
        match lock(&self.slots).get(&conn)? {
            Slot::Open(socket) => Some(f(socket)),
            Slot::Opening(_) => None,
        }
    }

    /// Slots, opening or open.
    pub fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    /// No slot at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The wake-up rule of the runtime's one timer task. The task records the
/// deadline it is about to sleep until ([`TimerGate::plan`]); a deadline
/// change wakes it only if the pool's next deadline is now earlier than that
/// ([`TimerGate::must_wake`]). A later one needs no wake-up: the task wakes
/// at the old deadline, finds nothing due and plans again. Both read the
/// driver's deadline under the gate, so a change between the task's read
/// and its sleep is never lost: either the task read the new deadline, or
/// the change sees the old plan and asks for a wake-up (which the runtime's
/// notifier must keep until the task waits, as `tokio::sync::Notify`'s
/// `notify_one` does).
pub struct TimerGate {
    sleeping_until: Mutex<Option<Instant>>,
}

impl Default for TimerGate {
    fn default() -> Self {
        TimerGate {
            sleeping_until: Mutex::new(None),
        }
    }
}

impl std::fmt::Debug for TimerGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerGate").finish_non_exhaustive()
    }
}

impl TimerGate {
    /// The timer task, before it sleeps: the pool's next deadline, recorded
    /// as the one it sleeps until (`None`: until woken).
    pub fn plan(&self, driver: &Driver) -> Option<Instant> {
        let mut sleeping = lock(&self.sleeping_until);
        *sleeping = driver.next_timeout();
        *sleeping
    }

    /// From [`Io::timer_changed`](crate::Io::timer_changed): whether the
    /// timer task must be woken to plan again.
    pub fn must_wake(&self, driver: &Driver) -> bool {
        let sleeping = lock(&self.sleeping_until);
        match (driver.next_timeout(), *sleeping) {
            (Some(next), Some(until)) => next < until,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}
