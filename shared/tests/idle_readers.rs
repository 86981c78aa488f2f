//! Trigger-wire `out` readers waiting on a quiet chat, where the process is the store's only
//! writer (the local server, a Durable Object): they wait for the process's wake-ups instead of
//! reading the store ten times a second, and an input appended here still starts its turn at once.
//! Past the readers one chat may have open, a new one gets 429.

#[path = "support/counting_store.rs"]
mod counting_store;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chatfn::agent::configured_agent;
use chatfn::auth::SecretKeys;
use chatfn::config::Config;
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::offline::OfflineModel;
use chatfn::turn::TurnRunner;
use counting_store::CountingStore;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const SECRET: &str = "sk_idle_readers_0123456789";
const CHAT: &str = "chat-idle";

fn app(store: Arc<CountingStore>, sole_writer: bool) -> Router {
    let config = Config::from_lookup(|_| None).expect("config");
    let model = Arc::new(OfflineModel::new().with_word_delay(Duration::ZERO));
    let mut runner = TurnRunner::new(store, Arc::new(configured_agent(&config, model)));
    if sole_writer {
        runner = runner.with_sole_writer();
    }
    let keys = SecretKeys::parse(SECRET).expect("key");
    router(App::new(HttpSettings::new(keys), runner), Routes::All)
}

fn post(path: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// Opens an `out` reader of the chat; its events land in the returned text as they come.
async fn open_reader(router: &Router) -> Arc<Mutex<String>> {
    let request = Request::get(format!("/realtime/v1/sessions/{CHAT}/out"))
        .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
        .header("timeout-seconds", "20")
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let mut body = response.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&data));
            }
        }
    });
    text
}

/// Output-log reads of one idle reader over three seconds.
async fn idle_reads(sole_writer: bool) -> (Router, Arc<CountingStore>, Arc<Mutex<String>>, usize) {
    let store = CountingStore::new();
    let router = app(store.clone(), sole_writer);
    let created = router
        .clone()
        .oneshot(post(
            "/api/v1/sessions",
            json!({"type": "chat.agent", "externalId": CHAT}),
        ))
        .await
        .expect("infallible");
    assert_eq!(created.status(), StatusCode::CREATED);
    let events = open_reader(&router).await;
    let before = store.output_reads();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reads = store.output_reads() - before;
    (router, store, events, reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reader_waits_for_a_wake_and_an_append_still_starts_its_turn_at_once() {
    let (router, _store, events, reads) = idle_reads(true).await;
    // Looks at 0.2, 0.6, 1.4 and 3.0 s; polling looks every 0.1 s (30 looks).
    assert!(reads <= 8, "{reads} reads of the log in 3 s");

    let appended = Instant::now();
    let message = json!({"kind": "message", "payload": {
        "message": {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]},
        "chatId": CHAT,
        "trigger": "submit-message",
    }});
    let response = router
        .clone()
        .oneshot(post(
            &format!("/realtime/v1/sessions/{CHAT}/in/append"),
            message,
        ))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    loop {
        if events.lock().expect("lock").contains("text-delta") {
            break;
        }
        assert!(
            appended.elapsed() < Duration::from_millis(500),
            "the reply had not started {:?} after the append: {}",
            appended.elapsed(),
            events.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_another_process_may_write_the_reader_keeps_looking_ever_less_often() {
    let (_router, _store, _events, reads) = idle_reads(false).await;
    // Nothing wakes it: it looks at 0, 0.2, 0.6, 1.4 and 3.0 s, then up to 8 s apart (the first
    // and the last may fall outside the 3 s counted); polling looked 30 times.
    assert!((2..=8).contains(&reads), "{reads} reads of the log in 3 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_past_the_chats_cap_get_429_until_one_leaves() {
    let store = CountingStore::new();
    let config = Config::from_lookup(|_| None).expect("config");
    let model = Arc::new(OfflineModel::new().with_word_delay(Duration::ZERO));
    let runner = TurnRunner::new(store, Arc::new(configured_agent(&config, model)));
    let mut settings = HttpSettings::new(SecretKeys::parse(SECRET).expect("key"));
    settings.max_readers_per_chat = 2;
    let router = router(App::new(settings, runner), Routes::All);
    let created = router
        .clone()
        .oneshot(post(
            "/api/v1/sessions",
            json!({"type": "chat.agent", "externalId": CHAT}),
        ))
        .await
        .expect("infallible");
    assert_eq!(created.status(), StatusCode::CREATED);
    let read = || {
        Request::get(format!("/realtime/v1/sessions/{CHAT}/out"))
            .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
            .header("timeout-seconds", "20")
            .body(Body::empty())
            .expect("request")
    };
    let first = router.clone().oneshot(read()).await.expect("infallible");
    let _second = router.clone().oneshot(read()).await.expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
    let refused = router.clone().oneshot(read()).await.expect("infallible");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body = refused
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["code"], "too_many_readers", "{body}");

    // The first reader's client leaves: its slot comes back.
    drop(first);
    let started = Instant::now();
    loop {
        let again = router.clone().oneshot(read()).await.expect("infallible");
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the slot did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
