//! Long chats: when the history the model would see passes a budget, the older messages are
//! summarised and the model sees the summary and the recent messages instead. The chat's history
//! itself is never shortened: clients still load every message, and the summary is kept beside it
//! (in the chat record), so the next turns start from it without summarising again.

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Agent, HookError, TurnInfo};
use crate::model::{ModelEvent, ModelMessage, ModelRequest, UserContent};
use crate::ui::{ConvertOptions, UIMessage, to_model_messages};

/// When and how an agent compacts its history.
#[derive(Debug, Clone)]
pub struct Compaction {
    /// Compact once the history is estimated above this many tokens.
    pub budget_tokens: usize,
    /// The most recent messages, always kept as they are.
    pub keep_recent: usize,
    /// What the model is asked when it summarises.
    pub instructions: String,
}

impl Compaction {
    /// Messages kept verbatim after the summary unless [`Compaction::keep_recent`] says otherwise.
    pub const DEFAULT_KEEP_RECENT: usize = 6;
    /// What the model is asked unless [`Compaction::instructions`] says otherwise.
    pub const DEFAULT_INSTRUCTIONS: &str = "Summarize the conversation so far for your own later \
        use: keep every fact, decision, name, number and open question; leave out pleasantries. \
        Answer with the summary only.";

    /// Compact above `budget_tokens` (estimated), keeping the default number of recent messages
    /// and the default instructions.
    pub fn new(budget_tokens: usize) -> Self {
        Compaction {
            budget_tokens,
            keep_recent: Self::DEFAULT_KEEP_RECENT,
            instructions: Self::DEFAULT_INSTRUCTIONS.to_owned(),
        }
    }

    /// Keep this many recent messages verbatim (at least one, so the model always sees the latest).
    pub fn keep_recent(mut self, messages: usize) -> Self {
        self.keep_recent = messages.max(1);
        self
    }

    /// Ask the model for the summary with these instructions instead of the default ones.
    pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
        self.instructions = instructions.into();
        self
    }
}

/// A summary of a chat's history up to and including one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistorySummary {
    /// The id of the last message the summary covers.
    pub through: String,
    /// The summary, as the model wrote it.
    pub text: String,
}

/// The id of the message that stands for the summarised history in what the model sees.
pub const SUMMARY_MESSAGE_ID: &str = "chatfn-history-summary";

/// A rough token count (four bytes of JSON to a token): enough to decide when to compact.
pub fn estimate_tokens(messages: &[UIMessage]) -> usize {
    messages
        .iter()
        .map(|message| serde_json::to_string(message).map_or(0, |json| json.len()))
        .sum::<usize>()
        / 4
}

/// The history with the summarised part replaced by its summary, when the summary's last
/// message is still in it (an edit before that point makes the summary void).
pub fn apply_summary(history: &[UIMessage], summary: Option<&HistorySummary>) -> Vec<UIMessage> {
    let Some(summary) = summary else {
        return history.to_vec();
    };
    match history.iter().position(|m| m.id == summary.through) {
        Some(index) => {
            let mut compacted = vec![summary_message(&summary.text)];
            compacted.extend_from_slice(&history[index + 1..]);
            compacted
        }
        None => history.to_vec(),
    }
}

fn summary_message(text: &str) -> UIMessage {
    UIMessage::user_text(
        SUMMARY_MESSAGE_ID,
        format!("[A summary of the earlier conversation]\n{text}"),
    )
}

/// What compaction decided for a turn.
#[derive(Debug, Clone)]
pub struct Compacted {
    /// The history the model sees.
    pub history: Vec<UIMessage>,
    /// The summary to keep for later turns, when it changed.
    pub new_summary: Option<HistorySummary>,
}

/// Applies the kept summary, then summarises again if the history is still over the budget.
/// A failed summary is logged and the turn goes on with the history as it is.
pub async fn compact(
    agent: &Agent,
    turn: &TurnInfo,
    history: &[UIMessage],
    summary: Option<&HistorySummary>,
) -> Compacted {
    let current = apply_summary(history, summary);
    let Some(settings) = agent.compaction() else {
        return Compacted {
            history: current,
            new_summary: None,
        };
    };
    if estimate_tokens(&current) <= settings.budget_tokens || current.len() <= settings.keep_recent
    {
        return Compacted {
            history: current,
            new_summary: None,
        };
    }
    let split = current.len() - settings.keep_recent;
    let (older, recent) = current.split_at(split);
    let Some(through) = older
        .iter()
        .rev()
        .find(|m| m.id != SUMMARY_MESSAGE_ID)
        .map(|m| m.id.clone())
    else {
        return Compacted {
            history: current,
            new_summary: None,
        };
    };
    let text = match agent.hooks().summarize_history(turn, older).await {
        Ok(Some(text)) => Ok(text),
        Ok(None) => summarize_with_model(agent, settings, older).await,
        Err(error) => Err(error),
    };
    match text {
        Ok(text) => {
            let mut history = vec![summary_message(&text)];
            history.extend_from_slice(recent);
            Compacted {
                history,
                new_summary: Some(HistorySummary { through, text }),
            }
        }
        Err(error) => {
            tracing::warn!(chat = %turn.chat_id, "could not compact the history: {error}");
            Compacted {
                history: current,
                new_summary: None,
            }
        }
    }
}

/// Asks the agent's model for a summary of `older`.
async fn summarize_with_model(
    agent: &Agent,
    settings: &Compaction,
    older: &[UIMessage],
) -> Result<String, HookError> {
    let options = ConvertOptions {
        ignore_incomplete_tool_calls: true,
    };
    let mut messages = to_model_messages(older, options);
    messages.push(ModelMessage::User {
        content: vec![UserContent::Text {
            text: settings.instructions.clone(),
        }],
    });
    let request = ModelRequest {
        messages,
        ..ModelRequest::default()
    };
    let mut stream = agent
        .model()
        .stream(request)
        .await
        .map_err(|e| HookError::new(e.to_string()))?;
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(ModelEvent::TextDelta(delta)) => text.push_str(&delta),
            Ok(_) => {}
            Err(error) => return Err(HookError::new(error.to_string())),
        }
    }
    if text.trim().is_empty() {
        return Err(HookError::new("the model returned an empty summary"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: usize) -> Vec<UIMessage> {
        (0..n)
            .map(|i| UIMessage::user_text(format!("m{i}"), format!("message number {i}")))
            .collect()
    }

    #[test]
    fn a_summary_replaces_what_it_covers_and_nothing_else() {
        let history = history(5);
        let summary = HistorySummary {
            through: "m2".into(),
            text: "earlier things".into(),
        };
        let compacted = apply_summary(&history, Some(&summary));
        let ids: Vec<_> = compacted.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, [SUMMARY_MESSAGE_ID, "m3", "m4"]);
        assert!(compacted[0].text().contains("earlier things"));
    }

    #[test]
    fn a_summary_of_messages_no_longer_there_is_ignored() {
        let history = history(3);
        let summary = HistorySummary {
            through: "edited-away".into(),
            text: "stale".into(),
        };
        assert_eq!(apply_summary(&history, Some(&summary)), history);
    }

    #[test]
    fn the_estimate_grows_with_the_history() {
        assert_eq!(estimate_tokens(&[]), 0);
        assert!(estimate_tokens(&history(10)) > estimate_tokens(&history(2)));
    }
}
