//! The JSON body of a streaming chat completions call, from the core's model messages.

use serde_json::{Map, Value, json};

use crate::model::attachment;
use crate::model::data_url::DataUrl;
use crate::model::{AssistantContent, ModelMessage, ModelRequest, ToolContent, UserContent};

/// Which request field carries the output token limit. OpenAI's reasoning models reject the
/// older `max_tokens`, while several compatible servers only know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensParam {
    /// `max_tokens`, which most compatible servers know.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`, which OpenAI's own API wants.
    MaxCompletionTokens,
}

impl MaxTokensParam {
    fn field(self) -> &'static str {
        match self {
            MaxTokensParam::MaxTokens => "max_tokens",
            MaxTokensParam::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// The JSON body of a streaming chat completions call, limiting output with `max_tokens`.
pub fn request_body(model: &str, request: &ModelRequest) -> Value {
    request_body_with(model, request, MaxTokensParam::MaxTokens)
}

/// The JSON body of a streaming chat completions call.
pub fn request_body_with(
    model: &str,
    request: &ModelRequest,
    max_tokens_param: MaxTokensParam,
) -> Value {
    let mut messages = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        push_message(message, &mut messages);
    }

    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("messages".into(), messages.into());
    body.insert("stream".into(), true.into());
    body.insert("stream_options".into(), json!({ "include_usage": true }));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let parameters = if tool.input_schema.is_object() {
                    tool.input_schema.clone()
                } else {
                    // The API insists on an object schema; a tool without one takes no input.
                    json!({ "type": "object", "properties": {} })
                };
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": parameters,
                    },
                })
            })
            .collect::<Vec<_>>();
        body.insert("tools".into(), tools.into());
    }
    if let Some(max) = request.max_output_tokens {
        body.insert(max_tokens_param.field().into(), max.into());
    }
    if let Some(temperature) = request.temperature.and_then(crate::model::f32_to_json) {
        body.insert("temperature".into(), temperature);
    }
    Value::Object(body)
}

fn push_message(message: &ModelMessage, out: &mut Vec<Value>) {
    match message {
        ModelMessage::System { content } => {
            out.push(json!({ "role": "system", "content": content }));
        }
        ModelMessage::User { content } => {
            out.push(json!({ "role": "user", "content": user_content(content) }));
        }
        ModelMessage::Assistant { content } => {
            if let Some(message) = assistant_message(content) {
                out.push(message);
            }
        }
        ModelMessage::Tool { content } => {
            for part in content {
                match part {
                    ToolContent::ToolResult(result) => out.push(json!({
                        "role": "tool",
                        "tool_call_id": result.tool_call_id,
                        "content": result.output.to_text(),
                    })),
                    // The engine has already acted on the approval; the model only needs the
                    // result (or the denial) that followed it.
                    ToolContent::ToolApprovalResponse { .. } => {}
                }
            }
        }
    }
}

/// A plain string when the message is only text (every compatible server accepts that), parts
/// otherwise.
fn user_content(content: &[UserContent]) -> Value {
    let only_text = content
        .iter()
        .all(|part| matches!(part, UserContent::Text { .. }));
    if only_text {
        let texts: Vec<&str> = content
            .iter()
            .filter_map(|part| match part {
                UserContent::Text { text } => Some(text.as_str()),
                UserContent::File { .. } => None,
            })
            .collect();
        return texts.join("\n").into();
    }
    content
        .iter()
        .map(|part| match part {
            UserContent::Text { text } => json!({ "type": "text", "text": text }),
            UserContent::File {
                data,
                media_type,
                filename,
            } => file_part(data, media_type, filename.as_deref()),
        })
        .collect::<Vec<_>>()
        .into()
}

/// A user file as the chat completions API takes it: images by URL, PDFs and audio inline,
/// text decoded into the prompt. Anything else becomes a note, so the model knows a file was
/// attached rather than the whole request failing on one unsupported attachment.
fn file_part(data: &str, media_type: &str, filename: Option<&str>) -> Value {
    let essence = attachment::essence(media_type);
    let essence = essence.as_str();
    let data_url = DataUrl::parse(data);

    if essence.starts_with("image/") {
        return json!({ "type": "image_url", "image_url": { "url": data } });
    }
    if let Some(data_url) = &data_url {
        if essence == "application/pdf" {
            return json!({
                "type": "file",
                "file": { "filename": filename.unwrap_or("document.pdf"), "file_data": data },
            });
        }
        let audio_format = match essence {
            "audio/wav" | "audio/x-wav" | "audio/wave" => Some("wav"),
            "audio/mpeg" | "audio/mp3" => Some("mp3"),
            _ => None,
        };
        if let Some(format) = audio_format
            && data_url.base64
        {
            return json!({
                "type": "input_audio",
                "input_audio": { "data": data_url.payload, "format": format },
            });
        }
        if let Some(text) = attachment::inline_text(data_url, essence, filename) {
            return json!({ "type": "text", "text": text });
        }
    }
    let note = attachment::unreadable_note(data, media_type, filename);
    json!({ "type": "text", "text": note })
}

fn assistant_message(content: &[AssistantContent]) -> Option<Value> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in content {
        match part {
            AssistantContent::Text { text: part } => text.push_str(part),
            AssistantContent::ToolCall {
                tool_call_id,
                tool_name,
                input,
                provider_executed: false,
            } => tool_calls.push(json!({
                "id": tool_call_id,
                "type": "function",
                "function": { "name": tool_name, "arguments": input.to_string() },
            })),
            // Provider-executed calls and their results happened on the provider's side; a
            // chat completions server would reject a call without a matching tool message.
            // Reasoning is not sent back, and assistant files have no place on this wire.
            AssistantContent::ToolCall { .. }
            | AssistantContent::ToolResult(_)
            | AssistantContent::ToolApprovalRequest { .. }
            | AssistantContent::Reasoning { .. }
            | AssistantContent::File { .. } => {}
        }
    }
    if text.is_empty() && tool_calls.is_empty() {
        // Nothing the API can carry (say, reasoning only): an empty assistant turn is noise.
        return None;
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert(
        "content".into(),
        if text.is_empty() {
            Value::Null
        } else {
            text.into()
        },
    );
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), tool_calls.into());
    }
    Some(Value::Object(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolOutput, ToolResult, ToolSpec};

    #[test]
    fn request_body_shape() {
        let request = ModelRequest {
            messages: vec![ModelMessage::User {
                content: vec![UserContent::Text { text: "Hi".into() }],
            }],
            tools: vec![ToolSpec {
                name: "weather".into(),
                description: "Weather in a city".into(),
                input_schema: json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
            }],
            max_output_tokens: Some(256),
            temperature: Some(0.7),
            thinking_budget: None,
        };
        assert_eq!(
            request_body("gpt-4o-mini", &request),
            json!({
                "model": "gpt-4o-mini",
                "messages": [{ "role": "user", "content": "Hi" }],
                "stream": true,
                "stream_options": { "include_usage": true },
                "tools": [{ "type": "function", "function": {
                    "name": "weather",
                    "description": "Weather in a city",
                    "parameters": { "type": "object", "properties": { "city": { "type": "string" } } },
                } }],
                "max_tokens": 256,
                "temperature": 0.7,
            })
        );
        let body = request_body_with("o3", &request, MaxTokensParam::MaxCompletionTokens);
        assert_eq!(body["max_completion_tokens"], 256);
        assert!(body.get("max_tokens").is_none());
    }

    #[test]
    fn request_body_leaves_out_unset_options() {
        let body = request_body("m", &ModelRequest::default());
        assert_eq!(
            body,
            json!({
                "model": "m",
                "messages": [],
                "stream": true,
                "stream_options": { "include_usage": true },
            })
        );
    }

    #[test]
    fn tool_without_object_schema_gets_an_empty_one() {
        let request = ModelRequest {
            tools: vec![ToolSpec {
                name: "now".into(),
                description: "The time".into(),
                input_schema: Value::Null,
            }],
            ..ModelRequest::default()
        };
        assert_eq!(
            request_body("m", &request)["tools"][0]["function"]["parameters"],
            json!({ "type": "object", "properties": {} })
        );
    }

    #[test]
    fn conversation_messages() {
        let request = ModelRequest {
            messages: vec![
                ModelMessage::System {
                    content: "Be brief.".into(),
                },
                ModelMessage::User {
                    content: vec![
                        UserContent::Text {
                            text: "Weather?".into(),
                        },
                        UserContent::Text {
                            text: "In Paris.".into(),
                        },
                    ],
                },
                ModelMessage::Assistant {
                    content: vec![
                        AssistantContent::Reasoning {
                            text: "Use the tool.".into(),
                            provider_options: None,
                        },
                        AssistantContent::Text {
                            text: "Let me ".into(),
                        },
                        AssistantContent::Text {
                            text: "check.".into(),
                        },
                        AssistantContent::ToolCall {
                            tool_call_id: "call_1".into(),
                            tool_name: "weather".into(),
                            input: json!({ "city": "Paris" }),
                            provider_executed: false,
                        },
                        AssistantContent::ToolCall {
                            tool_call_id: "ws_1".into(),
                            tool_name: "web_search".into(),
                            input: json!({}),
                            provider_executed: true,
                        },
                        AssistantContent::ToolResult(ToolResult {
                            tool_call_id: "ws_1".into(),
                            tool_name: "web_search".into(),
                            output: ToolOutput::Text("results".into()),
                        }),
                        AssistantContent::ToolApprovalRequest {
                            approval_id: "ap_1".into(),
                            tool_call_id: "call_2".into(),
                        },
                    ],
                },
                ModelMessage::Tool {
                    content: vec![
                        ToolContent::ToolApprovalResponse {
                            approval_id: "ap_1".into(),
                            approved: true,
                            reason: None,
                        },
                        ToolContent::ToolResult(ToolResult {
                            tool_call_id: "call_1".into(),
                            tool_name: "weather".into(),
                            output: ToolOutput::Json(json!({ "temp": 21 })),
                        }),
                        ToolContent::ToolResult(ToolResult {
                            tool_call_id: "call_2".into(),
                            tool_name: "delete".into(),
                            output: ToolOutput::ExecutionDenied(Some("not now".into())),
                        }),
                    ],
                },
                ModelMessage::Assistant {
                    content: vec![AssistantContent::ToolCall {
                        tool_call_id: "call_3".into(),
                        tool_name: "noop".into(),
                        input: json!({}),
                        provider_executed: false,
                    }],
                },
                // Reasoning only: nothing to send.
                ModelMessage::Assistant {
                    content: vec![AssistantContent::Reasoning {
                        text: "hmm".into(),
                        provider_options: None,
                    }],
                },
                ModelMessage::Assistant {
                    content: vec![AssistantContent::Text {
                        text: "21 °C.".into(),
                    }],
                },
            ],
            ..ModelRequest::default()
        };
        assert_eq!(
            request_body("m", &request)["messages"],
            json!([
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": "Weather?\nIn Paris." },
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [{
                        "id": "call_1",
                        "type": "function",
                        "function": { "name": "weather", "arguments": "{\"city\":\"Paris\"}" },
                    }],
                },
                { "role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}" },
                { "role": "tool", "tool_call_id": "call_2", "content": "Tool execution denied: not now" },
                {
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": "call_3",
                        "type": "function",
                        "function": { "name": "noop", "arguments": "{}" },
                    }],
                },
                { "role": "assistant", "content": "21 °C." },
            ])
        );
    }

    #[test]
    fn user_files() {
        let file = |data: &str, media_type: &str, filename: Option<&str>| UserContent::File {
            data: data.into(),
            media_type: media_type.into(),
            filename: filename.map(Into::into),
        };
        let request = ModelRequest {
            messages: vec![ModelMessage::User {
                content: vec![
                    UserContent::Text {
                        text: "Look:".into(),
                    },
                    file("https://example.com/cat.png", "image/png", None),
                    file("data:image/jpeg;base64,/9j/", "image/jpeg", Some("me.jpg")),
                    file(
                        "data:application/pdf;base64,JVBERi0=",
                        "application/pdf",
                        Some("a.pdf"),
                    ),
                    file("data:audio/wav;base64,UklGRg==", "audio/wav", None),
                    // "héllo\n" in base64.
                    file(
                        "data:text/plain;base64,aMOpbGxvCg==",
                        "text/plain",
                        Some("notes.txt"),
                    ),
                    file(
                        "data:text/csv,a%2Cb%0A1%2C2",
                        "text/csv; charset=utf-8",
                        None,
                    ),
                    file(
                        "data:application/zip;base64,UEsDBA==",
                        "application/zip",
                        Some("x.zip"),
                    ),
                    file("https://example.com/report.pdf", "application/pdf", None),
                ],
            }],
            ..ModelRequest::default()
        };
        assert_eq!(
            request_body("m", &request)["messages"][0]["content"],
            json!([
                { "type": "text", "text": "Look:" },
                { "type": "image_url", "image_url": { "url": "https://example.com/cat.png" } },
                { "type": "image_url", "image_url": { "url": "data:image/jpeg;base64,/9j/" } },
                { "type": "file", "file": { "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0=" } },
                { "type": "input_audio", "input_audio": { "data": "UklGRg==", "format": "wav" } },
                { "type": "text", "text": "notes.txt:\nhéllo\n" },
                { "type": "text", "text": "a,b\n1,2" },
                { "type": "text", "text": "[Attached file x.zip (application/zip), which this model cannot read]" },
                { "type": "text", "text": "[Attached file (application/pdf) at https://example.com/report.pdf, which this model cannot read]" },
            ])
        );
    }
}
