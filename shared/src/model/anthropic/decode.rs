//! The Messages stream, event by event, as [`ModelEvent`]s.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::model::sse::SseEvent;
use crate::model::tool_call::StreamedToolCall;
use crate::model::transport::{EventDecoder, error_message};
use crate::model::{FinishReason, ModelError, ModelEvent, Usage};

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
}
