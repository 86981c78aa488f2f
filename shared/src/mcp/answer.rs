//! Reading a server's answer to one POSTed request (sans-IO): the body is either one JSON
//! message or an event stream carrying any number of notifications and requests of the
//! server's before the answer. Bytes go in as they arrive, in pieces of any size; the answer
//! comes out as soon as its event is complete, without waiting for the stream to close.
//!
//! An event stream may end before the answer when its events have ids: the server then
//! expects the client to resume it with a GET carrying `Last-Event-ID` (the 2025-11-25
//! revision lets servers close streams this way), and the answer is read from that stream.

use serde_json::Value;

use super::error::McpError;
use super::jsonrpc::{self, Message};
use crate::model::sse::SseParser;

/// The most bytes read for one answer: a tool list, or a tool's result with its images.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// How the body of a 2xx answer is framed, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`: one JSON-RPC message.
    Json,
    /// `text/event-stream`: messages as server-sent events, ours among them.
    EventStream,
}

impl BodyKind {
    /// The framing a `Content-Type` header announces; anything else is a protocol error.
    pub fn of(content_type: Option<&str>) -> Result<Self, McpError> {
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase());
        match media_type.as_deref() {
            Some("application/json") => Ok(BodyKind::Json),
            Some("text/event-stream") => Ok(BodyKind::EventStream),
            Some(other) => Err(McpError::Protocol(format!(
                "the answer is `{other}`, neither JSON nor an event stream"
            ))),
            None => Err(McpError::Protocol("the answer has no content type".into())),
        }
    }
}

/// What some bytes of the answer brought.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    /// The server's requests met on the way, which want answers (a `ping`).
    pub server_requests: Vec<(Value, String)>,
    /// The result of chatfn's request, once it came.
    pub answer: Option<Value>,
}

/// The answer to the request with id `request_id`, read from its body.
pub struct AnswerReader {
    request_id: u64,
    body: Body,
    read: usize,
    limit: usize,
    answered: bool,
    /// The id of the last event of the stream, where it resumes.
    last_event_id: Option<String>,
}

enum Body {
    Json(Vec<u8>),
    EventStream(SseParser),
}

impl AnswerReader {
    /// A reader for the answer to `request_id`, read up to [`MAX_ANSWER_BYTES`].
    pub fn new(request_id: u64, kind: BodyKind) -> Self {
        Self::with_limit(request_id, kind, MAX_ANSWER_BYTES)
    }

    /// A reader for the answer to `request_id` that fails past `limit` bytes.
    pub fn with_limit(request_id: u64, kind: BodyKind, limit: usize) -> Self {
        AnswerReader {
            request_id,
            body: match kind {
                BodyKind::Json => Body::Json(Vec::new()),
                BodyKind::EventStream => Body::EventStream(SseParser::new()),
            },
            read: 0,
            limit,
            answered: false,
            last_event_id: None,
        }
    }

    /// Takes the next bytes of the body. A JSON body answers only at [`AnswerReader::finish`];
    /// an event stream answers with the event that carries the answer.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Received, McpError> {
        self.read = self.read.saturating_add(bytes.len());
        if self.read > self.limit {
            return Err(McpError::TooLarge(self.limit));
        }
        match &mut self.body {
            Body::Json(buffer) => {
                buffer.extend_from_slice(bytes);
                Ok(Received::default())
            }
            Body::EventStream(parser) => {
                let events = parser.push(bytes);
                let mut received = Received::default();
                for event in events {
                    self.last_event_id = event.id;
                    self.take_event(&event.data, &mut received)?;
                }
                Ok(received)
            }
        }
    }

    /// The body ended. Without an answer by now there will be none, an error, unless the
    /// stream can be resumed (see [`AnswerReader::resume_from`]).
    pub fn finish(&mut self) -> Result<Received, McpError> {
        let mut received = Received::default();
        match &mut self.body {
            Body::Json(buffer) => {
                let messages = jsonrpc::decode_body(&std::mem::take(buffer))?;
                for message in messages {
                    self.take(message, &mut received)?;
                }
            }
            Body::EventStream(parser) => {
                if let Some(event) = parser.finish() {
                    self.last_event_id = event.id;
                    self.take_event(&event.data, &mut received)?;
                }
            }
        }
        if !self.answered && self.resume_from().is_none() {
            return Err(McpError::Protocol(
                "the answer ended before the result of the request".into(),
            ));
        }
        Ok(received)
    }

    /// The event id to resume an unanswered event stream from, once it has ended.
    pub fn resume_from(&self) -> Option<&str> {
        match &self.body {
            Body::EventStream(_) if !self.answered => self.last_event_id.as_deref(),
            _ => None,
        }
    }

    /// Reads on from a resumed stream: the events after the last one read.
    pub fn resume(&mut self) {
        if let Body::EventStream(parser) = &mut self.body {
            *parser = SseParser::new();
        }
    }

    /// How long the server asked a client to wait before resuming (`retry:`).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match &self.body {
            Body::EventStream(parser) => parser.retry().map(std::time::Duration::from_millis),
            Body::Json(_) => None,
        }
    }

    fn take_event(&mut self, data: &str, received: &mut Received) -> Result<(), McpError> {
        // An event with no data is a priming event, sent so a client can resume from its id.
        if data.trim().is_empty() || self.answered {
            return Ok(());
        }
        for message in jsonrpc::decode_body(data.as_bytes())? {
            self.take(message, received)?;
        }
        Ok(())
    }

    fn take(&mut self, message: Message, received: &mut Received) -> Result<(), McpError> {
        if self.answered {
            return Ok(());
        }
        match message {
            Message::Result { id, result } if self.is_ours(&id) => {
                self.answered = true;
                received.answer = Some(result);
            }
            Message::Error { id, error } if id.as_ref().is_none_or(|id| self.is_ours(id)) => {
                self.answered = true;
                return Err(error.into());
            }
            Message::Request { id, method } => received.server_requests.push((id, method)),
            // Progress, logging, answers to other requests: nothing this request waits for.
            Message::Result { .. } | Message::Error { .. } | Message::Notification { .. } => {}
        }
        Ok(())
    }

    fn is_ours(&self, id: &Value) -> bool {
        id.as_u64() == Some(self.request_id)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Pushes `body` whole, then byte by byte, then split at every offset, and checks each way
    /// gives the same answer and server requests.
    fn read_every_way(kind: BodyKind, body: &[u8]) -> Result<Received, McpError> {
        let whole = read_in_pieces(kind, &[body]);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(read_in_pieces(kind, &bytes), whole, "byte by byte");
        for split in 0..=body.len() {
            let (first, second) = body.split_at(split);
            assert_eq!(
                read_in_pieces(kind, &[first, second]),
                whole,
                "split at {split}"
            );
        }
        whole
    }

    fn read_in_pieces(kind: BodyKind, pieces: &[&[u8]]) -> Result<Received, McpError> {
        let mut reader = AnswerReader::new(7, kind);
        let mut all = Received::default();
        for piece in pieces {
            let received = reader.push(piece)?;
            all.server_requests.extend(received.server_requests);
            if let Some(answer) = received.answer {
                all.answer = Some(answer);
                // The client stops reading here: the answer must not wait for the end.
                return Ok(all);
            }
        }
        let received = reader.finish()?;
        all.server_requests.extend(received.server_requests);
        all.answer = all.answer.or(received.answer);
        Ok(all)
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyKind::of(Some("application/json; charset=utf-8")),
            Ok(BodyKind::Json)
        );
        assert_eq!(
            BodyKind::of(Some("Text/Event-Stream")),
            Ok(BodyKind::EventStream)
        );
        assert!(matches!(
            BodyKind::of(Some("text/html")),
            Err(McpError::Protocol(message)) if message.contains("text/html")
        ));
        assert!(matches!(BodyKind::of(None), Err(McpError::Protocol(_))));
    }

    #[test]
    fn a_json_answer() {
        let received = read_every_way(
            BodyKind::Json,
            br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#,
        );
        assert_eq!(received.map(|r| r.answer), Ok(Some(json!({"tools": []}))));
    }

    #[test]
    fn a_json_batch_with_the_answer_among_others() {
        let received = read_every_way(
            BodyKind::Json,
            br#"[{"jsonrpc":"2.0","method":"notifications/message","params":{}},
                 {"jsonrpc":"2.0","id":7,"result":{"ok":true}}]"#,
        );
        assert_eq!(received.map(|r| r.answer), Ok(Some(json!({"ok": true}))));
    }

    #[test]
    fn one_event() {
        let received = read_every_way(
            BodyKind::EventStream,
            b"event: message\nid: e1\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"n\":1}}\n\n",
        );
        assert_eq!(received.map(|r| r.answer), Ok(Some(json!({"n": 1}))));
    }

    #[test]
    fn notifications_and_a_ping_before_the_answer() {
        let body = b": keep-alive\n\n\
            id: p0\ndata:\n\n\
            event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n\
            data: {\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"ping\"}\n\n\
            data: {\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"stale\":true}}\n\n\
            data: {\"jsonrpc\":\"2.0\",\n\
            data: \"id\":7,\"result\":{\"n\":2}}\n\n";
        let received = read_every_way(BodyKind::EventStream, body).expect("answered");
        assert_eq!(received.answer, Some(json!({"n": 2})));
        assert_eq!(received.server_requests, [(json!("srv-1"), "ping".into())]);
    }

    #[test]
    fn the_answer_in_a_last_event_without_its_blank_line() {
        let received = read_every_way(
            BodyKind::EventStream,
            b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}",
        );
        assert_eq!(received.map(|r| r.answer), Ok(Some(json!({}))));
    }

    #[test]
    fn what_follows_the_answer_is_not_read() {
        let mut reader = AnswerReader::new(7, BodyKind::EventStream);
        let received = reader
            .push(b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\ndata: garbage\n\n")
            .expect("answered");
        assert_eq!(received.answer, Some(json!({})));
        assert_eq!(
            reader.push(b"data: more garbage\n\n"),
            Ok(Received::default())
        );
    }

    #[test]
    fn an_error_answer() {
        let received = read_every_way(
            BodyKind::EventStream,
            b"data: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":\"Unknown tool: nope\"}}\n\n",
        );
        assert_eq!(
            received,
            Err(McpError::Rpc {
                code: -32602,
                message: "Unknown tool: nope".into()
            })
        );
        // An error the server could not tie to a request is this request's.
        let received = read_every_way(
            BodyKind::Json,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
        );
        assert_eq!(
            received,
            Err(McpError::Rpc {
                code: -32700,
                message: "Parse error".into()
            })
        );
    }

    #[test]
    fn a_stream_that_ends_without_the_answer() {
        let received = read_every_way(
            BodyKind::EventStream,
            b"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
        );
        assert!(matches!(received, Err(McpError::Protocol(m)) if m.contains("ended before")));
        let received = read_every_way(BodyKind::EventStream, b"");
        assert!(matches!(received, Err(McpError::Protocol(_))));
    }

    #[test]
    fn a_stream_closed_before_the_answer_resumes_from_its_last_event() {
        let mut reader = AnswerReader::new(7, BodyKind::EventStream);
        let received = reader
            .push(b"id: e1\nretry: 250\ndata:\n\nid: e2\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n")
            .expect("read");
        assert_eq!(received, Received::default());
        assert_eq!(reader.finish(), Ok(Received::default()));
        assert_eq!(reader.resume_from(), Some("e2"));
        assert_eq!(
            reader.retry_after(),
            Some(std::time::Duration::from_millis(250))
        );

        // The resumed stream starts afresh: a half line of the old one is not carried over.
        reader.resume();
        let received = reader
            .push(b"id: e3\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"done\":true}}\n\n")
            .expect("read");
        assert_eq!(received.answer, Some(json!({"done": true})));
        assert_eq!(reader.resume_from(), None);
    }

    #[test]
    fn a_stream_without_event_ids_cannot_resume() {
        let mut reader = AnswerReader::new(7, BodyKind::EventStream);
        reader.push(b"data:\n\n").expect("read");
        assert!(matches!(reader.finish(), Err(McpError::Protocol(_))));
        assert_eq!(reader.resume_from(), None);
    }

    #[test]
    fn garbage() {
        for (kind, body) in [
            (BodyKind::Json, &b"<html>oops</html>"[..]),
            (BodyKind::Json, b""),
            (BodyKind::Json, br#"{"jsonrpc":"2.0","id":8,"result":{}}"#),
            (BodyKind::EventStream, b"data: not json\n\n"),
            (BodyKind::EventStream, b"<html>oops</html>"),
        ] {
            let received = read_every_way(kind, body);
            assert!(
                matches!(received, Err(McpError::Protocol(_))),
                "{}: {received:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_answer_past_the_limit() {
        let mut reader = AnswerReader::with_limit(7, BodyKind::EventStream, 16);
        assert_eq!(reader.push(b": 0123456789\n"), Ok(Received::default()));
        assert_eq!(reader.push(b": 0123456789\n"), Err(McpError::TooLarge(16)));
    }
}
