//! A minimal blocking Kafka-protocol client over the `kafka-protocol` crate's codecs, for
//! tests that drive the Kafka listener byte for byte.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

pub struct Kafka {
    pub sock: TcpStream,
    next_id: i32,
}

impl Kafka {
    pub fn connect(addr: SocketAddr) -> Kafka {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Kafka { sock, next_id: 1 }
    }

    pub fn send<T: Encodable + HeaderVersion>(&mut self, key: ApiKey, version: i16, body: &T) -> i32 {
        let (id, frame) = self.frame(key, version, body);
        self.sock.write_all(&frame).unwrap();
        id
    }

    /// A request frame with the next correlation id, not sent.
    pub fn frame<T: Encodable + HeaderVersion>(&mut self, key: ApiKey, version: i16, body: &T) -> (i32, BytesMut) {
        let id = self.next_id;
        self.next_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str("runnel-test")));
        let mut buf = BytesMut::new();
        buf.put_u32(0);
        header.encode(&mut buf, T::header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        (id, buf)
    }

    /// One response frame, without its length.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.sock.read_exact(&mut len).ok()?;
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        self.sock.read_exact(&mut frame).ok()?;
        Some(Bytes::from(frame))
    }

    pub fn call<Req: Encodable + HeaderVersion, Resp: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let id = self.send(key, version, body);
        let mut frame = self.read_frame().expect("a response");
        let header = ResponseHeader::decode(&mut frame, Resp::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, id);
        let resp = Resp::decode(&mut frame, version).unwrap();
        assert!(
            !frame.has_remaining(),
            "{} bytes left after the body",
            frame.remaining()
        );
        resp
    }
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}
