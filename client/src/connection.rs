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

use bytes::{Bytes, BytesMut};
use runnel_protocol::frame::{self, RequestHeader, ResponseFrame, RESPONSE_HEADER_BYTES};
use runnel_protocol::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
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
    /// Connects to `addr` (TLS when `config.tls` says so; the handshake counts in the
    /// connect timeout).
    pub(crate) async fn open(addr: &str, config: &crate::ClientConfig) -> Result<Connection> {
        let connect_timeout = config.connect_timeout;
        let max_response_frame_bytes = config.max_response_frame_bytes;
        let connect_err = |reason: String| Error::Connect {
            addr: addr.to_owned(),
            reason,
        };
        let connect = async {
            let sock = TcpStream::connect(addr).await.map_err(|e| connect_err(e.to_string()))?;
            let _ = sock.set_nodelay(true);
            match &config.tls {
                None => Ok(Stream::Plain(sock)),
                Some(tls) => tls.connect(addr, sock).await.map(|s| Stream::Tls(Box::new(s))),
            }
        };
        let stream = match tokio::time::timeout(connect_timeout, connect).await {
            Ok(r) => r?,
            Err(_) => return Err(connect_err(format!("no answer within {connect_timeout:?}"))),
        };
        match stream {
            Stream::Plain(sock) => {
                let (rd, wr) = sock.into_split();
                Ok(Connection::start(addr, rd, wr, max_response_frame_bytes))
            }
            Stream::Tls(tls) => {
                let (rd, wr) = tokio::io::split(*tls);
                Ok(Connection::start(addr, rd, wr, max_response_frame_bytes))
            }
        }
    }

    fn start<R, W>(addr: &str, rd: R, wr: W, max_response_frame_bytes: u32) -> Connection
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let dead = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            addr: addr.to_owned(),
            pending: Mutex::new(VecDeque::new()),
            dead: dead.clone(),
        });
        let (queue, rx) = mpsc::channel(WRITE_QUEUE_DEPTH);
        tokio::spawn(write_loop(wr, rx, shared.clone()));
        tokio::spawn(read_loop(rd, shared, max_response_frame_bytes));
        Connection {
            addr: addr.to_owned(),
            queue,
            next_correlation_id: AtomicI32::new(1),
            dead,
        }
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

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Outgoing>, shared: Arc<Shared>) {
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
        // A TLS stream holds encrypted bytes until flushed (a plain socket's flush does
        // nothing); once the queue is drained, so pipelined requests share records.
        if rx.is_empty() {
            if let Err(e) = wr.flush().await {
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

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, shared: Arc<Shared>, max_frame_bytes: u32) {
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
