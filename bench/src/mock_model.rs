//! The model both servers call: an OpenAI-compatible `POST /v1/chat/completions` that streams a
//! fixed number of tokens at a fixed rate after a fixed time to first token. Both servers get the
//! same stream, so what the driver measures beyond it is what each server adds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;

/// The stream the mock answers every request with.
#[derive(Debug, Clone, Copy)]
pub struct ModelScript {
    /// Text tokens per reply.
    pub tokens: usize,
    /// Time to the first token.
    pub first_token: Duration,
    /// Time between tokens.
    pub interval: Duration,
}

/// The running mock.
#[derive(Clone)]
pub struct MockModel {
    /// Its base URL (`…/v1`).
    pub url: String,
    /// For each request, in order, the mock's own time to first token as it happened: from its
    /// handler being called to the first token handed to the connection. A timer fires late by
    /// up to a millisecond, so this is what a server's added time is measured against.
    first_tokens: Arc<Mutex<Vec<Duration>>>,
    /// When each request reached the mock's handler, in order: where a server's work before the
    /// model call ends.
    requests: Arc<Mutex<Vec<Instant>>>,
}

impl MockModel {
    /// When the requests since the last call reached the mock.
    pub fn take_requests(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The own time to first token of the requests since the last call.
    pub fn take_first_tokens(&self) -> Vec<Duration> {
        std::mem::take(
            &mut *self
                .first_tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// Starts the mock on a free loopback port.
pub async fn start(script: ModelScript) -> std::io::Result<MockModel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let first_tokens = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let record = first_tokens.clone();
    let arrivals = requests.clone();
    let app = Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let record = record.clone();
            let received = Instant::now();
            arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(received);
            async move { completion(script, received, record) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(MockModel {
        url: format!("http://{address}/v1"),
        first_tokens,
        requests,
    })
}

/// The SSE event of one chunk.
fn event(delta: &str, finish: Option<&str>, usage: Option<(usize, usize)>) -> Bytes {
    let mut chunk = serde_json::json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "mock-model",
        "choices": [{"index": 0, "delta": serde_json::from_str::<serde_json::Value>(delta).unwrap_or_default(), "finish_reason": finish}],
    });
    if let Some((prompt, completion)) = usage {
        chunk["usage"] = serde_json::json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        });
    }
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn completion(
    script: ModelScript,
    received: Instant,
    first_tokens: Arc<Mutex<Vec<Duration>>>,
) -> Response {
    let stream = async_stream(script, received, first_tokens);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn async_stream(
    script: ModelScript,
    received: Instant,
    first_tokens: Arc<Mutex<Vec<Duration>>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold(0usize, move |step| {
        let first_tokens = first_tokens.clone();
        async move {
            let total = script.tokens;
            let bytes = match step {
                0 => {
                    tokio::time::sleep(script.first_token).await;
                    let bytes = event(r#"{"role":"assistant","content":"tok0 "}"#, None, None);
                    first_tokens
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(received.elapsed());
                    bytes
                }
                n if n < total => {
                    tokio::time::sleep(script.interval).await;
                    event(&format!(r#"{{"content":"tok{n} "}}"#), None, None)
                }
                n if n == total => event("{}", Some("stop"), Some((10, total))),
                n if n == total + 1 => Bytes::from_static(b"data: [DONE]\n\n"),
                _ => return None,
            };
            Some((Ok(bytes), step + 1))
        }
    })
}
