//! The metrics listener: `GET /metrics` (OpenMetrics text, which Prometheus reads),
//! `GET /health` (the process answers) and `GET /ready` (recovery done, listeners up;
//! 503 before and while stopping). HTTP/1.1 by `hyper`.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use super::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves until `stop` resolves; HTTPS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    tls: Option<Arc<crate::tls::Tls>>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let (sock, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let m = metrics.clone();
            let service = service_fn(move |req| {
                let metrics = m.clone();
                async move { Ok::<_, Infallible>(answer(&metrics, req)) }
            });
            let served = match tls {
                None => {
                    http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), service)
                        .await
                }
                Some(tls) => match tls.accept(sock).await {
                    Ok(stream) => {
                        http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(e) => {
                        metrics.tls_handshake_failures.inc();
                        debug!(%peer, error = %e, "metrics TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                debug!(%peer, error = %e, "metrics connection failed");
            }
        });
    }
}

fn answer(metrics: &Metrics, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("valid response")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => Response::builder()
            .header("content-type", OPENMETRICS)
            .body(Full::new(Bytes::from(metrics.encode())))
            .expect("valid response"),
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" if metrics.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => text(StatusCode::NOT_FOUND, "not found: try /metrics, /health or /ready\n"),
    }
}
