//! The ConverseStream events, message by message, as [`ModelEvent`]s: each message is read by
//! its `:event-type` into a [`ConverseEvent`], and each kind has its own step of the decoder.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::model::bedrock::event_stream::{FrameDecoder, Message};
use crate::model::tool_call::StreamedToolCall;
use crate::model::transport::{ByteStreamDecoder, MAX_ERROR_MESSAGE_CHARS, truncate};
use crate::model::{FinishReason, ModelError, ModelEvent, Usage};

/// One ConverseStream event. Its kind is the message's `:event-type` header and its payload a
/// JSON object of that kind's shape. Fields the API may leave out are optional; a known event of
/// another shape is a protocol error.
#[derive(Debug)]
enum ConverseEvent {
    ContentBlockStart(ContentBlockStart),
    ContentBlockDelta(ContentBlockDelta),
    ContentBlockStop(ContentBlockStop),
    MessageStop(MessageStop),
    Metadata(Metadata),
    /// `messageStart`, and event types added after this was written.
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockStart {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    start: BlockStart,
}

/// Text and reasoning blocks start with their first delta; only a tool use says so first.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    tool_use: Option<ToolUseStart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockDelta {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    delta: BlockDelta,
}

/// One of its fields is set, by the kind of block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    text: Option<String>,
    tool_use: Option<ToolUseDelta>,
    reasoning_content: Option<ReasoningDelta>,
}

#[derive(Debug, Deserialize)]
struct ToolUseDelta {
    input: Option<String>,
}

/// Text to show, or what sending the reasoning back needs: its `signature`, or the whole
/// reasoning encrypted (`redactedContent`, base64).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasoningDelta {
    text: Option<String>,
    signature: Option<String>,
    redacted_content: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentBlockStop {
    #[serde(default)]
    content_block_index: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    usage: Option<TokenUsage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_write_input_tokens: Option<u64>,
}

/// The payload of an exception message.
#[derive(Deserialize)]
struct ExceptionBody {
    #[serde(alias = "Message")]
    message: Option<String>,
}

impl ConverseEvent {
    /// The event a message carries, or the error an exception or error message stands for.
    fn from_message(message: &Message) -> Result<ConverseEvent, ModelError> {
        match message.header_str(":message-type").unwrap_or("event") {
            "event" => {}
            "exception" => return Err(exception_message_error(message)),
            "error" => {
                let code = message.header_str(":error-code").unwrap_or("error");
                let text = message.header_str(":error-message").unwrap_or_default();
                return Err(ModelError::Stream(truncate(
                    &format!("{code}: {text}"),
                    MAX_ERROR_MESSAGE_CHARS,
                )));
            }
            other => return Err(protocol(&format!("message type `{other}`"))),
        }
        let Some(kind) = message.header_str(":event-type") else {
            return Err(protocol("an event without :event-type"));
        };
        let payload = &message.payload;
        Ok(match kind {
            "contentBlockStart" => ConverseEvent::ContentBlockStart(payload_of(kind, payload)?),
            "contentBlockDelta" => ConverseEvent::ContentBlockDelta(payload_of(kind, payload)?),
            "contentBlockStop" => ConverseEvent::ContentBlockStop(payload_of(kind, payload)?),
            "messageStop" => ConverseEvent::MessageStop(payload_of(kind, payload)?),
            "metadata" => ConverseEvent::Metadata(payload_of(kind, payload)?),
            _ => {
                payload_of::<IgnoredAny>(kind, payload)?;
                ConverseEvent::Other
            }
        })
    }
}

/// The payload of a `kind` event, read as `T`.
fn payload_of<T: DeserializeOwned>(kind: &str, payload: &[u8]) -> Result<T, ModelError> {
    serde_json::from_slice(payload).map_err(|e| {
        let what = if e.is_data() {
            "is malformed"
        } else {
            "is not JSON"
        };
        ModelError::Protocol(format!("a `{kind}` event {what}: {e}"))
    })
}

fn exception_message_error(message: &Message) -> ModelError {
    let kind = message
        .header_str(":exception-type")
        .unwrap_or("unknownException");
    let text = match serde_json::from_slice::<ExceptionBody>(&message.payload) {
        Ok(ExceptionBody {
            message: Some(text),
        }) => text,
        _ => String::from_utf8_lossy(&message.payload).into_owned(),
    };
    exception_error(kind, &text)
}

/// The ConverseStream events, message by message. `Finish` comes with `metadata` (which follows
/// `messageStop` and carries the usage), or at the end of the stream when it never came.
#[derive(Default)]
pub struct ConverseDecoder {
    /// Tool use blocks being streamed; text blocks need no state.
    tool_uses: BTreeMap<u64, StreamedToolCall>,
    /// Reasoning blocks being streamed (they have no start event), with what the provider
    /// attached to them so far.
    reasoning: BTreeMap<u64, ReasoningBlock>,
    usage: Usage,
    stop_reason: Option<FinishReason>,
    saw_metadata: bool,
    finished: bool,
}

/// What a reasoning block carries besides its text.
#[derive(Default)]
struct ReasoningBlock {
    signature: String,
    redacted_content: String,
}

/// The key of this provider's entries in `providerMetadata`, as the AI SDK names it.
pub(crate) const PROVIDER_KEY: &str = "amazonBedrock";

fn protocol(what: &str) -> ModelError {
    ModelError::Protocol(format!("unexpected ConverseStream event: {what}"))
}

/// The finish reason a ConverseStream `stopReason` stands for; one it does not know is `Other`.
pub fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "guardrail_intervened" | "content_filtered" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// The error an exception message stands for. Throttling, overload and server errors keep the
/// HTTP status the API gives them elsewhere, so the engine retries them before the first token;
/// the rest (validation, access, a broken model stream) are final and say what they are.
pub fn exception_error(kind: &str, message: &str) -> ModelError {
    let message = truncate(message.trim(), MAX_ERROR_MESSAGE_CHARS);
    let described = if message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {message}")
    };
    let status = match kind {
        "throttlingException" | "ThrottlingException" => Some(429),
        "serviceUnavailableException" | "ServiceUnavailableException" => Some(503),
        "internalServerException" | "InternalServerException" => Some(500),
        "modelTimeoutException" | "ModelTimeoutException" => Some(408),
        _ => None,
    };
    match status {
        Some(status) => ModelError::Provider {
            status,
            message: described,
            retry_after: None,
        },
        None => ModelError::Stream(described),
    }
}

impl ConverseDecoder {
    /// A decoder at the start of a response.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Finish` has been emitted: the reply is complete, the rest of the stream does not matter.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// One event-stream message.
    pub fn push(&mut self, message: &Message) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match ConverseEvent::from_message(message)? {
            ConverseEvent::ContentBlockStart(start) => self.block_started(start, &mut out),
            ConverseEvent::ContentBlockDelta(delta) => self.block_delta(delta, &mut out)?,
            ConverseEvent::ContentBlockStop(stop) => self.block_stopped(stop, &mut out),
            ConverseEvent::MessageStop(stop) => self.message_stopped(stop, &mut out),
            ConverseEvent::Metadata(metadata) => self.metadata(metadata, &mut out),
            ConverseEvent::Other => {}
        }
        Ok(out)
    }

    fn block_started(&mut self, start: ContentBlockStart, out: &mut Vec<ModelEvent>) {
        if let Some(tool_use) = start.start.tool_use {
            let call = StreamedToolCall::start(tool_use.tool_use_id, tool_use.name, out);
            self.tool_uses.insert(start.content_block_index, call);
        }
    }

    fn block_delta(
        &mut self,
        delta: ContentBlockDelta,
        out: &mut Vec<ModelEvent>,
    ) -> Result<(), ModelError> {
        let index = delta.content_block_index;
        let delta = delta.delta;
        if let Some(text) = delta.text {
            if !text.is_empty() {
                out.push(ModelEvent::TextDelta(text));
            }
        } else if let Some(tool_use) = delta.tool_use {
            let call = self
                .tool_uses
                .get_mut(&index)
                .ok_or_else(|| protocol("toolUse input for a block never started"))?;
            call.push_arguments(tool_use.input.as_deref().unwrap_or_default(), out);
        } else if let Some(reasoning) = delta.reasoning_content {
            let block = self.reasoning.entry(index).or_default();
            block.signature += reasoning.signature.as_deref().unwrap_or_default();
            block.redacted_content += reasoning.redacted_content.as_deref().unwrap_or_default();
            if let Some(text) = reasoning.text.filter(|text| !text.is_empty()) {
                out.push(ModelEvent::ReasoningDelta(text));
            }
        }
        Ok(())
    }

    /// A finished reasoning block is one reasoning part, which keeps its `signature` (or its
    /// `redactedContent`) in its metadata for the next call to send back.
    fn block_stopped(&mut self, stop: ContentBlockStop, out: &mut Vec<ModelEvent>) {
        if let Some(call) = self.tool_uses.remove(&stop.content_block_index) {
            out.push(call.finish());
        }
        if let Some(block) = self.reasoning.remove(&stop.content_block_index) {
            let mut kept = serde_json::Map::new();
            if !block.signature.is_empty() {
                kept.insert("signature".into(), block.signature.into());
            }
            if !block.redacted_content.is_empty() {
                kept.insert("redactedContent".into(), block.redacted_content.into());
            }
            out.push(ModelEvent::ReasoningEnd {
                provider_metadata: (!kept.is_empty())
                    .then(|| serde_json::json!({ PROVIDER_KEY: kept })),
            });
        }
    }

    fn message_stopped(&mut self, stop: MessageStop, out: &mut Vec<ModelEvent>) {
        let reason = stop.stop_reason.as_deref().unwrap_or("end_turn");
        self.stop_reason = Some(stop_reason(reason));
        out.extend(self.finish_if_complete());
    }

    /// `inputTokens` leaves out the cached part: the whole input is the sum, as the Anthropic
    /// provider counts it.
    fn metadata(&mut self, metadata: Metadata, out: &mut Vec<ModelEvent>) {
        let usage = metadata.usage.unwrap_or_default();
        let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
        let cache_write = usage.cache_write_input_tokens.unwrap_or(0);
        self.usage = Usage {
            input_tokens: usage.input_tokens.unwrap_or(0) + cache_read + cache_write,
            output_tokens: usage.output_tokens.unwrap_or(0),
            reasoning_tokens: 0,
            cached_input_tokens: cache_read,
            cache_write_input_tokens: cache_write,
        };
        self.saw_metadata = true;
        out.extend(self.finish_if_complete());
    }

    fn finish_if_complete(&mut self) -> Option<ModelEvent> {
        let reason = self.stop_reason?;
        if !self.saw_metadata {
            return None;
        }
        self.finished = true;
        Some(ModelEvent::Finish {
            reason,
            usage: self.usage,
        })
    }

    /// The byte stream ended.
    pub fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished {
            return Ok(Vec::new());
        }
        match self.stop_reason {
            // `metadata` never came: the reply is whole, only its usage is unknown.
            Some(reason) => {
                self.finished = true;
                Ok(vec![ModelEvent::Finish {
                    reason,
                    usage: self.usage,
                }])
            }
            None => Err(ModelError::Transport(
                "the stream ended before `messageStop`".into(),
            )),
        }
    }
}

/// The whole response body: event-stream framing, then ConverseStream events.
#[derive(Default)]
pub struct ConverseStreamDecoder {
    frames: FrameDecoder,
    converse: ConverseDecoder,
    messages: Vec<Message>,
    /// The model to name with the first event, until then.
    model: Option<String>,
}

impl ConverseStreamDecoder {
    /// A decoder at the start of a response body.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder of the reply of `model`, the id the request was sent to: ConverseStream does
    /// not say which model answered, so the decoder names this one before the first event it
    /// decodes (an exception comes alone).
    pub fn answering(model: impl Into<String>) -> Self {
        ConverseStreamDecoder {
            model: Some(model.into()),
            ..Self::default()
        }
    }
}

impl ByteStreamDecoder for ConverseStreamDecoder {
    fn push(&mut self, bytes: &[u8], out: &mut Vec<ModelEvent>) -> Result<(), ModelError> {
        let framed = self.frames.push(bytes, &mut self.messages);
        // The messages completed before a framing error still count.
        for message in std::mem::take(&mut self.messages) {
            let events = self.converse.push(&message)?;
            if !events.is_empty()
                && let Some(model) = self.model.take()
            {
                out.push(ModelEvent::ResponseModel(model));
            }
            out.extend(events);
            if self.converse.is_finished() {
                return Ok(());
            }
        }
        framed
            .map_err(|error| ModelError::Protocol(format!("a corrupt event-stream frame: {error}")))
    }

    fn end(&mut self) -> Result<Vec<ModelEvent>, ModelError> {
        if !self.converse.is_finished() {
            self.frames.finish().map_err(|error| {
                ModelError::Transport(format!("the event stream broke off: {error}"))
            })?;
        }
        self.converse.end()
    }

    fn is_finished(&self) -> bool {
        self.converse.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bedrock::event_stream::{Header, encode_message};
    use serde_json::{Value, json};

    fn event(kind: &str, payload: Value) -> Vec<u8> {
        encode_message(
            &[
                Header::string(":event-type", kind),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    }

    fn exception(kind: &str, message: &str) -> Vec<u8> {
        encode_message(
            &[
                Header::string(":exception-type", kind),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "exception"),
            ],
            json!({ "message": message }).to_string().as_bytes(),
        )
    }

    /// Decodes `bytes` fed in chunks of `chunk` bytes; the events up to the first error.
    fn decode(bytes: &[u8], chunk: usize) -> (Vec<ModelEvent>, Result<(), ModelError>) {
        let mut decoder = ConverseStreamDecoder::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            if let Err(error) = decoder.push(piece, &mut out) {
                return (out, Err(error));
            }
            if decoder.is_finished() {
                return (out, Ok(()));
            }
        }
        match decoder.end() {
            Ok(events) => {
                out.extend(events);
                (out, Ok(()))
            }
            Err(error) => (out, Err(error)),
        }
    }

    fn tool_turn() -> Vec<u8> {
        [
            event("messageStart", json!({"role": "assistant", "p": "abc"})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Dice."}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"text": "Rolling."}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 1})),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "roll_dice"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"sides\": "}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "20}"}}}),
            ),
            event("contentBlockStop", json!({"contentBlockIndex": 2})),
            event("messageStop", json!({"stopReason": "tool_use"})),
            event(
                "metadata",
                json!({"usage": {"inputTokens": 12, "outputTokens": 40, "totalTokens": 52, "cacheReadInputTokens": 3}, "metrics": {"latencyMs": 80}}),
            ),
        ]
        .concat()
    }

    #[test]
    fn text_reasoning_and_tool_use_become_model_events_in_any_chunking() {
        let expected = vec![
            ModelEvent::ReasoningDelta("Dice.".into()),
            ModelEvent::ReasoningEnd {
                provider_metadata: Some(json!({"amazonBedrock": {"signature": "sig"}})),
            },
            ModelEvent::TextDelta("Rolling.".into()),
            ModelEvent::ToolCallStart {
                id: "tooluse_1".into(),
                name: "roll_dice".into(),
            },
            ModelEvent::ToolCallDelta {
                id: "tooluse_1".into(),
                arguments_delta: "{\"sides\": ".into(),
            },
            ModelEvent::ToolCallDelta {
                id: "tooluse_1".into(),
                arguments_delta: "20}".into(),
            },
            ModelEvent::ToolCall {
                id: "tooluse_1".into(),
                name: "roll_dice".into(),
                arguments: "{\"sides\": 20}".into(),
            },
            ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: Usage {
                    input_tokens: 15,
                    output_tokens: 40,
                    reasoning_tokens: 0,
                    cached_input_tokens: 3,
                    cache_write_input_tokens: 0,
                },
            },
        ];
        let stream = tool_turn();
        for chunk in [1, 5, 64, stream.len()] {
            let (events, result) = decode(&stream, chunk);
            assert_eq!(result, Ok(()), "chunks of {chunk}");
            assert_eq!(events, expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_decoder_for_a_model_names_it_once_with_the_first_event() {
        let mut decoder = ConverseStreamDecoder::answering("amazon.nova-lite-v1:0");
        let mut out = Vec::new();
        let bytes = tool_turn();
        decoder
            .push(&bytes[..3], &mut out)
            .expect("a partial frame");
        assert!(out.is_empty(), "nothing before a whole message: {out:?}");
        decoder.push(&bytes[3..], &mut out).expect("decodes");
        let mut failing = ConverseStreamDecoder::answering("amazon.nova-lite-v1:0");
        let mut none = Vec::new();
        let throttled = exception("throttlingException", "Too many tokens.");
        assert!(failing.push(&throttled, &mut none).is_err());
        assert!(none.is_empty(), "an exception comes alone: {none:?}");
        assert_eq!(
            out[0],
            ModelEvent::ResponseModel("amazon.nova-lite-v1:0".into())
        );
        let named = out
            .iter()
            .filter(|event| matches!(event, ModelEvent::ResponseModel(_)))
            .count();
        assert_eq!(named, 1);
    }

    #[test]
    fn a_missing_metadata_event_still_finishes_and_an_early_end_is_an_error() {
        let stream = [
            event("contentBlockDelta", json!({"delta": {"text": "Hi"}})),
            event("messageStop", json!({"stopReason": "max_tokens"})),
        ]
        .concat();
        let (events, result) = decode(&stream, 7);
        assert_eq!(result, Ok(()));
        assert_eq!(
            events.last(),
            Some(&ModelEvent::Finish {
                reason: FinishReason::Length,
                usage: Usage::default()
            })
        );
        let early = event("contentBlockDelta", json!({"delta": {"text": "Hi"}}));
        let (events, result) = decode(&early, 100);
        assert_eq!(events, vec![ModelEvent::TextDelta("Hi".into())]);
        assert!(matches!(result, Err(ModelError::Transport(_))));
        // Cut inside a frame: the framing says so.
        let (_, result) = decode(&early[..early.len() - 3], 100);
        assert!(
            matches!(&result, Err(ModelError::Transport(m)) if m.contains("inside a message")),
            "{result:?}"
        );
    }

    #[test]
    fn exceptions_map_to_transient_or_final_errors() {
        let (_, throttled) = decode(&exception("throttlingException", "Too many tokens"), 9);
        let throttled = throttled.expect_err("an error");
        assert!(throttled.is_transient());
        assert_eq!(
            throttled,
            ModelError::Provider {
                status: 429,
                message: "throttlingException: Too many tokens".into(),
                retry_after: None,
            }
        );
        let (_, unavailable) = decode(&exception("serviceUnavailableException", "busy"), 9);
        assert!(unavailable.expect_err("an error").is_transient());
        let stream = [
            event("contentBlockDelta", json!({"delta": {"text": "Half"}})),
            exception("validationException", "Input is too long"),
        ]
        .concat();
        let (events, result) = decode(&stream, stream.len());
        assert_eq!(events, vec![ModelEvent::TextDelta("Half".into())]);
        let error = result.expect_err("an error");
        assert!(!error.is_transient());
        assert_eq!(
            error.to_string(),
            "the model failed: validationException: Input is too long"
        );
        let error_frame = encode_message(
            &[
                Header::string(":message-type", "error"),
                Header::string(":error-code", "InternalFailure"),
                Header::string(":error-message", "boom"),
            ],
            b"",
        );
        let (_, result) = decode(&error_frame, 3);
        assert_eq!(
            result,
            Err(ModelError::Stream("InternalFailure: boom".into()))
        );
    }

    #[test]
    fn corrupt_frames_and_bad_events_are_protocol_errors_after_the_good_ones() {
        let good = event("contentBlockDelta", json!({"delta": {"text": "ok"}}));
        let mut corrupt = event("contentBlockDelta", json!({"delta": {"text": "no"}}));
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0x55;
        let stream = [good.clone(), corrupt].concat();
        let (events, result) = decode(&stream, stream.len());
        assert_eq!(events, vec![ModelEvent::TextDelta("ok".into())]);
        assert!(
            matches!(&result, Err(ModelError::Protocol(m)) if m.contains("checksum")),
            "{result:?}"
        );
        let not_json = encode_message(
            &[
                Header::string(":message-type", "event"),
                Header::string(":event-type", "contentBlockDelta"),
            ],
            b"{nope",
        );
        assert!(matches!(
            decode(&not_json, 4).1,
            Err(ModelError::Protocol(_))
        ));
        let stray = event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 4, "delta": {"toolUse": {"input": "{}"}}}),
        );
        assert!(matches!(decode(&stray, 4).1, Err(ModelError::Protocol(_))));
    }

    #[test]
    fn unknown_events_and_deltas_are_ignored_and_known_ones_of_the_wrong_shape_refused() {
        let stream = [
            event("messageStart", json!({"role": "assistant"})),
            event("somethingNew", json!([1, 2])),
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"image": {}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"citation": {"title": "t"}}}),
            ),
            event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "eA=="}}}),
            ),
            event("contentBlockDelta", json!({"delta": {"text": "Hi"}})),
            event("messageStop", json!({})),
            event("metadata", json!({"usage": {"inputTokens": 2}})),
        ]
        .concat();
        let (events, result) = decode(&stream, 11);
        assert_eq!(result, Ok(()));
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("Hi".into()),
                ModelEvent::Finish {
                    reason: FinishReason::Stop,
                    usage: Usage {
                        input_tokens: 2,
                        ..Usage::default()
                    },
                },
            ]
        );

        for (kind, payload) in [
            (
                "contentBlockStart",
                json!({"start": {"toolUse": {"name": "f"}}}),
            ),
            ("contentBlockDelta", json!({"contentBlockIndex": "one"})),
            ("metadata", json!({"usage": {"inputTokens": -1}})),
            ("messageStop", json!("end_turn")),
        ] {
            let (_, result) = decode(&event(kind, payload.clone()), 64);
            assert!(
                matches!(&result, Err(ModelError::Protocol(m)) if m.contains("is malformed")),
                "{kind} {payload}: {result:?}"
            );
        }
        let not_json = encode_message(
            &[
                Header::string(":message-type", "event"),
                Header::string(":event-type", "somethingNew"),
            ],
            b"{nope",
        );
        assert!(matches!(
            decode(&not_json, 64).1,
            Err(ModelError::Protocol(m)) if m.contains("is not JSON")
        ));
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        for (reason, expected) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("guardrail_intervened", FinishReason::ContentFilter),
            ("content_filtered", FinishReason::ContentFilter),
            ("something_new", FinishReason::Other),
        ] {
            assert_eq!(stop_reason(reason), expected);
        }
    }
}
