//! DynamoDB adapters for the three tables of DESIGN §9.
//!
//! Items are mapped with `serde_dynamo`; every write that must not race is a single
//! conditional request (no read-modify-write).

pub mod batch;
pub mod counters;
pub mod fresh_attempt;
pub mod inbound;
pub mod log;
#[cfg(feature = "fakes")]
pub mod memory;
pub mod preferences;
pub mod receipts;
pub mod schema;
pub mod send_batch;
pub mod verification;

pub use counters::Counters;
pub use log::{
    Attempt, Claim, Finish, LogRecord, LogStatus, LogStore, NewConfirmation, NewLogRecord,
    NewReply, Related,
};
pub use preferences::{NumberPreferences, PreferencesStore, SaveOutcome, UpdateError, Updated};
pub use verification::{CodeRecord, VerificationStore};

use aws_sdk_dynamodb::error::SdkError;

/// The DynamoDB client every store is built from.
pub use aws_sdk_dynamodb::Client as DynamoClient;

/// A failed table operation. Callers treat every variant as "not recorded": the SQS
/// record is retried, the API answers 500, the SNS invocation fails and is retried.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB request failed: {0}")]
    Dynamo(#[from] Box<aws_sdk_dynamodb::Error>),
    #[error("stored item does not map: {0}")]
    Mapping(#[from] serde_dynamo::Error),
    #[error("stored item is malformed: {0}")]
    Malformed(&'static str),
}

impl<E, R> From<SdkError<E, R>> for StoreError
where
    aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
{
    fn from(err: SdkError<E, R>) -> Self {
        StoreError::Dynamo(Box::new(err.into()))
    }
}

/// Operation errors that can say "the write's condition did not hold".
pub(crate) trait ConditionFailure {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionFailure for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// A conditional write's result: `Some(output)` when it was written, `None` when its condition
/// was false (a lost race, a duplicate, a cap reached: an answer, not an error).
pub(crate) fn written<O, E: ConditionFailure, R>(
    result: Result<O, SdkError<E, R>>,
) -> Result<Option<O>, StoreError>
where
    aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(err) if condition_failed(&err) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// The request failed only because its condition was false: a lost race, a duplicate, a
/// cap reached. Callers turn that into an answer, not an error.
pub(crate) fn condition_failed<E: ConditionFailure, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .is_some_and(ConditionFailure::is_condition_failure)
}

/// DynamoDB refuses an expression that declares a name or value it does not use (moto takes
/// it): asserts that each of `placeholders` (`#name`, `:value`) appears in `expressions` as a
/// whole token (`:c` is not used by `:count`).
#[cfg(test)]
pub(crate) fn assert_placeholders_used<'a>(
    expressions: &str,
    placeholders: impl IntoIterator<Item = &'a String>,
) {
    for placeholder in placeholders {
        let used = expressions
            .match_indices(placeholder.as_str())
            .any(|(i, _)| {
                !expressions[i + placeholder.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            });
        assert!(used, "{placeholder} unused in {expressions}");
    }
}
