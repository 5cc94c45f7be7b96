//! One segment of a partition log: `NNNNNNNNNNNNNNNNNNNN.log` plus its `.index` and
//! `.timeindex`, all named by the segment's base offset (20 digits, zero-padded, as Kafka).
//!
//! The `.log` file is a plain concatenation of RecordBatch v2 batches (see
//! `runnel_protocol::batch` for the byte layout) with contiguous offsets: each batch's base
//! offset is the previous batch's last offset + 1. It is only ever appended to (and cut
//! back by recovery or `truncate_to`).
//!
//! Concurrency: a segment is shared (`Arc`) between the log's single writer and any number
//! of readers. The writer appends bytes, then index entries, then publishes `size`,
//! `next_offset` and `max_timestamp` with release stores; readers bound every read by the
//! `size` they loaded, so they never see a half-written batch. No lock is held by this type.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use runnel_protocol::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD};

use super::config::LogConfig;
use super::io;
use super::offset_index::{self, OffsetIndex};
use super::time_index::{self, TimeIndex};
use crate::error::{Error, Result};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// Bytes read at a time when scanning a segment for recovery.
const SCAN_BUFFER_BYTES: usize = 1 << 20;
/// Bytes read at a time when walking batch headers on the read path: the stretch between
/// two entries of the offset index at the default `index.interval.bytes` (4096, plus the
/// batch that crosses it), plus a header.
const HEADER_WINDOW_BYTES: usize = 8192 + HEADER_BYTES;
/// First read when the stretch to walk is larger than a window: big batches, so the
/// first header or two are all a walk needs.
const FIRST_HEADER_WINDOW_BYTES: usize = 512;

pub(crate) fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Removes `path`; a file already gone is not an error.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match io::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a segment's files: `.log` first, so a crash midway leaves only index files
/// without a log, which the opener discards.
pub(crate) fn delete_segment_files(dir: &Path, base_offset: u64) -> Result<()> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(&dir.join(file_name(base_offset, suffix)))?;
    }
    Ok(())
}

/// A byte range of a segment file holding whole batches: what a fetch hands to `sendfile`.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

impl FileRegion {
    /// Copies the region into memory. For tests, tools and clients without `sendfile`;
    /// the fetch path sends the region from the file instead.
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

pub(crate) struct Segment {
    base_offset: u64,
    log_path: PathBuf,
    file: Arc<File>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    size: AtomicU64,
    next_offset: AtomicU64,
    max_timestamp: AtomicI64,
    /// Max timestamp of the first batch: the clock `segment.ms` rolls by (as Kafka).
    first_batch_timestamp: AtomicI64,
    /// The offset index was written by this process (new segment, or rebuilt by
    /// recovery), not loaded from disk, so its entries need no check against the log.
    index_built_here: std::sync::atomic::AtomicBool,
}

/// What a validating scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanOutcome {
    /// Bytes of whole, valid batches from the start of the file.
    pub valid_bytes: u64,
    pub next_offset: u64,
    pub max_timestamp: i64,
    pub first_batch_timestamp: i64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped: Option<String>,
}

/// Writer-side state for adding index entries: the same rule whether batches arrive by
/// append or by a recovery scan, so a rebuilt index equals the one appends wrote.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IndexCursor {
    pub bytes_since_entry: u64,
    pub max_timestamp: i64,
}

impl IndexCursor {
    pub fn fresh() -> IndexCursor {
        IndexCursor {
            bytes_since_entry: 0,
            max_timestamp: -1,
        }
    }

    /// Called before the batch at `position` is published.
    pub fn on_batch(&mut self, seg: &Segment, interval: u64, h: &BatchHeader, position: u64) {
        if self.bytes_since_entry >= interval
            && (position > 0 || interval == 0)
            && !seg.offset_index.file().is_full()
            && !seg.time_index.file().is_full()
        {
            // On a full disk the index point is skipped (both entries or neither, so the
            // time index keeps its meaning) and tried again at the next batch.
            if seg.offset_index.push(h.base_offset as u64, position as u32) {
                if seg.time_index.maybe_push(self.max_timestamp, h.base_offset as u64) {
                    self.bytes_since_entry = 0;
                } else {
                    let n = seg.offset_index.len();
                    seg.offset_index.file().truncate_entries(n - 1);
                }
            }
        }
        self.bytes_since_entry += h.total_bytes() as u64;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
    }
}

impl Segment {
    /// Creates a new, empty, active segment (replacing any leftover files of the same name).
    pub fn create(dir: &Path, base_offset: u64, cfg: &LogConfig) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = io::open(
            OpenOptions::new().read(true).write(true).create(true).truncate(true),
            &log_path,
        )
        .map_err(Error::io("create segment", &log_path))?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&dir.join(file_name(base_offset, suffix)))?;
        }
        let seg = Segment::with_file(dir, base_offset, cfg, log_path, file)?;
        seg.mark_index_built_here();
        seg.make_active()?;
        Ok(seg)
    }

    /// Says the indexes were (re)built by this process from the log.
    pub fn mark_index_built_here(&self) {
        self.index_built_here.store(true, Ordering::Release);
    }

    /// Opens an existing segment. `size` is the file length and `next_offset` the base
    /// offset until recovery (or the clean-open tail check) says otherwise.
    pub fn open(dir: &Path, base_offset: u64, cfg: &LogConfig) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let file = io::open(OpenOptions::new().read(true).write(true), &log_path)
            .map_err(Error::io("open segment", &log_path))?;
        Segment::with_file(dir, base_offset, cfg, log_path, file)
    }

    fn with_file(dir: &Path, base_offset: u64, cfg: &LogConfig, log_path: PathBuf, file: File) -> Result<Segment> {
        let size = file.metadata().map_err(Error::io("stat segment", &log_path))?.len();
        // Index capacity: whole entries only.
        let idx_bytes = cfg.segment_index_bytes / offset_index::ENTRY_BYTES as u64 * offset_index::ENTRY_BYTES as u64;
        let tidx_bytes = cfg.segment_index_bytes / time_index::ENTRY_BYTES as u64 * time_index::ENTRY_BYTES as u64;
        Ok(Segment {
            base_offset,
            offset_index: OffsetIndex::open(&dir.join(file_name(base_offset, INDEX_SUFFIX)), base_offset, idx_bytes)?,
            time_index: TimeIndex::open(
                &dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
                base_offset,
                tidx_bytes,
            )?,
            log_path,
            file: Arc::new(file),
            size: AtomicU64::new(size),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(-1),
            first_batch_timestamp: AtomicI64::new(-1),
            index_built_here: std::sync::atomic::AtomicBool::new(false),
        })
    }

    #[inline]
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }
    #[inline]
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    #[inline]
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }
    #[inline]
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }
    #[inline]
    pub fn first_batch_timestamp(&self) -> i64 {
        self.first_batch_timestamp.load(Ordering::Acquire)
    }
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Writes `bytes` at the end of the file. Writer only; not yet visible to readers.
    pub fn write_at_end(&self, bytes: &[u8]) -> Result<()> {
        io::write_at(&self.file, &self.log_path, bytes, self.size.load(Ordering::Relaxed))
            .map_err(Error::io("append to", &self.log_path))
    }

    /// Makes written bytes visible. Writer only, after the index entries were added.
    pub fn publish(&self, size: u64, next_offset: u64, max_timestamp: i64) {
        debug_assert!(size >= self.size.load(Ordering::Relaxed) || next_offset <= self.next_offset());
        if self.first_batch_timestamp.load(Ordering::Relaxed) < 0 && size > 0 {
            let first = if max_timestamp >= 0 { max_timestamp } else { 0 };
            self.first_batch_timestamp.store(first, Ordering::Release);
        }
        self.max_timestamp.store(max_timestamp, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(size, Ordering::Release);
    }

    /// Sets the published state after a scan or truncation. Writer (or opener) only.
    pub fn reset_state(&self, size: u64, next_offset: u64, max_timestamp: i64, first_batch_timestamp: i64) {
        self.first_batch_timestamp
            .store(first_batch_timestamp, Ordering::Release);
        self.max_timestamp.store(max_timestamp, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(size, Ordering::Release);
    }

    /// The header of the batch at `position`, if a whole header lies below `limit`.
    pub fn read_header(&self, position: u64, limit: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_BYTES as u64 > limit {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_BYTES];
        io::read_at(&self.file, &self.log_path, &mut buf, position)
            .map_err(Error::io("read batch header", &self.log_path))?;
        Ok(Some(BatchHeader::parse(&buf)?))
    }

    /// Walks batch headers from `pos` (a batch boundary) while `more` says so, returning
    /// the header it stopped at, or None at `limit`. Headers are read in windows of
    /// [`HEADER_WINDOW_BYTES`], so the few batches of one index interval cost one `pread`
    /// instead of one each.
    fn walk_headers(
        &self,
        pos: u64,
        limit: u64,
        first_window: usize,
        mut more: impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        thread_local! {
            // Reused across calls: zeroing a fresh 8 KiB window would cost as much as the read.
            static WINDOW: std::cell::RefCell<Box<[u8; HEADER_WINDOW_BYTES]>> =
                std::cell::RefCell::new(Box::new([0u8; HEADER_WINDOW_BYTES]));
        }
        WINDOW.with(|w| {
            let mut window = w.borrow_mut();
            self.walk_headers_in(&mut window[..], pos, limit, first_window, &mut more)
        })
    }

    fn walk_headers_in(
        &self,
        window: &mut [u8],
        mut pos: u64,
        limit: u64,
        first_window: usize,
        more: &mut impl FnMut(u64, &BatchHeader) -> bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let (mut win_pos, mut win_len) = (0u64, 0usize);
        loop {
            if pos + HEADER_BYTES as u64 > limit {
                return Ok(None);
            }
            if pos < win_pos || pos + HEADER_BYTES as u64 > win_pos + win_len as u64 {
                let want = if win_len == 0 {
                    first_window
                } else {
                    HEADER_WINDOW_BYTES
                };
                win_len = (limit - pos).min(want as u64) as usize;
                io::read_at(&self.file, &self.log_path, &mut window[..win_len], pos)
                    .map_err(Error::io("read batch headers", &self.log_path))?;
                win_pos = pos;
            }
            let at = (pos - win_pos) as usize;
            let h = BatchHeader::parse(&window[at..win_len])?;
            if !more(pos, &h) {
                return Ok(Some((pos, h)));
            }
            pos += h.total_bytes() as u64;
        }
    }

    /// Position and header of the batch holding `offset`, looking only below `size_limit`.
    pub fn find_batch(&self, offset: u64, size_limit: u64) -> Result<Option<(u64, BatchHeader)>> {
        let (entry, next) = self.offset_index.lookup_with_next(offset, size_limit);
        let from = entry.position as u64;
        // The batch holding `offset` starts before the next index entry. If that stretch
        // is small, read all of it at once (one `pread` for every header to walk); if it
        // is large, the batches are large, and the first header or two are enough.
        let stretch = next.unwrap_or(size_limit).saturating_sub(from) as usize + HEADER_BYTES;
        // A target at the entry itself (a sequential consumer: regions end on entries)
        // needs only that header.
        let first_window = if entry.offset == offset || stretch > HEADER_WINDOW_BYTES {
            FIRST_HEADER_WINDOW_BYTES
        } else {
            stretch
        };
        // The entry is checked against the batch it points at (the first header we read
        // anyway): an index damaged on disk costs a scan from the segment start, never
        // wrong data.
        let mut first = true;
        let mut bad_entry = false;
        let found = self.walk_headers(from, size_limit, first_window, |_, h| {
            if first && from > 0 && h.base_offset as u64 != entry.offset {
                bad_entry = true;
                return false;
            }
            first = false;
            (h.last_offset() as u64) < offset
        });
        match found {
            Ok(r) if !bad_entry => Ok(r),
            Err(_) | Ok(_) if from > 0 => {
                tracing::warn!(segment = %self.log_path.display(), position = from, "offset index entry does not match the log; scanning");
                self.walk_headers(0, size_limit, HEADER_WINDOW_BYTES, |_, h| {
                    (h.last_offset() as u64) < offset
                })
            }
            other => other,
        }
    }

    /// Where a region that starts at the batch boundary `start` ends: a batch boundary at
    /// most `max_bytes` past `start`, but always past the first batch (`first_len` bytes),
    /// so a reader makes progress even when one batch exceeds `max_bytes`.
    ///
    /// The offset index already lists batch boundaries every `index.interval.bytes`, so the
    /// last entry below the limit is the end (checked against its batch header, one small
    /// read, skipped when this process built the index); the region may then stop up to
    /// one index interval short of `max_bytes`. Only when no entry falls inside the range
    /// are headers walked.
    pub fn batch_end_within(&self, start: u64, first_len: u64, max_bytes: u64, size_limit: u64) -> Result<u64> {
        let limit = start.saturating_add(max_bytes);
        if limit >= size_limit {
            return Ok(size_limit);
        }
        let entry = self.offset_index.lookup_position(limit);
        if entry.position as u64 > start
            && (self.index_built_here.load(Ordering::Acquire)
                || matches!(self.read_header(entry.position as u64, size_limit), Ok(Some(h)) if h.base_offset as u64 == entry.offset))
        {
            return Ok(entry.position as u64);
        }
        let end = match self.walk_headers(start, size_limit, HEADER_WINDOW_BYTES, |pos, h| {
            pos + h.total_bytes() as u64 <= limit
        })? {
            Some((pos, _)) => pos,
            None => size_limit,
        };
        Ok(if end <= start { start + first_len } else { end })
    }

    /// The offset after the last whole batch in `[start, end)` (both batch boundaries),
    /// `None` if none lies there. Reads the headers from the last offset-index entry in
    /// the range (usually one), so a fetch knows how many records it sends without
    /// reading them.
    pub fn offset_after(&self, start: u64, end: u64) -> Result<Option<u64>> {
        let entry = self.offset_index.lookup_position(end.saturating_sub(1));
        let from = entry.position as u64;
        // Start at the index entry if it lies in the range and names the batch there.
        // (An index can be damaged: an entry that does not name a batch start is ignored.)
        let mut known = (from > start && from < end)
            .then(|| self.read_header(from, end).ok().flatten())
            .flatten()
            .filter(|h| h.base_offset as u64 == entry.offset);
        let mut pos = if known.is_some() { from } else { start };
        let mut next = None;
        loop {
            let h = match known.take() {
                Some(h) => h,
                None => match self.read_header(pos, end)? {
                    Some(h) => h,
                    None => break,
                },
            };
            if pos + h.total_bytes() as u64 > end {
                break;
            }
            next = Some(h.next_offset() as u64);
            pos += h.total_bytes() as u64;
        }
        Ok(next)
    }

    /// Reads batches from `start` (offset `start_offset`) to the end of the file, checking
    /// framing, CRC and offset continuity of each; stops at the first bad or torn batch.
    /// With `cursor`, adds index entries as appends would (the indexes must already be
    /// truncated to `start`).
    pub fn scan(
        &self,
        start: u64,
        start_offset: u64,
        mut cursor: Option<(&mut IndexCursor, u64)>,
        max_epoch: i32,
    ) -> Result<ScanOutcome> {
        let file_len = self
            .file
            .metadata()
            .map_err(Error::io("stat segment", &self.log_path))?
            .len();
        let mut out = ScanOutcome {
            valid_bytes: start,
            next_offset: start_offset,
            max_timestamp: -1,
            first_batch_timestamp: -1,
            stopped: None,
        };
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_pos = start; // file position of buf[0]
        let mut pos = start;
        while pos < file_len {
            let remaining = file_len - pos;
            // Make sure the header, then the whole batch, is in the buffer.
            let need_header = (LOG_OVERHEAD as u64).min(remaining) as usize;
            self.fill(&mut buf, &mut buf_pos, pos, need_header, file_len)?;
            let at = (pos - buf_pos) as usize;
            if remaining < LOG_OVERHEAD as u64 {
                out.stopped = Some(format!("{remaining} trailing bytes, less than a batch header"));
                break;
            }
            let total = match batch::check_batch(&buf[at..at + LOG_OVERHEAD]) {
                Err(e) => {
                    out.stopped = Some(e.to_string());
                    break;
                }
                Ok(_) => {
                    let len = i32::from_be_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
                    LOG_OVERHEAD as u64 + len as u64
                }
            };
            if total > remaining {
                out.stopped = Some(format!(
                    "batch at position {pos} claims {total} bytes but only {remaining} remain (torn write)"
                ));
                break;
            }
            self.fill(&mut buf, &mut buf_pos, pos, total as usize, file_len)?;
            let at = (pos - buf_pos) as usize;
            let h = match batch::validate(&buf[at..at + total as usize]) {
                Ok(h) => h,
                Err(e) => {
                    out.stopped = Some(format!("batch at position {pos}: {e}"));
                    break;
                }
            };
            // partitionLeaderEpoch is outside the CRC; the broker stamps it (after recording
            // a new epoch in the history), so anything but a known epoch is damage.
            if !(0..=max_epoch).contains(&h.partition_leader_epoch) {
                out.stopped = Some(format!(
                    "batch at position {pos} has leader epoch {}, past the highest known epoch {max_epoch}",
                    h.partition_leader_epoch,
                ));
                break;
            }
            if h.base_offset as u64 != out.next_offset {
                out.stopped = Some(format!(
                    "batch at position {pos} has base offset {} where {} was expected",
                    h.base_offset, out.next_offset
                ));
                break;
            }
            if h.last_offset() as u64 - self.base_offset > u32::MAX as u64 {
                out.stopped = Some(format!("batch at position {pos} overflows the segment's offset range"));
                break;
            }
            if let Some((cursor, interval)) = cursor.as_mut() {
                cursor.on_batch(self, *interval, &h, pos);
            }
            if out.first_batch_timestamp < 0 && pos == 0 {
                out.first_batch_timestamp = h.max_timestamp.max(0);
            }
            out.max_timestamp = out.max_timestamp.max(h.max_timestamp);
            out.next_offset = h.next_offset() as u64;
            pos += total;
            out.valid_bytes = pos;
        }
        Ok(out)
    }

    /// Ensures `buf` holds file bytes `[pos, pos + need)`, refilling it sequentially.
    fn fill(&self, buf: &mut Vec<u8>, buf_pos: &mut u64, pos: u64, need: usize, file_len: u64) -> Result<()> {
        let have_end = *buf_pos + buf.len() as u64;
        if pos >= *buf_pos && pos + need as u64 <= have_end {
            return Ok(());
        }
        let want = need.max(SCAN_BUFFER_BYTES).min((file_len - pos) as usize);
        buf.resize(want, 0);
        io::read_at(&self.file, &self.log_path, buf, pos).map_err(Error::io("read segment", &self.log_path))?;
        *buf_pos = pos;
        Ok(())
    }

    /// Cuts the file at `position` and drops index entries past it.
    pub fn truncate_to(&self, position: u64, next_offset: u64) -> Result<()> {
        self.offset_index.truncate_to_position(position);
        self.time_index.truncate_to_offset(next_offset);
        io::set_len(&self.file, &self.log_path, position).map_err(Error::io("truncate segment", &self.log_path))?;
        Ok(())
    }

    /// Grows both indexes back to capacity: the segment is (again) the one appended to,
    /// or recovery rebuilds its indexes. The counterpart of [`trim_indexes`](Self::trim_indexes).
    pub fn make_active(&self) -> Result<()> {
        self.offset_index.file().extend()?;
        self.time_index.file().extend()
    }

    /// Trims both indexes to their entries: the segment is no longer written.
    pub fn trim_indexes(&self) -> Result<()> {
        self.offset_index.file().trim()?;
        self.time_index.file().trim()
    }

    /// Makes the log file durable (data, and its size).
    pub fn sync_log(&self) -> Result<()> {
        io::sync_data(&self.file, &self.log_path).map_err(Error::io("fdatasync", &self.log_path))
    }

    /// Makes log and indexes durable: used when a segment is sealed by a roll.
    pub fn sync_all(&self) -> Result<()> {
        self.sync_log()?;
        self.offset_index.file().sync()?;
        self.time_index.file().sync()
    }

    /// Removes the segment's files (see [`delete_segment_files`]).
    pub fn delete_files(&self) -> Result<()> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        delete_segment_files(dir, self.base_offset)
    }
}
