//! SMS segment counting (DESIGN §3): how many billed message parts a body takes.
//!
//! A body goes out as GSM-7 when every character is in the GSM 03.38 default alphabet or its
//! extension table, otherwise as UCS-2 (UTF-16 on the wire). One part holds 160 GSM-7 units or
//! 70 UTF-16 units; a concatenated message loses room to its header and holds 153 or 67 per
//! part. Handsets and carriers never split an escape pair (`€` is `ESC` + `e`) or a surrogate
//! pair across parts, so a 2-unit character that would straddle a boundary starts the next part;
//! [`count`] packs parts the same way so it agrees with what the provider bills.
//!
//! Typographic characters (curly quotes, dashes, `…`, non-breaking spaces) would switch a whole
//! body to UCS-2 and more than double its cost; [`fold_to_gsm`] replaces them first.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The alphabet a body is sent in. Serialized as `GSM7` / `UCS2`, as stored in the log (§9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// Size of a body as the provider bills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentCount {
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2.
    pub units: usize,
    /// Message parts; 0 for an empty body, which is never sent.
    pub segments: u32,
}

/// GSM-7 units of a single-part message.
pub const GSM7_SINGLE: usize = 160;
/// GSM-7 units of each part of a concatenated message (the UDH takes 7 septets).
pub const GSM7_PER_PART: usize = 153;
/// UTF-16 units of a single-part UCS-2 message.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 units of each part of a concatenated UCS-2 message.
pub const UCS2_PER_PART: usize = 67;

impl Encoding {
    /// Units that fit in a message of one part.
    pub fn single_capacity(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_SINGLE,
            Encoding::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Units that fit in each part of a concatenated message.
    pub fn part_capacity(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_PER_PART,
            Encoding::Ucs2 => UCS2_PER_PART,
        }
    }

    /// The name stored in the log: `GSM7` or `UCS2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM7",
            Encoding::Ucs2 => "UCS2",
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// GSM-7 units of each ASCII character: 0 = not in GSM-7, 1 = basic alphabet, 2 = extension
/// table (escape + character).
const ASCII_UNITS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0x20;
    while i < 0x7F {
        table[i] = 1;
        i += 1;
    }
    // The backtick is the one printable ASCII character GSM 03.38 lacks.
    table[b'`' as usize] = 0;
    table[b'\n' as usize] = 1;
    table[b'\r' as usize] = 1;
    // Form feed is in the extension table (used as a page break).
    table[0x0C] = 2;
    let extension = b"^{}\\[~]|";
    let mut j = 0;
    while j < extension.len() {
        table[extension[j] as usize] = 2;
        j += 1;
    }
    table
};

/// GSM-7 units of `c`, or `None` when `c` forces UCS-2.
fn gsm_units(c: char) -> Option<usize> {
    if c.is_ascii() {
        return match ASCII_UNITS[c as usize] {
            0 => None,
            n => Some(n as usize),
        };
    }
    match c {
        // The non-ASCII part of the GSM 03.38 default alphabet.
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ'
        | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä'
        | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        // The one non-ASCII character of the extension table.
        '€' => Some(2),
        _ => None,
    }
}

/// Whether `text` can be sent as GSM-7 as it is (without folding).
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm_units(c).is_some())
}

/// What a character that would force UCS-2 becomes; `None` keeps it. An empty replacement drops
/// an invisible character.
fn fold_char(c: char) -> Option<&'static str> {
    if c.is_ascii() {
        return (c == '`').then_some("'");
    }
    Some(match c {
        // Single quotes, apostrophes, primes, acute accent, single guillemets.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{2035}'
        | '\u{00B4}' | '\u{02BC}' | '\u{2039}' | '\u{203A}' => "'",
        // Double quotes, double primes, guillemets.
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{2036}'
        | '\u{00AB}' | '\u{00BB}' => "\"",
        // Hyphens, figure dash, en and em dashes, horizontal bar, minus sign.
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        // Bullets and middle dot, used as list markers and separators.
        '\u{2022}' | '\u{2023}' | '\u{2043}' | '\u{00B7}' => "-",
        '\u{2026}' => "...",
        // No-break, fixed-width, narrow and ideographic spaces.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => " ",
        // Invisible: soft hyphen, zero-width space, word joiner, byte order mark.
        '\u{00AD}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}' => "",
        _ => return None,
    })
}

/// Replaces typographic characters that would force the whole body into UCS-2 with their GSM-7
/// look-alikes, so a pasted curly quote does not double the price of a message.
///
/// Returns `Cow::Borrowed` (no allocation) when there is nothing to fold, the usual case.
/// Line separators are left alone: callers that must keep text on one line handle them.
pub fn fold_to_gsm(text: &str) -> Cow<'_, str> {
    let Some(first) = text.char_indices().find(|&(_, c)| fold_char(c).is_some()) else {
        return Cow::Borrowed(text);
    };
    let (clean, rest) = text.split_at(first.0);
    let mut out = String::with_capacity(text.len() + 2);
    out.push_str(clean);
    for c in rest.chars() {
        match fold_char(c) {
            Some(replacement) => out.push_str(replacement),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Folds the acute vowels GSM-7 lacks (`á í ó ú`, upper case too) to their plain letters, the
/// way Spanish is commonly texted; `é`, `ñ`, `ü`, `¿` and `¡` are GSM-7 and stay. Used for
/// Spanish bodies, whose templates avoid the words the fold would change (`sí`/`si`).
pub fn fold_accents(text: &str) -> Cow<'_, str> {
    let fold = |c: char| match c {
        'á' => Some('a'),
        'í' => Some('i'),
        'ó' => Some('o'),
        'ú' => Some('u'),
        'Á' => Some('A'),
        'Í' => Some('I'),
        'Ó' => Some('O'),
        'Ú' => Some('U'),
        _ => None,
    };
    if !text.chars().any(|c| fold(c).is_some()) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| fold(c).unwrap_or(c)).collect())
}

/// Counts units and parts of `text`, choosing GSM-7 when possible. Empty text is 0 segments.
/// Does not fold: fold first, then count what will actually be sent.
pub fn count(text: &str) -> SegmentCount {
    let gsm = pack(text.chars().map(gsm_units), GSM7_SINGLE, GSM7_PER_PART);
    match gsm {
        Some((units, segments)) => SegmentCount {
            encoding: Encoding::Gsm7,
            units,
            segments,
        },
        None => {
            let widths = text.chars().map(|c| Some(c.len_utf16()));
            // Every width is `Some`, so packing cannot fail.
            let (units, segments) = pack(widths, UCS2_SINGLE, UCS2_PER_PART).unwrap_or_default();
            SegmentCount {
                encoding: Encoding::Ucs2,
                units,
                segments,
            }
        }
    }
}

/// Packs characters of the given widths into parts; `None` as soon as a width is `None`.
/// A character never straddles two parts.
fn pack(
    widths: impl Iterator<Item = Option<usize>>,
    single: usize,
    per_part: usize,
) -> Option<(usize, u32)> {
    let mut units = 0usize;
    let mut parts = 1u32;
    let mut fill = 0usize;
    for width in widths {
        let width = width?;
        units += width;
        if fill + width > per_part {
            parts += 1;
            fill = width;
        } else {
            fill += width;
        }
    }
    let segments = match units {
        0 => 0,
        n if n <= single => 1,
        _ => parts,
    };
    Some((units, segments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gsm(units: usize, segments: u32) -> SegmentCount {
        SegmentCount {
            encoding: Encoding::Gsm7,
            units,
            segments,
        }
    }

    fn ucs2(units: usize, segments: u32) -> SegmentCount {
        SegmentCount {
            encoding: Encoding::Ucs2,
            units,
            segments,
        }
    }

    #[test]
    fn empty_text_is_zero_segments() {
        assert_eq!(count(""), gsm(0, 0));
    }

    #[test]
    fn gsm7_single_part_ends_at_160() {
        assert_eq!(count("a"), gsm(1, 1));
        assert_eq!(count(&"a".repeat(160)), gsm(160, 1));
        assert_eq!(count(&"a".repeat(161)), gsm(161, 2));
    }

    #[test]
    fn gsm7_parts_hold_153() {
        assert_eq!(count(&"a".repeat(153 * 2)), gsm(306, 2));
        assert_eq!(count(&"a".repeat(153 * 2 + 1)), gsm(307, 3));
        assert_eq!(count(&"a".repeat(153 * 3)), gsm(459, 3));
    }

    #[test]
    fn extension_characters_count_two() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            let text = c.to_string();
            assert_eq!(count(&text), gsm(2, 1), "{c:?}");
        }
        // 80 euro signs are exactly 160 units; one more character needs two parts.
        assert_eq!(count(&"€".repeat(80)), gsm(160, 1));
        assert_eq!(count(&format!("{}a", "€".repeat(80))), gsm(161, 2));
    }

    #[test]
    fn an_escape_pair_never_straddles_a_part_boundary() {
        // 152 units then `€`: the pair would take units 153 and 154, so it starts part two.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(count(&text), gsm(306, 3));
        // Without the straddle the same 306 units fit two parts.
        let text = format!("{}€{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(count(&text), gsm(306, 2));
    }

    #[test]
    fn basic_alphabet_is_gsm7() {
        let alphabet = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                        ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        assert!(is_gsm7(alphabet));
        assert_eq!(count(alphabet).units, alphabet.chars().count());
        assert_eq!(count(alphabet).encoding, Encoding::Gsm7);
    }

    #[test]
    fn characters_outside_gsm7_force_ucs2() {
        for text in ["`", "á", "ç", "’", "\t", "\u{0}", "日本", "😀"] {
            assert!(!is_gsm7(text), "{text:?}");
            assert_eq!(count(text).encoding, Encoding::Ucs2, "{text:?}");
        }
    }

    #[test]
    fn ucs2_single_part_ends_at_70() {
        let text = format!("á{}", "a".repeat(69));
        assert_eq!(count(&text), ucs2(70, 1));
        let text = format!("á{}", "a".repeat(70));
        assert_eq!(count(&text), ucs2(71, 2));
    }

    #[test]
    fn ucs2_parts_hold_67() {
        let text = format!("á{}", "a".repeat(67 * 2 - 1));
        assert_eq!(count(&text), ucs2(134, 2));
        let text = format!("á{}", "a".repeat(67 * 2));
        assert_eq!(count(&text), ucs2(135, 3));
    }

    #[test]
    fn an_emoji_is_two_units() {
        assert_eq!(count("😀"), ucs2(2, 1));
        // Extension characters are one unit in UCS-2.
        assert_eq!(count("😀€"), ucs2(3, 1));
        assert_eq!(count(&"😀".repeat(35)), ucs2(70, 1));
        assert_eq!(count(&"😀".repeat(36)), ucs2(72, 2));
    }

    #[test]
    fn a_surrogate_pair_never_straddles_a_part_boundary() {
        // 66 units then an emoji: it would take units 67 and 68, so it starts part two.
        let text = format!("á{}😀{}", "a".repeat(65), "a".repeat(66));
        assert_eq!(count(&text), ucs2(134, 3));
        let text = format!("á{}😀{}", "a".repeat(64), "a".repeat(67));
        assert_eq!(count(&text), ucs2(134, 2));
    }

    #[test]
    fn each_typographic_character_folds() {
        let cases = [
            ('\u{2018}', "'"),
            ('\u{2019}', "'"),
            ('\u{201A}', "'"),
            ('\u{201B}', "'"),
            ('\u{2032}', "'"),
            ('\u{2035}', "'"),
            ('\u{00B4}', "'"),
            ('\u{02BC}', "'"),
            ('\u{2039}', "'"),
            ('\u{203A}', "'"),
            ('`', "'"),
            ('\u{201C}', "\""),
            ('\u{201D}', "\""),
            ('\u{201E}', "\""),
            ('\u{201F}', "\""),
            ('\u{2033}', "\""),
            ('\u{2036}', "\""),
            ('\u{00AB}', "\""),
            ('\u{00BB}', "\""),
            ('\u{2010}', "-"),
            ('\u{2011}', "-"),
            ('\u{2012}', "-"),
            ('\u{2013}', "-"),
            ('\u{2014}', "-"),
            ('\u{2015}', "-"),
            ('\u{2212}', "-"),
            ('\u{2022}', "-"),
            ('\u{2023}', "-"),
            ('\u{2043}', "-"),
            ('\u{00B7}', "-"),
            ('\u{2026}', "..."),
            ('\u{00A0}', " "),
            ('\u{2002}', " "),
            ('\u{2003}', " "),
            ('\u{2009}', " "),
            ('\u{200A}', " "),
            ('\u{202F}', " "),
            ('\u{205F}', " "),
            ('\u{3000}', " "),
            ('\u{00AD}', ""),
            ('\u{200B}', ""),
            ('\u{2060}', ""),
            ('\u{FEFF}', ""),
        ];
        for (c, expected) in cases {
            let text = format!("a{c}b");
            let folded = fold_to_gsm(&text);
            assert_eq!(folded, format!("a{expected}b"), "U+{:04X}", c as u32);
            assert!(matches!(folded, Cow::Owned(_)));
            assert!(is_gsm7(&folded), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn folding_a_sentence_keeps_it_gsm7() {
        let text = "“Don’t stop” — 5\u{00A0}min… • €2 −1";
        let folded = fold_to_gsm(text);
        assert_eq!(folded, "\"Don't stop\" - 5 min... - €2 -1");
        assert_eq!(count(text).encoding, Encoding::Ucs2);
        assert_eq!(count(&folded).encoding, Encoding::Gsm7);
    }

    #[test]
    fn nothing_to_fold_borrows() {
        for text in [
            "",
            "plain ASCII {}[]",
            "£ é Δ €",
            "日本 😀 á",
            "line\nbreak",
        ] {
            assert!(
                matches!(fold_to_gsm(text), Cow::Borrowed(s) if s == text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn encoding_serializes_as_stored_in_the_log() {
        assert_eq!(serde_json::to_string(&Encoding::Gsm7).unwrap(), "\"GSM7\"");
        assert_eq!(serde_json::to_string(&Encoding::Ucs2).unwrap(), "\"UCS2\"");
        assert_eq!(
            serde_json::from_str::<Encoding>("\"UCS2\"").unwrap(),
            Encoding::Ucs2
        );
        assert_eq!(Encoding::Gsm7.to_string(), "GSM7");
    }

    proptest! {
        #[test]
        fn count_fits_the_units_into_its_segments(text in any::<String>()) {
            let c = count(&text);
            let capacity = match c.segments {
                0 => 0,
                1 => c.encoding.single_capacity(),
                n => n as usize * c.encoding.part_capacity(),
            };
            prop_assert!(capacity >= c.units);
            prop_assert_eq!(c.segments == 0, text.is_empty());
            // Never more parts than one per character, never fewer than the units need.
            prop_assert!(c.segments as usize <= text.chars().count().max(1));
            // (A single part holds more than each part of a concatenated message: 70 UCS-2
            // units are one part, not two, so this bound is for 2 parts and more; found by
            // the `segments` fuzz target.)
            if c.segments > 1 {
                prop_assert!(c.segments as usize * c.encoding.part_capacity() >= c.units);
            }
            prop_assert_eq!(c.encoding == Encoding::Gsm7, is_gsm7(&text));
            if c.encoding == Encoding::Ucs2 {
                prop_assert_eq!(c.units, text.encode_utf16().count());
            }
        }

        #[test]
        fn folding_is_idempotent_and_borrows_when_unchanged(text in any::<String>()) {
            let once = fold_to_gsm(&text).into_owned();
            prop_assert!(matches!(fold_to_gsm(&once), Cow::Borrowed(_)));
            if once == text {
                prop_assert!(matches!(fold_to_gsm(&text), Cow::Borrowed(_)));
            }
        }

        /// Text made only of GSM-7 and foldable typographic characters is GSM-7 once folded
        /// (and left as it is when it was GSM-7 already).
        #[test]
        fn folding_typographic_text_yields_gsm7(
            chars in proptest::collection::vec(prop::sample::select(gsm_or_foldable()), 0..400),
        ) {
            let text: String = chars.into_iter().collect();
            let folded = fold_to_gsm(&text);
            prop_assert!(is_gsm7(&folded), "{folded:?}");
            prop_assert_eq!(count(&folded).encoding, Encoding::Gsm7);
            if is_gsm7(&text) {
                prop_assert!(matches!(folded, Cow::Borrowed(_)));
            }
        }
    }

    /// Every character that is GSM-7 or that [`fold_to_gsm`] replaces (Basic Multilingual
    /// Plane; there is nothing of either above it).
    fn gsm_or_foldable() -> Vec<char> {
        ('\0'..='\u{FFFF}')
            .filter(|&c| gsm_units(c).is_some() || fold_char(c).is_some())
            .collect()
    }
}
