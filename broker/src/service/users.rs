//! SASL users: their salted SCRAM credentials live in the metadata log (so every broker
//! authenticates the same users), changed through the controller, described from the
//! image. Kafka's AlterUserScramCredentials and DescribeUserScramCredentials map here.

use std::collections::HashSet;
use std::sync::Arc;

use runnel_protocol::ErrorCode;
use tracing::info;

use super::sasl::{Mechanism, ScramCredential, MAX_ITERATIONS, MIN_ITERATIONS};
use super::{Broker, Failure};
use crate::cluster::controller::ControllerCall;

pub type Outcome<T> = Result<T, Failure>;

/// A user's mechanisms with their iterations.
pub type UserCredentials = Vec<(Mechanism, u32)>;

/// One change asked for: set a credential (from a salted password, as Kafka's request
/// carries it) or delete one.
pub enum CredentialChange {
    Upsert {
        user: String,
        mechanism: i8,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
    Delete {
        user: String,
        mechanism: i8,
    },
}

impl CredentialChange {
    fn user(&self) -> &str {
        match self {
            CredentialChange::Upsert { user, .. } | CredentialChange::Delete { user, .. } => user,
        }
    }

    fn mechanism(&self) -> i8 {
        match self {
            CredentialChange::Upsert { mechanism, .. } | CredentialChange::Delete { mechanism, .. } => *mechanism,
        }
    }
}

fn unacceptable(why: String) -> Failure {
    Failure::new(ErrorCode::UnacceptableCredential, why)
}

/// Applies the changes; one outcome per user named, in first-seen order (Kafka answers
/// per user). A user named twice for the same mechanism gets DUPLICATE_RESOURCE and none
/// of its changes apply.
pub async fn alter_scram_credentials(
    broker: &Arc<Broker>,
    changes: Vec<CredentialChange>,
) -> Vec<(String, Outcome<()>)> {
    let mut users: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicated = HashSet::new();
    for c in &changes {
        if !users.iter().any(|u| u == c.user()) {
            users.push(c.user().to_owned());
        }
        if !seen.insert((c.user().to_owned(), c.mechanism())) {
            duplicated.insert(c.user().to_owned());
        }
    }
    let mut refused: Vec<(String, Failure)> = Vec::new();
    let mut calls = Vec::new();
    for c in changes {
        let user = c.user().to_owned();
        if duplicated.contains(&user) {
            continue;
        }
        match validate(c) {
            Ok(change) => calls.push(change),
            Err(f) => refused.push((user, f)),
        }
    }
    // A user with any refused change has none applied.
    calls.retain(|(u, _, _)| !refused.iter().any(|(r, _)| r == u));
    let mut applied: Vec<(String, Outcome<()>)> = Vec::new();
    if !calls.is_empty() {
        let named: Vec<String> = calls.iter().map(|(u, _, _)| u.clone()).collect();
        match broker
            .cluster
            .call_controller(ControllerCall::SetScramCredentials { changes: calls })
            .await
        {
            Ok(results) => {
                for (u, r) in named.into_iter().zip(results) {
                    applied.push((u, r.map_err(Failure::from)));
                }
            }
            Err(r) => {
                let f = Failure::from(r);
                applied.extend(named.into_iter().map(|u| (u, Err(f.clone()))));
            }
        }
    }
    users
        .into_iter()
        .map(|u| {
            let outcome = if duplicated.contains(&u) {
                Err(Failure::new(
                    ErrorCode::DuplicateResource,
                    format!("user '{u}' is named twice for one mechanism"),
                ))
            } else if let Some((_, f)) = refused.iter().find(|(r, _)| *r == u) {
                Err(f.clone())
            } else {
                applied
                    .iter()
                    .filter(|(a, _)| *a == u)
                    .find_map(|(_, r)| r.clone().err())
                    .map_or(Ok(()), Err)
            };
            (u, outcome)
        })
        .collect()
}

fn validate(c: CredentialChange) -> Outcome<(String, Mechanism, Option<ScramCredential>)> {
    let mechanism = Mechanism::from_scram_type(c.mechanism()).ok_or_else(|| {
        Failure::new(
            ErrorCode::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism {}", c.mechanism()),
        )
    })?;
    if c.user().is_empty() {
        return Err(unacceptable("the user name is empty".into()));
    }
    match c {
        CredentialChange::Delete { user, .. } => Ok((user, mechanism, None)),
        CredentialChange::Upsert {
            user,
            iterations,
            salt,
            salted_password,
            ..
        } => {
            if !(MIN_ITERATIONS as i64..=MAX_ITERATIONS as i64).contains(&(iterations as i64)) {
                return Err(unacceptable(format!(
                    "iterations must be within {MIN_ITERATIONS}..={MAX_ITERATIONS}, not {iterations}"
                )));
            }
            if salt.is_empty() || salted_password.is_empty() {
                return Err(unacceptable(
                    "the salt and the salted password must not be empty".into(),
                ));
            }
            let cred = ScramCredential::from_salted(mechanism, salt, iterations as u32, &salted_password);
            Ok((user, mechanism, Some(cred)))
        }
    }
}

/// Each user's mechanisms and iterations; `None` lists every user. A user named who has
/// no credential gets RESOURCE_NOT_FOUND.
pub fn describe_scram_credentials(
    broker: &Broker,
    users: Option<Vec<String>>,
) -> Vec<(String, Outcome<UserCredentials>)> {
    let image = broker.cluster.image();
    let describe = |m: &std::collections::BTreeMap<Mechanism, ScramCredential>| {
        m.iter().map(|(mech, c)| (*mech, c.iterations)).collect::<Vec<_>>()
    };
    match users {
        None => image.users.iter().map(|(u, m)| (u.clone(), Ok(describe(m)))).collect(),
        Some(names) => names
            .into_iter()
            .map(|u| {
                let r = image
                    .users
                    .get(&u)
                    .map(describe)
                    .ok_or_else(|| Failure::new(ErrorCode::ResourceNotFound, format!("user '{u}' does not exist")));
                (u, r)
            })
            .collect(),
    }
}

/// A user's credential for a mechanism, as the image holds it now.
pub fn credential(broker: &Broker, user: &str, mechanism: Mechanism) -> Option<ScramCredential> {
    broker.cluster.image().users.get(user)?.get(&mechanism).cloned()
}

/// Creates the bootstrap user's SCRAM-SHA-256 and SHA-512 credentials if it has none
/// (first start; a later start with the same flag changes nothing, so a password changed
/// since stays changed).
pub async fn bootstrap_user(broker: &Arc<Broker>, user: &str, password: &str) -> Outcome<()> {
    if broker.cluster.image().users.contains_key(user) {
        return Ok(());
    }
    let (u, p) = (user.to_owned(), password.to_owned());
    let changes = tokio::task::spawn_blocking(move || {
        [Mechanism::ScramSha256, Mechanism::ScramSha512]
            .into_iter()
            .map(|m| {
                (
                    u.clone(),
                    m,
                    Some(ScramCredential::new(m, &p, super::sasl::DEFAULT_ITERATIONS)),
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| Failure::new(ErrorCode::UnknownServerError, e.to_string()))?;
    let results = broker
        .cluster
        .call_controller(ControllerCall::SetScramCredentials { changes })
        .await
        .map_err(Failure::from)?;
    results
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map_err(Failure::from)?;
    info!(%user, "bootstrap SASL user created (SCRAM-SHA-256, SCRAM-SHA-512)");
    Ok(())
}
