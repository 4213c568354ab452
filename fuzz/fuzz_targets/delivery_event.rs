//! `DeliveryEvent::parse` (`sms_core::receipt`, used by delivery-status) on any SNS message text: never a panic, and an
//! accepted event has sane values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::receipt::DeliveryEvent;

fuzz_target!(|data: &[u8]| {
    let message = String::from_utf8_lossy(data);
    if let Ok(e) = DeliveryEvent::parse(&message) {
        assert!(e.event_ms > 0);
        assert!(!e.message_id.trim().is_empty());
        assert!(e.price.price_micros <= 1_000_000_000);
        assert!(e.price.carrier_fee_micros <= 1_000_000_000);
        assert!(e.log_id.as_ref().is_none_or(|id| !id.is_empty()));
        assert!(
            e.carrier_name
                .as_ref()
                .is_none_or(|c| c.chars().count() <= 128)
        );
    }
});
