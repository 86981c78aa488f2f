//! The Anthropic Messages provider over real HTTP against a local stand-in of the API: a tool
//! call and its follow-up through the whole engine, and the API's errors.

#[path = "support/app.rs"]
mod app;

use std::sync::{Arc, Mutex};

use app::{TestApp, read_events, stock_agent, submit, user_message};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use chatfn::model::anthropic::Anthropic;
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {e}\n\n",
                e["type"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

async fn messages_api(seen: Seen, headers: HeaderMap, body: Value) -> axum::response::Response {
    let has_result = body.to_string().contains("tool_result");
    seen.0.lock().expect("lock").push((headers, body.clone()));
    if body["model"] == "overloaded-model" {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too large"}});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let events = if has_result {
        vec![
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "You rolled well."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
            json!({"type": "message_stop"}),
        ]
    } else {
        vec![
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 20, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "roll_dice", "input": {}}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"count\": "}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "2}"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
            json!({"type": "message_stop"}),
        ]
    };
    ([("content-type", "text/event-stream")], sse(&events)).into_response()
}

async fn api() -> (String, Seen) {
    let seen = Seen::default();
    let state = seen.clone();
    let router = axum::Router::new().route(
        "/v1/messages",
        post(
            move |headers: HeaderMap, axum::Json(body): axum::Json<Value>| {
                messages_api(state.clone(), headers, body)
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, seen)
}

#[tokio::test]
async fn a_tool_call_and_its_follow_up_run_through_the_engine() {
    let (base, seen) = api().await;
    let model = Anthropic::new(base, "sk-ant-test", "claude-test").expect("client");
    let app = TestApp::start(stock_agent(Arc::new(model))).await;
    let token = app.session("a-tools").await;
    let events = read_events(
        app.send(
            &token,
            submit("a-tools", vec![user_message("u1", "roll two")]),
        )
        .await,
        None,
    )
    .await;
    let kinds = app::kinds(&events);
    assert!(
        kinds.contains(&"tool-output-available".to_owned()),
        "{kinds:?}"
    );
    assert_eq!(kinds[kinds.len() - 2..], ["finish", "[DONE]"]);
    let seen = seen.0.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    let (headers, first) = &seen[0];
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    // Prompt caching is on by default: the instructions, the tools and the history so far each
    // end in a breakpoint.
    assert_eq!(first["system"][0]["cache_control"]["type"], "ephemeral");
    assert_eq!(first["tools"][1]["cache_control"]["type"], "ephemeral");
    assert_eq!(first["tools"].as_array().map(Vec::len), Some(2));
    let (_, second) = &seen[1];
    let last = second["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .expect("messages");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_1");
    let messages = app.messages(&token, "a-tools").await;
    let parts = messages[1]["parts"].as_array().cloned().unwrap_or_default();
    assert!(
        parts
            .iter()
            .any(|p| p["type"] == "tool-roll_dice" && p["input"] == json!({"count": 2}))
    );
    assert!(parts.iter().any(|p| p["text"] == "You rolled well."));
}

#[tokio::test]
async fn api_errors_reach_the_client_with_their_message() {
    let (base, _) = api().await;
    let model = Anthropic::new(base, "sk-ant-test", "overloaded-model").expect("client");
    let app = TestApp::start(stock_agent(Arc::new(model))).await;
    let token = app.session("a-error").await;
    let events = read_events(
        app.send(&token, submit("a-error", vec![user_message("u1", "hi")]))
            .await,
        None,
    )
    .await;
    let error = events
        .iter()
        .find(|e| e.data != "[DONE]" && e.kind() == "error")
        .map(|e| {
            e.chunk()["errorText"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .expect("an error chunk");
    assert!(
        error.contains("400") && error.contains("max_tokens: too large"),
        "{error}"
    );
}
