//! Encoding a Kafka response around record bytes that stay in the segment files.
//!
//! The crate's encoder writes a partition's `records` field as a length and then the
//! bytes (`put_slice`). A Fetch response gives each partition a *placeholder* of the
//! right length — a slice of [`zeros`], a never-touched range of zero pages —
//! and encodes into a [`SpliceBuf`], which writes everything else into the head buffer
//! and, when handed a placeholder slice, only notes where that partition's file region
//! goes. The connection's writer then sends head pieces with `write` and the regions
//! with `sendfile` in between (`net::reply`).

use std::ops::Range;
use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// The most record bytes one partition's placeholder can stand for.
pub const MAX_PLACEHOLDER_BYTES: usize = 64 << 20;

/// Zeros to slice placeholders from, allocated once and never freed. A zeroed allocation
/// this large is fresh anonymous memory: virtual only, since nothing reads or writes it
/// (the encoder's copy is intercepted). Not a zero-filled `static`: that lands in
/// `.rodata` and put 64 MiB of zeros into every binary linking the broker.
fn zeros() -> &'static [u8] {
    static ZEROS: OnceLock<&'static [u8]> = OnceLock::new();
    ZEROS.get_or_init(|| Box::leak(vec![0u8; MAX_PLACEHOLDER_BYTES].into_boxed_slice()))
}

/// A placeholder for `len` record bytes (at most [`MAX_PLACEHOLDER_BYTES`]).
pub fn placeholder(len: usize) -> Bytes {
    Bytes::from_static(&zeros()[..len])
}

/// A `ByteBufMut` that leaves placeholder slices out of its buffer and records where they
/// were: `splices[i]` is the head offset the i-th placeholder's bytes belong at.
pub struct SpliceBuf {
    pub head: BytesMut,
    pub splices: Vec<usize>,
    /// Bytes left out so far (the encoder's offsets count them).
    spliced: usize,
}

impl SpliceBuf {
    pub fn new(head: BytesMut) -> SpliceBuf {
        SpliceBuf {
            head,
            splices: Vec::new(),
            spliced: 0,
        }
    }

    /// Total frame bytes: the head plus the spliced placeholders.
    pub fn logical_len(&self) -> usize {
        self.head.len() + self.spliced
    }

    /// A logical range as a range of `head` (ranges that start after the last splice,
    /// which is where the encoder's gaps are: it fills them before moving on).
    fn physical(&self, r: Range<usize>) -> Range<usize> {
        let before = self.spliced;
        r.start - before..r.end - before
    }
}

// SAFETY: every method delegates to `BytesMut`, which upholds `BufMut`'s contract.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded unchanged; the caller initialised `cnt` bytes of `chunk_mut`.
        unsafe { self.head.advance_mut(cnt) }
    }
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }
    fn put_slice(&mut self, src: &[u8]) {
        let start = zeros().as_ptr();
        if !src.is_empty() && src.as_ptr() == start {
            self.splices.push(self.head.len());
            self.spliced += src.len();
        } else {
            self.head.put_slice(src);
        }
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.logical_len()
    }
    fn seek(&mut self, offset: usize) {
        let physical = offset - self.spliced;
        self.head.resize(physical, 0);
    }
    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let r = self.physical(r);
        &mut self.head[r]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_left_out_and_their_places_recorded() {
        let mut b = SpliceBuf::new(BytesMut::new());
        b.put_slice(b"ab");
        b.put_slice(&placeholder(1000));
        b.put_slice(b"cd");
        b.put_slice(&placeholder(5));
        b.put_slice(b"e");
        assert_eq!(&b.head[..], b"abcde");
        assert_eq!(b.splices, [2, 4]);
        assert_eq!(b.logical_len(), 5 + 1005);
        // A gap after the splices, filled later, lands in the head.
        let gap = b.put_gap(2);
        b.gap_buf(gap).copy_from_slice(b"xy");
        assert_eq!(&b.head[..], b"abcdexy");
    }
}
