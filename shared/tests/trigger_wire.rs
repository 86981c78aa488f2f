//! The Trigger.dev chat session wire over loopback HTTP, with the offline model.

#[path = "support/app.rs"]
mod app;

use std::sync::Arc;
use std::time::Duration;

use app::{SECRET, TestApp, stock_agent};
use chatfn::model::offline::OfflineModel;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn offline(delay_ms: u64) -> chatfn::agent::Agent {
    stock_agent(Arc::new(
        OfflineModel::new().with_word_delay(Duration::from_millis(delay_ms)),
    ))
}

fn message_input(chat_id: &str, id: &str, text: &str) -> Value {
    json!({"kind": "message", "payload": {
        "message": {"id": id, "role": "user", "parts": [{"type": "text", "text": text}]},
        "chatId": chat_id, "trigger": "submit-message"
    }})
}

async fn append(
    app: &TestApp,
    token: &str,
    chat_id: &str,
    part: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(format!(
            "{}/realtime/v1/sessions/{chat_id}/in/append",
            app.base
        ))
        .bearer_auth(token)
        .header("x-part-id", part)
        .json(body)
        .send()
        .await
        .expect("append")
}

/// One record of an `event: batch`.
#[derive(Debug, Clone)]
struct Record {
    seq: u64,
    chunk: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Record {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_turn_complete(&self) -> bool {
        self.header("trigger-control") == Some("turn-complete")
    }
}

/// Reads `out` until a turn-complete (or the end of the body).
async fn read_out(
    app: &TestApp,
    token: &str,
    chat_id: &str,
    last_event_id: Option<u64>,
    extra: &[(&str, &str)],
) -> (reqwest::header::HeaderMap, Vec<Record>) {
    let mut request = app
        .client
        .get(format!("{}/realtime/v1/sessions/{chat_id}/out", app.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("timeout-seconds", "2");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("out");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let mut records = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Ok(Some(Ok(bytes))) = tokio::time::timeout(Duration::from_secs(20), body.next()).await
    {
        buffer.push_str(std::str::from_utf8(&bytes).expect("utf-8"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let Some(data) = event.strip_prefix("event: batch\ndata: ") else {
                continue;
            };
            let batch: Value = serde_json::from_str(data.trim_end()).expect("batch JSON");
            for record in batch["records"].as_array().expect("records") {
                let body = record["body"].as_str().expect("string body");
                let record_headers = record["headers"]
                    .as_array()
                    .map(|pairs| {
                        pairs
                            .iter()
                            .map(|p| {
                                (
                                    p[0].as_str().unwrap_or_default().to_owned(),
                                    p[1].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let chunk = (!body.is_empty()).then(|| {
                    let wrapped: Value = serde_json::from_str(body).expect("body JSON");
                    assert!(wrapped["id"].is_string(), "data records carry an id");
                    wrapped["data"].clone()
                });
                let record = Record {
                    seq: record["seq_num"].as_u64().expect("seq"),
                    chunk,
                    headers: record_headers,
                };
                let done = record.is_turn_complete();
                records.push(record);
                if done {
                    return (headers, records);
                }
            }
        }
    }
    (headers, records)
}

#[tokio::test]
async fn an_append_then_a_read_runs_the_turn_and_ends_with_turn_complete() {
    let app = TestApp::start(offline(0)).await;
    let token = app.session("t-basic").await;
    let response = append(
        &app,
        &token,
        "t-basic",
        "p1",
        &message_input("t-basic", "u1", "hello"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body, json!({"ok": true, "seq": 0}));

    let (headers, records) = read_out(&app, &token, "t-basic", None, &[]).await;
    assert_eq!(headers["x-stream-version"], "v2");
    let first = records[0].chunk.clone().expect("a chunk");
    assert_eq!(first["type"], "start");
    let last = records.last().expect("records");
    assert!(last.is_turn_complete());
    assert_eq!(last.header("session-in-event-id"), Some("0"));
    assert!(
        last.header("public-access-token")
            .is_some_and(|t| t.split('.').count() == 3)
    );
    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..records.len() as u64).collect::<Vec<_>>());

    // Resuming after any record replays exactly the rest.
    let (_, rest) = read_out(&app, &token, "t-basic", Some(3), &[]).await;
    assert_eq!(rest.first().map(|r| r.seq), Some(4));
    assert_eq!(rest.len(), records.len() - 4);

    // Settled: the peek answers at once with the header and no records.
    let (headers, none) = read_out(
        &app,
        &token,
        "t-basic",
        Some(last.seq),
        &[("x-peek-settled", "1")],
    )
    .await;
    assert_eq!(headers["x-session-settled"], "true");
    assert!(none.is_empty());
}

#[tokio::test]
async fn the_second_turn_continues_the_sequence_and_the_history() {
    let app = TestApp::start(offline(0)).await;
    let token = app.session("t-two").await;
    append(
        &app,
        &token,
        "t-two",
        "p1",
        &message_input("t-two", "u1", "first"),
    )
    .await;
    let (_, first) = read_out(&app, &token, "t-two", None, &[]).await;
    let cursor = first.last().map(|r| r.seq);
    let body: Value = append(
        &app,
        &token,
        "t-two",
        "p2",
        &message_input("t-two", "u2", "second"),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(body["seq"], 1);
    let (_, second) = read_out(&app, &token, "t-two", cursor, &[]).await;
    assert_eq!(second[0].seq, cursor.map_or(0, |c| c + 1));
    assert_eq!(
        second.last().and_then(|r| r.header("session-in-event-id")),
        Some("1")
    );
    assert_eq!(app.messages(&token, "t-two").await.len(), 4);
}

#[tokio::test]
async fn a_repeated_part_id_is_one_input_and_one_turn() {
    let app = TestApp::start(offline(0)).await;
    let token = app.session("t-dup").await;
    let input = message_input("t-dup", "u1", "once");
    let a: Value = append(&app, &token, "t-dup", "same", &input)
        .await
        .json()
        .await
        .expect("json");
    let b: Value = append(&app, &token, "t-dup", "same", &input)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(a["seq"], b["seq"]);
    let (_, records) = read_out(&app, &token, "t-dup", None, &[]).await;
    assert_eq!(records.iter().filter(|r| r.is_turn_complete()).count(), 1);
    assert_eq!(app.messages(&token, "t-dup").await.len(), 2);
}

#[tokio::test]
async fn stop_ends_the_turn_with_a_boundary_and_the_chat_goes_on() {
    let app = TestApp::start(offline(40)).await;
    let token = app.session("t-stop").await;
    append(
        &app,
        &token,
        "t-stop",
        "p1",
        &message_input("t-stop", "u1", "talk a while"),
    )
    .await;
    let reader = {
        let app_base = app.base.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            client
                .get(format!("{app_base}/realtime/v1/sessions/t-stop/out"))
                .bearer_auth(token)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop: Value = append(&app, &token, "t-stop", "p-stop", &json!({"kind": "stop"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stop["ok"], true);
    drop(reader);
    let (_, records) = read_out(&app, &token, "t-stop", None, &[]).await;
    let kinds: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.chunk
                .as_ref()
                .map(|c| c["type"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert_eq!(kinds.last().map(String::as_str), Some("abort"));
    assert!(records.last().is_some_and(Record::is_turn_complete));
    let cursor = records.last().map(|r| r.seq);
    append(
        &app,
        &token,
        "t-stop",
        "p2",
        &message_input("t-stop", "u2", "again"),
    )
    .await;
    let (_, next) = read_out(&app, &token, "t-stop", cursor, &[]).await;
    assert!(
        next.iter()
            .any(|r| r.chunk.as_ref().is_some_and(|c| c["type"] == "finish"))
    );
}

#[tokio::test]
async fn a_server_side_append_runs_headless() {
    let app = TestApp::start(offline(0)).await;
    let token = app.session("t-headless").await;
    let response = append(
        &app,
        SECRET,
        "t-headless",
        "bg",
        &message_input("t-headless", "u1", "background"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut done = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if app.messages(&token, "t-headless").await.len() == 2 {
            done = true;
            break;
        }
    }
    assert!(done, "the headless turn did not finish");
    let (_, records) = read_out(&app, &token, "t-headless", None, &[]).await;
    assert!(records.last().is_some_and(Record::is_turn_complete));
}

#[tokio::test]
async fn wire_errors_have_the_documented_statuses() {
    let app = TestApp::start(offline(0)).await;
    let token = app.session("t-err").await;
    let other = app.session("t-other").await;
    let input = message_input("t-err", "u1", "hi");
    let status = |r: reqwest::Response| r.status();
    assert_eq!(
        status(append(&app, &other, "t-err", "p", &input).await),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(append(&app, "forged.token.x", "t-err", "p", &input).await),
        StatusCode::UNAUTHORIZED
    );
    let read_only = {
        let keys = chatfn::auth::SecretKeys::parse(SECRET).expect("key");
        chatfn::auth::SessionToken::mint_with_scopes(
            &keys,
            "t",
            vec!["read:sessions:t-err".into()],
            chatfn::clock::now_ms() / 1000,
            60,
        )
    };
    assert_eq!(
        status(append(&app, &read_only, "t-err", "p", &input).await),
        StatusCode::FORBIDDEN
    );
    let unknown = app.token_for("t-unknown", 60);
    assert_eq!(
        status(
            append(
                &app,
                &unknown,
                "t-unknown",
                "p",
                &message_input("t-unknown", "u", "x")
            )
            .await
        ),
        StatusCode::NOT_FOUND
    );
    let huge = message_input("t-err", "u1", &"x".repeat(1024 * 1024 + 10));
    assert_eq!(
        status(append(&app, &token, "t-err", "p", &huge).await),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let bad = app
        .client
        .post(format!("{}/realtime/v1/sessions/t-err/in/append", app.base))
        .bearer_auth(&token)
        .body("{nope")
        .send()
        .await
        .expect("append");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let closed = app
        .client
        .post(format!("{}/api/v1/sessions/t-err/close", app.base))
        .bearer_auth(SECRET)
        .json(&json!({"reason": "done"}))
        .send()
        .await
        .expect("close");
    assert_eq!(closed.status(), StatusCode::OK);
    let refused = append(&app, &token, "t-err", "p9", &input).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(refused.headers()["x-should-retry"], "false");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "session_closed");
    assert_eq!(body["closedReason"], "done");
}

#[tokio::test]
async fn the_claims_route_feeds_locally_signed_tokens() {
    let app = TestApp::start(offline(0)).await;
    let claims: Value = app
        .client
        .post(format!("{}/api/v1/auth/jwt/claims", app.base))
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("claims")
        .json()
        .await
        .expect("json");
    assert_eq!(claims["pub"], true);
    assert!(claims["sub"].is_string());
    let minted: Value = app
        .client
        .post(format!("{}/api/v1/auth/public-tokens", app.base))
        .bearer_auth(SECRET)
        .json(&json!({"scopes": ["read:sessions:t-tok", "write:sessions:t-tok"], "expirationTime": "1h"}))
        .send()
        .await
        .expect("public token")
        .json()
        .await
        .expect("json");
    app.session("t-tok").await;
    let token = minted["token"].as_str().expect("token");
    assert!(app.messages(token, "t-tok").await.is_empty());
}
