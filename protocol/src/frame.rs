//! The native protocol's frames: a length prefix, a small fixed header, a protobuf body,
//! then raw trailing bytes (record batches) that the body describes.
//!
//! ```text
//! request frame (all integers big-endian)
//!   0   u32  frame_bytes      bytes after this field (12 + body_bytes + trailer)
//!   4   i16  api_key          see `ApiKey`
//!   6   i16  api_version
//!   8   i32  correlation_id   echoed in the response
//!  12   u32  body_bytes       length of the protobuf body
//!  16   ...  body             protobuf (`runnel.v1.*Request`)
//!       ...  trailer          raw bytes: a Produce request's record batches
//!
//! response frame
//!   0   u32  frame_bytes      bytes after this field (8 + body_bytes + trailer)
//!   4   i32  correlation_id
//!   8   u32  body_bytes
//!  12   ...  body             protobuf (`runnel.v1.*Response` or `ErrorResponse`)
//!       ...  trailer          raw bytes: a Fetch response's record batches
//! ```
//!
//! Why a trailer instead of a protobuf `bytes` field: the broker appends a producer's
//! batches in place (stamping offsets into the request buffer) and sends a consumer's
//! batches with `sendfile` straight from the segment file; neither is possible if the
//! bytes must sit inside an encoded message.
//!
//! Every frame's length is checked against a maximum before any of it is buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes before a request's body: length prefix and fixed header.
pub const REQUEST_HEADER_BYTES: usize = 16;
/// Bytes before a response's body.
pub const RESPONSE_HEADER_BYTES: usize = 12;
/// The broker's default limit on a request frame (Kafka's `socket.request.max.bytes`).
pub const DEFAULT_MAX_REQUEST_FRAME_BYTES: u32 = 100 * 1024 * 1024;
/// The client's default limit on a response frame: a fetch's `max_bytes` plus its body.
pub const DEFAULT_MAX_RESPONSE_FRAME_BYTES: u32 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    #[error("frame of {len} bytes is shorter than its {min}-byte header")]
    TooShort { len: u32, min: u32 },
    #[error("body of {body} bytes overruns a frame of {frame} bytes")]
    BodyOverrun { body: u32, frame: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// The length a frame announces (bytes after the prefix), once four bytes are buffered.
pub fn announced_len(buf: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(..4)?.try_into().ok()?))
}

/// Checks the frame at the start of `buf`: `Ok(None)` if more bytes are needed,
/// `Ok(Some(n))` if the first `n` bytes are one whole frame. `header_bytes` is
/// [`REQUEST_HEADER_BYTES`] or [`RESPONSE_HEADER_BYTES`]. Errors mean the stream cannot be
/// resynchronised: the connection must close.
pub fn check_frame(buf: &[u8], header_bytes: usize, max_frame_bytes: u32) -> Result<Option<usize>, FrameError> {
    let Some(len) = announced_len(buf) else {
        return Ok(None);
    };
    if len > max_frame_bytes {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: max_frame_bytes,
        });
    }
    let min = (header_bytes - 4) as u32;
    if len < min {
        return Err(FrameError::TooShort { len, min });
    }
    let total = 4 + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// A request frame split into its parts. The body and trailer are separate mutable
/// buffers over the frame's memory (no copy), so a handler can stamp offsets into the
/// trailer's batches.
#[derive(Debug)]
pub struct RequestFrame {
    pub header: RequestHeader,
    pub body: BytesMut,
    pub trailer: BytesMut,
}

/// Reads the fixed header of a whole request frame (as `check_frame` delimited it).
pub fn request_header(frame: &[u8]) -> RequestHeader {
    debug_assert!(frame.len() >= REQUEST_HEADER_BYTES);
    let mut b = &frame[4..12];
    RequestHeader {
        api_key: b.get_i16(),
        api_version: b.get_i16(),
        correlation_id: b.get_i32(),
    }
}

/// Splits a whole request frame. On `BodyOverrun` the header is still known (and the
/// frame boundary intact), so the broker can answer with an error and carry on.
pub fn parse_request(mut frame: BytesMut) -> Result<RequestFrame, (RequestHeader, FrameError)> {
    let header = request_header(&frame);
    let frame_bytes = (frame.len() - 4) as u32;
    let body_bytes = u32::from_be_bytes(frame[12..16].try_into().expect("4 bytes"));
    if body_bytes as usize > frame.len() - REQUEST_HEADER_BYTES {
        return Err((
            header,
            FrameError::BodyOverrun {
                body: body_bytes,
                frame: frame_bytes,
            },
        ));
    }
    frame.advance(REQUEST_HEADER_BYTES);
    let body = frame.split_to(body_bytes as usize);
    Ok(RequestFrame {
        header,
        body,
        trailer: frame,
    })
}

/// Writes a request frame's prefix, header and body; the caller appends `trailer_bytes`
/// of trailer after it (or writes them to the socket separately).
pub fn encode_request(dst: &mut BytesMut, header: RequestHeader, body: &impl prost::Message, trailer_bytes: usize) {
    let body_bytes = body.encoded_len();
    dst.reserve(REQUEST_HEADER_BYTES + body_bytes);
    dst.put_u32((REQUEST_HEADER_BYTES - 4 + body_bytes + trailer_bytes) as u32);
    dst.put_i16(header.api_key);
    dst.put_i16(header.api_version);
    dst.put_i32(header.correlation_id);
    dst.put_u32(body_bytes as u32);
    body.encode(dst).expect("reserved");
}

/// Writes a response frame's prefix, header and body; `trailer_bytes` follow.
pub fn encode_response(dst: &mut BytesMut, correlation_id: i32, body: &impl prost::Message, trailer_bytes: usize) {
    let body_bytes = body.encoded_len();
    dst.reserve(RESPONSE_HEADER_BYTES + body_bytes);
    dst.put_u32((RESPONSE_HEADER_BYTES - 4 + body_bytes + trailer_bytes) as u32);
    dst.put_i32(correlation_id);
    dst.put_u32(body_bytes as u32);
    body.encode(dst).expect("reserved");
}

/// A response frame split into its parts.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    pub correlation_id: i32,
    pub body: Bytes,
    pub trailer: Bytes,
}

/// Splits a whole response frame (as `check_frame` delimited it).
pub fn parse_response(mut frame: Bytes) -> Result<ResponseFrame, FrameError> {
    debug_assert!(frame.len() >= RESPONSE_HEADER_BYTES);
    let frame_bytes = (frame.len() - 4) as u32;
    frame.advance(4);
    let correlation_id = frame.get_i32();
    let body_bytes = frame.get_u32();
    if body_bytes as usize > frame.len() {
        return Err(FrameError::BodyOverrun {
            body: body_bytes,
            frame: frame_bytes,
        });
    }
    let body = frame.split_to(body_bytes as usize);
    Ok(ResponseFrame {
        correlation_id,
        body,
        trailer: frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{ErrorResponse, MetadataRequest};

    #[test]
    fn request_round_trip_and_incomplete_prefixes() {
        let header = RequestHeader {
            api_key: 3,
            api_version: 0,
            correlation_id: 42,
        };
        let body = MetadataRequest {
            topics: vec!["a".into(), "bc".into()],
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request(&mut buf, header, &body, 5);
        buf.extend_from_slice(b"trail");
        for cut in 0..buf.len() {
            assert_eq!(
                check_frame(&buf[..cut], REQUEST_HEADER_BYTES, 1 << 20),
                Ok(None),
                "cut {cut}"
            );
        }
        assert_eq!(check_frame(&buf, REQUEST_HEADER_BYTES, 1 << 20), Ok(Some(buf.len())));
        let f = parse_request(buf).unwrap();
        assert_eq!(f.header, header);
        assert_eq!(<MetadataRequest as prost::Message>::decode(f.body).unwrap(), body);
        assert_eq!(&f.trailer[..], b"trail");
    }

    #[test]
    fn limits_and_malformed_headers() {
        let mut buf = BytesMut::new();
        buf.put_u32(1000);
        assert_eq!(
            check_frame(&buf, REQUEST_HEADER_BYTES, 999),
            Err(FrameError::TooLarge { len: 1000, max: 999 })
        );
        let mut short = BytesMut::new();
        short.put_u32(3);
        assert!(matches!(
            check_frame(&short, REQUEST_HEADER_BYTES, 999),
            Err(FrameError::TooShort { .. })
        ));
        // A body length past the frame end: the header is still readable.
        let mut over = BytesMut::new();
        over.put_u32(12);
        over.put_i16(0);
        over.put_i16(0);
        over.put_i32(7);
        over.put_u32(99);
        let (h, e) = parse_request(over).unwrap_err();
        assert_eq!(h.correlation_id, 7);
        assert!(matches!(e, FrameError::BodyOverrun { body: 99, .. }));
    }

    #[test]
    fn response_round_trip() {
        let body = ErrorResponse {
            error_code: 3,
            error_message: "x".into(),
        };
        let mut buf = BytesMut::new();
        encode_response(&mut buf, -5, &body, 2);
        buf.extend_from_slice(b"zz");
        assert_eq!(check_frame(&buf, RESPONSE_HEADER_BYTES, 1 << 20), Ok(Some(buf.len())));
        let f = parse_response(buf.freeze()).unwrap();
        assert_eq!(f.correlation_id, -5);
        assert_eq!(<ErrorResponse as prost::Message>::decode(f.body).unwrap(), body);
        assert_eq!(&f.trailer[..], b"zz");
    }
}
