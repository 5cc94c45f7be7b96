#![no_main]

use libfuzzer_sys::fuzz_target;

/// A directory of this process's own, in memory where there is a tmpfs.
fn dir() -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("runnel-fuzz-segment_recovery-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| runnel_broker::fuzzing::segment_recovery(&dir(), data));
