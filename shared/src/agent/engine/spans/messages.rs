//! Messages in the shape the OpenTelemetry GenAI semantic conventions give
//! `gen_ai.input.messages` and `gen_ai.output.messages`: `{"role", "parts": [...]}`, each part
//! typed (`text`, `reasoning`, `tool_call`, `tool_call_response`, `uri`, `blob`), an output
//! message with its `finish_reason`. Only built when message contents are captured.

use serde_json::{Value, json};

use crate::model::{
    AssistantContent, FinishReason, ModelEvent, ModelMessage, ToolContent, ToolOutput, ToolResult,
    UserContent,
};

/// The prompt of a model call.
pub(super) fn input(messages: &[ModelMessage]) -> Value {
    Value::Array(messages.iter().map(message).collect())
}

fn message(message: &ModelMessage) -> Value {
    let (role, parts): (&str, Vec<Value>) = match message {
        ModelMessage::System { content } => ("system", vec![text("text", content)]),
        ModelMessage::User { content } => ("user", content.iter().map(user_part).collect()),
        ModelMessage::Assistant { content } => {
            ("assistant", content.iter().map(assistant_part).collect())
        }
        ModelMessage::Tool { content } => ("tool", content.iter().map(tool_part).collect()),
    };
    json!({ "role": role, "parts": parts })
}

fn text(kind: &str, content: &str) -> Value {
    json!({ "type": kind, "content": content })
}

fn user_part(part: &UserContent) -> Value {
    match part {
        UserContent::Text { text: content } => text("text", content),
        UserContent::File {
            data, media_type, ..
        } => file(data, media_type),
    }
}

fn assistant_part(part: &AssistantContent) -> Value {
    match part {
        AssistantContent::Text { text: content } => text("text", content),
        AssistantContent::Reasoning { text: content, .. } => text("reasoning", content),
        AssistantContent::File { data, media_type } => file(data, media_type),
        AssistantContent::ToolCall {
            tool_call_id,
            tool_name,
            input,
            ..
        } => tool_call(tool_call_id, tool_name, input.clone()),
        AssistantContent::ToolResult(result) => tool_result(result),
        AssistantContent::ToolApprovalRequest {
            approval_id,
            tool_call_id,
        } => json!({
            "type": "tool_approval_request",
            "approval_id": approval_id,
            "tool_call_id": tool_call_id,
        }),
    }
}

fn tool_part(part: &ToolContent) -> Value {
    match part {
        ToolContent::ToolResult(result) => tool_result(result),
        ToolContent::ToolApprovalResponse {
            approval_id,
            approved,
            reason,
        } => json!({
            "type": "tool_approval_response",
            "approval_id": approval_id,
            "approved": approved,
            "reason": reason,
        }),
    }
}

fn tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({ "type": "tool_call", "id": id, "name": name, "arguments": arguments })
}

fn tool_result(result: &ToolResult) -> Value {
    let response = match &result.output {
        ToolOutput::Json(value) => value.clone(),
        other => Value::String(other.to_text()),
    };
    json!({ "type": "tool_call_response", "id": result.tool_call_id, "response": response })
}

/// A file: its URL, or the bytes of a `data:` URL as a blob.
fn file(data: &str, media_type: &str) -> Value {
    let modality = media_type.split('/').next().unwrap_or(media_type);
    match data
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
    {
        Some((_, content)) => json!({
            "type": "blob", "mime_type": media_type, "modality": modality, "content": content,
        }),
        None => json!({
            "type": "uri", "mime_type": media_type, "modality": modality, "uri": data,
        }),
    }
}

/// What a model call answered, gathered from its events as they stream.
#[derive(Debug, Default)]
pub(super) struct Output {
    parts: Vec<Value>,
    /// The kind (`text`, `reasoning`) and content of the part being streamed.
    open: Option<(&'static str, String)>,
}

impl Output {
    /// Takes in one event of the call.
    pub(super) fn observe(&mut self, event: &ModelEvent) {
        match event {
            ModelEvent::TextDelta(delta) => self.stream("text", delta),
            ModelEvent::ReasoningDelta(delta) => self.stream("reasoning", delta),
            ModelEvent::ReasoningEnd { .. } => self.close(),
            ModelEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                self.close();
                // Arguments that do not parse are shown as the model wrote them.
                let arguments = serde_json::from_str(arguments)
                    .unwrap_or_else(|_| Value::String(arguments.clone()));
                self.parts.push(tool_call(id, name, arguments));
            }
            ModelEvent::ProviderToolCall { id, name, input } => {
                self.close();
                self.parts.push(tool_call(id, name, input.clone()));
            }
            ModelEvent::ProviderToolResult { id, output, .. } => {
                self.close();
                self.parts
                    .push(json!({ "type": "tool_call_response", "id": id, "response": output }));
            }
            ModelEvent::ToolCallStart { .. }
            | ModelEvent::ToolCallDelta { .. }
            | ModelEvent::ResponseModel(_)
            | ModelEvent::Source { .. }
            | ModelEvent::Finish { .. } => {}
        }
    }

    fn stream(&mut self, kind: &'static str, delta: &str) {
        match &mut self.open {
            Some((open, content)) if *open == kind => content.push_str(delta),
            _ => {
                self.close();
                self.open = Some((kind, delta.to_owned()));
            }
        }
    }

    fn close(&mut self) {
        if let Some((kind, content)) = self.open.take() {
            self.parts.push(text(kind, &content));
        }
    }

    /// The call's output messages, once it finished for `reason`.
    pub(super) fn finish(&mut self, reason: FinishReason) -> Value {
        self.close();
        let parts = std::mem::take(&mut self.parts);
        json!([{ "role": "assistant", "parts": parts, "finish_reason": finish_reason(reason) }])
    }
}

/// The conventions' name of a finish reason.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::ToolCalls => "tool_call",
        FinishReason::Error => "error",
        FinishReason::Other => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_take_the_conventions_shape() {
        let messages = [
            ModelMessage::System {
                content: "Be brief.".into(),
            },
            ModelMessage::User {
                content: vec![
                    UserContent::Text {
                        text: "What is this?".into(),
                    },
                    UserContent::File {
                        data: "data:image/png;base64,iVBOR".into(),
                        media_type: "image/png".into(),
                        filename: None,
                    },
                ],
            },
            ModelMessage::Assistant {
                content: vec![AssistantContent::ToolCall {
                    tool_call_id: "call_1".into(),
                    tool_name: "roll_dice".into(),
                    input: json!({ "sides": 6 }),
                    provider_executed: false,
                }],
            },
            ModelMessage::Tool {
                content: vec![ToolContent::ToolResult(ToolResult {
                    tool_call_id: "call_1".into(),
                    tool_name: "roll_dice".into(),
                    output: ToolOutput::Json(json!({ "total": 4 })),
                })],
            },
        ];
        assert_eq!(
            input(&messages),
            json!([
                { "role": "system", "parts": [{ "type": "text", "content": "Be brief." }] },
                { "role": "user", "parts": [
                    { "type": "text", "content": "What is this?" },
                    { "type": "blob", "mime_type": "image/png", "modality": "image", "content": "iVBOR" },
                ] },
                { "role": "assistant", "parts": [
                    { "type": "tool_call", "id": "call_1", "name": "roll_dice", "arguments": { "sides": 6 } },
                ] },
                { "role": "tool", "parts": [
                    { "type": "tool_call_response", "id": "call_1", "response": { "total": 4 } },
                ] },
            ])
        );
    }

    #[test]
    fn a_streamed_answer_becomes_one_output_message() {
        let mut output = Output::default();
        for event in [
            ModelEvent::ResponseModel("gpt-4o-2024-08-06".into()),
            ModelEvent::ReasoningDelta("Dice".into()),
            ModelEvent::ReasoningDelta(" needed.".into()),
            ModelEvent::ReasoningEnd {
                provider_metadata: None,
            },
            ModelEvent::TextDelta("Rolling".into()),
            ModelEvent::TextDelta(".".into()),
            ModelEvent::ToolCallStart {
                id: "call_1".into(),
                name: "roll_dice".into(),
            },
            ModelEvent::ToolCall {
                id: "call_1".into(),
                name: "roll_dice".into(),
                arguments: "{\"sides\":6}".into(),
            },
            ModelEvent::ToolCall {
                id: "call_2".into(),
                name: "roll_dice".into(),
                arguments: "{\"sides\"".into(),
            },
        ] {
            output.observe(&event);
        }
        assert_eq!(
            output.finish(FinishReason::ToolCalls),
            json!([{
                "role": "assistant",
                "parts": [
                    { "type": "reasoning", "content": "Dice needed." },
                    { "type": "text", "content": "Rolling." },
                    { "type": "tool_call", "id": "call_1", "name": "roll_dice", "arguments": { "sides": 6 } },
                    { "type": "tool_call", "id": "call_2", "name": "roll_dice", "arguments": "{\"sides\"" },
                ],
                "finish_reason": "tool_call",
            }])
        );
    }
}
