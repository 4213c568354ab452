//! `classify` on any inbound text: never a panic. The input is the message body, optionally
//! followed by a NUL byte and End User Messaging's `messageKeyword`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::keywords::{Intent, classify};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (body, keyword) = match text.split_once('\0') {
        Some((body, keyword)) => (body, Some(keyword)),
        None => (text.as_ref(), None),
    };
    let intent = classify(body, keyword);
    // An opt-out in either place always wins.
    if classify(body, None) == Intent::OptOut {
        assert_eq!(intent, Intent::OptOut);
    }
    assert_eq!(classify(body, Some("STOP")), Intent::OptOut);
});
