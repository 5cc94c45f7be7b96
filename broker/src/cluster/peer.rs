//! Calls from one broker to another over the native protocol: the metadata quorum's Raft
//! messages, brokers' requests to the controller, and followers' fetches. One connection
//! per peer, one request at a time, every call bounded by a timeout; a failed call drops
//! the connection and the next one dials again.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use runnel_protocol::frame::{self, RequestHeader, RESPONSE_HEADER_BYTES};
use runnel_protocol::{ErrorCode, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses between brokers carry metadata, or a follower's fetch (bounded by what it
/// asks for, far below this).
const MAX_PEER_RESPONSE_BYTES: u32 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{addr}: no answer within {ms} ms")]
    Timeout { addr: String, ms: u128 },
    #[error("{addr}: {code}: {message}")]
    Refused {
        addr: String,
        code: ErrorCode,
        message: String,
    },
}

pub struct Peer {
    addr: String,
    conn: Option<TcpStream>,
    next_correlation_id: i32,
}

impl Peer {
    pub fn new(addr: impl Into<String>) -> Peer {
        Peer {
            addr: addr.into(),
            conn: None,
            next_correlation_id: 0,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Drops the connection (a call on it was abandoned half-way); the next call dials.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    /// Sends `req` and waits for its response (a request-level error is `Refused`).
    pub async fn call<R: Request>(&mut self, req: &R, timeout: Duration) -> Result<R::Response, PeerError> {
        self.call_with_trailer(req, timeout).await.map(|(resp, _)| resp)
    }

    /// As `call`, also returning the response frame's trailer (a fetch's records),
    /// writable in place.
    pub async fn call_with_trailer<R: Request>(
        &mut self,
        req: &R,
        timeout: Duration,
    ) -> Result<(R::Response, BytesMut), PeerError> {
        if crate::storage::io::powered_off() {
            // A simulated power cut: nothing leaves this machine any more.
            std::future::pending::<()>().await;
        }
        let result = match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(Ok((body, trailer))) => R::Response::decode(body)
                .map(|r| (r, trailer))
                .map_err(|e| self.io(std::io::Error::other(e))),
            Ok(Err(e)) => Err(self.io(e)),
            Err(_) => Err(PeerError::Timeout {
                addr: self.addr.clone(),
                ms: timeout.as_millis(),
            }),
        };
        match result {
            Ok((resp, _)) if resp.error_code() != 0 => Err(PeerError::Refused {
                addr: self.addr.clone(),
                code: ErrorCode::from_i32(resp.error_code()),
                message: resp.error_message().to_owned(),
            }),
            Ok(resp) => Ok(resp),
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn io(&self, source: std::io::Error) -> PeerError {
        PeerError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    async fn exchange<R: Request>(&mut self, req: &R) -> std::io::Result<(Bytes, BytesMut)> {
        if self.conn.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(s);
        }
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let mut buf = BytesMut::new();
        frame::encode_request(
            &mut buf,
            RequestHeader {
                api_key: R::KEY as i16,
                api_version: R::VERSION,
                correlation_id,
            },
            req,
            0,
        );
        let conn = self.conn.as_mut().expect("connected above");
        conn.write_all(&buf).await?;
        let mut prefix = [0u8; 4];
        conn.read_exact(&mut prefix).await?;
        let len = u32::from_be_bytes(prefix);
        if len > MAX_PEER_RESPONSE_BYTES || (len as usize) < RESPONSE_HEADER_BYTES - 4 {
            return Err(std::io::Error::other(format!("response frame of {len} bytes")));
        }
        let mut whole = BytesMut::zeroed(len as usize);
        conn.read_exact(&mut whole).await?;
        let got = i32::from_be_bytes(whole[..4].try_into().expect("4 bytes"));
        let body_bytes = u32::from_be_bytes(whole[4..8].try_into().expect("4 bytes")) as usize;
        if body_bytes > whole.len() - 8 {
            return Err(std::io::Error::other(format!(
                "response body of {body_bytes} bytes in a frame of {len}"
            )));
        }
        if got != correlation_id {
            return Err(std::io::Error::other(format!(
                "response for request {got} while waiting for {correlation_id}"
            )));
        }
        let mut body = whole.split_off(8);
        let trailer = body.split_off(body_bytes);
        Ok((body.freeze(), trailer))
    }
}
