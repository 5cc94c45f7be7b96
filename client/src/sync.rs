//! The client's one policy for poisoned locks: ignore the poison. Every lock here guards
//! state changed whole before release (a queue entry pushed or popped, a cache entry
//! replaced, a counter bumped), so a panic never leaves half a change behind, and
//! honouring the poison would make one panicked task break every later call.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
