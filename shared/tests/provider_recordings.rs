//! The provider conformance suite: recordings of real provider streams (`tests/data/<provider>/`,
//! see the README beside each set) put back on the provider's own framing by a loopback server,
//! whole and one byte per write, and read by the provider's client. Each must come out as what
//! the model said: its text and reasoning, its tool calls with input that parses, the finish
//! reason and usage, no error, one clean end.

#[path = "support/recorded_streams.rs"]
mod recorded;

use chatfn::model::anthropic::Anthropic;
use chatfn::model::openai::OpenAiCompatible;
use chatfn::model::{
    FinishReason, Model, ModelError, ModelEvent, ModelMessage, ModelRequest, Usage, UserContent,
};
use futures::StreamExt;
use recorded::{Playback, recording, sse_data, sse_named};
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug)]
enum Wire {
    ChatCompletions,
    Anthropic,
    #[cfg(feature = "bedrock")]
    Bedrock,
}

fn request() -> ModelRequest {
    ModelRequest {
        messages: vec![ModelMessage::User {
            content: vec![UserContent::Text { text: "Hi".into() }],
        }],
        ..ModelRequest::default()
    }
}

async fn model_at(wire: Wire, root: &str) -> Box<dyn Model> {
    match wire {
        Wire::ChatCompletions => Box::new(
            OpenAiCompatible::new(format!("{root}/v1"), Some("sk-test".into()), "recorded")
                .expect("client"),
        ),
        Wire::Anthropic => Box::new(
            Anthropic::new(format!("{root}/v1"), "sk-ant-test", "recorded").expect("client"),
        ),
        #[cfg(feature = "bedrock")]
        Wire::Bedrock => Box::new(
            chatfn::model::bedrock::Bedrock::with_credentials(
                root,
                "us-east-1",
                "anthropic.claude-recorded",
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            )
            .expect("client"),
        ),
    }
}

fn framed(wire: Wire, events: &[Value]) -> (Vec<u8>, &'static str) {
    match wire {
        Wire::ChatCompletions => (sse_data(events), "text/event-stream"),
        Wire::Anthropic => (sse_named(events), "text/event-stream"),
        #[cfg(feature = "bedrock")]
        Wire::Bedrock => (
            recorded::event_stream(events),
            "application/vnd.amazon.eventstream",
        ),
    }
}

/// What the client makes of `events` on `wire`, played whole and byte by byte; both must agree.
async fn played(wire: Wire, events: &[Value]) -> Vec<Result<ModelEvent, ModelError>> {
    let (body, content_type) = framed(wire, events);
    let mut runs = Vec::new();
    for byte_by_byte in [false, true] {
        let playback = Playback::start(body.clone(), content_type, byte_by_byte).await;
        let model = model_at(wire, &playback.root()).await;
        let mut items = Vec::new();
        match model.stream(request()).await {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    items.push(item);
                }
            }
            Err(error) => items.push(Err(error)),
        }
        runs.push(items);
    }
    let byte_by_byte = runs.pop().unwrap_or_default();
    let whole = runs.pop().unwrap_or_default();
    assert_eq!(whole, byte_by_byte, "one byte per write decodes the same");
    whole
}

/// A tool call as it came out: its name and its input, parsed.
#[derive(Debug, PartialEq)]
struct Call {
    name: String,
    input: Value,
}

/// What a clean stream said.
#[derive(Debug, Default)]
struct Said {
    model: Option<String>,
    text: String,
    reasoning: String,
    /// The `providerMetadata` of each reasoning part, in order.
    reasoning_parts: Vec<Option<Value>>,
    calls: Vec<Call>,
    reason: FinishReason,
    usage: Usage,
}

/// The stream must end cleanly: no error, exactly one `Finish`, last; every tool call's deltas
/// add up to its arguments, which parse.
fn clean(items: Vec<Result<ModelEvent, ModelError>>) -> Said {
    let events: Vec<ModelEvent> = items
        .into_iter()
        .map(|item| item.unwrap_or_else(|error| panic!("a stream error: {error}")))
        .collect();
    assert!(
        matches!(events.last(), Some(ModelEvent::Finish { .. })),
        "ends with Finish: {events:?}"
    );
    let mut said = Said::default();
    let mut streamed: Vec<(String, String)> = Vec::new();
    for event in events.iter() {
        match event {
            ModelEvent::ResponseModel(model) => {
                assert!(said.model.is_none(), "the model is named once");
                said.model = Some(model.clone());
            }
            ModelEvent::TextDelta(text) => said.text.push_str(text),
            ModelEvent::ReasoningDelta(text) => said.reasoning.push_str(text),
            ModelEvent::ReasoningEnd { provider_metadata } => {
                said.reasoning_parts.push(provider_metadata.clone())
            }
            ModelEvent::ToolCallStart { id, .. } => streamed.push((id.clone(), String::new())),
            ModelEvent::ToolCallDelta {
                id,
                arguments_delta,
            } => {
                let call = streamed
                    .iter_mut()
                    .find(|(started, _)| started == id)
                    .expect("a delta of a started call");
                call.1.push_str(arguments_delta);
            }
            ModelEvent::ToolCall {
                id,
                name,
                arguments,
            } => {
                let deltas = streamed
                    .iter()
                    .find(|(started, _)| started == id)
                    .map(|(_, deltas)| deltas.clone())
                    .expect("a call that was started");
                if !deltas.is_empty() {
                    assert_eq!(&deltas, arguments, "the deltas add up to the arguments");
                }
                let input = serde_json::from_str(arguments)
                    .unwrap_or_else(|e| panic!("the arguments of {name} parse: {e}"));
                said.calls.push(Call {
                    name: name.clone(),
                    input,
                });
            }
            ModelEvent::Finish { reason, usage } => {
                said.reason = *reason;
                said.usage = *usage;
            }
            _ => {}
        }
    }
    let finishes = events
        .iter()
        .filter(|event| matches!(event, ModelEvent::Finish { .. }))
        .count();
    assert_eq!(finishes, 1, "one Finish");
    said
}

fn usage(input: u64, output: u64, reasoning: u64, cached: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        reasoning_tokens: reasoning,
        cached_input_tokens: cached,
        ..Usage::default()
    }
}

fn call(name: &str, input: Value) -> Call {
    Call {
        name: name.into(),
        input,
    }
}

// ---------------------------------------------------------------------------------------------
// Chat completions: OpenAI and the servers that speak its wire.

/// The text and reasoning a chat completions recording carries, read straight off its chunks:
/// `content` as a string or as a list of typed parts, reasoning in `reasoning_content`,
/// `reasoning` or `thinking` parts.
fn chat_expected(events: &[Value]) -> (String, String) {
    let mut text = String::new();
    let mut reasoning = String::new();
    for event in events {
        for choice in event["choices"].as_array().into_iter().flatten() {
            if choice["index"].as_u64().unwrap_or(0) != 0 {
                continue;
            }
            let delta = &choice["delta"];
            match &delta["content"] {
                Value::String(content) => text.push_str(content),
                Value::Array(parts) => {
                    for part in parts {
                        match part["type"].as_str() {
                            Some("text") => text.push_str(part["text"].as_str().unwrap_or("")),
                            Some("thinking") => {
                                for inner in part["thinking"].as_array().into_iter().flatten() {
                                    reasoning.push_str(inner["text"].as_str().unwrap_or(""));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
            let field = ["reasoning_content", "reasoning"]
                .iter()
                .filter_map(|field| delta[field].as_str())
                .find(|text| !text.is_empty());
            if let Some(field) = field {
                reasoning.push_str(field);
            }
        }
    }
    (text, reasoning)
}

async fn chat(file: &str) -> Said {
    let events = recording("chat-completions", file);
    let said = clean(played(Wire::ChatCompletions, &events).await);
    let (text, reasoning) = chat_expected(&events);
    assert_eq!(said.text, text, "{file}: the text");
    assert_eq!(said.reasoning, reasoning, "{file}: the reasoning");
    said
}

#[tokio::test]
async fn openai_text() {
    let said = chat("openai-text.chunks.txt").await;
    assert!(said.text.starts_with("**Holiday Name:** Harmony Day"));
    assert_eq!(said.model.as_deref(), Some("gpt-4.1-nano-2025-04-14"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(16, 300, 0, 0));
}

#[tokio::test]
async fn azure_model_router() {
    let said = chat("azure-model-router.1.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.model.as_deref(), Some("gpt-5-nano-2025-08-07"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(15, 78, 64, 0));
}

#[tokio::test]
async fn azure_deepseek_reasoning() {
    let said = chat("azure-deepseek-reasoning.1.chunks.txt").await;
    assert!(said.reasoning.starts_with("We need to invent a new"));
    assert!(!said.text.is_empty());
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(19, 1720, 0, 0));
}

#[tokio::test]
async fn deepseek_text_cut_at_the_length_limit() {
    let said = chat("deepseek-text.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.reason, FinishReason::Length);
    assert_eq!(said.usage, usage(13, 400, 0, 0));
}

#[tokio::test]
async fn deepseek_reasoning() {
    let said = chat("deepseek-reasoning.chunks.txt").await;
    assert!(!said.reasoning.is_empty() && !said.text.is_empty());
    assert_eq!(said.model.as_deref(), Some("deepseek-reasoner"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(18, 219, 205, 0));
}

#[tokio::test]
async fn deepseek_tool_call() {
    let said = chat("deepseek-tool-call.chunks.txt").await;
    assert!(!said.reasoning.is_empty());
    assert_eq!(
        said.calls,
        vec![call("weather", json!({"location": "San Francisco"}))]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(339, 83, 39, 320));
}

#[tokio::test]
async fn groq_text() {
    let said = chat("groq-text.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.model.as_deref(), Some("llama-3.3-70b-versatile"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(45, 662, 0, 0));
}

#[tokio::test]
async fn groq_reasoning() {
    let said = chat("groq-reasoning.chunks.txt").await;
    assert!(!said.reasoning.is_empty() && !said.text.is_empty());
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(17, 1107, 963, 0));
}

#[tokio::test]
async fn groq_tool_call_whole_in_one_chunk() {
    let said = chat("groq-tool-call.chunks.txt").await;
    assert_eq!(said.calls, vec![call("weather", json!({}))]);
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(210, 15, 0, 0));
}

#[tokio::test]
async fn mistral_text() {
    let said = chat("mistral-text.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(13, 8, 0, 0));
}

#[tokio::test]
async fn mistral_reasoning_as_typed_content_parts() {
    let said = chat("mistral-reasoning.chunks.txt").await;
    assert_eq!(
        said.reasoning,
        "The user is asking for 2+2. This is basic arithmetic. 2+2=4."
    );
    assert_eq!(said.text, "2 + 2 = 4");
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(10, 46, 0, 0));
}

#[tokio::test]
async fn mistral_tool_call_without_an_index() {
    let said = chat("mistral-tool-call.chunks.txt").await;
    assert_eq!(
        said.calls,
        vec![call("weather", json!({"location": "San Francisco"}))]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(124, 22, 0, 0));
}

#[tokio::test]
async fn mistral_tool_call_named_again_empty() {
    let said = chat("mistral-incremental-tool-call.chunks.txt").await;
    assert_eq!(
        said.calls,
        vec![call(
            "webSearchTool",
            json!({"query": "current Berlin weather"})
        )]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(171, 14, 0, 128));
}

#[tokio::test]
async fn xai_text() {
    let said = chat("xai-text.chunks.txt").await;
    assert!(!said.text.is_empty() && !said.reasoning.is_empty());
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage.input_tokens, 12);
    assert_eq!(said.usage.cached_input_tokens, 11);
    assert_eq!(said.usage.reasoning_tokens, 290);
}

#[tokio::test]
async fn xai_tool_call() {
    let said = chat("xai-tool-call.chunks.txt").await;
    assert!(!said.reasoning.is_empty());
    assert_eq!(
        said.calls,
        vec![call("weather", json!({"location": "San Francisco"}))]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage.input_tokens, 291);
    assert_eq!(said.usage.cached_input_tokens, 290);
}

#[tokio::test]
async fn alibaba_text() {
    let said = chat("alibaba-text.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.model.as_deref(), Some("qwen3-max"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(18, 779, 0, 0));
}

#[tokio::test]
async fn alibaba_reasoning() {
    let said = chat("alibaba-reasoning.chunks.txt").await;
    assert!(!said.reasoning.is_empty() && !said.text.is_empty());
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(24, 1355, 1084, 0));
}

#[tokio::test]
async fn alibaba_tool_call_with_empty_ids_after_the_first() {
    let said = chat("alibaba-tool-call.chunks.txt").await;
    assert_eq!(
        said.calls,
        vec![call("weather", json!({"location": "San Francisco"}))]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(295, 22, 0, 0));
}

#[tokio::test]
async fn moonshot_reasoning_then_text() {
    let said = chat("moonshotai-stream.chunks.txt").await;
    assert_eq!(said.reasoning, "Thinking aloud. ");
    assert_eq!(said.text, "Hello!");
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(9, 12, 7, 0));
}

#[tokio::test]
async fn perplexity_with_running_usage_on_every_chunk() {
    let said = chat("perplexity-text.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.model.as_deref(), Some("sonar"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(11, 434, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages.

/// The events of one message: a recording of several messages (a tool loop) starts a new one
/// at every `message_start` that follows a `message_stop`.
fn anthropic_messages(file: &str) -> Vec<Vec<Value>> {
    let mut messages: Vec<Vec<Value>> = Vec::new();
    let mut stopped = true;
    for event in recording("anthropic", file) {
        if event["type"] == "message_start" && stopped {
            messages.push(Vec::new());
        }
        stopped = event["type"] == "message_stop";
        if let Some(message) = messages.last_mut() {
            message.push(event);
        }
    }
    messages
}

fn anthropic_expected(events: &[Value]) -> (String, String) {
    let mut text = String::new();
    let mut reasoning = String::new();
    for event in events {
        let delta = &event["delta"];
        match delta["type"].as_str() {
            Some("text_delta") => text.push_str(delta["text"].as_str().unwrap_or("")),
            Some("thinking_delta") => reasoning.push_str(delta["thinking"].as_str().unwrap_or("")),
            _ => {}
        }
    }
    (text, reasoning)
}

async fn anthropic(events: &[Value]) -> Said {
    let said = clean(played(Wire::Anthropic, events).await);
    let (text, reasoning) = anthropic_expected(events);
    assert_eq!(said.text, text, "the text");
    assert_eq!(said.reasoning, reasoning, "the reasoning");
    said
}

async fn anthropic_file(file: &str) -> Said {
    let messages = anthropic_messages(file);
    assert_eq!(messages.len(), 1, "{file} holds one message");
    anthropic(&messages[0]).await
}

#[tokio::test]
async fn anthropic_text() {
    let said = anthropic_file("anthropic-text.chunks.txt").await;
    assert!(!said.text.is_empty());
    assert_eq!(said.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(12, 30, 0, 0));
}

#[tokio::test]
async fn anthropic_thinking_keeps_its_signature() {
    let said = anthropic_file("anthropic-clear-thinking.1.chunks.txt").await;
    assert!(said.reasoning.starts_with("The previous result was 925."));
    assert_eq!(said.text, "925 ÷ 5 = 185");
    assert_eq!(said.reasoning_parts.len(), 1, "one reasoning part");
    let signature = said.reasoning_parts[0]
        .as_ref()
        .and_then(|metadata| metadata["anthropic"]["signature"].as_str())
        .expect("the part keeps the signature");
    assert!(signature.starts_with("EvQBCkYICxgCKkAxhD4NUKFzudtZ6"));
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(69, 53, 0, 0));
}

#[tokio::test]
async fn anthropic_tool_without_arguments() {
    let said = anthropic_file("anthropic-tool-no-args.chunks.txt").await;
    assert_eq!(said.calls, vec![call("updateIssueList", json!({}))]);
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(565, 48, 0, 0));
}

#[tokio::test]
async fn anthropic_tool_input_in_deltas() {
    let said = anthropic_file("anthropic-json-tool.1.chunks.txt").await;
    assert_eq!(
        said.calls,
        vec![call(
            "json",
            json!({"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]})
        )]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
    assert_eq!(said.usage, usage(849, 47, 0, 0));
}

#[tokio::test]
async fn anthropic_tool_input_whole_in_the_block_start() {
    let messages = anthropic_messages("anthropic-programmatic-tool-calling.1.chunks.txt");
    let said = anthropic(&messages[0]).await;
    assert_eq!(
        said.calls,
        vec![call("rollDie", json!({"player": "player1"}))]
    );
    assert_eq!(said.reason, FinishReason::ToolCalls);
}

#[tokio::test]
async fn anthropic_refusal() {
    let said = anthropic_file("anthropic-refusal.chunks.txt").await;
    assert!(said.text.is_empty());
    assert_eq!(said.reason, FinishReason::ContentFilter);
}

#[tokio::test]
async fn anthropic_input_tokens_updated_at_the_end() {
    let said = anthropic_file("anthropic-message-delta-input-tokens.chunks.txt").await;
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(61, 2, 0, 0));
}

#[tokio::test]
async fn anthropic_a_repeated_message_start_is_the_same_message() {
    let said = anthropic_file("duplicate-message-start.chunks.txt").await;
    assert_eq!(said.text, "Hello, World!");
    assert_eq!(said.reason, FinishReason::Stop);
    assert_eq!(said.usage, usage(17, 227, 0, 0));
}

#[tokio::test]
async fn anthropic_a_second_message_inside_the_first_is_an_error() {
    let messages = anthropic_messages("spliced-message-start.chunks.txt");
    let items = played(Wire::Anthropic, &messages[0]).await;
    let last = items.last().expect("something");
    assert!(
        matches!(last, Err(ModelError::Protocol(message)) if message.contains("msg_second")),
        "{last:?}"
    );
    let events: Vec<&ModelEvent> = items.iter().filter_map(|item| item.as_ref().ok()).collect();
    assert!(
        !events.iter().any(|event| matches!(
            event,
            ModelEvent::ToolCall { .. } | ModelEvent::Finish { .. }
        )),
        "nothing of the spliced message completes: {events:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bedrock ConverseStream.

#[cfg(feature = "bedrock")]
mod bedrock {
    use super::*;

    fn bedrock_expected(events: &[Value]) -> (String, String) {
        let mut text = String::new();
        let mut reasoning = String::new();
        for event in events {
            let delta = &event["contentBlockDelta"]["delta"];
            text.push_str(delta["text"].as_str().unwrap_or(""));
            reasoning.push_str(delta["reasoningContent"]["text"].as_str().unwrap_or(""));
        }
        (text, reasoning)
    }

    async fn bedrock(file: &str) -> Said {
        let events = recording("bedrock", file);
        let said = clean(played(Wire::Bedrock, &events).await);
        let (text, reasoning) = bedrock_expected(&events);
        assert_eq!(said.text, text, "{file}: the text");
        assert_eq!(said.reasoning, reasoning, "{file}: the reasoning");
        said
    }

    #[tokio::test]
    async fn bedrock_text() {
        let said = bedrock("amazon-bedrock-text.chunks.txt").await;
        assert!(!said.text.is_empty());
        assert_eq!(said.reason, FinishReason::Stop);
        assert_eq!(said.usage, usage(22, 55, 0, 0));
    }

    #[tokio::test]
    async fn bedrock_reasoning_keeps_its_signature() {
        let said = bedrock("amazon-bedrock-reasoning.chunks.txt").await;
        assert!(said.reasoning.starts_with("Let me count the r"));
        assert!(said.text.starts_with("There are **3** r's"));
        assert_eq!(said.reasoning_parts.len(), 1, "one reasoning part");
        let signature = said.reasoning_parts[0]
            .as_ref()
            .and_then(|metadata| metadata["amazonBedrock"]["signature"].as_str())
            .expect("the part keeps the signature");
        assert!(signature.starts_with("Ep0CCkgICxABGAIqQOWPB6"));
        assert_eq!(said.reason, FinishReason::Stop);
        assert_eq!(said.usage, usage(51, 94, 0, 0));
    }

    #[tokio::test]
    async fn bedrock_tool_call_with_metadata_before_the_stop() {
        let said = bedrock("amazon-bedrock-tool-call.1.chunks.txt").await;
        assert_eq!(
            said.calls,
            vec![call("test-tool", json!({"value": "Sparkle Day"}))]
        );
        assert_eq!(said.reason, FinishReason::ToolCalls);
        assert_eq!(said.usage, usage(125, 45, 0, 0));
    }

    #[tokio::test]
    async fn bedrock_tool_without_arguments() {
        let said = bedrock("amazon-bedrock-tool-no-args.chunks.txt").await;
        assert_eq!(said.calls, vec![call("updateIssueList", json!({}))]);
        assert_eq!(said.reason, FinishReason::ToolCalls);
        assert_eq!(said.usage, usage(100, 25, 0, 0));
    }
}
