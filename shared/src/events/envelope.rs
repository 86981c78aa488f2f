//! The events' bodies: `{"type", "timestamp" (RFC 3339), "data"}`, with `turn.completed`,
//! `chat.created` and `chat.closed` as their data. A body stays under [`MAX_BODY_BYTES`]: a reply
//! too long for it is sent with its text trimmed and `"truncated": true`.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::model::{FinishReason, Usage};
use crate::store::Session;
use crate::ui::{UIMessage, UIPart};

/// The largest body sent: 256 KB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What marks the end of a trimmed text.
const TRIMMED_MARK: &str = "…";

#[derive(Serialize)]
struct Envelope<'a, D> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: D,
}

/// Tokens as the events report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCounts {
    /// The prompt, cached tokens included.
    pub input_tokens: u64,
    /// The reply, reasoning included.
    pub output_tokens: u64,
    /// Both together.
    pub total_tokens: u64,
    /// The part of the input read from the provider's prompt cache; left out when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// The part of the input written to the provider's prompt cache; left out when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

impl From<Usage> for TokenCounts {
    fn from(usage: Usage) -> Self {
        TokenCounts {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens(),
            cache_read_tokens: usage.cached_input_tokens,
            cache_write_tokens: usage.cache_write_input_tokens,
        }
    }
}

/// The data of a `turn.completed` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnCompleted {
    /// The chat.
    pub chat_id: String,
    /// Its `session_…` id.
    pub session_id: String,
    /// The end user who owns the chat, when an ID token created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The reply, as a UI message (as much as was written, for a stopped or recovered turn).
    pub message: UIMessage,
    /// This turn's tokens.
    pub usage: TokenCounts,
    /// The chat's tokens so far, this turn's included.
    pub total_usage: TokenCounts,
    /// Why the turn ended.
    pub finish_reason: FinishReason,
    /// A stop request ended it.
    pub stopped: bool,
    /// Its executor died and the next one closed it.
    pub recovered: bool,
    /// The first error the turn showed, if any.
    pub error: Option<String>,
    /// The message's text was trimmed to keep the body under 256 KB.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The data of a `chat.created` or `chat.closed` event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatChanged {
    /// The chat.
    pub chat_id: String,
    /// Its `session_…` id.
    pub session_id: String,
    /// The end user who owns the chat, when an ID token created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Why the chat was closed, as the closer said (`chat.closed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ChatChanged {
    /// The event data of `session`.
    pub fn of(session: &Session) -> Self {
        ChatChanged {
            chat_id: session.chat_id.clone(),
            session_id: session.id.clone(),
            owner: session.owner.clone(),
            reason: session.closed_reason.clone(),
        }
    }
}

/// An RFC 3339 time with milliseconds, from ms since the Unix epoch.
fn rfc3339(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

fn encode<D: Serialize>(kind: &str, at_ms: u64, data: D) -> String {
    let envelope = Envelope {
        kind,
        timestamp: rfc3339(at_ms),
        data,
    };
    // Plain structs of strings, numbers and JSON values: serializing cannot fail.
    serde_json::to_string(&envelope).unwrap_or_default()
}

/// The body of a `chat.created` or `chat.closed` event.
pub fn chat_body(kind: &str, at_ms: u64, data: &ChatChanged) -> String {
    encode(kind, at_ms, data)
}

/// The body of a `turn.completed` event, its reply's text parts trimmed until it fits in
/// [`MAX_BODY_BYTES`]. A reply whose other parts alone are too large keeps only its text.
pub fn turn_body(at_ms: u64, mut data: TurnCompleted) -> String {
    let body = encode(super::TURN_COMPLETED, at_ms, &data);
    if body.len() <= MAX_BODY_BYTES {
        return body;
    }
    data.truncated = true;
    let longest = longest_text(&data.message);
    let mut cap = longest;
    let original = data.message.clone();
    loop {
        cap /= 2;
        data.message = trimmed(&original, cap);
        let body = encode(super::TURN_COMPLETED, at_ms, &data);
        if body.len() <= MAX_BODY_BYTES {
            return body;
        }
        if cap == 0 {
            break;
        }
    }
    // Tool outputs, files or data parts carry the weight: keep the text only, trimmed as needed.
    let mut text_only = original;
    text_only
        .parts
        .retain(|part| matches!(part, UIPart::Text(_) | UIPart::Reasoning(_)));
    let mut cap = longest_text(&text_only);
    loop {
        data.message = trimmed(&text_only, cap);
        let body = encode(super::TURN_COMPLETED, at_ms, &data);
        if body.len() <= MAX_BODY_BYTES || cap == 0 {
            return body;
        }
        cap /= 2;
    }
}

fn longest_text(message: &UIMessage) -> usize {
    message
        .parts
        .iter()
        .filter_map(|part| match part {
            UIPart::Text(text) | UIPart::Reasoning(text) => Some(text.text.chars().count()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// `message` with each text and reasoning part cut to at most `cap` characters.
fn trimmed(message: &UIMessage, cap: usize) -> UIMessage {
    let mut message = message.clone();
    for part in &mut message.parts {
        if let UIPart::Text(text) | UIPart::Reasoning(text) = part
            && let Some((end, _)) = text.text.char_indices().nth(cap)
        {
            text.text.truncate(end);
            text.text.push_str(TRIMMED_MARK);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::{CustomPart, Role};
    use serde_json::Value;

    fn turn(text: &str) -> TurnCompleted {
        let mut message = UIMessage::new("m1", Role::Assistant);
        message.parts.push(UIPart::StepStart);
        message.parts.push(UIPart::text(text));
        TurnCompleted {
            chat_id: "chat-1".into(),
            session_id: "session_1".into(),
            owner: None,
            message,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            }
            .into(),
            total_usage: Usage {
                input_tokens: 30,
                output_tokens: 40,
                ..Usage::default()
            }
            .into(),
            finish_reason: FinishReason::Stop,
            stopped: false,
            recovered: false,
            error: None,
            truncated: false,
        }
    }

    #[test]
    fn a_turn_event_has_the_documented_shape() {
        let body: Value =
            serde_json::from_str(&turn_body(1_700_000_000_123, turn("Hello."))).expect("json");
        assert_eq!(body["type"], "turn.completed");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.123Z");
        let data = &body["data"];
        assert_eq!(data["chatId"], "chat-1");
        assert_eq!(data["sessionId"], "session_1");
        assert!(data.get("owner").is_none());
        assert_eq!(data["message"]["parts"][1]["text"], "Hello.");
        assert_eq!(data["usage"]["totalTokens"], 7);
        assert_eq!(data["totalUsage"]["inputTokens"], 30);
        assert_eq!(data["finishReason"], "stop");
        assert_eq!(data["stopped"], false);
        assert_eq!(data["recovered"], false);
        assert_eq!(data["error"], Value::Null);
        assert!(data.get("truncated").is_none());
        assert!(data["usage"].get("cacheReadTokens").is_none());
        assert!(data["usage"].get("cacheWriteTokens").is_none());
    }

    #[test]
    fn cache_counts_are_reported_where_there_are_any() {
        let mut data = turn("Hello.");
        data.usage = Usage {
            input_tokens: 1200,
            output_tokens: 30,
            cached_input_tokens: 1000,
            cache_write_input_tokens: 150,
            ..Usage::default()
        }
        .into();
        let body: Value = serde_json::from_str(&turn_body(0, data)).expect("json");
        assert_eq!(
            body["data"]["usage"],
            serde_json::json!({
                "inputTokens": 1200, "outputTokens": 30, "totalTokens": 1230,
                "cacheReadTokens": 1000, "cacheWriteTokens": 150,
            })
        );
    }

    #[test]
    fn a_reply_over_the_limit_is_trimmed_and_says_so() {
        let long = "é".repeat(MAX_BODY_BYTES);
        let body = turn_body(0, turn(&long));
        assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["data"]["truncated"], true);
        let text = body["data"]["message"]["parts"][1]["text"]
            .as_str()
            .unwrap_or("");
        assert!(text.ends_with(TRIMMED_MARK) && text.len() > MAX_BODY_BYTES / 4);
    }

    #[test]
    fn heavy_non_text_parts_leave_the_text_alone() {
        let mut data = turn("kept");
        data.message.parts.push(UIPart::Custom(CustomPart {
            kind: "x".into(),
            provider_metadata: Some(serde_json::json!({"blob": "x".repeat(MAX_BODY_BYTES)})),
        }));
        let body: Value = serde_json::from_str(&turn_body(0, data)).expect("json");
        assert_eq!(body["data"]["truncated"], true);
        let parts = body["data"]["message"]["parts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0]["text"], "kept");
    }

    #[test]
    fn chat_events_carry_the_session() {
        let mut session = Session::new("chat-2", 0);
        session.owner = Some("user-1".into());
        session.closed_reason = Some("done".into());
        let body: Value = serde_json::from_str(&chat_body(
            super::super::CHAT_CLOSED,
            0,
            &ChatChanged::of(&session),
        ))
        .expect("json");
        assert_eq!(body["type"], "chat.closed");
        assert_eq!(body["data"]["chatId"], "chat-2");
        assert_eq!(body["data"]["owner"], "user-1");
        assert_eq!(body["data"]["reason"], "done");
    }
}
