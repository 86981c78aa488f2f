//! The Messages stream, event by event, as [`ModelEvent`]s. Each event is read into
//! [`MessagesEvent`] by its `type`, and each kind has its own step of the decoder.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::sse::SseEvent;
use crate::model::tool_call::StreamedToolCall;
use crate::model::transport::{EventDecoder, error_message};
use crate::model::{FinishReason, ModelError, ModelEvent, Usage};

/// One event of the Messages stream. Fields the API may leave out or send as `null` are
/// optional; a known event of another shape is a protocol error.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MessagesEvent {
    MessageStart {
        #[serde(default)]
        message: StartedMessage,
    },
    ContentBlockStart {
        #[serde(default)]
        index: u64,
        #[serde(default)]
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        #[serde(default)]
        index: u64,
        #[serde(default)]
        delta: BlockDelta,
    },
    ContentBlockStop {
        #[serde(default)]
        index: u64,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDelta,
        usage: Option<TokenCounts>,
    },
    MessageStop {},
    Error {
        #[serde(default)]
        error: Value,
    },
    /// `ping`, and event types added after this was written.
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct StartedMessage {
    /// The message's id: a stream carries one message.
    id: Option<String>,
    /// The model that answers.
    model: Option<String>,
    usage: Option<TokenCounts>,
}

#[derive(Debug, Default, Deserialize)]
struct TokenCounts {
    input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: Option<String>,
    },
    Thinking {
        /// Empty at the start when the signature follows in a `signature_delta`.
        signature: Option<String>,
    },
    /// Thinking the provider encrypted: shown to nobody, sent back as it came.
    RedactedThinking {
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        /// The whole input, when the API sends it here rather than in deltas (`{}` otherwise).
        input: Option<Value>,
    },
    /// Server tools' blocks, and block types added after this was written.
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: Option<String>,
    },
    ThinkingDelta {
        thinking: Option<String>,
    },
    InputJsonDelta {
        partial_json: Option<String>,
    },
    SignatureDelta {
        signature: Option<String>,
    },
    /// Citations, and delta types added after this was written.
    #[default]
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDelta {
    stop_reason: Option<String>,
}

impl MessagesEvent {
    /// The event an SSE event carries. One whose data has no `type` goes by the SSE event name,
    /// and one with neither says nothing this decoder knows.
    fn parse(event: &SseEvent) -> Result<MessagesEvent, ModelError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|e| ModelError::Protocol(format!("an event is not JSON: {e}")))?;
        let Value::Object(mut fields) = data else {
            return Err(protocol("its data is not a JSON object"));
        };
        if !fields.get("type").is_some_and(Value::is_string) {
            let Some(name) = event.event.as_deref() else {
                return Ok(MessagesEvent::Other);
            };
            fields.insert("type".into(), name.into());
        }
        MessagesEvent::deserialize(Value::Object(fields)).map_err(|e| protocol(&e.to_string()))
    }
}

/// A content block being streamed.
enum Block {
    Text,
    /// Thinking, and the signature that lets it be sent back.
    Thinking {
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    /// A tool call, and the input its start carried, which counts when no delta follows.
    ToolUse {
        call: StreamedToolCall,
        input_at_start: Option<String>,
    },
    Other,
}

/// The Messages stream, event by event.
#[derive(Default)]
pub struct MessagesDecoder {
    /// The id of the message being streamed, once `message_start` named it.
    message_id: Option<String>,
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<FinishReason>,
    finished: bool,
}

/// The key of this provider's entries in `providerMetadata`, as the AI SDK names it.
pub(crate) const PROVIDER_KEY: &str = "anthropic";

fn protocol(what: &str) -> ModelError {
    ModelError::Protocol(format!("unexpected Messages event: {what}"))
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

impl MessagesDecoder {
    /// A decoder at the start of a response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The model that answers, and the prompt's usage; the cache's reads and writes are part of
    /// the input. The same `message_start` again changes nothing; another message's, before this
    /// one stopped, means two responses spliced into one stream, which cannot be merged.
    fn message_started(
        &mut self,
        message: StartedMessage,
        out: &mut Vec<ModelEvent>,
    ) -> Result<(), ModelError> {
        if let Some(open) = &self.message_id {
            if message.id.as_ref() == Some(open) {
                return Ok(());
            }
            return Err(protocol(&format!(
                "`message_start` of {} while {open} was still streaming",
                message.id.as_deref().unwrap_or("a message without an id")
            )));
        }
        self.message_id = Some(message.id.unwrap_or_default());
        if let Some(model) = message.model.filter(|model| !model.is_empty()) {
            out.push(ModelEvent::ResponseModel(model));
        }
        let usage = message.usage.unwrap_or_default();
        let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
        self.usage.cache_write_input_tokens = usage.cache_creation_input_tokens.unwrap_or(0);
        self.usage.input_tokens =
            usage.input_tokens.unwrap_or(0) + cache_read + self.usage.cache_write_input_tokens;
        self.usage.cached_input_tokens = cache_read;
        self.usage.output_tokens = usage.output_tokens.unwrap_or(0);
        Ok(())
    }

    fn block_started(&mut self, index: u64, block: ContentBlock, out: &mut Vec<ModelEvent>) {
        let started = match block {
            ContentBlock::Text { text } => {
                if let Some(text) = text.filter(|text| !text.is_empty()) {
                    out.push(ModelEvent::TextDelta(text));
                }
                Block::Text
            }
            ContentBlock::Thinking { signature } => Block::Thinking {
                signature: signature.unwrap_or_default(),
            },
            ContentBlock::RedactedThinking { data } => Block::RedactedThinking { data },
            ContentBlock::ToolUse { id, name, input } => Block::ToolUse {
                call: StreamedToolCall::start(id, name, out),
                input_at_start: input
                    .filter(|input| input.as_object().is_some_and(|fields| !fields.is_empty()))
                    .map(|input| input.to_string()),
            },
            ContentBlock::Other => Block::Other,
        };
        self.blocks.insert(index, started);
    }

    fn block_delta(
        &mut self,
        index: u64,
        delta: BlockDelta,
        out: &mut Vec<ModelEvent>,
    ) -> Result<(), ModelError> {
        let block = self
            .blocks
            .get_mut(&index)
            .ok_or_else(|| protocol("a delta for a block never started"))?;
        match (delta, block) {
            (BlockDelta::TextDelta { text }, Block::Text) => {
                out.push(ModelEvent::TextDelta(text.unwrap_or_default()))
            }
            (BlockDelta::ThinkingDelta { thinking }, Block::Thinking { .. }) => {
                out.push(ModelEvent::ReasoningDelta(thinking.unwrap_or_default()))
            }
            (
                BlockDelta::SignatureDelta {
                    signature: Some(more),
                },
                Block::Thinking { signature },
            ) => signature.push_str(&more),
            (BlockDelta::InputJsonDelta { partial_json }, Block::ToolUse { call, .. }) => {
                call.push_arguments(partial_json.as_deref().unwrap_or_default(), out)
            }
            // Deltas of blocks we do not surface.
            _ => {}
        }
        Ok(())
    }

    /// A finished thinking block is one reasoning part, which keeps what sending it back needs
    /// in its metadata (`signature`, or `redactedData`), as the AI SDK's Anthropic provider does.
    fn block_stopped(&mut self, index: u64, out: &mut Vec<ModelEvent>) {
        match self.blocks.remove(&index) {
            Some(Block::ToolUse {
                mut call,
                input_at_start,
            }) => {
                if call.arguments().is_empty()
                    && let Some(input) = input_at_start
                {
                    call.push_arguments(&input, out);
                }
                out.push(call.finish());
            }
            Some(Block::Thinking { signature }) => {
                let metadata = (!signature.is_empty())
                    .then(|| json!({ PROVIDER_KEY: { "signature": signature } }));
                out.push(ModelEvent::ReasoningEnd {
                    provider_metadata: metadata,
                });
            }
            Some(Block::RedactedThinking { data }) => out.push(ModelEvent::ReasoningEnd {
                provider_metadata: Some(json!({ PROVIDER_KEY: { "redactedData": data } })),
            }),
            _ => {}
        }
    }

    /// The final counts: output always, and the input too where the API sends it again (some
    /// servers count it only here).
    fn message_delta(&mut self, delta: MessageDelta, usage: Option<TokenCounts>) {
        if let Some(reason) = delta.stop_reason {
            self.stop_reason = Some(stop_reason(&reason));
        }
        let Some(usage) = usage else {
            return;
        };
        if let Some(output) = usage.output_tokens {
            self.usage.output_tokens = output;
        }
        if let Some(input) = usage.input_tokens {
            let cache_read = usage
                .cache_read_input_tokens
                .unwrap_or(self.usage.cached_input_tokens);
            self.usage.cache_write_input_tokens = usage
                .cache_creation_input_tokens
                .unwrap_or(self.usage.cache_write_input_tokens);
            self.usage.input_tokens = input + cache_read + self.usage.cache_write_input_tokens;
            self.usage.cached_input_tokens = cache_read;
        }
    }

    fn message_stopped(&mut self) -> ModelEvent {
        self.finished = true;
        ModelEvent::Finish {
            reason: self.stop_reason.unwrap_or(FinishReason::Stop),
            usage: self.usage,
        }
    }
}

impl EventDecoder for MessagesDecoder {
    fn push(&mut self, event: &SseEvent) -> Result<Vec<ModelEvent>, ModelError> {
        if self.finished || event.data.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        match MessagesEvent::parse(event)? {
            MessagesEvent::MessageStart { message } => self.message_started(message, &mut out)?,
            MessagesEvent::ContentBlockStart {
                index,
                content_block,
            } => self.block_started(index, content_block, &mut out),
            MessagesEvent::ContentBlockDelta { index, delta } => {
                self.block_delta(index, delta, &mut out)?
            }
            MessagesEvent::ContentBlockStop { index } => self.block_stopped(index, &mut out),
            MessagesEvent::MessageDelta { delta, usage } => self.message_delta(delta, usage),
            MessagesEvent::MessageStop {} => out.push(self.message_stopped()),
            MessagesEvent::Error { error } => {
                return Err(ModelError::Stream(error_message(&error)));
            }
            MessagesEvent::Other => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            json!({"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":1}}}),
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
                ModelEvent::ResponseModel("claude-sonnet-4-5-20250929".into()),
                ModelEvent::ReasoningDelta("Hmm.".into()),
                ModelEvent::ReasoningEnd {
                    provider_metadata: Some(json!({"anthropic": {"signature": "sig"}}))
                },
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
                        cached_input_tokens: 3,
                        cache_write_input_tokens: 0,
                    },
                },
            ]
        );
    }

    #[test]
    fn redacted_thinking_and_tool_input_whole_at_the_start_are_kept() {
        let events = decode(&[
            json!({"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":4,"cache_creation_input_tokens":6}}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"redacted_thinking","data":"ENC"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t1","name":"roll","input":{"sides":6}}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"input_tokens":5,"output_tokens":9}}),
            json!({"type":"message_stop"}),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                ModelEvent::ReasoningEnd {
                    provider_metadata: Some(json!({"anthropic": {"redactedData": "ENC"}}))
                },
                ModelEvent::ToolCallStart {
                    id: "t1".into(),
                    name: "roll".into()
                },
                ModelEvent::ToolCallDelta {
                    id: "t1".into(),
                    arguments_delta: "{\"sides\":6}".into()
                },
                ModelEvent::ToolCall {
                    id: "t1".into(),
                    name: "roll".into(),
                    arguments: "{\"sides\":6}".into()
                },
                ModelEvent::Finish {
                    reason: FinishReason::ToolCalls,
                    usage: Usage {
                        input_tokens: 11,
                        output_tokens: 9,
                        cache_write_input_tokens: 6,
                        ..Usage::default()
                    },
                },
            ]
        );
    }

    #[test]
    fn a_message_start_repeated_is_ignored_and_another_message_is_an_error() {
        let start = |id: &str| json!({"type":"message_start","message":{"id":id,"usage":{"input_tokens":1}}});
        let repeated = decode(&[
            start("msg_1"),
            start("msg_1"),
            json!({"type":"message_stop"}),
        ]);
        assert!(matches!(
            repeated.as_deref(),
            Ok([ModelEvent::Finish { .. }])
        ));
        let spliced = decode(&[start("msg_1"), start("msg_2")]);
        assert!(
            matches!(&spliced, Err(ModelError::Protocol(m)) if m.contains("msg_2") && m.contains("msg_1")),
            "{spliced:?}"
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
    fn unknown_events_blocks_and_deltas_are_ignored() {
        let events = decode(&[
            json!({"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":null}}}),
            json!({"type":"ping"}),
            json!({"type":"something_new","index":"x","payload":[1,2]}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"s1","name":"web_search","input":{}}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}),
            json!({"type":"content_block_stop","index":0}),
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":"Hi"}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"message_delta","delta":{"stop_reason":null},"usage":null}),
            json!({"type":"message_stop"}),
        ])
        .expect("decodes");
        assert_eq!(
            events,
            vec![
                ModelEvent::TextDelta("Hi".into()),
                ModelEvent::Finish {
                    reason: FinishReason::Stop,
                    usage: Usage {
                        input_tokens: 5,
                        ..Usage::default()
                    },
                },
            ]
        );
    }

    #[test]
    fn an_event_without_a_type_goes_by_its_sse_name() {
        let mut decoder = MessagesDecoder::new();
        let stop = SseEvent {
            event: Some("message_stop".into()),
            data: "{}".into(),
            id: None,
        };
        assert!(matches!(
            decoder.push(&stop).as_deref(),
            Ok([ModelEvent::Finish { .. }])
        ));
        let mut decoder = MessagesDecoder::new();
        let nameless = SseEvent {
            event: None,
            data: r#"{"index":0}"#.into(),
            id: None,
        };
        assert_eq!(decoder.push(&nameless), Ok(Vec::new()));
    }

    #[test]
    fn known_events_of_the_wrong_shape_are_protocol_errors() {
        for malformed in [
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","name":"f"}}),
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t"}}),
            json!({"type":"content_block_start","index":-1,"content_block":{"type":"text"}}),
            json!({"type":"message_start","message":{"usage":{"input_tokens":"many"}}}),
            json!(["message_stop"]),
        ] {
            let result = decode(std::slice::from_ref(&malformed));
            assert!(
                matches!(&result, Err(ModelError::Protocol(m)) if m.starts_with("unexpected Messages event")),
                "{malformed}: {result:?}"
            );
        }
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
}
