//! Kafka's default partitioning: keyed records go to `murmur2(key) & 0x7fffffff % n`,
//! so a key lands on the same partition as with Kafka's Java client; keyless records
//! stick to one partition until its batch is sent (KIP-480), then move on.

/// The partition of a keyed record, as Kafka's `BuiltInPartitioner.partitionForKey`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    debug_assert!(partitions > 0);
    let hash = murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32;
    ((hash & 0x7fff_ffff) as u32) % partitions
}

/// A random partition other than `previous` (when there is another).
pub(crate) fn next_sticky(previous: Option<u32>, partitions: u32) -> u32 {
    use rand::Rng;
    let mut rng = rand::rng();
    match previous {
        Some(p) if partitions > 1 => {
            let r = rng.random_range(0..partitions - 1);
            if r >= p {
                r + 1
            } else {
                r
            }
        }
        _ => rng.random_range(0..partitions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's UtilsTest.testMurmur2: the Java client's hashes of these keys.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
            (b"abc", 479470107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2::murmur2(key, murmur2::KAFKA_SEED) as i32, *want, "{key:?}");
        }
        assert_eq!(
            partition_for_key(b"foobar", 10),
            ((-790332482i32 & 0x7fffffff) as u32) % 10
        );
    }

    #[test]
    fn sticky_moves_to_another_partition() {
        for _ in 0..100 {
            let p = next_sticky(Some(2), 3);
            assert!(p < 3 && p != 2);
        }
        assert_eq!(next_sticky(Some(0), 1), 0);
    }
}
