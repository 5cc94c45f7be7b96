//! One TCP connection to a broker, pipelined: many requests in flight, responses matched
//! to requests by order (the broker answers in request order) and checked by
//! correlation id.
//!
//! Two tasks own the socket halves. The writer takes requests from a queue, records who
//! waits for each response, and writes the frame; the reader splits the response stream
//! into frames and hands each to the oldest waiter. If either fails, every waiter gets
//! `Disconnected` and the connection is marked dead; [`crate::Client`] opens a new one on
//! the next request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use runnel_protocol::frame::{self, RequestHeader, ResponseFrame, RESPONSE_HEADER_BYTES};
use runnel_protocol::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Requests queued for the writer before `send` waits.
const WRITE_QUEUE_DEPTH: usize = 256;

type Waiter = (i32, oneshot::Sender<Result<ResponseFrame>>);

struct Outgoing {
    parts: Vec<Bytes>,
    waiter: Option<Waiter>,
}

pub(crate) struct Connection {
    addr: String,
    queue: mpsc::Sender<Outgoing>,
    next_correlation_id: AtomicI32,
    dead: Arc<AtomicBool>,
}

struct Shared {
    addr: String,
    pending: Mutex<VecDeque<Waiter>>,
    dead: Arc<AtomicBool>,
}

impl Shared {
    fn fail_all(&self, reason: &str) {
        self.dead.store(true, Ordering::Release);
        let waiters: Vec<Waiter> = crate::sync::lock(&self.pending).drain(..).collect();
        for (_, tx) in waiters {
            let _ = tx.send(Err(Error::Disconnected {
                addr: self.addr.clone(),
                reason: reason.to_owned(),
            }));
        }
    }
}

impl Connection {
    pub(crate) async fn open(
        addr: &str,
        connect_timeout: Duration,
        max_response_frame_bytes: u32,
    ) -> Result<Connection> {
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let sock = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(connect_err(e.to_string())),
            Err(_) => return Err(connect_err(format!("no answer within {connect_timeout:?}"))),
        };
        let _ = sock.set_nodelay(true);
        let (rd, wr) = sock.into_split();
        let dead = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            pending: Mutex::new(VecDeque::new()),
            dead: dead.clone(),
        });
        let (queue, rx) = mpsc::channel(WRITE_QUEUE_DEPTH);
        tokio::spawn(write_loop(wr, rx, shared.clone()));
        tokio::spawn(read_loop(rd, shared, max_response_frame_bytes));
        Ok(Connection {
            addr: addr.to_owned(),
            queue,
            next_correlation_id: AtomicI32::new(1),
            dead,
        })
    }

    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    fn disconnected(&self) -> Error {
        Error::Disconnected {
            addr: self.addr.clone(),
            reason: "connection closed".into(),
        }
    }

    /// Queues a request with `trailer` after its body for the writer; requests leave in
    /// the order they were queued. With `want_response` false (a produce with acks none)
    /// there is nothing to wait for and `Ok(None)` returns once queued; otherwise the
    /// receiver yields the response.
    pub(crate) async fn enqueue<R: Request>(
        &self,
        req: &R,
        trailer: Vec<Bytes>,
        want_response: bool,
    ) -> Result<Option<oneshot::Receiver<Result<ResponseFrame>>>> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let trailer_bytes: usize = trailer.iter().map(Bytes::len).sum();
        let mut head = BytesMut::new();
        frame::encode_request(
            &mut head,
            RequestHeader {
                api_key: R::KEY as i16,
                api_version: R::VERSION,
                correlation_id,
            },
            req,
            trailer_bytes,
        );
        let mut parts = Vec::with_capacity(1 + trailer.len());
        parts.push(head.freeze());
        parts.extend(trailer);
        let (waiter, rx) = if want_response {
            let (tx, rx) = oneshot::channel();
            (Some((correlation_id, tx)), Some(rx))
        } else {
            (None, None)
        };
        if self.is_dead() || self.queue.send(Outgoing { parts, waiter }).await.is_err() {
            return Err(self.disconnected());
        }
        Ok(rx)
    }

    /// The response a receiver from [`Connection::enqueue`] yields.
    pub(crate) async fn response(&self, rx: oneshot::Receiver<Result<ResponseFrame>>) -> Result<ResponseFrame> {
        rx.await.unwrap_or_else(|_| Err(self.disconnected()))
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Outgoing>, shared: Arc<Shared>) {
    while let Some(out) = rx.recv().await {
        if let Some(w) = out.waiter {
            // Registered before the bytes leave, so the reader always finds it.
            crate::sync::lock(&shared.pending).push_back(w);
        }
        for part in &out.parts {
            if let Err(e) = wr.write_all(part).await {
                shared.fail_all(&format!("write failed: {e}"));
                return;
            }
        }
        if shared.dead.load(Ordering::Acquire) {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop(mut rd: OwnedReadHalf, shared: Arc<Shared>, max_frame_bytes: u32) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        loop {
            let total = match frame::check_frame(&buf, RESPONSE_HEADER_BYTES, max_frame_bytes) {
                Ok(Some(total)) => total,
                Ok(None) => {
                    if let Some(len) = frame::announced_len(&buf) {
                        buf.reserve((4 + len as usize).saturating_sub(buf.len()));
                    }
                    break;
                }
                Err(e) => {
                    shared.fail_all(&bad_frame_reason(&buf, &e.to_string()));
                    return;
                }
            };
            let response = match frame::parse_response(buf.split_to(total).freeze()) {
                Ok(r) => r,
                Err(e) => {
                    shared.fail_all(&format!("bad response frame: {e}"));
                    return;
                }
            };
            let waiter = crate::sync::lock(&shared.pending).pop_front();
            match waiter {
                Some((id, tx)) if id == response.correlation_id => {
                    // The caller may have given up (timeout, aborted task): that is fine.
                    let _ = tx.send(Ok(response));
                }
                Some((id, tx)) => {
                    let _ = tx.send(Err(Error::Protocol(format!(
                        "response for correlation id {} arrived when {id} was expected",
                        response.correlation_id
                    ))));
                    shared.fail_all("responses out of order");
                    return;
                }
                None => {
                    shared.fail_all(&format!(
                        "unsolicited response (correlation id {})",
                        response.correlation_id
                    ));
                    return;
                }
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(64 * 1024);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => {
                shared.fail_all("the broker closed the connection");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                shared.fail_all(&format!("read failed: {e}"));
                return;
            }
        }
    }
}

/// Why a response frame could not be read, naming the likely cause when the bytes are
/// another protocol's: `runnel --broker` pointed at the metrics port gets an HTTP answer,
/// whose first bytes read as a frame of 1,213,486,160 bytes.
fn bad_frame_reason(buf: &[u8], error: &str) -> String {
    if buf.starts_with(b"HTTP/") {
        format!(
            "it answered like an HTTP server — the native protocol is on port {} by default (--broker)",
            runnel_protocol::DEFAULT_BROKER_PORT
        )
    } else {
        format!("bad response frame: {error}")
    }
}
