//! SaslHandshake: the client names its mechanism; the answer lists the ones offered.
//! v1 only in effect: the authentication bytes then travel in SaslAuthenticate requests,
//! as every current client sends them. v0 is advertised (librdkafka looks for version 0
//! to decide that the broker does SASL at all, then uses v1) but a v0 handshake, which
//! would be followed by raw unframed tokens, is answered with UNSUPPORTED_VERSION.

use std::ops::RangeInclusive;

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use runnel_protocol::ErrorCode;

use super::{kafka_code, str_bytes};
use crate::kafka::Request;
use crate::service::sasl;

pub const VERSIONS: RangeInclusive<i16> = 0..=1;

pub fn handle(req: &Request, body: SaslHandshakeRequest) -> SaslHandshakeResponse {
    let mechanisms = req.session.mechanisms().into_iter().map(str_bytes).collect();
    let outcome = if req.version == 0 {
        Err(crate::service::Failure::new(
            ErrorCode::UnsupportedVersion,
            "SaslHandshake v0 (raw SASL tokens) is not served; use v1 with SaslAuthenticate",
        ))
    } else {
        sasl::handshake(&req.session, &body.mechanism)
    };
    let code = match outcome {
        Ok(()) => ErrorCode::None,
        Err(f) => {
            tracing::info!(peer = %req.peer, mechanism = %body.mechanism, error = %f.message, "SASL handshake refused");
            f.code
        }
    };
    SaslHandshakeResponse::default()
        .with_error_code(kafka_code(code.code()))
        .with_mechanisms(mechanisms)
}
