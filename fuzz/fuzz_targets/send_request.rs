//! `SendRequest::parse` on any queue message body: never a panic, and an accepted request
//! serializes (as `enqueue` sends it) and parses back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::request::SendRequest;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    match SendRequest::parse(&body) {
        Ok(request) => {
            let json = serde_json::to_string(&request).expect("a SendRequest serializes");
            let again = SendRequest::parse(&json).expect("its own output parses");
            // Float parameters may move by one ULP through serde_json (no `float_roundtrip`):
            // compare everything else, and the parameter names.
            assert_eq!(
                (
                    &again.id,
                    again.kind,
                    &again.user_id,
                    &again.related,
                    again.not_after
                ),
                (
                    &request.id,
                    request.kind,
                    &request.user_id,
                    &request.related,
                    request.not_after
                )
            );
            assert!(again.params.keys().eq(request.params.keys()));
        }
        Err(e) => {
            let _ = (e.reason(), e.id(), e.to_string());
        }
    }
});
