//! The floor under the added time to first token: a server on chatfn's stack (Tokio on one
//! thread, axum, chatfn's model client and decoder) that does nothing but forward. `POST /api/chat`
//! calls the model and maps its text to UI message stream chunks: no token to check, no store, no
//! history, no agent. What it adds to the model's own time to first token is the price of the hops
//! between client, server and model on the machine (each process woken by the other's socket),
//! which any server that sits between the two pays; the bench reports it beside chatfn's figure.
//!
//!   PORT=0 MODEL_BASE_URL=http://127.0.0.1:9000/v1 bench-passthrough
//!
//! It prints `listening on http://…` once it serves, as the other servers under test do.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use chatfn::model::openai::OpenAiCompatible;
use chatfn::model::{AssistantContent, Model, ModelEvent, ModelMessage, ModelRequest, UserContent};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn main() -> std::process::ExitCode {
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("runtime: {error}"))
        .and_then(|runtime| runtime.block_on(serve()));
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-passthrough: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let model_url =
        std::env::var("MODEL_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:9000/v1".into());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(0);
    let model: Arc<dyn Model> = Arc::new(
        OpenAiCompatible::new(model_url, Some("bench".into()), "mock-model")
            .map_err(|error| format!("model: {error}"))?,
    );
    let app = Router::new().route(
        "/api/chat",
        post(move |request: Bytes| chat(model.clone(), request)),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|error| format!("bind: {error}"))?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("bind: {error}"))?;
    println!("listening on http://{address}");
    axum::serve(listener, app)
        .await
        .map_err(|error| format!("serve: {error}"))
}

/// Answers at once with the stream, as chatfn does, and calls the model behind it.
async fn chat(model: Arc<dyn Model>, request: Bytes) -> Response {
    let Some(messages) = model_messages(&request) else {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"the body is not a chat request"}"#,
        )
            .into_response();
    };
    let (chunks, received) = mpsc::channel::<Bytes>(64);
    tokio::spawn(forward(model, messages, chunks));
    let body = futures::stream::unfold(received, |mut received| async move {
        let chunk = received.recv().await?;
        Some((Ok::<_, Infallible>(chunk), received))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        [("x-vercel-ai-ui-message-stream", "v1")],
        Body::from_stream(body),
    )
        .into_response()
}

/// The text parts of the UI messages, as the model's messages.
fn model_messages(request: &[u8]) -> Option<Vec<ModelMessage>> {
    let request: Value = serde_json::from_slice(request).ok()?;
    let messages = request.get("messages")?.as_array()?;
    Some(
        messages
            .iter()
            .map(|message| {
                let text: String = message["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|part| part["type"] == "text")
                    .filter_map(|part| part["text"].as_str())
                    .collect();
                match message["role"].as_str() {
                    Some("assistant") => ModelMessage::Assistant {
                        content: vec![AssistantContent::Text { text }],
                    },
                    _ => ModelMessage::User {
                        content: vec![UserContent::Text { text }],
                    },
                }
            })
            .collect(),
    )
}

fn ui_chunk(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\n\n"))
}

async fn forward(model: Arc<dyn Model>, messages: Vec<ModelMessage>, chunks: mpsc::Sender<Bytes>) {
    // A send fails only when the client has gone: then there is no one to forward to.
    let send = |chunk: Bytes| chunks.send(chunk);
    if send(ui_chunk(&json!({"type": "start"}))).await.is_err() {
        return;
    }
    let request = ModelRequest {
        messages,
        ..ModelRequest::default()
    };
    let mut events = match model.stream(request).await {
        Ok(events) => events,
        Err(error) => {
            let error = format!("the model call failed: {error}");
            let _ = send(ui_chunk(&json!({"type": "error", "errorText": error}))).await;
            return;
        }
    };
    if send(ui_chunk(&json!({"type": "text-start", "id": "0"})))
        .await
        .is_err()
    {
        return;
    }
    while let Some(event) = events.next().await {
        match event {
            Ok(ModelEvent::TextDelta(delta)) => {
                let chunk = json!({"type": "text-delta", "id": "0", "delta": delta});
                if send(ui_chunk(&chunk)).await.is_err() {
                    return;
                }
            }
            Ok(ModelEvent::Finish { .. }) => break,
            Ok(_) => {}
            Err(error) => {
                let error = format!("the model's stream failed: {error}");
                let _ = send(ui_chunk(&json!({"type": "error", "errorText": error}))).await;
                return;
            }
        }
    }
    for chunk in [
        json!({"type": "text-end", "id": "0"}),
        json!({"type": "finish"}),
    ] {
        if send(ui_chunk(&chunk)).await.is_err() {
            return;
        }
    }
    let _ = send(Bytes::from_static(b"data: [DONE]\n\n")).await;
}
