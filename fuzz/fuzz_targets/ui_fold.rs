//! The UI message stream fold: any sequence of chunks, in any order, folds without a panic into
//! a message that survives the store's JSON round trip and converts for a model.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use chatfn::ui::{ConvertOptions, MessageFold, UIMessage, UIMessageChunk, to_model_messages};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const TYPES: &[&str] = &[
    "start",
    "start-step",
    "finish-step",
    "reset-step",
    "text-start",
    "text-delta",
    "text-end",
    "reasoning-start",
    "reasoning-delta",
    "reasoning-end",
    "reasoning-file",
    "custom",
    "tool-input-start",
    "tool-input-delta",
    "tool-input-available",
    "tool-input-error",
    "tool-approval-request",
    "tool-approval-response",
    "tool-output-available",
    "tool-output-error",
    "tool-output-denied",
    "source-url",
    "source-document",
    "file",
    "message-metadata",
    "finish",
    "abort",
    "error",
    "data-weather",
    "data-",
];

const FINISH: &[&str] = &[
    "stop",
    "length",
    "content-filter",
    "tool-calls",
    "error",
    "other",
];

/// One chunk as JSON: every field any chunk type has, filled from a few small alphabets so ids
/// and tool calls line up across chunks, with some left out.
#[derive(Debug)]
struct Chunk(Value);

impl<'a> Arbitrary<'a> for Chunk {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let kind = *u.choose(TYPES)?;
        let id = u.int_in_range(0..=3u8)?;
        let call = u.int_in_range(0..=3u8)?;
        let text: String = u.arbitrary()?;
        let flag: bool = u.arbitrary()?;
        let value = chatfn_fuzz::json_value(u, 2)?;
        let omit: u32 = u.arbitrary()?;
        let tool_name = if u.arbitrary()? {
            "weather".to_owned()
        } else {
            text.clone()
        };
        let finish = if u.arbitrary()? {
            json!(*u.choose(FINISH)?)
        } else {
            json!(text)
        };
        let fields = [
            ("messageId", json!(format!("m{id}"))),
            ("id", json!(format!("p{id}"))),
            ("delta", json!(text)),
            ("toolCallId", json!(format!("call-{call}"))),
            ("toolName", json!(tool_name)),
            ("input", value.clone()),
            ("output", value.clone()),
            ("errorText", json!(text)),
            ("inputTextDelta", json!(text)),
            ("approvalId", json!(format!("approval-{call}"))),
            ("approved", json!(flag)),
            ("reason", json!(text)),
            ("url", json!(text)),
            ("mediaType", json!("text/plain")),
            ("sourceId", json!(format!("s{id}"))),
            ("title", json!(text)),
            ("filename", json!(text)),
            ("kind", json!(text)),
            ("messageMetadata", value.clone()),
            ("finishReason", finish),
            ("data", value.clone()),
            ("transient", json!(flag)),
            ("dynamic", json!(flag)),
            ("preliminary", json!(flag)),
            ("providerExecuted", json!(flag)),
            ("providerMetadata", value),
            ("isAutomatic", json!(flag)),
        ];
        let mut object = Map::new();
        object.insert("type".into(), json!(kind));
        for (bit, (name, value)) in fields.into_iter().enumerate() {
            if omit & (1 << bit) == 0 {
                object.insert(name.into(), value);
            }
        }
        Ok(Chunk(Value::Object(object)))
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    continuing: bool,
    chunks: Vec<Chunk>,
}

fn run(continuing: bool, chunks: &[UIMessageChunk]) {
    let mut fold = MessageFold::new("reply");
    for chunk in chunks {
        // A failed chunk is refused and the fold goes on, as a turn writer does.
        let _ = fold.apply(chunk);
    }
    chatfn_fuzz::assert_round_trips(fold.message());

    for chunk in fold.closing_chunks() {
        let _ = fold.apply(&chunk);
    }
    assert!(!fold.has_open_parts(), "closing chunks left parts open");
    chatfn_fuzz::assert_round_trips(fold.message());

    if continuing {
        let mut again = MessageFold::continuing(fold.message().clone());
        for chunk in chunks {
            let _ = again.apply(chunk);
        }
        chatfn_fuzz::assert_round_trips(again.message());
    }
    let history = [UIMessage::user_text("u", "hi"), fold.into_message()];
    for ignore in [true, false] {
        let _ = to_model_messages(
            &history,
            ConvertOptions {
                ignore_incomplete_tool_calls: ignore,
            },
        );
    }
}

// An even first byte: the rest is a UI message stream, one JSON chunk a line (the seeds are real
// streams). Odd: the fuzzer's bytes pick chunk types and fields that line up with each other.
fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            let chunks: Vec<UIMessageChunk> = rest
                .split(|&b| b == b'\n')
                .filter_map(|line| serde_json::from_slice(line).ok())
                .collect();
            run(mode % 4 == 0, &chunks);
        }
        Some((_, rest)) => {
            if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
                let chunks: Vec<UIMessageChunk> = input
                    .chunks
                    .into_iter()
                    .filter_map(|Chunk(value)| serde_json::from_value(value).ok())
                    .collect();
                run(input.continuing, &chunks);
            }
        }
        None => {}
    }
});
