//! The Messages request body, from the core's model messages.

use serde_json::{Value, json};

use super::decode::PROVIDER_KEY;
use crate::model::data_url::DataUrl;
use crate::model::{
    AssistantContent, ModelMessage, ModelRequest, ModelSettings, ToolContent, ToolOutput,
    UserContent,
};

/// The API version header every request carries.
pub const API_VERSION: &str = "2023-06-01";
/// Anthropic requires a cap on output tokens; this one fits every current model.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The Messages request body for `request`, with thinking as `settings` and the request say.
pub fn request_body(model: &str, request: &ModelRequest, settings: &ModelSettings) -> Value {
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
    let thinking_budget = settings.thinking_budget_for(request);
    // The budget is part of `max_tokens`: the answer keeps the room it had without thinking.
    let max_tokens =
        request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS) + thinking_budget.unwrap_or(0);
    let mut body = json!({
        "model": model,
        "max_tokens": max_tokens,
        "messages": messages,
        "stream": true,
    });
    if let Some(budget) = thinking_budget {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    }
    if !system.is_empty() {
        let system = system.join("\n\n");
        body["system"] = if settings.prompt_cache {
            json!([{"type": "text", "text": system, "cache_control": ephemeral()}])
        } else {
            Value::String(system)
        };
    }
    if !request.tools.is_empty() {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema})
            })
            .collect();
        if settings.prompt_cache
            && let Some(last) = tools.last_mut()
        {
            last["cache_control"] = ephemeral();
        }
        body["tools"] = tools.into();
    }
    if settings.prompt_cache {
        mark_the_history(&mut body["messages"]);
    }
    // The API refuses a temperature with thinking on.
    if let Some(temperature) = request
        .temperature
        .filter(|_| thinking_budget.is_none())
        .and_then(|t| serde_json::Number::from_f64(f64::from(t)))
    {
        body["temperature"] = Value::Number(temperature);
    }
    body
}

/// A prompt cache breakpoint: the prompt up to here is cached for five minutes, refreshed by
/// every read.
fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// The last block of the history that can carry a breakpoint (thinking cannot, nor empty text)
/// gets one: this call writes the conversation so far to the cache, and the next call, whose
/// prompt starts with all of it, reads it back. With the breakpoints on the system prompt and
/// the tools, three of the API's four.
fn mark_the_history(messages: &mut Value) {
    let Some(blocks) = messages
        .as_array_mut()
        .and_then(|messages| messages.last_mut())
        .and_then(|last| last["content"].as_array_mut())
    else {
        return;
    };
    let markable = blocks.iter_mut().rev().find(|block| {
        let kind = block["type"].as_str().unwrap_or_default();
        let empty_text = kind == "text" && block["text"].as_str().is_none_or(str::is_empty);
        !(empty_text || matches!(kind, "thinking" | "redacted_thinking"))
    });
    if let Some(block) = markable {
        block["cache_control"] = ephemeral();
    }
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
            AssistantContent::Reasoning {
                text,
                provider_options,
            } => thinking_block(text, provider_options.as_ref()),
            _ => None,
        })
        .collect()
}

/// Thinking goes back as it came, which the API checks by its signature (or as the encrypted
/// data of redacted thinking); with thinking on, the API refuses a tool loop's assistant message
/// without it. Reasoning without either (another provider's) cannot go back.
fn thinking_block(text: &str, provider_options: Option<&Value>) -> Option<Value> {
    let kept = provider_options?.get(PROVIDER_KEY)?;
    if let Some(signature) = kept.get("signature").and_then(Value::as_str) {
        return Some(json!({"type": "thinking", "thinking": text, "signature": signature}));
    }
    let data = kept.get("redactedData").and_then(Value::as_str)?;
    Some(json!({"type": "redacted_thinking", "data": data}))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolResult, ToolSpec};

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
                            provider_options: None,
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
            ..ModelRequest::default()
        };
        let no_cache = ModelSettings {
            prompt_cache: false,
            ..ModelSettings::default()
        };
        let body = request_body("claude-x", &request, &no_cache);
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

        let cached = request_body("claude-x", &request, &ModelSettings::default());
        let breakpoint = json!({"type": "ephemeral"});
        assert_eq!(
            cached["system"],
            json!([{"type": "text", "text": "Be brief.", "cache_control": breakpoint}])
        );
        assert_eq!(cached["tools"][0]["cache_control"], breakpoint);
        let history = cached["messages"].as_array().expect("messages");
        let marked: Vec<(usize, usize)> = history
            .iter()
            .enumerate()
            .flat_map(|(m, message)| {
                let blocks = message["content"].as_array().cloned().unwrap_or_default();
                blocks
                    .into_iter()
                    .enumerate()
                    .filter(|(_, block)| block.get("cache_control").is_some())
                    .map(move |(b, _)| (m, b))
            })
            .collect();
        assert_eq!(marked, [(2, 2)], "only the history's last block");
    }

    #[test]
    fn the_history_breakpoint_skips_thinking_and_empty_text() {
        let mut messages = json!([{"role": "assistant", "content": [
            {"type": "text", "text": "Hi"},
            {"type": "text", "text": ""},
            {"type": "thinking", "thinking": "t", "signature": "s"}
        ]}]);
        mark_the_history(&mut messages);
        assert_eq!(messages[0]["content"][0]["cache_control"], ephemeral());
        assert!(messages[0]["content"][1].get("cache_control").is_none());
        assert!(messages[0]["content"][2].get("cache_control").is_none());
        let mut empty = json!([]);
        mark_the_history(&mut empty);
        assert_eq!(empty, json!([]));
    }
}

#[cfg(test)]
mod thinking_tests {
    use super::*;

    fn turn_with_reasoning(provider_options: Option<Value>) -> ModelRequest {
        ModelRequest {
            messages: vec![
                ModelMessage::User {
                    content: vec![UserContent::Text {
                        text: "Roll".into(),
                    }],
                },
                ModelMessage::Assistant {
                    content: vec![
                        AssistantContent::Reasoning {
                            text: "A d6.".into(),
                            provider_options,
                        },
                        AssistantContent::ToolCall {
                            tool_call_id: "t1".into(),
                            tool_name: "roll".into(),
                            input: json!({}),
                            provider_executed: false,
                        },
                    ],
                },
            ],
            temperature: Some(0.5),
            ..ModelRequest::default()
        }
    }

    #[test]
    fn thinking_goes_back_with_its_signature_and_the_budget_is_asked_for() {
        let settings = ModelSettings {
            thinking_budget: Some(2000),
            ..ModelSettings::default()
        };
        let signed = turn_with_reasoning(Some(json!({"anthropic": {"signature": "sig"}})));
        let body = request_body("claude-x", &signed, &settings);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2000})
        );
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS + 2000);
        assert!(
            body.get("temperature").is_none(),
            "no temperature with thinking"
        );
        assert_eq!(
            body["messages"][1]["content"][0],
            json!({"type": "thinking", "thinking": "A d6.", "signature": "sig"})
        );
        let redacted = turn_with_reasoning(Some(json!({"anthropic": {"redactedData": "ENC"}})));
        let body = request_body("claude-x", &redacted, &ModelSettings::default());
        assert_eq!(
            body["messages"][1]["content"][0],
            json!({"type": "redacted_thinking", "data": "ENC"})
        );
        assert!(body.get("thinking").is_none());
        assert_eq!(body["temperature"], 0.5);
        for unsigned in [None, Some(json!({"openai": {"itemId": "rs_1"}}))] {
            let body = request_body(
                "claude-x",
                &turn_with_reasoning(unsigned),
                &ModelSettings::default(),
            );
            assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        }
    }
}
