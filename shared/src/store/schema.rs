//! The names the stores address the tables by (DESIGN §9): key attributes, index names, the
//! TTL attribute. Creating tables and queues (tests, the local stack) is
//! `integration_tests::stack`, which builds its definitions from these names; the drift check
//! holds `template.yaml` to the same.

/// Log table: partition key (the send request id, or a counter id).
pub const LOG_KEY: &str = "id";
/// Log index for "messages of a user, by time".
pub const LOG_BY_USER_INDEX: &str = "byUser";
/// Log index for delivery receipts that carry only the provider's message id.
pub const LOG_BY_PROVIDER_ID_INDEX: &str = "byProviderMessageId";
/// Preferences table: partition and sort key.
pub const PREFS_PK: &str = "userId";
pub const PREFS_SK: &str = "sk";
/// Preferences index for STOP replies: users by phone number.
pub const PREFS_BY_PHONE_INDEX: &str = "byPhone";
/// Attribute of the preferences index; set only on current-preferences items.
pub const PREFS_PHONE_KEY: &str = "lookupPhone";
/// Verification table: partition key.
pub const VERIFICATION_KEY: &str = "pk";
/// TTL attribute (epoch seconds) of the log and verification tables.
pub const TTL_ATTRIBUTE: &str = "expiresAt";
