//! A rate-limited model call is retried after the wait the provider asked for
//! (`retry-after-ms`, `Retry-After`), through the whole engine.

#[path = "support/app.rs"]
mod app;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::{TestApp, read_events, stock_agent, submit, user_message};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chatfn::model::openai::OpenAiCompatible;
use serde_json::json;

/// Answers the first call with a 429 asking for `header: value`, the next with a short reply;
/// records when each call came.
async fn rate_limited_once(
    header: &'static str,
    value: &'static str,
) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                let number = {
                    let mut calls = seen.lock().expect("lock");
                    calls.push(Instant::now());
                    calls.len()
                };
                if number == 1 {
                    let error = json!({"error": {"message": "Rate limit reached", "type": "requests"}});
                    return (StatusCode::TOO_MANY_REQUESTS, [(header, value)], axum::Json(error))
                        .into_response();
                }
                let chunk = json!({"choices": [{"index": 0, "delta": {"content": "Hello."}, "finish_reason": "stop"}],
                                   "usage": {"prompt_tokens": 3, "completion_tokens": 2}});
                let body = format!("data: {chunk}\n\ndata: [DONE]\n\n");
                ([("content-type", "text/event-stream")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, calls)
}

async fn waited(header: &'static str, value: &'static str) -> Duration {
    let (base, calls) = rate_limited_once(header, value).await;
    let model = OpenAiCompatible::new(base, Some("sk-test".into()), "gpt-test").expect("client");
    let app = TestApp::start(stock_agent(Arc::new(model))).await;
    let token = app.session("retry").await;
    let events = read_events(
        app.send(&token, submit("retry", vec![user_message("u1", "hi")]))
            .await,
        None,
    )
    .await;
    let kinds = app::kinds(&events);
    assert!(!kinds.contains(&"error".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"text-delta".to_owned()), "{kinds:?}");
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2, "one retry");
    calls[1] - calls[0]
}

#[tokio::test]
async fn the_wait_the_provider_asks_for_is_honoured_with_a_little_jitter() {
    let waited_ms = waited("retry-after-ms", "600").await;
    assert!(
        waited_ms >= Duration::from_millis(600) && waited_ms < Duration::from_millis(1200),
        "{waited_ms:?}"
    );
    let waited_s = waited("retry-after", "1").await;
    assert!(
        waited_s >= Duration::from_secs(1) && waited_s < Duration::from_millis(1700),
        "{waited_s:?}"
    );
}
