//! SCRAM's pieces (RFC 5802, RFC 7677) below the service layer: the mechanisms, the
//! salted credential the metadata keeps, and a client's side of the exchange (the CLI,
//! the client's tests). The primitives — PBKDF2, HMAC, SHA-2, random bytes — are `ring`'s;
//! comparisons of secrets are constant-time (`subtle`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::rand::SecureRandom;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

/// Kafka's bounds on SCRAM iterations.
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 16384;
/// Iterations of credentials the broker derives itself (the bootstrap user).
pub const DEFAULT_ITERATIONS: u32 = 8192;
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [Mechanism::Plain, Mechanism::ScramSha256, Mechanism::ScramSha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's ScramMechanism number (DescribeUserScramCredentials and friends).
    pub fn scram_type(self) -> i8 {
        match self {
            Mechanism::Plain => 0,
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    pub fn from_scram_type(t: i8) -> Option<Mechanism> {
        match t {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    pub(crate) fn algorithms(self) -> Option<(pbkdf2::Algorithm, hmac::Algorithm, &'static digest::Algorithm)> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some((pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256, &digest::SHA256)),
            Mechanism::ScramSha512 => Some((pbkdf2::PBKDF2_HMAC_SHA512, hmac::HMAC_SHA512, &digest::SHA512)),
        }
    }
}

/// Which listener settings authentication runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// The mechanisms offered, in the order the handshake lists them.
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN on a connection without TLS (the password crosses in the clear).
    pub plain_without_tls: bool,
}

/// What the broker keeps of a SCRAM user (RFC 5802 §3): never the password, nor the
/// salted password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// From a salted password (what Kafka's AlterUserScramCredentials carries).
    pub fn from_salted(mechanism: Mechanism, salt: Vec<u8>, iterations: u32, salted: &[u8]) -> ScramCredential {
        let (_, mac, hash) = mechanism.algorithms().expect("a SCRAM mechanism");
        let key = hmac::Key::new(mac, salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let server_key = hmac::sign(&key, b"Server Key");
        ScramCredential {
            salt,
            iterations,
            stored_key: digest::digest(hash, client_key.as_ref()).as_ref().to_vec(),
            server_key: server_key.as_ref().to_vec(),
        }
    }

    /// From a password, with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &str, iterations: u32) -> ScramCredential {
        let mut salt = vec![0u8; 32];
        random(&mut salt);
        let salted = salted_password(mechanism, password, &salt, iterations);
        ScramCredential::from_salted(mechanism, salt, iterations, &salted)
    }

    /// Whether `password` is this credential's.
    pub(crate) fn matches(&self, mechanism: Mechanism, password: &str) -> bool {
        let salted = salted_password(mechanism, password, &self.salt, self.iterations);
        let other = ScramCredential::from_salted(mechanism, self.salt.clone(), self.iterations, &salted);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// PBKDF2 of the password (RFC 5802's Hi()). Mechanism must be a SCRAM one.
pub fn salted_password(mechanism: Mechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let (kdf, _, hash) = mechanism.algorithms().expect("a SCRAM mechanism");
    let mut out = vec![0u8; hash.output_len()];
    let n = std::num::NonZeroU32::new(iterations.max(1)).expect("at least 1");
    pbkdf2::derive(kdf, n, salt, password.as_bytes(), &mut out);
    out
}

pub(crate) fn random(out: &mut [u8]) {
    ring::rand::SystemRandom::new()
        .fill(out)
        .expect("the system's random source");
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// A SCRAM attribute list (`a=..,b=..`) as pairs, in order.
pub(crate) fn attributes(s: &str) -> Option<Vec<(char, &str)>> {
    s.split(',')
        .map(|kv| {
            let mut c = kv.chars();
            let key = c.next()?;
            (c.next()? == '=').then_some((key, &kv[2..]))
        })
        .collect()
}

/// The client's side of SCRAM, for the CLI, the client crate and tests: first message,
/// then the final one from the server's first, then a check of the server's signature.
pub mod client {
    use super::*;

    pub struct ScramClient {
        mechanism: Mechanism,
        password: String,
        client_first_bare: String,
        nonce: String,
        server_signature: Option<Vec<u8>>,
    }

    impl ScramClient {
        pub fn new(mechanism: Mechanism, user: &str, password: &str) -> ScramClient {
            let mut n = [0u8; 18];
            random(&mut n);
            let nonce = B64.encode(n);
            let name = user.replace('=', "=3D").replace(',', "=2C");
            ScramClient {
                mechanism,
                password: password.to_owned(),
                client_first_bare: format!("n={name},r={nonce}"),
                nonce,
                server_signature: None,
            }
        }

        pub fn first(&self) -> Vec<u8> {
            format!("n,,{}", self.client_first_bare).into_bytes()
        }

        /// The client-final message; `None` if the server's first message is malformed
        /// or its nonce does not extend ours.
        pub fn last(&mut self, server_first: &[u8]) -> Option<Vec<u8>> {
            let text = std::str::from_utf8(server_first).ok()?;
            let attrs = attributes(text)?;
            let nonce = attrs.iter().find(|(k, _)| *k == 'r')?.1;
            let salt = B64.decode(attrs.iter().find(|(k, _)| *k == 's')?.1).ok()?;
            let iterations: u32 = attrs.iter().find(|(k, _)| *k == 'i')?.1.parse().ok()?;
            if !nonce.starts_with(&self.nonce) || !(1..=MAX_ITERATIONS * 4).contains(&iterations) {
                return None;
            }
            let (_, mac, hash) = self.mechanism.algorithms()?;
            let salted = salted_password(self.mechanism, &self.password, &salt, iterations);
            let key = hmac::Key::new(mac, &salted);
            let client_key = hmac::sign(&key, b"Client Key");
            let stored_key = digest::digest(hash, client_key.as_ref());
            let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
            let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
            let signature = hmac::sign(&hmac::Key::new(mac, stored_key.as_ref()), auth_message.as_bytes());
            let proof: Vec<u8> = client_key
                .as_ref()
                .iter()
                .zip(signature.as_ref())
                .map(|(k, s)| k ^ s)
                .collect();
            let server_key = hmac::sign(&key, b"Server Key");
            self.server_signature = Some(
                hmac::sign(&hmac::Key::new(mac, server_key.as_ref()), auth_message.as_bytes())
                    .as_ref()
                    .to_vec(),
            );
            Some(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
        }

        /// Whether the server-final message proves the server holds our credential.
        pub fn verify(&self, server_final: &[u8]) -> bool {
            let Some(expected) = &self.server_signature else {
                return false;
            };
            std::str::from_utf8(server_final)
                .ok()
                .and_then(|t| t.strip_prefix("v="))
                .and_then(|v| B64.decode(v).ok())
                .is_some_and(|v| constant_time_eq(&v, expected))
        }
    }
}
