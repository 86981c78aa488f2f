//! A Trigger-wire `out` reader idle on DynamoDB Local, where other processes (Lambda instances)
//! write too and nothing wakes it: it looks at the chat ever less often while no turn runs, and a
//! turn started later by another instance still reaches it.
//!
//! Needs `AWS_ENDPOINT_URL_DYNAMODB` (`eval "$(bash scripts/dynamodb-local.sh start)"`). The idle
//! wait lasts 4 s; `CHATFN_IDLE_READER_SECONDS=60` makes it a minute and, with `--nocapture`,
//! prints the calls and read units per idle reader per minute (the figure in docs/benchmarks.md).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{Credentials, Region};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chatfn::agent::configured_agent;
use chatfn::auth::SecretKeys;
use chatfn::config::Config;
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::offline::OfflineModel;
use chatfn::store::dynamodb::DynamoStore;
use chatfn::turn::TurnRunner;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const SECRET: &str = "sk_idle_readers_0123456789";
const CHAT: &str = "chat-idle-dynamodb";

async fn client() -> Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: start DynamoDB Local with \
         `eval \"$(bash scripts/dynamodb-local.sh start)\"`"
    );
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .load()
        .await;
    Client::new(&config)
}

/// One Lambda instance's app on `table`, with the store handle whose calls it counts.
async fn instance(table: &str) -> (Router, Arc<DynamoStore>) {
    let store = Arc::new(DynamoStore::new(client().await, table));
    let config = Config::from_lookup(|_| None).expect("config");
    let model = Arc::new(OfflineModel::new().with_word_delay(Duration::ZERO));
    let runner = TurnRunner::new(store.clone(), Arc::new(configured_agent(&config, model)));
    let keys = SecretKeys::parse(SECRET).expect("key");
    let app = router(App::new(HttpSettings::new(keys), runner), Routes::All);
    (app, store)
}

fn post(path: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// Opens an `out` reader held up to `timeout_seconds`; its events land in the returned text.
async fn open_reader(router: &Router, timeout_seconds: u64) -> Arc<Mutex<String>> {
    let request = Request::get(format!("/realtime/v1/sessions/{CHAT}/out"))
        .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
        .header("timeout-seconds", timeout_seconds.to_string())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_reader_backs_off_and_still_gets_a_turn_started_elsewhere() {
    let idle_seconds: u64 = std::env::var("CHATFN_IDLE_READER_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(4);
    let table = format!("chatfn-idle-{}", uuid::Uuid::new_v4().simple());
    let (reading, store) = instance(&table).await;
    store.create_table().await.expect("create the table");
    let (writing, _) = instance(&table).await;
    let created = reading
        .clone()
        .oneshot(post(
            "/api/v1/sessions",
            json!({"type": "chat.agent", "externalId": CHAT}),
        ))
        .await
        .expect("infallible");
    assert_eq!(created.status(), StatusCode::CREATED);

    let before = store.capacity().snapshot();
    let events = open_reader(&reading, idle_seconds + 30).await;
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle = store.capacity().snapshot() - before;
    let per_minute = 60.0 / idle_seconds as f64;
    println!(
        "one idle reader over {idle_seconds} s: {} calls, {:.1} read units \
         ({:.0} calls and {:.1} read units a minute)",
        idle.calls,
        idle.read_units,
        idle.calls as f64 * per_minute,
        idle.read_units * per_minute,
    );
    // Looks at 0, 0.2, 0.6, 1.4, 3.0, 6.2 and 12.6 s, then every 8 s, four calls each (the first look
    // and the request's own reads take a few more); polling every 0.1 s made 6 calls a look,
    // some 240 in 4 s.
    let looks = 5 + idle_seconds.saturating_sub(3).div_ceil(5);
    assert!(
        idle.calls <= looks * 6,
        "{} calls in {idle_seconds} s of an idle read",
        idle.calls
    );

    // Another instance starts a turn (an append with the secret key runs it there): the idle
    // reader notices it at its next look, at most 8 s on, and reads it from the log.
    let message = json!({"kind": "message", "payload": {
        "message": {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]},
        "chatId": CHAT,
        "trigger": "submit-message",
    }});
    let appended = Instant::now();
    let response = writing
        .clone()
        .oneshot(post(
            &format!("/realtime/v1/sessions/{CHAT}/in/append"),
            message,
        ))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    loop {
        let text = events.lock().expect("lock").clone();
        if text.contains("turn-complete") {
            assert!(text.contains("text-delta"), "{text}");
            break;
        }
        assert!(
            appended.elapsed() < Duration::from_secs(12),
            "the turn had not reached the idle reader {:?} after the append: {text}",
            appended.elapsed(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "the turn started elsewhere reached the idle reader in {:?}",
        appended.elapsed()
    );
    let _ = client()
        .await
        .delete_table()
        .table_name(&table)
        .send()
        .await;
}
