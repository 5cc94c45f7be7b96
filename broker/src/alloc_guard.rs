//! The process's allocator: the system's, except that huge allocations are reserved
//! address space (`MAP_NORESERVE`), not committed memory.
//!
//! Why: `kafka-protocol` 0.18 reserves an array's *declared* element count before
//! decoding a single element (`Vec::with_capacity(n)`), so a request of a few bytes that
//! claims 2³¹ topics asks for hundreds of GB up front. The system allocator refuses, and
//! an allocation failure aborts the process. Served from a `MAP_NORESERVE` mapping, the
//! reservation succeeds without using memory; the decoder then runs out of bytes at the
//! next element, returns an error (the connection is closed), and the mapping is
//! unmapped untouched. Upstream pull requests bound the reservation by the bytes left
//! (kafka-protocol-rs #152, #161, #200); once one is released this module can go.
//!
//! Nothing in the broker legitimately allocates [`HUGE_BYTES`] or more (request frames are
//! bounded far below it; segments are mapped, not allocated), so ordinary allocations
//! take the system allocator's path unchanged. With `vm.overcommit_memory=2` the kernel
//! ignores `MAP_NORESERVE` and such a request still aborts the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};

/// Allocations at least this large are address-space reservations.
pub const HUGE_BYTES: usize = 1 << 32;

/// Page alignment is all an anonymous mapping guarantees.
const PAGE_BYTES: usize = 4096;

pub struct GuardedAlloc;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE_BYTES && layout.align() <= PAGE_BYTES
}

// SAFETY: small allocations are the system allocator's; huge ones are fresh anonymous
// mappings of exactly `layout.size()` bytes (zeroed, page-aligned), unmapped with the
// same size. `realloc` keeps GlobalAlloc's default (alloc, copy, dealloc), so a block
// always goes back through the path that made it (decided by its size alone).
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            return reserve(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            return reserve(layout.size()); // anonymous mappings are zeroed
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            if let (Some(p), Some(_)) = (NonNull::new(ptr), NonZeroUsize::new(layout.size())) {
                // SAFETY: `ptr` came from `reserve(layout.size())` and is unmapped once.
                let _ = unsafe { munmap(p.cast(), layout.size()) };
            }
            return;
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn reserve(size: usize) -> *mut u8 {
    let Some(len) = NonZeroUsize::new(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a new private anonymous mapping; nothing else refers to it.
    match unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        )
    } {
        Ok(p) => p.as_ptr().cast(),
        Err(_) => std::ptr::null_mut(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_untouched_reservation_succeeds_and_is_returned() {
        // 256 GiB: more than this machine has, as a decoder's bogus capacity would ask.
        let v: Vec<u64> = Vec::with_capacity(32 << 30);
        assert!(v.capacity() >= 32 << 30);
        drop(v);
        let mut small = vec![1u8; 100];
        small.push(2);
        assert_eq!(small.len(), 101);
    }
}
