//! The ConverseStream request body, from the core's model messages.

use serde_json::{Map, Value, json};

use super::decode::PROVIDER_KEY;
use crate::model::data_url::DataUrl;
use crate::model::{
    AssistantContent, ModelMessage, ModelRequest, ModelSettings, ToolContent, ToolOutput,
    UserContent,
};

/// The output cap with thinking on when the request sets none: Claude on Bedrock needs one
/// above the budget.
const DEFAULT_MAX_TOKENS_WITH_THINKING: u32 = 4096;

/// The ConverseStream request body for `request` (the model id goes in the path, not here), with
/// thinking as `settings` and the request say.
pub fn request_body(request: &ModelRequest, settings: &ModelSettings) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message {
            ModelMessage::System { content } => {
                if !content.trim().is_empty() {
                    system.push(json!({ "text": content }));
                }
                continue;
            }
            ModelMessage::User { content } => ("user", user_blocks(content)),
            ModelMessage::Assistant { content } => ("assistant", assistant_blocks(content)),
            // Tool results travel in a user message.
            ModelMessage::Tool { content } => ("user", tool_blocks(content)),
        };
        if blocks.is_empty() {
            continue;
        }
        // Converse wants roles to alternate: consecutive messages of one role become one.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(existing) = last["content"].as_array_mut() {
                    existing.extend(blocks);
                }
            }
            _ => messages.push(json!({ "role": role, "content": blocks })),
        }
    }

    // Cache points after the instructions, the tools and the history so far: this call writes
    // them to the cache, and the next, whose prompt starts with them, reads them back.
    if settings.prompt_cache {
        if !system.is_empty() {
            system.push(cache_point());
        }
        if let Some(last) = messages.last_mut()
            && let Some(content) = last["content"].as_array_mut()
        {
            content.push(cache_point());
        }
    }
    let mut body = Map::new();
    body.insert("messages".into(), messages.into());
    if !system.is_empty() {
        body.insert("system".into(), system.into());
    }
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let schema = if tool.input_schema.is_object() {
                    tool.input_schema.clone()
                } else {
                    json!({ "type": "object", "properties": {} })
                };
                let mut spec = json!({ "name": tool.name, "inputSchema": { "json": schema } });
                // The API refuses an empty description.
                if !tool.description.trim().is_empty() {
                    spec["description"] = tool.description.clone().into();
                }
                json!({ "toolSpec": spec })
            })
            .collect();
        if settings.prompt_cache {
            tools.push(cache_point());
        }
        body.insert("toolConfig".into(), json!({ "tools": tools }));
    }
    let thinking_budget = settings.thinking_budget_for(request);
    let mut inference = Map::new();
    match (request.max_output_tokens, thinking_budget) {
        // The budget is part of the cap: the answer keeps the room it had without thinking.
        (max, Some(budget)) => {
            let max = max.unwrap_or(DEFAULT_MAX_TOKENS_WITH_THINKING) + budget;
            inference.insert("maxTokens".into(), max.into());
        }
        (Some(max), None) => {
            inference.insert("maxTokens".into(), max.into());
        }
        (None, None) => {}
    }
    // Claude refuses a temperature with thinking on.
    if let Some(temperature) = request
        .temperature
        .filter(|_| thinking_budget.is_none())
        .and_then(crate::model::f32_to_json)
    {
        inference.insert("temperature".into(), temperature);
    }
    if let Some(budget) = thinking_budget {
        // Claude's own request field, passed through by Converse.
        body.insert(
            "additionalModelRequestFields".into(),
            json!({ "thinking": { "type": "enabled", "budget_tokens": budget } }),
        );
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), inference.into());
    }
    Value::Object(body)
}

fn cache_point() -> Value {
    json!({ "cachePoint": { "type": "default" } })
}

fn user_blocks(content: &[UserContent]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|item| match item {
            // The API refuses blank text blocks.
            UserContent::Text { text } if text.trim().is_empty() => None,
            UserContent::Text { text } => Some(json!({ "text": text })),
            UserContent::File {
                data,
                media_type,
                filename,
            } => Some(file_block(data, media_type, filename.as_deref())),
        })
        .collect()
}

/// Images and documents go inline as bytes (Converse takes no web URLs); anything it cannot take
/// becomes a note, so one unsupported attachment does not fail the whole request.
fn file_block(data: &str, media_type: &str, filename: Option<&str>) -> Value {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let base64 = DataUrl::parse(data)
        .filter(|url| url.base64)
        .map(|url| url.payload);
    let note = || json!({ "text": format!("[attached file of type {media_type}]") });
    let Some(base64) = base64 else {
        return note();
    };
    let image_format = match essence.as_str() {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    };
    if let Some(format) = image_format {
        return json!({ "image": { "format": format, "source": { "bytes": base64 } } });
    }
    let document_format = match essence.as_str() {
        "application/pdf" => Some("pdf"),
        "text/csv" => Some("csv"),
        "application/msword" => Some("doc"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Some("docx"),
        "application/vnd.ms-excel" => Some("xls"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Some("xlsx"),
        "text/html" => Some("html"),
        "text/plain" => Some("txt"),
        "text/markdown" => Some("md"),
        _ => None,
    };
    match document_format {
        Some(format) => json!({
            "document": {
                "format": format,
                "name": document_name(filename.unwrap_or("document")),
                "source": { "bytes": base64 },
            }
        }),
        None => note(),
    }
}

/// A document name as the API accepts it: letters, digits, single spaces, hyphens, parentheses
/// and square brackets (the extension goes in `format`).
fn document_name(filename: &str) -> String {
    let stem = filename.rsplit_once('.').map_or(filename, |(stem, _)| stem);
    let mut name = String::new();
    for ch in stem.chars() {
        let ch = if ch.is_alphanumeric() || matches!(ch, '-' | '(' | ')' | '[' | ']') {
            ch
        } else {
            ' '
        };
        if ch == ' ' && (name.is_empty() || name.ends_with(' ')) {
            continue;
        }
        name.push(ch);
    }
    let name = name.trim_end();
    if name.is_empty() {
        "document".to_owned()
    } else {
        name.chars().take(200).collect()
    }
}

fn assistant_blocks(content: &[AssistantContent]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|item| match item {
            AssistantContent::Text { text } if !text.trim().is_empty() => {
                Some(json!({ "text": text }))
            }
            AssistantContent::ToolCall {
                tool_call_id,
                tool_name,
                input,
                provider_executed: false,
            } => {
                // The API takes only an object. A call the engine refused as malformed keeps its
                // raw text as input; sending that would fail every later call of the chat, and
                // its error result already tells the model what went wrong.
                let input = if input.is_object() {
                    input.clone()
                } else {
                    json!({})
                };
                Some(json!({
                    "toolUse": { "toolUseId": tool_call_id, "name": tool_name, "input": input }
                }))
            }
            AssistantContent::Reasoning {
                text,
                provider_options,
            } => reasoning_block(text, provider_options.as_ref()),
            _ => None,
        })
        .collect()
}

/// Reasoning goes back as it came, which the model checks by its signature (or as its encrypted
/// copy); with thinking on, Claude refuses a tool loop's assistant message without it.
/// Reasoning without either (another provider's) cannot go back.
fn reasoning_block(text: &str, provider_options: Option<&Value>) -> Option<Value> {
    let kept = provider_options?.get(PROVIDER_KEY)?;
    if let Some(signature) = kept.get("signature").and_then(Value::as_str) {
        return Some(json!({
            "reasoningContent": { "reasoningText": { "text": text, "signature": signature } }
        }));
    }
    let redacted = kept.get("redactedContent").and_then(Value::as_str)?;
    Some(json!({ "reasoningContent": { "redactedContent": redacted } }))
}

fn tool_blocks(content: &[ToolContent]) -> Vec<Value> {
    content
        .iter()
        .filter_map(|item| match item {
            ToolContent::ToolResult(result) => {
                let content = match &result.output {
                    ToolOutput::Json(value) if value.is_object() => json!([{ "json": value }]),
                    other => json!([{ "text": other.to_text() }]),
                };
                let status = match result.output {
                    ToolOutput::ErrorText(_) | ToolOutput::ExecutionDenied(_) => "error",
                    ToolOutput::Text(_) | ToolOutput::Json(_) => "success",
                };
                Some(json!({
                    "toolResult": {
                        "toolUseId": result.tool_call_id,
                        "content": content,
                        "status": status,
                    }
                }))
            }
            // The engine has acted on the approval; the model only needs the result.
            ToolContent::ToolApprovalResponse { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolResult, ToolSpec};

    #[test]
    fn requests_carry_system_tools_results_and_inference_settings() {
        let request = ModelRequest {
            messages: vec![
                ModelMessage::System {
                    content: "Be brief.".into(),
                },
                ModelMessage::User {
                    content: vec![
                        UserContent::Text {
                            text: "Roll".into(),
                        },
                        UserContent::Text { text: " ".into() },
                    ],
                },
                ModelMessage::Assistant {
                    content: vec![
                        AssistantContent::Reasoning {
                            text: "thinking".into(),
                            provider_options: None,
                        },
                        AssistantContent::Text {
                            text: "Sure.".into(),
                        },
                        AssistantContent::ToolCall {
                            tool_call_id: "t1".into(),
                            tool_name: "roll_dice".into(),
                            input: json!({"sides": 6}),
                            provider_executed: false,
                        },
                        AssistantContent::ToolCall {
                            tool_call_id: "t2".into(),
                            tool_name: "x".into(),
                            input: json!("{not json"),
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
                    content: vec![
                        UserContent::File {
                            data: "data:image/png;base64,AAAA".into(),
                            media_type: "image/png".into(),
                            filename: None,
                        },
                        UserContent::File {
                            data: "data:application/pdf;base64,JVBE".into(),
                            media_type: "application/pdf".into(),
                            filename: Some("Q3 report (final).v2.pdf".into()),
                        },
                        UserContent::File {
                            data: "https://example.com/cat.png".into(),
                            media_type: "image/png".into(),
                            filename: None,
                        },
                    ],
                },
            ],
            tools: vec![
                ToolSpec {
                    name: "roll_dice".into(),
                    description: "Rolls.".into(),
                    input_schema: json!({"type": "object"}),
                },
                ToolSpec {
                    name: "now".into(),
                    description: String::new(),
                    input_schema: Value::Null,
                },
            ],
            max_output_tokens: Some(500),
            temperature: Some(0.7),
            ..ModelRequest::default()
        };
        let body = request_body(&request, &NO_CACHE);
        assert_eq!(body["system"], json!([{"text": "Be brief."}]));
        assert_eq!(
            body["inferenceConfig"],
            json!({"maxTokens": 500, "temperature": 0.7})
        );
        assert_eq!(
            body["toolConfig"]["tools"],
            json!([
                {"toolSpec": {"name": "roll_dice", "description": "Rolls.", "inputSchema": {"json": {"type": "object"}}}},
                {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
            ])
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"text": "Roll"}]},
                {"role": "assistant", "content": [
                    {"text": "Sure."},
                    {"toolUse": {"toolUseId": "t1", "name": "roll_dice", "input": {"sides": 6}}},
                    {"toolUse": {"toolUseId": "t2", "name": "x", "input": {}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"total": 4}}], "status": "success"}},
                    {"toolResult": {"toolUseId": "t2", "content": [{"text": "boom"}], "status": "error"}},
                    {"image": {"format": "png", "source": {"bytes": "AAAA"}}},
                    {"document": {"format": "pdf", "name": "Q3 report (final) v2", "source": {"bytes": "JVBE"}}},
                    {"text": "[attached file of type image/png]"}
                ]}
            ])
        );
        let bare = request_body(&ModelRequest::default(), &ModelSettings::default());
        assert_eq!(bare, json!({"messages": []}));

        let cached = request_body(&request, &ModelSettings::default());
        let point = json!({"cachePoint": {"type": "default"}});
        assert_eq!(cached["system"], json!([{"text": "Be brief."}, point]));
        assert_eq!(cached["toolConfig"]["tools"][2], point);
        assert_eq!(cached["messages"][2]["content"][5], point);
        assert_eq!(
            cached["messages"][1]["content"].as_array().map(Vec::len),
            Some(3)
        );
    }

    const NO_CACHE: ModelSettings = ModelSettings {
        thinking_budget: None,
        prompt_cache: false,
    };

    #[test]
    fn reasoning_goes_back_with_its_signature_and_thinking_is_asked_for() {
        let turn = |provider_options: Option<Value>| ModelRequest {
            messages: vec![ModelMessage::Assistant {
                content: vec![
                    AssistantContent::Reasoning {
                        text: "A d6.".into(),
                        provider_options,
                    },
                    AssistantContent::Text {
                        text: "Rolling.".into(),
                    },
                ],
            }],
            temperature: Some(0.5),
            ..ModelRequest::default()
        };
        let thinking = ModelSettings {
            thinking_budget: Some(1024),
            ..ModelSettings::default()
        };
        let body = request_body(
            &turn(Some(json!({"amazonBedrock": {"signature": "sig"}}))),
            &thinking,
        );
        assert_eq!(
            body["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
        );
        assert_eq!(body["inferenceConfig"], json!({"maxTokens": 4096 + 1024}));
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"reasoningContent": {"reasoningText": {"text": "A d6.", "signature": "sig"}}})
        );
        let body = request_body(
            &turn(Some(json!({"amazonBedrock": {"redactedContent": "RU5D"}}))),
            &ModelSettings::default(),
        );
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"reasoningContent": {"redactedContent": "RU5D"}})
        );
        assert!(body.get("additionalModelRequestFields").is_none());
        assert_eq!(body["inferenceConfig"], json!({"temperature": 0.5}));
        let body = request_body(&turn(None), &NO_CACHE);
        assert_eq!(
            body["messages"][0]["content"],
            json!([{"text": "Rolling."}])
        );
    }
}
