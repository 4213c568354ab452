//! The loop both SNS-triggered functions run over an event's records.

use crate::metrics::MetricSet;
use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
use tracing::warn;

/// Processes the records in order and emits the metrics once. Stops at the first fault and
/// returns it: Lambda retries the whole event, and every step is idempotent, so records
/// already done are not done twice.
pub async fn process_records<T, E: std::fmt::Display>(
    event: &SnsEvent,
    function: &str,
    mut process: impl AsyncFnMut(&SnsMessage, &mut MetricSet) -> Result<T, E>,
) -> Result<Vec<T>, E> {
    let mut metrics = MetricSet::default();
    let mut outcomes = Vec::with_capacity(event.records.len());
    let mut result = Ok(());
    for record in &event.records {
        match process(&record.sns, &mut metrics).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                warn!(sns_message_id = %record.sns.message_id, error = %e, "record not processed; the invocation will be retried");
                result = Err(e);
                break;
            }
        }
    }
    metrics.emit(function);
    result.map(|()| outcomes)
}
