//! One client connection: a reader task that splits the byte stream into request frames
//! and starts each request as its own task, and a writer task that sends the responses
//! in request order.
//!
//! ```text
//!  socket ──► read loop ──spawn──► request task ─┐
//!                 │                              │ JoinHandle, in request order
//!                 └── bounded queue (in flight) ─┴──► write loop ──► socket
//! ```
//!
//! Requests run concurrently (a long-poll fetch does not hold up the produce behind it
//! from being appended), but their responses leave in order, as the protocol promises.
//!
//! Bounds: the queue holds at most `max_in_flight_requests`; the request bytes held by
//! this connection (frames read and not yet answered, plus the one being read) are
//! bounded by a semaphore of `max_connection_buffer_bytes` permits, taken as soon as a
//! frame's length is known and before its body is buffered. When either is exhausted the
//! reader stops reading and TCP pushes back on the client.
//!
//! Failures: a frame that cannot be delimited (length over the limit or under the
//! header) is answered with an INVALID_REQUEST error when its header is readable, then
//! the connection is closed and the reason logged. Everything else (garbage body,
//! unknown API or version, bad batches) is an error *response*, and the connection
//! carries on. Only this connection is affected in every case.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use runnel_protocol::frame::{self, FrameError};
use runnel_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::order::ApplyOrder;
use super::reply::{CopyingWriter, Reply, ReplyWriter};
use super::stats::ServerStats;
use super::Net;
use crate::metrics::{self, RequestInfo};

/// Bytes the reader asks the socket for when no frame length says otherwise.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What a listener's wire protocol supplies to the connection machinery (the native
/// protocol and Kafka's share framing: a 4-byte length, then a header whose bytes 4..8
/// after the length hold the correlation id).
pub(crate) trait Protocol: Send + Sync + 'static {
    /// What its requests are served by (the service layer).
    type Service: Send + Sync + 'static;
    /// The `protocol` label of its metrics and request spans.
    const NAME: &'static str;
    /// Bytes a frame holds at least after its length prefix (its fixed header).
    const MIN_FRAME_BYTES: usize;
    /// Whether a whole frame is a request that takes effect in arrival order (see
    /// [`ApplyOrder`]; which requests is the protocol's choice).
    fn keeps_order(frame: &[u8]) -> bool;
    /// Whether the handler wants the allocation of a frame of `total` bytes (`head`: at
    /// least its first 6) to itself, to write into it once the frame is its last holder
    /// (a Kafka produce, whose records are stamped in place). The reader then starts the
    /// frame in a buffer holding no other request, reads no further than its end, and
    /// moves anything read past it to a new buffer.
    fn wants_own_buffer(_head: &[u8], _total: usize) -> bool {
        false
    }
    /// What the protocol keeps per connection (its authentication, say).
    type Session: Send + Sync + 'static;
    /// The state of a new connection, made once its TLS handshake (if any) is done.
    fn session(service: &Self::Service, conn: &ConnectionInfo) -> Self::Session;
    /// Runs one request (bounded by the request timeout); `None` sends nothing back.
    fn dispatch(
        service: Arc<Self::Service>,
        session: Arc<Self::Session>,
        frame: BytesMut,
        order: Option<ApplyOrder>,
        peer: SocketAddr,
    ) -> impl std::future::Future<Output = Option<Reply>> + Send + 'static;
    /// The answer to a request that cannot be served (its handler failed, or its frame
    /// cannot be delimited); `None` closes the connection instead.
    fn error_reply(correlation_id: i32, code: ErrorCode, message: String) -> Option<Reply>;
}

/// What the connection machinery knows of a connection when it starts.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    /// Over TLS.
    pub tls: bool,
    /// The subject of the client's certificate (mutual TLS).
    pub tls_principal: Option<String>,
}

/// The correlation id of a frame (bytes 8..12, both protocols), zero-padded if short.
fn correlation_id(buf: &[u8]) -> i32 {
    let mut id = [0u8; 4];
    for (i, b) in buf.iter().skip(8).take(4).enumerate() {
        id[i] = *b;
    }
    i32::from_be_bytes(id)
}

/// A request read and started, awaiting its turn to be answered.
struct InFlight {
    correlation_id: i32,
    task: JoinHandle<Option<Reply>>,
    info: Arc<RequestInfo>,
}

#[derive(Debug)]
enum Close {
    /// The client closed (or reset) the connection.
    Peer,
    Idle,
    Shutdown,
    Protocol(FrameError),
    Io(std::io::Error),
    /// The writer stopped (the socket failed while writing).
    WriterGone,
}

/// Serves a plaintext connection (fetches with `sendfile`).
pub(crate) async fn run<P: Protocol>(net: Arc<Net>, service: Arc<P::Service>, sock: TcpStream, peer: SocketAddr) {
    let (rd, wr) = sock.into_split();
    let session = Arc::new(P::session(&service, &ConnectionInfo::default()));
    serve::<P, _, _>(net, service, session, rd, wr, peer).await;
}

/// Serves a connection whose TLS handshake is done (fetches copy through the TLS layer).
pub(crate) async fn run_tls<P: Protocol>(
    net: Arc<Net>,
    service: Arc<P::Service>,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
) {
    let conn = ConnectionInfo {
        tls: true,
        tls_principal: crate::tls::principal(&stream),
    };
    let session = Arc::new(P::session(&service, &conn));
    let (rd, wr) = tokio::io::split(stream);
    serve::<P, _, _>(net, service, session, rd, CopyingWriter::new(wr), peer).await;
}

async fn serve<P: Protocol, R: AsyncRead + Unpin, W: ReplyWriter>(
    net: Arc<Net>,
    service: Arc<P::Service>,
    session: Arc<P::Session>,
    rd: R,
    wr: W,
    peer: SocketAddr,
) {
    let (tx, rx) = mpsc::channel(net.config.max_in_flight_requests);
    let in_flight = Arc::new(AtomicUsize::new(0));
    net.metrics.connections.inc();
    let writer = tokio::spawn(write_loop::<P, W>(net.clone(), wr, rx, in_flight.clone(), peer));
    let close = read_loop::<P, R>(&net, &service, &session, rd, tx, &in_flight, peer).await;
    match &close {
        Close::Peer | Close::Shutdown | Close::WriterGone => debug!(%peer, ?close, "connection closing"),
        Close::Idle => info!(%peer, idle_timeout_ms = net.config.idle_timeout_ms, "closing idle connection"),
        Close::Protocol(e) => {
            ServerStats::add(&net.stats.connections_rejected, 1);
            warn!(%peer, error = %e, "closing connection: malformed frame");
        }
        Close::Io(e) => debug!(%peer, error = %e, "connection read failed"),
    }
    // The queue's sender is gone: the writer answers what was read, then ends.
    let _ = writer.await;
    // Requests the writer never answered (it stopped on a write error).
    net.metrics.in_flight.dec_by(in_flight.load(Ordering::Acquire) as i64);
    net.metrics.connections.dec();
}

// Long by choice: the reader's whole state machine (budget, frame boundaries, own
// buffers for large frames, idle and shutdown) reads top to bottom in one place.
async fn read_loop<P: Protocol, R: AsyncRead + Unpin>(
    net: &Arc<Net>,
    service: &Arc<P::Service>,
    session: &Arc<P::Session>,
    mut rd: R,
    tx: mpsc::Sender<InFlight>,
    in_flight: &AtomicUsize,
    peer: SocketAddr,
) -> Close {
    let cfg = &net.config;
    let budget = Arc::new(Semaphore::new(cfg.max_connection_buffer_bytes));
    let idle = Duration::from_millis(cfg.idle_timeout_ms);
    let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // `buf`'s allocation holds no frame already handed to a request.
    let mut fresh = true;
    // The frame being read wants its allocation to itself: its size, to read no further.
    let mut own_until: Option<usize> = None;
    // Permits for the frame being read, taken once its length is known.
    let mut permit: Option<OwnedSemaphorePermit> = None;
    // Signalled when the latest ordered request has taken effect: the next one waits for it.
    let mut last_turn: Option<oneshot::Receiver<()>> = None;
    loop {
        // Start every whole frame in the buffer.
        loop {
            let total = match frame::check_frame(&buf, 4 + P::MIN_FRAME_BYTES, cfg.max_request_frame_bytes) {
                Ok(Some(total)) => total,
                Ok(None) => {
                    if let (None, Some(len)) = (&permit, frame::announced_len(&buf)) {
                        let total = 4 + len as usize;
                        match take_budget(&budget, total, net).await {
                            Some(p) => permit = Some(p),
                            None => return Close::Shutdown,
                        }
                        if buf.len() >= 6 && P::wants_own_buffer(&buf, total) {
                            if !fresh {
                                // What was read of it so far moves; the rest is read in place.
                                let mut own = BytesMut::with_capacity(total);
                                own.extend_from_slice(&buf);
                                (buf, fresh) = (own, true);
                            }
                            own_until = Some(total);
                        }
                        buf.reserve(total.saturating_sub(buf.len()));
                    }
                    break;
                }
                Err(e) => {
                    let id = correlation_id(&buf);
                    if buf.len() >= 12 {
                        if let Some(reply) = P::error_reply(id, ErrorCode::InvalidRequest, e.to_string()) {
                            let task = tokio::spawn(async move { Some(reply) });
                            in_flight.fetch_add(1, Ordering::AcqRel);
                            net.metrics.in_flight.inc();
                            let _ = tx
                                .send(InFlight {
                                    correlation_id: id,
                                    task,
                                    info: RequestInfo::new(P::NAME, peer, Instant::now()),
                                })
                                .await;
                        }
                    }
                    return Close::Protocol(e);
                }
            };
            let permit = match permit.take() {
                Some(p) => p,
                None => match take_budget(&budget, total, net).await {
                    Some(p) => p,
                    None => return Close::Shutdown,
                },
            };
            let frame = buf.split_to(total);
            own_until = None;
            if P::wants_own_buffer(&frame, total) {
                // Cheaper than the handler copying the frame: only what was read past it
                // (nothing, when its reads were bounded by its end) moves.
                let mut ahead = BytesMut::with_capacity(READ_CHUNK_BYTES.max(buf.len()));
                ahead.extend_from_slice(&buf);
                buf = ahead;
                fresh = true;
            } else {
                fresh = false;
            }
            ServerStats::add(&net.stats.bytes_read, total as u64);
            ServerStats::add(&net.stats.requests, 1);
            let correlation_id = correlation_id(&frame);
            let order = P::keeps_order(&frame).then(|| {
                let (done, next) = oneshot::channel();
                ApplyOrder::new(last_turn.replace(next), done)
            });
            let info = RequestInfo::new(P::NAME, peer, Instant::now());
            super::capture::frame(P::NAME, &frame);
            let request = P::dispatch(service.clone(), session.clone(), frame, order, peer);
            let task = {
                let info = info.clone();
                tokio::spawn(metrics::scope(info.clone(), async move {
                    info.mark_started();
                    let reply = request.await;
                    info.mark_handled();
                    drop(permit);
                    reply
                }))
            };
            in_flight.fetch_add(1, Ordering::AcqRel);
            net.metrics.in_flight.inc();
            if tx
                .send(InFlight {
                    correlation_id,
                    task,
                    info,
                })
                .await
                .is_err()
            {
                return Close::WriterGone;
            }
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let limit = own_until.map_or(usize::MAX, |total| total - buf.len());
        let mut space = (&mut buf).limit(limit);
        let read = tokio::select! {
            r = tokio::time::timeout(idle, rd.read_buf(&mut space)) => r,
            _ = net.shutting_down() => return Close::Shutdown,
        };
        match read {
            Ok(Ok(0)) => {
                if !buf.is_empty() {
                    debug!(buffered = buf.len(), "peer closed inside a frame");
                }
                return Close::Peer;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Close::Io(e),
            Err(_) => {
                // Idle only if nothing is in flight: a client waiting on a long poll or a
                // durable ack is not idle.
                if in_flight.load(Ordering::Acquire) == 0 {
                    return Close::Idle;
                }
            }
        }
    }
}

/// Takes `bytes` permits of the connection's buffer budget, waiting for requests in
/// flight to release theirs. `None` on shutdown.
async fn take_budget(budget: &Arc<Semaphore>, bytes: usize, net: &Net) -> Option<OwnedSemaphorePermit> {
    // `check_frame` bounded `bytes` by the frame limit, which validation keeps within the
    // budget, so this always completes once earlier requests finish.
    tokio::select! {
        p = budget.clone().acquire_many_owned(bytes as u32) => p.ok(),
        _ = net.shutting_down() => None,
    }
}

async fn write_loop<P: Protocol, W: ReplyWriter>(
    net: Arc<Net>,
    mut wr: W,
    mut rx: mpsc::Receiver<InFlight>,
    in_flight: Arc<AtomicUsize>,
    peer: SocketAddr,
) {
    let slow = Duration::from_millis(net.config.slow_request_ms);
    while let Some(InFlight {
        correlation_id,
        task,
        info,
    }) = rx.recv().await
    {
        let reply = match task.await {
            Ok(reply) => reply,
            Err(e) => {
                // A handler panicked: a bug. Answer it if the protocol can (else close this
                // connection); the others go on.
                error!(%peer, correlation_id, error = %e, "request handler failed");
                match P::error_reply(
                    correlation_id,
                    ErrorCode::UnknownServerError,
                    "internal error in the net (logged)".into(),
                ) {
                    Some(reply) => Some(reply),
                    None => return,
                }
            }
        };
        if crate::storage::io::powered_off() {
            // A simulated power cut: the machine says nothing more.
            return;
        }
        if let Some(reply) = reply {
            if reply.close {
                if !reply.head.is_empty() {
                    let _ = wr.write_reply(&reply, &net.stats).await;
                }
                debug!(%peer, correlation_id, "closing connection: undecodable or refused request");
                ServerStats::add(&net.stats.connections_rejected, 1);
                break;
            }
            if let Err(e) = wr.write_reply(&reply, &net.stats).await {
                debug!(%peer, error = %e, "write failed; closing connection");
                return;
            }
        }
        net.metrics.finish(&info, Instant::now(), slow);
        in_flight.fetch_sub(1, Ordering::AcqRel);
        net.metrics.in_flight.dec();
    }
    let _ = wr.shutdown().await;
}
