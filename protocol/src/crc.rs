//! CRC-32C (Castagnoli), the checksum of RecordBatch v2.
//!
//! `crc-fast` computes it with SIMD carry-less multiplication (CRC-32/ISCSI is the same
//! polynomial, reflected, with the same init and xorout as Kafka's CRC-32C).

use crc_fast::CrcAlgorithm;

/// CRC-32C of `data`.
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, data) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
