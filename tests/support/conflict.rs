//! A lost race on demand: the first versioned save of preferences (a `PutItem` or
//! `TransactWriteItems` conditional on `:expected`, see `PreferencesStore::save`) is sent with
//! a version nobody has, so DynamoDB refuses it exactly as when another writer saved first.
//! The caller's conflict path (read again, retry) then runs against the real server: what a
//! concurrent writer causes in production, without timing.

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The placeholder of the version a save expects.
const EXPECTED: &str = ":expected";

/// How many saves were made to lose so far.
#[derive(Debug, Clone, Default)]
pub struct Conflicts(Arc<AtomicUsize>);

impl Conflicts {
    pub fn caused(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct LoseSaves {
    left: AtomicUsize,
    caused: Conflicts,
}

fn spoil(values: Option<&mut HashMap<String, AttributeValue>>) -> bool {
    match values.and_then(|v| v.get_mut(EXPECTED)) {
        Some(expected) => {
            // Versions start at 1: no item is ever at version 0.
            *expected = AttributeValue::N("0".into());
            true
        }
        None => false,
    }
}

impl Intercept for LoseSaves {
    fn name(&self) -> &'static str {
        "LoseSaves"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if self.left.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let input = context.input_mut();
        let spoiled = if let Some(put) = input.downcast_mut::<PutItemInput>() {
            spoil(put.expression_attribute_values.as_mut())
        } else if let Some(tx) = input.downcast_mut::<TransactWriteItemsInput>() {
            tx.transact_items
                .iter_mut()
                .flatten()
                .filter_map(|item| item.put.as_mut())
                .any(|put| spoil(put.expression_attribute_values.as_mut()))
        } else {
            false
        };
        if spoiled {
            self.left.fetch_sub(1, Ordering::SeqCst);
            self.caused.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// `client`, whose first `count` versioned saves lose their race.
pub fn lose_saves(
    client: &aws_sdk_dynamodb::Client,
    count: usize,
) -> (aws_sdk_dynamodb::Client, Conflicts) {
    let caused = Conflicts::default();
    let config = client
        .config()
        .to_builder()
        .interceptor(LoseSaves {
            left: AtomicUsize::new(count),
            caused: caused.clone(),
        })
        .build();
    (aws_sdk_dynamodb::Client::from_conf(config), caused)
}
