//! RecordBatch v2: the header, a zero-copy view, and the checks the broker runs on append.
//!
//! Layout (all integers big-endian; Kafka's "magic 2" batch, byte for byte):
//!
//! ```text
//! offset size field
//!      0    8 baseOffset            i64  first offset; stamped by the broker
//!      8    4 batchLength           i32  bytes after this field (total = 12 + batchLength)
//!     12    4 partitionLeaderEpoch  i32
//!     16    1 magic                 i8   = 2
//!     17    4 crc                   u32  CRC-32C of bytes [21, end)
//!     21    2 attributes            i16  bits 0-2 codec, 3 timestamp type, 4 transactional,
//!                                        5 control, 6 delete horizon
//!     23    4 lastOffsetDelta       i32
//!     27    8 baseTimestamp         i64
//!     35    8 maxTimestamp          i64
//!     43    8 producerId            i64
//!     51    2 producerEpoch         i16
//!     53    4 baseSequence          i32
//!     57    4 recordCount           i32
//!     61    … records (compressed as a whole when the codec is not none)
//! ```
//!
//! The CRC starts at `attributes`, so `baseOffset`, `batchLength` and
//! `partitionLeaderEpoch` can be rewritten without recomputing it: that is how the broker
//! assigns offsets without re-encoding anything.

use bytes::Bytes;

use crate::compression::Compression;
use crate::crc::crc32c;
use crate::error::BatchError;

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORD_COUNT_OFFSET: usize = 57;
/// Size of the fixed header; also the smallest possible batch (zero records).
pub const HEADER_BYTES: usize = 61;
/// `baseOffset` + `batchLength`: what must be read to learn a batch's total size.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

#[inline]
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
#[inline]
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
#[inline]
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Looks at the front of `buf` and says whether a whole batch is there.
///
/// `Ok(None)`: not enough bytes yet. `Ok(Some(n))`: the first `n` bytes are one batch
/// (framing only; nothing past the length is checked). `Err`: the length field is
/// impossible, so no amount of further bytes will help.
#[inline]
pub fn check_batch(buf: &[u8]) -> Result<Option<usize>, BatchError> {
    if buf.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let batch_length = be_i32(buf, LENGTH_OFFSET);
    if (batch_length as i64) < (HEADER_BYTES - LOG_OVERHEAD) as i64 {
        return Err(BatchError::LengthTooSmall(batch_length));
    }
    let total = LOG_OVERHEAD + batch_length as usize;
    if buf.len() < total {
        Ok(None)
    } else {
        Ok(Some(total))
    }
}

/// The decoded fixed header of a batch: 61 bytes read into fields, records untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header from the front of `buf`; checks the magic before anything else,
    /// since the rest of the layout depends on it.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() > MAGIC_OFFSET && buf[MAGIC_OFFSET] as i8 != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(buf[MAGIC_OFFSET] as i8));
        }
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: HEADER_BYTES,
                available: buf.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_OFFSET),
            batch_length: be_i32(buf, LENGTH_OFFSET),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: u32::from_be_bytes(buf[CRC_OFFSET..CRC_OFFSET + 4].try_into().expect("4")),
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_OFFSET),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_OFFSET),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, PRODUCER_ID_OFFSET),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_OFFSET),
            base_sequence: be_i32(buf, BASE_SEQUENCE_OFFSET),
            record_count: be_i32(buf, RECORD_COUNT_OFFSET),
        })
    }

    /// Total bytes of the batch, header included.
    #[inline]
    pub fn total_bytes(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    #[inline]
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    #[inline]
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn compression(&self) -> Result<Compression, BatchError> {
        Compression::from_attributes(self.attributes)
    }
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Full validation of one batch that is exactly `buf`: framing, magic, header sanity and
/// CRC-32C. Records are not decoded. This is what the broker runs on every appended batch
/// and what recovery runs on every batch it scans.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if (header.batch_length as i64) < (HEADER_BYTES - LOG_OVERHEAD) as i64 {
        return Err(BatchError::LengthTooSmall(header.batch_length));
    }
    if header.total_bytes() != buf.len() {
        return Err(BatchError::Truncated {
            needed: header.total_bytes(),
            available: buf.len(),
        });
    }
    let computed = crc32c(&buf[ATTRIBUTES_OFFSET..]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(BatchError::InvalidHeader("negative record count or offset delta"));
    }
    header.compression()?;
    Ok(header)
}

/// Rewrites `baseOffset` in place. The CRC does not cover it, so nothing else changes.
#[inline]
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[BASE_OFFSET_OFFSET..BASE_OFFSET_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites `partitionLeaderEpoch` in place (outside the CRC too).
#[inline]
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `max_timestamp = now_ms`, as Kafka does for topics
/// with `message.timestamp.type=LogAppendTime`. These fields sit inside the CRC, so the CRC
/// is recomputed (one pass over the batch; records are still not re-encoded).
pub fn set_log_append_time(buf: &mut [u8], now_ms: i64) {
    let attributes = be_i16(buf, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    buf[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c(&buf[ATTRIBUTES_OFFSET..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites an idempotent producer's id, epoch and first sequence in place (a producer
/// renumbering a batch it must resend under a new epoch). These sit inside the CRC, so
/// the CRC is recomputed.
pub fn set_producer_state(buf: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    buf[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    buf[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&epoch.to_be_bytes());
    buf[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c(&buf[ATTRIBUTES_OFFSET..]);
    buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The codec bits of `attributes` (bits 0–2).
const COMPRESSION_MASK: i16 = 0x07;

/// One whole, validated batch stored in another codec, appended to `out`: the records
/// section is decompressed and compressed again (records themselves are not re-encoded,
/// so offsets, timestamps, keys, values and headers are exactly as sent), the header is
/// kept but for its codec bits and length, and the CRC is recomputed. The broker does
/// this for a topic whose `compression.type` names a codec (Kafka's behaviour too); it
/// costs a decompression and a compression per batch.
pub fn recompress(batch: &[u8], to: Compression, out: &mut Vec<u8>) -> Result<(), BatchError> {
    let h = BatchHeader::parse(batch)?;
    let section = &batch[HEADER_BYTES..h.total_bytes()];
    let plain;
    let records: &[u8] = match h.compression()? {
        Compression::None => section,
        c => {
            plain = c.decompress(section)?;
            &plain
        }
    };
    let start = out.len();
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    match to {
        Compression::None => out.extend_from_slice(records),
        c => c.compress(records, out)?,
    }
    let batch_out = &mut out[start..];
    let len = (batch_out.len() - LOG_OVERHEAD) as i32;
    batch_out[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
    let attributes = (be_i16(batch_out, ATTRIBUTES_OFFSET) & !COMPRESSION_MASK) | to as i16;
    batch_out[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c(&batch_out[ATTRIBUTES_OFFSET..]);
    batch_out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

/// A zero-copy view of one whole batch held in `Bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Bytes,
    header: BatchHeader,
}

impl RecordBatch {
    /// Wraps `bytes`, which must be exactly one batch, after checking framing, magic and CRC.
    pub fn new(bytes: Bytes) -> Result<RecordBatch, BatchError> {
        let header = validate(&bytes)?;
        Ok(RecordBatch { bytes, header })
    }

    /// Splits a buffer of concatenated batches (a produce request's records, or bytes read
    /// from a segment) into validated views, sharing the buffer.
    pub fn split_all(mut bytes: Bytes) -> Result<Vec<RecordBatch>, BatchError> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            match check_batch(&bytes)? {
                Some(n) => out.push(RecordBatch::new(bytes.split_to(n))?),
                None => {
                    return Err(BatchError::Truncated {
                        needed: if bytes.len() < LOG_OVERHEAD {
                            LOG_OVERHEAD
                        } else {
                            LOG_OVERHEAD + be_i32(&bytes, LENGTH_OFFSET) as usize
                        },
                        available: bytes.len(),
                    })
                }
            }
        }
        Ok(out)
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
    /// The records section, still compressed if the codec is not none.
    pub fn records_section(&self) -> Bytes {
        self.bytes.slice(HEADER_BYTES..)
    }
}

/// The headers of the batches laid end to end in `batches`, up to the first that does
/// not parse (for bytes already validated: all of them).
pub fn headers(batches: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = BatchHeader::parse(batches.get(at..)?).ok()?;
        at += h.total_bytes();
        Some(h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, BatchOptions, Record};

    #[test]
    fn recompressed_batches_keep_every_record_and_field() {
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for from in codecs {
            let mut b = BatchBuilder::new(BatchOptions {
                compression: from,
                producer_id: 7,
                producer_epoch: 2,
                base_sequence: 40,
                ..BatchOptions::default()
            });
            for i in 0..20 {
                b.push(
                    &Record::new(1_000 + i, Some(b"k"), Some(format!("value {i}").as_bytes()))
                        .with_header("h", Some(b"x")),
                );
            }
            let original = b.finish().unwrap();
            let before = RecordBatch::new(original.clone().freeze()).unwrap();
            for to in codecs {
                let mut out = Vec::new();
                recompress(&original, to, &mut out).unwrap();
                let h = validate(&out).unwrap();
                assert_eq!(h.compression().unwrap(), to);
                assert_eq!(h.total_bytes(), out.len());
                let after = RecordBatch::new(Bytes::from(out)).unwrap();
                assert_eq!(
                    after.records().unwrap(),
                    before.records().unwrap(),
                    "{from:?} -> {to:?}"
                );
                let (a, b) = (after.header(), before.header());
                assert_eq!(
                    (
                        a.producer_id,
                        a.producer_epoch,
                        a.base_sequence,
                        a.max_timestamp,
                        a.record_count
                    ),
                    (
                        b.producer_id,
                        b.producer_epoch,
                        b.base_sequence,
                        b.max_timestamp,
                        b.record_count
                    )
                );
            }
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.push(&Record::new(1_000, Some(b"k"), Some(b"v")));
        b.push(&Record::new(1_005, None, Some(b"second")));
        b.finish().unwrap().to_vec()
    }

    #[test]
    fn check_says_incomplete_until_whole() {
        let batch = sample();
        for cut in 0..batch.len() {
            assert_eq!(check_batch(&batch[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(check_batch(&batch).unwrap(), Some(batch.len()));
    }

    #[test]
    fn validate_catches_every_single_bit_flip_after_the_crc_field() {
        let batch = sample();
        for byte in ATTRIBUTES_OFFSET..batch.len() {
            let mut bad = batch.clone();
            bad[byte] ^= 0x10;
            assert!(validate(&bad).is_err(), "flip at {byte} went unnoticed");
        }
    }

    #[test]
    fn wrong_magic_is_named() {
        let mut batch = sample();
        batch[MAGIC_OFFSET] = 1;
        assert_eq!(validate(&batch), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn base_offset_stamp_keeps_crc_valid() {
        let mut batch = sample();
        set_base_offset(&mut batch, 42);
        set_partition_leader_epoch(&mut batch, 7);
        let h = validate(&batch).unwrap();
        assert_eq!((h.base_offset, h.last_offset(), h.partition_leader_epoch), (42, 43, 7));
    }

    #[test]
    fn producer_state_is_set_by_the_builder_and_rewritten_with_a_valid_crc() {
        let mut b = BatchBuilder::new(BatchOptions::default());
        b.push(&Record::new(1_000, None, Some(b"v")));
        b.set_producer_state(77, 3, 1_000);
        let mut batch = b.finish().unwrap().to_vec();
        let h = validate(&batch).unwrap();
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 3, 1_000));
        set_producer_state(&mut batch, 77, 4, 0);
        let h = validate(&batch).unwrap();
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 4, 0));
    }

    #[test]
    fn log_append_time_recomputes_crc() {
        let mut batch = sample();
        set_log_append_time(&mut batch, 99_999);
        let h = validate(&batch).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, 99_999);
    }

    #[test]
    fn split_all_rejects_a_torn_tail() {
        let one = sample();
        let mut two = one.clone();
        two.extend_from_slice(&one[..30]);
        assert!(RecordBatch::split_all(Bytes::from(two)).is_err());
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(RecordBatch::split_all(Bytes::from(two)).unwrap().len(), 2);
    }

    #[test]
    fn impossible_length_is_an_error() {
        let mut batch = sample();
        batch[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&10i32.to_be_bytes());
        assert!(matches!(check_batch(&batch), Err(BatchError::LengthTooSmall(10))));
        batch[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(check_batch(&batch).is_err());
    }
}
