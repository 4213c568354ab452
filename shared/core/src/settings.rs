//! The settings the pure rules read: the brand's texts (§3, §8) and the limits and caps (§7).
//! `sms_shared::config::Config` reads them from the environment with the rest.

/// Brand and fixed texts that go into message bodies (§3, §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branding {
    pub brand_name: String,
    pub support_url: String,
    /// Appended to every promotional body.
    pub stop_footer: String,
    /// How often users get promotional messages, for the HELP reply ("up to 10 msgs/day").
    pub frequency: String,
    /// The Spanish footer and frequency (locale `es`).
    pub stop_footer_es: String,
    pub frequency_es: String,
    /// Support contacts the HELP reply adds to the URL, when configured.
    pub support_email: Option<String>,
    pub support_phone: Option<String>,
}

/// The texts of local runs and tests; a deployment sets its own (`BRAND_NAME`, ...).
impl Default for Branding {
    fn default() -> Self {
        Self {
            brand_name: "WordBattle".into(),
            support_url: "https://example.com/help/sms".into(),
            stop_footer: "Reply STOP to unsubscribe.".into(),
            frequency: "Msg frequency varies".into(),
            stop_footer_es: "Responde STOP para cancelar.".into(),
            frequency_es: "La frecuencia de mensajes varía".into(),
            support_email: None,
            support_phone: None,
        }
    }
}

/// Limits and cost caps (§7), money in micro-USD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub promotional_per_user_per_day: u32,
    pub monthly_spend_cap_micros: u64,
    pub transactional_hard_cap_micros: u64,
    /// Verification codes' own monthly budget (DESIGN §7): codes stop when it is spent, and
    /// never count against the room of the caps above.
    pub verification_monthly_budget_micros: u64,
}

/// Parses a non-negative decimal USD amount into micro-dollars, without floating point.
pub fn parse_usd_micros(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 6
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()? * 10u64.pow(6 - frac.len() as u32)
    };
    whole.checked_mul(1_000_000)?.checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_amounts_parse_exactly() {
        assert_eq!(parse_usd_micros("50"), Some(50_000_000));
        assert_eq!(parse_usd_micros("0.00581"), Some(5_810));
        assert_eq!(parse_usd_micros(".5"), Some(500_000));
        assert_eq!(parse_usd_micros("1.0000001"), None);
        assert_eq!(parse_usd_micros("abc"), None);
        assert_eq!(parse_usd_micros(""), None);
    }
}
