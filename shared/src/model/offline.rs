//! The offline model: answers with no provider and no key, so chatfn runs anywhere. It says what it
//! is in every reply, and it calls the stock tools when asked about the time or dice, so tool calls
//! can be seen end to end without a real model.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::json;

use super::{
    FinishReason, Model, ModelError, ModelEvent, ModelMessage, ModelRequest, ModelStream,
    ToolContent, ToolOutput, Usage,
};

/// The model used when no provider is configured: canned replies, streamed word by word.
pub struct OfflineModel {
    /// Pause between streamed words, so the reply visibly streams.
    word_delay: Duration,
}

impl Default for OfflineModel {
    fn default() -> Self {
        OfflineModel {
            word_delay: Duration::from_millis(25),
        }
    }
}

impl OfflineModel {
    /// The offline model with its default pause of 25 ms between words.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the pause between streamed words; tests set zero to run fast.
    pub fn with_word_delay(mut self, delay: Duration) -> Self {
        self.word_delay = delay;
        self
    }
}

/// What the offline model decided to do with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum OfflineReply {
    /// Answer with this text.
    Text(String),
    /// Call a tool.
    ToolCall {
        /// The tool to call.
        name: String,
        /// Its arguments, as JSON text.
        arguments: String,
    },
}

const NOTICE: &str =
    "(chatfn offline model: no model provider is configured, so this reply is canned.)";

/// The sans-IO decision: the reply to a prompt.
pub fn offline_reply(request: &ModelRequest) -> OfflineReply {
    if let Some(ModelMessage::Tool { content }) = request.messages.last() {
        let results: Vec<String> = content
            .iter()
            .filter_map(|item| match item {
                ToolContent::ToolResult(result) => Some(format!(
                    "`{}` returned {}",
                    result.tool_name,
                    match &result.output {
                        ToolOutput::Json(value) => value.to_string(),
                        other => other.to_text(),
                    }
                )),
                ToolContent::ToolApprovalResponse { .. } => None,
            })
            .collect();
        return OfflineReply::Text(format!("{NOTICE} {}.", results.join("; ")));
    }
    let said = request.last_user_text().unwrap_or_default();
    let lower = said.to_lowercase();
    let has_tool = |name: &str| request.tools.iter().any(|tool| tool.name == name);
    if (lower.contains("dice") || lower.contains("roll")) && has_tool("roll_dice") {
        return OfflineReply::ToolCall {
            name: "roll_dice".into(),
            arguments: json!({"sides": 6, "count": 2}).to_string(),
        };
    }
    if lower.contains("time") && has_tool("current_time") {
        return OfflineReply::ToolCall {
            name: "current_time".into(),
            arguments: "{}".into(),
        };
    }
    let echo = if said.is_empty() {
        "You sent no text.".to_owned()
    } else {
        let short: String = said.chars().take(200).collect();
        format!("You said: \"{short}\".")
    };
    OfflineReply::Text(format!(
        "{NOTICE} {echo} To talk to a real model, set CHATFN_MODEL_API_KEY (or OPENAI_API_KEY) and \
         restart; CHATFN_MODEL_BASE_URL points chatfn at any OpenAI-compatible server. \
         Ask me to roll dice or for the time to see a tool call."
    ))
}

/// The reply as model events: words as text deltas, or one tool call.
pub fn offline_events(reply: &OfflineReply) -> Vec<ModelEvent> {
    match reply {
        OfflineReply::Text(text) => {
            let mut events: Vec<ModelEvent> = text
                .split_inclusive(' ')
                .map(|word| ModelEvent::TextDelta(word.to_owned()))
                .collect();
            let output_tokens = events.len() as u64;
            events.push(ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    output_tokens,
                    ..Usage::default()
                },
            });
            events
        }
        OfflineReply::ToolCall { name, arguments } => {
            let id = format!("call_{}", uuid::Uuid::new_v4().simple());
            vec![
                ModelEvent::ToolCallStart {
                    id: id.clone(),
                    name: name.clone(),
                },
                ModelEvent::ToolCallDelta {
                    id: id.clone(),
                    arguments_delta: arguments.clone(),
                },
                ModelEvent::ToolCall {
                    id,
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
                ModelEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage: Usage::default(),
                },
            ]
        }
    }
}

#[async_trait]
impl Model for OfflineModel {
    fn id(&self) -> String {
        "offline".to_owned()
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        // The offline model answers as itself.
        let events = std::iter::once(ModelEvent::ResponseModel(self.id()))
            .chain(offline_events(&offline_reply(&request)));
        let delay = self.word_delay;
        let stream = futures::stream::iter(events).then(move |event| async move {
            if !delay.is_zero() && matches!(event, ModelEvent::TextDelta(_)) {
                pause(delay).await;
            }
            Ok(event)
        });
        Ok(Box::pin(stream))
    }
}

async fn pause(delay: Duration) {
    crate::runtime::sleep(delay).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolResult, ToolSpec, UserContent};

    fn user(text: &str) -> ModelMessage {
        ModelMessage::User {
            content: vec![UserContent::Text { text: text.into() }],
        }
    }

    fn tools() -> Vec<ToolSpec> {
        ["roll_dice", "current_time"]
            .into_iter()
            .map(|name| ToolSpec {
                name: name.into(),
                description: String::new(),
                input_schema: json!({}),
            })
            .collect()
    }

    #[test]
    fn it_says_it_is_offline_and_echoes_the_user() {
        let request = ModelRequest {
            messages: vec![user("hello there")],
            ..ModelRequest::default()
        };
        match offline_reply(&request) {
            OfflineReply::Text(text) => {
                assert!(text.contains("offline"));
                assert!(text.contains("hello there"));
            }
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn it_calls_tools_when_asked_and_reports_their_results() {
        let request = ModelRequest {
            messages: vec![user("Roll the dice please")],
            tools: tools(),
            ..ModelRequest::default()
        };
        assert!(
            matches!(offline_reply(&request), OfflineReply::ToolCall { ref name, .. } if name == "roll_dice")
        );
        let follow_up = ModelRequest {
            messages: vec![
                user("Roll the dice please"),
                ModelMessage::Tool {
                    content: vec![ToolContent::ToolResult(ToolResult {
                        tool_call_id: "c".into(),
                        tool_name: "roll_dice".into(),
                        output: ToolOutput::Json(json!({"total": 7})),
                    })],
                },
            ],
            tools: tools(),
            ..ModelRequest::default()
        };
        assert!(
            matches!(offline_reply(&follow_up), OfflineReply::Text(ref t) if t.contains("{\"total\":7}"))
        );
    }

    #[test]
    fn without_the_tool_it_only_talks() {
        let request = ModelRequest {
            messages: vec![user("what time is it?")],
            ..ModelRequest::default()
        };
        assert!(matches!(offline_reply(&request), OfflineReply::Text(_)));
    }

    #[test]
    fn text_streams_word_by_word_and_ends_with_finish() {
        let events = offline_events(&OfflineReply::Text("a b c".into()));
        assert_eq!(events[0], ModelEvent::TextDelta("a ".into()));
        assert_eq!(events.len(), 4);
        assert!(matches!(
            events[3],
            ModelEvent::Finish {
                reason: FinishReason::Stop,
                ..
            }
        ));
    }
}
