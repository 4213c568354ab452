//! `render` and `sanitize_text` on any parameters. Input: one byte choosing the message kind
//! and the segment limit, then either a JSON object of parameters (as in a send request) or
//! plain text used as the value of every parameter of the kind.
//! Never a panic; a rendered body keeps its layout (one line, plus the STOP footer on
//! promotional kinds, no control characters), fits its limit, and sanitising is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sms_core::kinds::MessageKind;
use sms_core::segments;
use sms_core::settings::Branding;
use sms_core::template::{render, sanitize_text};
use std::sync::LazyLock;

/// The brand texts a configuration without `BRAND_NAME` & co. has.
static BRANDING: LazyLock<Branding> = LazyLock::new(Branding::default);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = MessageKind::ALL[usize::from(selector) % MessageKind::ALL.len()];
    let max_segments = u32::from(selector / 16);
    let text = String::from_utf8_lossy(rest);
    let params: Map<String, Value> = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => map,
        _ => kind
            .params()
            .iter()
            .map(|spec| (spec.name.to_owned(), Value::String(text.to_string())))
            .collect(),
    };
    if let Ok(m) = render(kind, &params, &BRANDING, max_segments) {
        let lines = if kind.is_promotional() { 2 } else { 1 };
        assert_eq!(m.body.lines().count(), lines, "{:?}", m.log_body);
        assert!(!m.body.chars().any(|c| c.is_control() && c != '\n'));
        assert!(m.segments.segments <= max_segments);
        assert_eq!(m.segments, segments::count(&m.body));
        if kind != MessageKind::PhoneVerification {
            assert_eq!(m.log_body, m.body);
        }
    }
    let max_chars = usize::from(selector);
    let once = sanitize_text(&text, max_chars);
    assert!(once.chars().count() <= max_chars);
    assert!(!once.contains(['\n', '\r', '\t']));
    assert_eq!(sanitize_text(&once, max_chars), once, "not idempotent");
});
