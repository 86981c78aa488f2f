//! Bedrock's event stream: frames decode the same however the bytes are split, an encoded message
//! decodes back to itself, and the ConverseStream decoder takes any bytes.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use chatfn::model::bedrock::converse::ConverseStreamDecoder;
use chatfn::model::bedrock::event_stream::{
    FrameDecoder, FrameError, Header, HeaderValue, Message, encode_message,
};
use chatfn::model::transport::ByteStreamDecoder;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Value {
    Bool(bool),
    Byte(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    ByteArray(Vec<u8>),
    String(String),
    Timestamp(i64),
    Uuid([u8; 16]),
}

/// A message to encode: its headers and payload.
type Encoded = (Vec<(String, Value)>, Vec<u8>);

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    sizes: Vec<u8>,
    /// Well-formed messages put before the raw bytes, so the decoder gets past the prelude.
    messages: Vec<Encoded>,
    raw: &'a [u8],
}

fn decode(pieces: &[&[u8]]) -> (Vec<Message>, Result<(), FrameError>) {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    for piece in pieces {
        if let Err(error) = decoder.push(piece, &mut messages) {
            return (messages, Err(error));
        }
    }
    let end = decoder.finish();
    (messages, end)
}

fn header(name: String, value: Value) -> Header {
    let value = match value {
        Value::Bool(v) => HeaderValue::Bool(v),
        Value::Byte(v) => HeaderValue::Byte(v),
        Value::Int16(v) => HeaderValue::Int16(v),
        Value::Int32(v) => HeaderValue::Int32(v),
        Value::Int64(v) => HeaderValue::Int64(v),
        Value::ByteArray(v) => HeaderValue::ByteArray(v.into()),
        Value::String(v) => HeaderValue::String(v),
        Value::Timestamp(v) => HeaderValue::Timestamp(v),
        Value::Uuid(v) => HeaderValue::Uuid(v),
    };
    Header { name, value }
}

fn run(input: Input<'_>) {
    let mut expected = Vec::new();
    let mut stream = Vec::new();
    for (headers, payload) in input.messages {
        let headers: Vec<Header> = headers
            .into_iter()
            // The wire has no empty names, and longer ones (or values) are cut by the encoder:
            // neither would come back the same.
            .filter(|(name, value)| {
                (1..=255).contains(&name.len())
                    && match value {
                        Value::ByteArray(bytes) => bytes.len() <= usize::from(u16::MAX),
                        Value::String(text) => text.len() <= usize::from(u16::MAX),
                        _ => true,
                    }
            })
            .map(|(name, value)| header(name, value))
            .collect();
        stream.extend(encode_message(&headers, &payload));
        expected.push(Message {
            headers,
            payload: payload.into(),
        });
    }
    let encoded_len = stream.len();
    stream.extend_from_slice(input.raw);

    let whole = decode(&[&stream]);
    let pieces = chatfn_fuzz::split(&stream, &input.sizes);
    let split = decode(&pieces);
    assert_eq!(
        whole, split,
        "the frames depend on how the bytes were split"
    );
    assert!(
        whole.0.len() >= expected.len(),
        "well-formed messages were lost: {:?}",
        whole.1
    );
    assert_eq!(
        whole.0[..expected.len()],
        expected[..],
        "a message did not round-trip"
    );
    if input.raw.is_empty() {
        assert_eq!(whole.1, Ok(()));
    }
    assert!(encoded_len <= stream.len());

    let mut converse = ConverseStreamDecoder::new();
    let mut events = Vec::new();
    for piece in pieces {
        if converse.is_finished() || converse.push(piece, &mut events).is_err() {
            return;
        }
    }
    let _ = converse.end();
}

// An even first byte: the next two are read sizes and the rest is the raw stream (the seeds are
// real frames). Odd: the fuzzer's bytes describe messages to encode, then raw bytes.
fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => {
            let (sizes, raw) = rest.split_at(rest.len().min(2));
            run(Input {
                sizes: sizes.to_vec(),
                messages: Vec::new(),
                raw,
            });
        }
        Some((_, rest)) => {
            if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
                run(input);
            }
        }
        None => {}
    }
});
