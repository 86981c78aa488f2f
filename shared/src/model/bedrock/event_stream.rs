//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`), sans IO.
//!
//! A message is a 12-byte prelude (total length, headers length, both big-endian `u32`, and the
//! CRC32 of those 8 bytes), typed headers, a payload, and the CRC32 of everything before it.
//! [`FrameDecoder`] takes bytes as they arrive, in chunks cut anywhere, and yields whole
//! messages; any violation of the framing is an error after which the stream cannot be trusted
//! (lengths no longer say where a message starts), so the decoder stays failed. Lengths are
//! checked before anything is allocated for them. [`encode_message`] is the inverse, for stand-ins
//! and round-trip tests.

use bytes::{Buf, Bytes, BytesMut};
use crc32fast::hash as crc32;

const PRELUDE_LEN: usize = 12;
const MESSAGE_CRC_LEN: usize = 4;
/// Prelude (12 bytes) plus the message CRC (4 bytes): the smallest possible message.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + MESSAGE_CRC_LEN;
/// AWS caps a message at 16 MiB; anything larger is not this protocol, and refusing it bounds
/// what a hostile peer can make us buffer.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// AWS caps a message's headers at 128 KiB, for the same reason.
pub const MAX_HEADERS_LEN: usize = 128 * 1024;

/// A header value, with the wire's ten types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 and 1: `true` and `false`, with no value bytes.
    Bool(bool),
    /// Type 2: one signed byte.
    Byte(i8),
    /// Type 3: a big-endian `i16`.
    Int16(i16),
    /// Type 4: a big-endian `i32`.
    Int32(i32),
    /// Type 5: a big-endian `i64`.
    Int64(i64),
    /// Type 6: bytes, with a `u16` length before them.
    ByteArray(Bytes),
    /// Type 7: UTF-8 text, with a `u16` length before it.
    String(String),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9: a UUID's 16 bytes.
    Uuid([u8; 16]),
}

/// A message header: a name and a typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name (`:event-type`, `:content-type`, …).
    pub name: String,
    /// The header's value.
    pub value: HeaderValue,
}

impl Header {
    /// A header with a string value, the only kind Bedrock sends.
    pub fn string(name: &str, value: &str) -> Header {
        Header {
            name: name.to_owned(),
            value: HeaderValue::String(value.to_owned()),
        }
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The headers, in wire order.
    pub headers: Vec<Header>,
    /// The payload: for Bedrock, one JSON event.
    pub payload: Bytes,
}

impl Message {
    /// The value of a string header (`:event-type`, `:message-type`, …).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|header| match &header.value {
            HeaderValue::String(value) if header.name == name => Some(value.as_str()),
            _ => None,
        })
    }
}

/// A violation of the framing; the stream cannot be read past it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The prelude's CRC32 does not match its first 8 bytes.
    #[error("the prelude checksum does not match (expected {expected:#010x}, got {actual:#010x})")]
    PreludeChecksum {
        /// The CRC32 the prelude carries.
        expected: u32,
        /// The CRC32 of the bytes received.
        actual: u32,
    },
    /// The message's trailing CRC32 does not match the bytes before it.
    #[error("the message checksum does not match (expected {expected:#010x}, got {actual:#010x})")]
    MessageChecksum {
        /// The CRC32 the message carries.
        expected: u32,
        /// The CRC32 of the bytes received.
        actual: u32,
    },
    /// The total length is below the smallest message or above [`MAX_MESSAGE_LEN`].
    #[error("a message of {0} bytes is outside the allowed 16 bytes to 16 MiB")]
    MessageLength(usize),
    /// The headers' length does not fit the message or is above [`MAX_HEADERS_LEN`].
    #[error("headers of {headers} bytes do not fit a message of {total} bytes (or exceed 128 KiB)")]
    HeadersLength {
        /// The headers' length, as the prelude gives it.
        headers: usize,
        /// The message's total length, as the prelude gives it.
        total: usize,
    },
    /// A header runs past its space, has an empty name, an unknown type or text not in UTF-8.
    #[error("a header is malformed: {0}")]
    Header(&'static str),
    /// The bytes ended part way through a message; the count is what was left.
    #[error("the stream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
    /// The decoder failed earlier and reads nothing more.
    #[error("an earlier framing error ended the stream")]
    Failed,
}

/// Splits a byte stream into messages, however the bytes are chunked.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
    failed: bool,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes and returns every message now complete. On an error the messages completed
    /// before it in `bytes` are in `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Message>) -> Result<(), FrameError> {
        if self.failed {
            return Err(FrameError::Failed);
        }
        self.buffer.extend_from_slice(bytes);
        loop {
            match self.next_message() {
                Ok(Some(message)) => out.push(message),
                Ok(None) => return Ok(()),
                Err(error) => {
                    self.failed = true;
                    self.buffer.clear();
                    return Err(error);
                }
            }
        }
    }

    /// The byte stream ended: an error if it stopped inside a message.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if self.failed {
            return Err(FrameError::Failed);
        }
        match self.buffer.len() {
            0 => Ok(()),
            left => Err(FrameError::Truncated(left)),
        }
    }

    fn next_message(&mut self) -> Result<Option<Message>, FrameError> {
        if self.buffer.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = read_u32(&self.buffer[0..4]) as usize;
        let headers_len = read_u32(&self.buffer[4..8]) as usize;
        let prelude_crc = read_u32(&self.buffer[8..12]);
        let actual = crc32(&self.buffer[0..8]);
        if prelude_crc != actual {
            return Err(FrameError::PreludeChecksum {
                expected: prelude_crc,
                actual,
            });
        }
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&total) {
            return Err(FrameError::MessageLength(total));
        }
        if headers_len > total - MIN_MESSAGE_LEN || headers_len > MAX_HEADERS_LEN {
            return Err(FrameError::HeadersLength {
                headers: headers_len,
                total,
            });
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let message = self.buffer.split_to(total).freeze();
        let body_end = total - MESSAGE_CRC_LEN;
        let message_crc = read_u32(&message[body_end..]);
        let actual = crc32(&message[..body_end]);
        if message_crc != actual {
            return Err(FrameError::MessageChecksum {
                expected: message_crc,
                actual,
            });
        }
        let headers_end = PRELUDE_LEN + headers_len;
        let headers = parse_headers(&message[PRELUDE_LEN..headers_end])?;
        Ok(Some(Message {
            headers,
            payload: message.slice(headers_end..body_end),
        }))
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(word)
}

/// Takes `n` bytes off the front of `input`, or fails if fewer are left.
fn take<'a>(input: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], FrameError> {
    if input.len() < n {
        return Err(FrameError::Header(what));
    }
    let (taken, rest) = input.split_at(n);
    *input = rest;
    Ok(taken)
}

fn parse_headers(mut input: &[u8]) -> Result<Vec<Header>, FrameError> {
    let mut headers = Vec::new();
    while !input.is_empty() {
        let name_len = take(&mut input, 1, "a header name length is cut off")?[0] as usize;
        if name_len == 0 {
            return Err(FrameError::Header("a header name is empty"));
        }
        let name = take(&mut input, name_len, "a header name is cut off")?;
        let name = std::str::from_utf8(name)
            .map_err(|_| FrameError::Header("a header name is not UTF-8"))?
            .to_owned();
        let kind = take(&mut input, 1, "a header type is cut off")?[0];
        let cut = "a header value is cut off";
        let value = match kind {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(take(&mut input, 1, cut)?.get_i8()),
            3 => HeaderValue::Int16(take(&mut input, 2, cut)?.get_i16()),
            4 => HeaderValue::Int32(take(&mut input, 4, cut)?.get_i32()),
            5 => HeaderValue::Int64(take(&mut input, 8, cut)?.get_i64()),
            6 | 7 => {
                let len = take(&mut input, 2, cut)?.get_u16() as usize;
                let bytes = take(&mut input, len, cut)?;
                if kind == 6 {
                    HeaderValue::ByteArray(Bytes::copy_from_slice(bytes))
                } else {
                    HeaderValue::String(
                        std::str::from_utf8(bytes)
                            .map_err(|_| FrameError::Header("a string header is not UTF-8"))?
                            .to_owned(),
                    )
                }
            }
            8 => HeaderValue::Timestamp(take(&mut input, 8, cut)?.get_i64()),
            9 => {
                let mut uuid = [0u8; 16];
                uuid.copy_from_slice(take(&mut input, 16, cut)?);
                HeaderValue::Uuid(uuid)
            }
            _ => return Err(FrameError::Header("a header has an unknown type")),
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// Encodes one message. Header names longer than 255 bytes and string or byte-array values
/// longer than 65,535 bytes are cut to fit (the wire has no way to say more).
pub fn encode_message(headers: &[Header], payload: &[u8]) -> Vec<u8> {
    let mut encoded_headers = Vec::new();
    for header in headers {
        let name = &header.name.as_bytes()[..header.name.len().min(255)];
        encoded_headers.push(name.len() as u8);
        encoded_headers.extend_from_slice(name);
        match &header.value {
            HeaderValue::Bool(true) => encoded_headers.push(0),
            HeaderValue::Bool(false) => encoded_headers.push(1),
            HeaderValue::Byte(value) => {
                encoded_headers.push(2);
                encoded_headers.extend_from_slice(&value.to_be_bytes());
            }
            HeaderValue::Int16(value) => {
                encoded_headers.push(3);
                encoded_headers.extend_from_slice(&value.to_be_bytes());
            }
            HeaderValue::Int32(value) => {
                encoded_headers.push(4);
                encoded_headers.extend_from_slice(&value.to_be_bytes());
            }
            HeaderValue::Int64(value) => {
                encoded_headers.push(5);
                encoded_headers.extend_from_slice(&value.to_be_bytes());
            }
            HeaderValue::ByteArray(bytes) => {
                encoded_headers.push(6);
                push_short_bytes(&mut encoded_headers, bytes);
            }
            HeaderValue::String(text) => {
                encoded_headers.push(7);
                push_short_bytes(&mut encoded_headers, text.as_bytes());
            }
            HeaderValue::Timestamp(value) => {
                encoded_headers.push(8);
                encoded_headers.extend_from_slice(&value.to_be_bytes());
            }
            HeaderValue::Uuid(uuid) => {
                encoded_headers.push(9);
                encoded_headers.extend_from_slice(uuid);
            }
        }
    }
    let total = MIN_MESSAGE_LEN + encoded_headers.len() + payload.len();
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_be_bytes());
    message.extend_from_slice(&(encoded_headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&message);
    message.extend_from_slice(&prelude_crc.to_be_bytes());
    message.extend_from_slice(&encoded_headers);
    message.extend_from_slice(payload);
    let message_crc = crc32(&message);
    message.extend_from_slice(&message_crc.to_be_bytes());
    message
}

fn push_short_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, payload: &str) -> Vec<u8> {
        encode_message(
            &[
                Header::string(":event-type", event_type),
                Header::string(":content-type", "application/json"),
                Header::string(":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, FrameError> {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        decoder.push(bytes, &mut out)?;
        decoder.finish()?;
        Ok(out)
    }

    /// A message from AWS's own event-stream test vectors: no headers, payload `{'foo':'bar'}`.
    #[test]
    fn decodes_a_reference_message() {
        let bytes: [u8; 29] = [
            0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b, 0x27,
            0x66, 0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3, 0x65, 0x39,
            0x36,
        ];
        let messages = decode_all(&bytes).expect("decodes");
        assert_eq!(messages.len(), 1);
        assert!(messages[0].headers.is_empty());
        assert_eq!(&messages[0].payload[..], b"{'foo':'bar'}");
        assert_eq!(encode_message(&[], b"{'foo':'bar'}"), bytes);
    }

    #[test]
    fn every_header_type_round_trips() {
        let headers = vec![
            Header {
                name: "yes".into(),
                value: HeaderValue::Bool(true),
            },
            Header {
                name: "no".into(),
                value: HeaderValue::Bool(false),
            },
            Header {
                name: "byte".into(),
                value: HeaderValue::Byte(-3),
            },
            Header {
                name: "short".into(),
                value: HeaderValue::Int16(-300),
            },
            Header {
                name: "int".into(),
                value: HeaderValue::Int32(70_000),
            },
            Header {
                name: "long".into(),
                value: HeaderValue::Int64(-5_000_000_000),
            },
            Header {
                name: "bytes".into(),
                value: HeaderValue::ByteArray(Bytes::from_static(b"\x00\xff")),
            },
            Header::string(":event-type", "contentBlockDelta"),
            Header {
                name: "at".into(),
                value: HeaderValue::Timestamp(1_700_000_000_000),
            },
            Header {
                name: "id".into(),
                value: HeaderValue::Uuid([7; 16]),
            },
        ];
        let bytes = encode_message(&headers, b"{}");
        let messages = decode_all(&bytes).expect("decodes");
        assert_eq!(messages[0].headers, headers);
        assert_eq!(
            messages[0].header_str(":event-type"),
            Some("contentBlockDelta")
        );
        assert_eq!(messages[0].header_str("yes"), None, "not a string header");
    }

    #[test]
    fn messages_split_across_any_chunk_boundaries_decode_the_same() {
        let mut stream = Vec::new();
        for (kind, payload) in [
            ("messageStart", r#"{"role":"assistant"}"#),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Hé"}}"#,
            ),
            ("messageStop", r#"{"stopReason":"end_turn"}"#),
        ] {
            stream.extend(event(kind, payload));
        }
        let whole = decode_all(&stream).expect("decodes");
        assert_eq!(whole.len(), 3);
        // Every chunk size, including one byte at a time.
        for size in 1..=stream.len() {
            let mut decoder = FrameDecoder::new();
            let mut out = Vec::new();
            for chunk in stream.chunks(size) {
                decoder.push(chunk, &mut out).expect("decodes");
            }
            decoder.finish().expect("complete");
            assert_eq!(out, whole, "chunks of {size}");
        }
        // Irregular cuts: every pair of cut points.
        for first in 1..stream.len() {
            for second in (first + 1..stream.len()).step_by(7) {
                let mut decoder = FrameDecoder::new();
                let mut out = Vec::new();
                for chunk in [&stream[..first], &stream[first..second], &stream[second..]] {
                    decoder.push(chunk, &mut out).expect("decodes");
                }
                assert_eq!(out, whole);
            }
        }
    }

    #[test]
    fn checksum_mismatches_are_errors_and_the_decoder_stays_failed() {
        let good = event("messageStart", r#"{"role":"assistant"}"#);
        let mut payload_flipped = good.clone();
        let last_payload_byte = good.len() - 5;
        payload_flipped[last_payload_byte] ^= 0x01;
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        decoder.push(&good, &mut out).expect("first is fine");
        assert!(matches!(
            decoder.push(&payload_flipped, &mut out),
            Err(FrameError::MessageChecksum { .. })
        ));
        assert_eq!(out.len(), 1, "the message before the corrupt one is kept");
        assert_eq!(decoder.push(&good, &mut out), Err(FrameError::Failed));
        assert_eq!(decoder.finish(), Err(FrameError::Failed));

        let mut prelude_flipped = good.clone();
        prelude_flipped[3] ^= 0x10;
        assert!(matches!(
            decode_all(&prelude_flipped),
            Err(FrameError::PreludeChecksum { .. })
        ));
    }

    /// A prelude with a valid checksum but lengths that do not describe a message.
    fn prelude(total: u32, headers: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&total.to_be_bytes());
        bytes.extend_from_slice(&headers.to_be_bytes());
        let crc = crc32(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn impossible_lengths_are_refused_before_buffering() {
        assert_eq!(
            decode_all(&prelude(u32::MAX, 0)),
            Err(FrameError::MessageLength(u32::MAX as usize))
        );
        assert_eq!(
            decode_all(&prelude(8, 0)),
            Err(FrameError::MessageLength(8))
        );
        assert!(matches!(
            decode_all(&prelude(20, 5)),
            Err(FrameError::HeadersLength { .. })
        ));
        assert!(matches!(
            decode_all(&prelude(1024 * 1024, 200 * 1024)),
            Err(FrameError::HeadersLength { .. })
        ));
    }

    #[test]
    fn truncated_input_is_reported_at_the_end() {
        let good = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        for cut in [1, 11, 12, good.len() - 1] {
            assert_eq!(
                decode_all(&good[..cut]),
                Err(FrameError::Truncated(cut)),
                "cut at {cut}"
            );
        }
    }

    /// Headers whose lengths run past their section, unknown types, bad UTF-8: errors.
    #[test]
    fn malformed_headers_are_errors() {
        let cases: [&[u8]; 6] = [
            &[0],                      // empty name
            &[5, b'a'],                // name cut off
            &[1, b'a'],                // type missing
            &[1, b'a', 7, 0, 9, b'x'], // string value cut off
            &[1, b'a', 42],            // unknown type
            &[1, 0xff, 0],             // name not UTF-8
        ];
        for headers in cases {
            let total = (MIN_MESSAGE_LEN + headers.len()) as u32;
            let mut bytes = prelude(total, headers.len() as u32);
            bytes.extend_from_slice(headers);
            let crc = crc32(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            assert!(
                matches!(decode_all(&bytes), Err(FrameError::Header(_))),
                "{headers:?}"
            );
        }
    }

    /// Pseudo-random bytes, and corruptions of a valid stream at every position: never a panic.
    #[test]
    fn hostile_bytes_never_panic() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode_all(&bytes);
        }
        let good = event("contentBlockDelta", r#"{"delta":{"text":"x"}}"#);
        for position in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[position] ^= flip;
                assert!(decode_all(&bad).is_err(), "flip {flip:#x} at {position}");
            }
        }
    }
}
