//! Recorded provider streams (`tests/data/<provider>/`, one event's JSON per line) put back on
//! each provider's own framing, and a loopback server that plays them.
//!
//! [`Playback`] answers every `POST` with the bytes it was given, whole or one byte per write,
//! and records the request bodies. The framings: [`sse_data`] (chat completions: `data:` lines
//! and a closing `[DONE]`), [`sse_named`] (Anthropic: an `event:` line naming each event's
//! `type`), [`event_stream`] (Bedrock: AWS event-stream binary frames, one per event, each
//! checked byte for byte against the frame AWS's own codec writes).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::Value;

/// The events of `tests/data/<dir>/<file>`, one JSON value a line.
pub fn recording(dir: &str, file: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{dir}/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// Server-sent events with `data:` lines only, closed by `data: [DONE]`, as OpenAI's chat
/// completions and the servers that copy it send them.
pub fn sse_data(events: &[Value]) -> Vec<u8> {
    let mut body: String = events
        .iter()
        .map(|event| format!("data: {event}\n\n"))
        .collect();
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

/// Server-sent events with an `event:` line naming each event's `type`, as Anthropic sends them.
pub fn sse_named(events: &[Value]) -> Vec<u8> {
    events
        .iter()
        .map(|event| {
            let kind = event["type"].as_str().unwrap_or("message");
            format!("event: {kind}\ndata: {event}\n\n")
        })
        .collect::<String>()
        .into_bytes()
}

/// Bedrock's event-stream: each recorded `{"<eventType>": payload}` as one binary message with
/// the headers ConverseStream gives it.
#[cfg(feature = "native")]
pub fn event_stream(events: &[Value]) -> Vec<u8> {
    use chatfn::model::bedrock::event_stream::{Header, encode_message};
    events
        .iter()
        .flat_map(|event| {
            let (kind, payload) = event
                .as_object()
                .and_then(|fields| fields.iter().next())
                .expect("a recorded ConverseStream event is `{type: payload}`");
            let headers = [
                (":event-type", kind.as_str()),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ];
            let payload = payload.to_string();
            let ours = encode_message(
                &headers.map(|(name, value)| Header::string(name, value)),
                payload.as_bytes(),
            );
            assert_eq!(
                ours,
                aws_codec(&headers, payload.as_bytes()),
                "the frame of `{kind}` is the one AWS's codec writes"
            );
            ours
        })
        .collect()
}

/// The frame AWS's own event-stream codec (the one its SDKs use) writes for a message.
#[cfg(feature = "native")]
fn aws_codec(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let message = headers
        .iter()
        .fold(Message::new(payload.to_vec()), |message, (name, value)| {
            message.add_header(Header::new(
                name.to_string(),
                HeaderValue::String(value.to_string().into()),
            ))
        });
    let mut frame = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut frame)
        .expect("AWS's codec writes the message");
    frame
}

struct Shared {
    body: Vec<u8>,
    content_type: &'static str,
    byte_by_byte: bool,
    requests: Mutex<Vec<Value>>,
}

/// A running playback server; it stops when dropped.
pub struct Playback {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Playback {
    /// Answers every `POST` with `body` as `content_type`, one byte per write when
    /// `byte_by_byte`.
    pub async fn start(body: Vec<u8>, content_type: &'static str, byte_by_byte: bool) -> Self {
        let shared = Arc::new(Shared {
            body,
            content_type,
            byte_by_byte,
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the playback server");
        let addr = listener.local_addr().expect("playback address");
        let app = Router::new()
            .fallback(axum::routing::post(play))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("playback failed");
        });
        Playback {
            addr,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT`, the server's root.
    pub fn root(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JSON bodies of the requests so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn play(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    shared
        .requests
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let bytes = shared.body.clone();
    let body = if shared.byte_by_byte {
        // A yield between bytes makes each its own write on the wire.
        let bytes = futures::stream::unfold(bytes.into_iter(), |mut bytes| async move {
            let byte = bytes.next()?;
            tokio::task::yield_now().await;
            Some((Ok::<_, std::io::Error>(Bytes::from(vec![byte])), bytes))
        });
        Body::from_stream(bytes)
    } else {
        Body::from(bytes)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, shared.content_type)
        .body(body)
        .expect("a valid response")
}
