//! A response ready to send, and the two ways of writing responses to connections.
//!
//! This is the only code that emits record bytes to clients on the fetch path. On a
//! plaintext connection it does so with `sendfile(2)` from the segment file: the bytes
//! never enter user space (`tests/zero_copy.rs` checks that through the server's byte
//! counters). On a TLS connection the bytes must be encrypted on their way, so they are
//! read from the file into a buffer and written through the TLS layer
//! ([`CopyingWriter`], counted apart).

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::stats::ServerStats;
use crate::storage::FileRegion;

/// One response frame: its head (prefix, header, body) and the file regions spliced into
/// it: region `i` goes out after `head[..region_at[i]]` (the native protocol puts them all
/// at the end, as the frame's trailer; Kafka's Fetch between partitions' fields).
#[derive(Debug)]
pub struct Reply {
    pub head: BytesMut,
    pub regions: Vec<FileRegion>,
    /// Non-decreasing offsets into `head`, one per region.
    pub region_at: Vec<usize>,
    /// Close the connection after this reply (a request that cannot be decoded, in a
    /// protocol without a generic error response, has an empty one: nothing is sent).
    pub close: bool,
}

impl Reply {
    /// A frame whose `head` is followed by the records in `regions` (the native
    /// protocol's trailer).
    pub fn with_trailer(head: BytesMut, regions: Vec<FileRegion>) -> Reply {
        let region_at = vec![head.len(); regions.len()];
        Reply {
            head,
            regions,
            region_at,
            close: false,
        }
    }

    /// A whole frame in `head`, without file regions.
    pub fn from_head(head: BytesMut) -> Reply {
        Reply {
            head,
            regions: Vec::new(),
            region_at: Vec::new(),
            close: false,
        }
    }

    /// Closes the connection once the replies before it are written.
    pub fn close() -> Reply {
        Reply {
            close: true,
            ..Reply::from_head(BytesMut::new())
        }
    }

    /// This reply, then the connection closes (a failed authentication).
    pub fn then_close(self) -> Reply {
        Reply { close: true, ..self }
    }

    pub fn frame_bytes(&self) -> u64 {
        self.head.len() as u64 + self.regions.iter().map(|r| r.len).sum::<u64>()
    }
}

/// Where a connection's replies go: the socket's write half, or a TLS stream's.
pub(crate) trait ReplyWriter: Send + 'static {
    /// Writes one reply: its head, with each file region at its place.
    fn write_reply<'a>(
        &'a mut self,
        reply: &'a Reply,
        stats: &'a ServerStats,
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send + '_;
}

/// A plaintext socket: the head with `write`, each region with `sendfile`.
impl ReplyWriter for OwnedWriteHalf {
    async fn write_reply(&mut self, reply: &Reply, stats: &ServerStats) -> io::Result<()> {
        let mut at = 0;
        for (region, &to) in reply.regions.iter().zip(&reply.region_at) {
            self.write_all(&reply.head[at..to]).await?;
            at = to;
            send_region(self.as_ref(), region, stats).await?;
        }
        self.write_all(&reply.head[at..]).await?;
        ServerStats::add(&stats.bytes_written, reply.head.len() as u64);
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        AsyncWriteExt::shutdown(self).await
    }
}

/// Bytes read from a segment file per write through a TLS stream (a TLS record holds
/// 16 KiB; a few per write keep the syscalls few).
const COPY_CHUNK_BYTES: usize = 64 * 1024;

/// A stream that cannot take `sendfile` (TLS): file regions are read into one buffer,
/// reused for the connection's life, and written through the stream.
pub(crate) struct CopyingWriter<W> {
    inner: W,
    buf: Vec<u8>,
}

impl<W> CopyingWriter<W> {
    pub(crate) fn new(inner: W) -> CopyingWriter<W> {
        CopyingWriter { inner, buf: Vec::new() }
    }
}

impl<W: AsyncWrite + Unpin + Send + 'static> ReplyWriter for CopyingWriter<W> {
    async fn write_reply(&mut self, reply: &Reply, stats: &ServerStats) -> io::Result<()> {
        let mut at = 0;
        for (region, &to) in reply.regions.iter().zip(&reply.region_at) {
            self.inner.write_all(&reply.head[at..to]).await?;
            at = to;
            if self.buf.is_empty() {
                self.buf = vec![0; COPY_CHUNK_BYTES];
            }
            let mut pos = region.position;
            let mut left = region.len;
            while left > 0 {
                let want = (left as usize).min(self.buf.len());
                // Page-cache reads, as `sendfile`'s are: the region was just written
                // or read.
                let n = region.file.read_at(&mut self.buf[..want], pos)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "segment file ended inside a fetched region (truncated during the fetch)",
                    ));
                }
                self.inner.write_all(&self.buf[..n]).await?;
                pos += n as u64;
                left -= n as u64;
                ServerStats::add(&stats.bytes_copied, n as u64);
            }
        }
        self.inner.write_all(&reply.head[at..]).await?;
        self.inner.flush().await?;
        ServerStats::add(&stats.bytes_written, reply.head.len() as u64);
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.inner.shutdown().await
    }
}

/// Sends a file region to a non-blocking socket with `sendfile`, waiting for the socket
/// to become writable whenever its buffer is full. A slow reader only parks this task.
async fn send_region(sock: &TcpStream, region: &FileRegion, stats: &ServerStats) -> io::Result<()> {
    let mut offset = region.position as i64;
    let mut left = region.len as usize;
    while left > 0 {
        sock.writable().await?;
        let sent = sock.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(sock.as_fd(), region.file.as_fd(), Some(&mut offset), left)
                .map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                // The file is shorter than the region: truncated under this fetch. The frame
                // already announced its length, so the connection cannot continue.
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment file ended inside a fetched region (truncated during the fetch)",
                ));
            }
            Ok(n) => {
                left -= n;
                ServerStats::add(&stats.bytes_sendfile, n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
