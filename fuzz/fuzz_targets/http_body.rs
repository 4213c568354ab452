//! `parse_json` (the JSON body parser of both APIs) and `object_keys` on any body, with no,
//! a JSON and a non-JSON content type: never a panic, every refusal a 4xx. The body type is the
//! shape of the preferences PATCH (strict, `nullable` and `non_null` fields, as in opt-in-api);
//! an accepted body serializes and parses back equal.
#![no_main]

use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sms_core::http::{non_null, nullable, object_keys, parse_json, route_path};

#[derive(Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    allow_sms_invitations: Option<bool>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    phone_number: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    sms_battle_invitations: Option<bool>,
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    sms_battle_results: Option<bool>,
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    sms_battle_reminders: Option<bool>,
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    sms_streak_alerts: Option<bool>,
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    sms_direct_messages: Option<bool>,
    #[serde(
        default,
        deserialize_with = "non_null",
        skip_serializing_if = "Option::is_none"
    )]
    sms_achievements: Option<bool>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    time_zone: Option<Option<String>>,
}

fuzz_target!(|data: &[u8]| {
    let mut headers = [HeaderMap::new(), HeaderMap::new(), HeaderMap::new()];
    headers[1].insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers[2].insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    for (i, headers) in headers.iter().enumerate() {
        match parse_json::<Patch>(headers, data) {
            Ok(patch) => {
                assert_ne!(i, 2, "a text/plain body was accepted");
                let json = serde_json::to_vec(&patch).expect("serializes");
                let again: Patch = parse_json(headers, &json).expect("its own output parses");
                assert_eq!(again, patch);
                let mut keys = object_keys(data);
                keys.sort();
                keys.dedup();
                let mut own = object_keys(&json);
                own.sort();
                assert_eq!(keys, own, "fields read differ from the fields sent");
            }
            Err(e) => assert!(e.status.is_client_error(), "{e:?}"),
        }
        if let Err(e) = parse_json::<Value>(headers, data) {
            assert!(e.status.is_client_error(), "{e:?}");
        }
    }
    let _ = object_keys(data);
    if let Ok(path) = std::str::from_utf8(data) {
        if let Some(routed) = route_path(path, "/api/v1") {
            assert!(routed == "/" || !routed.ends_with('/'));
        }
    }
});
