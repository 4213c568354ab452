//! Counts the HTTP requests an SDK client makes (every attempt, retries included), to
//! measure DynamoDB requests per sent message, and the write units they bill.
//!
//! Write units are DynamoDB's on-demand billing of a write of an item up to 1 KB: 1 for a
//! `PutItem` / `UpdateItem` / `DeleteItem`, 2 per item of a `TransactWriteItems` (a
//! transaction bills each item twice), one per item of a `BatchWriteItem`. Every item the
//! sender writes is under 1 KB (a log record with its body and history, a counter), so the
//! count is exact for it; larger items would bill one more unit per KB.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation as ddb;

/// A shared request counter.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    requests: Arc<AtomicUsize>,
    write_units: Arc<AtomicUsize>,
}

impl RequestCounter {
    /// Requests sent (each attempt counts).
    pub fn get(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Write units the writes among them bill (items under 1 KB; see the module docs).
    pub fn write_units(&self) -> usize {
        self.write_units.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.write_units.store(0, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct CountRequests(RequestCounter);

/// Write units of one write request of items under 1 KB.
fn write_units(context: &BeforeSerializationInterceptorContextRef<'_>) -> usize {
    let input = context.input();
    if let Some(i) = input.downcast_ref::<ddb::transact_write_items::TransactWriteItemsInput>() {
        return 2 * i.transact_items().len();
    }
    if let Some(i) = input.downcast_ref::<ddb::batch_write_item::BatchWriteItemInput>() {
        return i
            .request_items()
            .into_iter()
            .flatten()
            .map(|(_, r)| r.len())
            .sum();
    }
    let single = input
        .downcast_ref::<ddb::update_item::UpdateItemInput>()
        .is_some()
        || input
            .downcast_ref::<ddb::put_item::PutItemInput>()
            .is_some()
        || input
            .downcast_ref::<ddb::delete_item::DeleteItemInput>()
            .is_some();
    usize::from(single)
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0
            .write_units
            .fetch_add(write_units(context), Ordering::SeqCst);
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.requests.fetch_add(1, Ordering::SeqCst);
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
