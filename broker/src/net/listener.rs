//! The accept loop: one task per connection, at most `max_connections` at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, error, info};

use super::connection::{self, Protocol};
use super::{stats::ServerStats, Net};
use crate::tls::{self, Tls};

/// Pause after an accept error (EMFILE and friends) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 100;

/// Accepts connections on `listener`: plaintext, or TLS when `tls` is given (the
/// handshake runs in the connection's own task, bounded by its timeout; one that fails
/// closes that connection only).
pub(crate) async fn accept_loop<P: Protocol>(
    net: Arc<Net>,
    service: Arc<P::Service>,
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    done: mpsc::Sender<()>,
) {
    let limit = Arc::new(Semaphore::new(net.config.max_connections));
    loop {
        // At the limit, stop accepting: new clients wait in the kernel's backlog.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = net.shutting_down() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = net.shutting_down() => return,
        };
        let (sock, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        ServerStats::add(&net.stats.connections_accepted, 1);
        debug!(%peer, "accepted connection");
        let net = net.clone();
        let service = service.clone();
        let done = done.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection::run::<P>(net, service, sock, peer).await,
                Some(tls) => match tls.accept(sock).await {
                    Ok(stream) => {
                        debug!(%peer, principal = tls::principal(&stream).as_deref(), "TLS connection");
                        connection::run_tls::<P>(net, service, stream, peer).await
                    }
                    Err(e) => {
                        ServerStats::add(&net.stats.tls_handshake_failures, 1);
                        net.metrics.tls_handshake_failures.inc();
                        info!(%peer, error = %e, "TLS handshake failed; connection closed");
                    }
                },
            }
            drop(permit);
            drop(done);
        });
    }
}
