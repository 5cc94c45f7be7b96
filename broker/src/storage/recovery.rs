//! Opening a partition log: finding its segments, checking them against their indexes,
//! and cutting whatever a crash tore.
//!
//! The recovery checkpoint (`recovery-point`, one decimal offset and a newline, replaced
//! atomically by rename) holds the base offset of a segment such that every segment before
//! it was fully synced (log and indexes) when it was written. It advances when a sealed
//! segment has been synced, and on clean close.
//!
//! On open, per segment in offset order:
//!
//! - at or past the checkpoint, after an unclean stop: rebuild both indexes by scanning the
//!   whole segment, validating each batch (length, magic, CRC-32C, contiguous offsets);
//! - otherwise (or after a clean stop, whose marker the caller checked): trust the indexes
//!   only if they are whole, ordered and inside the log, then scan from the last offset
//!   index entry to the end of the file; any disagreement means a full rebuild.
//!
//! The first invalid batch ends the log: the segment is cut there and every later segment
//! is deleted, so the log is always the longest valid prefix. Every cut is logged at
//! `warn` with its reason.

use std::path::Path;
use std::sync::Arc;

use tracing::warn;

use super::config::LogConfig;
use super::io;
use super::segment::{self, IndexCursor, ScanOutcome, Segment};
use crate::error::{Error, Result};

pub(crate) const CHECKPOINT_FILE: &str = "recovery-point";

pub(crate) struct Opened {
    pub segments: Vec<Arc<Segment>>,
    pub cursor: IndexCursor,
    /// Bytes cut from torn or corrupt tails, and of segments dropped after them.
    pub truncated_bytes: u64,
}

/// The log start offset that DeleteRecords set (same format as the checkpoint): the log
/// starts at the larger of it and the first segment's base.
pub(crate) const LOG_START_FILE: &str = "log-start-offset";

pub(crate) fn read_checkpoint(dir: &Path) -> u64 {
    read_offset_file(dir, CHECKPOINT_FILE).unwrap_or(0)
}

pub(crate) fn write_checkpoint(dir: &Path, offset: u64) -> Result<()> {
    write_offset_file(dir, CHECKPOINT_FILE, offset)
}

/// An offset file's value (one decimal offset and a newline), `None` if missing or bad.
pub(crate) fn read_offset_file(dir: &Path, name: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Replaces an offset file durably: a synced temporary renamed over it, then the
/// directory synced.
pub(crate) fn write_offset_file(dir: &Path, name: &str, offset: u64) -> Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{seq}.tmp"));
    let path = dir.join(name);
    (|| -> std::io::Result<()> {
        let f = io::create(&tmp)?;
        io::write_at(&f, &tmp, format!("{offset}\n").as_bytes(), 0)?;
        io::sync_data(&f, &tmp)?;
        io::rename(&tmp, &path)
    })()
    .map_err(|e| {
        // A half-written temporary (full disk) would hold space; start-up removes leftovers.
        let _ = io::remove_file(&tmp);
        Error::io("write checkpoint", &path)(e)
    })?;
    super::log::sync_dir(dir)
}

/// Segment base offsets found in `dir`, sorted. Index files without a log (a crash while
/// deleting a segment) and temporary files are removed.
fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(CHECKPOINT_FILE) && name.ends_with(".tmp") {
            segment::remove_if_exists(&dir.join(&name))?;
            continue;
        }
        let Some((stem, suffix)) = name.split_once('.') else {
            continue;
        };
        let Ok(base) = stem.parse::<u64>() else {
            continue;
        };
        match suffix {
            segment::LOG_SUFFIX => bases.push(base),
            segment::INDEX_SUFFIX | segment::TIME_INDEX_SUFFIX => others.push((base, name)),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, name) in others {
        if bases.binary_search(&base).is_err() {
            warn!(dir = %dir.display(), file = %name, "removing index file without a segment");
            let p = dir.join(&name);
            io::remove_file(&p).map_err(Error::io("remove", p))?;
        }
    }
    Ok(bases)
}

/// `max_epoch`: the newest leader epoch the log's history knows; a batch stamped with a
/// newer one is damage (the epoch field is outside the CRC).
pub(crate) fn open_segments(dir: &Path, cfg: &LogConfig, clean: bool, max_epoch: i32) -> Result<Opened> {
    let checkpoint = if clean { u64::MAX } else { read_checkpoint(dir) };
    let bases = list_segments(dir)?;
    if bases.is_empty() {
        let seg = Segment::create(dir, 0, cfg)?;
        // The new segment's name is durable before anything is acknowledged from it.
        super::log::sync_dir(dir)?;
        return Ok(Opened {
            segments: vec![Arc::new(seg)],
            cursor: IndexCursor::fresh(),
            truncated_bytes: 0,
        });
    }
    let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
    let mut cursor = IndexCursor::fresh();
    let mut stop_at: Option<usize> = None;
    let mut truncated_bytes = 0u64;
    for (i, &base) in bases.iter().enumerate() {
        if let Some(prev) = segments.last() {
            if prev.next_offset() != base {
                warn!(
                    dir = %dir.display(),
                    segment = base,
                    expected = prev.next_offset(),
                    "segment does not continue the log; dropping it and every later segment"
                );
                stop_at = Some(i);
                break;
            }
        }
        let seg = Segment::open(dir, base, cfg)?;
        let trusted = if clean || base < checkpoint {
            let loaded = load_from_indexes(&seg, max_epoch)?;
            if loaded.is_none() {
                warn!(dir = %dir.display(), segment = base, "index disagrees with the log; rebuilding it");
            }
            loaded
        } else {
            None
        };
        let (outcome, c) = match trusted {
            Some(x) => x,
            None => rebuild(&seg, cfg, max_epoch)?,
        };
        cursor = c;
        let file_len = seg.size();
        seg.reset_state(
            outcome.valid_bytes,
            outcome.next_offset,
            outcome.max_timestamp,
            outcome.first_batch_timestamp,
        );
        let cut = outcome.stopped.is_some();
        if let Some(why) = &outcome.stopped {
            warn!(
                dir = %dir.display(),
                segment = base,
                position = outcome.valid_bytes,
                bytes_cut = file_len - outcome.valid_bytes,
                reason = %why,
                "cutting torn or corrupt log tail"
            );
            seg.truncate_to(outcome.valid_bytes, outcome.next_offset)?;
            truncated_bytes += file_len - outcome.valid_bytes;
        }
        segments.push(Arc::new(seg));
        if cut {
            stop_at = Some(i + 1);
            break;
        }
    }
    if let Some(from) = stop_at {
        for &base in &bases[from..] {
            warn!(dir = %dir.display(), segment = base, "deleting segment after the end of the valid log");
            truncated_bytes +=
                std::fs::metadata(dir.join(segment::file_name(base, segment::LOG_SUFFIX))).map_or(0, |m| m.len());
            segment::delete_segment_files(dir, base)?;
        }
    }
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if i == last {
            seg.make_active()?;
        } else {
            seg.trim_indexes()?;
        }
    }
    Ok(Opened {
        segments,
        cursor,
        truncated_bytes,
    })
}

/// Re-derives a live segment's state after its tail was cut (`truncate_to`).
pub(crate) fn load_tail(seg: &Segment, cfg: &LogConfig, max_epoch: i32) -> Result<IndexCursor> {
    let (o, c) = match load_from_indexes(seg, max_epoch)? {
        Some(x) => x,
        None => rebuild(seg, cfg, max_epoch)?,
    };
    seg.reset_state(o.valid_bytes, o.next_offset, o.max_timestamp, o.first_batch_timestamp);
    Ok(c)
}

/// Trusts the indexes if they are consistent and the log past the last offset-index entry
/// scans cleanly to the end of the file; None if anything disagrees.
fn load_from_indexes(seg: &Segment, max_epoch: i32) -> Result<Option<(ScanOutcome, IndexCursor)>> {
    let size = seg.file().metadata().map_err(Error::io("stat", seg.log_path()))?.len();
    let (oi, ti) = (&seg.offset_index, &seg.time_index);
    if !oi.file().opened_whole() || !ti.file().opened_whole() || !oi.is_consistent(size, None) {
        return Ok(None);
    }
    let (pos, offset) = oi
        .last()
        .map_or((0, seg.base_offset()), |e| (e.position as u64, e.offset));
    let mut outcome = seg.scan(pos, offset, None, max_epoch)?;
    if outcome.stopped.is_some() || !ti.is_consistent(Some(outcome.next_offset)) {
        return Ok(None);
    }
    // Batches before the last offset-index entry have max timestamps no larger than the
    // last time-index entry (see `time_index`), so this is the segment's max timestamp.
    let max_ts = ti.last().map_or(-1, |e| e.timestamp).max(outcome.max_timestamp);
    if pos > 0 {
        outcome.first_batch_timestamp = match seg.read_header(0, size)? {
            Some(h) => h.max_timestamp.max(0),
            None => return Ok(None),
        };
    }
    outcome.max_timestamp = max_ts;
    let cursor = IndexCursor {
        bytes_since_entry: size - pos,
        max_timestamp: max_ts,
    };
    Ok(Some((outcome, cursor)))
}

/// Rebuilds both indexes from a full validating scan.
fn rebuild(seg: &Segment, cfg: &LogConfig, max_epoch: i32) -> Result<(ScanOutcome, IndexCursor)> {
    seg.offset_index.file().truncate_entries(0);
    seg.time_index.file().truncate_entries(0);
    seg.make_active()?;
    let mut cursor = IndexCursor::fresh();
    let outcome = seg.scan(
        0,
        seg.base_offset(),
        Some((&mut cursor, cfg.index_interval_bytes)),
        max_epoch,
    )?;
    seg.mark_index_built_here();
    Ok((outcome, cursor))
}
