//! A preallocated, memory-mapped file of fixed-size entries: the mechanism under both
//! [`OffsetIndex`](super::offset_index::OffsetIndex) and
//! [`TimeIndex`](super::time_index::TimeIndex).
//!
//! Lifecycle: while its segment is active the file is `capacity` bytes long (preallocated,
//! zero-filled past the entries); when the segment rolls or the log closes cleanly it is
//! trimmed to exactly `entries * entry_bytes`. The mapping always spans `capacity` bytes
//! (mapping past end of file is allowed), so trimming and re-extending never remap; only
//! entries below the published count are ever touched, and they always lie inside the file.
//!
//! Concurrency: one writer (the partition's append path, serialised by the log's writer
//! lock) appends entries and then publishes the new count with a release store; readers
//! load the count with acquire and read only entries below it. Writes go through raw
//! pointers, so no `&mut` to the mapping ever exists while readers look at it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::io;
use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};

pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: MmapRaw,
    entry_bytes: usize,
    capacity_entries: usize,
    entries: AtomicUsize,
    /// Entries the file currently has room for (its length / entry size): writes past it
    /// would land beyond end of file, which faults on a shared mapping.
    file_entries: AtomicUsize,
    /// The file length was a whole number of entries when opened.
    opened_whole: bool,
    /// Entries whose disk blocks are reserved (`fallocate`). Writer only. The file is
    /// extended sparsely; a store into a hole on a full disk would fault (SIGBUS), so
    /// blocks are reserved ahead of the writer, where ENOSPC is an ordinary error.
    allocated_entries: AtomicUsize,
}

/// Blocks reserved at a time ahead of the index writer.
const ALLOCATE_CHUNK_BYTES: usize = 64 * 1024;

impl IndexFile {
    /// Opens or creates `path`. Entries already in the file are counted from its length
    /// (a trimmed index); the caller validates them, and resets or truncates the count
    /// when they disagree with the log. The file keeps its length until [`extend`] is
    /// called (the segment becomes active).
    ///
    /// [`extend`]: IndexFile::extend
    pub fn open(path: &Path, entry_bytes: usize, capacity_bytes: u64) -> Result<IndexFile> {
        let file = io::open(
            OpenOptions::new().read(true).write(true).create(true).truncate(false),
            path,
        )
        .map_err(Error::io("open index", path))?;
        let len = file.metadata().map_err(Error::io("stat index", path))?.len();
        let capacity_bytes = capacity_bytes.max(len).max(entry_bytes as u64);
        let capacity_entries = (capacity_bytes / entry_bytes as u64) as usize;
        let mmap = MmapOptions::new()
            .len(capacity_entries * entry_bytes)
            .map_raw(&file)
            .map_err(Error::io("mmap index", path))?;
        let entries = (len / entry_bytes as u64) as usize;
        let index = IndexFile {
            path: path.to_owned(),
            file,
            mmap,
            entry_bytes,
            capacity_entries,
            entries: AtomicUsize::new(entries),
            file_entries: AtomicUsize::new(entries),
            opened_whole: len % entry_bytes as u64 == 0,
            allocated_entries: AtomicUsize::new(0),
        };
        Ok(index)
    }

    /// Whether the file length was a whole number of entries when opened is the caller's
    /// business; this is just the published count.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    pub fn opened_whole(&self) -> bool {
        self.opened_whole
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity_entries
    }

    /// Entry `i`, which must be below `len()`.
    #[inline]
    pub fn entry<const N: usize>(&self, i: usize) -> [u8; N] {
        debug_assert_eq!(N, self.entry_bytes);
        assert!(i < self.capacity_entries, "index entry {i} past capacity");
        let mut out = [0u8; N];
        // SAFETY: `i < capacity_entries`, so the range lies inside the mapping; entry `i`
        // lies inside the file because the count is only published after the file covers it.
        unsafe {
            std::ptr::copy_nonoverlapping(self.mmap.as_ptr().add(i * self.entry_bytes), out.as_mut_ptr(), N);
        }
        out
    }

    /// Appends one entry and publishes it. Writer only. Returns false, adding nothing, if
    /// disk blocks for it cannot be reserved (disk full): the index is sparse, so a missing
    /// entry only makes lookups scan a little further.
    pub fn push(&self, entry: &[u8]) -> bool {
        let n = self.entries.load(Ordering::Relaxed);
        assert_eq!(entry.len(), self.entry_bytes);
        assert!(
            n < self.capacity_entries,
            "append to a full index {}",
            self.path.display()
        );
        assert!(
            n < self.file_entries.load(Ordering::Relaxed),
            "append to an index that is not extended: {}",
            self.path.display()
        );
        if n >= self.allocated_entries.load(Ordering::Relaxed) && !self.reserve(n) {
            return false;
        }
        // SAFETY: slot `n` is inside the mapping and the (extended, allocated) file; readers
        // never read slot `n` until the release store below publishes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                entry.as_ptr(),
                self.mmap.as_mut_ptr().add(n * self.entry_bytes),
                self.entry_bytes,
            );
        }
        self.entries.store(n + 1, Ordering::Release);
        true
    }

    /// Reserves blocks for entries from `n` on, a chunk at a time.
    fn reserve(&self, n: usize) -> bool {
        let start = n * self.entry_bytes;
        let end = (start + ALLOCATE_CHUNK_BYTES).min(self.capacity_entries * self.entry_bytes);
        let mode = nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match nix::fcntl::fallocate(&self.file, mode, start as i64, (end - start) as i64) {
            Ok(()) => {
                self.allocated_entries.store(end / self.entry_bytes, Ordering::Relaxed);
                true
            }
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                // A filesystem without fallocate: nothing to reserve with; write as before.
                self.allocated_entries.store(self.capacity_entries, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(index = %self.path.display(), error = %e, "cannot reserve index blocks; skipping an index entry");
                false
            }
        }
    }

    /// Forgets entries from `n` on. Writer only.
    pub fn truncate_entries(&self, n: usize) {
        let cur = self.entries.load(Ordering::Relaxed);
        self.entries.store(n.min(cur), Ordering::Release);
    }

    /// Cuts the file to its entries (segment rolled or log closed).
    pub fn trim(&self) -> Result<()> {
        let n = self.len();
        io::set_len(&self.file, &self.path, (n * self.entry_bytes) as u64)
            .map_err(Error::io("trim index", &self.path))?;
        self.file_entries.store(n, Ordering::Relaxed);
        self.allocated_entries.store(n, Ordering::Relaxed);
        Ok(())
    }

    /// Grows the file back to capacity so the writer can append (segment active again).
    pub fn extend(&self) -> Result<()> {
        let bytes = (self.capacity_entries * self.entry_bytes) as u64;
        io::set_len(&self.file, &self.path, bytes).map_err(Error::io("extend index", &self.path))?;
        self.file_entries.store(self.capacity_entries, Ordering::Relaxed);
        Ok(())
    }

    /// Makes the entries durable.
    pub fn sync(&self) -> Result<()> {
        self.mmap.flush().map_err(Error::io("msync index", &self.path))?;
        io::sync_data(&self.file, &self.path).map_err(Error::io("fsync index", &self.path))
    }
}
