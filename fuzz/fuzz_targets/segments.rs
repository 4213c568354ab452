//! `count` and `fold_to_gsm` on any text: never a panic; folding is idempotent, the count's
//! parts hold its units, and GSM-7 text is left as it is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sms_core::segments::{self, Encoding};
use std::borrow::Cow;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = segments::count(&text);
    assert_eq!(c.segments == 0, text.is_empty());
    let capacity = match c.segments {
        0 => 0,
        1 => c.encoding.single_capacity(),
        n => n as usize * c.encoding.part_capacity(),
    };
    assert!(capacity >= c.units, "{c:?}");
    assert_eq!(c.encoding == Encoding::Gsm7, segments::is_gsm7(&text));
    let folded = segments::fold_to_gsm(&text);
    assert!(matches!(segments::fold_to_gsm(&folded), Cow::Borrowed(_)));
    if segments::is_gsm7(&text) {
        assert!(matches!(folded, Cow::Borrowed(_)));
    }
    let _ = segments::count(&folded);
});
