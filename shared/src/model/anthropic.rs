//! Anthropic's Messages API, streaming: text, extended thinking and tool use. The request
//! builder and the stream decoder are sans IO; `Model::stream` does the one HTTP call.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::data_url::DataUrl;
use super::sse::SseEvent;
use super::tool_call::StreamedToolCall;
use super::transport::{
    EventDecoder, ProviderClient, decode_sse_stream, error_message, send_checked,
};
use super::{
    AssistantContent, FinishReason, Model, ModelError, ModelEvent, ModelMessage, ModelRequest,
    ModelStream, ToolContent, ToolOutput, Usage, UserContent,
};

/// The API version header every request carries.
pub const API_VERSION: &str = "2023-06-01";
/// Anthropic requires a cap on output tokens; this one fits every current model.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The Messages request body for `request`.
pub fn request_body(model: &str, request: &ModelRequest) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ModelMessage::System { content } => {
                system.push(content.clone());
                continue;
            }
            ModelMessage::User { content } => ("user", user_blocks(content)),
            ModelMessage::Assistant { content } => ("assistant", assistant_blocks(content)),
            ModelMessage::Tool { content } => ("user", tool_blocks(content)),
        };
        if blocks.is_empty() {
            continue;
        }
        // The API wants roles to alternate: consecutive messages of one role become one.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(existing) = last["content"].as_array_mut() {
                    existing.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = Value::String(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema})
            })
            .collect();
    }
    if let Some(temperature) = request
        .temperature
        .and_then(|t| serde_json::Number::from_f64(f64::from(t)))
    {
        body["temperature"] = Value::Number(temperature);
    }
    body
}

fn user_blocks(content: &[UserContent]) -> Vec<Value> {
    content
        .iter()
        .map(|item| match item {
            UserContent::Text { text } => json!({"type": "text", "text": text}),
            UserContent::File {
                data, media_type, ..
            } => file_block(data, media_type),
        })
        .collect()
}

/// Images and PDFs go as sources (base64 from a data URL, or a URL); anything else as a note.
fn file_block(data: &str, media_type: &str) -> Value {
    let kind = match media_type {
        m if m.starts_with("image/") => "image",
        "application/pdf" => "document",
        _ => {
            return json!({"type": "text", "text": format!("[attached file of type {media_type}]")});
        }
    };
    let source = match DataUrl::parse(data) {
        Some(url) if url.base64 => {
            json!({"type": "base64", "media_type": url.media_type, "data": url.payload})
        }
        _ => json!({"type": "url", "url": data}),
    };
    json!({"type": kind, "source": source})
}

fn assistant_blocks(content: &[AssistantContent]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|item| match item {
            AssistantContent::Text { text } if !text.is_empty() => {
                Some(json!({"type": "text", "text": text}))
            }
            AssistantContent::ToolCall {
                tool_call_id,
                tool_name,
                input,
                provider_executed: false,
            } => Some(
                json!({"type": "tool_use", "id": tool_call_id, "name": tool_name, "input": input}),
            ),
            // Thinking can only be sent back with the signature the API gave it, which the UI
            // message does not keep; the model does not need its old thoughts.
            _ => None,
        })
        .collect()
}

fn tool_blocks(content: &[ToolContent]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|item| match item {
            ToolContent::ToolResult(result) => {
                let is_error = matches!(
                    result.output,
                    ToolOutput::ErrorText(_) | ToolOutput::ExecutionDenied(_)
                );
                let mut block = json!({
                    "type": "tool_result",
                    "tool_use_id": result.tool_call_id,
                    "content": result.output.to_text(),
                });
                if is_error {
                    block["is_error"] = Value::Bool(true);
                }
                Some(block)
            }
            ToolContent::ToolApprovalResponse { .. } => None,
        })
        .collect()
}

/// A content block being streamed.
enum Block {
    Text,
    Thinking,
    ToolUse(StreamedToolCall),
    Other,
}

/// The Messages stream, event by event.
#[derive(Default)]
pub struct MessagesDecoder {
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<FinishReason>,
    finished: bool,
}

impl MessagesDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn protocol(what: &str) -> ModelError {
        ModelError::Protocol(format!("unexpected Messages event: {what}"))
    }
}

fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

impl EventDecoder for MessagesDecoder {
    fn push(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished || event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ModelError::Protocol(format!("an event is not JSON: {e}")))?;
        let kind = data["type"]
            .as_str()
            .or(event.event.as_deref())
            .unwrap_or_default();
        let index = data["index"].as_u64().unwrap_or(0);
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                let usage = &data["message"]["usage"];
                self.usage.input_tokens = count(&usage["input_tokens"])
                    + count(&usage["cache_read_input_tokens"])
                    + count(&usage["cache_creation_input_tokens"]);
                self.usage.cached_input_tokens = count(&usage["cache_read_input_tokens"]);
                self.usage.output_tokens = count(&usage["output_tokens"]);
            }
            "content_block_start" => {
                let block = &data["content_block"];
                let started = match block["type"].as_str() {
                    Some("text") => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(ModelEvent::TextDelta(text.to_owned()));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking,
                    Some("tool_use") => {
                        let id = block["id"]
                            .as_str()
                            .ok_or_else(|| Self::protocol("tool_use without id"))?;
                        let name = block["name"]
                            .as_str()
                            .ok_or_else(|| Self::protocol("tool_use without name"))?;
                        Block::ToolUse(StreamedToolCall::start(
                            id.to_owned(),
                            name.to_owned(),
                            &mut out,
                        ))
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, started);
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                let block = self
                    .blocks
                    .get_mut(&index)
                    .ok_or_else(|| Self::protocol("a delta for a block never started"))?;
                match (delta["type"].as_str(), block) {
                    (Some("text_delta"), Block::Text) => out.push(ModelEvent::TextDelta(
                        delta["text"].as_str().unwrap_or_default().to_owned(),
                    )),
                    (Some("thinking_delta"), Block::Thinking) => {
                        out.push(ModelEvent::ReasoningDelta(
                            delta["thinking"].as_str().unwrap_or_default().to_owned(),
                        ))
                    }
                    (Some("input_json_delta"), Block::ToolUse(call)) => call.push_arguments(
                        delta["partial_json"].as_str().unwrap_or_default(),
                        &mut out,
                    ),
                    // Signatures and deltas of blocks we do not surface.
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(Block::ToolUse(call)) = self.blocks.remove(&index) {
                    out.push(call.finish());
                }
            }
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(stop_reason(reason));
                }
                if let Some(output) = data["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = output;
                }
            }
            "message_stop" => {
                self.finished = true;
                out.push(ModelEvent::Finish {
                    reason: self.stop_reason.unwrap_or(FinishReason::Stop),
                    usage: self.usage,
                });
            }
            "error" => return Err(ModelError::Stream(error_message(&data["error"]))),
            // `ping`, and event types added after this was written.
            _ => {}
        }
        Ok(out)
    }

    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished {
            Ok(Vec::new())
        } else {
            Err(ModelError::Transport(
                "the stream ended before `message_stop`".into(),
            ))
        }
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

/// A model behind Anthropic's Messages API.
#[derive(Clone)]
pub struct Anthropic {
    base_url: String,
    api_key: String,
    model: String,
    client: ProviderClient,
}

/// Never the key: clients end up in logs and panics.
impl std::fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anthropic")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl Anthropic {
    pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";
    pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";

    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        model: impl Into<String>,
    ) -> Result<Self, ModelError> {
        Ok(Anthropic {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            model: model.into(),
            client: ProviderClient::new(),
        })
    }
}

#[async_trait]
impl Model for Anthropic {
    fn id(&self) -> String {
        format!("anthropic:{}", self.model)
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        let body = request_body(&self.model, &request);
        let request = self
            .client
            .post(&format!("{}/messages", self.base_url))?
            .header("x-api-key", &self.api_key)
            .header("anthropic-version", API_VERSION)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(body.to_string());
        let response = send_checked(request).await?;
        Ok(decode_sse_stream(
            response.into_body(),
            MessagesDecoder::new(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolResult, ToolSpec};

    fn event(data: Value) -> SseEvent {
        SseEvent {
            event: data["type"].as_str().map(str::to_owned),
            data: data.to_string(),
            id: None,
        }
    }

    fn decode(events: &[Value]) -> Result<Vec<ModelEvent>, ModelError> {
        let mut decoder = MessagesDecoder::new();
        let mut out = Vec::new();
        for data in events {
            out.extend(decoder.push(&event(data.clone()))?);
        }
        out.extend(decoder.end()?);
        Ok(out)
    }

    #[test]
    fn text_thinking_and_tool_use_stream_into_model_events() {
        let events = decode(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":1}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Hmm."}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
            json!({"type":"ping"}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Rolling."}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"roll_dice","input":{}}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"sides\": "}}),
            json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"20}"}}),
            json!({"type":"content_block_stop","index":2}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":40}}),
            json!({"type":"message_stop"}),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                ModelEvent::ReasoningDelta("Hmm.".into()),
                ModelEvent::TextDelta("Rolling.".into()),
                ModelEvent::ToolCallStart {
                    id: "toolu_1".into(),
                    name: "roll_dice".into()
                },
                ModelEvent::ToolCallDelta {
                    id: "toolu_1".into(),
                    arguments_delta: "{\"sides\": ".into()
                },
                ModelEvent::ToolCallDelta {
                    id: "toolu_1".into(),
                    arguments_delta: "20}".into()
                },
                ModelEvent::ToolCall {
                    id: "toolu_1".into(),
                    name: "roll_dice".into(),
                    arguments: "{\"sides\": 20}".into()
                },
                ModelEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage: Usage {
                        input_tokens: 15,
                        output_tokens: 40,
                        reasoning_tokens: 0,
                        cached_input_tokens: 3
                    },
                },
            ]
        );
    }

    #[test]
    fn errors_and_early_ends_are_reported() {
        let error = decode(&[
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ]);
        assert_eq!(error, Err(ModelError::Stream("Overloaded".into())));
        let early = decode(&[json!({"type":"message_start","message":{"usage":{}}})]);
        assert!(matches!(early, Err(ModelError::Transport(_))));
        let stray = decode(&[
            json!({"type":"content_block_delta","index":4,"delta":{"type":"text_delta","text":"x"}}),
        ]);
        assert!(matches!(stray, Err(ModelError::Protocol(_))));
        let mut decoder = MessagesDecoder::new();
        let garbage = SseEvent {
            event: None,
            data: "{nope".into(),
            id: None,
        };
        assert!(matches!(
            decoder.push(&garbage),
            Err(ModelError::Protocol(_))
        ));
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        for (reason, expected) in [
            ("end_turn", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("pause_turn", FinishReason::Other),
        ] {
            assert_eq!(stop_reason(reason), expected);
        }
    }

    #[test]
    fn requests_merge_roles_and_carry_tools_and_results() {
        let request = ModelRequest {
            messages: vec![
                ModelMessage::System {
                    content: "Be brief.".into(),
                },
                ModelMessage::User {
                    content: vec![UserContent::Text {
                        text: "Roll".into(),
                    }],
                },
                ModelMessage::Assistant {
                    content: vec![
                        AssistantContent::Reasoning {
                            text: "thinking".into(),
                        },
                        AssistantContent::ToolCall {
                            tool_call_id: "t1".into(),
                            tool_name: "roll_dice".into(),
                            input: json!({}),
                            provider_executed: false,
                        },
                    ],
                },
                ModelMessage::Tool {
                    content: vec![
                        ToolContent::ToolResult(ToolResult {
                            tool_call_id: "t1".into(),
                            tool_name: "roll_dice".into(),
                            output: ToolOutput::Json(json!({"total": 4})),
                        }),
                        ToolContent::ToolResult(ToolResult {
                            tool_call_id: "t2".into(),
                            tool_name: "x".into(),
                            output: ToolOutput::ErrorText("boom".into()),
                        }),
                    ],
                },
                ModelMessage::User {
                    content: vec![UserContent::File {
                        data: "data:image/png;base64,AAAA".into(),
                        media_type: "image/png".into(),
                        filename: None,
                    }],
                },
            ],
            tools: vec![ToolSpec {
                name: "roll_dice".into(),
                description: "Rolls.".into(),
                input_schema: json!({"type": "object"}),
            }],
            max_output_tokens: None,
            temperature: None,
        };
        let body = request_body("claude-x", &request);
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        let messages = body["messages"].as_array().expect("messages");
        assert_eq!(
            messages.len(),
            3,
            "tool results and the next user turn merge"
        );
        assert_eq!(
            messages[1]["content"],
            json!([{"type": "tool_use", "id": "t1", "name": "roll_dice", "input": {}}])
        );
        assert_eq!(
            messages[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "t1", "content": "{\"total\":4}"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "boom", "is_error": true},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
            ])
        );
    }
}
