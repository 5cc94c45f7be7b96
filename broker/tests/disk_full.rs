//! A full disk: appends fail with a clear error, nothing already written is lost, the index
//! writer never faults on the memory-mapped file (SIGBUS), and once retention frees space
//! appends work again. Runs on a 1 MiB tmpfs, which needs root (CI runs as root); without
//! the right to mount, it says so and does nothing.

mod common;

use std::process::Command;

use common::{batch, open, read_all};
use runnel_broker::storage::LogConfig;
use runnel_broker::Error;

struct Mount(tempfile::TempDir);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn full_disk_fails_appends_cleanly_and_recovers_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("disk_full: cannot mount a tmpfs here (not root?); not run");
        return;
    }
    let mount = Mount(dir);
    let path = mount.0.path().join("log");
    let cfg = LogConfig {
        segment_bytes: 128 * 1024,
        segment_index_bytes: 256 * 1024, // larger than the disk: sparse until reserved
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let log = open(&path, cfg.clone(), false);
    let mut appended = 0u64;
    let err = loop {
        match log.append(&mut batch(appended, 4, 900, appended as i64)) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
        assert!(appended < 10_000, "a 1 MiB disk filled up");
    };
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(appended > 50);
    // Nothing written before is lost, and failed appends left no trace.
    assert_eq!(log.end_offset(), appended * 4);
    let records = read_all(&log, 0, 1 << 20);
    assert_eq!(records.len() as u64, appended * 4);
    // The failed write was cut back, so the same append fails the same way.
    assert!(
        log.append(&mut batch(appended, 4, 900, appended as i64)).is_err(),
        "still full"
    );
    assert_eq!(log.end_offset(), appended * 4);

    // Retention frees space; appends work again.
    log.set_config(LogConfig {
        retention_bytes: 256 * 1024,
        ..cfg.clone()
    });
    assert!(!log.apply_retention(0).unwrap().is_empty());
    let start = log.start_offset();
    for i in 0..20 {
        log.append(&mut batch(10_000 + i, 4, 900, 0)).unwrap();
    }
    let end = log.end_offset();
    log.close().unwrap();
    drop(log);
    let log = open(&path, cfg, true);
    assert_eq!((log.start_offset(), log.end_offset()), (start, end));
    assert_eq!(read_all(&log, start, 1 << 20).len() as u64, end - start);
}
