//! What an inbound SMS asks for (DESIGN §8): opt out, opt in, help, or nothing we act on.
//!
//! A pure function over the message text. The rules, in order:
//!
//! 1. **Opt-out wins.** Under the FCC's 2024 revocation rule any wording a reasonable person
//!    would read as "stop texting me" revokes consent, and when in doubt we opt out: a wrongly
//!    kept subscription is a TCPA violation per message, a wrongly ended one costs the user a
//!    `START`. So a message is an opt-out when
//!    * its first word (or the whole message) is an opt-out keyword — the CTIA/carrier set
//!      `STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE`, spelling variants
//!      (`STOPP`, `STOP!!!`, `Stop.`) and common non-English ones (`ALTO`, `PARAR`, `PARE`,
//!      `ARRET`, `BASTA`, `STOPPEN`, `CANCELAR`, `BAJA`, ...), or a bare `NO` / `NOPE` /
//!      `REMOVE` (only as the whole message: "No problem" is not a request);
//!    * or any word of it is one of the unambiguous ones (`stop`, `unsubscribe`, `unsub...`,
//!      `optout`, `revoke`, `cancel`, `quit`) — `end` only counts as the first word, since
//!      "the end of the battle" is not a request;
//!    * or it contains a plain-language phrase ("opt out", "remove me", "leave me alone",
//!      "don't text", "no more", "not interested", "wrong number", "take me off", ...);
//!    * or it contains a stop-sign emoji (🛑, ⛔, 🚫).
//! 2. **Help**: first word `HELP` / `INFO` (and `AYUDA`, `AIDE`, `HILFE`, `AIUTO`, `AJUDA`),
//!    or the word "help" anywhere.
//! 3. **Opt-in**: first word `START`, `UNSTOP`, `YES`, `SUBSCRIBE` (and `RESUBSCRIBE`,
//!    `OPTIN`), or the phrases "opt in", "opt me in", "sign me up", "subscribe me". Opt-in is
//!    never inferred from a word in the middle of a sentence.
//! 4. Anything else: [`Intent::Other`].
//!
//! Spanish is honoured as English is: keywords (`PARAR`, `ALTO`, `CANCELAR`, `BAJA`, `AYUDA`,
//! `COMENZAR`) and plain-language sentences ("no me envíen más mensajes", "quiero darme de
//! baja"). [`language`] says which language the reply should be in.
//!
//! Matching is case-insensitive and ignores punctuation, emoji (other than the stop signs),
//! apostrophes ("don't" = "dont") and Latin accents ("ARRÊT" = "ARRET"). The `messageKeyword`
//! End User Messaging attaches (the registered keyword the message matched) is a second
//! opinion: an opt-out keyword there always opts out; otherwise it is used only when the body
//! itself says nothing.
//!
//! Work is bounded: only the first [`MAX_CHARS`] characters are read.

use crate::locale::Locale;

/// What an inbound message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    OptOut,
    OptIn,
    Help,
    Other,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::OptOut => "opt_out",
            Intent::OptIn => "opt_in",
            Intent::Help => "help",
            Intent::Other => "other",
        }
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest prefix of a message that is looked at (10 concatenated SMS parts).
pub const MAX_CHARS: usize = 1600;

/// Opt-out keywords recognised as the first word (or the whole message).
const OPT_OUT_FIRST: &[&str] = &[
    // CTIA / carrier standard set (DESIGN §8).
    "stop",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "optout",
    "revoke",
    // Common variants.
    "stopit",
    "stopnow",
    "unsub",
    "unsuscribe",
    "unsubscribed",
    // Spanish, Portuguese, Italian, French, German.
    "alto",
    "parar",
    "pare",
    "para",
    "basta",
    "arret",
    "arrete",
    "arreter",
    "stoppen",
    "stopp",
    "halt",
    "cancelar",
    "cancela",
    "baja",
    "desuscribir",
    "desuscribirme",
    "desinscribir",
    "desinscribirme",
    "desabonner",
    "desinscrire",
    "annuler",
    "abmelden",
    "abbestellen",
    "sair",
    "fermati",
    "disiscrivimi",
    "paren",
    "detener",
    "detente",
    "cancelen",
];

/// Opt-out words only when they are the whole message ("No" is a refusal; "No problem" is not).
const OPT_OUT_WHOLE: &[&str] = &["no", "nope", "remove"];

/// Words that opt out wherever they appear.
const OPT_OUT_ANYWHERE: &[&str] = &[
    "stop",
    "stopall",
    "unsubscribe",
    "optout",
    "revoke",
    "cancel",
    "quit",
    "alto",
    "basta",
    "arret",
    "stoppen",
    "desuscribir",
    "desuscribirme",
    "desabonner",
    "cancelar",
    "paren",
];

/// Plain-language opt-outs, as normalised word sequences, matched anywhere.
const OPT_OUT_PHRASES: &[&[&str]] = &[
    &["opt", "out"],
    &["opt", "me", "out"],
    &["remove", "me"],
    &["remove", "my", "number"],
    &["take", "me", "off"],
    &["leave", "me", "alone"],
    &["no", "more"],
    &["dont", "text"],
    &["dont", "txt"],
    &["dont", "message"],
    &["dont", "contact"],
    &["dont", "send"],
    &["dont", "want"],
    &["do", "not", "text"],
    &["do", "not", "message"],
    &["do", "not", "contact"],
    &["do", "not", "send"],
    &["do", "not", "want"],
    &["never", "text"],
    &["never", "message"],
    &["not", "interested"],
    &["wrong", "number"],
    &["no", "thanks"],
    &["no", "thank", "you"],
    &["no", "longer"],
    &["lose", "my", "number"],
    &["delete", "my", "number"],
    &["dejen", "de"],
    &["deja", "de"],
    &["dejar", "de"],
    &["no", "mas"],
    // Spanish sentences (the reasonable-means rule does not depend on the language).
    &["no", "me", "envien"],
    &["no", "me", "manden"],
    &["no", "me", "escriban"],
    &["no", "me", "escribas"],
    &["no", "me", "mandes"],
    &["no", "me", "envies"],
    &["no", "me", "contacten"],
    &["no", "me", "molesten"],
    &["no", "me", "interesa"],
    &["no", "quiero", "mas"],
    &["no", "quiero", "recibir"],
    &["no", "quiero", "mensajes"],
    &["ya", "no", "quiero"],
    &["darme", "de", "baja"],
    &["dar", "de", "baja"],
    &["dame", "de", "baja"],
    &["denme", "de", "baja"],
    &["quitenme", "de"],
    &["sacame", "de"],
    &["borren", "mi", "numero"],
    &["borrar", "mi", "numero"],
    &["eliminen", "mi", "numero"],
    &["numero", "equivocado"],
    &["ne", "plus"],
    &["nicht", "mehr"],
];

/// First words that ask for help.
const HELP_FIRST: &[&str] = &["help", "info", "ayuda", "aide", "hilfe", "aiuto", "ajuda"];

/// Spanish keywords and the first words of the Spanish phrases above: a message that uses one
/// is answered in Spanish (DESIGN §8), whatever the user's preferences say.
const SPANISH: &[&str] = &[
    "alto",
    "parar",
    "pare",
    "para",
    "paren",
    "basta",
    "cancelar",
    "cancela",
    "cancelen",
    "baja",
    "detener",
    "detente",
    "desuscribir",
    "desuscribirme",
    "desinscribir",
    "desinscribirme",
    "dejen",
    "deja",
    "dejar",
    "quiero",
    "envien",
    "manden",
    "escriban",
    "darme",
    "dame",
    "denme",
    "quitenme",
    "sacame",
    "borren",
    "eliminen",
    "numero",
    "mensajes",
    "ayuda",
    "comenzar",
    "iniciar",
    "alta",
    "suscribirme",
    "si",
    "por",
    "favor",
    "gracias",
    "mas",
];

/// English keywords: a message that uses one (and no Spanish word) is answered in English.
const ENGLISH: &[&str] = &[
    "stop",
    "stopall",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "optout",
    "revoke",
    "unsub",
    "help",
    "info",
    "start",
    "unstop",
    "yes",
    "subscribe",
    "resubscribe",
    "optin",
    "please",
    "text",
    "texting",
    "me",
    "my",
    "number",
    "dont",
];

/// First words that re-grant consent.
const OPT_IN_FIRST: &[&str] = &[
    "start",
    "unstop",
    "yes",
    "subscribe",
    "resubscribe",
    "optin",
    // Spanish.
    "comenzar",
    "iniciar",
    "alta",
    "suscribirme",
    "si",
];

/// Opt-in phrases matched anywhere.
const OPT_IN_PHRASES: &[&[&str]] = &[
    &["opt", "in"],
    &["opt", "me", "in"],
    &["sign", "me", "up"],
    &["subscribe", "me"],
];

/// A keyword family End User Messaging (or the toll-free carrier) answers itself when the
/// deployment lets it (DESIGN §8, `PROVIDER_ANSWERS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKeyword {
    /// One of AWS's required opt-out keywords.
    OptOut,
    /// `HELP`, the mandatory help keyword.
    Help,
    /// `START` or `UNSTOP`, registered as opt-in keywords (docs/deploy.md).
    OptIn,
}

/// The opt-out keywords End User Messaging recognises ("Required opt-out keywords" of its
/// user guide). On a US toll-free number the carrier answers `STOP` itself.
pub const PROVIDER_OPT_OUT_KEYWORDS: &[&str] = &[
    "ARRET",
    "CANCEL",
    "END",
    "OPT-OUT",
    "OPTOUT",
    "QUIT",
    "REMOVE",
    "STOP",
    "TD",
    "UNSUBSCRIBE",
];

/// The help keyword every number has (`HELP`, a mandatory keyword).
pub const PROVIDER_HELP_KEYWORDS: &[&str] = &["HELP"];

/// The opt-in keywords docs/deploy.md registers on the number.
pub const PROVIDER_OPT_IN_KEYWORDS: &[&str] = &["START", "UNSTOP"];

/// Which keyword End User Messaging recognised in an inbound message, if any of the families
/// it answers: its `messageKeyword` when it attached one, else the body's first word (AWS
/// answers a message that *begins* with a keyword), case and accents ignored. `None` for a
/// plain-language opt-out ("please stop texting me"), a Spanish keyword (`PARAR`, `AYUDA`)
/// or anything else it does not know: those only `inbound-sms` can answer.
pub fn provider_keyword(body: &str, keyword: Option<&str>) -> Option<ProviderKeyword> {
    let word = keyword
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .or_else(|| body.split_whitespace().next())?;
    let word: String = word
        .trim_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .take(32)
        .flat_map(char::to_lowercase)
        .map(fold_accent)
        .collect::<String>()
        .to_ascii_uppercase();
    if PROVIDER_OPT_OUT_KEYWORDS.contains(&word.as_str()) {
        Some(ProviderKeyword::OptOut)
    } else if PROVIDER_HELP_KEYWORDS.contains(&word.as_str()) {
        Some(ProviderKeyword::Help)
    } else if PROVIDER_OPT_IN_KEYWORDS.contains(&word.as_str()) {
        Some(ProviderKeyword::OptIn)
    } else {
        None
    }
}

/// Classifies an inbound message body, with End User Messaging's `messageKeyword` if any.
pub fn classify(body: &str, keyword: Option<&str>) -> Intent {
    let from_body = classify_text(body);
    let from_keyword = keyword.map_or(Intent::Other, classify_text);
    match (from_body, from_keyword) {
        (Intent::OptOut, _) | (_, Intent::OptOut) => Intent::OptOut,
        (Intent::Other, other) => other,
        (body, _) => body,
    }
}

/// The language to answer a keyword message in: Spanish when it uses a Spanish keyword or
/// phrase (`PARAR`, "no me envíen más mensajes"), English when it uses an English one, `None`
/// when it says neither (answer in the user's own locale).
pub fn language(body: &str, keyword: Option<&str>) -> Option<Locale> {
    let keyword = keyword.map(words).unwrap_or_default();
    let body = words(body);
    let all = || body.iter().chain(&keyword);
    if all().any(|w| SPANISH.contains(&w.as_str())) {
        Some(Locale::Es)
    } else if all().any(|w| ENGLISH.contains(&w.as_str()) || is_stop_variant(w)) {
        Some(Locale::En)
    } else {
        None
    }
}

fn classify_text(body: &str) -> Intent {
    let stop_sign = body
        .chars()
        .take(MAX_CHARS)
        .any(|c| matches!(c, '\u{1F6D1}' | '\u{26D4}' | '\u{1F6AB}'));
    if stop_sign {
        return Intent::OptOut;
    }
    let words = words(body);
    let Some(first) = words.first() else {
        return Intent::Other;
    };
    if is_opt_out_first(first)
        || (words.len() == 1 && OPT_OUT_WHOLE.contains(&first.as_str()))
        || words.iter().any(|w| is_opt_out_anywhere(w))
        || OPT_OUT_PHRASES.iter().any(|p| contains_phrase(&words, p))
    {
        return Intent::OptOut;
    }
    match first_word_intent(first) {
        Intent::Other => {}
        intent => return intent,
    }
    if words.iter().any(|w| w == "help") {
        return Intent::Help;
    }
    if OPT_IN_PHRASES.iter().any(|p| contains_phrase(&words, p)) {
        return Intent::OptIn;
    }
    Intent::Other
}

/// The intent of a message's first word alone (also used for `messageKeyword`).
fn first_word_intent(word: &str) -> Intent {
    if is_opt_out_first(word) {
        Intent::OptOut
    } else if HELP_FIRST.contains(&word) {
        Intent::Help
    } else if OPT_IN_FIRST.contains(&word) {
        Intent::OptIn
    } else {
        Intent::Other
    }
}

fn is_opt_out_first(word: &str) -> bool {
    OPT_OUT_FIRST.contains(&word) || is_stop_variant(word)
}

fn is_opt_out_anywhere(word: &str) -> bool {
    OPT_OUT_ANYWHERE.contains(&word) || is_stop_variant(word) || word.starts_with("unsub")
}

/// `stop` with its last letter repeated (`stopp`, `stoppppp`), as typed in a hurry.
fn is_stop_variant(word: &str) -> bool {
    word.strip_prefix("sto")
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b == b'p'))
}

fn contains_phrase(words: &[String], phrase: &[&str]) -> bool {
    words
        .windows(phrase.len())
        .any(|w| w.iter().zip(phrase).all(|(a, b)| a == b))
}

/// Lower-cased words of the text: letters and digits only, accents folded, apostrophes
/// dropped inside words ("don't" -> "dont"), everything else a separator.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars().take(MAX_CHARS) {
        if matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '`') {
            continue;
        }
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                current.push(fold_accent(lower));
            }
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Folds the accented Latin letters of the languages above to their base letter.
fn fold_accent(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Intent::{Help, OptIn, OptOut, Other};
    use proptest::prelude::*;

    /// Real-world replies and the decision for each.
    const TABLE: &[(&str, Intent)] = &[
        // The standard keywords, in every case and with punctuation.
        ("STOP", OptOut),
        ("stop", OptOut),
        ("Stop.", OptOut),
        ("  STOP!!! ", OptOut),
        ("StopAll", OptOut),
        ("UNSUBSCRIBE", OptOut),
        ("Cancel", OptOut),
        ("END", OptOut),
        ("quit", OptOut),
        ("OPTOUT", OptOut),
        ("Revoke", OptOut),
        ("STOPPPP", OptOut),
        ("\"stop\"", OptOut),
        // Extra words, plain language.
        ("Stop texting me", OptOut),
        ("please stop", OptOut),
        ("pls stop sending these", OptOut),
        ("Can you STOP with the texts already", OptOut),
        ("opt out", OptOut),
        ("Opt me out please", OptOut),
        ("unsubscribe me", OptOut),
        ("Unsubscribe me from this list!", OptOut),
        ("remove me", OptOut),
        ("Please remove my number", OptOut),
        ("leave me alone", OptOut),
        ("take me off your list", OptOut),
        ("I don't want these texts anymore", OptOut),
        ("don’t text me again", OptOut),
        ("Do not contact me", OptOut),
        ("no more messages", OptOut),
        ("not interested", OptOut),
        ("Wrong number", OptOut),
        ("No thanks", OptOut),
        ("no", OptOut),
        ("NOPE.", OptOut),
        ("No problem, see you there", Other),
        ("I want to cancel", OptOut),
        ("unsubscribing now", OptOut),
        ("help me stop these", OptOut),
        // Emoji.
        ("🛑", OptOut),
        ("STOP 🛑🛑", OptOut),
        ("⛔️", OptOut),
        ("stop 😡", OptOut),
        // Non-English.
        ("ALTO", OptOut),
        ("Parar", OptOut),
        ("PARE", OptOut),
        ("ARRÊT", OptOut),
        ("arret", OptOut),
        ("Basta!", OptOut),
        ("basta ya", OptOut),
        ("Cancelar", OptOut),
        ("baja", OptOut),
        ("STOPPEN", OptOut),
        ("dejen de escribirme", OptOut),
        ("no más mensajes", OptOut),
        // Spanish sentences, as the English ones are honoured.
        ("Por favor no me envíen más mensajes", OptOut),
        ("ya no quiero recibir estos mensajes", OptOut),
        ("Quiero darme de baja", OptOut),
        ("quiero cancelar la suscripción", OptOut),
        ("No me interesa, gracias", OptOut),
        ("paren de mandarme textos", OptOut),
        ("número equivocado", OptOut),
        ("Bórrenme... eliminen mi número por favor", OptOut),
        ("no me manden nada más", OptOut),
        ("COMENZAR", OptIn),
        ("Sí", OptIn),
        ("Désabonner", OptOut),
        // Opt-in.
        ("START", OptIn),
        ("start", OptIn),
        ("Unstop", OptIn),
        ("YES", OptIn),
        ("Yes!", OptIn),
        ("subscribe", OptIn),
        ("Start again please 🙏", OptIn),
        ("opt in", OptIn),
        ("please sign me up again", OptIn),
        // Help.
        ("HELP", Help),
        ("help", Help),
        ("Help?", Help),
        ("INFO", Help),
        ("info please", Help),
        ("I need help", Help),
        ("AYUDA", Help),
        ("aide", Help),
        // Nothing to act on.
        ("", Other),
        ("   ", Other),
        ("👍", Other),
        ("ok", Other),
        ("Thanks!", Other),
        ("lol see you in the battle", Other),
        ("who is this?", Other),
        ("What time does the battle end?", Other),
        ("I'll be there at 5", Other),
        ("😂😂😂", Other),
    ];

    #[test]
    fn real_world_replies_get_the_expected_decision() {
        assert!(TABLE.len() >= 40);
        let wrong: Vec<String> = TABLE
            .iter()
            .filter(|(text, expected)| classify(text, None) != *expected)
            .map(|(text, expected)| {
                format!(
                    "{text:?}: expected {expected}, got {}",
                    classify(text, None)
                )
            })
            .collect();
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    }

    #[test]
    fn keywords_are_answered_in_their_language() {
        for text in [
            "PARAR",
            "alto",
            "Por favor no me envíen más mensajes",
            "AYUDA",
            "Sí",
        ] {
            assert_eq!(language(text, None), Some(Locale::Es), "{text}");
        }
        for text in ["STOP", "stop texting me", "HELP", "start", "Stoppp"] {
            assert_eq!(language(text, None), Some(Locale::En), "{text}");
        }
        assert_eq!(language("🛑", None), None);
        assert_eq!(language("👍", Some("PARAR")), Some(Locale::Es));
    }

    #[test]
    fn the_registered_keyword_is_a_second_opinion() {
        // An opt-out keyword always wins.
        assert_eq!(classify("hello", Some("STOP")), OptOut);
        assert_eq!(classify("YES", Some("STOP")), OptOut);
        // A body that says nothing takes the keyword's meaning.
        assert_eq!(classify("thanks", Some("HELP")), Help);
        assert_eq!(classify("", Some("START")), OptIn);
        // The body wins over a non-opt-out keyword.
        assert_eq!(classify("stop it", Some("HELP")), OptOut);
        assert_eq!(classify("help", Some("START")), Help);
        // Unknown keywords mean nothing.
        assert_eq!(classify("thanks", Some("JOIN")), Other);
        assert_eq!(classify("thanks", Some("")), Other);
        assert_eq!(classify("thanks", Some("stop now")), OptOut);
    }

    #[test]
    fn the_provider_recognises_only_its_own_keywords() {
        use ProviderKeyword as P;
        let cases: &[(&str, Option<&str>, Option<P>)] = &[
            ("STOP", Some("STOP"), Some(P::OptOut)),
            ("stop", None, Some(P::OptOut)),
            ("Stop.", None, Some(P::OptOut)),
            ("CANCEL please", None, Some(P::OptOut)),
            ("opt-out", None, Some(P::OptOut)),
            ("Arrêt", None, Some(P::OptOut)),
            ("HELP", Some("HELP"), Some(P::Help)),
            ("help me", None, Some(P::Help)),
            ("START", Some("START"), Some(P::OptIn)),
            ("unstop", None, Some(P::OptIn)),
            // What it does not know: only we can answer these.
            ("please stop texting me", None, None),
            ("please stop texting me", Some(""), None),
            ("PARAR", None, None),
            ("no me envíen más mensajes", None, None),
            ("AYUDA", None, None),
            ("INFO", None, None),
            ("STOPALL", None, None),
            ("🛑", None, None),
            ("", None, None),
            // Its own keyword field decides when present.
            ("thanks", Some("STOP"), Some(P::OptOut)),
            ("STOP", Some("JOIN"), None),
        ];
        for (body, keyword, expected) in cases {
            assert_eq!(
                provider_keyword(body, *keyword),
                *expected,
                "{body:?} {keyword:?}"
            );
        }
    }

    #[test]
    fn end_only_counts_as_the_first_word() {
        assert_eq!(classify("End", None), OptOut);
        assert_eq!(classify("end please", None), OptOut);
        assert_eq!(classify("see you at the end", None), Other);
    }

    #[test]
    fn only_the_first_chars_are_read() {
        let long = format!("{} stop", "a ".repeat(MAX_CHARS));
        assert_eq!(classify(&long, None), Other);
        let long = format!("stop {}", "a ".repeat(MAX_CHARS * 10));
        assert_eq!(classify(&long, None), OptOut);
    }

    proptest! {
        #[test]
        fn never_panics(body in any::<String>(), keyword in proptest::option::of(any::<String>())) {
            let _ = classify(&body, keyword.as_deref());
            let _ = provider_keyword(&body, keyword.as_deref());
        }

        /// An opt-out keyword from End User Messaging opts out whatever the body says, an
        /// empty keyword is the same as none, and only the first `MAX_CHARS` characters count.
        #[test]
        fn keyword_and_length_rules_hold_for_any_body(
            body in any::<String>(),
            tail in "\\PC{0,20}",
            stop in prop::sample::select(vec!["STOP", "stop", "UNSUBSCRIBE", "Cancel", "QUIT"]),
        ) {
            prop_assert_eq!(classify(&body, Some(stop)), Intent::OptOut);
            prop_assert_eq!(classify(&body, Some("")), classify(&body, None));
            let head: String = body.chars().take(MAX_CHARS).collect();
            let long = format!("{head}{}{tail}", " ".repeat(MAX_CHARS));
            prop_assert_eq!(classify(&long, None), classify(&head, None));
        }

        #[test]
        fn stop_as_first_word_always_opts_out(
            case in prop::sample::select(vec!["STOP", "stop", "Stop", "sToP"]),
            rest in "[ a-zA-Z0-9.,!?]{0,40}",
        ) {
            prop_assert_eq!(classify(&format!("{case} {rest}"), None), Intent::OptOut);
        }

        #[test]
        fn punctuation_and_emoji_around_a_keyword_change_nothing(
            before in "[ .,!?*\"()]{0,5}",
            after in "[ .,!?*\"()😀🙏]{0,5}",
        ) {
            prop_assert_eq!(classify(&format!("{before}HELP{after}"), None), Intent::Help);
            prop_assert_eq!(classify(&format!("{before}start{after}"), None), Intent::OptIn);
            prop_assert_eq!(classify(&format!("{before}Quit{after}"), None), Intent::OptOut);
        }
    }
}
