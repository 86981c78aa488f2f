//! What the store's per-chat state slot holds: the agent's typed state and what chatfn itself
//! keeps for the chat across turns (the usage of all its turns).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::HistorySummary;
use crate::model::Usage;

/// Marks a state slot written by this version of the record, so that a slot holding an older
/// agent state written before the record existed is still read as that state.
const FORMAT: &str = "chatfn.chat-record/1";

/// Everything the store's per-chat state slot holds: the agent's state and chatfn's own records
/// of the chat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRecord {
    /// The agent's own state (`ChatState`), if it ever set one.
    #[serde(default)]
    pub state: Option<Value>,
    /// The usage of every finished turn of the chat.
    #[serde(default)]
    pub usage: Usage,
    /// What the model sees instead of the older history, for agents that compact it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<HistorySummary>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: String,
    #[serde(flatten)]
    record: ChatRecord,
}

impl ChatRecord {
    /// Reads a state slot as the store returned it.
    pub fn decode(stored: Option<Value>) -> ChatRecord {
        let Some(value) = stored else {
            return ChatRecord::default();
        };
        match serde_json::from_value::<Stored>(value.clone()) {
            Ok(stored) if stored.format == FORMAT => stored.record,
            // Written before the record existed: the whole slot is the agent's state.
            _ => ChatRecord {
                state: Some(value),
                ..ChatRecord::default()
            },
        }
    }

    /// The value to put in the state slot.
    pub fn encode(&self) -> Value {
        serde_json::to_value(Stored {
            format: FORMAT.to_owned(),
            record: self.clone(),
        })
        .unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_round_trips() {
        let record = ChatRecord {
            state: Some(json!({"count": 2})),
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Usage::default()
            },
            summary: Some(HistorySummary {
                through: "m3".into(),
                text: "earlier".into(),
            }),
        };
        assert_eq!(ChatRecord::decode(Some(record.encode())), record);
        assert_eq!(ChatRecord::decode(None), ChatRecord::default());
    }

    #[test]
    fn an_older_slot_is_the_agents_state() {
        for old in [json!({"count": 2}), json!(7), json!({"format": "mine"})] {
            let record = ChatRecord::decode(Some(old.clone()));
            assert_eq!(record.state, Some(old));
            assert_eq!(record.usage, Usage::default());
        }
    }
}
