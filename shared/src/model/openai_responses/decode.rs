//! The Responses stream, event by event, as [`ModelEvent`]s; and a whole response, for servers
//! that ignore `stream`.
//!
//! Each event is read into [`ResponsesEvent`] by its `type`, and each kind has its own step of
//! the decoder. Events find their output item by `output_index`, which stays the same for the
//! item's life, while some servers give an item a new id in every event (GitHub Copilot's
//! does); an item is known by the id it was announced with.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::hosted_tools::{self, HostedItem, HostedResult};
use crate::model::sse::SseEvent;
use crate::model::tool_call::StreamedToolCall;
use crate::model::transport::{EventDecoder, decode_sse_stream, error_message, truncate};
use crate::model::{FinishReason, ModelError, ModelEvent, ModelStream, Usage};

/// One event of the Responses stream. Fields the API may leave out or send as `null` are
/// optional; a known event of another shape is a protocol error.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum ResponsesEvent {
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        output_index: Option<u64>,
        item: Value,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        output_index: Option<u64>,
        item: Value,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        output_index: Option<u64>,
        item_id: Option<String>,
        content_index: Option<u64>,
        delta: String,
    },
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta {
        output_index: Option<u64>,
        item_id: Option<String>,
        content_index: Option<u64>,
        delta: String,
    },
    #[serde(rename = "response.reasoning_summary_part.added")]
    ReasoningSummaryPartAdded {
        output_index: Option<u64>,
        item_id: Option<String>,
        summary_index: u64,
    },
    #[serde(rename = "response.reasoning_summary_text.delta")]
    ReasoningSummaryTextDelta {
        output_index: Option<u64>,
        item_id: Option<String>,
        summary_index: u64,
        delta: String,
    },
    /// The reasoning itself, which open-weight models served elsewhere show.
    #[serde(rename = "response.reasoning_text.delta")]
    ReasoningTextDelta {
        output_index: Option<u64>,
        item_id: Option<String>,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        output_index: Option<u64>,
        item_id: Option<String>,
        delta: String,
    },
    #[serde(rename = "response.created")]
    Created {
        #[serde(default)]
        response: StartedResponse,
    },
    #[serde(rename = "response.completed")]
    Completed { response: FinishedResponse },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: FinishedResponse },
    #[serde(rename = "response.failed")]
    Failed { response: FinishedResponse },
    #[serde(rename = "error")]
    Error {
        message: Option<String>,
        error: Option<Value>,
    },
    /// Progress (`…in_progress`, `…searching`), the `done` events whose
    /// content the item's own `done` repeats, annotations, and event types added after this
    /// was written.
    #[serde(other)]
    Other,
}

/// The response as its first event gives it.
#[derive(Debug, Default, Deserialize)]
struct StartedResponse {
    /// The model that answers.
    model: Option<String>,
}

/// The response as its last event gives it.
#[derive(Debug, Default, Deserialize)]
struct FinishedResponse {
    /// The model that answered.
    model: Option<String>,
    status: Option<String>,
    usage: Option<TokenUsage>,
    incomplete_details: Option<IncompleteDetails>,
    error: Option<Value>,
    /// The items of a whole response (a streamed one repeats what was streamed).
    #[serde(default)]
    output: Value,
}

#[derive(Debug, Default, Deserialize)]
struct TokenUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputTokensDetails>,
    output_tokens_details: Option<OutputTokensDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct InputTokensDetails {
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputTokensDetails {
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct IncompleteDetails {
    reason: Option<String>,
}

/// The output items this decoder reads itself; the others are tools' (see `hosted_tools`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Message {
        #[serde(default)]
        content: Vec<MessageContent>,
    },
    Reasoning {
        encrypted_content: Option<String>,
        #[serde(default)]
        summary: Vec<SummaryPart>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: Option<String>,
    },
    #[serde(other)]
    Tool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MessageContent {
    OutputText {
        #[serde(default)]
        text: String,
        /// Citations of the text (a web search's pages); other kinds are skipped.
        #[serde(default)]
        annotations: Vec<Annotation>,
    },
    Refusal {
        #[serde(default)]
        refusal: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Annotation {
    UrlCitation {
        url: String,
        #[serde(default)]
        title: Option<String>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct SummaryPart {
    #[serde(default)]
    text: String,
}

impl ResponsesEvent {
    /// The event an SSE event carries. One whose data has no `type` goes by the SSE event name,
    /// and one with neither says nothing this decoder knows.
    fn parse(event: &SseEvent) -> Result<ResponsesEvent, ModelError> {
        let data: Value = serde_json::from_str(&event.data).map_err(|e| {
            ModelError::Protocol(format!(
                "a Responses event is not JSON ({e}): {}",
                truncate(&event.data, 200)
            ))
        })?;
        let Value::Object(mut fields) = data else {
            return Err(protocol("its data is not a JSON object"));
        };
        if !fields.get("type").is_some_and(Value::is_string) {
            let Some(name) = event.event.as_deref() else {
                return Ok(ResponsesEvent::Other);
            };
            fields.insert("type".into(), name.into());
        }
        ResponsesEvent::deserialize(Value::Object(fields)).map_err(|e| protocol(&e.to_string()))
    }
}

fn protocol(what: &str) -> ModelError {
    ModelError::Protocol(format!("unexpected Responses event: {what}"))
}

/// An output item being streamed.
struct Item {
    /// The id it was announced with.
    id: Option<String>,
    state: ItemState,
}

enum ItemState {
    /// The text streamed so far, by content index.
    Message(BTreeMap<u64, String>),
    Reasoning(ReasoningItem),
    FunctionCall(StreamedToolCall),
    /// A tool's item, read when it is done.
    Tool,
    /// Done: what comes after changes nothing.
    Done,
}

#[derive(Default)]
struct ReasoningItem {
    encrypted_content: Option<String>,
    /// The summary text streamed so far, by summary index.
    summaries: BTreeMap<u64, String>,
    /// The summary part (or [`RAW_REASONING`]) being streamed as the open reasoning part.
    open_part: Option<u64>,
}

/// The open part of reasoning streamed as itself rather than as a summary.
const RAW_REASONING: u64 = u64::MAX;

/// The Responses stream, event by event.
#[derive(Default)]
pub struct ResponsesDecoder {
    items: BTreeMap<u64, Item>,
    /// The call ids of shell calls run in OpenAI's containers, whose outputs come later.
    hosted_shell_calls: Vec<String>,
    called_functions: bool,
    refused: bool,
    /// `ResponseModel` has been emitted.
    model_named: bool,
    /// The pages cited so far: a page cited again is one source.
    cited: Vec<String>,
    finished: bool,
}

impl ResponsesDecoder {
    /// A decoder at the start of a response.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a whole (non-streamed) response body, for servers that ignore `stream`.
    pub fn decode_response(body: &[u8]) -> Result<Vec<ModelEvent>, ModelError> {
        let value: Value = serde_json::from_slice(body).map_err(|error| {
            ModelError::Protocol(format!(
                "invalid JSON in a response ({error}): {}",
                truncate(&String::from_utf8_lossy(body), 200)
            ))
        })?;
        if !value["output"].is_array() {
            return Err(match value.get("error").filter(|error| !error.is_null()) {
                Some(error) => ModelError::Stream(error_message(error)),
                None => protocol("a response without output"),
            });
        }
        let response =
            FinishedResponse::deserialize(&value).map_err(|e| protocol(&e.to_string()))?;
        let mut decoder = Self::new();
        let mut out = Vec::new();
        decoder.name_model(response.model.as_deref(), &mut out);
        if let Value::Array(items) = &response.output {
            for (index, item) in items.iter().enumerate() {
                decoder.item_done(Some(index as u64), item.clone(), &mut out)?;
            }
        }
        match response.status.as_deref() {
            Some("failed") => return Err(failure(&response)),
            Some("incomplete") => decoder.finish(response, false, &mut out),
            _ => decoder.finish(response, true, &mut out),
        }
        Ok(out)
    }

    /// Says which model answers, the first time the response names one.
    fn name_model(&mut self, model: Option<&str>, out: &mut Vec<ModelEvent>) {
        if let Some(model) = model.filter(|model| !self.model_named && !model.is_empty()) {
            self.model_named = true;
            out.push(ModelEvent::ResponseModel(model.to_owned()));
        }
    }

    /// The index of the item announced with this id.
    fn index_of_id(&self, id: &str) -> Option<u64> {
        self.items
            .iter()
            .find(|(_, item)| item.id.as_deref() == Some(id))
            .map(|(index, _)| *index)
    }

    /// Where an event's item is: at its output index, else the item announced with its id,
    /// else the latest.
    fn locate(&self, output_index: Option<u64>, item_id: Option<&str>) -> Option<u64> {
        output_index
            .or_else(|| self.index_of_id(item_id?))
            .or_else(|| self.items.keys().next_back().copied())
    }

    /// Where an item an event carries whole belongs: at its output index, else where an item
    /// with its id was announced, else after the others.
    fn index_of_item(&self, output_index: Option<u64>, item: &Value) -> u64 {
        output_index
            .or_else(|| self.index_of_id(item["id"].as_str()?))
            .unwrap_or_else(|| {
                self.items
                    .keys()
                    .next_back()
                    .map_or(0, |last| last.saturating_add(1))
            })
    }

    /// The item an event is about; one never announced is taken to be of the event's kind.
    fn item_at(
        &mut self,
        output_index: Option<u64>,
        item_id: Option<String>,
        new_state: impl FnOnce() -> ItemState,
    ) -> &mut Item {
        let index = self
            .locate(output_index, item_id.as_deref())
            .unwrap_or_default();
        self.items.entry(index).or_insert_with(|| Item {
            id: item_id,
            state: new_state(),
        })
    }

    fn item_added(
        &mut self,
        output_index: Option<u64>,
        item: Value,
        out: &mut Vec<ModelEvent>,
    ) -> Result<(), ModelError> {
        let index = self.index_of_item(output_index, &item);
        if self.items.contains_key(&index) {
            tracing::debug!(
                index,
                "an output item announced twice: the first one stands"
            );
            return Ok(());
        }
        let id = item["id"].as_str().map(str::to_owned);
        let state = match OutputItem::deserialize(&item).map_err(|e| protocol(&e.to_string()))? {
            OutputItem::Message { .. } => ItemState::Message(BTreeMap::new()),
            OutputItem::Reasoning {
                encrypted_content, ..
            } => ItemState::Reasoning(ReasoningItem {
                encrypted_content,
                ..ReasoningItem::default()
            }),
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                let mut call = StreamedToolCall::start(call_id, name, out);
                call.push_arguments(arguments.as_deref().unwrap_or_default(), out);
                ItemState::FunctionCall(call)
            }
            OutputItem::Tool => ItemState::Tool,
        };
        self.items.insert(index, Item { id, state });
        Ok(())
    }

    fn text_delta(
        &mut self,
        output_index: Option<u64>,
        item_id: Option<String>,
        content_index: Option<u64>,
        delta: String,
        out: &mut Vec<ModelEvent>,
    ) {
        let item = self.item_at(
            output_index,
            item_id,
            || ItemState::Message(BTreeMap::new()),
        );
        let ItemState::Message(texts) = &mut item.state else {
            tracing::debug!("text for an output item that is not a message: ignored");
            return;
        };
        texts
            .entry(content_index.unwrap_or_default())
            .or_default()
            .push_str(&delta);
        if !delta.is_empty() {
            out.push(ModelEvent::TextDelta(delta));
        }
    }

    fn reasoning_delta(
        &mut self,
        output_index: Option<u64>,
        item_id: Option<String>,
        part: u64,
        delta: Option<String>,
        out: &mut Vec<ModelEvent>,
    ) {
        let item = self.item_at(output_index, item_id, || {
            ItemState::Reasoning(ReasoningItem::default())
        });
        let Item {
            id,
            state: ItemState::Reasoning(reasoning),
        } = item
        else {
            tracing::debug!("reasoning for an output item that is not reasoning: ignored");
            return;
        };
        switch_part(id.as_deref(), reasoning, part, out);
        if let Some(delta) = delta.filter(|delta| !delta.is_empty()) {
            if part != RAW_REASONING {
                reasoning
                    .summaries
                    .entry(part)
                    .or_default()
                    .push_str(&delta);
            }
            out.push(ModelEvent::ReasoningDelta(delta));
        }
    }

    fn arguments_delta(
        &mut self,
        output_index: Option<u64>,
        item_id: Option<String>,
        delta: String,
        out: &mut Vec<ModelEvent>,
    ) {
        let Some(index) = self.locate(output_index, item_id.as_deref()) else {
            tracing::debug!("arguments for a function call never announced: ignored");
            return;
        };
        match self.items.get_mut(&index) {
            Some(Item {
                state: ItemState::FunctionCall(call),
                ..
            }) => call.push_arguments(&delta, out),
            _ => tracing::debug!("arguments for an item that is not a function call: ignored"),
        }
    }

    /// An item is whole: what its deltas left out is made up from it, then it ends.
    fn item_done(
        &mut self,
        output_index: Option<u64>,
        item: Value,
        out: &mut Vec<ModelEvent>,
    ) -> Result<(), ModelError> {
        let index = self.index_of_item(output_index, &item);
        let (id, state) = match self.items.remove(&index) {
            Some(Item { id, state }) => (id.or_else(|| item_id(&item)), Some(state)),
            None => (item_id(&item), None),
        };
        self.items.insert(
            index,
            Item {
                id: id.clone(),
                state: ItemState::Done,
            },
        );
        if matches!(state, Some(ItemState::Done)) {
            return Ok(());
        }
        match OutputItem::deserialize(&item).map_err(|e| protocol(&e.to_string()))? {
            OutputItem::Message { content } => {
                let streamed = match state {
                    Some(ItemState::Message(texts)) => texts,
                    _ => BTreeMap::new(),
                };
                self.message_done(id.as_deref(), &content, &streamed, out);
            }
            OutputItem::Reasoning {
                encrypted_content,
                summary,
            } => {
                let mut reasoning = match state {
                    Some(ItemState::Reasoning(reasoning)) => reasoning,
                    _ => ReasoningItem::default(),
                };
                if encrypted_content.is_some() {
                    reasoning.encrypted_content = encrypted_content;
                }
                for (part, summary) in summary.iter().enumerate() {
                    let part = part as u64;
                    let streamed = reasoning.summaries.get(&part).map_or("", String::as_str);
                    if let Some(rest) = unstreamed(streamed, &summary.text) {
                        let rest = rest.to_owned();
                        switch_part(id.as_deref(), &mut reasoning, part, out);
                        out.push(ModelEvent::ReasoningDelta(rest));
                    }
                }
                end_reasoning(id.as_deref(), reasoning, out);
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => {
                let mut call = match state {
                    Some(ItemState::FunctionCall(call)) => call,
                    _ => StreamedToolCall::start(call_id, name, out),
                };
                let arguments = arguments.unwrap_or_default();
                match unstreamed(call.arguments(), &arguments) {
                    Some(rest) => call.push_arguments(rest, out),
                    None if call.arguments() != arguments => tracing::debug!(
                        "a function call's final arguments differ from the streamed ones: \
                         the streamed ones stand"
                    ),
                    None => {}
                }
                out.push(call.finish());
                self.called_functions = true;
            }
            OutputItem::Tool => self.tool_done(&item, out),
        }
        Ok(())
    }

    fn message_done(
        &mut self,
        item_id: Option<&str>,
        content: &[MessageContent],
        streamed: &BTreeMap<u64, String>,
        out: &mut Vec<ModelEvent>,
    ) {
        for (index, part) in content.iter().enumerate() {
            let whole = match part {
                MessageContent::OutputText { text, annotations } => {
                    let so_far = streamed.get(&(index as u64)).map_or("", String::as_str);
                    if let Some(rest) = unstreamed(so_far, text) {
                        out.push(ModelEvent::TextDelta(rest.to_owned()));
                    }
                    self.cite(item_id, annotations, out);
                    continue;
                }
                MessageContent::Refusal { refusal } => {
                    self.refused = true;
                    refusal
                }
                MessageContent::Other => continue,
            };
            let so_far = streamed.get(&(index as u64)).map_or("", String::as_str);
            if let Some(rest) = unstreamed(so_far, whole) {
                out.push(ModelEvent::TextDelta(rest.to_owned()));
            }
        }
    }

    /// The pages a text cites, each once per response, as sources after the text. The AI SDK's
    /// `annotation.added` events come before the item's `done`, which repeats them: only the
    /// `done` is read, so a whole (non-streamed) response cites the same way.
    fn cite(
        &mut self,
        item_id: Option<&str>,
        annotations: &[Annotation],
        out: &mut Vec<ModelEvent>,
    ) {
        for annotation in annotations {
            let Annotation::UrlCitation { url, title } = annotation else {
                continue;
            };
            if self.cited.contains(url) {
                continue;
            }
            self.cited.push(url.clone());
            // Unique in the message: the item's id is the response's own.
            let id = match item_id {
                Some(item) => format!("{item}-{}", self.cited.len()),
                None => format!("source-{}", uuid::Uuid::new_v4().simple()),
            };
            out.push(ModelEvent::Source {
                id,
                url: url.clone(),
                title: title.clone().filter(|title| !title.is_empty()),
            });
        }
    }

    fn tool_done(&mut self, item: &Value, out: &mut Vec<ModelEvent>) {
        let result =
            |id: String, name: &str, result: HostedResult| ModelEvent::ProviderToolResult {
                id,
                name: name.to_owned(),
                output: result.output,
                failed: result.failed,
            };
        match hosted_tools::read_item(item, &self.hosted_shell_calls) {
            HostedItem::Call {
                id,
                name,
                input,
                result: outcome,
            } => {
                out.push(ModelEvent::ProviderToolCall {
                    id: id.clone(),
                    name: name.to_owned(),
                    input,
                });
                match outcome {
                    Some(outcome) => out.push(result(id, name, outcome)),
                    None => self.hosted_shell_calls.push(id),
                }
            }
            HostedItem::Result {
                id,
                name,
                result: outcome,
            } => out.push(result(id, name, outcome)),
            HostedItem::Skipped(reason) => {
                tracing::debug!("skipped an output item of the Responses API: {reason}")
            }
        }
    }

    /// The response is over: items never finished end as they are (function calls only when
    /// it completed: a response cut short may have cut their arguments), then `Finish`.
    fn finish(&mut self, response: FinishedResponse, completed: bool, out: &mut Vec<ModelEvent>) {
        self.name_model(response.model.as_deref(), out);
        for (_, item) in std::mem::take(&mut self.items) {
            match item.state {
                ItemState::FunctionCall(call) if completed => {
                    out.push(call.finish());
                    self.called_functions = true;
                }
                ItemState::FunctionCall(call) => {
                    tracing::debug!(
                        call = call.id(),
                        "a function call the response cut short: dropped"
                    )
                }
                ItemState::Reasoning(reasoning) => {
                    end_reasoning(item.id.as_deref(), reasoning, out)
                }
                ItemState::Message(_) | ItemState::Tool | ItemState::Done => {}
            }
        }
        let reason = if completed {
            if self.called_functions {
                FinishReason::ToolCalls
            } else if self.refused {
                FinishReason::ContentFilter
            } else {
                FinishReason::Stop
            }
        } else {
            let reason = response
                .incomplete_details
                .and_then(|details| details.reason);
            match reason.as_deref() {
                Some("max_output_tokens") => FinishReason::Length,
                Some("content_filter") => FinishReason::ContentFilter,
                _ => FinishReason::Other,
            }
        };
        out.push(ModelEvent::Finish {
            reason,
            usage: usage(response.usage.unwrap_or_default()),
        });
        self.finished = true;
    }
}

fn item_id(item: &Value) -> Option<String> {
    item["id"].as_str().map(str::to_owned)
}

/// What `whole` adds to what was streamed of it, when anything; `None` when nothing is missing
/// or the two disagree (what was streamed was shown and stands).
fn unstreamed<'a>(streamed: &str, whole: &'a str) -> Option<&'a str> {
    whole.strip_prefix(streamed).filter(|rest| !rest.is_empty())
}

/// What the reasoning part carries for the next call: `{"openai": {"itemId",
/// "reasoningEncryptedContent"}}` with what is known.
fn reasoning_metadata(id: Option<&str>, encrypted_content: Option<&str>) -> Option<Value> {
    let mut openai = Map::new();
    if let Some(id) = id {
        openai.insert("itemId".into(), id.into());
    }
    if let Some(encrypted) = encrypted_content {
        openai.insert("reasoningEncryptedContent".into(), encrypted.into());
    }
    (!openai.is_empty()).then(|| serde_json::json!({ "openai": openai }))
}

/// Makes `part` the open reasoning part: another one open ends first (its item's encrypted
/// content goes with the last part, when the item is done).
fn switch_part(
    id: Option<&str>,
    reasoning: &mut ReasoningItem,
    part: u64,
    out: &mut Vec<ModelEvent>,
) {
    if reasoning.open_part.is_some_and(|open| open != part) {
        out.push(ModelEvent::ReasoningEnd {
            provider_metadata: reasoning_metadata(id, None),
        });
    }
    reasoning.open_part = Some(part);
}

/// Ends the item's reasoning. With nothing shown and nothing encrypted to send back there is no
/// part to keep.
fn end_reasoning(id: Option<&str>, reasoning: ReasoningItem, out: &mut Vec<ModelEvent>) {
    if reasoning.open_part.is_none() && reasoning.encrypted_content.is_none() {
        return;
    }
    out.push(ModelEvent::ReasoningEnd {
        provider_metadata: reasoning_metadata(id, reasoning.encrypted_content.as_deref()),
    });
}

fn usage(usage: TokenUsage) -> Usage {
    Usage {
        input_tokens: usage.input_tokens.unwrap_or(0),
        output_tokens: usage.output_tokens.unwrap_or(0),
        reasoning_tokens: usage
            .output_tokens_details
            .and_then(|details| details.reasoning_tokens)
            .unwrap_or(0),
        cached_input_tokens: usage
            .input_tokens_details
            .and_then(|details| details.cached_tokens)
            .unwrap_or(0),
        cache_write_input_tokens: 0,
    }
}

/// The error of a failed response.
fn failure(response: &FinishedResponse) -> ModelError {
    match response.error.as_ref().filter(|error| !error.is_null()) {
        Some(error) => ModelError::Stream(error_message(error)),
        None => ModelError::Stream("the response failed without saying why".into()),
    }
}

impl EventDecoder for ResponsesDecoder {
    fn push(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished || event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match ResponsesEvent::parse(event)? {
            ResponsesEvent::OutputItemAdded { output_index, item } => {
                self.item_added(output_index, item, &mut out)?
            }
            ResponsesEvent::OutputItemDone { output_index, item } => {
                self.item_done(output_index, item, &mut out)?
            }
            ResponsesEvent::OutputTextDelta {
                output_index,
                item_id,
                content_index,
                delta,
            } => self.text_delta(output_index, item_id, content_index, delta, &mut out),
            ResponsesEvent::RefusalDelta {
                output_index,
                item_id,
                content_index,
                delta,
            } => {
                self.refused = true;
                self.text_delta(output_index, item_id, content_index, delta, &mut out)
            }
            ResponsesEvent::ReasoningSummaryPartAdded {
                output_index,
                item_id,
                summary_index,
            } => self.reasoning_delta(output_index, item_id, summary_index, None, &mut out),
            ResponsesEvent::ReasoningSummaryTextDelta {
                output_index,
                item_id,
                summary_index,
                delta,
            } => self.reasoning_delta(output_index, item_id, summary_index, Some(delta), &mut out),
            ResponsesEvent::ReasoningTextDelta {
                output_index,
                item_id,
                delta,
            } => self.reasoning_delta(output_index, item_id, RAW_REASONING, Some(delta), &mut out),
            ResponsesEvent::FunctionCallArgumentsDelta {
                output_index,
                item_id,
                delta,
            } => self.arguments_delta(output_index, item_id, delta, &mut out),
            ResponsesEvent::Created { response } => {
                self.name_model(response.model.as_deref(), &mut out)
            }
            ResponsesEvent::Completed { response } => self.finish(response, true, &mut out),
            ResponsesEvent::Incomplete { response } => self.finish(response, false, &mut out),
            ResponsesEvent::Failed { response } => return Err(failure(&response)),
            ResponsesEvent::Error { message, error } => {
                let message = match (error.filter(|error| !error.is_null()), message) {
                    (Some(error), _) => error_message(&error),
                    (None, Some(message)) => message,
                    (None, None) => "the model provider reported an error".to_owned(),
                };
                return Err(ModelError::Stream(message));
            }
            ResponsesEvent::Other => {}
        }
        Ok(out)
    }

    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished {
            Ok(Vec::new())
        } else {
            Err(ModelError::Transport(
                "the stream ended before the response was complete".into(),
            ))
        }
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

/// Decodes a Responses SSE byte stream as it arrives.
pub fn decode_responses_stream<S, E>(bytes: S) -> ModelStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error,
{
    decode_sse_stream(bytes, ResponsesDecoder::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    fn event(data: &Value) -> SseEvent {
        SseEvent {
            event: data["type"].as_str().map(str::to_owned),
            data: data.to_string(),
            id: None,
        }
    }

    fn decode(events: &[Value]) -> Result<Vec<ModelEvent>, ModelError> {
        let mut decoder = ResponsesDecoder::new();
        let mut out = Vec::new();
        for data in events {
            out.extend(decoder.push(&event(data))?);
        }
        out.extend(decoder.end()?);
        Ok(out)
    }

    fn completed(usage: Value) -> Value {
        json!({ "type": "response.completed", "response": { "status": "completed", "usage": usage } })
    }

    fn finish(reason: FinishReason) -> ModelEvent {
        ModelEvent::Finish {
            reason,
            usage: Usage::default(),
        }
    }

    fn reasoning_end(id: &str, encrypted: Option<&str>) -> ModelEvent {
        ModelEvent::ReasoningEnd {
            provider_metadata: reasoning_metadata(Some(id), encrypted),
        }
    }

    fn text(delta: &str) -> ModelEvent {
        ModelEvent::TextDelta(delta.into())
    }

    fn reasoning(delta: &str) -> ModelEvent {
        ModelEvent::ReasoningDelta(delta.into())
    }

    #[test]
    fn a_texts_citations_are_sources_after_it_each_page_once() {
        let cite = |url: &str, title: &str| json!({"type":"url_citation","start_index":0,"end_index":4,"url":url,"title":title});
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","content":[]}}),
            json!({"type":"response.output_text.delta","output_index":0,"item_id":"msg_1","content_index":0,"delta":"News."}),
            json!({"type":"response.output_text.annotation.added","output_index":0,"item_id":"msg_1","content_index":0,"annotation_index":0,"annotation":cite("https://a.example/1", "One")}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"msg_1","type":"message","content":[{"type":"output_text","text":"News.","annotations":[
                cite("https://a.example/1", "One"),
                cite("https://b.example/2", ""),
                cite("https://a.example/1", "One"),
                {"type":"file_citation","file_id":"file_1","index":0},
            ]}]}}),
            completed(json!({"input_tokens":1,"output_tokens":1})),
        ])
        .expect("decodes");
        let sources: Vec<&ModelEvent> = events
            .iter()
            .filter(|event| matches!(event, ModelEvent::Source { .. }))
            .collect();
        assert_eq!(
            sources,
            [
                &ModelEvent::Source {
                    id: "msg_1-1".into(),
                    url: "https://a.example/1".into(),
                    title: Some("One".into()),
                },
                &ModelEvent::Source {
                    id: "msg_1-2".into(),
                    url: "https://b.example/2".into(),
                    title: None,
                },
            ]
        );
        let text_at = events.iter().position(|event| event == &text("News."));
        let first_source = events
            .iter()
            .position(|event| matches!(event, ModelEvent::Source { .. }));
        assert!(text_at < first_source, "{events:?}");
    }

    #[test]
    fn reasoning_summaries_text_and_a_function_call() {
        let events = decode(&[
            json!({"type":"response.created","response":{"status":"in_progress","model":"gpt-5-mini-2025-08-07"}}),
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"rs_1","type":"reasoning","encrypted_content":"early","summary":[]}}),
            json!({"type":"response.reasoning_summary_part.added","output_index":0,"item_id":"rs_1","summary_index":0,"part":{"type":"summary_text","text":""}}),
            json!({"type":"response.reasoning_summary_text.delta","output_index":0,"item_id":"rs_1","summary_index":0,"delta":"First."}),
            json!({"type":"response.reasoning_summary_part.added","output_index":0,"item_id":"rs_1","summary_index":1,"part":{"type":"summary_text","text":""}}),
            json!({"type":"response.reasoning_summary_text.delta","output_index":0,"item_id":"rs_1","summary_index":1,"delta":"Second."}),
            json!({"type":"response.reasoning_summary_text.done","output_index":0,"item_id":"rs_1","summary_index":1,"text":"Second."}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"rs_1","type":"reasoning","encrypted_content":"sealed","summary":[{"type":"summary_text","text":"First."},{"type":"summary_text","text":"Second."}]}}),
            json!({"type":"response.output_item.added","output_index":1,"item":{"id":"msg_1","type":"message","role":"assistant","content":[]}}),
            json!({"type":"response.output_text.delta","output_index":1,"item_id":"msg_1","content_index":0,"delta":"Rolling."}),
            json!({"type":"response.output_text.annotation.added","output_index":1,"annotation":{"type":"url_citation"}}),
            json!({"type":"response.output_item.done","output_index":1,"item":{"id":"msg_1","type":"message","content":[{"type":"output_text","text":"Rolling.","annotations":[]}]}}),
            json!({"type":"response.output_item.added","output_index":2,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"roll","arguments":""}}),
            json!({"type":"response.function_call_arguments.delta","output_index":2,"item_id":"fc_1","delta":"{\"sides\":"}),
            json!({"type":"response.function_call_arguments.delta","output_index":2,"item_id":"fc_1","delta":"6}"}),
            json!({"type":"response.function_call_arguments.done","output_index":2,"item_id":"fc_1","arguments":"{\"sides\":6}"}),
            json!({"type":"response.output_item.done","output_index":2,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"roll","arguments":"{\"sides\":6}","status":"completed"}}),
            completed(json!({"input_tokens":120,"input_tokens_details":{"cached_tokens":100},"output_tokens":40,"output_tokens_details":{"reasoning_tokens":30},"total_tokens":160})),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                ModelEvent::ResponseModel("gpt-5-mini-2025-08-07".into()),
                reasoning("First."),
                ModelEvent::ReasoningEnd {
                    provider_metadata: reasoning_metadata(Some("rs_1"), None),
                },
                reasoning("Second."),
                reasoning_end("rs_1", Some("sealed")),
                text("Rolling."),
                ModelEvent::ToolCallStart {
                    id: "call_1".into(),
                    name: "roll".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "call_1".into(),
                    arguments_delta: "{\"sides\":".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "call_1".into(),
                    arguments_delta: "6}".into(),
                },
                ModelEvent::ToolCall {
                    id: "call_1".into(),
                    name: "roll".into(),
                    arguments: "{\"sides\":6}".into(),
                },
                ModelEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage: Usage {
                        input_tokens: 120,
                        output_tokens: 40,
                        reasoning_tokens: 30,
                        cached_input_tokens: 100,
                        cache_write_input_tokens: 0,
                    },
                },
            ]
        );
    }

    #[test]
    fn the_model_is_named_once_from_the_first_event_that_names_it() {
        let events = decode(&[
            json!({"type":"response.created","response":{"status":"in_progress"}}),
            json!({"type":"response.output_text.delta","output_index":0,"item_id":"m","content_index":0,"delta":"Hi"}),
            json!({"type":"response.completed","response":{"status":"completed","model":"o4-mini-2025-04-16"}}),
        ])
        .expect("decodes");
        assert_eq!(
            events[..2],
            [
                text("Hi"),
                ModelEvent::ResponseModel("o4-mini-2025-04-16".into())
            ]
        );
        let whole = json!({"status":"completed","model":"gpt-5-mini","output":[
            {"type":"message","id":"m","content":[{"type":"output_text","text":"Hey"}]}]});
        let events =
            ResponsesDecoder::decode_response(whole.to_string().as_bytes()).expect("decodes");
        assert_eq!(
            events[..2],
            [ModelEvent::ResponseModel("gpt-5-mini".into()), text("Hey")]
        );
    }

    #[test]
    fn items_whose_ids_change_are_followed_by_their_output_index() {
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"id-1","type":"reasoning","encrypted_content":null,"summary":[]}}),
            json!({"type":"response.reasoning_summary_part.added","output_index":0,"item_id":"id-2","summary_index":0}),
            json!({"type":"response.reasoning_summary_text.delta","output_index":0,"item_id":"id-3","summary_index":0,"delta":"Hm."}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"id-4","type":"reasoning","encrypted_content":"sealed","summary":[{"type":"summary_text","text":"Hm."}]}}),
            json!({"type":"response.output_item.added","output_index":1,"item":{"id":"id-5","type":"function_call","call_id":"call_1","name":"f","arguments":""}}),
            json!({"type":"response.function_call_arguments.delta","output_index":1,"item_id":"id-6","delta":"{}"}),
            json!({"type":"response.output_item.done","output_index":1,"item":{"id":"id-7","type":"function_call","call_id":"call_9","name":"f","arguments":"{}"}}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                reasoning("Hm."),
                reasoning_end("id-1", Some("sealed")),
                ModelEvent::ToolCallStart {
                    id: "call_1".into(),
                    name: "f".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "call_1".into(),
                    arguments_delta: "{}".into(),
                },
                ModelEvent::ToolCall {
                    id: "call_1".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn events_without_an_output_index_find_their_item_by_id() {
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}),
            json!({"type":"response.output_item.added","output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"c","name":"f"}}),
            json!({"type":"response.output_text.delta","item_id":"msg_1","delta":"Hi"}),
            json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","delta":"{}"}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(events[1], text("Hi"));
        assert_eq!(
            events[3],
            ModelEvent::ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: "{}".into(),
            }
        );
    }

    #[test]
    fn reasoning_parts_are_kept_only_with_something_to_show_or_send_back() {
        let events = decode(&[
            // Neither a summary nor encrypted content: nothing to keep.
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}),
            // Only encrypted content, given when the item was announced.
            json!({"type":"response.output_item.added","output_index":1,"item":{"id":"rs_2","type":"reasoning","encrypted_content":"sealed","summary":[]}}),
            json!({"type":"response.output_item.done","output_index":1,"item":{"id":"rs_2","type":"reasoning","summary":[]}}),
            // A summary only its item's `done` carries.
            json!({"type":"response.output_item.done","output_index":2,"item":{"id":"rs_3","type":"reasoning","summary":[{"type":"summary_text","text":"Late."}]}}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                reasoning_end("rs_2", Some("sealed")),
                reasoning("Late."),
                reasoning_end("rs_3", None),
                finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn raw_reasoning_text_streams_as_reasoning() {
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}),
            json!({"type":"response.reasoning_text.delta","output_index":0,"content_index":0,"delta":"Thinking"}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[],"content":[{"type":"reasoning_text","text":"Thinking"}]}}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                reasoning("Thinking"),
                reasoning_end("rs_1", None),
                finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn text_a_stream_left_out_is_made_up_from_the_item_and_disagreement_keeps_what_was_shown() {
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}),
            json!({"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"Hel"}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"msg_1","type":"message","content":[{"type":"output_text","text":"Hello."}]}}),
            json!({"type":"response.output_item.added","output_index":1,"item":{"id":"msg_2","type":"message","content":[]}}),
            json!({"type":"response.output_text.delta","output_index":1,"content_index":0,"delta":"One"}),
            json!({"type":"response.output_item.done","output_index":1,"item":{"id":"msg_2","type":"message","content":[{"type":"output_text","text":"Two"}]}}),
            // Deltas after the item is done change nothing.
            json!({"type":"response.output_text.delta","output_index":1,"content_index":0,"delta":"late"}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                text("Hel"),
                text("lo."),
                text("One"),
                finish(FinishReason::Stop)
            ]
        );
    }

    #[test]
    fn a_function_call_completes_from_its_item() {
        let events = decode(&[
            // Announced and finished with no deltas between.
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"fc_1","type":"function_call","call_id":"a","name":"f","arguments":""}}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"fc_1","type":"function_call","call_id":"a","name":"f","arguments":"{\"n\":1}"}}),
            // Never announced.
            json!({"type":"response.output_item.done","output_index":1,"item":{"id":"fc_2","type":"function_call","call_id":"b","name":"g"}}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                ModelEvent::ToolCallStart {
                    id: "a".into(),
                    name: "f".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "a".into(),
                    arguments_delta: "{\"n\":1}".into(),
                },
                ModelEvent::ToolCall {
                    id: "a".into(),
                    name: "f".into(),
                    arguments: "{\"n\":1}".into(),
                },
                ModelEvent::ToolCallStart {
                    id: "b".into(),
                    name: "g".into(),
                },
                ModelEvent::ToolCall {
                    id: "b".into(),
                    name: "g".into(),
                    arguments: "{}".into(),
                },
                finish(FinishReason::ToolCalls),
            ]
        );
    }

    #[test]
    fn a_refusal_is_shown_as_text_and_finishes_as_content_filter() {
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}),
            json!({"type":"response.content_part.added","output_index":0,"content_index":0,"part":{"type":"refusal","refusal":""}}),
            json!({"type":"response.refusal.delta","output_index":0,"content_index":0,"delta":"I can't "}),
            json!({"type":"response.refusal.done","output_index":0,"content_index":0,"refusal":"I can't help."}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"msg_1","type":"message","content":[{"type":"refusal","refusal":"I can't help."}]}}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                text("I can't "),
                text("help."),
                finish(FinishReason::ContentFilter)
            ]
        );
    }

    #[test]
    fn an_incomplete_response_finishes_with_its_reason() {
        for (reason, expected) in [
            (json!("max_output_tokens"), FinishReason::Length),
            (json!("content_filter"), FinishReason::ContentFilter),
            (json!("something_new"), FinishReason::Other),
            (Value::Null, FinishReason::Other),
        ] {
            let events = decode(&[
                json!({"type":"response.output_item.added","output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}),
                json!({"type":"response.reasoning_summary_text.delta","output_index":0,"summary_index":0,"delta":"Long"}),
                json!({"type":"response.output_item.added","output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"a","name":"f"}}),
                json!({"type":"response.function_call_arguments.delta","output_index":1,"delta":"{\"n\":"}),
                json!({"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":reason},"usage":{"input_tokens":5,"output_tokens":9}}}),
            ])
            .expect("decodes");
            assert_eq!(
                events[events.len() - 2..],
                [
                    reasoning_end("rs_1", None),
                    ModelEvent::Finish {
                        reason: expected,
                        usage: Usage {
                            input_tokens: 5,
                            output_tokens: 9,
                            ..Usage::default()
                        },
                    },
                ],
                "{reason}"
            );
            assert!(
                !events
                    .iter()
                    .any(|event| matches!(event, ModelEvent::ToolCall { .. })),
                "a call cut short is dropped: {events:?}"
            );
        }
    }

    #[test]
    fn errors_and_failed_responses_are_stream_errors() {
        let flat = decode(&[
            json!({"type":"error","code":"server_error","message":"Something went wrong","param":null}),
        ]);
        assert_eq!(flat, Err(ModelError::Stream("Something went wrong".into())));
        let nested = decode(&[
            json!({"type":"error","error":{"type":"insufficient_quota","code":"insufficient_quota","message":"You exceeded your quota."}}),
        ]);
        assert_eq!(
            nested,
            Err(ModelError::Stream("You exceeded your quota.".into()))
        );
        let bare = decode(&[json!({"type":"error"})]);
        assert!(matches!(bare, Err(ModelError::Stream(_))));
        let failed = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}),
            json!({"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"The model crashed."}}}),
        ]);
        assert_eq!(failed, Err(ModelError::Stream("The model crashed.".into())));
        let silent = decode(&[
            json!({"type":"response.failed","response":{"status":"failed","error":null}}),
        ]);
        assert!(matches!(silent, Err(ModelError::Stream(_))));
    }

    #[test]
    fn a_stream_that_ends_before_the_response_is_complete_is_a_transport_error() {
        let early = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","content":[]}}),
            json!({"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"Hal"}),
        ]);
        assert!(matches!(&early, Err(error @ ModelError::Transport(_)) if error.is_transient()));
    }

    #[test]
    fn tools_openai_ran_are_shown_and_tools_for_a_client_are_skipped() {
        let events = decode(&[
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"ws_1","type":"web_search_call","status":"in_progress"}}),
            json!({"type":"response.web_search_call.searching","output_index":0,"item_id":"ws_1"}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"ws_1","type":"web_search_call","status":"completed","action":{"type":"search","query":"q"}}}),
            json!({"type":"response.output_item.added","output_index":1,"item":{"id":"ct_1","type":"custom_tool_call","call_id":"c","name":"sql","input":""}}),
            json!({"type":"response.custom_tool_call_input.delta","output_index":1,"delta":"SELECT"}),
            json!({"type":"response.output_item.done","output_index":1,"item":{"id":"ct_1","type":"custom_tool_call","call_id":"c","name":"sql","input":"SELECT"}}),
            json!({"type":"response.output_item.done","output_index":2,"item":{"id":"sh_1","type":"shell_call","call_id":"call_sh","action":{"commands":["ls"]},"environment":{"type":"container_auto"}}}),
            json!({"type":"response.output_item.done","output_index":3,"item":{"id":"sho_1","type":"shell_call_output","call_id":"call_sh","status":"completed","output":[{"stdout":"a"}]}}),
            json!({"type":"response.output_item.added","output_index":4,"item":{"id":"msg_1","type":"message","content":[]}}),
            json!({"type":"response.output_text.delta","output_index":4,"content_index":0,"delta":"Found it."}),
            json!({"type":"response.output_item.done","output_index":4,"item":{"id":"msg_1","type":"message","content":[{"type":"output_text","text":"Found it."}]}}),
            completed(Value::Null),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                ModelEvent::ProviderToolCall {
                    id: "ws_1".into(),
                    name: "web_search".into(),
                    input: json!({"action":{"type":"search","query":"q"}}),
                },
                ModelEvent::ProviderToolResult {
                    id: "ws_1".into(),
                    name: "web_search".into(),
                    output: json!({"status":"completed"}),
                    failed: false,
                },
                ModelEvent::ProviderToolCall {
                    id: "call_sh".into(),
                    name: "shell".into(),
                    input: json!({"action":{"commands":["ls"]}}),
                },
                ModelEvent::ProviderToolResult {
                    id: "call_sh".into(),
                    name: "shell".into(),
                    output: json!({"output":[{"stdout":"a"}]}),
                    failed: false,
                },
                text("Found it."),
                finish(FinishReason::Stop),
            ]
        );
    }

    #[test]
    fn an_event_without_a_type_goes_by_its_sse_name_and_unknown_events_are_ignored() {
        let mut decoder = ResponsesDecoder::new();
        let named = SseEvent {
            event: Some("response.completed".into()),
            data: r#"{"response":{"status":"completed"}}"#.into(),
            id: None,
        };
        assert_eq!(decoder.push(&named), Ok(vec![finish(FinishReason::Stop)]));
        assert!(decoder.is_finished());
        assert_eq!(
            decoder.push(&named),
            Ok(Vec::new()),
            "nothing after the finish"
        );

        let mut decoder = ResponsesDecoder::new();
        let nameless = SseEvent {
            event: None,
            data: r#"{"output_index":0}"#.into(),
            id: None,
        };
        assert_eq!(decoder.push(&nameless), Ok(Vec::new()));
        let unknown = event(&json!({"type":"response.something_new","payload":[1]}));
        assert_eq!(decoder.push(&unknown), Ok(Vec::new()));
        let keepalive = SseEvent::default();
        assert_eq!(decoder.push(&keepalive), Ok(Vec::new()));
    }

    #[test]
    fn malformed_events_are_protocol_errors() {
        for malformed in [
            json!({"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","name":"f"}}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"type":"function_call","call_id":"c"}}),
            json!({"type":"response.output_text.delta","output_index":0}),
            json!({"type":"response.output_item.added","output_index":-1,"item":{"type":"message"}}),
            json!({"type":"response.completed","response":{"usage":{"input_tokens":"many"}}}),
            json!(["response.completed"]),
        ] {
            let result = decode(std::slice::from_ref(&malformed));
            assert!(
                matches!(&result, Err(ModelError::Protocol(m)) if m.starts_with("unexpected Responses event")),
                "{malformed}: {result:?}"
            );
        }
        let mut decoder = ResponsesDecoder::new();
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
    fn a_whole_response_decodes_like_its_stream() {
        let body = json!({
            "id": "resp_1",
            "object": "response",
            "status": "completed",
            "error": null,
            "output": [
                {"id":"rs_1","type":"reasoning","encrypted_content":"sealed","summary":[{"type":"summary_text","text":"Plan."}]},
                {"id":"msg_1","type":"message","content":[{"type":"output_text","text":"Hi."}]},
                {"id":"fc_1","type":"function_call","call_id":"a","name":"f","arguments":"{}"},
            ],
            "usage": {"input_tokens": 3, "output_tokens": 4},
        });
        let events =
            ResponsesDecoder::decode_response(body.to_string().as_bytes()).expect("decodes");
        assert_eq!(
            events,
            vec![
                reasoning("Plan."),
                reasoning_end("rs_1", Some("sealed")),
                text("Hi."),
                ModelEvent::ToolCallStart {
                    id: "a".into(),
                    name: "f".into(),
                },
                ModelEvent::ToolCallDelta {
                    id: "a".into(),
                    arguments_delta: "{}".into(),
                },
                ModelEvent::ToolCall {
                    id: "a".into(),
                    name: "f".into(),
                    arguments: "{}".into(),
                },
                ModelEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage: Usage {
                        input_tokens: 3,
                        output_tokens: 4,
                        ..Usage::default()
                    },
                },
            ]
        );
        let incomplete = json!({"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[]});
        assert_eq!(
            ResponsesDecoder::decode_response(incomplete.to_string().as_bytes()),
            Ok(vec![finish(FinishReason::Length)])
        );
        let failed = json!({"status":"failed","error":{"message":"boom"},"output":[]});
        assert_eq!(
            ResponsesDecoder::decode_response(failed.to_string().as_bytes()),
            Err(ModelError::Stream("boom".into()))
        );
        assert_eq!(
            ResponsesDecoder::decode_response(br#"{"error":{"message":"no"}}"#),
            Err(ModelError::Stream("no".into()))
        );
        assert!(matches!(
            ResponsesDecoder::decode_response(b"[]"),
            Err(ModelError::Protocol(_))
        ));
        assert!(matches!(
            ResponsesDecoder::decode_response(b"nope"),
            Err(ModelError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn byte_stream_split_anywhere_decodes_the_same() {
        let events = [
            json!({"type":"response.output_item.added","output_index":0,"item":{"id":"rs_1","type":"reasoning","summary":[]}}),
            json!({"type":"response.reasoning_summary_text.delta","output_index":0,"summary_index":0,"delta":"Thïnk"}),
            json!({"type":"response.output_item.done","output_index":0,"item":{"id":"rs_1","type":"reasoning","encrypted_content":"e","summary":[{"type":"summary_text","text":"Thïnk"}]}}),
            json!({"type":"response.output_text.delta","output_index":1,"content_index":0,"delta":"wörld 🦀"}),
            completed(json!({"input_tokens":2,"output_tokens":3})),
        ];
        let body: String = events
            .iter()
            .map(|data| {
                format!(
                    "event: {}\ndata: {data}\n\n",
                    data["type"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let body = format!(": keep-alive\n\n{body}").into_bytes();
        let expected = vec![
            reasoning("Thïnk"),
            reasoning_end("rs_1", Some("e")),
            text("wörld 🦀"),
            ModelEvent::Finish {
                reason: FinishReason::Stop,
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
            let decoded: Vec<_> = decode_responses_stream(futures::stream::iter(pieces))
                .collect()
                .await;
            let decoded: Vec<ModelEvent> = decoded.into_iter().map(Result::unwrap).collect();
            assert_eq!(decoded, expected, "split at {split}");
        }
    }
}
