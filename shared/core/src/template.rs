//! Message bodies (DESIGN §3, §8): one short template per kind, parameters validated and
//! sanitised, the STOP footer on promotional bodies, and the fixed HELP/STOP/START replies.
//!
//! Parameters are user-supplied text (names, topics, message previews). Sanitising keeps each
//! one on the line it was put on: no parameter can start a line of its own that a reader would
//! take for a footer ("Reply STOP ...") or a verification code.

use crate::kinds::{MessageKind, ParamSpec, ParamType};
use crate::locale::Locale;
use crate::segments::{self, SegmentCount};
use crate::settings::Branding;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::ops::Range;

/// How long a verification code is valid (DESIGN §5), as told to the user.
pub const VERIFICATION_VALID_MINUTES: u32 = 10;

/// What a redacted verification code looks like in the log.
pub const REDACTED_CODE: &str = "******";

/// Longest unknown parameter name echoed back in an error.
const MAX_ECHOED_NAME_CHARS: usize = 64;

/// Largest integer parameter; the same bound for JSON numbers and digit strings (9 digits).
const MAX_INTEGER: u64 = 999_999_999;

/// Most parameters any kind has.
const MAX_PARAMS: usize = 3;

/// A body ready to send, with what the log may keep of it.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMessage {
    /// The exact text sent, already folded to GSM-7 where possible.
    pub body: String,
    /// What the log keeps: verification codes redacted (`******`), otherwise equal to `body`.
    pub log_body: String,
    /// Counted on `body`.
    pub segments: SegmentCount,
}

/// Shows `log_body` only, so logging a rendered message with `{:?}` cannot leak a code.
impl fmt::Debug for RenderedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedMessage")
            .field("log_body", &self.log_body)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

/// Why a body could not be rendered: always a fault of the request, never retried.
/// Messages name the parameter but never echo its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("missing parameter `{0}`")]
    MissingParam(&'static str),
    /// The name is sanitised and capped before it is stored here.
    #[error("unknown parameter `{0}`")]
    UnknownParam(String),
    #[error("parameter `{name}` must be a {expected}")]
    WrongType {
        name: &'static str,
        expected: &'static str,
    },
    #[error("parameter `{name}` {reason}")]
    InvalidParam {
        name: &'static str,
        reason: &'static str,
    },
    #[error("message body takes {segments} segments, more than the maximum of {max}")]
    TooLong { segments: u32, max: u32 },
}

impl TemplateError {
    /// Machine-readable code for the log record and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            TemplateError::MissingParam(_) => "missing_parameter",
            TemplateError::UnknownParam(_) => "unknown_parameter",
            TemplateError::WrongType { .. } | TemplateError::InvalidParam { .. } => {
                "invalid_parameter"
            }
            TemplateError::TooLong { .. } => "body_too_long",
        }
    }
}

/// Validated parameter values, in the order of [`MessageKind::params`].
struct Args<'a> {
    specs: &'static [ParamSpec],
    values: [Cow<'a, str>; MAX_PARAMS],
}

impl Args<'_> {
    fn get(&self, name: &str) -> &str {
        match self.specs.iter().position(|s| s.name == name) {
            Some(i) if i < MAX_PARAMS => &self.values[i],
            _ => {
                debug_assert!(false, "template uses undeclared parameter {name}");
                ""
            }
        }
    }
}

/// Renders the body of `kind` from request parameters.
///
/// All parameters of the kind are required and no others are accepted, so a typo in a producer
/// fails loudly instead of sending a body with a hole in it. The body is counted after folding;
/// more than `max_segments` parts is refused rather than silently truncated.
pub fn render(
    kind: MessageKind,
    params: &Map<String, Value>,
    branding: &Branding,
    max_segments: u32,
) -> Result<RenderedMessage, TemplateError> {
    render_in(kind, params, branding, max_segments, Locale::En)
}

/// [`render`] in `locale`. Spanish bodies are written with their accents and folded to GSM-7
/// (`á í ó ú` to `a i o u`; `é ñ ü ¿ ¡` are GSM-7 already): the templates avoid the words whose
/// meaning the fold would change (`sí`, `tú`, `más`), and parameters are folded the same way.
pub fn render_in(
    kind: MessageKind,
    params: &Map<String, Value>,
    branding: &Branding,
    max_segments: u32,
    locale: Locale,
) -> Result<RenderedMessage, TemplateError> {
    let (mut body, mut code_range) = compose(kind, params, branding, locale)?;
    if locale == Locale::Es {
        // Folding shortens the text before the code (á is two bytes, a one): find it again.
        if let Cow::Owned(folded) = segments::fold_accents(&body) {
            code_range = code_range.and_then(|r| {
                let code = &body[r];
                folded.find(code).map(|start| start..start + code.len())
            });
            body = folded;
        }
    }

    let segments = segments::count(&body);
    if segments.segments > max_segments {
        return Err(TemplateError::TooLong {
            segments: segments.segments,
            max: max_segments,
        });
    }
    let log_body = match code_range {
        Some(range) => redact(&body, range),
        None => body.clone(),
    };
    Ok(RenderedMessage {
        body,
        log_body,
        segments,
    })
}

/// The body as written (brand, template, footer), before the Spanish accents are folded, and
/// where the code is in it.
fn compose(
    kind: MessageKind,
    params: &Map<String, Value>,
    branding: &Branding,
    locale: Locale,
) -> Result<(String, Option<Range<usize>>), TemplateError> {
    let specs = kind.params();
    if let Some(name) = params
        .keys()
        .find(|name| !specs.iter().any(|s| s.name == name.as_str()))
    {
        return Err(TemplateError::UnknownParam(sanitize_text(
            name,
            MAX_ECHOED_NAME_CHARS,
        )));
    }
    let mut values: [Cow<'_, str>; MAX_PARAMS] = Default::default();
    for (slot, spec) in values.iter_mut().zip(specs) {
        let value = params
            .get(spec.name)
            .ok_or(TemplateError::MissingParam(spec.name))?;
        *slot = validate(spec, value)?;
    }
    let args = Args { specs, values };
    let texts = Texts::of(branding, locale);

    let capacity = branding.brand_name.len()
        + texts.stop_footer.len()
        + args.values.iter().map(|v| v.len()).sum::<usize>()
        + 112;
    let mut body = String::with_capacity(capacity);
    push_folded(&mut body, &branding.brand_name);
    body.push_str(": ");
    let mut code_range: Option<Range<usize>> = None;
    match locale {
        Locale::En => english_body(&mut body, kind, &args, &mut code_range),
        Locale::Es => spanish_body(&mut body, kind, &args, &mut code_range),
    }
    if kind.is_promotional() {
        body.push('\n');
        push_folded(&mut body, texts.stop_footer);
    }
    Ok((body, code_range))
}

/// The body of [`render_in`] with the Spanish accents kept (`á í ó ú`), as a sender that does
/// not fold to GSM-7 would send it: `make bench` counts what that would cost. Never sent.
pub fn render_unfolded(
    kind: MessageKind,
    params: &Map<String, Value>,
    branding: &Branding,
    locale: Locale,
) -> Result<String, TemplateError> {
    compose(kind, params, branding, locale).map(|(body, _)| body)
}

/// Parameters of `kind` as a typical request carries them (the values the tests render):
/// examples for documentation and `make bench`'s segment counts.
pub fn typical_params(kind: MessageKind) -> Map<String, Value> {
    let typical = match kind {
        MessageKind::BattleInvitation => serde_json::json!({
            "inviter_name": "Ada",
            "battle_topic": "Haiku",
            "invitation_link": "https://wordbattle.example/b/123",
        }),
        MessageKind::BattleResult => serde_json::json!({
            "battle_topic": "Haiku",
            "result_summary": "You won by 12 points",
            "result_link": "https://wordbattle.example/b/123/result",
        }),
        MessageKind::BattleReminder => serde_json::json!({
            "battle_topic": "Haiku",
            "time_remaining": "2 hours",
            "battle_link": "https://wordbattle.example/b/123",
        }),
        MessageKind::StreakAlert => serde_json::json!({
            "streak_count": 7,
            "action_link": "https://wordbattle.example/play",
        }),
        MessageKind::DirectMessage => serde_json::json!({
            "sender_name": "Grace",
            "preview": "Rematch tonight?",
            "link": "https://wordbattle.example/m/9",
        }),
        MessageKind::AchievementUnlock => serde_json::json!({
            "achievement_name": "Wordsmith",
            "link": "https://wordbattle.example/a/1",
        }),
        MessageKind::SecurityAlert => serde_json::json!({
            "summary": "New sign-in from Chrome on Windows",
            "link": "https://wordbattle.example/security",
        }),
        MessageKind::PhoneVerification => serde_json::json!({ "code": "123456" }),
    };
    match typical {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The locale's fixed texts that come from configuration.
struct Texts<'a> {
    stop_footer: &'a str,
    frequency: &'a str,
}

impl<'a> Texts<'a> {
    fn of(branding: &'a Branding, locale: Locale) -> Self {
        match locale {
            Locale::En => Self {
                stop_footer: &branding.stop_footer,
                frequency: &branding.frequency,
            },
            Locale::Es => Self {
                stop_footer: &branding.stop_footer_es,
                frequency: &branding.frequency_es,
            },
        }
    }
}

fn english_body(
    body: &mut String,
    kind: MessageKind,
    args: &Args<'_>,
    code_range: &mut Option<Range<usize>>,
) {
    match kind {
        MessageKind::BattleInvitation => {
            body.push_str(args.get("inviter_name"));
            body.push_str(" challenged you to a battle on \"");
            body.push_str(args.get("battle_topic"));
            body.push_str("\". Join: ");
            body.push_str(args.get("invitation_link"));
        }
        MessageKind::BattleResult => {
            body.push_str("your battle on \"");
            body.push_str(args.get("battle_topic"));
            body.push_str("\" is over. ");
            push_sentence(body, args.get("result_summary"));
            body.push_str(" See results: ");
            body.push_str(args.get("result_link"));
        }
        MessageKind::BattleReminder => {
            body.push_str(args.get("time_remaining"));
            body.push_str(" left in your battle on \"");
            body.push_str(args.get("battle_topic"));
            body.push_str("\". Play now: ");
            body.push_str(args.get("battle_link"));
        }
        MessageKind::StreakAlert => {
            body.push_str("your ");
            body.push_str(args.get("streak_count"));
            body.push_str("-day streak is waiting. Play today to keep it alive: ");
            body.push_str(args.get("action_link"));
        }
        MessageKind::DirectMessage => {
            body.push_str(args.get("sender_name"));
            body.push_str(" sent you a message: \"");
            body.push_str(args.get("preview"));
            body.push_str("\" Reply: ");
            body.push_str(args.get("link"));
        }
        MessageKind::AchievementUnlock => {
            body.push_str("you unlocked the \"");
            body.push_str(args.get("achievement_name"));
            body.push_str("\" achievement. See it: ");
            body.push_str(args.get("link"));
        }
        MessageKind::SecurityAlert => {
            body.push_str("security alert. ");
            push_sentence(body, args.get("summary"));
            body.push_str(" If this wasn't you, secure your account: ");
            body.push_str(args.get("link"));
        }
        MessageKind::PhoneVerification => {
            body.push_str("your verification code is ");
            push_code(body, args, code_range);
            body.push_str(". It expires in ");
            // Writing to a String cannot fail.
            let _ = write!(body, "{VERIFICATION_VALID_MINUTES}");
            body.push_str(" minutes. Never share it.");
        }
    }
}

/// The Spanish bodies, in the informal register the app uses (`tú`), written so the fold to
/// GSM-7 changes no word's meaning.
fn spanish_body(
    body: &mut String,
    kind: MessageKind,
    args: &Args<'_>,
    code_range: &mut Option<Range<usize>>,
) {
    match kind {
        MessageKind::BattleInvitation => {
            body.push_str(args.get("inviter_name"));
            body.push_str(" te invita a una batalla sobre \"");
            body.push_str(args.get("battle_topic"));
            body.push_str("\". Entra: ");
            body.push_str(args.get("invitation_link"));
        }
        MessageKind::BattleResult => {
            body.push_str("tu batalla sobre \"");
            body.push_str(args.get("battle_topic"));
            body.push_str("\" ha terminado. ");
            push_sentence(body, args.get("result_summary"));
            body.push_str(" Resultados: ");
            body.push_str(args.get("result_link"));
        }
        MessageKind::BattleReminder => {
            body.push_str("quedan ");
            body.push_str(args.get("time_remaining"));
            body.push_str(" en tu batalla sobre \"");
            body.push_str(args.get("battle_topic"));
            body.push_str("\". Juega ya: ");
            body.push_str(args.get("battle_link"));
        }
        MessageKind::StreakAlert => {
            body.push_str("tu racha de ");
            body.push_str(args.get("streak_count"));
            body.push_str(" días te espera. Juega hoy para mantenerla: ");
            body.push_str(args.get("action_link"));
        }
        MessageKind::DirectMessage => {
            body.push_str(args.get("sender_name"));
            body.push_str(" te envió un mensaje: \"");
            body.push_str(args.get("preview"));
            body.push_str("\" Responde: ");
            body.push_str(args.get("link"));
        }
        MessageKind::AchievementUnlock => {
            body.push_str("desbloqueaste el logro \"");
            body.push_str(args.get("achievement_name"));
            body.push_str("\". Míralo: ");
            body.push_str(args.get("link"));
        }
        MessageKind::SecurityAlert => {
            body.push_str("alerta de seguridad. ");
            push_sentence(body, args.get("summary"));
            body.push_str(" Si no reconoces esta actividad, protege tu cuenta: ");
            body.push_str(args.get("link"));
        }
        MessageKind::PhoneVerification => {
            body.push_str("tu código de verificación es ");
            push_code(body, args, code_range);
            body.push_str(". Vence en ");
            let _ = write!(body, "{VERIFICATION_VALID_MINUTES}");
            body.push_str(" minutos. No lo compartas con nadie.");
        }
    }
}

/// Appends the verification code and notes where it is, for the log's redaction.
fn push_code(body: &mut String, args: &Args<'_>, code_range: &mut Option<Range<usize>>) {
    let start = body.len();
    body.push_str(args.get("code"));
    *code_range = Some(start..body.len());
}

/// Replaces the code at `range`, and any other copy of it (say, digits in the brand name),
/// so the log never holds the code.
fn redact(body: &str, range: Range<usize>) -> String {
    let code = &body[range.clone()];
    let mut out = String::with_capacity(body.len());
    out.push_str(&body[..range.start]);
    out.push_str(REDACTED_CODE);
    out.push_str(&body[range.end..]);
    if !code.is_empty() && out.contains(code) {
        out = out.replace(code, REDACTED_CODE);
    }
    out
}

/// Checks one parameter against its spec and returns the text that goes into the body.
fn validate<'a>(spec: &ParamSpec, value: &'a Value) -> Result<Cow<'a, str>, TemplateError> {
    let name = spec.name;
    let invalid = |reason| TemplateError::InvalidParam { name, reason };
    match spec.kind {
        ParamType::Text { max_chars } => {
            let raw = value.as_str().ok_or(TemplateError::WrongType {
                name,
                expected: "string",
            })?;
            let text = sanitize_text(raw, max_chars);
            if text.is_empty() {
                return Err(invalid("is empty"));
            }
            Ok(Cow::Owned(text))
        }
        ParamType::Link { max_chars } => {
            let link = value.as_str().ok_or(TemplateError::WrongType {
                name,
                expected: "string",
            })?;
            check_link(link, max_chars).map_err(invalid)?;
            Ok(Cow::Borrowed(link))
        }
        ParamType::Integer => {
            let n = match value {
                Value::Number(n) => n
                    .as_u64()
                    .ok_or_else(|| invalid("must be a non-negative integer"))?,
                Value::String(s) => {
                    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(invalid("must be a string of 1 to 9 digits"));
                    }
                    s.parse()
                        .map_err(|_| invalid("must be a string of 1 to 9 digits"))?
                }
                _ => {
                    return Err(TemplateError::WrongType {
                        name,
                        expected: "integer",
                    });
                }
            };
            if n > MAX_INTEGER {
                return Err(invalid("must be at most 999999999"));
            }
            Ok(Cow::Owned(n.to_string()))
        }
        ParamType::Code => {
            // A string, not a number: a JSON number would lose leading zeros.
            let code = value.as_str().ok_or(TemplateError::WrongType {
                name,
                expected: "string",
            })?;
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("must be exactly 6 digits"));
            }
            Ok(Cow::Borrowed(code))
        }
    }
}

/// Accepts an absolute `http(s)` URL with a plain host name. Links are never truncated (a cut
/// link is a broken link), so an overlong one is refused. User info (`https://brand@evil.example`)
/// and non-ASCII hosts are refused: both are phishing tricks, and a link in an SMS from us must
/// go where it appears to go. Non-ASCII paths must be percent-encoded.
fn check_link(link: &str, max_chars: usize) -> Result<(), &'static str> {
    if link.len() > max_chars {
        return Err("is longer than allowed");
    }
    if !link.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be a URL without spaces, control or non-ASCII characters");
    }
    let scheme_len = if starts_with_ignore_case(link, "https://") {
        8
    } else if starts_with_ignore_case(link, "http://") {
        7
    } else {
        return Err("must start with https:// or http://");
    };
    let rest = &link[scheme_len..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not contain user info");
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("has an invalid port");
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
        return Err("must have a valid host name");
    }
    Ok(())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Appends `text` as a sentence: adds a full stop unless it already ends like one.
fn push_sentence(body: &mut String, text: &str) {
    body.push_str(text);
    if !text.ends_with(['.', '!', '?']) {
        body.push('.');
    }
}

/// Appends configured text (brand, footer), folded so a curly apostrophe in configuration does
/// not turn every message into UCS-2.
fn push_folded(body: &mut String, text: &str) {
    body.push_str(&segments::fold_to_gsm(text));
}

/// Bidirectional-text controls: invisible, and able to make text display in a different order
/// than it is stored (a classic way to disguise a link or a code).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Makes user text safe to put inside a one-line template slot.
///
/// Folds typographic characters (the table of [`segments::fold_to_gsm`]), turns every line break,
/// tab and other whitespace into a single space (so the text can never start a line of its
/// own), drops control and bidi characters, trims, and caps the result at `max_chars` characters,
/// ending with `...` when it was cut. Work is bounded by `max_chars`, not by the input length.
pub fn sanitize_text(input: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(input.len().min(max_chars.saturating_mul(4)) + 4);
    let mut chars = 0usize;
    let mut pending_space = false;
    let mut cut = false;
    'input: for c in input.chars() {
        let mut buf = [0u8; 4];
        let folded = segments::fold_to_gsm(c.encode_utf8(&mut buf));
        for c in folded.chars() {
            if c.is_whitespace() {
                pending_space = !out.is_empty();
                continue;
            }
            if c.is_control() || is_bidi_control(c) {
                continue;
            }
            let needed = if pending_space { 2 } else { 1 };
            if chars + needed > max_chars {
                cut = true;
                break 'input;
            }
            if pending_space {
                out.push(' ');
                chars += 1;
                pending_space = false;
            }
            out.push(c);
            chars += 1;
        }
    }
    // Below 3 characters there is no room for an ellipsis: the text is simply cut.
    if cut && max_chars >= 3 {
        // Make room for the ellipsis, then drop a dangling space before it.
        if let Some((end, _)) = out.char_indices().nth(max_chars - 3) {
            out.truncate(end);
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push_str("...");
    }
    out
}

/// The HELP/INFO reply (DESIGN §8): who we are, how often we text, cost, how to stop, where to
/// get help (the support URL, and the e-mail and phone when configured). Carriers require
/// each of these.
pub fn help_text(branding: &Branding, locale: Locale) -> String {
    let texts = Texts::of(branding, locale);
    let mut text = String::with_capacity(200);
    push_folded(&mut text, &branding.brand_name);
    text.push_str(match locale {
        Locale::En => " alerts: ",
        Locale::Es => " alertas: ",
    });
    push_sentence(&mut text, &segments::fold_to_gsm(texts.frequency));
    text.push_str(match locale {
        Locale::En => " Msg & data rates may apply. Reply STOP to cancel. Help: ",
        Locale::Es => {
            " Pueden aplicarse tarifas de mensajes y datos. Responde STOP para cancelar. Ayuda: "
        }
    });
    text.push_str(&branding.support_url);
    for contact in [&branding.support_email, &branding.support_phone]
        .into_iter()
        .flatten()
    {
        text.push_str(", ");
        text.push_str(contact);
    }
    localized(text, locale)
}

/// The single reply to an opt-out: confirms it and says how to undo it. Carrier rules forbid
/// any marketing here, so it stays fixed.
pub fn opt_out_confirmation(branding: &Branding, locale: Locale) -> String {
    let mut text = String::with_capacity(120);
    match locale {
        Locale::En => {
            text.push_str("You're unsubscribed from ");
            push_folded(&mut text, &branding.brand_name);
            text.push_str(" texts. No more messages will be sent. Reply START to resubscribe.");
        }
        Locale::Es => {
            text.push_str("Cancelaste los mensajes de ");
            push_folded(&mut text, &branding.brand_name);
            text.push_str(
                ". No te enviaremos otros mensajes. Responde START para volver a suscribirte.",
            );
        }
    }
    localized(text, locale)
}

/// The confirmation of an opt-in (web, settings, verification binding a grant, START): CTIA
/// expects program name, message frequency, cost, and how to get help or stop.
pub fn opt_in_confirmation(branding: &Branding, locale: Locale) -> String {
    let texts = Texts::of(branding, locale);
    let mut text = String::with_capacity(180);
    push_folded(&mut text, &branding.brand_name);
    text.push_str(match locale {
        Locale::En => ": you're subscribed to text alerts. ",
        Locale::Es => ": te suscribiste a las alertas por SMS. ",
    });
    push_sentence(&mut text, &segments::fold_to_gsm(texts.frequency));
    text.push_str(match locale {
        Locale::En => " Msg & data rates may apply. Reply HELP for help, STOP to cancel.",
        Locale::Es => " Pueden aplicarse tarifas de mensajes y datos. Responde AYUDA para ayuda, STOP para cancelar.",
    });
    localized(text, locale)
}

/// Spanish text folded to GSM-7 (see [`render_in`]).
fn localized(text: String, locale: Locale) -> String {
    match locale {
        Locale::En => text,
        Locale::Es => match segments::fold_accents(&text) {
            Cow::Owned(folded) => folded,
            Cow::Borrowed(_) => text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::Encoding;
    use proptest::prelude::*;
    use serde_json::json;

    const MAX: u32 = 3;

    fn branding() -> Branding {
        Branding {
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

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn valid_params(kind: MessageKind) -> Map<String, Value> {
        typical_params(kind)
    }

    fn render_ok(kind: MessageKind, p: &Map<String, Value>) -> RenderedMessage {
        render(kind, p, &branding(), MAX).unwrap_or_else(|e| panic!("{kind}: {e}"))
    }

    #[test]
    fn every_kind_renders_with_the_expected_text() {
        let expected = [
            (
                MessageKind::BattleInvitation,
                "WordBattle: Ada challenged you to a battle on \"Haiku\". Join: https://wordbattle.example/b/123\nReply STOP to unsubscribe.",
            ),
            (
                MessageKind::BattleResult,
                "WordBattle: your battle on \"Haiku\" is over. You won by 12 points. See results: https://wordbattle.example/b/123/result\nReply STOP to unsubscribe.",
            ),
            (
                MessageKind::BattleReminder,
                "WordBattle: 2 hours left in your battle on \"Haiku\". Play now: https://wordbattle.example/b/123\nReply STOP to unsubscribe.",
            ),
            (
                MessageKind::StreakAlert,
                "WordBattle: your 7-day streak is waiting. Play today to keep it alive: https://wordbattle.example/play\nReply STOP to unsubscribe.",
            ),
            (
                MessageKind::DirectMessage,
                "WordBattle: Grace sent you a message: \"Rematch tonight?\" Reply: https://wordbattle.example/m/9\nReply STOP to unsubscribe.",
            ),
            (
                MessageKind::AchievementUnlock,
                "WordBattle: you unlocked the \"Wordsmith\" achievement. See it: https://wordbattle.example/a/1\nReply STOP to unsubscribe.",
            ),
            (
                MessageKind::SecurityAlert,
                "WordBattle: security alert. New sign-in from Chrome on Windows. If this wasn't you, secure your account: https://wordbattle.example/security",
            ),
            (
                MessageKind::PhoneVerification,
                "WordBattle: your verification code is 123456. It expires in 10 minutes. Never share it.",
            ),
        ];
        assert_eq!(expected.len(), MessageKind::ALL.len());
        for (kind, body) in expected {
            let m = render_ok(kind, &valid_params(kind));
            assert_eq!(m.body, body, "{kind}");
            assert_eq!(m.segments, segments::count(body), "{kind}");
            assert_eq!(m.segments.encoding, Encoding::Gsm7, "{kind}");
        }
    }

    #[test]
    fn the_unfolded_body_keeps_the_accents_the_sent_one_folds() {
        let kind = MessageKind::StreakAlert;
        let p = valid_params(kind);
        let raw = render_unfolded(kind, &p, &branding(), Locale::Es).unwrap();
        let sent = render_in(kind, &p, &branding(), MAX, Locale::Es).unwrap();
        assert!(raw.contains("días"), "{raw}");
        assert_eq!(segments::fold_accents(&raw), sent.body);
        assert_eq!(segments::count(&raw).encoding, Encoding::Ucs2);
        assert_eq!(sent.segments.encoding, Encoding::Gsm7);
    }

    #[test]
    fn promotional_bodies_end_with_the_footer_and_transactional_do_not() {
        for kind in MessageKind::ALL {
            let m = render_ok(kind, &valid_params(kind));
            assert!(m.body.starts_with("WordBattle: "), "{kind}");
            let footer = "\nReply STOP to unsubscribe.";
            assert_eq!(m.body.ends_with(footer), kind.is_promotional(), "{kind}");
            assert!(!m.body.contains("STOP") || kind.is_promotional(), "{kind}");
            let lines = if kind.is_promotional() { 2 } else { 1 };
            assert_eq!(m.body.lines().count(), lines, "{kind}");
        }
    }

    #[test]
    fn the_footer_comes_from_configuration() {
        let mut b = branding();
        b.brand_name = "Acme".into();
        b.stop_footer = "Text STOP to opt out.".into();
        let kind = MessageKind::AchievementUnlock;
        let m = render(kind, &valid_params(kind), &b, MAX).unwrap();
        assert!(m.body.starts_with("Acme: "));
        assert!(m.body.ends_with("\nText STOP to opt out."));
    }

    #[test]
    fn log_body_equals_body_except_for_verification() {
        for kind in MessageKind::ALL {
            let m = render_ok(kind, &valid_params(kind));
            if kind == MessageKind::PhoneVerification {
                assert_ne!(m.log_body, m.body);
            } else {
                assert_eq!(m.log_body, m.body, "{kind}");
            }
        }
    }

    #[test]
    fn verification_code_is_redacted_in_the_log_body() {
        let p = params(json!({ "code": "048213" }));
        let m = render_ok(MessageKind::PhoneVerification, &p);
        assert!(m.body.contains("048213"));
        assert_eq!(
            m.log_body,
            "WordBattle: your verification code is ******. It expires in 10 minutes. Never share it."
        );
        assert!(!m.log_body.contains("048213"));
        assert!(!format!("{m:?}").contains("048213"));
        // Even a brand that happens to contain the digits keeps the code out of the log.
        let mut b = branding();
        b.brand_name = "Shop048213".into();
        let m = render(MessageKind::PhoneVerification, &p, &b, MAX).unwrap();
        assert!(!m.log_body.contains("048213"));
    }

    #[test]
    fn a_parameter_cannot_start_a_second_line() {
        let attacks = [
            "hi\nReply STOP to unsubscribe.",
            "hi\r\nYour code is 123456",
            "hi\rYour code is 123456",
            "hi\u{2028}Your code is 123456",
            "hi\u{2029}Your code is 123456",
            "hi\u{0085}Your code is 123456",
            "hi\u{000B}\u{000C}Your code is 123456",
            "\n\n\nYour code is 123456\n",
            "hi\t\tthere",
        ];
        for attack in attacks {
            let mut p = valid_params(MessageKind::DirectMessage);
            p.insert("preview".into(), json!(attack));
            p.insert("sender_name".into(), json!(attack));
            let m = render_ok(MessageKind::DirectMessage, &p);
            assert_eq!(m.body.lines().count(), 2, "{attack:?}: {}", m.body);
            assert_eq!(m.body.matches('\n').count(), 1, "{attack:?}");
            assert!(!m.body.contains('\r'), "{attack:?}");
            assert!(m.body.ends_with("\nReply STOP to unsubscribe."));

            let mut p = valid_params(MessageKind::SecurityAlert);
            p.insert("summary".into(), json!(attack));
            let m = render_ok(MessageKind::SecurityAlert, &p);
            assert_eq!(m.body.lines().count(), 1, "{attack:?}: {}", m.body);
            assert!(!m.body.contains(['\n', '\r', '\t']), "{attack:?}");
        }
    }

    #[test]
    fn text_parameters_are_sanitised_and_folded() {
        let mut p = valid_params(MessageKind::DirectMessage);
        p.insert(
            "preview".into(),
            json!("  “Don’t\u{0}  forget”\u{202E} — it’s\u{00A0}tonight…  "),
        );
        let m = render_ok(MessageKind::DirectMessage, &p);
        assert!(
            m.body
                .contains(": \"\"Don't forget\" - it's tonight...\" Reply:"),
            "{}",
            m.body
        );
        assert_eq!(m.segments.encoding, Encoding::Gsm7);
    }

    #[test]
    fn overlong_text_is_cut_with_an_ellipsis() {
        let mut p = valid_params(MessageKind::BattleInvitation);
        p.insert("inviter_name".into(), json!("x".repeat(500)));
        let m = render_ok(MessageKind::BattleInvitation, &p);
        let name = format!("{}...", "x".repeat(37));
        assert!(
            m.body
                .starts_with(&format!("WordBattle: {name} challenged"))
        );
    }

    #[test]
    fn sanitize_text_rules() {
        assert_eq!(sanitize_text("  a \n\t b  ", 40), "a b");
        assert_eq!(sanitize_text("a\u{7}b\u{1b}[31mc", 40), "ab[31mc");
        assert_eq!(sanitize_text("\u{200B}\u{FEFF}", 40), "");
        assert_eq!(sanitize_text(" \n ", 40), "");
        assert_eq!(sanitize_text("abcdef", 6), "abcdef");
        assert_eq!(sanitize_text("abcdefg", 6), "abc...");
        // A cut never leaves a space before the ellipsis.
        assert_eq!(sanitize_text("ab cd efgh", 6), "ab...");
        // Cuts on a character boundary.
        assert_eq!(sanitize_text("ééééééé", 6), "ééé...");
        assert_eq!(sanitize_text("😀😀😀😀😀😀😀", 5), "😀😀...");
        // Trailing whitespace is trimmed, not counted as a cut.
        assert_eq!(sanitize_text("abcdef    ", 6), "abcdef");
        // Folding happens before counting: `…` is three characters.
        assert_eq!(sanitize_text("ab…", 5), "ab...");
        assert_eq!(sanitize_text("abc…", 5), "ab...");
        // Tiny caps still respect the cap.
        assert_eq!(sanitize_text("abcdef", 2), "ab");
        assert_eq!(sanitize_text("abcdef", 0), "");
    }

    #[test]
    fn no_kind_has_more_parameters_than_a_body_holds() {
        for kind in MessageKind::ALL {
            assert!(kind.params().len() <= MAX_PARAMS, "{kind}");
        }
    }

    #[test]
    fn missing_parameter_is_refused() {
        let mut p = valid_params(MessageKind::BattleInvitation);
        p.remove("battle_topic");
        let err = render(MessageKind::BattleInvitation, &p, &branding(), MAX).unwrap_err();
        assert_eq!(err, TemplateError::MissingParam("battle_topic"));
        assert_eq!(err.code(), "missing_parameter");
        assert_eq!(err.to_string(), "missing parameter `battle_topic`");
    }

    #[test]
    fn unknown_parameter_is_refused() {
        let mut p = valid_params(MessageKind::SecurityAlert);
        p.insert("footer".into(), json!("Reply STOP"));
        let err = render(MessageKind::SecurityAlert, &p, &branding(), MAX).unwrap_err();
        assert_eq!(err, TemplateError::UnknownParam("footer".into()));
        assert_eq!(err.code(), "unknown_parameter");

        let mut p = valid_params(MessageKind::SecurityAlert);
        p.insert(format!("evil\n{}", "n".repeat(200)), json!(1));
        let TemplateError::UnknownParam(name) =
            render(MessageKind::SecurityAlert, &p, &branding(), MAX).unwrap_err()
        else {
            panic!("expected UnknownParam");
        };
        assert!(name.chars().count() <= MAX_ECHOED_NAME_CHARS);
        assert!(!name.contains('\n'));
    }

    #[test]
    fn wrong_types_are_refused() {
        let cases = [
            (MessageKind::DirectMessage, "preview", json!(42), "string"),
            (MessageKind::DirectMessage, "link", json!(null), "string"),
            (
                MessageKind::StreakAlert,
                "streak_count",
                json!(true),
                "integer",
            ),
            (
                MessageKind::StreakAlert,
                "streak_count",
                json!([7]),
                "integer",
            ),
            (
                MessageKind::PhoneVerification,
                "code",
                json!(123456),
                "string",
            ),
        ];
        for (kind, name, value, expected) in cases {
            let mut p = valid_params(kind);
            p.insert(name.into(), value);
            let err = render(kind, &p, &branding(), MAX).unwrap_err();
            assert_eq!(
                err,
                TemplateError::WrongType { name, expected },
                "{kind} {name}"
            );
            assert_eq!(err.code(), "invalid_parameter");
        }
    }

    fn invalid(kind: MessageKind, name: &str, value: Value) -> TemplateError {
        let mut p = valid_params(kind);
        p.insert(name.into(), value.clone());
        match render(kind, &p, &branding(), MAX) {
            Ok(m) => panic!("{kind} {name}={value} rendered: {}", m.body),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_links_are_refused() {
        let long = format!("https://wordbattle.example/{}", "a".repeat(200));
        for link in [
            "",
            "wordbattle.example/b/1",
            "ftp://wordbattle.example/b/1",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "https://wordbattle.example/a b",
            "https://wordbattle.example/\nReply STOP",
            "https://wordbattle.example/é",
            "https://wördbattle.example/",
            "https://wordbattle.example@evil.example/",
            "https://user:pw@wordbattle.example/",
            "https://wordbattle..example/",
            "https://-bad.example/",
            "https://wordbattle.example:/",
            "https://wordbattle.example:99999x/",
            long.as_str(),
        ] {
            let err = invalid(
                MessageKind::BattleInvitation,
                "invitation_link",
                json!(link),
            );
            assert!(
                matches!(
                    err,
                    TemplateError::InvalidParam {
                        name: "invitation_link",
                        ..
                    }
                ),
                "{link:?}: {err:?}"
            );
            assert_eq!(err.code(), "invalid_parameter");
        }
    }

    #[test]
    fn good_links_are_kept_verbatim() {
        for link in [
            "https://wordbattle.example",
            "http://localhost:9000/b/1",
            "HTTPS://WordBattle.example/b/1?utm=sms&x=%C3%A9#top",
            "https://a.b.c.example/path/",
        ] {
            let mut p = valid_params(MessageKind::AchievementUnlock);
            p.insert("link".into(), json!(link));
            let m = render_ok(MessageKind::AchievementUnlock, &p);
            assert!(m.body.contains(&format!("See it: {link}\n")), "{}", m.body);
        }
    }

    #[test]
    fn integers_accept_numbers_and_digit_strings() {
        for (value, shown) in [
            (json!(0), "0"),
            (json!(7), "7"),
            (json!("42"), "42"),
            (json!("007"), "7"),
            (json!(999_999_999), "999999999"),
        ] {
            let mut p = valid_params(MessageKind::StreakAlert);
            p.insert("streak_count".into(), value);
            let m = render_ok(MessageKind::StreakAlert, &p);
            assert!(
                m.body.contains(&format!("your {shown}-day streak")),
                "{}",
                m.body
            );
        }
        for value in [
            json!(-1),
            json!(1.5),
            json!(1_000_000_000u64),
            json!(""),
            json!("1234567890"),
            json!("12a"),
            json!("-3"),
            json!(" 3"),
        ] {
            let err = invalid(MessageKind::StreakAlert, "streak_count", value);
            assert!(matches!(
                err,
                TemplateError::InvalidParam {
                    name: "streak_count",
                    ..
                }
            ));
        }
    }

    #[test]
    fn codes_are_exactly_six_digits() {
        for code in ["12345", "1234567", "12345a", "１２３４５６", " 123456", ""] {
            let err = invalid(MessageKind::PhoneVerification, "code", json!(code));
            assert!(
                matches!(err, TemplateError::InvalidParam { name: "code", .. }),
                "{code:?}"
            );
        }
    }

    #[test]
    fn empty_text_after_sanitising_is_refused() {
        for text in ["", "   ", "\n\t", "\u{0}\u{1}", "\u{200B}"] {
            let err = invalid(
                MessageKind::AchievementUnlock,
                "achievement_name",
                json!(text),
            );
            assert_eq!(
                err,
                TemplateError::InvalidParam {
                    name: "achievement_name",
                    reason: "is empty"
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn bodies_over_max_segments_are_refused() {
        let mut p = valid_params(MessageKind::DirectMessage);
        // Emoji force UCS-2: 80 of them are 160 units, three parts with the rest of the body.
        p.insert("preview".into(), json!("😀".repeat(80)));
        let err = render(MessageKind::DirectMessage, &p, &branding(), 2).unwrap_err();
        let TemplateError::TooLong { segments, max } = err else {
            panic!("expected TooLong, got {err:?}");
        };
        assert!(segments > 2);
        assert_eq!(max, 2);
        assert_eq!(err.code(), "body_too_long");
        let m = render(MessageKind::DirectMessage, &p, &branding(), segments).unwrap();
        assert_eq!(m.segments.segments, segments);
        assert_eq!(m.segments.encoding, Encoding::Ucs2);

        let kind = MessageKind::BattleInvitation;
        let m = render_ok(kind, &valid_params(kind));
        assert_eq!(m.segments.segments, 1);
        assert!(render(kind, &valid_params(kind), &branding(), 0).is_err());
    }

    #[test]
    fn spanish_bodies_are_gsm7_and_keep_their_words() {
        let b = branding();
        for kind in MessageKind::ALL {
            let en = render_in(kind, &valid_params(kind), &b, 3, Locale::En).unwrap();
            let es = render_in(kind, &valid_params(kind), &b, 3, Locale::Es).unwrap();
            assert_ne!(en.body, es.body, "{kind:?} has a Spanish template");
            assert_eq!(
                es.segments.encoding,
                Encoding::Gsm7,
                "{kind:?}: {}",
                es.body
            );
            assert!(es.segments.segments <= 2, "{kind:?}: {}", es.body);
            assert!(!es.body.contains(['á', 'í', 'ó', 'ú']), "{}", es.body);
            if kind.is_promotional() {
                assert!(
                    es.body.ends_with("\nResponde STOP para cancelar."),
                    "{}",
                    es.body
                );
            }
        }
        let es = render_in(
            MessageKind::StreakAlert,
            &valid_params(MessageKind::StreakAlert),
            &b,
            3,
            Locale::Es,
        )
        .unwrap();
        assert_eq!(
            es.body,
            "WordBattle: tu racha de 7 dias te espera. Juega hoy para mantenerla: https://wordbattle.example/play\nResponde STOP para cancelar."
        );
        let code = render_in(
            MessageKind::PhoneVerification,
            &params(json!({"code": "123456"})),
            &b,
            3,
            Locale::Es,
        )
        .unwrap();
        assert_eq!(
            code.body,
            "WordBattle: tu codigo de verificacion es 123456. Vence en 10 minutos. No lo compartas con nadie."
        );
        assert!(code.log_body.contains(REDACTED_CODE) && !code.log_body.contains("123456"));
        // Parameters are folded too: a Spanish name with an acute accent costs no UCS-2.
        let mut p = valid_params(MessageKind::BattleInvitation);
        p.insert("inviter_name".into(), json!("María"));
        let es = render_in(MessageKind::BattleInvitation, &p, &b, 3, Locale::Es).unwrap();
        assert!(
            es.body.starts_with("WordBattle: Maria te invita"),
            "{}",
            es.body
        );
        assert_eq!(es.segments.encoding, Encoding::Gsm7);
    }

    #[test]
    fn spanish_replies_carry_what_carriers_require() {
        let mut b = branding();
        b.support_email = Some("help@example.com".into());
        let help = help_text(&b, Locale::Es);
        assert_eq!(
            help,
            "WordBattle alertas: La frecuencia de mensajes varia. Pueden aplicarse tarifas de mensajes y datos. Responde STOP para cancelar. Ayuda: https://example.com/help/sms, help@example.com"
        );
        let opt_in = opt_in_confirmation(&b, Locale::Es);
        for part in [
            "WordBattle",
            "frecuencia",
            "tarifas de mensajes y datos",
            "AYUDA",
            "STOP",
        ] {
            assert!(opt_in.contains(part), "{part}: {opt_in}");
        }
        let opt_out = opt_out_confirmation(&b, Locale::Es);
        assert!(
            opt_out.contains("START") && opt_out.contains("WordBattle"),
            "{opt_out}"
        );
        for text in [help, opt_in, opt_out] {
            let count = segments::count(&text);
            assert_eq!(count.encoding, Encoding::Gsm7, "{text}");
            assert!(count.segments <= 2, "{text}");
        }
    }

    #[test]
    fn help_names_every_configured_contact() {
        let mut b = branding();
        b.support_email = Some("help@example.com".into());
        b.support_phone = Some("+1 800 555 0100".into());
        assert!(
            help_text(&b, Locale::En)
                .ends_with("Help: https://example.com/help/sms, help@example.com, +1 800 555 0100")
        );
    }

    #[test]
    fn fixed_replies_carry_what_carriers_require() {
        let b = branding();
        let help = help_text(&b, Locale::En);
        assert_eq!(
            help,
            "WordBattle alerts: Msg frequency varies. Msg & data rates may apply. Reply STOP to cancel. Help: https://example.com/help/sms"
        );
        assert_eq!(segments::count(&help).encoding, Encoding::Gsm7);

        assert_eq!(
            opt_out_confirmation(&b, Locale::En),
            "You're unsubscribed from WordBattle texts. No more messages will be sent. Reply START to resubscribe."
        );
        let opt_in = opt_in_confirmation(&b, Locale::En);
        for part in [
            "WordBattle",
            "Msg frequency varies.",
            "Msg & data rates may apply.",
            "HELP",
            "STOP",
        ] {
            assert!(opt_in.contains(part), "{part}: {opt_in}");
        }
        for text in [help, opt_in, opt_out_confirmation(&b, Locale::En)] {
            assert_eq!(segments::count(&text).segments, 1, "{text}");
        }

        // A frequency that already ends with a full stop does not get a second one.
        let mut b = branding();
        b.frequency = "Up to 10 msgs/day.".into();
        b.brand_name = "Word’Battle".into();
        let help = help_text(&b, Locale::En);
        assert!(
            help.starts_with("Word'Battle alerts: Up to 10 msgs/day. Msg"),
            "{help}"
        );
    }

    fn arbitrary_params(kind: MessageKind, values: &[String]) -> Map<String, Value> {
        kind.params()
            .iter()
            .zip(values)
            .map(|(spec, v)| (spec.name.to_owned(), Value::String(v.clone())))
            .collect()
    }

    proptest! {
        #[test]
        fn render_never_panics_and_keeps_the_layout(
            kind_index in 0..MessageKind::ALL.len(),
            values in proptest::collection::vec(any::<String>(), MAX_PARAMS),
            max in 0u32..5,
        ) {
            let kind = MessageKind::ALL[kind_index];
            let p = arbitrary_params(kind, &values);
            if let Ok(m) = render(kind, &p, &branding(), max) {
                let lines = if kind.is_promotional() { 2 } else { 1 };
                prop_assert_eq!(m.body.lines().count(), lines);
                prop_assert!(!m.body.chars().any(|c| c.is_control() && c != '\n'));
                prop_assert!(m.segments.segments <= max);
                prop_assert!(m.body.starts_with("WordBattle: "));
            }
        }

        #[test]
        fn arbitrary_text_in_valid_requests_keeps_the_layout(
            kind_index in 0..MessageKind::ALL.len(),
            values in proptest::collection::vec(any::<String>(), MAX_PARAMS),
        ) {
            let kind = MessageKind::ALL[kind_index];
            let mut p = valid_params(kind);
            for (spec, value) in kind.params().iter().zip(values) {
                if matches!(spec.kind, ParamType::Text { .. }) {
                    p.insert(spec.name.to_owned(), Value::String(value));
                }
            }
            match render(kind, &p, &branding(), 10) {
                Ok(m) => {
                    let lines = if kind.is_promotional() { 2 } else { 1 };
                    prop_assert_eq!(m.body.lines().count(), lines);
                    prop_assert!(!m.body.chars().any(|c| c.is_control() && c != '\n'));
                    prop_assert_eq!(m.segments, segments::count(&m.body));
                    if kind != MessageKind::PhoneVerification {
                        prop_assert_eq!(&m.log_body, &m.body);
                    }
                }
                // Only a parameter that sanitises to nothing may fail: the caps keep every
                // body within 10 segments.
                Err(e) => prop_assert!(
                    matches!(e, TemplateError::InvalidParam { reason: "is empty", .. }),
                    "{e:?}"
                ),
            }
        }

        #[test]
        fn render_never_panics_on_hostile_text(
            text in "[\\PC\\s\\n\\r\u{2028}\u{85}\u{202E}…“”—]{0,200}",
        ) {
            let mut p = valid_params(MessageKind::DirectMessage);
            p.insert("preview".into(), Value::String(text.clone()));
            p.insert("sender_name".into(), Value::String(text));
            if let Ok(m) = render(MessageKind::DirectMessage, &p, &branding(), 10) {
                prop_assert_eq!(m.body.lines().count(), 2);
                prop_assert!(m.body.ends_with("\nReply STOP to unsubscribe."));
            }
        }

        #[test]
        fn sanitize_text_respects_its_cap(text in any::<String>(), max in 0usize..100) {
            let s = sanitize_text(&text, max);
            prop_assert!(s.chars().count() <= max);
            prop_assert!(!s.contains(['\n', '\r', '\t']));
            prop_assert_eq!(s.trim(), s.as_str());
            prop_assert!(!s.contains("  "));
        }

        /// Sanitised text is a fixed point: sanitising it again (with the same cap or a larger
        /// one) changes nothing, and it is GSM-7 whenever the input only held GSM-7 and
        /// typographic characters.
        #[test]
        fn sanitize_text_is_idempotent(
            text in prop_oneof![
                any::<String>(),
                "[\\PC\\s\\n\\r\\t\u{2028}\u{85}\u{200B}\u{202E}\u{FEFF}…“”’—]{0,120}",
            ],
            max in 0usize..100,
            more in 0usize..10,
        ) {
            let once = sanitize_text(&text, max);
            prop_assert_eq!(&sanitize_text(&once, max), &once);
            prop_assert_eq!(&sanitize_text(&once, max + more), &once);
            if segments::is_gsm7(&segments::fold_to_gsm(&text)) {
                prop_assert!(segments::is_gsm7(&once), "{once:?}");
            }
        }

        /// Unknown parameter names are echoed only sanitised and capped.
        #[test]
        fn unknown_parameter_names_are_sanitised(name in any::<String>(), value in any::<String>()) {
            let mut p = valid_params(MessageKind::SecurityAlert);
            p.insert(name, Value::String(value));
            if let Err(TemplateError::UnknownParam(echoed)) =
                render(MessageKind::SecurityAlert, &p, &branding(), 10)
            {
                prop_assert!(echoed.chars().count() <= MAX_ECHOED_NAME_CHARS);
                prop_assert!(!echoed.chars().any(char::is_control));
                prop_assert_eq!(sanitize_text(&echoed, MAX_ECHOED_NAME_CHARS), echoed);
            }
        }
    }
}
