//! AlterUserScramCredentials: set (from the salted password the client derived) or
//! delete users' SCRAM credentials, through the controller; one result per user.

use std::ops::RangeInclusive;
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};

use super::{kafka_code, str_bytes};
use crate::service::users::{self, CredentialChange};
use crate::service::Broker;

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub async fn handle(broker: &Arc<Broker>, req: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
    let deletions = req.deletions.into_iter().map(|d| CredentialChange::Delete {
        user: d.name.to_string(),
        mechanism: d.mechanism,
    });
    let upsertions = req.upsertions.into_iter().map(|u| CredentialChange::Upsert {
        user: u.name.to_string(),
        mechanism: u.mechanism,
        iterations: u.iterations,
        salt: u.salt.to_vec(),
        salted_password: u.salted_password.to_vec(),
    });
    let results = users::alter_scram_credentials(broker, deletions.chain(upsertions).collect())
        .await
        .into_iter()
        .map(|(user, r)| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match r {
                Ok(()) => result,
                Err(f) => result
                    .with_error_code(kafka_code(f.code.code()))
                    .with_error_message(Some(str_bytes(&f.message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
