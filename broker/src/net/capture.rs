//! Request frames captured for the fuzz corpus: when the environment variable
//! `RUNNEL_CAPTURE_FRAMES` names a directory as the process starts, every request frame
//! either listener reads is also written there, one file per frame (`kafka-N` or
//! `native-N`, length prefix included). `scripts/fuzz-corpus` runs real clients against a
//! broker with it set and picks seeds from what they sent. Unset, each frame costs one
//! load of an initialised `OnceLock`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Writes `frame` to the capture directory, if one is set. Failures are ignored: capture
/// never gets in the way of serving.
#[inline]
pub fn frame(protocol: &str, frame: &[u8]) {
    let dir = DIR.get_or_init(|| std::env::var_os("RUNNEL_CAPTURE_FRAMES").map(PathBuf::from));
    if let Some(dir) = dir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{protocol}-{}-{n}", std::process::id())), frame);
    }
}
