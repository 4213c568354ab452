//! Phone numbers (DESIGN §4): user input to E.164, the country allow-list, and masking for logs.

use phonenumber::metadata::{DATABASE, Database};
use phonenumber::{PhoneNumber, Type, country};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::LazyLock;

/// The US and Canada part of libphonenumber's metadata, cut verbatim from the database the
/// `phonenumber` crate ships (`phone/us_ca.xml`, by `scripts/us_ca_metadata.py`) and embedded
/// in the crate's own binary format (`phone/us_ca.postcard`), so no XML parser is linked. It
/// loads in about 2 ms; the crate's whole database takes about 100 ms of CPU, which would be
/// most of a cold start. A number valid here gets the same answers from the whole database
/// (the other +1 territories have area codes of their own); anything else is parsed against
/// the whole database, loaded only then (the first Jamaican, British or invalid number of a
/// process).
static US_CA: LazyLock<Database> = LazyLock::new(|| {
    let metadata = postcard::from_bytes(include_bytes!("phone/us_ca.postcard"))
        .expect("the embedded US/CA metadata decodes");
    Database::from(metadata).expect("the embedded US/CA metadata loads")
});

/// Why a phone number was refused. Messages are safe to show to the user (no number in them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number is too long")]
    TooLong,
    #[error("phone number is not a valid number")]
    Invalid,
    /// The number is valid but from a country off the allow-list. The message names the
    /// country and its calling code, so a user who typed `+44 7911 …` sees why a number they
    /// think of as British is Guernsey's (libphonenumber assigns ranges to the crown
    /// dependencies), and which countries are served.
    #[error(
        "phone numbers from {name} (+{calling_code}) are not supported; we text numbers in {served}"
    )]
    CountryNotAllowed {
        /// ISO 3166 alpha-2 code (`GG`).
        country: String,
        name: &'static str,
        calling_code: u16,
        /// The allowed countries' names, as a phrase (`the United States and Canada`).
        served: String,
    },
}

impl PhoneError {
    /// Machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            PhoneError::Empty | PhoneError::TooLong | PhoneError::Invalid => "invalid_phone_number",
            PhoneError::CountryNotAllowed { .. } => "country_not_supported",
        }
    }
}

/// A valid phone number in E.164 form (`+14155550123`), with its ISO country.
///
/// Its `Debug` and `Display` are masked, so it cannot leak whole into a log line by accident;
/// [`E164::as_str`] gives the full number for storage and for the SMS API.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164 {
    number: String,
    country: country::Id,
    calling_code: u16,
}

/// Longest input we look at; real numbers with formatting are far shorter.
const MAX_INPUT_CHARS: usize = 40;

impl E164 {
    /// Parses user input. Numbers without a leading `+` are read as US/CA (NANP) numbers,
    /// the product's home market.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneError::Empty);
        }
        if input.chars().count() > MAX_INPUT_CHARS {
            return Err(PhoneError::TooLong);
        }
        let (parsed, database) = parse_valid(input).ok_or(PhoneError::Invalid)?;
        if parsed.extension().is_some() {
            return Err(PhoneError::Invalid);
        }
        let country = parsed
            .metadata(database)
            .and_then(|meta| meta.id().parse().ok())
            .ok_or(PhoneError::Invalid)?;
        // Written out rather than by the crate's formatter, which loads the whole database
        // whatever database it is given.
        let calling_code = parsed.code().value();
        let number = format!("+{calling_code}{}", parsed.national());
        Ok(Self {
            number,
            country,
            calling_code,
        })
    }

    /// The kind of line (mobile, fixed, premium rate, ...) by libphonenumber's metadata.
    pub fn number_type(&self) -> Type {
        parse_valid(&self.number).map_or(Type::Unknown, |(parsed, database)| {
            parsed.number_type(database)
        })
    }

    /// Parses and checks the country against the allow-list (ISO codes such as `US`, `CA`).
    pub fn parse_allowed<S: AsRef<str>>(input: &str, allowed: &[S]) -> Result<Self, PhoneError> {
        let number = Self::parse(input)?;
        if number.is_allowed(allowed) {
            Ok(number)
        } else {
            Err(PhoneError::CountryNotAllowed {
                country: number.country().to_owned(),
                name: country_name(number.country()),
                calling_code: number.calling_code(),
                served: served_phrase(allowed),
            })
        }
    }

    /// The country calling code (`1`, `44`).
    pub fn calling_code(&self) -> u16 {
        self.calling_code
    }

    pub fn is_allowed<S: AsRef<str>>(&self, allowed: &[S]) -> bool {
        allowed
            .iter()
            .any(|c| c.as_ref().eq_ignore_ascii_case(self.country()))
    }

    /// The full number, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// ISO 3166 alpha-2 code of the number's country (`US`).
    pub fn country(&self) -> &str {
        self.country.as_ref()
    }

    /// For NANP (+1) numbers, the 3-digit area code.
    pub fn area_code(&self) -> Option<&str> {
        self.number
            .strip_prefix("+1")
            .and_then(|rest| rest.get(..3))
    }

    /// The number without its last 4 digits: the unit SMS-pumping windows count by (§5).
    pub fn prefix(&self) -> &str {
        &self.number[..self.number.len().saturating_sub(4)]
    }

    /// The number masked for logs: `+1415***1234`.
    pub fn masked(&self) -> String {
        mask(&self.number)
    }
}

/// The English short name of an ISO 3166 alpha-2 code, as people say it.
pub fn country_name(code: &str) -> &'static str {
    // The ISO names of the two home countries are long ("United States of America"); the
    // product's messages use the everyday ones.
    match code {
        "US" => "the United States",
        "CA" => "Canada",
        "GB" => "the United Kingdom",
        _ => isocountry::CountryCode::for_alpha2_caseless(code)
            .map(|c| c.name())
            .unwrap_or("an unknown country"),
    }
}

/// `the United States and Canada`, `the United States, Canada and Mexico`.
fn served_phrase<S: AsRef<str>>(allowed: &[S]) -> String {
    let names: Vec<&str> = allowed.iter().map(|c| country_name(c.as_ref())).collect();
    match names.as_slice() {
        [] => "no country".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Parses `input` (national numbers read as US) into a valid number: against the US/CA
/// metadata first, against the whole database when that finds no valid number. Gives the
/// metadata that validated it.
///
/// A number written with `+` is parsed with no default region: given one, `phonenumber`
/// applies that region's rules to an international number too, and read `+43 111 2000`
/// (Vienna) as `+43 12000`, which is then stored and texted as a different number.
fn parse_valid(input: &str) -> Option<(PhoneNumber, &'static Database)> {
    let region = (!input.starts_with('+')).then_some(country::Id::US);
    let with = |database: &'static Database| {
        phonenumber::parse_with(database, region, input)
            .ok()
            .filter(|parsed| phonenumber::is_valid_with(database, parsed))
            .map(|parsed| (parsed, database))
    };
    with(&US_CA).or_else(|| with(&DATABASE))
}

/// Loads the US/CA phone number metadata and compiles the parser's and the US patterns'
/// regular expressions (about 7 ms of CPU on first use) on a background thread
/// ([`crate::background`]). The functions start it with their first event, so it does not
/// compete with init for the CPU before the runtime's first `/next`; it overlaps the request's
/// first round trips (the APIs': awaiting their keys). A parse that comes first simply waits
/// (each is built once, never twice).
pub fn warm_up_in_background() {
    crate::background::spawn_low_priority("phone-metadata", || {
        let _ = E164::parse("+14155550123");
    });
}

/// Masks any phone-number-like string for logs: `+` and the first 4 digits, `***`,
/// the last 4 digits. Short strings keep less, so at most half of the digits ever show.
pub fn mask(number: &str) -> String {
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let (head, tail) = if n >= 10 { (4, 4) } else { (n / 4, n / 4) };
    let mut out = String::with_capacity(head + tail + 4);
    out.push('+');
    out.extend(&digits[..head]);
    out.push_str("***");
    out.extend(&digits[n - tail..]);
    out
}

impl TryFrom<String> for E164 {
    type Error = PhoneError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.number
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US_CA: [&str; 2] = ["US", "CA"];

    #[test]
    fn common_us_input_formats_parse_to_one_e164() {
        for input in [
            "+1 415 555 0123",
            "(415) 555-0123",
            "415.555.0123",
            "1-415-555-0123",
            "  4155550123 ",
        ] {
            let n = E164::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(n.as_str(), "+14155550123", "{input}");
            assert_eq!(n.country(), "US");
            assert_eq!(n.area_code(), Some("415"));
        }
    }

    #[test]
    fn canadian_and_foreign_numbers_keep_their_country() {
        assert_eq!(E164::parse("+1 604 555 0199").unwrap().country(), "CA");
        let uk = E164::parse("+44 20 7946 0958").unwrap();
        assert_eq!(uk.as_str(), "+442079460958");
        assert_eq!(uk.country(), "GB");
        assert_eq!(uk.area_code(), None);
    }

    #[test]
    fn refusals_name_the_country_and_the_served_ones_in_words() {
        // libphonenumber gives +44 7911 1… to Guernsey: the message says so, with +44.
        let err = E164::parse_allowed("+44 7911 123456", &US_CA).unwrap_err();
        assert_eq!(
            err.to_string(),
            "phone numbers from Guernsey (+44) are not supported; we text numbers in the United States and Canada"
        );
        let err = E164::parse_allowed("+44 20 7946 0958", &["US"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "phone numbers from the United Kingdom (+44) are not supported; we text numbers in the United States"
        );
        assert_eq!(country_name("MX"), "Mexico");
        assert_eq!(
            served_phrase(&["US", "CA", "MX"]),
            "the United States, Canada and Mexico"
        );
        assert_eq!(E164::parse("+1 604 555 0199").unwrap().calling_code(), 1);
    }

    #[test]
    fn invalid_input_is_refused_with_a_clear_error() {
        assert_eq!(E164::parse("   "), Err(PhoneError::Empty));
        assert_eq!(E164::parse("hello"), Err(PhoneError::Invalid));
        assert_eq!(E164::parse("123"), Err(PhoneError::Invalid));
        assert_eq!(
            E164::parse("+1 415 555 0123 ext. 5"),
            Err(PhoneError::Invalid)
        );
        assert_eq!(E164::parse(&"1".repeat(41)), Err(PhoneError::TooLong));
    }

    #[test]
    fn allow_list_refuses_other_countries() {
        assert!(E164::parse_allowed("+1 415 555 0123", &US_CA).is_ok());
        assert!(E164::parse_allowed("+1 604 555 0199", &US_CA).is_ok());
        assert_eq!(
            E164::parse_allowed("+44 20 7946 0958", &US_CA),
            Err(PhoneError::CountryNotAllowed {
                country: "GB".into(),
                name: "the United Kingdom",
                calling_code: 44,
                served: "the United States and Canada".into(),
            })
        );
        assert!(E164::parse_allowed("+44 20 7946 0958", &["gb"]).is_ok());
    }

    #[test]
    fn masking_hides_the_middle() {
        let n = E164::parse("+14155551234").unwrap();
        assert_eq!(n.masked(), "+1415***1234");
        assert_eq!(format!("{n}"), "+1415***1234");
        assert_eq!(format!("{n:?}"), "E164(+1415***1234)");
        assert_eq!(mask("+12345"), "+1***5");
        assert_eq!(mask(""), "+***");
    }

    #[test]
    fn an_international_number_keeps_every_digit() {
        // Found by `accepted_numbers_parse_their_own_output`: with the US as default region,
        // this Vienna number lost its `111`.
        let n = E164::parse("+431112000").unwrap();
        assert_eq!(n.as_str(), "+431112000");
        assert_eq!(E164::parse(n.as_str()), Ok(n));
    }

    #[test]
    fn prefix_drops_the_last_four_digits() {
        assert_eq!(E164::parse("+14155551234").unwrap().prefix(), "+1415555");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(input in "\\PC{0,60}") {
            let _ = E164::parse(&input);
            let _ = mask(&input);
        }

        #[test]
        fn valid_numbers_round_trip_through_their_e164_form(
            area in 201u32..989, exchange in 200u32..999, line in 0u32..9999,
        ) {
            let input = format!("({area}) {exchange}-{line:04}");
            if let Ok(n) = E164::parse(&input) {
                let again = E164::parse(n.as_str()).unwrap();
                proptest::prop_assert_eq!(&again, &n);
                proptest::prop_assert!(n.masked().len() < n.as_str().len() + 3);
                let middle = format!("{exchange}{line:04}");
                proptest::prop_assert!(!n.masked().contains(&middle));
            }
        }

        /// Whatever was accepted, in any country: the stored form is `+` and digits, parses
        /// back to the same number, and survives serde.
        #[test]
        fn accepted_numbers_parse_their_own_output(
            input in proptest::prop_oneof![
                "\\+[0-9]{6,16}",
                "\\+?[0-9 ()./-]{6,30}",
                proptest::prelude::any::<String>(),
            ],
        ) {
            if let Ok(n) = E164::parse(&input) {
                let digits = n.as_str().strip_prefix('+').unwrap_or_default();
                proptest::prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
                proptest::prop_assert_eq!(E164::parse(n.as_str()), Ok(n.clone()));
                let json = serde_json::to_string(&n).unwrap();
                proptest::prop_assert_eq!(serde_json::from_str::<E164>(&json).unwrap(), n.clone());
                proptest::prop_assert!(n.prefix().len() < n.as_str().len());
                proptest::prop_assert!(n.is_allowed(&[n.country()]));
            }
        }

        /// Masking never shows more than half of the digits, whatever the input.
        #[test]
        fn mask_shows_at_most_half_of_the_digits(input in proptest::prelude::any::<String>()) {
            let masked = mask(&input);
            let digits = input.chars().filter(char::is_ascii_digit).count();
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            proptest::prop_assert!(shown * 2 <= digits || shown == 8 && digits >= 10);
            proptest::prop_assert!(masked.starts_with('+') && masked.contains("***"));
        }
    }

    /// The answer of the crate's whole database alone: what [`E164::parse`] gave before the
    /// US/CA metadata, and must still give.
    fn parse_with_whole_database(input: &str) -> (String, String, Type) {
        let parsed = phonenumber::parse(Some(country::Id::US), input).unwrap();
        assert!(phonenumber::is_valid(&parsed) && parsed.extension().is_none());
        let number = parsed.format().mode(phonenumber::Mode::E164).to_string();
        let country = parsed.country().id().unwrap().as_ref().to_owned();
        (number, country, parsed.number_type(&DATABASE))
    }

    fn whole_database_accepts(input: &str) -> bool {
        phonenumber::parse(Some(country::Id::US), input)
            .is_ok_and(|p| phonenumber::is_valid(&p) && p.extension().is_none())
    }

    /// Every +1 area code (US, Canada, the Caribbean, toll-free, premium), with exchanges and
    /// lines of every kind, in the forms users type: the same verdict, number, country and
    /// line type as the whole database.
    #[test]
    fn us_ca_metadata_gives_the_whole_databases_answers() {
        let mut accepted = std::collections::HashSet::new();
        for area in 200..1000 {
            for (exchange, line) in [(234, 5678), (523, 123), (555, 123), (201, 0), (987, 6543)] {
                for input in [
                    format!("+1{area}{exchange:03}{line:04}"),
                    format!("({area}) {exchange:03}-{line:04}"),
                    format!("1-{area}-{exchange:03}-{line:04}"),
                ] {
                    let ours = E164::parse(&input);
                    assert_eq!(ours.is_ok(), whole_database_accepts(&input), "{input}");
                    if let Ok(n) = ours {
                        let (number, country, kind) = parse_with_whole_database(&input);
                        assert_eq!(
                            (n.as_str(), n.country(), n.number_type()),
                            (&*number, &*country, kind),
                            "{input}"
                        );
                        accepted.insert(n.country().to_owned());
                    }
                }
            }
        }
        // The loop did reach numbers of both databases.
        for country in ["US", "CA", "JM", "PR"] {
            assert!(accepted.contains(country), "no {country} number was tried");
        }
    }

    #[test]
    fn other_nanp_territories_and_countries_come_from_the_whole_database() {
        for (input, country) in [
            ("+1 876 523 0123", "JM"),
            ("+1 787 234 5678", "PR"),
            ("+44 20 7946 0958", "GB"),
            ("011 44 20 7946 0958", "GB"),
        ] {
            let valid = whole_database_accepts(input);
            assert_eq!(
                E164::parse(input).map(|n| n.country().to_owned()).ok(),
                valid.then(|| country.to_owned()),
                "{input}"
            );
        }
        assert_eq!(
            E164::parse("+1 900 555 0123").map(|n| n.number_type()),
            Ok(Type::PremiumRate)
        );
    }

    /// The embedded binary form is the XML cut, encoded; `UPDATE_US_CA_METADATA=1` rewrites it
    /// (scripts/us_ca_metadata.py does, after writing the XML).
    #[test]
    fn us_ca_postcard_is_the_xml_cut_encoded() {
        let xml = include_str!("phone/us_ca.xml");
        let loaded = phonenumber::metadata::loader::load(std::io::Cursor::new(xml)).unwrap();
        let encoded = postcard::to_allocvec(&loaded).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/phone/us_ca.postcard");
        if std::env::var_os("UPDATE_US_CA_METADATA").is_some() {
            std::fs::write(path, &encoded).unwrap();
        }
        assert!(
            std::fs::read(path).unwrap() == encoded,
            "phone/us_ca.postcard is not phone/us_ca.xml encoded: run scripts/us_ca_metadata.py"
        );
    }

    #[test]
    fn us_ca_metadata_comes_from_the_phonenumber_crate_in_cargo_lock() {
        let lock = include_str!("../../../Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("name = \"phonenumber\""))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .expect("phonenumber in Cargo.lock");
        assert!(
            include_str!("phone/us_ca.xml").contains(&format!("from phonenumber {version}:")),
            "phonenumber is now {version}: run scripts/us_ca_metadata.py"
        );
    }

    #[test]
    fn serde_round_trips_as_a_plain_string() {
        let n = E164::parse("+14155551234").unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+14155551234\"");
        assert_eq!(serde_json::from_str::<E164>(&json).unwrap(), n);
        assert!(serde_json::from_str::<E164>("\"nope\"").is_err());
    }
}
