//! SSE framing of the UI message stream: `data: <json>` events, `[DONE]`, comment keepalives.

use super::UIMessageChunk;

/// The response headers of a UI message stream, as `ai`'s `UI_MESSAGE_STREAM_HEADERS` has them.
pub const UI_MESSAGE_STREAM_HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("connection", "keep-alive"),
    ("x-vercel-ai-ui-message-stream", "v1"),
    ("x-accel-buffering", "no"),
];

/// The event that ends the stream.
pub const DONE_EVENT: &str = "data: [DONE]\n\n";

/// A comment line: clients drop it, proxies see traffic.
pub const KEEPALIVE_EVENT: &str = ": keepalive\n\n";

/// One chunk as an SSE event.
pub fn encode_chunk(chunk: &UIMessageChunk) -> String {
    // Serializing these types cannot fail: every field is a string, number, bool or JSON value.
    let json = serde_json::to_string(chunk).unwrap_or_else(|_| "{}".to_owned());
    encode_json(&json)
}

/// A chunk already serialized to JSON, as an SSE event. JSON text never holds a raw newline, so
/// one `data:` line always suffices.
pub fn encode_json(json: &str) -> String {
    let mut event = String::with_capacity(json.len() + 8);
    event.push_str("data: ");
    event.push_str(json);
    event.push_str("\n\n");
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_one_data_line_and_a_blank_line() {
        let event = encode_chunk(&UIMessageChunk::text_delta("t1", "line one\nline two"));
        assert_eq!(
            event,
            "data: {\"type\":\"text-delta\",\"id\":\"t1\",\"delta\":\"line one\\nline two\"}\n\n"
        );
    }

    #[test]
    fn done_and_keepalive_follow_the_wire() {
        assert_eq!(DONE_EVENT, "data: [DONE]\n\n");
        assert!(KEEPALIVE_EVENT.starts_with(':'));
        assert!(KEEPALIVE_EVENT.ends_with("\n\n"));
    }

    #[test]
    fn headers_name_the_v1_wire() {
        assert!(UI_MESSAGE_STREAM_HEADERS.contains(&("x-vercel-ai-ui-message-stream", "v1")));
        assert!(UI_MESSAGE_STREAM_HEADERS.contains(&("content-type", "text/event-stream")));
    }
}
