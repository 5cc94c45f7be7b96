//! Records inside a RecordBatch v2: the client-side encoder ([`BatchBuilder`]) and the
//! full decoder ([`RecordBatch::records`]).
//!
//! Record layout (Kafka's, varints zig-zag encoded):
//!
//! ```text
//! length          varint   bytes after this field
//! attributes      int8     unused, 0
//! timestampDelta  varlong  timestamp - batch.baseTimestamp
//! offsetDelta     varint   offset - batch.baseOffset
//! keyLength       varint   -1 for a null key
//! key             bytes
//! valueLength     varint   -1 for a null value
//! value           bytes
//! headerCount     varint
//!   headerKeyLength varint, headerKey utf-8, headerValueLength varint (-1 null), value
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{self, RecordBatch, TimestampType, HEADER_BYTES, MAGIC_V2};
use crate::compression::Compression;
use crate::crc::crc32c;
use crate::error::BatchError;
use crate::varint::{get_varint, get_varlong, put_varint, put_varlong, varint_len, varlong_len};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One record. `offset` is absolute once decoded from a stamped batch; the encoder ignores
/// it (offsets inside a batch are dense, in push order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl Record {
    pub fn new(timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
        Record {
            offset: 0,
            timestamp,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, key: &str, value: Option<&[u8]>) -> Record {
        self.headers.push(Header {
            key: key.to_owned(),
            value: value.map(Bytes::copy_from_slice),
        });
        self
    }
}

/// Batch-level fields a producer chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub partition_leader_epoch: i32,
    pub transactional: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            compression: Compression::None,
            producer_id: batch::NO_PRODUCER_ID,
            producer_epoch: batch::NO_PRODUCER_EPOCH,
            base_sequence: batch::NO_SEQUENCE,
            partition_leader_epoch: batch::NO_PARTITION_LEADER_EPOCH,
            transactional: false,
        }
    }
}

/// Accumulates records into one batch. Records are encoded as they are pushed, into one
/// growing buffer (no per-record allocation); `finish` compresses the records section if
/// asked and writes the header and CRC.
#[derive(Debug)]
pub struct BatchBuilder {
    options: BatchOptions,
    records: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    pub fn new(options: BatchOptions) -> BatchBuilder {
        BatchBuilder {
            options,
            records: Vec::new(),
            count: 0,
            base_timestamp: 0,
            max_timestamp: -1,
        }
    }

    pub fn with_capacity(options: BatchOptions, bytes: usize) -> BatchBuilder {
        let mut b = BatchBuilder::new(options);
        b.records.reserve(bytes);
        b
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Sets the idempotent producer fields the header will carry (decided when the
    /// batch is sent, after its records were added).
    pub fn set_producer_state(&mut self, producer_id: i64, epoch: i16, base_sequence: i32) {
        self.options.producer_id = producer_id;
        self.options.producer_epoch = epoch;
        self.options.base_sequence = base_sequence;
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Size of the batch if finished now without compression.
    pub fn uncompressed_bytes(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }

    pub fn push(&mut self, record: &Record) {
        self.push_parts(
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        )
    }

    pub fn push_parts(&mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[Header]) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        let ts_delta = timestamp.wrapping_sub(self.base_timestamp);
        let offset_delta = self.count;
        let opt_len = |b: Option<&[u8]>| match b {
            Some(b) => varint_len(b.len() as i32) + b.len(),
            None => 1,
        };
        let mut body = 1 + varlong_len(ts_delta) + varint_len(offset_delta);
        body += opt_len(key) + opt_len(value) + varint_len(headers.len() as i32);
        for h in headers {
            body += varint_len(h.key.len() as i32) + h.key.len() + opt_len(h.value.as_deref());
        }
        let buf = &mut self.records;
        buf.reserve(varint_len(body as i32) + body);
        put_varint(buf, body as i32);
        buf.put_i8(0);
        put_varlong(buf, ts_delta);
        put_varint(buf, offset_delta);
        put_opt_bytes(buf, key);
        put_opt_bytes(buf, value);
        put_varint(buf, headers.len() as i32);
        for h in headers {
            put_varint(buf, h.key.len() as i32);
            buf.put_slice(h.key.as_bytes());
            put_opt_bytes(buf, h.value.as_deref());
        }
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// Writes the header (base offset 0) and CRC; compresses the records if asked.
    pub fn finish(self) -> Result<BytesMut, BatchError> {
        if self.count == 0 {
            return Err(BatchError::InvalidRecord("a batch needs at least one record"));
        }
        let o = &self.options;
        let mut out = BytesMut::with_capacity(HEADER_BYTES + self.records.len());
        out.put_i64(0);
        out.put_i32(0); // batchLength, filled below
        out.put_i32(o.partition_leader_epoch);
        out.put_i8(MAGIC_V2);
        out.put_u32(0); // crc, filled below
        let mut attributes = o.compression as i16;
        if o.transactional {
            attributes |= 0x10;
        }
        out.put_i16(attributes);
        out.put_i32(self.count - 1);
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(o.producer_id);
        out.put_i16(o.producer_epoch);
        out.put_i32(o.base_sequence);
        out.put_i32(self.count);
        debug_assert_eq!(out.len(), HEADER_BYTES);
        if o.compression == Compression::None {
            out.put_slice(&self.records);
        } else {
            let mut compressed = Vec::with_capacity(self.records.len() / 2 + 64);
            o.compression.compress(&self.records, &mut compressed)?;
            out.put_slice(&compressed);
        }
        let len = (out.len() - batch::LOG_OVERHEAD) as i32;
        out[batch::LENGTH_OFFSET..batch::LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c(&out[batch::ATTRIBUTES_OFFSET..]);
        out[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }
}

fn put_opt_bytes(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
        None => put_varint(buf, -1),
    }
}

impl RecordBatch {
    /// Decodes every record, decompressing first if needed. Keys, values and header values
    /// share one buffer: the batch's own for uncompressed batches, the decompressed records
    /// otherwise.
    pub fn records(&self) -> Result<Vec<Record>, BatchError> {
        let h = *self.header();
        let section = match h.compression()? {
            Compression::None => self.records_section(),
            c => Bytes::from(c.decompress(&self.records_section())?),
        };
        let count = h.record_count as usize;
        // A record takes at least 7 bytes, so a lying count cannot make us reserve much.
        let mut out = Vec::with_capacity(count.min(section.len() / 7 + 1));
        let mut at = 0usize;
        for _ in 0..count {
            let (len, n) = get_varint(&section[at..])?;
            at += n;
            if len < 0 || at + len as usize > section.len() {
                return Err(BatchError::InvalidRecord("record length runs past the batch"));
            }
            let end = at + len as usize;
            let rec = decode_record(&section, at, end, &h)?;
            out.push(rec);
            at = end;
        }
        if at != section.len() {
            return Err(BatchError::InvalidRecord("bytes left over after the last record"));
        }
        Ok(out)
    }
}

fn decode_record(section: &Bytes, mut at: usize, end: usize, h: &batch::BatchHeader) -> Result<Record, BatchError> {
    let buf = &section[..end];
    if at >= end {
        return Err(BatchError::InvalidRecord("empty record"));
    }
    at += 1; // attributes
    let (ts_delta, n) = get_varlong(&buf[at..])?;
    at += n;
    let (offset_delta, n) = get_varint(&buf[at..])?;
    at += n;
    let opt_bytes = |at: &mut usize| -> Result<Option<Bytes>, BatchError> {
        let (len, n) = get_varint(&buf[*at..])?;
        *at += n;
        if len < 0 {
            return Ok(None);
        }
        let stop = *at + len as usize;
        if stop > end {
            return Err(BatchError::InvalidRecord("field runs past the record"));
        }
        let b = section.slice(*at..stop);
        *at = stop;
        Ok(Some(b))
    };
    let key = opt_bytes(&mut at)?;
    let value = opt_bytes(&mut at)?;
    let (header_count, n) = get_varint(&buf[at..])?;
    at += n;
    if header_count < 0 {
        return Err(BatchError::InvalidRecord("negative header count"));
    }
    let mut headers = Vec::with_capacity((header_count as usize).min(end - at));
    for _ in 0..header_count {
        let key = opt_bytes(&mut at)?.ok_or(BatchError::InvalidRecord("null header key"))?;
        let key = String::from_utf8(key.to_vec()).map_err(|_| BatchError::InvalidRecord("header key is not UTF-8"))?;
        let value = opt_bytes(&mut at)?;
        headers.push(Header { key, value });
    }
    if at != end {
        return Err(BatchError::InvalidRecord("record length disagrees with its fields"));
    }
    let timestamp = match h.timestamp_type() {
        TimestampType::LogAppendTime => h.max_timestamp,
        TimestampType::CreateTime => h.base_timestamp.wrapping_add(ts_delta),
    };
    Ok(Record {
        offset: h.base_offset + offset_delta as i64,
        timestamp,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn arb_record() -> impl Strategy<Value = Record> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from);
        let header = ("[a-z]{0,8}", proptest::option::of(bytes.clone())).prop_map(|(key, value)| Header { key, value });
        (
            -1i64..2_000_000_000_000,
            proptest::option::of(bytes.clone()),
            proptest::option::of(bytes),
            proptest::collection::vec(header, 0..3),
        )
            .prop_map(|(timestamp, key, value, headers)| Record {
                offset: 0,
                timestamp,
                key,
                value,
                headers,
            })
    }

    fn arb_compression() -> impl Strategy<Value = Compression> {
        proptest::sample::select(Compression::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn encode_decode_roundtrip(
            records in proptest::collection::vec(arb_record(), 1..20),
            compression in arb_compression(),
            base in 0i64..1 << 40,
        ) {
            let mut b = BatchBuilder::new(BatchOptions { compression, ..Default::default() });
            for r in &records {
                b.push(r);
            }
            let mut bytes = b.finish().unwrap();
            batch::set_base_offset(&mut bytes, base);
            let batch = RecordBatch::new(bytes.freeze()).unwrap();
            prop_assert_eq!(batch.header().record_count as usize, records.len());
            prop_assert_eq!(batch.header().last_offset(), base + records.len() as i64 - 1);
            let decoded = batch.records().unwrap();
            for (i, (want, got)) in records.iter().zip(&decoded).enumerate() {
                prop_assert_eq!(got.offset, base + i as i64);
                prop_assert_eq!(got.timestamp, want.timestamp);
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.value, &want.value);
                prop_assert_eq!(&got.headers, &want.headers);
            }
        }

        #[test]
        fn decoder_never_panics_on_garbage(
            records in proptest::collection::vec(arb_record(), 1..5),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut b = BatchBuilder::new(BatchOptions::default());
            for r in &records {
                b.push(r);
            }
            let mut bytes = b.finish().unwrap();
            for (i, v) in flips {
                let i = i.index(bytes.len() - HEADER_BYTES) + HEADER_BYTES;
                bytes[i] = v;
            }
            // Re-seal the CRC so the decoder, not the checksum, meets the garbage.
            let crc = crc32c(&bytes[batch::ATTRIBUTES_OFFSET..]);
            bytes[batch::CRC_OFFSET..batch::CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
            if let Ok(batch) = RecordBatch::new(bytes.freeze()) {
                let _ = batch.records();
            }
        }
    }

    #[test]
    fn empty_batch_is_refused() {
        assert!(BatchBuilder::new(BatchOptions::default()).finish().is_err());
    }
}
