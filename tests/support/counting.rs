//! Counts the HTTP requests an SDK client makes (every attempt, retries included), to
//! measure DynamoDB requests per sent message.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

/// A shared request counter.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<AtomicUsize>);

impl RequestCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct CountRequests(RequestCounter);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A DynamoDB client for `sdk` whose requests are counted.
pub fn counting_dynamodb(
    sdk: &aws_config::SdkConfig,
) -> (aws_sdk_dynamodb::Client, RequestCounter) {
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(CountRequests(counter.clone()))
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), counter)
}
