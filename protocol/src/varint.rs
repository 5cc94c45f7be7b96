//! Zig-zag variable-length integers, as Kafka's records use them (protobuf's `sint32`/`sint64`).

use bytes::BufMut;

use crate::error::BatchError;

/// Bytes needed to encode `v` as a zig-zag varlong.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

#[inline]
pub fn varint_len(v: i32) -> usize {
    varlong_len(v as i64)
}

#[inline]
pub fn put_varlong<B: BufMut>(buf: &mut B, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

#[inline]
pub fn put_varint<B: BufMut>(buf: &mut B, v: i32) {
    put_varlong(buf, v as i64)
}

/// Reads a zig-zag varlong from the front of `buf`, returning the value and the bytes used.
#[inline]
pub fn get_varlong(buf: &[u8]) -> Result<(i64, usize), BatchError> {
    let mut z: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        z |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return Ok((((z >> 1) as i64) ^ -((z & 1) as i64), i + 1));
        }
    }
    if buf.len() >= 10 {
        Err(BatchError::InvalidRecord("varint longer than 10 bytes"))
    } else {
        Err(BatchError::InvalidRecord("varint runs past the end of the records"))
    }
}

#[inline]
pub fn get_varint(buf: &[u8]) -> Result<(i32, usize), BatchError> {
    let (v, n) = get_varlong(buf)?;
    i32::try_from(v)
        .map(|v| (v, n))
        .map_err(|_| BatchError::InvalidRecord("varint out of i32 range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varlong_roundtrip(v in any::<i64>()) {
            let mut buf = Vec::new();
            put_varlong(&mut buf, v);
            prop_assert_eq!(buf.len(), varlong_len(v));
            prop_assert_eq!(get_varlong(&buf).unwrap(), (v, buf.len()));
        }

        #[test]
        fn varint_roundtrip(v in any::<i32>()) {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            prop_assert_eq!(get_varint(&buf).unwrap(), (v, buf.len()));
        }

        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = get_varlong(&buf);
        }
    }

    #[test]
    fn known_encodings() {
        let enc = |v: i64| {
            let mut b = Vec::new();
            put_varlong(&mut b, v);
            b
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(-1), [1]);
        assert_eq!(enc(1), [2]);
        assert_eq!(enc(64), [0x80, 0x01]);
    }
}
