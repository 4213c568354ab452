//! The languages texts are written in (DESIGN §8): English and Spanish.
//!
//! A user's locale lives in the preferences (`en`, `es`); it is first set from the
//! `Accept-Language` of the opt-in, and either API can change it. A keyword reply speaks the
//! language of the keyword (PARAR is answered in Spanish whatever the preferences say).

/// A language of the product's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    En,
    Es,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::En, Locale::Es];

    /// The code stored in the preferences.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Es => "es",
        }
    }

    /// A language tag (`es`, `es-MX`, `EN_us`) of a language we write, or `None`.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else if primary.eq_ignore_ascii_case("es") {
            Some(Locale::Es)
        } else {
            None
        }
    }

    /// The stored code, English when absent or unknown.
    pub fn from_stored(code: Option<&str>) -> Locale {
        code.and_then(Locale::from_tag).unwrap_or_default()
    }

    /// The preferred language of an `Accept-Language` header that we write, by quality
    /// (`es-MX,es;q=0.9,en;q=0.8` → Spanish); `None` when it names none of ours.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(u16, Locale)> = None;
        for item in header.split(',').take(32) {
            let mut parts = item.split(';');
            let Some(locale) = parts.next().and_then(Locale::from_tag) else {
                continue;
            };
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), parse_quality);
            // A later entry wins only with a strictly higher quality: ties keep header order.
            if let Some(q) = quality.filter(|q| *q > 0)
                && best.is_none_or(|(b, _)| q > b)
            {
                best = Some((q, locale));
            }
        }
        best.map(|(_, locale)| locale)
    }
}

/// `q=0.8` as thousandths; `None` when malformed.
fn parse_quality(raw: &str) -> Option<u16> {
    let value: f32 = raw.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_our_languages_only() {
        assert_eq!(Locale::from_tag("es-MX"), Some(Locale::Es));
        assert_eq!(Locale::from_tag("EN_us"), Some(Locale::En));
        assert_eq!(Locale::from_tag("fr"), None);
        assert_eq!(Locale::from_stored(Some("es")), Locale::Es);
        assert_eq!(Locale::from_stored(None), Locale::En);
        assert_eq!(Locale::from_stored(Some("xx")), Locale::En);
    }

    #[test]
    fn accept_language_picks_the_best_of_ours() {
        let pick = Locale::from_accept_language;
        assert_eq!(pick("es-MX,es;q=0.9,en;q=0.8"), Some(Locale::Es));
        assert_eq!(pick("fr-FR,fr;q=0.9,en;q=0.5,es;q=0.4"), Some(Locale::En));
        assert_eq!(pick("en;q=0.5, es;q=0.7"), Some(Locale::Es));
        assert_eq!(
            pick("en, es"),
            Some(Locale::En),
            "ties keep the header's order"
        );
        assert_eq!(
            pick("es;q=0, en;q=0.1"),
            Some(Locale::En),
            "q=0 means not wanted"
        );
        assert_eq!(pick("de, fr"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("es;q=bad"), None);
    }
}
