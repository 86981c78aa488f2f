//! Usage limits: how many turns a chat may start per minute, and how many output tokens a user
//! (the chat's owner, else the chat) may spend per day. The agent holds the defaults (the
//! builder's, or the `CHATFN_MAX_*` variables for the stock agent) and, optionally, a rule that
//! decides per user from the chat's session (its owner, the creator's metadata: a plan, a
//! tier). The turn runner checks and counts them (`turn::limits`).

use std::sync::Arc;

use crate::store::Session;

/// What a chat may use. `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageLimits {
    /// Turns (messages and regenerations) a chat may start per minute of the clock.
    pub turns_per_minute: Option<u64>,
    /// Output tokens the chat's owner (every chat of theirs together), or the chat when it has
    /// no owner, may spend per UTC day. Checked before each turn: the turn that crosses it
    /// finishes, the next is refused.
    pub output_tokens_per_day: Option<u64>,
}

impl UsageLimits {
    /// No limits at all.
    pub const NONE: UsageLimits = UsageLimits {
        turns_per_minute: None,
        output_tokens_per_day: None,
    };

    /// Whether nothing is limited.
    pub fn is_none(&self) -> bool {
        self == &Self::NONE
    }
}

/// Decides a chat's limits from its session, given the agent's defaults.
pub(crate) type LimitsRule = Arc<dyn Fn(&Session, UsageLimits) -> UsageLimits + Send + Sync>;
