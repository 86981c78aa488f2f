//! The Lambda host's streaming adapter, driven as `lambda_http` drives it: requests that carry a
//! Lambda context (with the invocation's deadline), responses read frame by frame. The offline
//! model, slowed down, stands in for a model that takes its time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatfn::agent::configured_agent;
use chatfn::auth::SecretKeys;
use chatfn::clock::now_ms;
use chatfn::config::Config;
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::offline::OfflineModel;
use chatfn::store::Store;
use chatfn::store::memory::MemoryStore;
use chatfn::turn::TurnRunner;
use chatfn_lambda::{InvocationBody, StreamingInvocations};
use http_body_util::BodyExt;
use lambda_http::{Context, RequestExt, Service};
use serde_json::{Value, json};

const SECRET: &str = "sk_lambda_host_test";

struct Host {
    service: StreamingInvocations,
    store: Arc<dyn Store>,
}

/// The agent-turn service over every route, with the offline model saying a word every
/// `word_delay`, stopping turns `stop` before the deadline and ending responses `end` before it.
fn host(word_delay: Duration, stop: Duration, end: Duration) -> Host {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = Config::from_lookup(|_| None).expect("config");
    let model = Arc::new(OfflineModel::new().with_word_delay(word_delay));
    let runner = TurnRunner::new(store.clone(), Arc::new(configured_agent(&config, model)));
    let keys = SecretKeys::parse(SECRET).expect("key");
    let app = App::new(HttpSettings::new(keys), runner.clone());
    Host {
        service: StreamingInvocations::new(router(app, Routes::All), runner)
            .with_margins(stop, end),
        store,
    }
}

/// A request as `lambda_http` hands it over; `deadline_ms` is the invocation's deadline.
fn request(
    method: &str,
    path: &str,
    bearer: &str,
    body: Option<Value>,
    deadline_ms: Option<u64>,
) -> lambda_http::Request {
    let body = body.map_or(lambda_http::Body::Empty, |b| {
        lambda_http::Body::Text(b.to_string())
    });
    let request = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://function.example{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    match deadline_ms {
        Some(deadline) => {
            let mut context = Context::default();
            context.deadline = deadline;
            request.with_lambda_context(context)
        }
        None => request,
    }
}

/// The whole response body, and when (after `since`) it ended.
async fn read_body(
    response: lambda_http::http::Response<InvocationBody>,
    since: Instant,
) -> (String, Duration) {
    let mut body = response.into_body();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            text.push_str(std::str::from_utf8(&data).expect("utf-8"));
        }
    }
    (text, since.elapsed())
}

async fn call(host: &mut Host, request: lambda_http::Request) -> (u16, String, Duration) {
    let started = Instant::now();
    let response = host.service.call(request).await.expect("infallible");
    let status = response.status().as_u16();
    let (text, took) = read_body(response, started).await;
    (status, text, took)
}

async fn session(host: &mut Host, chat_id: &str) -> String {
    let body = json!({"type": "chat.agent", "externalId": chat_id, "taskIdentifier": "chat"});
    let (status, text, _) = call(
        host,
        request("POST", "/api/v1/sessions", SECRET, Some(body), None),
    )
    .await;
    assert!(status == 201 || status == 200, "{status} {text}");
    let json: Value = serde_json::from_str(&text).expect("json");
    json["publicAccessToken"]
        .as_str()
        .expect("token")
        .to_owned()
}

fn user_message(text: &str) -> Value {
    json!({"id": format!("u-{text}"), "role": "user", "parts": [{"type": "text", "text": text}]})
}

/// The `type`s of the data events of a UI message stream.
fn chunk_types(sse: &str) -> Vec<String> {
    sse.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(|data| {
            if data == "[DONE]" {
                "[DONE]".to_owned()
            } else {
                let chunk: Value = serde_json::from_str(data).expect("chunk");
                chunk["type"].as_str().unwrap_or_default().to_owned()
            }
        })
        .collect()
}

fn text_of(message: &Value) -> String {
    message["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|part| part["type"] == "text")
        .filter_map(|part| part["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_turn_near_the_deadline_is_stopped_closed_and_persisted() {
    // A word every 100 ms: the offline reply takes several seconds.
    let mut host = host(
        Duration::from_millis(100),
        Duration::from_millis(2_000),
        Duration::from_millis(300),
    );
    let token = session(&mut host, "chat-deadline").await;
    // The invocation may run 3 s: the turn must stop after about 1 s.
    let deadline = now_ms() + 3_000;
    let body = json!({"id": "chat-deadline", "trigger": "submit-message", "messages": [user_message("hello")]});
    let (status, sse, took) = call(
        &mut host,
        request("POST", "/api/chat", &token, Some(body), Some(deadline)),
    )
    .await;
    assert_eq!(status, 200, "{sse}");
    let types = chunk_types(&sse);
    assert_eq!(types[0], "start");
    assert!(
        types.ends_with(&["abort".to_owned(), "[DONE]".to_owned()]),
        "the reply ends like a stopped one: {types:?}"
    );
    assert!(
        types.contains(&"text-end".to_owned()),
        "the open text part is closed: {types:?}"
    );
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(2_700),
        "the response ended after {took:?}; the turn should stop about 1 s in, before the deadline"
    );
    assert!(
        now_ms() < deadline,
        "the response ended before the deadline"
    );

    // The partial reply is persisted, and the chat is free: nothing left running.
    let messages = host
        .store
        .messages("chat-deadline")
        .await
        .expect("messages");
    let messages: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::to_value(m).expect("json"))
        .collect();
    assert_eq!(messages.len(), 2);
    let partial = text_of(&messages[1]);
    assert!(!partial.is_empty(), "the partial reply has text");
    assert!(partial.len() < 200, "the reply was cut short: {partial:?}");
    let lease = host.store.lease("chat-deadline").await.expect("lease");
    assert!(lease.is_none(), "the chat's lease is released: {lease:?}");
}

#[tokio::test]
async fn a_background_turn_keeps_the_response_open_until_it_is_persisted() {
    let mut host = host(
        Duration::from_millis(20),
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    session(&mut host, "chat-headless").await;
    // A server-side append (secret key) starts the turn in the background and answers at once.
    let body = json!({
        "kind": "message",
        "payload": {"chatId": "chat-headless", "trigger": "submit-message", "message": user_message("hi")},
    });
    let deadline = now_ms() + 60_000;
    let (status, text, took) = call(
        &mut host,
        request(
            "POST",
            "/realtime/v1/sessions/chat-headless/in/append",
            SECRET,
            Some(body),
            Some(deadline),
        ),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let json: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["ok"], true);
    // The body ended only once the turn had finished: the reply is already in the history.
    let messages = host
        .store
        .messages("chat-headless")
        .await
        .expect("messages");
    assert_eq!(
        messages.len(),
        2,
        "the reply is persisted when the response ends"
    );
    let reply = serde_json::to_value(&messages[1]).expect("json");
    assert!(text_of(&reply).contains("offline model"), "{reply}");
    assert!(
        took > Duration::from_millis(20 * 20),
        "the response waited for the turn ({took:?})"
    );
    assert!(
        host.store
            .lease("chat-headless")
            .await
            .expect("lease")
            .is_none()
    );
}

#[tokio::test]
async fn a_reader_still_following_ends_before_the_deadline() {
    let mut host = host(
        Duration::from_millis(10),
        Duration::from_millis(1_000),
        Duration::from_millis(500),
    );
    let token = session(&mut host, "chat-reader").await;
    // An `out` reader asks to wait a minute for output; the invocation has 1.5 s.
    let deadline = now_ms() + 1_500;
    let mut read = request(
        "GET",
        "/realtime/v1/sessions/chat-reader/out",
        &token,
        None,
        Some(deadline),
    );
    read.headers_mut()
        .insert("timeout-seconds", "60".parse().expect("header"));
    let (status, _events, took) = call(&mut host, read).await;
    assert_eq!(status, 200);
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_millis(1_500),
        "the stream ended after {took:?}: expected shortly before the deadline"
    );
}

#[tokio::test]
async fn a_request_without_a_deadline_is_served_as_usual() {
    let mut host = host(
        Duration::from_millis(0),
        Duration::from_secs(10),
        Duration::from_secs(1),
    );
    let token = session(&mut host, "chat-plain").await;
    let body = json!({"id": "chat-plain", "trigger": "submit-message", "messages": [user_message("hello")]});
    let (status, sse, _) = call(
        &mut host,
        request("POST", "/api/chat", &token, Some(body), None),
    )
    .await;
    assert_eq!(status, 200);
    let types = chunk_types(&sse);
    assert!(
        types.ends_with(&["finish".to_owned(), "[DONE]".to_owned()]),
        "{types:?}"
    );
    let (status, text, _) = call(&mut host, request("GET", "/nope", &token, None, None)).await;
    assert_eq!(status, 404);
    assert!(text.contains("not_found"));
}
