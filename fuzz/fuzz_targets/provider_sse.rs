//! Provider SSE: the byte-stream decoder must give the same events however the bytes are split,
//! and the OpenAI and Anthropic chunk decoders must take whatever events it yields.
#![no_main]

use chatfn::model::anthropic::MessagesDecoder;
use chatfn::model::openai::ChatCompletionsDecoder;
use chatfn::model::sse::{SseEvent, SseParser};
use chatfn::model::transport::EventDecoder;
use libfuzzer_sys::fuzz_target;

fn parse(pieces: &[&[u8]]) -> (Vec<SseEvent>, Option<u64>) {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        events.extend(parser.push(piece));
    }
    events.extend(parser.finish());
    (events, parser.retry())
}

fn drive(mut decoder: impl EventDecoder, events: &[SseEvent]) {
    for event in events {
        if decoder.is_finished() {
            return;
        }
        if decoder.push(event).is_err() {
            return;
        }
    }
    let _ = decoder.end();
}

// The first two bytes are the sizes of the reads the stream arrives in; the rest is the stream.
fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = data.split_at(data.len().min(2));
    let whole = parse(&[stream]);
    let pieces = chatfn_fuzz::split(stream, sizes);
    let split = parse(&pieces);
    assert_eq!(
        whole, split,
        "the events depend on how the bytes were split"
    );
    for event in &whole.0 {
        assert!(
            event
                .id
                .as_deref()
                .is_none_or(|id| !id.is_empty() && !id.contains('\0')),
            "an empty or NUL id was kept: {event:?}"
        );
    }
    drive(ChatCompletionsDecoder::new(), &whole.0);
    drive(MessagesDecoder::new(), &whole.0);
    let _ = ChatCompletionsDecoder::decode_completion(stream);
});
