//! Crash tests: segment and index files cut at arbitrary byte positions, and bits flipped
//! in the log tail. Recovery must keep the longest valid prefix, never serve a corrupt
//! batch, and take appends afterwards.

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use common::{batch, open, read_all, small_config};

/// One log, written once, then copied for each damage so every case starts the same.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// (base offset, segment base, position in segment, length) of every batch.
    batches: Vec<(u64, u64, u64, u64)>,
    records: Vec<(u64, Vec<u8>)>,
    /// (offset, timestamp) of every record.
    timestamps: Vec<(u64, i64)>,
    segments: Vec<u64>,
}

fn timestamps(log: &runnel_broker::storage::PartitionLog) -> Vec<(u64, i64)> {
    let region = |o| log.read(o, u64::MAX).unwrap().region;
    let mut out = Vec::new();
    let mut next = 0;
    while let Some(r) = region(next) {
        for b in runnel_protocol::RecordBatch::split_all(r.read_to_vec().unwrap().into()).unwrap() {
            out.extend(b.records().unwrap().iter().map(|r| (r.offset as u64, r.timestamp)));
            next = b.header().next_offset() as u64;
        }
    }
    out
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let log = open(&path, small_config(), false);
    let mut batches = Vec::new();
    for tag in 0..120u64 {
        let mut b = batch(
            tag,
            1 + (tag % 4) as usize,
            20 + (tag % 7) as usize * 10,
            1_000 + tag as i64,
        );
        let len = b.len() as u64;
        let info = log.append(&mut b).unwrap();
        batches.push((info.base_offset, 0, 0, len));
    }
    // Seal and sync earlier segments (this advances the recovery checkpoint), then crash:
    // no clean close, so the active segment's indexes stay preallocated.
    log.flush().unwrap();
    let segments = log.segment_base_offsets();
    for b in batches.iter_mut() {
        let seg = *segments.iter().filter(|&&s| s <= b.0).max().unwrap();
        b.1 = seg;
    }
    let mut pos = 0;
    let mut seg = 0;
    for b in batches.iter_mut() {
        if b.1 != seg {
            seg = b.1;
            pos = 0;
        }
        b.2 = pos;
        pos += b.3;
    }
    let records = read_all(&log, 0, 1 << 20);
    let timestamps = timestamps(&log);
    drop(log);
    assert!(segments.len() >= 4, "the fixture spans several segments");
    Fixture {
        _dir: dir,
        path,
        batches,
        records,
        timestamps,
        segments,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn seg_file(dir: &Path, base: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

impl Fixture {
    /// Opens a damaged copy uncleanly and checks it holds exactly the records below
    /// `expected_end`, then that appends and reads work.
    fn check(&self, damage: impl FnOnce(&Path), expected_end: u64, what: &str) {
        let work = tempfile::tempdir().unwrap();
        copy_dir(&self.path, work.path());
        damage(work.path());
        let log = open(work.path(), small_config(), false);
        assert_eq!(log.end_offset(), expected_end, "{what}: end offset");
        let got = read_all(&log, 0, 1 << 20);
        let want: Vec<_> = self.records.iter().filter(|r| r.0 < expected_end).cloned().collect();
        assert_eq!(got, want, "{what}: records");
        // Every offset through the offset index, and timestamps through the time index.
        for (i, (offset, value)) in want.iter().enumerate().step_by(3) {
            let region = log.read(*offset, 1).unwrap().region.unwrap();
            let b = runnel_protocol::RecordBatch::new(region.read_to_vec().unwrap().into()).unwrap();
            let rec = b.records().unwrap().into_iter().find(|r| r.offset as u64 == *offset);
            assert_eq!(
                rec.and_then(|r| r.value).as_deref(),
                Some(&value[..]),
                "{what}: read at {offset} ({i})"
            );
        }
        for t in (1_000..1_130).step_by(7) {
            let expected = self
                .timestamps
                .iter()
                .find(|(o, ts)| *o < expected_end && *ts >= t)
                .copied();
            assert_eq!(log.offset_for_timestamp(t).unwrap(), expected, "{what}: timestamp {t}");
        }
        let info = log.append(&mut batch(999, 2, 10, 5_000)).unwrap();
        assert_eq!(info.base_offset, expected_end, "{what}: appends continue");
        let after = read_all(&log, expected_end, 1 << 20);
        assert_eq!(after.len(), 2, "{what}: new records readable");
        // And the repaired log reopens cleanly to the same state.
        log.close().unwrap();
        drop(log);
        let log = open(work.path(), small_config(), true);
        assert_eq!(log.end_offset(), expected_end + 2, "{what}: reopen");
    }

    /// The end offset when segment `seg` keeps only batches ending at or before `pos`.
    fn end_if_cut(&self, seg: u64, pos: u64) -> u64 {
        self.batches
            .iter()
            .filter(|b| b.1 < seg || (b.1 == seg && b.2 + b.3 <= pos))
            .map(|b| {
                b.0 + self
                    .records
                    .iter()
                    .filter(|r| r.0 >= b.0)
                    .take_while(|r| {
                        // records of this batch: up to the next batch's base
                        let next = self.batches.iter().find(|n| n.0 > b.0).map_or(u64::MAX, |n| n.0);
                        r.0 < next
                    })
                    .count() as u64
            })
            .max()
            .unwrap_or(0)
    }
}

#[test]
fn segment_files_cut_anywhere_keep_the_longest_valid_prefix() {
    let f = fixture();
    for &seg in &f.segments {
        let len = std::fs::metadata(seg_file(&f.path, seg, "log")).unwrap().len();
        // Every position in the tail segment; a spread of positions in older ones.
        let step = if seg == *f.segments.last().unwrap() { 1 } else { 97 };
        for cut in (0..len).step_by(step) {
            let expected = f.end_if_cut(seg, cut).max(if seg == 0 { 0 } else { seg });
            f.check(
                |d| {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(seg_file(d, seg, "log"))
                        .unwrap()
                        .set_len(cut)
                        .unwrap()
                },
                expected,
                &format!("segment {seg} cut at {cut}"),
            );
        }
    }
}

#[test]
fn index_files_cut_anywhere_lose_nothing() {
    let f = fixture();
    let end = f.records.last().unwrap().0 + 1;
    for &seg in &f.segments {
        for suffix in ["index", "timeindex"] {
            let path = seg_file(&f.path, seg, suffix);
            let len = std::fs::metadata(&path).unwrap().len();
            for cut in (0..len.min(600)).step_by(5).chain([len.saturating_sub(1)]) {
                f.check(
                    |d| {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(seg_file(d, seg, suffix))
                            .unwrap()
                            .set_len(cut)
                            .unwrap()
                    },
                    end,
                    &format!("{suffix} of {seg} cut at {cut}"),
                );
            }
        }
    }
}

#[test]
fn bit_flips_in_the_tail_cut_the_log_before_the_damaged_batch() {
    let f = fixture();
    let tail = *f.segments.last().unwrap();
    let len = std::fs::metadata(seg_file(&f.path, tail, "log")).unwrap().len();
    for pos in 0..len {
        let bit = 1u8 << (pos % 8);
        // The damaged batch and everything after it go.
        let damaged = f
            .batches
            .iter()
            .find(|b| b.1 == tail && b.2 <= pos && pos < b.2 + b.3)
            .unwrap();
        let expected = damaged.0;
        f.check(
            |d| {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(seg_file(d, tail, "log"))
                    .unwrap();
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, pos).unwrap();
                byte[0] ^= bit;
                file.write_all_at(&byte, pos).unwrap();
            },
            expected,
            &format!("bit {bit:#04x} flipped at {pos} of the tail segment"),
        );
    }
}

#[test]
fn bit_flips_in_index_files_never_serve_wrong_data() {
    let f = fixture();
    let end = f.records.last().unwrap().0 + 1;
    for &seg in &f.segments {
        for suffix in ["index", "timeindex"] {
            let len = std::fs::metadata(seg_file(&f.path, seg, suffix)).unwrap().len();
            for pos in (0..len.min(400)).step_by(3) {
                f.check(
                    |d| {
                        let file = std::fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .open(seg_file(d, seg, suffix))
                            .unwrap();
                        let mut byte = [0u8];
                        file.read_exact_at(&mut byte, pos).unwrap();
                        byte[0] ^= 1 << (pos % 8);
                        file.write_all_at(&byte, pos).unwrap();
                    },
                    end,
                    &format!("{suffix} of {seg}: bit flipped at {pos}"),
                );
            }
        }
    }
}

#[test]
fn a_lost_middle_segment_ends_the_log_there() {
    let f = fixture();
    let lost = f.segments[2];
    f.check(
        |d| std::fs::remove_file(seg_file(d, lost, "log")).unwrap(),
        lost,
        "middle segment deleted",
    );
}
