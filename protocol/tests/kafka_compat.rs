//! Cross-checks our RecordBatch v2 codec against an independent implementation, the
//! `kafka-protocol` crate, for every compression codec: batches it encodes decode with
//! ours (and pass our CRC-32C check), and batches we encode decode with it.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use proptest::prelude::*;
use runnel_protocol::{BatchBuilder, BatchOptions, Compression, Header, Record, RecordBatch};

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

/// (timestamp, key, value, headers with distinct keys: kafka-protocol keeps headers in a map)
type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>);

fn arb_records() -> impl Strategy<Value = Vec<Rec>> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200));
    let headers =
        proptest::collection::btree_map("[a-z]{1,6}", bytes(), 0..3).prop_map(|m| m.into_iter().collect::<Vec<_>>());
    proptest::collection::vec(
        (1_600_000_000_000i64..1_700_000_000_000, bytes(), bytes(), headers),
        1..30,
    )
}

fn arb_codec() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn kafka_protocol_encodes_we_decode(recs in arb_records(), codec in arb_codec(), base in 0i64..1 << 40) {
        let kp_records: Vec<kp::Record> = recs
            .iter()
            .enumerate()
            .map(|(i, (ts, k, v, hs))| kp::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: 77,
                producer_epoch: 2,
                timestamp_type: kp::TimestampType::Creation,
                offset: base + i as i64,
                sequence: 10 + i as i32,
                timestamp: *ts,
                key: k.clone().map(Bytes::from),
                value: v.clone().map(Bytes::from),
                headers: hs
                    .iter()
                    .map(|(hk, hv)| (StrBytes::from_string(hk.clone()), hv.clone().map(Bytes::from)))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect();
        let mut buf = BytesMut::new();
        kp::RecordBatchEncoder::encode(
            &mut buf,
            &kp_records,
            &kp::RecordEncodeOptions { version: 2, compression: kp_codec(codec) },
        )
        .unwrap();

        let batches = RecordBatch::split_all(buf.freeze()).unwrap();
        prop_assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let h = batch.header();
        prop_assert_eq!(h.base_offset, base);
        prop_assert_eq!(h.compression().unwrap(), codec);
        prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 2, 10));
        prop_assert_eq!(h.partition_leader_epoch, 3);
        prop_assert_eq!(h.max_timestamp, recs.iter().map(|r| r.0).max().unwrap());
        let ours = batch.records().unwrap();
        prop_assert_eq!(ours.len(), recs.len());
        for (i, (got, want)) in ours.iter().zip(&recs).enumerate() {
            prop_assert_eq!(got.offset, base + i as i64);
            prop_assert_eq!(got.timestamp, want.0);
            prop_assert_eq!(got.key.as_deref(), want.1.as_deref());
            prop_assert_eq!(got.value.as_deref(), want.2.as_deref());
            let hs: Vec<(String, Option<Vec<u8>>)> = got
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                .collect();
            prop_assert_eq!(&hs, &want.3);
        }
    }

    #[test]
    fn we_encode_kafka_protocol_decodes(recs in arb_records(), codec in arb_codec(), base in 0i64..1 << 40) {
        let mut b = BatchBuilder::new(BatchOptions {
            compression: codec,
            producer_id: 5,
            producer_epoch: 1,
            base_sequence: 100,
            partition_leader_epoch: 9,
            transactional: false,
        });
        for (ts, k, v, hs) in &recs {
            let headers: Vec<Header> = hs
                .iter()
                .map(|(hk, hv)| Header { key: hk.clone(), value: hv.clone().map(Bytes::from) })
                .collect();
            b.push_parts(*ts, k.as_deref(), v.as_deref(), &headers);
        }
        let mut bytes = b.finish().unwrap();
        runnel_protocol::batch::set_base_offset(&mut bytes, base);

        // kafka-protocol checks the CRC-32C itself while decoding.
        let mut wire = bytes.freeze();
        let set = kp::RecordBatchDecoder::decode(&mut wire).unwrap();
        prop_assert_eq!(set.compression, kp_codec(codec));
        prop_assert_eq!(set.records.len(), recs.len());
        for (i, (got, want)) in set.records.iter().zip(&recs).enumerate() {
            prop_assert_eq!(got.offset, base + i as i64);
            prop_assert_eq!(got.sequence, 100 + i as i32);
            prop_assert_eq!((got.producer_id, got.producer_epoch, got.partition_leader_epoch), (5, 1, 9));
            prop_assert_eq!(got.timestamp, want.0);
            prop_assert_eq!(got.key.as_deref(), want.1.as_deref());
            prop_assert_eq!(got.value.as_deref(), want.2.as_deref());
            let hs: Vec<(String, Option<Vec<u8>>)> = got
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_ref().map(|v| v.to_vec())))
                .collect();
            prop_assert_eq!(&hs, &want.3);
        }
    }
}

/// Our CRC-32C against a second, independent implementation (the `crc32c` crate).
#[test]
fn crc32c_matches_the_crc32c_crate() {
    let mut data = vec![0u8; 1 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    for len in [0, 1, 7, 61, 4096, 65_537, 1 << 20] {
        assert_eq!(runnel_protocol::crc::crc32c(&data[..len]), crc32c::crc32c(&data[..len]));
    }
}

#[test]
fn a_record_with_everything() {
    let rec = Record::new(1, Some(b"key"), None).with_header("h", Some(b"v"));
    let mut b = BatchBuilder::new(BatchOptions::default());
    b.push(&rec);
    let mut wire = b.finish().unwrap().freeze();
    let set = kp::RecordBatchDecoder::decode(&mut wire).unwrap();
    assert_eq!(set.records[0].key.as_deref(), Some(&b"key"[..]));
    assert_eq!(set.records[0].value, None);
}
