//! The JSON body of a streamed Responses call, from the core's model messages.
//!
//! Nothing is kept on OpenAI's side (`store: false`), so every call carries the whole
//! conversation. A reasoning model's reasoning goes back as the encrypted items it streamed
//! (asked for with `include: ["reasoning.encrypted_content"]`), one item per reasoning id,
//! rebuilt from the reasoning parts' provider options.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::model::attachment;
use crate::model::data_url::DataUrl;
use crate::model::{AssistantContent, ModelMessage, ModelRequest, ToolContent, UserContent};

/// What a reasoning model is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReasoningSettings {
    /// `none`, `minimal`, `low`, `medium`, `high`, `xhigh`: the model's own default when `None`.
    pub effort: Option<String>,
    /// `auto`, `concise` or `detailed`; `None` asks for no summaries.
    pub summary: Option<String>,
}

impl ReasoningSettings {
    /// The summaries asked for unless the configuration says otherwise.
    pub const DEFAULT_SUMMARY: &str = "auto";

    /// The settings for `model` from a configured effort and summary (`none` or `off` for no
    /// summaries). OpenAI's reasoning models reason, and anything does when an effort or a
    /// summary is configured (a deployment whose name does not say what it runs); the rest
    /// (`gpt-4.1`, `gpt-5-chat-latest`) get `None`: they refuse reasoning options.
    pub fn configured(
        model: &str,
        effort: Option<&str>,
        summary: Option<&str>,
    ) -> Option<ReasoningSettings> {
        if effort.is_none() && summary.is_none() && !is_reasoning_model(model) {
            return None;
        }
        let summary = match summary {
            None => Some(Self::DEFAULT_SUMMARY),
            Some(off) if off.eq_ignore_ascii_case("none") || off.eq_ignore_ascii_case("off") => {
                None
            }
            Some(summary) => Some(summary),
        };
        Some(ReasoningSettings {
            effort: effort.map(str::to_owned),
            summary: summary.map(str::to_owned),
        })
    }
}

/// Whether `model` names one of OpenAI's reasoning models: the o-series, GPT-5 and later (but
/// their `-chat` models) and Codex. A router's `openai/` prefix is ignored.
pub fn is_reasoning_model(model: &str) -> bool {
    let model = model.to_ascii_lowercase();
    let name = model.rsplit('/').next().unwrap_or_default();
    if name.contains("codex") {
        return true;
    }
    if let Some(rest) = name.strip_prefix('o') {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        return digits > 0 && matches!(rest.as_bytes().get(digits), None | Some(b'-'));
    }
    let Some(version) = name.strip_prefix("gpt-") else {
        return false;
    };
    let digits = version.bytes().take_while(u8::is_ascii_digit).count();
    let Ok(major) = version[..digits].parse::<u32>() else {
        return false;
    };
    let variant = version[digits..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    major >= 5 && !variant.starts_with("-chat")
}

/// The JSON body of a streamed Responses call; `reasoning` for reasoning models.
pub fn request_body(
    model: &str,
    request: &ModelRequest,
    reasoning: Option<&ReasoningSettings>,
) -> Value {
    let mut input = Vec::new();
    for message in &request.messages {
        push_message(message, reasoning.is_some(), &mut input);
    }

    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("input".into(), input.into());
    body.insert("stream".into(), true.into());
    body.insert("store".into(), false.into());
    if let Some(reasoning) = reasoning {
        body.insert("include".into(), json!(["reasoning.encrypted_content"]));
        let mut options = Map::new();
        if let Some(effort) = &reasoning.effort {
            options.insert("effort".into(), effort.as_str().into());
        }
        if let Some(summary) = &reasoning.summary {
            options.insert("summary".into(), summary.as_str().into());
        }
        if !options.is_empty() {
            body.insert("reasoning".into(), options.into());
        }
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let parameters = if tool.input_schema.is_object() {
                    tool.input_schema.clone()
                } else {
                    json!({ "type": "object", "properties": {} })
                };
                // Strict mode (the API's default here) wants every property required and no
                // others allowed, which an agent's schemas need not say.
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": parameters,
                    "strict": false,
                })
            })
            .collect();
        body.insert("tools".into(), tools.into());
    }
    if let Some(max) = request.max_output_tokens {
        body.insert("max_output_tokens".into(), max.into());
    }
    if let Some(temperature) = request.temperature {
        if reasoning.is_some() {
            tracing::debug!("a reasoning model takes no temperature: left out of the request");
        } else if let Some(temperature) = crate::model::f32_to_json(temperature) {
            body.insert("temperature".into(), temperature);
        }
    }
    Value::Object(body)
}

fn push_message(message: &ModelMessage, with_reasoning: bool, input: &mut Vec<Value>) {
    match message {
        ModelMessage::System { content } => {
            input.push(json!({ "role": "system", "content": content }));
        }
        ModelMessage::User { content } => {
            let parts: Vec<Value> = content.iter().map(user_part).collect();
            input.push(json!({ "role": "user", "content": parts }));
        }
        ModelMessage::Assistant { content } => push_assistant(content, with_reasoning, input),
        ModelMessage::Tool { content } => {
            for part in content {
                match part {
                    ToolContent::ToolResult(result) => input.push(json!({
                        "type": "function_call_output",
                        "call_id": result.tool_call_id,
                        "output": result.output.to_text(),
                    })),
                    // The engine has already acted on the approval; the model only needs the
                    // result (or the denial) that followed it.
                    ToolContent::ToolApprovalResponse { .. } => {}
                }
            }
        }
    }
}

/// A user part: text, images by URL, PDFs inline or by URL, text files read into the prompt, a
/// note for the rest.
fn user_part(part: &UserContent) -> Value {
    let (data, media_type, filename) = match part {
        UserContent::Text { text } => return json!({ "type": "input_text", "text": text }),
        UserContent::File {
            data,
            media_type,
            filename,
        } => (data, media_type, filename.as_deref()),
    };
    let essence = attachment::essence(media_type);
    let data_url = DataUrl::parse(data);
    if essence.starts_with("image/") {
        return json!({ "type": "input_image", "image_url": data });
    }
    if essence == "application/pdf" {
        let filename = filename.unwrap_or("document.pdf");
        return match data_url {
            Some(_) => json!({ "type": "input_file", "filename": filename, "file_data": data }),
            None => json!({ "type": "input_file", "file_url": data }),
        };
    }
    if let Some(text) = data_url.and_then(|url| attachment::inline_text(&url, &essence, filename)) {
        return json!({ "type": "input_text", "text": text });
    }
    let note = attachment::unreadable_note(data, media_type, filename);
    json!({ "type": "input_text", "text": note })
}

/// One step of the assistant: its text, its function calls, and (for reasoning models) its
/// reasoning items.
fn push_assistant(content: &[AssistantContent], with_reasoning: bool, input: &mut Vec<Value>) {
    let start = input.len();
    let mut text = String::new();
    // Where each reasoning item is, by its id: its summary parts arrive as several parts.
    let mut reasoning_items: HashMap<String, usize> = HashMap::new();
    for part in content {
        match part {
            AssistantContent::Text { text: part } => text.push_str(part),
            AssistantContent::Reasoning {
                text: summary,
                provider_options,
            } if with_reasoning => {
                flush_text(&mut text, input);
                push_reasoning(
                    summary,
                    provider_options.as_ref(),
                    &mut reasoning_items,
                    input,
                );
            }
            AssistantContent::ToolCall {
                tool_call_id,
                tool_name,
                input: arguments,
                provider_executed: false,
            } => {
                flush_text(&mut text, input);
                input.push(json!({
                    "type": "function_call",
                    "call_id": tool_call_id,
                    "name": tool_name,
                    "arguments": arguments.to_string(),
                }));
            }
            // Without storage there is nothing to point at for a tool the provider ran, and
            // assistant files and approval requests have no item here. Reasoning from other
            // providers, or for a model that takes none, is not sent either.
            AssistantContent::Reasoning { .. }
            | AssistantContent::ToolCall { .. }
            | AssistantContent::ToolResult(_)
            | AssistantContent::ToolApprovalRequest { .. }
            | AssistantContent::File { .. } => {}
        }
    }
    flush_text(&mut text, input);
    keep_only_sendable_reasoning(input, start);
}

fn flush_text(text: &mut String, input: &mut Vec<Value>) {
    if !text.is_empty() {
        input.push(json!({ "role": "assistant", "content": std::mem::take(text) }));
    }
}

/// Adds a reasoning part to its item: a new item for a new id, one more summary part for an id
/// already seen.
fn push_reasoning(
    summary: &str,
    provider_options: Option<&Value>,
    items: &mut HashMap<String, usize>,
    input: &mut Vec<Value>,
) {
    let openai = provider_options.and_then(|options| options.get("openai"));
    let id = openai
        .and_then(|openai| openai.get("itemId"))
        .and_then(Value::as_str);
    let encrypted = openai
        .and_then(|openai| openai.get("reasoningEncryptedContent"))
        .and_then(Value::as_str);
    let summary_part =
        (!summary.is_empty()).then(|| json!({ "type": "summary_text", "text": summary }));
    if let Some(&index) = id.and_then(|id| items.get(id)) {
        let item = &mut input[index];
        if let Some(part) = summary_part
            && let Some(parts) = item["summary"].as_array_mut()
        {
            parts.push(part);
        }
        if let Some(encrypted) = encrypted {
            item["encrypted_content"] = encrypted.into();
        }
        return;
    }
    let mut item = Map::new();
    item.insert("type".into(), "reasoning".into());
    if let Some(id) = id {
        item.insert("id".into(), id.into());
        items.insert(id.to_owned(), input.len());
    }
    if let Some(encrypted) = encrypted {
        item.insert("encrypted_content".into(), encrypted.into());
    }
    item.insert(
        "summary".into(),
        summary_part.into_iter().collect::<Vec<_>>().into(),
    );
    input.push(Value::Object(item));
}

/// Reasoning items go back only when the API can take them: with their encrypted content (with
/// nothing stored, an id alone points at nothing), and followed by the output they led to (an
/// item at the end of a step, as in a reply cut short, is refused).
fn keep_only_sendable_reasoning(input: &mut Vec<Value>, start: usize) {
    let is_reasoning = |item: &Value| item["type"] == "reasoning";
    while input.len() > start && input.last().is_some_and(is_reasoning) {
        input.pop();
    }
    let mut index = start;
    while index < input.len() {
        if is_reasoning(&input[index]) && !input[index]["encrypted_content"].is_string() {
            input.remove(index);
        } else {
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ToolOutput, ToolResult, ToolSpec};

    fn reasoning(text: &str, id: Option<&str>, encrypted: Option<&str>) -> AssistantContent {
        let mut openai = Map::new();
        if let Some(id) = id {
            openai.insert("itemId".into(), id.into());
        }
        if let Some(encrypted) = encrypted {
            openai.insert("reasoningEncryptedContent".into(), encrypted.into());
        }
        AssistantContent::Reasoning {
            text: text.into(),
            provider_options: Some(json!({ "openai": openai })),
        }
    }

    fn call(id: &str) -> AssistantContent {
        AssistantContent::ToolCall {
            tool_call_id: id.into(),
            tool_name: "roll".into(),
            input: json!({ "sides": 6 }),
            provider_executed: false,
        }
    }

    fn text(text: &str) -> AssistantContent {
        AssistantContent::Text { text: text.into() }
    }

    fn assistant(content: Vec<AssistantContent>) -> ModelMessage {
        ModelMessage::Assistant { content }
    }

    fn input_of(messages: Vec<ModelMessage>, reasoning: bool) -> Value {
        let request = ModelRequest {
            messages,
            ..ModelRequest::default()
        };
        let settings = ReasoningSettings::default();
        request_body("m", &request, reasoning.then_some(&settings))["input"].clone()
    }

    #[test]
    fn the_body_of_a_reasoning_model_asks_for_encrypted_reasoning_and_stores_nothing() {
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
        let settings = ReasoningSettings {
            effort: Some("low".into()),
            summary: Some("auto".into()),
        };
        assert_eq!(
            request_body("gpt-5-mini", &request, Some(&settings)),
            json!({
                "model": "gpt-5-mini",
                "input": [{ "role": "user", "content": [{ "type": "input_text", "text": "Hi" }] }],
                "stream": true,
                "store": false,
                "include": ["reasoning.encrypted_content"],
                "reasoning": { "effort": "low", "summary": "auto" },
                "tools": [{
                    "type": "function",
                    "name": "weather",
                    "description": "Weather in a city",
                    "parameters": { "type": "object", "properties": { "city": { "type": "string" } } },
                    "strict": false,
                }],
                "max_output_tokens": 256,
            })
        );
        let without_summary = ReasoningSettings::default();
        let body = request_body("o3", &ModelRequest::default(), Some(&without_summary));
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert!(body.get("reasoning").is_none());
    }

    #[test]
    fn the_body_of_another_model_asks_for_no_reasoning() {
        let request = ModelRequest {
            temperature: Some(0.2),
            tools: vec![ToolSpec {
                name: "now".into(),
                description: "The time".into(),
                input_schema: Value::Null,
            }],
            ..ModelRequest::default()
        };
        let body = request_body("gpt-4.1", &request, None);
        assert_eq!(body["temperature"], json!(0.2));
        assert!(body.get("include").is_none());
        assert!(body.get("reasoning").is_none());
        assert_eq!(body["store"], false);
        assert_eq!(
            body["tools"][0]["parameters"],
            json!({ "type": "object", "properties": {} })
        );
    }

    #[test]
    fn a_conversation_becomes_input_items() {
        let input = input_of(
            vec![
                ModelMessage::System {
                    content: "Be brief.".into(),
                },
                ModelMessage::User {
                    content: vec![UserContent::Text {
                        text: "Roll twice".into(),
                    }],
                },
                assistant(vec![
                    reasoning("Two rolls.", Some("rs_1"), Some("enc_1")),
                    text("Rolling "),
                    text("now."),
                    call("call_1"),
                    call("call_2"),
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
                ]),
                ModelMessage::Tool {
                    content: vec![
                        ToolContent::ToolResult(ToolResult {
                            tool_call_id: "call_1".into(),
                            tool_name: "roll".into(),
                            output: ToolOutput::Json(json!({ "total": 4 })),
                        }),
                        ToolContent::ToolApprovalResponse {
                            approval_id: "ap".into(),
                            approved: false,
                            reason: None,
                        },
                        ToolContent::ToolResult(ToolResult {
                            tool_call_id: "call_2".into(),
                            tool_name: "roll".into(),
                            output: ToolOutput::ExecutionDenied(None),
                        }),
                    ],
                },
                assistant(vec![text("4, and a denial.")]),
            ],
            true,
        );
        assert_eq!(
            input,
            json!([
                { "role": "system", "content": "Be brief." },
                { "role": "user", "content": [{ "type": "input_text", "text": "Roll twice" }] },
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "encrypted_content": "enc_1",
                    "summary": [{ "type": "summary_text", "text": "Two rolls." }],
                },
                { "role": "assistant", "content": "Rolling now." },
                { "type": "function_call", "call_id": "call_1", "name": "roll", "arguments": "{\"sides\":6}" },
                { "type": "function_call", "call_id": "call_2", "name": "roll", "arguments": "{\"sides\":6}" },
                { "type": "function_call_output", "call_id": "call_1", "output": "{\"total\":4}" },
                { "type": "function_call_output", "call_id": "call_2", "output": "Tool execution denied." },
                { "role": "assistant", "content": "4, and a denial." },
            ])
        );
    }

    #[test]
    fn summary_parts_of_one_item_become_one_reasoning_item() {
        let input = input_of(
            vec![assistant(vec![
                reasoning("First.", Some("rs_1"), None),
                reasoning("Second.", Some("rs_1"), Some("enc_1")),
                reasoning("", Some("rs_2"), Some("enc_2")),
                reasoning("", Some("rs_2"), None),
                call("call_1"),
            ])],
            true,
        );
        assert_eq!(
            input,
            json!([
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [
                        { "type": "summary_text", "text": "First." },
                        { "type": "summary_text", "text": "Second." },
                    ],
                    "encrypted_content": "enc_1",
                },
                { "type": "reasoning", "id": "rs_2", "encrypted_content": "enc_2", "summary": [] },
                { "type": "function_call", "call_id": "call_1", "name": "roll", "arguments": "{\"sides\":6}" },
            ])
        );
    }

    #[test]
    fn reasoning_the_api_cannot_take_stays_out() {
        let input = input_of(
            vec![
                assistant(vec![
                    // No encrypted content: with nothing stored the id points at nothing.
                    reasoning("Stored only.", Some("rs_1"), None),
                    // Another provider's reasoning.
                    AssistantContent::Reasoning {
                        text: "Claude thought.".into(),
                        provider_options: None,
                    },
                    // An id-less item with its encrypted content is fine.
                    reasoning("", None, Some("enc_2")),
                    text("Answer."),
                    // Nothing followed it: a reply cut short.
                    reasoning("", Some("rs_3"), Some("enc_3")),
                ]),
                assistant(vec![reasoning("", Some("rs_4"), Some("enc_4"))]),
            ],
            true,
        );
        assert_eq!(
            input,
            json!([
                { "type": "reasoning", "encrypted_content": "enc_2", "summary": [] },
                { "role": "assistant", "content": "Answer." },
            ])
        );
        let other_model = input_of(
            vec![assistant(vec![
                reasoning("", Some("rs_1"), Some("enc_1")),
                text("Answer."),
            ])],
            false,
        );
        assert_eq!(
            other_model,
            json!([{ "role": "assistant", "content": "Answer." }])
        );
    }

    #[test]
    fn user_files() {
        let file = |data: &str, media_type: &str, filename: Option<&str>| UserContent::File {
            data: data.into(),
            media_type: media_type.into(),
            filename: filename.map(Into::into),
        };
        let input = input_of(
            vec![ModelMessage::User {
                content: vec![
                    file("https://example.com/cat.png", "image/png", None),
                    file("data:image/jpeg;base64,/9j/", "image/jpeg", Some("me.jpg")),
                    file(
                        "data:application/pdf;base64,JVBERi0=",
                        "application/pdf",
                        Some("a.pdf"),
                    ),
                    file("https://example.com/report.pdf", "application/pdf", None),
                    file(
                        "data:text/csv,a%2Cb%0A1%2C2",
                        "text/csv; charset=utf-8",
                        Some("t.csv"),
                    ),
                    file("data:audio/wav;base64,UklGRg==", "audio/wav", None),
                ],
            }],
            false,
        );
        assert_eq!(
            input[0]["content"],
            json!([
                { "type": "input_image", "image_url": "https://example.com/cat.png" },
                { "type": "input_image", "image_url": "data:image/jpeg;base64,/9j/" },
                { "type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0=" },
                { "type": "input_file", "file_url": "https://example.com/report.pdf" },
                { "type": "input_text", "text": "t.csv:\na,b\n1,2" },
                { "type": "input_text", "text": "[Attached file (audio/wav), which this model cannot read]" },
            ])
        );
    }

    #[test]
    fn reasoning_models_are_known_by_name() {
        for model in [
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.1",
            "gpt-5.1-codex-max",
            "GPT-6",
            "codex-mini-latest",
            "openai/gpt-5-nano",
        ] {
            assert!(is_reasoning_model(model), "{model}");
        }
        for model in [
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-5-chat-latest",
            "gpt-oss-120b",
            "omni-moderation-latest",
            "o",
            "llama3",
            "",
        ] {
            assert!(!is_reasoning_model(model), "{model}");
        }
    }

    #[test]
    fn settings_from_the_configuration() {
        let auto = ReasoningSettings {
            effort: None,
            summary: Some("auto".into()),
        };
        assert_eq!(ReasoningSettings::configured("o3", None, None), Some(auto));
        assert_eq!(ReasoningSettings::configured("gpt-4.1", None, None), None);
        assert_eq!(
            ReasoningSettings::configured("my-deployment", Some("high"), Some("None")),
            Some(ReasoningSettings {
                effort: Some("high".into()),
                summary: None,
            })
        );
        assert_eq!(
            ReasoningSettings::configured("gpt-5", None, Some("detailed")),
            Some(ReasoningSettings {
                effort: None,
                summary: Some("detailed".into()),
            })
        );
    }
}
