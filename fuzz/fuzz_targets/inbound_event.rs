//! `InboundMessage::parse` (`sms_core::inbound`, used by inbound-sms) on any SNS message text: never a panic; an accepted
//! message has a valid sender number and a clean id, and classifying it never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::inbound::InboundMessage;
use sms_core::keywords::classify;

fuzz_target!(|data: &[u8]| {
    let message = String::from_utf8_lossy(data);
    if let Ok(m) = InboundMessage::parse(&message) {
        assert!(m.from.as_str().starts_with('+'));
        assert!(!m.inbound_message_id.trim().is_empty());
        assert!(!m.inbound_message_id.chars().any(char::is_control));
        let _ = classify(&m.body, m.keyword.as_deref());
    }
});
