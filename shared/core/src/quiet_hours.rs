//! Quiet hours (DESIGN §4 rule 6): when a promotional text may reach its recipient.
//!
//! The TCPA's federal window (08:00–21:00 recipient's local time) applies everywhere unless a
//! state rule, looked up by the NANP area code in [`STATE_RULES`], is stricter. The local time
//! is taken in the user's IANA zone; when that is unknown we use every zone the number's country
//! may be in (see [`default_zones`]) and only send when the window is open in all of them.
//!
//! All times are computed in the zone itself (civil date and time, then back to an instant with
//! the `compatible` disambiguation), so the next 08:00 after a DST change is the real 08:00.

use crate::phone::E164;
use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

/// A daily sending window in local time, `[start, end)`: open at `start`, closed at `end`.
/// A window whose `start` is not before its `end` closes the whole day (for states that
/// forbid a day outright).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

impl Window {
    /// Whole hours, `start_hour:00` to `end_hour:00`.
    pub const fn hours(start_hour: i8, end_hour: i8) -> Self {
        Self {
            start: Time::constant(start_hour, 0, 0, 0),
            end: Time::constant(end_hour, 0, 0, 0),
        }
    }

    pub fn is_closed_all_day(&self) -> bool {
        self.start >= self.end
    }

    pub fn contains(&self, t: Time) -> bool {
        self.start <= t && t < self.end
    }
}

/// The rule that applies to one recipient: when promotional texts may go, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalRule {
    /// `federal` or `US-<state>`; for logs and metrics.
    pub region: &'static str,
    /// Monday to Saturday.
    pub weekdays: Window,
    pub sunday: Window,
    /// Promotional messages per rolling 24 h, on top of the product's own daily cap (§7).
    pub max_promotional_per_24h: Option<u32>,
}

impl LocalRule {
    pub fn window_on(&self, day: Weekday) -> Window {
        if day == Weekday::Sunday {
            self.sunday
        } else {
            self.weekdays
        }
    }
}

/// TCPA 47 CFR 64.1200(c)(1): no solicitations before 08:00 or after 21:00 local time. Also the
/// product's default for numbers outside the US without a rule of their own.
pub const FEDERAL: LocalRule = LocalRule {
    region: "federal",
    weekdays: Window::hours(8, 21),
    sunday: Window::hours(8, 21),
    max_promotional_per_24h: None,
};

/// 08:00–20:00 every day and at most 3 messages per 24 h: Florida's telemarketing law (as
/// amended in 2021), the Oklahoma Telephone Solicitation Act (2022) and Maryland's Stop the Spam
/// Calls Act (2023). The statutes cap messages "on the same subject"; we cap all promotional ones.
const fn eight_to_eight_three_per_day(region: &'static str) -> LocalRule {
    LocalRule {
        region,
        weekdays: Window::hours(8, 20),
        sunday: Window::hours(8, 20),
        max_promotional_per_24h: Some(3),
    }
}

/// State rules stricter than [`FEDERAL`], keyed by NANP area code (area codes are unique across
/// the NANP, so no country check is needed). To amend: add a row, or add new overlay codes to
/// a row; the tests check that no code is listed twice.
///
/// Not modelled (review with counsel before adding): states whose telemarketing hours limit
/// calls rather than texts to consenting users, e.g. Louisiana (no Sundays or holidays),
/// Mississippi, Alabama; and Canada's CRTC telemarketing hours (weekends 10:00–18:00), which
/// apply to calls, not to texts sent with CASL consent.
pub const STATE_RULES: &[(&[&str], LocalRule)] = &[
    (
        &[
            "239", "305", "321", "324", "352", "386", "407", "448", "561", "645", "656", "689",
            "727", "728", "754", "772", "786", "813", "850", "863", "904", "941", "954",
        ],
        eight_to_eight_three_per_day("US-FL"),
    ),
    (
        &["405", "539", "572", "580", "918"],
        eight_to_eight_three_per_day("US-OK"),
    ),
    (
        &["227", "240", "301", "410", "443", "667"],
        eight_to_eight_three_per_day("US-MD"),
    ),
    (
        &[
            "210", "214", "254", "281", "325", "346", "361", "409", "430", "432", "469", "512",
            "682", "713", "726", "737", "806", "817", "830", "832", "903", "915", "936", "940",
            "945", "956", "972", "979",
        ],
        // Texas Business & Commerce Code: 09:00–21:00, Sundays 12:00–21:00.
        LocalRule {
            region: "US-TX",
            weekdays: Window::hours(9, 21),
            sunday: Window::hours(12, 21),
            max_promotional_per_24h: None,
        },
    ),
];

/// The rule for a recipient: a state rule when the number's area code has one, else federal.
pub fn rule_for(number: &E164) -> &'static LocalRule {
    number
        .area_code()
        .and_then(|code| {
            STATE_RULES
                .iter()
                .find(|(codes, _)| codes.contains(&code))
                .map(|(_, rule)| rule)
        })
        .unwrap_or(&FEDERAL)
}

const US_ZONES: &[&str] = &[
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
];

const CA_ZONES: &[&str] = &[
    "America/St_Johns",
    "America/Halifax",
    "America/Toronto",
    "America/Winnipeg",
    "America/Regina",
    "America/Edmonton",
    "America/Vancouver",
];

/// Zones to assume, by ISO country, when the user has not given a valid one. Countries spanning
/// several zones list their extremes (continental only) so the window is safe in all of them.
/// A country on the allow-list should be here: one missing falls back to UTC.
const COUNTRY_ZONES: &[(&str, &[&str])] = &[
    ("US", US_ZONES),
    ("CA", CA_ZONES),
    ("PR", &["America/Puerto_Rico"]),
    ("VI", &["America/St_Thomas"]),
    ("GU", &["Pacific/Guam"]),
    (
        "MX",
        &["America/Cancun", "America/Mexico_City", "America/Tijuana"],
    ),
    (
        "BR",
        &["America/Noronha", "America/Sao_Paulo", "America/Rio_Branco"],
    ),
    ("GB", &["Europe/London"]),
    ("IE", &["Europe/Dublin"]),
    ("PT", &["Europe/Lisbon", "Atlantic/Azores"]),
    ("ES", &["Europe/Madrid", "Atlantic/Canary"]),
    ("FR", &["Europe/Paris"]),
    ("BE", &["Europe/Brussels"]),
    ("NL", &["Europe/Amsterdam"]),
    ("LU", &["Europe/Luxembourg"]),
    ("DE", &["Europe/Berlin"]),
    ("CH", &["Europe/Zurich"]),
    ("AT", &["Europe/Vienna"]),
    ("IT", &["Europe/Rome"]),
    ("DK", &["Europe/Copenhagen"]),
    ("NO", &["Europe/Oslo"]),
    ("SE", &["Europe/Stockholm"]),
    ("FI", &["Europe/Helsinki"]),
    ("PL", &["Europe/Warsaw"]),
    ("IL", &["Asia/Jerusalem"]),
    ("AE", &["Asia/Dubai"]),
    ("ZA", &["Africa/Johannesburg"]),
    ("IN", &["Asia/Kolkata"]),
    ("SG", &["Asia/Singapore"]),
    ("HK", &["Asia/Hong_Kong"]),
    ("JP", &["Asia/Tokyo"]),
    ("KR", &["Asia/Seoul"]),
    (
        "AU",
        &["Australia/Perth", "Australia/Adelaide", "Australia/Sydney"],
    ),
    ("NZ", &["Pacific/Auckland"]),
];

/// Most zones any country above lists; sizes the stack buffer of [`check`].
const MAX_ZONES: usize = 8;

/// The zones assumed for a country when the user's zone is unknown; `None` if we have none.
pub fn default_zones(country: &str) -> Option<&'static [&'static str]> {
    COUNTRY_ZONES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(country))
        .map(|(_, zones)| *zones)
}

/// Whether a promotional text may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    Open,
    /// The earliest instant after now when the window is open in every zone considered.
    ClosedUntil(Timestamp),
}

impl Quiet {
    pub fn is_open(self) -> bool {
        self == Quiet::Open
    }
}

/// Checks the window for `number` at `now`. `user_zone` is the IANA zone from the preferences;
/// when it is missing or does not parse, the number's country zones are used (all of them).
pub fn check(now: Timestamp, number: &E164, user_zone: Option<&str>) -> Quiet {
    let rule = rule_for(number);
    if let Some(tz) = user_zone.and_then(|z| TimeZone::get(z.trim()).ok()) {
        return earliest_open(now, rule, std::slice::from_ref(&tz));
    }
    let mut zones = [TimeZone::UTC; MAX_ZONES];
    let mut n = 0;
    for name in default_zones(number.country()).unwrap_or_default() {
        if let (Some(slot), Ok(tz)) = (zones.get_mut(n), TimeZone::get(name)) {
            *slot = tz;
            n += 1;
        }
    }
    earliest_open(now, rule, &zones[..n.max(1)])
}

/// Rounds of "move to the latest next opening among the zones" before giving up. Zones of one
/// country are at most a few hours apart, so two or three rounds always suffice with the shipped
/// tables; should a table ever make the zones' windows disjoint, the message is deferred to the
/// last instant reached and re-checked then, never sent outside a window.
const MAX_ROUNDS: usize = 16;

fn earliest_open(now: Timestamp, rule: &LocalRule, zones: &[TimeZone]) -> Quiet {
    let mut t = now;
    for _ in 0..MAX_ROUNDS {
        let latest = zones
            .iter()
            .map(|tz| next_open(t, rule, tz))
            .fold(t, Timestamp::max);
        if latest == t {
            return if t == now {
                Quiet::Open
            } else {
                Quiet::ClosedUntil(t)
            };
        }
        t = latest;
    }
    Quiet::ClosedUntil(t)
}

/// The earliest instant `>= t` inside the rule's window in one zone.
fn next_open(t: Timestamp, rule: &LocalRule, tz: &TimeZone) -> Timestamp {
    let local = tz.to_datetime(t);
    let mut date = local.date();
    for day in 0..=7 {
        let window = rule.window_on(date.weekday());
        if !window.is_closed_all_day() {
            if day == 0 && window.contains(local.time()) {
                return t;
            }
            if day > 0 || local.time() < window.start {
                // `compatible`: a start inside a DST gap becomes the first instant after it.
                return match tz.to_timestamp(date.to_datetime(window.start)) {
                    Ok(start) => start.max(t),
                    Err(_) => t,
                };
            }
        }
        date = match date.tomorrow() {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    // Only a rule closed every day gets here: stay closed, a week from now.
    tz.to_timestamp(date.to_datetime(Time::MIN)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const CHICAGO: &str = "America/Chicago";
    const NEW_YORK: &str = "America/New_York";

    fn number(s: &str) -> E164 {
        E164::parse(s).unwrap()
    }

    /// A Chicago (312) number: federal rule.
    fn il() -> E164 {
        number("+13125550123")
    }

    /// Local civil time in `zone` to an instant.
    fn at(zone: &str, civil: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = civil.parse().unwrap();
        TimeZone::get(zone).unwrap().to_timestamp(dt).unwrap()
    }

    fn closed_until(zone: &str, civil: &str) -> Quiet {
        Quiet::ClosedUntil(at(zone, civil))
    }

    #[test]
    fn area_codes_pick_the_state_rule() {
        assert_eq!(rule_for(&il()).region, "federal");
        assert_eq!(rule_for(&number("+13055550123")).region, "US-FL");
        assert_eq!(rule_for(&number("+19185550123")).region, "US-OK");
        assert_eq!(rule_for(&number("+12145550123")).region, "US-TX");
        assert_eq!(rule_for(&number("+13015550123")).region, "US-MD");
        assert_eq!(rule_for(&number("+442079460958")).region, "federal");
        assert_eq!(
            rule_for(&number("+13055550123")).max_promotional_per_24h,
            Some(3)
        );
        assert_eq!(rule_for(&il()).max_promotional_per_24h, None);
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut seen = HashSet::new();
        for (codes, rule) in STATE_RULES {
            assert!(rule.region.starts_with("US-"), "{}", rule.region);
            assert!(!rule.weekdays.is_closed_all_day() || !rule.sunday.is_closed_all_day());
            for code in *codes {
                assert!(
                    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()),
                    "{code}"
                );
                assert!(seen.insert(*code), "area code {code} listed twice");
            }
        }
        assert_eq!(STATE_RULES[0].0.len(), 23, "Florida");
        assert_eq!(STATE_RULES[3].0.len(), 28, "Texas");
    }

    #[test]
    fn every_default_zone_exists_and_fits_the_buffer() {
        let mut seen = HashSet::new();
        for (country, zones) in COUNTRY_ZONES {
            assert!(seen.insert(*country), "{country} listed twice");
            assert!(!zones.is_empty() && zones.len() <= MAX_ZONES, "{country}");
            for zone in *zones {
                assert!(TimeZone::get(zone).is_ok(), "{zone}");
            }
        }
        assert_eq!(default_zones("gb"), Some(&["Europe/London"][..]));
        assert_eq!(default_zones("XX"), None);
    }

    #[test]
    fn late_evening_is_deferred_to_eight_next_morning() {
        let now = at(CHICAGO, "2026-06-10T23:00");
        assert_eq!(
            check(now, &il(), Some(CHICAGO)),
            closed_until(CHICAGO, "2026-06-11T08:00")
        );
    }

    #[test]
    fn the_window_opens_at_eight_and_closes_at_nine() {
        let z = Some(CHICAGO);
        assert_eq!(
            check(at(CHICAGO, "2026-06-10T07:59"), &il(), z),
            closed_until(CHICAGO, "2026-06-10T08:00")
        );
        assert_eq!(
            check(at(CHICAGO, "2026-06-10T08:00"), &il(), z),
            Quiet::Open
        );
        assert_eq!(
            check(at(CHICAGO, "2026-06-10T20:59:59"), &il(), z),
            Quiet::Open
        );
        assert_eq!(
            check(at(CHICAGO, "2026-06-10T21:00"), &il(), z),
            closed_until(CHICAGO, "2026-06-11T08:00")
        );
    }

    #[test]
    fn florida_closes_at_eight_in_the_evening() {
        let fl = number("+13055550123");
        let z = Some(NEW_YORK);
        assert_eq!(check(at(NEW_YORK, "2026-06-10T19:59"), &fl, z), Quiet::Open);
        assert_eq!(
            check(at(NEW_YORK, "2026-06-10T20:30"), &fl, z),
            closed_until(NEW_YORK, "2026-06-11T08:00")
        );
    }

    #[test]
    fn texas_waits_for_noon_on_sunday_and_nine_on_monday() {
        let tx = number("+12145550123");
        let z = Some(CHICAGO);
        // 2026-06-14 is a Sunday.
        assert_eq!(
            "2026-06-14".parse::<jiff::civil::Date>().unwrap().weekday(),
            Weekday::Sunday
        );
        assert_eq!(
            check(at(CHICAGO, "2026-06-14T10:00"), &tx, z),
            closed_until(CHICAGO, "2026-06-14T12:00")
        );
        assert_eq!(check(at(CHICAGO, "2026-06-14T12:00"), &tx, z), Quiet::Open);
        // Saturday night rolls over to Sunday noon, Sunday night to Monday 09:00.
        assert_eq!(
            check(at(CHICAGO, "2026-06-13T22:00"), &tx, z),
            closed_until(CHICAGO, "2026-06-14T12:00")
        );
        assert_eq!(
            check(at(CHICAGO, "2026-06-14T21:30"), &tx, z),
            closed_until(CHICAGO, "2026-06-15T09:00")
        );
        assert_eq!(
            check(at(CHICAGO, "2026-06-15T08:30"), &tx, z),
            closed_until(CHICAGO, "2026-06-15T09:00")
        );
    }

    #[test]
    fn federal_sunday_rolls_over_to_monday_morning() {
        assert_eq!(
            check(at(CHICAGO, "2026-06-14T21:00"), &il(), Some(CHICAGO)),
            closed_until(CHICAGO, "2026-06-15T08:00")
        );
    }

    #[test]
    fn unknown_zone_on_a_us_number_needs_every_continental_zone_open() {
        // Wednesday, daylight time: Pacific is 3 h behind Eastern.
        assert_eq!(
            check(at(NEW_YORK, "2026-06-10T12:00"), &il(), None),
            Quiet::Open
        );
        assert_eq!(
            check(at(NEW_YORK, "2026-06-10T09:00"), &il(), None),
            closed_until(NEW_YORK, "2026-06-10T11:00")
        );
        // 20:30 Eastern is open everywhere under the federal window, closed under Florida's.
        assert_eq!(
            check(at(NEW_YORK, "2026-06-10T20:30"), &il(), None),
            Quiet::Open
        );
        assert_eq!(
            check(
                at(NEW_YORK, "2026-06-10T20:30"),
                &number("+13055550123"),
                None
            ),
            closed_until(NEW_YORK, "2026-06-11T11:00")
        );
        assert_eq!(
            check(at(NEW_YORK, "2026-06-10T21:30"), &il(), None),
            closed_until(NEW_YORK, "2026-06-11T11:00")
        );
        // The same in winter (Phoenix then sits with Denver).
        assert_eq!(
            check(at(NEW_YORK, "2026-01-14T09:00"), &il(), None),
            closed_until(NEW_YORK, "2026-01-14T11:00")
        );
    }

    #[test]
    fn invalid_or_blank_zone_falls_back_to_the_safe_window() {
        let now = at(NEW_YORK, "2026-06-10T09:00");
        let safe = closed_until(NEW_YORK, "2026-06-10T11:00");
        assert_eq!(check(now, &il(), Some("Mars/Olympus_Mons")), safe);
        assert_eq!(check(now, &il(), Some("")), safe);
        // A valid zone is used as given (surrounding spaces ignored).
        assert_eq!(check(now, &il(), Some(" America/New_York ")), Quiet::Open);
    }

    #[test]
    fn unknown_zone_on_a_canadian_number_spans_newfoundland_to_pacific() {
        let ca = number("+16045550199");
        // 08:00 in Vancouver is 12:30 in St. John's: both open.
        assert_eq!(
            check(at("America/Vancouver", "2026-06-10T08:00"), &ca, None),
            Quiet::Open
        );
        // 20:45 in Halifax is 21:15 in St. John's: closed until 08:00 Vancouver.
        assert_eq!(
            check(at("America/Halifax", "2026-06-10T20:45"), &ca, None),
            closed_until("America/Vancouver", "2026-06-11T08:00")
        );
    }

    #[test]
    fn unknown_zone_on_a_uk_number_uses_london() {
        let uk = number("+442079460958");
        // 07:30 BST is 06:30 UTC: a UTC-based check would get this wrong in summer.
        assert_eq!(
            check(at("Europe/London", "2026-06-10T07:30"), &uk, None),
            closed_until("Europe/London", "2026-06-10T08:00")
        );
        assert_eq!(
            check(at("Europe/London", "2026-06-10T20:30"), &uk, None),
            Quiet::Open
        );
    }

    #[test]
    fn spring_forward_night_opens_at_the_real_eight() {
        // 2026-03-08: New York goes from EST (-5) to EDT (-4) at 02:00.
        let now = at(NEW_YORK, "2026-03-07T23:00");
        let expected: Timestamp = "2026-03-08T12:00:00Z".parse().unwrap();
        assert_eq!(
            check(now, &il(), Some(NEW_YORK)),
            Quiet::ClosedUntil(expected)
        );
        assert_eq!(
            check(at(NEW_YORK, "2026-03-08T02:30"), &il(), Some(NEW_YORK)),
            Quiet::ClosedUntil(expected)
        );
        assert_eq!(check(expected, &il(), Some(NEW_YORK)), Quiet::Open);
    }

    #[test]
    fn fall_back_night_opens_at_the_real_eight() {
        // 2026-11-01: New York goes from EDT (-4) to EST (-5) at 02:00.
        let now = at(NEW_YORK, "2026-10-31T23:00");
        let expected: Timestamp = "2026-11-01T13:00:00Z".parse().unwrap();
        assert_eq!(
            check(now, &il(), Some(NEW_YORK)),
            Quiet::ClosedUntil(expected)
        );
        // 01:30 happens twice; both are closed until the same 08:00.
        let second_130: Timestamp = "2026-11-01T06:30:00Z".parse().unwrap();
        assert_eq!(
            check(second_130, &il(), Some(NEW_YORK)),
            Quiet::ClosedUntil(expected)
        );
        // The unknown-zone window across the change: 11:00 Eastern is 08:00 Pacific.
        assert_eq!(
            check(now, &il(), None),
            closed_until(NEW_YORK, "2026-11-01T11:00")
        );
    }

    #[test]
    fn a_day_closed_outright_is_skipped() {
        let rule = LocalRule {
            region: "test",
            weekdays: Window::hours(8, 20),
            sunday: Window::hours(0, 0),
            max_promotional_per_24h: None,
        };
        let tz = TimeZone::get(CHICAGO).unwrap();
        let sat_night = at(CHICAGO, "2026-06-13T21:00");
        assert_eq!(
            earliest_open(sat_night, &rule, std::slice::from_ref(&tz)),
            closed_until(CHICAGO, "2026-06-15T08:00")
        );
    }
}
