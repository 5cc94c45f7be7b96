//! A disk for tests: power loss and disk faults, simulated on a real directory tree.
//!
//! [`SimDisk`] does every operation on the real files (so the running broker sees what it
//! wrote, as it would in the page cache) and remembers what a power cut would keep: each
//! file's contents as of its last `fdatasync`, and each directory's entries as of its last
//! directory sync (the strict model LazyFS takes: a created, renamed or removed name is
//! durable only once its directory is synced). [`SimDisk::crash`] stops the disk (every
//! later operation fails, as in a dead machine); [`SimDisk::restore`] then rewrites the
//! tree as the power cut left it — unsynced writes dropped, or with `torn` a seeded
//! prefix of them kept and the last one cut short, as a disk may have written them.
//!
//! Faults for the disk-fault tests: fail the next writes, syncs or reads of matching
//! paths with an errno, a write with ENOSPC after writing part of its bytes, or crash at
//! the N-th mutating operation (a crash point).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::io::{install, Disk, Installation};

/// What an injected fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    Write,
    Sync,
    Read,
}

/// A fault to inject: the next `count` operations of `op` on paths whose text contains
/// `path_contains` fail with `errno` (writes with ENOSPC write half their bytes first).
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: FaultOp,
    pub path_contains: String,
    pub errno: i32,
    pub count: u32,
}

type Id = u64;
const ROOT: Id = 0;

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Node {
    dir: bool,
    /// Contents as of the last sync (`None`: never synced, empty after a crash).
    durable: Option<Vec<u8>>,
    /// Writes and truncations since.
    pending: Vec<Pending>,
}

type Entries = HashMap<(Id, OsString), Id>;

#[derive(Default)]
struct State {
    nodes: HashMap<Id, Node>,
    next_id: Id,
    /// The names as the running process sees them.
    current: Entries,
    /// The names a power cut would leave.
    durable: Entries,
    crashed: bool,
    /// Mutating operations done; the crash point, if one is set.
    ops: u64,
    crash_at: Option<u64>,
    faults: Vec<Fault>,
    /// Operations that failed because of a fault or the crash.
    failures: u64,
}

/// A simulated disk over the directory tree at `root` (see the module docs).
pub struct SimDisk {
    root: PathBuf,
    state: Mutex<State>,
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss: the disk is gone")
}

impl SimDisk {
    /// Takes over `root` (created if missing): what is in it now counts as durable.
    /// Operations under it go to the simulation until the returned installation drops.
    pub fn install(root: &Path) -> io::Result<(Arc<SimDisk>, Installation)> {
        std::fs::create_dir_all(root)?;
        let sim = Arc::new(SimDisk {
            root: root.to_owned(),
            state: Mutex::new(State::of_tree(root)?),
        });
        let installed = install(root, sim.clone());
        Ok((sim, installed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Crash at the `n`-th mutating operation from now (1: the next one): it and every
    /// later operation fail, as if the machine lost power just before it.
    pub fn crash_after(&self, n: u64) {
        let mut st = self.lock();
        st.crash_at = Some(st.ops + n.max(1));
    }

    /// Mutating operations done so far (to choose crash points from).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the simulated power cut has happened.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Operations that failed because of an injected fault or the crash.
    pub fn failures(&self) -> u64 {
        self.lock().failures
    }

    /// Cuts the power now: every later operation fails.
    pub fn crash(&self) {
        self.lock().crashed = true;
    }

    /// Injects a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every injected fault not yet used up.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Rewrites the tree as the power cut left it, and starts a fresh disk from it.
    /// Call after everything that had the files open is dropped. `torn`: keep a seeded
    /// prefix of each file's unsynced writes, the last one cut short.
    pub fn restore(&self, torn: Option<u64>) -> io::Result<()> {
        let mut st = self.lock();
        let mut rng = torn.map(Rng);
        // The durable tree: every name reachable from the root through durable entries.
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut stack = vec![(ROOT, self.root.clone())];
        let mut children: BTreeMap<Id, Vec<(OsString, Id)>> = BTreeMap::new();
        for ((parent, name), id) in &st.durable {
            children.entry(*parent).or_default().push((name.clone(), *id));
        }
        for list in children.values_mut() {
            list.sort();
        }
        while let Some((id, path)) = stack.pop() {
            for (name, child) in children.get(&id).into_iter().flatten() {
                let p = path.join(name);
                let node = &st.nodes[child];
                if node.dir {
                    dirs.push(p.clone());
                    stack.push((*child, p));
                } else {
                    let mut bytes = node.durable.clone().unwrap_or_default();
                    if let Some(rng) = rng.as_mut() {
                        tear(&mut bytes, &node.pending, rng);
                    }
                    files.push((p, bytes));
                }
            }
        }
        // Rewrite the tree from scratch (new inodes: nothing still mapped can touch them).
        for entry in std::fs::read_dir(&self.root)? {
            let p = entry?.path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
        for d in &dirs {
            std::fs::create_dir_all(d)?;
        }
        for (p, bytes) in &files {
            std::fs::write(p, bytes)?;
        }
        *st = State::of_tree(&self.root)?;
        Ok(())
    }

    /// Counts a mutating operation; fails it if the power is cut or the crash point is
    /// reached.
    fn mutate(&self, st: &mut State) -> io::Result<()> {
        if st.crashed {
            st.failures += 1;
            return Err(dead());
        }
        st.ops += 1;
        if st.crash_at.is_some_and(|at| st.ops >= at) {
            st.crashed = true;
            st.failures += 1;
            return Err(dead());
        }
        Ok(())
    }

    /// An injected fault for `op` on `path`, used up by this call.
    fn fault(st: &mut State, op: FaultOp, path: &Path) -> Option<i32> {
        let text = path.to_string_lossy();
        let i = st
            .faults
            .iter()
            .position(|f| f.op == op && f.count > 0 && text.contains(&f.path_contains))?;
        let f = &mut st.faults[i];
        f.count -= 1;
        let errno = f.errno;
        if f.count == 0 {
            st.faults.remove(i);
        }
        st.failures += 1;
        Some(errno)
    }

    /// The components of `path` below the root.
    fn rel<'p>(&self, path: &'p Path) -> Vec<&'p std::ffi::OsStr> {
        path.strip_prefix(&self.root)
            .map(|r| {
                r.components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => Some(s),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The node a path names now, if the simulation knows it.
    fn lookup(&self, st: &State, path: &Path) -> Option<Id> {
        let mut id = ROOT;
        for c in self.rel(path) {
            id = *st.current.get(&(id, c.to_owned()))?;
        }
        Some(id)
    }

    /// The parent directory's node and the last name of `path`.
    fn parent_and_name(&self, st: &State, path: &Path) -> Option<(Id, OsString)> {
        let parts = self.rel(path);
        let (name, dirs) = parts.split_last()?;
        let mut id = ROOT;
        for c in dirs {
            id = *st.current.get(&(id, (*c).to_owned()))?;
        }
        Some((id, (*name).to_owned()))
    }

    /// Removes the name `path` with `op`. What was under a directory becomes unreachable
    /// (dropped by a crash only if the removal itself is durable).
    fn remove(&self, path: &Path, op: fn(&Path) -> io::Result<()>) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        op(path)?;
        if let Some(key) = self.parent_and_name(&st, path) {
            st.current.remove(&key);
        }
        Ok(())
    }

    fn new_node(st: &mut State, dir: bool) -> Id {
        let id = st.next_id;
        st.next_id += 1;
        st.nodes.insert(id, Node { dir, ..Node::default() });
        id
    }
}

impl State {
    /// The tree under `root` as it is now, all of it durable.
    fn of_tree(root: &Path) -> io::Result<State> {
        let mut st = State::default();
        st.nodes.insert(
            ROOT,
            Node {
                dir: true,
                ..Node::default()
            },
        );
        st.next_id = 1;
        scan(&mut st, root, ROOT)?;
        st.durable = st.current.clone();
        Ok(st)
    }
}

/// Registers everything under `dir` (node `id`) as current.
fn scan(st: &mut State, dir: &Path, id: Id) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_dir = entry.file_type()?.is_dir();
        let child = SimDisk::new_node(st, is_dir);
        st.current.insert((id, entry.file_name()), child);
        if is_dir {
            scan(st, &entry.path(), child)?;
        } else {
            st.nodes.get_mut(&child).expect("just added").durable = Some(std::fs::read(entry.path())?);
        }
    }
    Ok(())
}

/// Applies a seeded prefix of `pending` to `bytes`, the last write cut short.
fn tear(bytes: &mut Vec<u8>, pending: &[Pending], rng: &mut Rng) {
    if pending.is_empty() {
        return;
    }
    let keep = rng.below(pending.len() as u64 + 1) as usize;
    for (i, p) in pending.iter().take(keep).enumerate() {
        match p {
            Pending::SetLen(n) => bytes.resize(*n as usize, 0),
            Pending::Write { offset, data } => {
                let data = if i + 1 == keep {
                    &data[..rng.below(data.len() as u64 + 1) as usize]
                } else {
                    &data[..]
                };
                let end = *offset as usize + data.len();
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[*offset as usize..end].copy_from_slice(data);
            }
        }
    }
}

/// splitmix64: a seeded choice of what a torn write keeps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

impl Disk for SimDisk {
    fn open(&self, opts: &OpenOptions, path: &Path) -> io::Result<File> {
        let mut st = self.lock();
        if st.crashed {
            st.failures += 1;
            return Err(dead());
        }
        let known = self.lookup(&st, path);
        let file = opts.open(path)?;
        // A new name, or a truncation, is a change a crash may undo.
        let len = file.metadata()?.len();
        match known {
            Some(id) => {
                let node = st.nodes.get_mut(&id).expect("known");
                let durable_len = node.durable.as_ref().map_or(0, |d| d.len() as u64);
                if len != durable_len || !node.pending.is_empty() {
                    node.pending.push(Pending::SetLen(len));
                }
            }
            None => {
                let (parent, name) = self
                    .parent_and_name(&st, path)
                    .ok_or_else(|| io::Error::other(format!("simulated disk: no directory for {}", path.display())))?;
                let id = SimDisk::new_node(&mut st, false);
                st.current.insert((parent, name), id);
            }
        }
        Ok(file)
    }

    fn write_at(&self, file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        let id = self.lookup(&st, path);
        if let Some(errno) = SimDisk::fault(&mut st, FaultOp::Write, path) {
            if errno == nix::libc::ENOSPC {
                // A full disk takes part of a write.
                let part = &buf[..buf.len() / 2];
                file.write_all_at(part, offset)?;
                if let Some(node) = id.and_then(|id| st.nodes.get_mut(&id)) {
                    node.pending.push(Pending::Write {
                        offset,
                        data: part.to_vec(),
                    });
                }
            }
            return Err(io::Error::from_raw_os_error(errno));
        }
        file.write_all_at(buf, offset)?;
        if let Some(node) = id.and_then(|id| st.nodes.get_mut(&id)) {
            node.pending.push(Pending::Write {
                offset,
                data: buf.to_vec(),
            });
        }
        Ok(())
    }

    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        file.set_len(len)?;
        if let Some(node) = self.lookup(&st, path).and_then(|id| st.nodes.get_mut(&id)) {
            node.pending.push(Pending::SetLen(len));
        }
        Ok(())
    }

    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        if let Some(errno) = SimDisk::fault(&mut st, FaultOp::Sync, path) {
            // What an fsync failure leaves is unknown; Linux drops the dirty pages and
            // marks them clean, so the unsynced writes are forgotten, not retried.
            return Err(io::Error::from_raw_os_error(errno));
        }
        file.sync_data()?;
        // The file's bytes now (memory-mapped writes included) are what a crash keeps.
        let len = file.metadata()?.len();
        let mut bytes = vec![0u8; len as usize];
        if file.read_exact_at(&mut bytes, 0).is_err() {
            // Opened for writing only: read it by name.
            bytes = std::fs::read(path)?;
        }
        if let Some(node) = self.lookup(&st, path).and_then(|id| st.nodes.get_mut(&id)) {
            node.durable = Some(bytes);
            node.pending.clear();
        }
        Ok(())
    }

    fn read_at(&self, file: &File, path: &Path, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock();
        if st.crashed {
            st.failures += 1;
            return Err(dead());
        }
        if let Some(errno) = SimDisk::fault(&mut st, FaultOp::Read, path) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        drop(st);
        file.read_exact_at(buf, offset)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        std::fs::rename(from, to)?;
        let src = self.parent_and_name(&st, from);
        let dst = self.parent_and_name(&st, to);
        if let (Some(src), Some(dst)) = (src, dst) {
            if let Some(id) = st.current.remove(&src) {
                st.current.insert(dst, id);
            }
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.remove(path, |p| std::fs::remove_file(p))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.remove(path, |p| std::fs::remove_dir_all(p))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        std::fs::create_dir_all(path)?;
        let mut id = ROOT;
        for c in self.rel(path) {
            let key = (id, c.to_owned());
            id = match st.current.get(&key) {
                Some(child) => *child,
                None => {
                    let child = SimDisk::new_node(&mut st, true);
                    st.current.insert(key, child);
                    child
                }
            };
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        self.mutate(&mut st)?;
        if let Some(errno) = SimDisk::fault(&mut st, FaultOp::Sync, path) {
            return Err(io::Error::from_raw_os_error(errno));
        }
        File::open(path)?.sync_all()?;
        if let Some(dir) = self.lookup(&st, path) {
            st.durable.retain(|(parent, _), _| *parent != dir);
            let entries: Vec<((Id, OsString), Id)> = st
                .current
                .iter()
                .filter(|((parent, _), _)| *parent == dir)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            st.durable.extend(entries);
        }
        Ok(())
    }
}
