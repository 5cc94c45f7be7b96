//! Batch compression codecs, selected by bits 0–2 of a batch's `attributes`.
//!
//! Compression covers the records section of a batch (everything after the 61-byte
//! header); the header itself stays uncompressed so the broker can validate and stamp it
//! without touching the codec. Stream formats are those Kafka's Java client writes:
//!
//! - gzip: RFC 1952 stream.
//! - snappy: xerial "snappy-java" framing (16-byte header `\x82SNAPPY\0` + versions, then
//!   blocks of `[u32 BE compressed length][raw snappy]`). Raw unframed snappy, which some
//!   clients write, is accepted on decode.
//! - lz4: LZ4 frame format, independent 64 KiB blocks.
//! - zstd: zstd frame.

use std::io::{Read, Write};

use crate::error::BatchError;

/// Decompressed record sections larger than this are rejected: a small compressed batch
/// must not make a client or the broker allocate without bound.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

const SNAPPY_XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const SNAPPY_XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
const SNAPPY_XERIAL_BLOCK_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    #[default]
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec named by the low three bits of a batch's attributes.
    pub fn from_attributes(attributes: i16) -> Result<Self, BatchError> {
        match (attributes & 0x07) as u8 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnsupportedCompression(other)),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Appends the compressed form of `input` to `out`.
    pub fn compress(self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
        let err = |e: std::io::Error| BatchError::Compression {
            codec: self.name(),
            reason: e.to_string(),
        };
        match self {
            Compression::None => out.extend_from_slice(input),
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                enc.write_all(input).map_err(err)?;
                enc.finish().map_err(err)?;
            }
            Compression::Snappy => {
                out.extend_from_slice(SNAPPY_XERIAL_HEADER);
                let mut enc = snap::raw::Encoder::new();
                for block in input.chunks(SNAPPY_XERIAL_BLOCK_BYTES) {
                    let len_at = out.len();
                    out.extend_from_slice(&[0; 4]);
                    let start = out.len();
                    out.resize(start + snap::raw::max_compress_len(block.len()), 0);
                    let n = enc
                        .compress(block, &mut out[start..])
                        .map_err(|e| BatchError::Compression {
                            codec: "snappy",
                            reason: e.to_string(),
                        })?;
                    out.truncate(start + n);
                    out[len_at..len_at + 4].copy_from_slice(&(n as u32).to_be_bytes());
                }
            }
            Compression::Lz4 => {
                let mut enc = lz4_flex::frame::FrameEncoder::new(out);
                enc.write_all(input).map_err(err)?;
                enc.finish().map_err(|e| BatchError::Compression {
                    codec: "lz4",
                    reason: e.to_string(),
                })?;
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::Encoder::new(out, 3).map_err(err)?;
                enc.write_all(input).map_err(err)?;
                enc.finish().map_err(err)?;
            }
        }
        Ok(())
    }

    /// Decompresses a whole records section.
    pub fn decompress(self, input: &[u8]) -> Result<Vec<u8>, BatchError> {
        let codec = self.name();
        let err = |e: std::io::Error| BatchError::Decompression {
            codec,
            reason: e.to_string(),
        };
        let mut out = Vec::with_capacity(input.len().saturating_mul(2).min(1 << 20));
        let limit = MAX_DECOMPRESSED_BYTES as u64 + 1;
        match self {
            Compression::None => out.extend_from_slice(input),
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(input)
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(err)?;
            }
            Compression::Snappy => snappy_decompress(input, &mut out)?,
            Compression::Lz4 => {
                lz4_flex::frame::FrameDecoder::new(input)
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(err)?;
            }
            Compression::Zstd => {
                zstd::stream::read::Decoder::new(input)
                    .map_err(err)?
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(err)?;
            }
        }
        if out.len() > MAX_DECOMPRESSED_BYTES {
            return Err(BatchError::Decompression {
                codec,
                reason: format!("records expand past {MAX_DECOMPRESSED_BYTES} bytes"),
            });
        }
        Ok(out)
    }
}

fn snappy_decompress(input: &[u8], out: &mut Vec<u8>) -> Result<(), BatchError> {
    let err = |reason: String| BatchError::Decompression {
        codec: "snappy",
        reason,
    };
    let mut dec = snap::raw::Decoder::new();
    let mut block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let n = snap::raw::decompress_len(compressed).map_err(|e| err(e.to_string()))?;
        if out.len() + n > MAX_DECOMPRESSED_BYTES {
            return Err(err(format!("records expand past {MAX_DECOMPRESSED_BYTES} bytes")));
        }
        let start = out.len();
        out.resize(start + n, 0);
        dec.decompress(compressed, &mut out[start..])
            .map_err(|e| err(e.to_string()))?;
        Ok(())
    };
    if !input.starts_with(SNAPPY_XERIAL_MAGIC) {
        return block(input, out);
    }
    if input.len() < SNAPPY_XERIAL_HEADER.len() {
        return Err(err("truncated xerial header".into()));
    }
    let mut rest = &input[SNAPPY_XERIAL_HEADER.len()..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(err("truncated xerial block length".into()));
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4..];
        if n > rest.len() {
            return Err(err("xerial block runs past the end".into()));
        }
        block(&rest[..n], out)?;
        rest = &rest[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip_every_codec(data in proptest::collection::vec(any::<u8>(), 0..100_000)) {
            for c in Compression::ALL {
                let mut out = Vec::new();
                c.compress(&data, &mut out).unwrap();
                prop_assert_eq!(&c.decompress(&out).unwrap(), &data, "codec {}", c.name());
            }
        }

        #[test]
        fn garbage_is_an_error_not_a_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            for c in Compression::ALL {
                let _ = c.decompress(&data);
            }
        }
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let data = b"hello hello hello hello".repeat(100);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(Compression::Snappy.decompress(&raw).unwrap(), data);
    }

    #[test]
    fn unknown_codec_is_rejected() {
        assert_eq!(
            Compression::from_attributes(5),
            Err(BatchError::UnsupportedCompression(5))
        );
    }
}
