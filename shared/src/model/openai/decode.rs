//! The chat completions stream, chunk by chunk, as [`ModelEvent`]s; and a whole completion, for
//! servers that ignore `stream`.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;

use crate::model::sse::SseEvent;
use crate::model::tool_call::StreamedToolCall;
use crate::model::transport::{
    EventDecoder, MAX_ERROR_MESSAGE_CHARS, decode_sse_stream, error_message, truncate,
};
use crate::model::{FinishReason, ModelError, ModelEvent, ModelStream, Usage};

/// Turns the chunks of a streamed chat completion into [`ModelEvent`]s.
///
/// Feed it every SSE event with [`push`](Self::push) and call [`end`](Self::end) when the bytes
/// run out. It emits text and reasoning deltas as they come, `ToolCallStart` once a call's name
/// is known and `ToolCallDelta` per argument fragment; when the model finishes it emits one
/// `ToolCall` per call in index order and then `Finish` exactly once, after which
/// [`is_finished`](Self::is_finished) is true and further input is ignored.
#[derive(Debug, Default)]
pub struct ChatCompletionsDecoder {
    /// Tool calls by the provider's `index`, so they complete in the model's order.
    calls: BTreeMap<u64, PendingToolCall>,
    finish_reason: Option<FinishReason>,
    usage: Option<Usage>,
    /// `ResponseModel` has been emitted: every chunk repeats the model, once is enough.
    model_named: bool,
    finished: bool,
}

#[derive(Debug, Default)]
struct PendingToolCall {
    /// The provider sent the id, so a fragment with another id is a different call.
    id_from_provider: bool,
    stage: CallStage,
}

#[derive(Debug)]
enum CallStage {
    /// No name yet: the id, if any, and the argument fragments wait for it.
    Unnamed {
        id: Option<String>,
        arguments: String,
    },
    /// Started (with an id generated then if the provider sent none).
    Streaming(StreamedToolCall),
    Completed {
        id: String,
    },
}

impl Default for CallStage {
    fn default() -> Self {
        CallStage::Unnamed {
            id: None,
            arguments: String::new(),
        }
    }
}

impl PendingToolCall {
    fn id(&self) -> Option<&str> {
        match &self.stage {
            CallStage::Unnamed { id, .. } => id.as_deref(),
            CallStage::Streaming(call) => Some(call.id()),
            CallStage::Completed { id } => Some(id),
        }
    }
}

impl ChatCompletionsDecoder {
    /// A decoder at the start of a response.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Finish` has been emitted: the reply is complete, the rest of the stream does not matter.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Decodes one SSE event of the stream.
    pub fn push(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>, ModelError> {
        let mut out = Vec::new();
        if self.finished {
            return Ok(out);
        }
        let data = event.data.trim();
        if data == "[DONE]" {
            self.finish(&mut out)?;
            return Ok(out);
        }
        if event.event.as_deref() == Some("error") {
            let message = match serde_json::from_str::<Value>(data) {
                Ok(value) => error_message(value.get("error").unwrap_or(&value)),
                Err(_) => truncate(data, MAX_ERROR_MESSAGE_CHARS),
            };
            return Err(ModelError::Stream(message));
        }
        if let Some(PlainText { text, model }) = plain_text_delta(data) {
            if let Some(model) = model.filter(|model| !self.model_named && !model.is_empty()) {
                self.model_named = true;
                out.push(ModelEvent::ResponseModel(model));
            }
            if !text.is_empty() {
                out.push(ModelEvent::TextDelta(text));
            }
            return Ok(out);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|error| {
            ModelError::Protocol(format!(
                "invalid JSON in a stream chunk ({error}): {}",
                truncate(data, 200)
            ))
        })?;
        self.push_chunk(&chunk, &mut out)?;
        Ok(out)
    }

    /// The byte stream ended. Without `[DONE]` that is fine only if the model had finished.
    pub fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        let mut out = Vec::new();
        if self.finished {
            return Ok(out);
        }
        if self.finish_reason.is_none() {
            return Err(ModelError::Transport(
                "the stream ended before the model finished its reply".into(),
            ));
        }
        self.finish(&mut out)?;
        Ok(out)
    }

    /// Decodes a whole (non-streamed) `chat.completion` body, for servers that ignore `stream`.
    pub fn decode_completion(body: &[u8]) -> Result<Vec<ModelEvent>, ModelError> {
        let mut completion: Value = serde_json::from_slice(body).map_err(|error| {
            ModelError::Protocol(format!(
                "invalid JSON in a completion ({error}): {}",
                truncate(&String::from_utf8_lossy(body), 200)
            ))
        })?;
        // A completion's `message` is a chunk's `delta` holding everything at once, except that
        // its tool calls need not carry an `index`.
        if let Some(choices) = completion.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices.iter_mut().filter_map(Value::as_object_mut) {
                let Some(mut message) = choice.remove("message") else {
                    continue;
                };
                if let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    for (index, call) in calls.iter_mut().enumerate() {
                        if let Some(call) = call.as_object_mut() {
                            call.entry("index").or_insert(index.into());
                        }
                    }
                }
                choice.insert("delta".into(), message);
            }
        }
        let mut decoder = Self::new();
        let mut out = Vec::new();
        decoder.push_chunk(&completion, &mut out)?;
        decoder.finish(&mut out)?;
        Ok(out)
    }

    fn push_chunk(&mut self, chunk: &Value, out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        let Some(chunk) = chunk.as_object() else {
            return Err(ModelError::Protocol(format!(
                "expected a JSON object in the stream, got {}",
                truncate(&chunk.to_string(), 200)
            )));
        };
        if let Some(error) = chunk.get("error").filter(|error| !error.is_null()) {
            return Err(ModelError::Stream(error_message(error)));
        }
        if !self.model_named
            && let Some(model) = chunk
                .get("model")
                .and_then(Value::as_str)
                .filter(|model| !model.is_empty())
        {
            self.model_named = true;
            out.push(ModelEvent::ResponseModel(model.to_owned()));
        }

        // Only one completion is requested; others (if a server sends them) are ignored.
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| {
                choices
                    .iter()
                    .find(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        if let Some(choice) = choice {
            if let Some(delta) = choice.get("delta").filter(|delta| delta.is_object()) {
                self.push_delta(delta, out);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(finish_reason(reason));
                // The calls are whole now; the engine may start on them before the usage chunk.
                self.complete_tool_calls(out)?;
            }
        }

        let usage = chunk
            .get("usage")
            .filter(|usage| usage.is_object())
            .or_else(|| {
                chunk
                    .get("x_groq")
                    .and_then(|groq| groq.get("usage"))
                    .filter(|usage| usage.is_object())
            });
        if let Some(usage) = usage {
            self.usage = Some(parse_usage(usage));
            // Usage after the finish reason is the last thing a reply carries. (Servers that
            // report running usage on every chunk send it before the finish reason too.)
            if self.finish_reason.is_some() {
                self.finish(out)?;
            }
        }
        Ok(())
    }

    fn push_delta(&mut self, delta: &Value, out: &mut Vec<ModelEvent>) {
        // Servers that send both carry the same text in each.
        let reasoning = ["reasoning_content", "reasoning"]
            .iter()
            .filter_map(|field| delta.get(field).and_then(Value::as_str))
            .find(|text| !text.is_empty());
        if let Some(reasoning) = reasoning {
            out.push(ModelEvent::ReasoningDelta(reasoning.to_owned()));
        }
        match delta.get("content") {
            Some(Value::String(text)) if !text.is_empty() => {
                out.push(ModelEvent::TextDelta(text.to_owned()))
            }
            Some(Value::Array(parts)) => push_content_parts(parts, out),
            _ => {}
        }
        if let Some(fragments) = delta.get("tool_calls").and_then(Value::as_array) {
            for fragment in fragments {
                self.push_tool_call_fragment(fragment, out);
            }
        }
    }

    fn push_tool_call_fragment(&mut self, fragment: &Value, out: &mut Vec<ModelEvent>) {
        let non_empty = |value: Option<&Value>| {
            value
                .and_then(Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let id = non_empty(fragment.get("id"));
        let function = fragment.get("function");
        let name = non_empty(function.and_then(|function| function.get("name")));
        let arguments = match function.and_then(|function| function.get("arguments")) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            // Some servers send the arguments as an object rather than its JSON text.
            Some(other) => other.to_string(),
        };

        let mut index = match fragment.get("index").and_then(Value::as_u64) {
            Some(index) => index,
            None => self.index_of_unindexed(id.as_deref()),
        };
        // A server that gives every call the same index still gives each its own id.
        if let (Some(id), Some(call)) = (&id, self.calls.get(&index))
            && call.id_from_provider
            && call.id() != Some(id.as_str())
        {
            index = self.next_index();
        }

        let call = self.calls.entry(index).or_default();
        let started = match &mut call.stage {
            CallStage::Completed { .. } => {
                tracing::warn!(
                    index,
                    "ignoring a fragment of a tool call that already completed"
                );
                return;
            }
            CallStage::Streaming(streamed) => {
                streamed.push_arguments(&arguments, out);
                return;
            }
            CallStage::Unnamed {
                id: pending_id,
                arguments: pending_arguments,
            } => {
                if pending_id.is_none() && id.is_some() {
                    *pending_id = id;
                    call.id_from_provider = true;
                }
                pending_arguments.push_str(&arguments);
                let Some(name) = name else {
                    return;
                };
                let id = pending_id.take().unwrap_or_else(generate_tool_call_id);
                let mut streamed = StreamedToolCall::start(id, name, out);
                // Fragments that came before the name, and this one's.
                streamed.push_arguments(pending_arguments, out);
                streamed
            }
        };
        call.stage = CallStage::Streaming(started);
    }

    /// Where a fragment without `index` belongs: the call with its id, else a new call if it
    /// has an id, else the latest call.
    fn index_of_unindexed(&self, id: Option<&str>) -> u64 {
        match id {
            Some(id) => self
                .calls
                .iter()
                .find(|(_, call)| call.id() == Some(id))
                .map(|(index, _)| *index)
                .unwrap_or_else(|| self.next_index()),
            None => self.calls.keys().next_back().copied().unwrap_or(0),
        }
    }

    fn next_index(&self) -> u64 {
        self.calls
            .keys()
            .next_back()
            .map_or(0, |last| last.saturating_add(1))
    }

    fn complete_tool_calls(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        for (index, call) in &mut self.calls {
            match std::mem::take(&mut call.stage) {
                CallStage::Streaming(streamed) => {
                    call.stage = CallStage::Completed {
                        id: streamed.id().to_owned(),
                    };
                    out.push(streamed.finish());
                }
                completed @ CallStage::Completed { .. } => call.stage = completed,
                unnamed @ CallStage::Unnamed { .. } => {
                    call.stage = unnamed;
                    return Err(ModelError::Protocol(format!(
                        "tool call {index} has no function name"
                    )));
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        if self.finished {
            return Ok(());
        }
        self.complete_tool_calls(out)?;
        let has_tool_calls = !self.calls.is_empty();
        let reason = match self.finish_reason {
            // Ollama and some vLLM versions say `stop` after calling tools.
            Some(FinishReason::Stop) if has_tool_calls => FinishReason::ToolCalls,
            Some(reason) => reason,
            None if has_tool_calls => FinishReason::ToolCalls,
            None => FinishReason::Other,
        };
        out.push(ModelEvent::Finish {
            reason,
            usage: self.usage.unwrap_or_default(),
        });
        self.finished = true;
        Ok(())
    }
}

fn generate_tool_call_id() -> String {
    format!("call_{}", uuid::Uuid::new_v4().simple())
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "error" => FinishReason::Error,
        _ => FinishReason::Other,
    }
}

fn parse_usage(usage: &Value) -> Usage {
    let count = |value: Option<&Value>| {
        value
            .and_then(|value| {
                value.as_u64().or_else(|| {
                    value
                        .as_f64()
                        .filter(|count| count.is_finite() && *count >= 0.0)
                        .map(|count| count as u64)
                })
            })
            .unwrap_or(0)
    };
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(|details| details.get("cached_tokens"))
        // DeepSeek's name for it.
        .or_else(|| usage.get("prompt_cache_hit_tokens"));
    Usage {
        input_tokens: count(usage.get("prompt_tokens")),
        output_tokens: count(usage.get("completion_tokens")),
        reasoning_tokens: count(
            usage
                .get("completion_tokens_details")
                .and_then(|details| details.get("reasoning_tokens")),
        ),
        cached_input_tokens: count(cached),
        cache_write_input_tokens: 0,
    }
}

/// Decodes a chat completions SSE byte stream as it arrives: each event is yielded as soon as
/// its bytes are in. The stream ends after `Finish` or the first error.
pub fn decode_chat_completions_stream<S, E>(bytes: S) -> ModelStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error,
{
    decode_sse_stream(bytes, ChatCompletionsDecoder::new())
}

/// What a chunk that carries nothing but text says.
struct PlainText {
    text: String,
    /// The model that answered, which every chunk repeats.
    model: Option<String>,
}

/// `content` sent as a list of typed parts (Mistral's reasoning models): `text` parts are the
/// reply, `thinking` parts (their text as a string or as a list of `text` parts) the reasoning.
/// Parts of other types carry nothing this provider shows.
fn push_content_parts(parts: &[Value], out: &mut Vec<ModelEvent>) {
    let text_of = |value: &Value| -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Array(inner) => inner
                .iter()
                .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        }
    };
    for part in parts {
        let (text, reasoning) = match part.get("type").and_then(Value::as_str) {
            Some("text") => (part.get("text").map(text_of), None),
            Some("thinking") => (None, part.get("thinking").map(text_of)),
            _ => (None, None),
        };
        if let Some(text) = text.filter(|text| !text.is_empty()) {
            out.push(ModelEvent::TextDelta(text));
        }
        if let Some(reasoning) = reasoning.filter(|text| !text.is_empty()) {
            out.push(ModelEvent::ReasoningDelta(reasoning));
        }
    }
}

/// The text of a chunk that carries nothing but text (almost every chunk of a reply), read
/// without building a `Value` tree: most of the decoder's time went to building and dropping
/// one per token. `None` for anything else (a finish reason, usage, tool calls, reasoning, an
/// error, a shape this does not know), which the general path then decodes.
fn plain_text_delta(data: &str) -> Option<PlainText> {
    use serde::Deserialize;
    use serde::de::IgnoredAny;
    use std::borrow::Cow;

    #[derive(Deserialize)]
    struct Chunk<'a> {
        #[serde(borrow)]
        choices: Vec<Choice<'a>>,
        #[serde(borrow)]
        model: Option<Cow<'a, str>>,
        error: Option<IgnoredAny>,
        usage: Option<IgnoredAny>,
        x_groq: Option<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Choice<'a> {
        index: Option<u64>,
        #[serde(borrow)]
        delta: Option<Delta<'a>>,
        finish_reason: Option<IgnoredAny>,
    }
    #[derive(Deserialize)]
    struct Delta<'a> {
        #[serde(borrow)]
        content: Option<Cow<'a, str>>,
        reasoning_content: Option<IgnoredAny>,
        reasoning: Option<IgnoredAny>,
        tool_calls: Option<IgnoredAny>,
    }

    let chunk: Chunk<'_> = serde_json::from_str(data).ok()?;
    if chunk.error.is_some() || chunk.usage.is_some() || chunk.x_groq.is_some() {
        return None;
    }
    let mut text = None;
    for choice in &chunk.choices {
        if choice.finish_reason.is_some() {
            return None;
        }
        let Some(delta) = &choice.delta else {
            continue;
        };
        if delta.reasoning_content.is_some()
            || delta.reasoning.is_some()
            || delta.tool_calls.is_some()
        {
            return None;
        }
        if choice.index.unwrap_or(0) == 0 && text.is_none() {
            text = Some(delta.content.as_deref().unwrap_or_default());
        }
    }
    Some(PlainText {
        text: text.unwrap_or_default().to_owned(),
        model: chunk.model.map(Cow::into_owned),
    })
}

impl EventDecoder for ChatCompletionsDecoder {
    fn push(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>, ModelError> {
        ChatCompletionsDecoder::push(self, event)
    }

    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        ChatCompletionsDecoder::end(self)
    }

    fn is_finished(&self) -> bool {
        ChatCompletionsDecoder::is_finished(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    #[test]
    fn plain_text_chunks_decode_as_the_general_path_does() {
        let chunks = [
            text("Hel"),
            text(""),
            text("quote \" and \\ and \u{e9} and \n"),
            r#"{"choices":[{"index":0,"delta":{"content":"caf\u00e9 \"q\""}}]}"#.to_owned(),
            json!({ "choices": [{ "delta": { "content": "no index", "role": "assistant" } }] })
                .to_string(),
            json!({ "model": "gpt-4o-2024-08-06", "choices": [{ "index": 0, "delta": { "content": "m" } }] })
                .to_string(),
            json!({ "model": "", "choices": [{ "index": 0, "delta": { "content": "m" } }] })
                .to_string(),
            json!({ "choices": [{ "index": 1, "delta": { "content": "other" } },
                                { "index": 0, "delta": { "content": "mine" } }] })
            .to_string(),
            json!({ "choices": [], "usage": null, "id": "x", "object": "chat.completion.chunk" })
                .to_string(),
            json!({ "choices": [{ "index": 0, "delta": { "content": null } }] }).to_string(),
            json!({ "choices": [{ "index": 0, "delta": null }] }).to_string(),
            json!({ "choices": [{ "index": 0, "delta": "odd" }] }).to_string(),
            json!({ "choices": [{ "index": 0, "delta": { "content": ["odd"] } }] }).to_string(),
            json!({ "choices": [{ "index": 0, "delta": { "content": "a", "reasoning_content": "r" } }] })
                .to_string(),
            json!({ "choices": [{ "index": 0, "delta": { "reasoning": "" } }] }).to_string(),
            json!({ "choices": "odd" }).to_string(),
            json!({ "choices": [{ "index": 0, "delta": { "content": "x" } }], "x_groq": { "id": "g" } })
                .to_string(),
            json!({ "choices": [{ "index": 0, "delta": { "content": "x" } }], "usage": { "prompt_tokens": 1 } })
                .to_string(),
            tool_fragment(0, Some("call_1"), Some("roll_dice"), "{\"sides\""),
            finish_chunk("stop"),
            json!({ "error": { "message": "overloaded" } }).to_string(),
            json!([1, 2]).to_string(),
            "{\"choices\": [".to_owned(),
        ];
        for chunk in &chunks {
            let mut fast = ChatCompletionsDecoder::new();
            let mut general = ChatCompletionsDecoder::new();
            let fast_events = fast.push(&sse(chunk));
            let mut general_events = Vec::new();
            let general_result = serde_json::from_str::<Value>(chunk)
                .map_err(|error| ModelError::Protocol(error.to_string()))
                .and_then(|value| general.push_chunk(&value, &mut general_events));
            match (fast_events, general_result) {
                (Ok(fast_events), Ok(())) => assert_eq!(
                    format!("{fast_events:?}"),
                    format!("{general_events:?}"),
                    "chunk {chunk}"
                ),
                (Err(_), Err(_)) => {}
                (fast_events, general_result) => {
                    panic!("chunk {chunk}: {fast_events:?} against {general_result:?}")
                }
            }
        }
    }

    #[test]
    fn the_model_the_chunks_name_is_said_once_before_the_content() {
        let mut decoder = ChatCompletionsDecoder::new();
        let chunk = |delta: Value| {
            json!({ "object": "chat.completion.chunk", "model": "gpt-4o-2024-08-06",
                    "choices": [{ "index": 0, "delta": delta }] })
            .to_string()
        };
        let mut events = Vec::new();
        for data in [
            chunk(json!({ "role": "assistant", "content": "" })),
            chunk(json!({ "content": "Hi" })),
            chunk(json!({ "content": "!" })),
        ] {
            events.extend(decoder.push(&sse(&data)).expect("decodes"));
        }
        assert_eq!(
            events,
            vec![
                ModelEvent::ResponseModel("gpt-4o-2024-08-06".into()),
                ModelEvent::TextDelta("Hi".into()),
                ModelEvent::TextDelta("!".into()),
            ]
        );
        let completion = json!({ "object": "chat.completion", "model": "llama3.2:3b",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hey" },
                          "finish_reason": "stop" }] });
        let events = ChatCompletionsDecoder::decode_completion(completion.to_string().as_bytes())
            .expect("decodes");
        assert_eq!(events[0], ModelEvent::ResponseModel("llama3.2:3b".into()));
    }

    fn sse(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        }
    }

    /// Decodes chunks (SSE data) and the end of the stream; the first error stops it.
    fn decode(chunks: &[&str]) -> Result<Vec<ModelEvent>, ModelError> {
        let mut decoder = ChatCompletionsDecoder::new();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(decoder.push(&sse(chunk))?);
        }
        events.extend(decoder.end()?);
        Ok(events)
    }

    fn text(delta: &str) -> String {
        json!({ "choices": [{ "index": 0, "delta": { "content": delta }, "finish_reason": null }] })
            .to_string()
    }

    fn finish_chunk(reason: &str) -> String {
        json!({ "choices": [{ "index": 0, "delta": {}, "finish_reason": reason }] }).to_string()
    }

    fn tool_fragment(index: u64, id: Option<&str>, name: Option<&str>, arguments: &str) -> String {
        let mut function = json!({ "arguments": arguments });
        if let Some(name) = name {
            function["name"] = name.into();
        }
        let mut call = json!({ "index": index, "function": function });
        if let Some(id) = id {
            call["id"] = id.into();
            call["type"] = "function".into();
        }
        json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [call] } }] }).to_string()
    }

    fn finish(reason: FinishReason) -> ModelEvent {
        ModelEvent::Finish {
            reason,
            usage: Usage::default(),
        }
    }

    fn start(id: &str, name: &str) -> ModelEvent {
        ModelEvent::ToolCallStart {
            id: id.into(),
            name: name.into(),
        }
    }

    fn delta(id: &str, arguments: &str) -> ModelEvent {
        ModelEvent::ToolCallDelta {
            id: id.into(),
            arguments_delta: arguments.into(),
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> ModelEvent {
        ModelEvent::ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn text_deltas() {
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        let events = decode(&[
            role,
            &text("Hel"),
            &text("lo"),
            &finish_chunk("stop"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("Hel".into()),
                ModelEvent::TextDelta("lo".into()),
                finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn null_content_and_empty_choices_are_ignored() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"content":null}}]}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"x"},"logprobs":null}]}"#,
            &finish_chunk("stop"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("x".into()),
                finish(FinishReason::Stop)
            ]
        );
    }

    #[test]
    fn reasoning_in_either_field_then_text() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"think "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning":"more"}}]}"#,
            // Both fields with the same text (vLLM in transition) count once.
            r#"{"choices":[{"index":0,"delta":{"reasoning":"!","reasoning_content":"!"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning":"","content":"Answer"}}]}"#,
            &finish_chunk("stop"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::ReasoningDelta("think ".into()),
                ModelEvent::ReasoningDelta("more".into()),
                ModelEvent::ReasoningDelta("!".into()),
                ModelEvent::TextDelta("Answer".into()),
                finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn content_as_typed_parts_splits_into_reasoning_and_text() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"Two "},{"type":"image","url":"x"},{"type":"text","text":"and two."}]}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":"Four."},{"type":"text","text":"4"},{"type":"reference","ids":[1]},{"type":"text","text":""}]}}]}"#,
            &finish_chunk("stop"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::ReasoningDelta("Two and two.".into()),
                ModelEvent::ReasoningDelta("Four.".into()),
                ModelEvent::TextDelta("4".into()),
                finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn tool_call_arguments_split_across_events() {
        let events = decode(&[
            &tool_fragment(0, Some("call_1"), Some("weather"), ""),
            &tool_fragment(0, None, None, "{\"ci"),
            &tool_fragment(0, None, None, "ty\":\"Paris\"}"),
            &finish_chunk("tool_calls"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                start("call_1", "weather"),
                delta("call_1", "{\"ci"),
                delta("call_1", "ty\":\"Paris\"}"),
                call("call_1", "weather", "{\"city\":\"Paris\"}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn tool_call_arguments_in_the_first_fragment() {
        let events = decode(&[
            &tool_fragment(0, Some("call_1"), Some("weather"), "{\"city\":"),
            &tool_fragment(0, None, None, "\"Oslo\"}"),
            &finish_chunk("tool_calls"),
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                start("call_1", "weather"),
                delta("call_1", "{\"city\":"),
                delta("call_1", "\"Oslo\"}"),
                call("call_1", "weather", "{\"city\":\"Oslo\"}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn interleaved_tool_calls_complete_in_index_order() {
        let events = decode(&[
            &tool_fragment(1, Some("b"), Some("second"), "{\"x\""),
            &tool_fragment(0, Some("a"), Some("first"), "{"),
            &tool_fragment(1, None, None, ":1}"),
            &tool_fragment(0, None, None, "}"),
            &finish_chunk("tool_calls"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                start("b", "second"),
                delta("b", "{\"x\""),
                start("a", "first"),
                delta("a", "{"),
                delta("b", ":1}"),
                delta("a", "}"),
                call("a", "first", "{}"),
                call("b", "second", "{\"x\":1}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn several_tool_calls_in_one_chunk() {
        let chunk = json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [
            { "index": 0, "id": "a", "type": "function", "function": { "name": "f", "arguments": "{\"n\":1}" } },
            { "index": 1, "id": "b", "type": "function", "function": { "name": "g", "arguments": "{}" } },
        ] }, "finish_reason": "tool_calls" }] })
        .to_string();
        let events = decode(&[&chunk, "[DONE]"]).unwrap();
        assert_eq!(
            events,
            vec![
                start("a", "f"),
                delta("a", "{\"n\":1}"),
                start("b", "g"),
                delta("b", "{}"),
                call("a", "f", "{\"n\":1}"),
                call("b", "g", "{}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn tool_call_without_id_gets_a_generated_one() {
        let events = decode(&[
            &tool_fragment(0, None, Some("lookup"), "{\"q\":"),
            &tool_fragment(0, None, None, "1}"),
            &finish_chunk("tool_calls"),
        ])
        .unwrap();
        let ModelEvent::ToolCallStart { id, name } = &events[0] else {
            panic!("expected a start, got {events:?}");
        };
        assert!(id.starts_with("call_") && id.len() > 10, "{id}");
        assert_eq!(name, "lookup");
        assert_eq!(
            events[1..],
            [
                delta(id, "{\"q\":"),
                delta(id, "1}"),
                call(id, "lookup", "{\"q\":1}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn arguments_before_the_name_are_replayed_at_start() {
        let events = decode(&[
            &tool_fragment(0, Some("c"), None, "{\"a\""),
            &tool_fragment(0, None, Some("late"), ":2}"),
            &finish_chunk("tool_calls"),
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                start("c", "late"),
                delta("c", "{\"a\":2}"),
                call("c", "late", "{\"a\":2}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn tool_calls_without_index_follow_their_ids() {
        let chunk = |call: Value| {
            json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [call] } }] }).to_string()
        };
        let events = decode(&[
            &chunk(json!({ "id": "a", "function": { "name": "f", "arguments": "{" } })),
            &chunk(json!({ "function": { "arguments": "}" } })),
            &chunk(json!({ "id": "b", "function": { "name": "g", "arguments": "{}" } })),
            &finish_chunk("tool_calls"),
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                start("a", "f"),
                delta("a", "{"),
                delta("a", "}"),
                start("b", "g"),
                delta("b", "{}"),
                call("a", "f", "{}"),
                call("b", "g", "{}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn tool_calls_sharing_an_index_but_not_an_id_stay_apart() {
        let events = decode(&[
            &tool_fragment(0, Some("a"), Some("f"), "{\"n\":1}"),
            &tool_fragment(0, Some("b"), Some("f"), "{\"n\":2}"),
            &finish_chunk("tool_calls"),
        ])
        .unwrap();
        assert_eq!(
            events[4..],
            [
                call("a", "f", "{\"n\":1}"),
                call("b", "f", "{\"n\":2}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn object_arguments_and_missing_arguments() {
        let chunk = json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [
            { "index": 0, "id": "a", "function": { "name": "f", "arguments": { "k": "v" } } },
            { "index": 1, "id": "b", "function": { "name": "g" } },
        ] } }] })
        .to_string();
        let events = decode(&[&chunk, &finish_chunk("tool_calls")]).unwrap();
        assert_eq!(
            events,
            vec![
                start("a", "f"),
                delta("a", "{\"k\":\"v\"}"),
                start("b", "g"),
                call("a", "f", "{\"k\":\"v\"}"),
                call("b", "g", "{}"),
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn tool_call_without_a_name_is_a_protocol_error() {
        let error = decode(&[
            &tool_fragment(0, Some("a"), None, "{}"),
            &finish_chunk("tool_calls"),
        ])
        .unwrap_err();
        assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
    }

    #[test]
    fn stop_with_tool_calls_means_tool_calls() {
        let events = decode(&[
            &tool_fragment(0, Some("a"), Some("f"), "{}"),
            &finish_chunk("stop"),
        ])
        .unwrap();
        assert_eq!(events.last(), Some(&finish(FinishReason::ToolCalls)));
    }

    #[test]
    fn tool_calls_complete_at_the_finish_reason_before_usage() {
        let mut decoder = ChatCompletionsDecoder::new();
        decoder
            .push(&sse(&tool_fragment(0, Some("a"), Some("f"), "{}")))
            .unwrap();
        let at_finish_reason = decoder.push(&sse(&finish_chunk("tool_calls"))).unwrap();
        assert_eq!(at_finish_reason, vec![call("a", "f", "{}")]);
        assert!(!decoder.is_finished());
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        let at_usage = decoder.push(&sse(usage)).unwrap();
        assert_eq!(
            at_usage,
            vec![ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 3,
                    output_tokens: 4,
                    ..Usage::default()
                },
            }]
        );
        assert!(decoder.is_finished());
        assert_eq!(decoder.push(&sse("[DONE]")).unwrap(), vec![]);
        assert_eq!(decoder.end().unwrap(), vec![]);
    }

    #[test]
    fn usage_with_details() {
        let usage = json!({ "choices": [], "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 50,
            "total_tokens": 150,
            "prompt_tokens_details": { "cached_tokens": 80, "audio_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 30 },
        } })
        .to_string();
        let events = decode(&[&text("hi"), &finish_chunk("stop"), &usage]).unwrap();
        assert_eq!(
            events.last(),
            Some(&ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 100,
                    output_tokens: 50,
                    reasoning_tokens: 30,
                    cached_input_tokens: 80,
                    cache_write_input_tokens: 0,
                },
            })
        );
    }

    #[test]
    fn usage_in_the_finishing_chunk_finishes_at_once() {
        let chunk = r#"{"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let mut decoder = ChatCompletionsDecoder::new();
        let events = decoder.push(&sse(chunk)).unwrap();
        assert!(decoder.is_finished());
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("!".into()),
                ModelEvent::Finish {
                    reason: FinishReason::Stop,
                    usage: Usage {
                        input_tokens: 1,
                        output_tokens: 2,
                        ..Usage::default()
                    },
                },
            ]
        );
    }

    #[test]
    fn running_usage_before_the_finish_reason_does_not_finish() {
        let with_usage = |content: &str, completion: u64| {
            json!({ "choices": [{ "index": 0, "delta": { "content": content } }],
                    "usage": { "prompt_tokens": 5, "completion_tokens": completion } })
            .to_string()
        };
        let events = decode(&[
            &with_usage("a", 1),
            &with_usage("b", 2),
            &finish_chunk("length"),
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("a".into()),
                ModelEvent::TextDelta("b".into()),
                ModelEvent::Finish {
                    reason: FinishReason::Length,
                    usage: Usage {
                        input_tokens: 5,
                        output_tokens: 2,
                        ..Usage::default()
                    },
                },
            ]
        );
    }

    #[test]
    fn groq_usage_and_deepseek_cache_hits() {
        let groq = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"usage":{"prompt_tokens":7,"completion_tokens":8}}}"#;
        let events = decode(&[groq]).unwrap();
        assert_eq!(
            events,
            vec![ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage {
                    input_tokens: 7,
                    output_tokens: 8,
                    ..Usage::default()
                },
            }]
        );

        let deepseek = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"prompt_cache_hit_tokens":6}}"#;
        let events = decode(&[deepseek]).unwrap();
        let ModelEvent::Finish { usage, .. } = events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(usage.cached_input_tokens, 6);
    }

    #[test]
    fn every_finish_reason() {
        for (wire, expected) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("content_filter", FinishReason::ContentFilter),
            ("tool_calls", FinishReason::ToolCalls),
            ("function_call", FinishReason::ToolCalls),
            ("error", FinishReason::Error),
            ("something_new", FinishReason::Other),
        ] {
            let events = decode(&[&finish_chunk(wire), "[DONE]"]).unwrap();
            assert_eq!(events, vec![finish(expected)], "{wire}");
        }
    }

    #[test]
    fn done_without_a_finish_reason_is_other() {
        assert_eq!(
            decode(&[&text("x"), "[DONE]"]).unwrap(),
            vec![
                ModelEvent::TextDelta("x".into()),
                finish(FinishReason::Other)
            ]
        );
    }

    #[test]
    fn error_object_in_the_stream() {
        let error = decode(&[
            &text("partial"),
            r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
        ])
        .unwrap_err();
        assert_eq!(error, ModelError::Stream("Rate limit reached".into()));

        let error = decode(&[r#"{"error":"overloaded"}"#]).unwrap_err();
        assert_eq!(error, ModelError::Stream("overloaded".into()));

        // OpenRouter puts the error beside a choice that finishes with `error`.
        let error = decode(&[
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"error"}],"error":{"code":502,"message":"Upstream died"}}"#,
        ])
        .unwrap_err();
        assert_eq!(error, ModelError::Stream("Upstream died".into()));
    }

    #[test]
    fn error_event_type() {
        let mut decoder = ChatCompletionsDecoder::new();
        let event = SseEvent {
            event: Some("error".into()),
            data: r#"{"message":"boom"}"#.into(),
            id: None,
        };
        assert_eq!(
            decoder.push(&event).unwrap_err(),
            ModelError::Stream("boom".into())
        );
        let event = SseEvent {
            event: Some("error".into()),
            data: "plain words".into(),
            id: None,
        };
        assert_eq!(
            ChatCompletionsDecoder::new().push(&event).unwrap_err(),
            ModelError::Stream("plain words".into())
        );
    }

    #[test]
    fn malformed_json_is_a_protocol_error() {
        let error = decode(&[&text("a"), "{\"choices\": [oops"]).unwrap_err();
        assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
        let error = decode(&["[1, 2]"]).unwrap_err();
        assert!(matches!(error, ModelError::Protocol(_)), "{error:?}");
    }

    #[test]
    fn stream_ending_early_is_a_transport_error() {
        let error = decode(&[&text("a"), &text("b")]).unwrap_err();
        assert!(matches!(error, ModelError::Transport(_)), "{error:?}");
        assert!(error.is_transient());

        // A finish reason without `[DONE]` is a complete reply.
        assert_eq!(
            decode(&[&text("a"), &finish_chunk("stop")]).unwrap(),
            vec![
                ModelEvent::TextDelta("a".into()),
                finish(FinishReason::Stop)
            ]
        );
    }

    #[test]
    fn whole_completion_body() {
        let body = json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        { "id": "a", "type": "function", "function": { "name": "f", "arguments": "{\"n\":1}" } },
                        { "id": "b", "type": "function", "function": { "name": "g", "arguments": "{}" } },
                    ],
                },
                "finish_reason": "tool_calls",
            }],
            "usage": { "prompt_tokens": 10, "completion_tokens": 5 },
        });
        let events =
            ChatCompletionsDecoder::decode_completion(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("Checking.".into()),
                start("a", "f"),
                delta("a", "{\"n\":1}"),
                start("b", "g"),
                delta("b", "{}"),
                call("a", "f", "{\"n\":1}"),
                call("b", "g", "{}"),
                ModelEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage: Usage {
                        input_tokens: 10,
                        output_tokens: 5,
                        ..Usage::default()
                    },
                },
            ]
        );
        let error = ChatCompletionsDecoder::decode_completion(br#"{"error":{"message":"no"}}"#)
            .unwrap_err();
        assert_eq!(error, ModelError::Stream("no".into()));
    }

    #[tokio::test]
    async fn byte_stream_split_anywhere_decodes_the_same() {
        let body = [
            format!("data: {}\n\n", text("héllo ")),
            ": keep-alive\n\n".to_owned(),
            format!("data: {}\r\n\r\n", text("wörld 🦀")),
            format!(
                "data: {}\n\n",
                tool_fragment(0, Some("a"), Some("f"), "{\"k\":")
            ),
            format!("data: {}\n\n", tool_fragment(0, None, None, "1}")),
            format!("data: {}\n\n", finish_chunk("tool_calls")),
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":3}}\n\n"
                .to_owned(),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat()
        .into_bytes();
        let expected = vec![
            ModelEvent::TextDelta("héllo ".into()),
            ModelEvent::TextDelta("wörld 🦀".into()),
            start("a", "f"),
            delta("a", "{\"k\":"),
            delta("a", "1}"),
            call("a", "f", "{\"k\":1}"),
            ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 2,
                    output_tokens: 3,
                    ..Usage::default()
                },
            },
        ];
        for split in 0..=body.len() {
            let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::copy_from_slice(&body[..split])),
                Ok(Bytes::copy_from_slice(&body[split..])),
            ];
            let events: Vec<_> = decode_chat_completions_stream(futures::stream::iter(pieces))
                .collect()
                .await;
            let events: Vec<ModelEvent> = events.into_iter().map(Result::unwrap).collect();
            assert_eq!(events, expected, "split at {split}");
        }
    }

    #[tokio::test]
    async fn byte_stream_errors_end_the_stream() {
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from(format!("data: {}\n\n", text("a")))),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset",
            )),
            Ok(Bytes::from(format!("data: {}\n\n", text("never")))),
        ];
        let events: Vec<_> = decode_chat_completions_stream(futures::stream::iter(pieces))
            .collect()
            .await;
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], Ok(ModelEvent::TextDelta("a".into())));
        assert!(
            matches!(&events[1], Err(ModelError::Transport(message)) if message.contains("reset")),
            "{events:?}"
        );

        let pieces: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from(format!("data: {}\n\n", text("a"))))];
        let events: Vec<_> = decode_chat_completions_stream(futures::stream::iter(pieces))
            .collect()
            .await;
        assert!(matches!(events[1], Err(ModelError::Transport(_))));
    }

    #[tokio::test]
    async fn byte_stream_stops_at_the_first_decoding_error() {
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from(format!(
            "data: {}\n\ndata: nonsense\n\ndata: {}\n\n",
            text("a"),
            text("b")
        )))];
        let events: Vec<_> = decode_chat_completions_stream(futures::stream::iter(pieces))
            .collect()
            .await;
        assert_eq!(events.len(), 2);
        assert!(matches!(events[1], Err(ModelError::Protocol(_))));
    }
}
