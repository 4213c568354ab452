//! `E164::parse` and `mask` on any text: never a panic; an accepted number is `+` and digits,
//! parses back to itself and survives serde; a mask never shows more than 8 digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::phone::{E164, mask};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let masked = mask(&input);
    assert!(masked.chars().filter(char::is_ascii_digit).count() <= 8);
    if let Ok(n) = E164::parse(&input) {
        let digits = n.as_str().strip_prefix('+').expect("E.164 starts with +");
        assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            E164::parse(n.as_str()).as_ref(),
            Ok(&n),
            "not a fixed point"
        );
        let json = serde_json::to_string(&n).expect("serializes");
        assert_eq!(serde_json::from_str::<E164>(&json).expect("parses"), n);
        let _ = (n.area_code(), n.prefix(), n.masked(), n.country());
    }
});
