//! `bench segments`: billed parts of every message kind's body, in English and Spanish, at
//! typical parameters ([`template::typical_params`], the values the tests render) and the
//! default branding, and what a sender that does not fold to GSM-7 would pay for the same
//! text: the Spanish accents `á í ó ú` are not GSM-7, so the body goes as UCS-2 (70 units per
//! part instead of 160, 67 instead of 153 when concatenated).

use crate::util::{Part, Row};
use sms_shared::locale::Locale;
use sms_shared::segments::{self, SegmentCount};
use sms_shared::template;
use sms_shared::{Config, MessageKind};
use std::collections::HashMap;

/// Room for any body: the counts are the point, not the sender's maximum.
const NO_MAXIMUM: u32 = 100;

pub fn run() {
    let mut part = Part::start("segments");
    let config = Config::from_map(&HashMap::new()).expect("the default configuration");
    let branding = &config.branding;
    let (mut ours, mut unfolded) = (0, 0);
    for kind in MessageKind::ALL {
        let params = template::typical_params(kind);
        for (locale, name) in [(Locale::En, "en"), (Locale::Es, "es")] {
            let sent = template::render_in(kind, &params, branding, NO_MAXIMUM, locale)
                .unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
                .segments;
            let raw = template::render_unfolded(kind, &params, branding, locale)
                .map(|body| segments::count(&body))
                .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
            ours += sent.segments;
            unfolded += raw.segments;
            part.push(Row::new(
                "segments",
                &format!("{kind} ({name})"),
                "parts sent / without GSM-7 folding",
                format!("{} / {}", describe(sent), describe(raw)),
            ));
        }
    }
    part.push(Row::new(
        "segments",
        "all kinds, en + es",
        "parts sent / without GSM-7 folding",
        format!("{ours} / {unfolded}"),
    ));
    part.note(format!(
        "segments: typical parameters (sms_core::template::typical_params), brand {:?}, \
         default footers; \"without folding\" is the same body with its Spanish accents kept",
        branding.brand_name
    ));
    part.finish();
}

/// `1 (GSM-7, 121 units)`.
fn describe(count: SegmentCount) -> String {
    format!(
        "{} ({}, {} units)",
        count.segments,
        count.encoding.as_str(),
        count.units
    )
}
