//! The one place that chooses std or loom synchronisation types. Everything
//! else in the crate imports from here, so `--cfg ldapmux_loom` swaps them all.

#[cfg(ldapmux_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(ldapmux_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks, ignoring poisoning: the pool's state is only changed inside
/// `Pool` methods that do not panic on valid input, so a poisoned lock still
/// guards a consistent pool.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
