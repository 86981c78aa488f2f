//! A stand-in for OpenAI's Responses API on a loopback port, for tests.
//!
//! [`ResponsesStandIn`] answers `POST /v1/responses` with streams on the API's own framing (an
//! `event:` line naming each event's `type`, then its `data:`), written whole or one byte per
//! write, or with an HTTP error; a rule over the request's number and body picks the reply, so
//! a test can refuse a request that lacks what the real API would need. Every request is
//! recorded. [`recording`] reads the recorded streams in `tests/data/openai-responses/`, and the
//! functions at the end build the events of a synthetic stream.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// How the stand-in answers one request.
pub enum Reply {
    /// These events, streamed.
    Stream {
        events: Vec<Value>,
        byte_by_byte: bool,
    },
    /// An HTTP error with an OpenAI-style body.
    Error { status: u16, message: String },
}

impl Reply {
    pub fn stream(events: Vec<Value>) -> Reply {
        Reply::Stream {
            events,
            byte_by_byte: false,
        }
    }

    /// The same stream, written one byte at a time.
    pub fn byte_by_byte(self) -> Reply {
        match self {
            Reply::Stream { events, .. } => Reply::Stream {
                events,
                byte_by_byte: true,
            },
            error => error,
        }
    }

    /// What the API says to a request it cannot take (`invalid_request_error`, 400).
    pub fn invalid_request(message: impl Into<String>) -> Reply {
        Reply::Error {
            status: 400,
            message: message.into(),
        }
    }
}

/// A request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub authorization: Option<String>,
    pub body: Value,
}

type Rule = dyn Fn(usize, &Value) -> Reply + Send + Sync;

struct Shared {
    rule: Box<Rule>,
    received: Mutex<Vec<Received>>,
}

/// A running stand-in; it stops when dropped.
pub struct ResponsesStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl ResponsesStandIn {
    /// Answers the `n`th request (from 0) with what `rule` makes of it and its JSON body.
    pub async fn start(rule: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            rule: Box::new(rule),
            received: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let app = Router::new()
            .route("/v1/responses", post(respond))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stand-in failed");
        });
        ResponsesStandIn {
            addr,
            shared,
            server,
        }
    }

    /// The API root to configure, like `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The JSON bodies of the requests so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.received().into_iter().map(|r| r.body).collect()
    }
}

impl Drop for ResponsesStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn respond(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let number = {
        let mut received = shared.received.lock().unwrap();
        received.push(Received {
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body: body.clone(),
        });
        received.len() - 1
    };
    match (shared.rule)(number, &body) {
        Reply::Error { status, message } => {
            let error = json!({
                "error": { "message": message, "type": "invalid_request_error", "param": "input", "code": null },
            });
            let status = StatusCode::from_u16(status).expect("an HTTP status");
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                error.to_string(),
            )
                .into_response()
        }
        Reply::Stream {
            events,
            byte_by_byte,
        } => {
            let framed = frame(&events).into_bytes();
            let body = if byte_by_byte {
                // A pause between bytes makes each its own write on the wire.
                let bytes = futures::stream::unfold(framed.into_iter(), |mut bytes| async move {
                    let byte = bytes.next()?;
                    tokio::task::yield_now().await;
                    Some((Ok::<_, std::io::Error>(Bytes::from(vec![byte])), bytes))
                });
                Body::from_stream(bytes)
            } else {
                Body::from(framed)
            };
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(body)
                .expect("a valid response")
        }
    }
}

/// Events on the Responses API's framing.
pub fn frame(events: &[Value]) -> String {
    events
        .iter()
        .map(|event| {
            let kind = event["type"].as_str().unwrap_or("message");
            format!("event: {kind}\ndata: {event}\n\n")
        })
        .collect()
}

/// The responses of a recorded stream in `tests/data/openai-responses/`, each a list of events:
/// a file of several responses (a tool loop) starts a new one at every `response.created`.
pub fn recording(file: &str) -> Vec<Vec<Value>> {
    let path = format!(
        "{}/tests/data/openai-responses/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut responses: Vec<Vec<Value>> = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{path}: {e}"));
        if event["type"] == "response.created" || responses.is_empty() {
            responses.push(Vec::new());
        }
        if let Some(response) = responses.last_mut() {
            response.push(event);
        }
    }
    responses
}

/// The events of `events` of this type.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|event| event["type"] == kind)
        .collect()
}

/// The input items of a Responses request body.
pub fn input(request: &Value) -> Vec<Value> {
    request["input"].as_array().cloned().unwrap_or_default()
}

// Synthetic streams.

pub fn reasoning(index: u64, id: &str, summary: &str, encrypted: &str) -> Vec<Value> {
    vec![
        json!({"type":"response.output_item.added","output_index":index,"item":{"id":id,"type":"reasoning","summary":[]}}),
        json!({"type":"response.reasoning_summary_part.added","output_index":index,"item_id":id,"summary_index":0,"part":{"type":"summary_text","text":""}}),
        json!({"type":"response.reasoning_summary_text.delta","output_index":index,"item_id":id,"summary_index":0,"delta":summary}),
        json!({"type":"response.reasoning_summary_part.done","output_index":index,"item_id":id,"summary_index":0,"part":{"type":"summary_text","text":summary}}),
        json!({"type":"response.output_item.done","output_index":index,"item":{"id":id,"type":"reasoning","encrypted_content":encrypted,"summary":[{"type":"summary_text","text":summary}]}}),
    ]
}

pub fn function_call(index: u64, call_id: &str, name: &str, arguments: &str) -> Vec<Value> {
    let id = format!("fc_{call_id}");
    let (first, rest) = arguments.split_at(arguments.len() / 2);
    vec![
        json!({"type":"response.output_item.added","output_index":index,"item":{"id":id,"type":"function_call","status":"in_progress","call_id":call_id,"name":name,"arguments":""}}),
        json!({"type":"response.function_call_arguments.delta","output_index":index,"item_id":id,"delta":first}),
        json!({"type":"response.function_call_arguments.delta","output_index":index,"item_id":id,"delta":rest}),
        json!({"type":"response.function_call_arguments.done","output_index":index,"item_id":id,"arguments":arguments}),
        json!({"type":"response.output_item.done","output_index":index,"item":{"id":id,"type":"function_call","status":"completed","call_id":call_id,"name":name,"arguments":arguments}}),
    ]
}

pub fn message(index: u64, id: &str, text: &str) -> Vec<Value> {
    let mut events = vec![
        json!({"type":"response.output_item.added","output_index":index,"item":{"id":id,"type":"message","status":"in_progress","role":"assistant","content":[]}}),
        json!({"type":"response.content_part.added","output_index":index,"item_id":id,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}),
    ];
    for word in text.split_inclusive(' ') {
        events.push(json!({"type":"response.output_text.delta","output_index":index,"item_id":id,"content_index":0,"delta":word}));
    }
    events.push(json!({"type":"response.output_item.done","output_index":index,"item":{"id":id,"type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":text,"annotations":[]}]}}));
    events
}

/// A whole response: `response.created`, the items' events, `response.completed`.
pub fn response(items: Vec<Vec<Value>>, input_tokens: u64, output_tokens: u64) -> Vec<Value> {
    let mut events =
        vec![json!({"type":"response.created","response":{"id":"resp_1","status":"in_progress"}})];
    events.extend(items.into_iter().flatten());
    events.push(
        json!({"type":"response.completed","response":{"id":"resp_1","status":"completed","usage":{
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }}}),
    );
    events
}
