//! The file operations storage makes, in one place: create, write, truncate, sync,
//! rename, remove, directory sync, and the reads whose failure a test may want to see.
//!
//! Each goes to the real file system. A test can install a [`Disk`] for a directory tree
//! ([`install`]); operations on paths under it then go through that disk instead, which
//! does the real operation and may record it or fail it: [`crate::storage::sim::SimDisk`]
//! simulates power loss (dropping what was never synced) and disk faults (EIO, ENOSPC,
//! read errors). With nothing installed — every broker outside the tests — the cost is
//! one relaxed atomic load per operation, beside a system call.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// The file operations storage makes. Every method has the real behaviour as its default;
/// a test disk overrides them to watch or fail them.
pub trait Disk: Send + Sync + 'static {
    /// Opens (and maybe creates or truncates) a file.
    fn open(&self, opts: &OpenOptions, path: &Path) -> io::Result<File> {
        opts.open(path)
    }
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        let _ = path;
        file.write_all_at(buf, offset)
    }
    /// Sets the file's length.
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        let _ = path;
        file.set_len(len)
    }
    /// `fdatasync`: the file's data and size are durable when it returns Ok.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        let _ = path;
        file.sync_data()
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, file: &File, path: &Path, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let _ = path;
        file.read_exact_at(buf, offset)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// The real file system.
pub struct RealDisk;

impl Disk for RealDisk {}

/// Set once by the daemon's simulated power cut (`--simulated-power-loss`, SIGUSR1): the
/// machine is off. The process lives on only to write the disk as the cut left it, and
/// must not be heard from meanwhile — no reply, no request to another broker — as a
/// machine without power is not (before this, a dying leader answered follower fetches
/// and producers from memory while its disk was being rolled back).
static POWERED_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The simulated power cut happened (see [`POWERED_OFF`]).
pub fn power_off() {
    POWERED_OFF.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether the simulated power cut happened: nothing may leave this process any more.
pub fn powered_off() -> bool {
    POWERED_OFF.load(std::sync::atomic::Ordering::Acquire)
}

static INSTALLED: AtomicUsize = AtomicUsize::new(0);
type Installed = Vec<(PathBuf, Arc<dyn Disk>)>;
static DISKS: RwLock<Installed> = RwLock::new(Vec::new());

/// Sends every operation on a path under `root` to `disk` until the guard is dropped.
/// For tests; `root` must be spelled as storage will spell its paths (the data directory
/// as configured).
pub fn install(root: &Path, disk: Arc<dyn Disk>) -> Installation {
    let mut disks = DISKS.write().unwrap_or_else(|e| e.into_inner());
    disks.push((root.to_owned(), disk));
    INSTALLED.fetch_add(1, Ordering::Release);
    Installation { root: root.to_owned() }
}

/// Removes an installed disk when dropped.
pub struct Installation {
    root: PathBuf,
}

impl Drop for Installation {
    fn drop(&mut self) {
        let mut disks = DISKS.write().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = disks.iter().position(|(r, _)| *r == self.root) {
            disks.remove(i);
            INSTALLED.fetch_sub(1, Ordering::Release);
        }
    }
}

/// The disk for `path`: an installed one whose root holds it, or `None` for the real one.
#[inline]
fn disk(path: &Path) -> Option<Arc<dyn Disk>> {
    if INSTALLED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let disks = DISKS.read().unwrap_or_else(|e| e.into_inner());
    disks
        .iter()
        .find(|(root, _)| path.starts_with(root))
        .map(|(_, d)| d.clone())
}

pub fn open(opts: &OpenOptions, path: &Path) -> io::Result<File> {
    match disk(path) {
        None => opts.open(path),
        Some(d) => d.open(opts, path),
    }
}

/// Creates (or truncates) a file for writing (and reading).
pub fn create(path: &Path) -> io::Result<File> {
    open(
        OpenOptions::new().read(true).write(true).create(true).truncate(true),
        path,
    )
}

pub fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
    match disk(path) {
        None => file.write_all_at(buf, offset),
        Some(d) => d.write_at(file, path, buf, offset),
    }
}

pub fn set_len(file: &File, path: &Path, len: u64) -> io::Result<()> {
    match disk(path) {
        None => file.set_len(len),
        Some(d) => d.set_len(file, path, len),
    }
}

pub fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    match disk(path) {
        None => file.sync_data(),
        Some(d) => d.sync_data(file, path),
    }
}

pub fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> io::Result<()> {
    match disk(path) {
        None => file.read_exact_at(buf, offset),
        Some(d) => d.read_at(file, path, buf, offset),
    }
}

pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    match disk(from) {
        None => std::fs::rename(from, to),
        Some(d) => d.rename(from, to),
    }
}

pub fn remove_file(path: &Path) -> io::Result<()> {
    match disk(path) {
        None => std::fs::remove_file(path),
        Some(d) => d.remove_file(path),
    }
}

pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    match disk(path) {
        None => std::fs::remove_dir_all(path),
        Some(d) => d.remove_dir_all(path),
    }
}

pub fn create_dir_all(path: &Path) -> io::Result<()> {
    match disk(path) {
        None => std::fs::create_dir_all(path),
        Some(d) => d.create_dir_all(path),
    }
}

/// Creates `dir` if it is missing and makes its name durable (its parent synced).
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    create_dir_all(dir)?;
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

pub fn sync_dir(path: &Path) -> io::Result<()> {
    match disk(path) {
        None => File::open(path)?.sync_all(),
        Some(d) => d.sync_dir(path),
    }
}

/// Writes `bytes` to `path` whole and durably, in place of what was there: a temporary
/// file written and synced, renamed over `path`, and the directory synced, so a crash
/// leaves either the old contents or the new, never a mix or nothing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let f = create(&tmp)?;
        write_at(&f, &tmp, bytes, 0)?;
        sync_data(&f, &tmp)?;
        rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        let _ = remove_file(&tmp);
    }
    written
}
