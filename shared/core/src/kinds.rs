//! Message kinds (DESIGN §3): class, preference toggle and required parameters of each.

use serde::{Deserialize, Serialize};

/// What a message is about. Serialized in `snake_case`, as in the SQS contract (§6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    BattleInvitation,
    BattleResult,
    BattleReminder,
    StreakAlert,
    DirectMessage,
    AchievementUnlock,
    SecurityAlert,
    PhoneVerification,
}

/// Promotional messages need the master switch, a category toggle and quiet hours;
/// transactional ones only consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    Promotional,
    Transactional,
}

/// The per-category preference toggles of promotional kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    BattleInvitations,
    BattleResults,
    BattleReminders,
    StreakAlerts,
    DirectMessages,
    Achievements,
}

/// How a parameter is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Free text shown to the user, capped at `max_chars` after sanitising.
    Text { max_chars: usize },
    /// An `https://` (or `http://`) link, capped at `max_chars`.
    Link { max_chars: usize },
    /// A non-negative integer (JSON number or a string of digits).
    Integer,
    /// A 6-digit verification code.
    Code,
}

/// One required parameter of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamType,
}

const NAME: ParamType = ParamType::Text { max_chars: 40 };
const TOPIC: ParamType = ParamType::Text { max_chars: 60 };
const SHORT: ParamType = ParamType::Text { max_chars: 40 };
const PREVIEW: ParamType = ParamType::Text { max_chars: 80 };
const LINK: ParamType = ParamType::Link { max_chars: 200 };

const fn p(name: &'static str, kind: ParamType) -> ParamSpec {
    ParamSpec { name, kind }
}

impl MessageKind {
    pub const ALL: [MessageKind; 8] = [
        MessageKind::BattleInvitation,
        MessageKind::BattleResult,
        MessageKind::BattleReminder,
        MessageKind::StreakAlert,
        MessageKind::DirectMessage,
        MessageKind::AchievementUnlock,
        MessageKind::SecurityAlert,
        MessageKind::PhoneVerification,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::BattleInvitation => "battle_invitation",
            MessageKind::BattleResult => "battle_result",
            MessageKind::BattleReminder => "battle_reminder",
            MessageKind::StreakAlert => "streak_alert",
            MessageKind::DirectMessage => "direct_message",
            MessageKind::AchievementUnlock => "achievement_unlock",
            MessageKind::SecurityAlert => "security_alert",
            MessageKind::PhoneVerification => "phone_verification",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn class(self) -> MessageClass {
        match self {
            MessageKind::SecurityAlert | MessageKind::PhoneVerification => {
                MessageClass::Transactional
            }
            _ => MessageClass::Promotional,
        }
    }

    pub fn is_promotional(self) -> bool {
        self.class() == MessageClass::Promotional
    }

    /// The preference toggle that must be on; `None` for transactional kinds.
    pub fn category(self) -> Option<Category> {
        match self {
            MessageKind::BattleInvitation => Some(Category::BattleInvitations),
            MessageKind::BattleResult => Some(Category::BattleResults),
            MessageKind::BattleReminder => Some(Category::BattleReminders),
            MessageKind::StreakAlert => Some(Category::StreakAlerts),
            MessageKind::DirectMessage => Some(Category::DirectMessages),
            MessageKind::AchievementUnlock => Some(Category::Achievements),
            MessageKind::SecurityAlert | MessageKind::PhoneVerification => None,
        }
    }

    /// Required parameters, in template order.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            MessageKind::BattleInvitation => BATTLE_INVITATION,
            MessageKind::BattleResult => BATTLE_RESULT,
            MessageKind::BattleReminder => BATTLE_REMINDER,
            MessageKind::StreakAlert => STREAK_ALERT,
            MessageKind::DirectMessage => DIRECT_MESSAGE,
            MessageKind::AchievementUnlock => ACHIEVEMENT_UNLOCK,
            MessageKind::SecurityAlert => SECURITY_ALERT,
            MessageKind::PhoneVerification => PHONE_VERIFICATION,
        }
    }
}

const BATTLE_INVITATION: &[ParamSpec] = &[
    p("inviter_name", NAME),
    p("battle_topic", TOPIC),
    p("invitation_link", LINK),
];
const BATTLE_RESULT: &[ParamSpec] = &[
    p("battle_topic", TOPIC),
    p("result_summary", PREVIEW),
    p("result_link", LINK),
];
const BATTLE_REMINDER: &[ParamSpec] = &[
    p("battle_topic", TOPIC),
    p("time_remaining", SHORT),
    p("battle_link", LINK),
];
const STREAK_ALERT: &[ParamSpec] = &[
    p("streak_count", ParamType::Integer),
    p("action_link", LINK),
];
const DIRECT_MESSAGE: &[ParamSpec] = &[
    p("sender_name", NAME),
    p("preview", PREVIEW),
    p("link", LINK),
];
const ACHIEVEMENT_UNLOCK: &[ParamSpec] = &[p("achievement_name", TOPIC), p("link", LINK)];
const SECURITY_ALERT: &[ParamSpec] = &[p("summary", PREVIEW), p("link", LINK)];
const PHONE_VERIFICATION: &[ParamSpec] = &[p("code", ParamType::Code)];

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MessageClass {
    /// The `MessageType` End User Messaging expects.
    pub fn as_provider_str(self) -> &'static str {
        match self {
            MessageClass::Promotional => "PROMOTIONAL",
            MessageClass::Transactional => "TRANSACTIONAL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_security_alert_and_verification_are_transactional() {
        for kind in MessageKind::ALL {
            let transactional = matches!(
                kind,
                MessageKind::SecurityAlert | MessageKind::PhoneVerification
            );
            assert_eq!(
                kind.class() == MessageClass::Transactional,
                transactional,
                "{kind}"
            );
            assert_eq!(kind.category().is_none(), transactional, "{kind}");
        }
    }

    #[test]
    fn kind_names_round_trip_through_serde_and_parse() {
        for kind in MessageKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MessageKind::parse("battle-invitation"), None);
    }

    #[test]
    fn parameters_match_the_design_table() {
        let names = |k: MessageKind| k.params().iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(
            names(MessageKind::BattleInvitation),
            ["inviter_name", "battle_topic", "invitation_link"]
        );
        assert_eq!(
            names(MessageKind::StreakAlert),
            ["streak_count", "action_link"]
        );
        assert_eq!(names(MessageKind::SecurityAlert), ["summary", "link"]);
        assert_eq!(names(MessageKind::PhoneVerification), ["code"]);
    }
}
