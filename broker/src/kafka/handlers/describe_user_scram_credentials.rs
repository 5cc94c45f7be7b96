//! DescribeUserScramCredentials: each user's SCRAM mechanisms and iterations (never a
//! salt or key), from the metadata image.

use std::ops::RangeInclusive;

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};

use super::{kafka_code, str_bytes};
use crate::service::{users, Broker};

pub const VERSIONS: RangeInclusive<i16> = 0..=0;

pub fn handle(broker: &Broker, req: DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let names = req
        .users
        .filter(|u| !u.is_empty())
        .map(|u| u.into_iter().map(|n| n.name.to_string()).collect());
    let results = users::describe_scram_credentials(broker, names)
        .into_iter()
        .map(|(user, r)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(&user));
            match r {
                Ok(infos) => result.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(m, i)| {
                            CredentialInfo::default()
                                .with_mechanism(m.scram_type())
                                .with_iterations(i as i32)
                        })
                        .collect(),
                ),
                Err(f) => result
                    .with_error_code(kafka_code(f.code.code()))
                    .with_error_message(Some(str_bytes(&f.message))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
