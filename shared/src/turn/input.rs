//! What the input log holds: one `ChatInputChunk` per record, the Trigger wire's shape, which the
//! AI SDK wire's requests are recorded in too, so one executor serves both.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ui::UIMessage;

/// One record of a chat's input log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChatInput {
    /// A message (or regenerate request) for the agent: one turn.
    Message {
        /// The message and what to do with it.
        payload: MessagePayload,
    },
    /// Stop the turn that is running when this arrives.
    Stop {
        /// Why the client stopped the turn, if it said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl ChatInput {
    /// The record as stored in the input log.
    pub fn to_json(&self) -> String {
        // Only strings, UI messages and JSON values: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The payload of a message that a turn answers: a new message, a regeneration or an
    /// action. `None` for a stop, and for the triggers that start no turn (`close`, `preload`,
    /// `handover-prepare`): they end quietly and write nothing.
    pub fn into_turn_payload(self) -> Option<MessagePayload> {
        match self {
            ChatInput::Message { payload } if payload.trigger.starts_turn() => Some(payload),
            _ => None,
        }
    }
}

/// What a message record asks of the agent, as the Trigger wire names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChatTrigger {
    /// A new user message to answer, or a client's answers (tool outputs, approvals) to an
    /// assistant message, which then continues.
    SubmitMessage,
    /// Answer the last user message (or the one named) again, replacing what answered it.
    RegenerateMessage,
    /// The Trigger wire's `preload` (warming the agent before the first message); starts no turn
    /// here.
    Preload,
    /// The Trigger wire's `close` (`AgentChat.close()`): the client is done with the agent for
    /// now; starts no turn and writes nothing, and the chat stays open.
    Close,
    /// The Trigger wire's `action` (`sendAction`): a custom action in `extra["action"]`, for the
    /// agent's action handler.
    Action,
    /// The Trigger wire's `handover-prepare`; starts no turn here.
    HandoverPrepare,
}

impl ChatTrigger {
    /// Whether an input with this trigger is answered by a turn (an action's turn may write
    /// nothing but its end).
    pub fn starts_turn(self) -> bool {
        matches!(
            self,
            ChatTrigger::SubmitMessage | ChatTrigger::RegenerateMessage | ChatTrigger::Action
        )
    }
}

/// What a message record carries: the Trigger wire's `ChatInputChunk` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePayload {
    /// The one new message (absent for regenerate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<UIMessage>,
    /// The chat the message is for.
    pub chat_id: String,
    /// What the agent is asked to do.
    pub trigger: ChatTrigger,
    /// With submit: the user message being edited. With regenerate: the message to regenerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Client data merged with per-message metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Body fields the client spread in at top level.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_trigger_transport_message_shape_parses() {
        let input: ChatInput = serde_json::from_value(json!({
            "kind": "message",
            "payload": {
                "message": {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]},
                "chatId": "chat-basic",
                "trigger": "submit-message",
                "temperature": 0.2
            }
        }))
        .expect("parses");
        let ChatInput::Message { payload } = input else {
            panic!("a message");
        };
        assert_eq!(payload.trigger, ChatTrigger::SubmitMessage);
        assert_eq!(payload.extra.get("temperature"), Some(&json!(0.2)));
        assert_eq!(payload.message.map(|m| m.text()), Some("hi".into()));
    }

    #[test]
    fn stops_and_unknown_kinds() {
        assert_eq!(
            serde_json::from_str::<ChatInput>(r#"{"kind":"stop"}"#).ok(),
            Some(ChatInput::Stop { message: None })
        );
        assert!(serde_json::from_str::<ChatInput>(r#"{"kind":"explode"}"#).is_err());
        assert!(
            serde_json::from_str::<ChatInput>(
                r#"{"kind":"message","payload":{"chatId":"c","trigger":"dance"}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn inputs_round_trip() {
        let input = ChatInput::Message {
            payload: MessagePayload {
                message: Some(UIMessage::user_text("u", "hello")),
                chat_id: "c".into(),
                trigger: ChatTrigger::SubmitMessage,
                message_id: None,
                metadata: None,
                extra: Map::new(),
            },
        };
        assert_eq!(
            serde_json::from_str::<ChatInput>(&input.to_json()).ok(),
            Some(input)
        );
    }
}
