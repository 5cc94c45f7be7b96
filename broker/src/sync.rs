//! The broker's one policy for poisoned locks: ignore the poison.
//!
//! A lock is poisoned when a thread panics while holding it. Every lock in the broker
//! guards state that is changed whole before the lock is released — a map entry
//! inserted or removed, a counter bumped, a struct replaced — so a panic never leaves a
//! half-made change for the next holder to misread; and the panic has already failed its
//! own request. Honouring the poison would turn that one failed request into a broker
//! that fails every request after it. So every `Mutex` and `RwLock` is taken through
//! these functions, and a new lock must keep the same promise (say so where it is
//! declared).

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, poisoned or not.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read-locks `l`, poisoned or not.
pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Write-locks `l`, poisoned or not.
pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
