//! Phone verification rules (DESIGN §5), as plain functions: code generation from the OS
//! CSPRNG, the keyed HMAC the code is stored as, the constant-time check, and the ids of the
//! rate-limit windows.
//!
//! The code itself exists only in memory between [`generate_code`] and the SMS body; it is
//! stored as [`code_hmac`] and never logged ([`Code`]'s `Debug` is redacted).

use crate::phone::E164;
use hmac::{Hmac, KeyInit, Mac};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// Digits of a code.
pub const CODE_DIGITS: usize = 6;
/// How long a code is valid.
pub const CODE_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// Wrong checks that end a code.
pub const MAX_ATTEMPTS: u32 = 5;
/// Earliest resend after a code was sent.
pub const RESEND_COOLDOWN: SignedDuration = SignedDuration::from_secs(30);

/// What a code is assumed to cost per message part, in micro-USD, when it is sent: the
/// verification budget (DESIGN §7) is reserved before the money is spent, because receipts
/// come seconds to hours later and a pumping burst would outrun a budget checked against
/// them. USD 0.01 is above the US and Canadian price per part with the carrier fee (US
/// toll-free: 0.00581 + about 0.0025); the receipt's price replaces the estimate when it
/// comes (`delivery-status`), so the budget ends the month in real dollars.
pub const CODE_PART_ESTIMATE_MICROS: u64 = 10_000;

/// The estimate reserved for a code of `segments` parts.
pub fn code_estimate_micros(segments: u32) -> u64 {
    CODE_PART_ESTIMATE_MICROS.saturating_mul(u64::from(segments.max(1)))
}

/// A freshly generated code. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// The digits, for the SMS body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

/// A uniformly distributed 6-digit code (leading zeros kept) from the OS CSPRNG.
pub fn generate_code() -> Result<Code, getrandom::Error> {
    // Rejection sampling: 4_294_000_000 is the largest multiple of 10^6 below 2^32, so
    // every code is equally likely.
    const LIMIT: u32 = 4_294_000_000;
    loop {
        let n = getrandom::u32()?;
        if n < LIMIT {
            return Ok(Code(format!("{:06}", n % 1_000_000)));
        }
    }
}

/// A random identifier (hex of 16 bytes) for a code instance or a log record.
pub fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// The code as the user typed it, if it is exactly six ASCII digits (surrounding
/// whitespace, as pasted from an SMS, is ignored).
pub fn parse_code(input: &str) -> Option<&str> {
    let code = input.trim();
    (code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

fn mac(key: &[u8], user_id: &str, code_id: &str, code: &str) -> Hmac<Sha256> {
    // Any key length is valid for HMAC; `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    // Bound to the user and the code instance, so a stored HMAC is worthless for any other
    // user or code; lengths first, so no two inputs share an encoding.
    for part in [user_id, code_id, code] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac
}

/// Hex HMAC-SHA256 of `code` under `key`, bound to the user and the code instance.
pub fn code_hmac(key: &[u8], user_id: &str, code_id: &str, code: &str) -> String {
    hex(&mac(key, user_id, code_id, code).finalize().into_bytes())
}

/// Whether `candidate` is the code whose HMAC is `stored_hex`, compared in constant time.
pub fn code_matches(
    key: &[u8],
    user_id: &str,
    code_id: &str,
    candidate: &str,
    stored_hex: &str,
) -> bool {
    let expected = mac(key, user_id, code_id, candidate)
        .finalize()
        .into_bytes();
    let Some(stored) = unhex(stored_hex) else {
        return false;
    };
    // Lengths are public (always 32 bytes); the bytes are compared in constant time.
    stored.len() == expected.len() && bool::from(stored.as_slice().ct_eq(expected.as_slice()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// How many codes a window allows, and over which period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimits {
    pub per_user_per_hour: u64,
    pub per_number_per_day: u64,
    pub per_ip_per_hour: u64,
    /// Per number prefix (the number without its last 4 digits): a pumping attack walks
    /// through consecutive numbers of one range.
    pub per_prefix_per_hour: u64,
    /// Per destination country, for the product's home market (US): the last line against
    /// a pumping sweep across many number blocks.
    pub per_country_per_hour: u64,
    /// Per destination country, for every other allowed country (CA by default).
    pub per_other_country_per_hour: u64,
}

/// The country whose window is [`WindowLimits::per_country_per_hour`].
pub const HOME_COUNTRY: &str = "US";

impl WindowLimits {
    /// The hourly window of codes to `country`.
    pub fn per_country(&self, country: &str) -> u64 {
        if country == HOME_COUNTRY {
            self.per_country_per_hour
        } else {
            self.per_other_country_per_hour
        }
    }
}

impl Default for WindowLimits {
    /// DESIGN §5: 5 per user per hour, 10 per number per day, 20 per IP per hour. The prefix
    /// and country windows are ours (§7: "per-country hourly windows well under the account's
    /// capacity"): 10 codes an hour to one 10 000-number block is already far beyond real
    /// use; 100 an hour to the US and 20 to any other country are above the product's sign-up
    /// peak and about 1 % of what one toll-free number can send (3 parts/s = 10 800 an hour),
    /// so a sweep that fills them costs at most about USD 1 an hour (US) and cannot crowd the
    /// number's rate that security alerts and keyword replies share. A deployment on a faster
    /// number or with a bigger peak sets the two country windows in its configuration
    /// (`VERIFICATION_HOME_COUNTRY_HOURLY`, `VERIFICATION_OTHER_COUNTRY_HOURLY`).
    fn default() -> Self {
        Self {
            per_user_per_hour: 5,
            per_number_per_day: 10,
            per_ip_per_hour: 20,
            per_prefix_per_hour: 10,
            per_country_per_hour: 100,
            per_other_country_per_hour: 20,
        }
    }
}

/// What a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    User,
    Number,
    Ip,
    Prefix,
    Country,
}

impl WindowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::User => "user",
            WindowKind::Number => "number",
            WindowKind::Ip => "ip",
            WindowKind::Prefix => "prefix",
            WindowKind::Country => "country",
        }
    }
}

/// One fixed rate-limit window (a counter item of the verification table).
#[derive(Clone, PartialEq, Eq)]
pub struct Window {
    pub kind: WindowKind,
    /// Counter id: `rate#<kind>#<subject>#<window start>`.
    pub id: String,
    pub cap: u64,
    /// End of the window: the counter's TTL, and when a refused caller may try again.
    pub ends_at: Timestamp,
}

/// Ids hold full numbers (stored, never logged): `Debug` shows only the kind and the end.
impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("kind", &self.kind)
            .field("cap", &self.cap)
            .field("ends_at", &self.ends_at)
            .finish_non_exhaustive()
    }
}

impl Window {
    /// Whole seconds from `now` to the end of the window, at least 1.
    pub fn retry_after_secs(&self, now: Timestamp) -> u64 {
        retry_after_secs(now, self.ends_at)
    }
}

/// The start of the UTC month after the one containing `now`: when the monthly budget of
/// codes starts again.
pub fn month_end(now: Timestamp) -> Timestamp {
    let date = now.to_zoned_datetime(TimeZone::UTC).date().first_of_month();
    date.checked_add(jiff::Span::new().months(1))
        .ok()
        .and_then(|next| next.to_zoned_datetime(TimeZone::UTC).ok())
        .map_or(now, |z| z.timestamp())
}

/// Whole seconds from `now` until `until`, rounded up, at least 1 (for `Retry-After`).
pub fn retry_after_secs(now: Timestamp, until: Timestamp) -> u64 {
    let ms = until.as_millisecond().saturating_sub(now.as_millisecond());
    (ms.max(0) as u64).div_ceil(1000).max(1)
}

/// What the per-IP window counts for `ip`: an IPv4 address as it is; an IPv6 address by
/// its /64 network, since one subscriber's host may use any address of its /64 (privacy
/// extensions rotate them), so counting single IPv6 addresses would let one client
/// take as many windows as it likes; an IPv4-mapped IPv6 address as the IPv4 address.
/// Anything that is not an address is counted as given.
pub fn ip_window_subject(ip: &str) -> String {
    use std::net::IpAddr;
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => ip.to_owned(),
    }
}

/// Whether `number` is in a premium-rate or shared-cost range (US 900, UK 09xx, ...), where
/// the callee earns from the traffic: the classic target of SMS pumping, and never a phone
/// a user verifies. Decided from libphonenumber's number-type metadata.
pub fn is_premium_rate(number: &E164) -> bool {
    use phonenumber::Type;
    matches!(number.number_type(), Type::PremiumRate | Type::SharedCost)
}

/// Start of the UTC hour or day containing `now`, and its end.
fn bucket(now: Timestamp, period_secs: i64) -> (i64, Timestamp) {
    let secs = now.as_second();
    let start = secs - secs.rem_euclid(period_secs);
    let end = Timestamp::from_second(start + period_secs).unwrap_or(now);
    (start, end)
}

/// The windows a code sent to `number` for `user_id` from `source_ip` counts against, in the
/// order they are checked: the caller's own first, so a refused request costs the shared
/// windows (number, prefix, country) as little as possible.
pub fn windows(
    limits: &WindowLimits,
    user_id: &str,
    number: &E164,
    source_ip: Option<&str>,
    now: Timestamp,
) -> Vec<Window> {
    const HOUR: i64 = 3600;
    const DAY: i64 = 86_400;
    let (hour, hour_end) = bucket(now, HOUR);
    let (_, day_end) = bucket(now, DAY);
    let day_label = now.to_zoned_datetime(TimeZone::UTC).date();
    let mut out = Vec::with_capacity(5);
    let mut push = |kind: WindowKind, subject: &str, label: String, cap, ends_at| {
        out.push(Window {
            kind,
            id: format!("rate#{}#{subject}#{label}", kind.as_str()),
            cap,
            ends_at,
        });
    };
    push(
        WindowKind::User,
        user_id,
        hour.to_string(),
        limits.per_user_per_hour,
        hour_end,
    );
    if let Some(ip) = source_ip.filter(|ip| !ip.is_empty()) {
        push(
            WindowKind::Ip,
            &ip_window_subject(ip),
            hour.to_string(),
            limits.per_ip_per_hour,
            hour_end,
        );
    }
    push(
        WindowKind::Number,
        number.as_str(),
        day_label.to_string(),
        limits.per_number_per_day,
        day_end,
    );
    push(
        WindowKind::Prefix,
        number.prefix(),
        hour.to_string(),
        limits.per_prefix_per_hour,
        hour_end,
    );
    push(
        WindowKind::Country,
        number.country(),
        hour.to_string(),
        limits.per_country(number.country()),
        hour_end,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const KEY: &[u8] = b"test-key";

    #[test]
    fn codes_are_six_digits_and_vary() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let code = generate_code().unwrap();
            assert_eq!(code.expose().len(), 6);
            assert!(code.expose().bytes().all(|b| b.is_ascii_digit()));
            seen.insert(code.expose().to_owned());
        }
        assert!(seen.len() > 190, "codes repeat too often: {}", seen.len());
    }

    #[test]
    fn code_debug_is_redacted() {
        let code = generate_code().unwrap();
        let shown = format!("{code:?}");
        assert!(!shown.contains(code.expose()));
        assert_eq!(shown, "Code(******)");
    }

    #[test]
    fn hmac_matches_only_the_same_code_user_and_instance() {
        let stored = code_hmac(KEY, "u-1", "c-1", "123456");
        assert_eq!(stored.len(), 64);
        assert!(!stored.contains("123456"));
        assert!(code_matches(KEY, "u-1", "c-1", "123456", &stored));
        assert!(!code_matches(KEY, "u-1", "c-1", "123457", &stored));
        assert!(!code_matches(KEY, "u-2", "c-1", "123456", &stored));
        assert!(!code_matches(KEY, "u-1", "c-2", "123456", &stored));
        assert!(!code_matches(b"other-key", "u-1", "c-1", "123456", &stored));
        assert!(!code_matches(KEY, "u-1", "c-1", "123456", "not hex"));
        assert!(!code_matches(KEY, "u-1", "c-1", "123456", &stored[..62]));
        assert!(!code_matches(KEY, "u-1", "c-1", "123456", ""));
    }

    #[test]
    fn hmac_inputs_cannot_be_shifted_between_fields() {
        assert_ne!(
            code_hmac(KEY, "u-1", "c-1", "123456"),
            code_hmac(KEY, "u-1c", "-1", "123456")
        );
    }

    #[test]
    fn only_six_digits_parse_as_a_code() {
        assert_eq!(parse_code("012345"), Some("012345"));
        assert_eq!(parse_code(" 012345\n"), Some("012345"));
        for bad in [
            "",
            "12345",
            "1234567",
            "12 345",
            "12345a",
            "١٢٣٤٥٦",
            "+12345",
        ] {
            assert_eq!(parse_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn random_ids_are_hex_and_unique() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex("0001abff").unwrap(), bytes);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn windows_cover_user_ip_number_prefix_and_country() {
        let now: Timestamp = "2026-11-25T12:34:56Z".parse().unwrap();
        let number = E164::parse("+14155550123").unwrap();
        let w = windows(
            &WindowLimits::default(),
            "u-1",
            &number,
            Some("203.0.113.9"),
            now,
        );
        let kinds: Vec<_> = w.iter().map(|w| w.kind).collect();
        assert_eq!(
            kinds,
            [
                WindowKind::User,
                WindowKind::Ip,
                WindowKind::Number,
                WindowKind::Prefix,
                WindowKind::Country
            ]
        );
        let hour_end: Timestamp = "2026-11-25T13:00:00Z".parse().unwrap();
        let day_end: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
        assert_eq!(w[0].cap, 5);
        assert_eq!(w[0].ends_at, hour_end);
        assert_eq!(w[1].cap, 20);
        assert_eq!(w[2].cap, 10);
        assert_eq!(w[2].ends_at, day_end);
        assert_eq!(w[2].id, "rate#number#+14155550123#2026-11-25");
        assert!(w[3].id.starts_with("rate#prefix#+1415555#"));
        assert!(w[4].id.starts_with("rate#country#US#"));
        assert_eq!(w[4].cap, 100, "the home market's window");
        let canada = E164::parse("+14162000123").unwrap();
        let ca = windows(&WindowLimits::default(), "u-1", &canada, None, now);
        assert_eq!(ca.last().map(|w| w.cap), Some(20), "any other country's");
        assert_eq!(w[0].retry_after_secs(now), 25 * 60 + 4);
        // No IP (a direct invoke): the IP window is left out, not keyed on "".
        let w = windows(&WindowLimits::default(), "u-1", &number, None, now);
        assert!(w.iter().all(|w| w.kind != WindowKind::Ip));
        // Debug never shows the number.
        assert!(
            !format!(
                "{:?}",
                windows(&WindowLimits::default(), "u", &number, None, now)
            )
            .contains("5550123")
        );
    }

    #[test]
    fn the_budget_month_ends_at_the_next_utc_month() {
        let end = |s: &str| month_end(s.parse().unwrap()).to_string();
        assert_eq!(end("2026-11-25T12:00:00Z"), "2026-12-01T00:00:00Z");
        assert_eq!(end("2026-12-31T23:59:59Z"), "2027-01-01T00:00:00Z");
        assert_eq!(end("2026-02-01T00:00:00Z"), "2026-03-01T00:00:00Z");
        assert_eq!(code_estimate_micros(1), 10_000);
        assert_eq!(code_estimate_micros(2), 20_000);
        assert_eq!(
            code_estimate_micros(0),
            10_000,
            "a code is at least one part"
        );
    }

    #[test]
    fn the_ip_window_counts_ipv6_by_its_64_network() {
        assert_eq!(ip_window_subject("203.0.113.9"), "203.0.113.9");
        assert_eq!(ip_window_subject("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(
            ip_window_subject("2001:db8:aa:bb:1:2:3:4"),
            "2001:db8:aa:bb::/64"
        );
        assert_eq!(
            ip_window_subject("2001:0DB8:00aa:bb::ffff"),
            "2001:db8:aa:bb::/64"
        );
        assert_ne!(
            ip_window_subject("2001:db8:aa:bc::1"),
            ip_window_subject("2001:db8:aa:bb::1")
        );
        assert_eq!(ip_window_subject("not an ip"), "not an ip");
        let number = E164::parse("+14155550123").unwrap();
        let now: Timestamp = "2026-11-25T12:34:56Z".parse().unwrap();
        let ids = |ip| {
            windows(&WindowLimits::default(), "u", &number, Some(ip), now)
                .into_iter()
                .find(|w| w.kind == WindowKind::Ip)
                .map(|w| w.id)
        };
        assert_eq!(ids("2001:db8:aa:bb::1"), ids("2001:db8:aa:bb:9:8:7:6"));
    }

    #[test]
    fn premium_rate_numbers_are_recognised() {
        for premium in ["+19002000123", "+449098790000", "+448712223333"] {
            let number = E164::parse(premium).unwrap();
            assert!(is_premium_rate(&number), "{premium}");
        }
        for ordinary in [
            "+14155550123",
            "+14162000123",
            "+18005550100",
            "+447911123456",
        ] {
            let number = E164::parse(ordinary).unwrap();
            assert!(!is_premium_rate(&number), "{ordinary}");
        }
    }

    #[test]
    fn the_next_hour_is_a_new_window() {
        let number = E164::parse("+14155550123").unwrap();
        let a = windows(
            &WindowLimits::default(),
            "u",
            &number,
            None,
            "2026-11-25T12:59:59Z".parse().unwrap(),
        );
        let b = windows(
            &WindowLimits::default(),
            "u",
            &number,
            None,
            "2026-11-25T13:00:00Z".parse().unwrap(),
        );
        assert_ne!(a[0].id, b[0].id);
        assert_eq!(a[1].id, b[1].id, "same day, same number window");
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        assert_eq!(retry_after_secs(now, now), 1);
        assert_eq!(
            retry_after_secs(now, now + SignedDuration::from_millis(1500)),
            2
        );
        assert_eq!(retry_after_secs(now, now - SignedDuration::from_secs(5)), 1);
        assert_eq!(
            retry_after_secs(now, now + SignedDuration::from_secs(30)),
            30
        );
    }
}
