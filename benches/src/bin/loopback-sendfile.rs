//! `loopback-sendfile`: the machine's limit for serving cached file bytes to a loopback
//! socket, the ceiling of a broker's fetch path.
//!
//! A file of random bytes is written (and so sits in the page cache); a sender thread
//! sends it over and over to a reader thread on a loopback TCP connection, with
//! `sendfile(2)` (the bytes never enter user space) or, with `--copy`, `pread` + `write`
//! through a user buffer, the way a broker without zero-copy serves. Each thread can be
//! pinned to a CPU. Prints GB/s and the sender's CPU-seconds per GB (`getrusage`
//! `RUSAGE_THREAD`), the figure the broker's CPU per GB served is compared against.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::resource::{getrusage, UsageWho};
use nix::unistd::Pid;
use rand::RngCore;

#[derive(Debug, Parser)]
#[command(name = "loopback-sendfile", about = "Cached file → loopback socket bandwidth")]
struct Args {
    /// File size in MiB (kept in the page cache)
    #[arg(long, default_value_t = 1024)]
    file_mib: u64,
    /// Bytes per sendfile (or pread + write) call, in KiB
    #[arg(long, default_value_t = 1024)]
    chunk_kib: usize,
    /// Seconds to send for
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Pin the sender to this CPU
    #[arg(long)]
    sender_cpu: Option<usize>,
    /// Pin the reader to this CPU
    #[arg(long)]
    reader_cpu: Option<usize>,
    /// Copy through user space (pread + write) instead of sendfile
    #[arg(long)]
    copy: bool,
    /// Reader's buffer per read call, in KiB
    #[arg(long, default_value_t = 1024)]
    read_kib: usize,
    /// Directory for the file (default: the system's temporary directory)
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn pin(cpu: Option<usize>) -> Result<(), String> {
    let Some(cpu) = cpu else { return Ok(()) };
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|e| format!("pin to cpu {cpu}: {e}"))
}

fn thread_cpu_secs() -> f64 {
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("loopback-sendfile: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), String> {
    let dir = match &args.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .map_err(|e| format!("temporary directory: {e}"))?;
    let path = dir.path().join("payload");
    let size = args.file_mib << 20;
    let chunk = args.chunk_kib.max(1) << 10;
    {
        let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut rng = runnel_bench::rng(11);
        for _ in 0..args.file_mib {
            rng.fill_bytes(&mut buf);
            f.write_all(&buf).map_err(|e| format!("write: {e}"))?;
        }
    }
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Read it once so every page is cached whatever write-back did meanwhile.
    let mut buf = vec![0u8; chunk];
    let mut off = 0;
    while off < size {
        off += file.read_at(&mut buf, off).map_err(|e| format!("read: {e}"))? as u64;
    }

    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let reader_cpu = args.reader_cpu;
    let read_size = args.read_kib.max(1) << 10;
    let reader = std::thread::spawn(move || -> Result<(u64, f64), String> {
        pin(reader_cpu)?;
        let (mut sock, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let mut buf = vec![0u8; read_size];
        let mut total = 0u64;
        loop {
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok((total, thread_cpu_secs()))
    });

    pin(args.sender_cpu)?;
    let mut sock = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    sock.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let cpu0 = thread_cpu_secs();
    let start = Instant::now();
    let until = Duration::from_secs_f64(args.seconds);
    let mut sent = 0u64;
    let mut pos = 0u64;
    while start.elapsed() < until {
        let n = (size - pos).min(chunk as u64) as usize;
        let done = if args.copy {
            let got = file.read_at(&mut buf[..n], pos).map_err(|e| format!("pread: {e}"))?;
            sock.write_all(&buf[..got]).map_err(|e| format!("write: {e}"))?;
            got
        } else {
            let mut o = pos as i64;
            nix::sys::sendfile::sendfile(sock.as_fd(), file.as_fd(), Some(&mut o), n)
                .map_err(|e| format!("sendfile: {e}"))?
        };
        sent += done as u64;
        pos = (pos + done as u64) % size;
    }
    let sender_cpu = thread_cpu_secs() - cpu0;
    drop(sock);
    let (received, reader_cpu) = reader.join().map_err(|_| "reader panicked".to_string())??;
    let secs = start.elapsed().as_secs_f64();
    let gb = received as f64 / 1e9;
    println!(
        "{}: {:.0} MB/s ({:.2} GB in {:.2} s; sender cpu {:?}, reader cpu {:?}); sender {:.3} CPU-s/GB, reader {:.3} CPU-s/GB",
        if args.copy { "pread+write" } else { "sendfile" },
        received as f64 / secs / 1e6,
        gb,
        secs,
        args.sender_cpu,
        args.reader_cpu,
        sender_cpu / (sent as f64 / 1e9),
        reader_cpu / gb,
    );
    Ok(())
}
