//! The consent disclosure texts, versioned (DESIGN §5).
//!
//! The frontend shows one of these next to every consent prompt and may say which
//! (`disclosure_version`); the consent record stores the exact text, not only the version,
//! so the evidence survives any later change here. A published version is never edited:
//! a new wording is a new entry, and [`CURRENT`] moves to it.

/// One published disclosure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disclosure {
    pub version: &'static str,
    pub text: &'static str,
}

/// Every version ever shown, oldest first. Append only.
pub const REGISTRY: &[Disclosure] = &[Disclosure {
    version: "2026-11-01",
    text: "I agree to receive recurring automated promotional text messages at the number provided. \
           Consent is not a condition of purchase. Msg & data rates may apply. Msg frequency varies. \
           Reply HELP for help and STOP to cancel.",
}];

/// The version a prompt shows unless the client names another.
pub const CURRENT: &str = "2026-11-01";

/// The disclosure of `version`, or the current one when `None`; `Err` for an unknown version.
pub fn lookup(version: Option<&str>) -> Result<&'static Disclosure, UnknownVersion> {
    let wanted = version.map(str::trim).unwrap_or(CURRENT);
    REGISTRY
        .iter()
        .find(|d| d.version == wanted)
        .ok_or(UnknownVersion)
}

/// A `disclosure_version` the registry does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown disclosure version")]
pub struct UnknownVersion;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_current_version_exists_and_versions_are_unique() {
        assert_eq!(lookup(None).unwrap().version, CURRENT);
        let versions: HashSet<_> = REGISTRY.iter().map(|d| d.version).collect();
        assert_eq!(versions.len(), REGISTRY.len());
        assert_eq!(lookup(Some("1999-01-01")), Err(UnknownVersion));
    }

    #[test]
    fn every_text_discloses_what_ctia_requires() {
        for d in REGISTRY {
            for needle in [
                "Msg & data rates may apply",
                "HELP",
                "STOP",
                "not a condition",
            ] {
                assert!(d.text.contains(needle), "{}: {needle}", d.version);
            }
        }
    }
}
