//! SaslAuthenticate: one message of the exchange the handshake chose. A failure is
//! answered after a delay (brute force), counted, logged with the user, and closes the
//! connection, as Kafka does.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};

use super::{kafka_code, str_bytes};
use crate::kafka::{respond, Request};
use crate::net::reply::Reply;
use crate::service::{sasl, users, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=2;

pub async fn handle(broker: &Arc<Broker>, req: &Request, body: SaslAuthenticateRequest) -> Option<Reply> {
    let session = req.session.clone();
    let b = broker.clone();
    // PLAIN derives a key (PBKDF2, milliseconds): off the async threads.
    let step = tokio::task::spawn_blocking(move || {
        sasl::authenticate(&session, &body.auth_bytes, |user, m| users::credential(&b, user, m))
    })
    .await
    .unwrap_or_else(|e| {
        Err(crate::service::Failure::new(
            runnel_protocol::ErrorCode::UnknownServerError,
            e.to_string(),
        ))
    });
    match step {
        Ok(step) => {
            if step.done {
                tracing::info!(peer = %req.peer, principal = %req.session.principal(), "SASL authentication succeeded");
            }
            respond(
                req,
                &SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(step.reply))
                    .with_session_lifetime_ms(0),
            )
        }
        Err(f) => {
            broker.metrics().sasl_authentication_failures.inc();
            tracing::warn!(peer = %req.peer, error = %f.message, "SASL authentication failed; closing the connection");
            tokio::time::sleep(Duration::from_millis(sasl::FAILED_AUTHENTICATION_DELAY_MS)).await;
            let response = SaslAuthenticateResponse::default()
                .with_error_code(kafka_code(f.code.code()))
                .with_error_message(Some(str_bytes(&f.message)));
            respond(req, &response).map(Reply::then_close)
        }
    }
}
