//! Turn events end to end inside the core: a turn over the memory store leaves its event in the
//! outbox, and `EventDelivery` posts it, signed, to a receiver on loopback, then removes it,
//! reschedules it (5xx, 429, no answer) or drops it (other 4xx) as the retry policy says.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chatfn::agent::Agent;
use chatfn::clock::now_ms;
use chatfn::events::retry::Verdict;
use chatfn::events::{EventDelivery, Webhook, WebhookSecrets, turn_event_id};
use chatfn::model::offline::OfflineModel;
use chatfn::store::memory::MemoryStore;
use chatfn::store::{OutboxEvent, Session, Store};
use chatfn::turn::{ChatInput, ChatTrigger, MessagePayload, TurnRunner};
use chatfn::ui::{Role, UIMessage, UIPart};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver saw: each delivery's headers and body.
type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver answering `statuses` in turn (the last one from then on).
async fn receiver(statuses: Vec<u16>) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let answers = Arc::new(Mutex::new(statuses));
    let record = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let (record, answers) = (record.clone(), answers.clone());
            async move {
                record.lock().expect("lock").push((headers, body));
                let mut answers = answers.lock().expect("lock");
                let status = if answers.len() > 1 {
                    answers.remove(0)
                } else {
                    answers[0]
                };
                StatusCode::from_u16(status).expect("status")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), seen)
}

fn delivery(store: Arc<dyn Store>, url: &str) -> EventDelivery {
    let secrets = WebhookSecrets::parse(SECRET).expect("secret");
    EventDelivery::new(store, Arc::new(Webhook::new(url, secrets)))
}

fn event(id: &str) -> OutboxEvent {
    OutboxEvent {
        id: id.into(),
        chat_id: "chat-1".into(),
        body: r#"{"type":"turn.completed"}"#.into(),
        attempts: 0,
        next_attempt_ms: now_ms(),
    }
}

#[tokio::test]
async fn a_delivered_event_is_signed_and_removed() {
    let (url, seen) = receiver(vec![204]).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let events = delivery(store.clone(), &url);
    let sent = event("evt_1");
    events.enqueue(&sent).await.expect("enqueue");
    assert_eq!(
        events.attempt(&sent).await.expect("attempt"),
        Verdict::Delivered
    );
    assert!(
        store
            .due_events(u64::MAX, 10)
            .await
            .expect("due")
            .is_empty()
    );
    let seen = seen.lock().expect("lock");
    let (headers, body) = &seen[0];
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert_eq!(header("webhook-id"), "evt_1");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(body, &sent.body);
    let timestamp: u64 = header("webhook-timestamp").parse().expect("seconds");
    assert!(timestamp.abs_diff(now_ms() / 1000) < 60);
    let secrets = WebhookSecrets::parse(SECRET).expect("secret");
    assert_eq!(
        header("webhook-signature"),
        secrets.sign("evt_1", timestamp, body)
    );
}

#[tokio::test]
async fn failures_are_rescheduled_and_refusals_dropped() {
    let (url, seen) = receiver(vec![503, 429, 400]).await;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let events = delivery(store.clone(), &url);
    let sent = event("evt_2");
    events.enqueue(&sent).await.expect("enqueue");
    let before = now_ms();
    assert_eq!(
        events.attempt(&sent).await.expect("attempt"),
        Verdict::Retry
    );
    let kept = store.due_events(u64::MAX, 10).await.expect("due");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].attempts, 1);
    assert!(
        (before + 1_000..=now_ms() + 2_000).contains(&kept[0].next_attempt_ms),
        "{kept:?}"
    );
    assert!(
        events.sweep(10).await.expect("sweep").attempted == 0,
        "not due yet"
    );
    assert_eq!(
        events.attempt(&kept[0]).await.expect("attempt"),
        Verdict::Retry
    );
    let kept = store.due_events(u64::MAX, 10).await.expect("due");
    assert_eq!(kept[0].attempts, 2);
    assert_eq!(
        events.attempt(&kept[0]).await.expect("attempt"),
        Verdict::Refused
    );
    assert!(
        store
            .due_events(u64::MAX, 10)
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(seen.lock().expect("lock").len(), 3);
}

#[tokio::test]
async fn an_unreachable_receiver_is_tried_again() {
    // A port nobody listens on: bound, then let go.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    drop(listener);
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let events = delivery(store.clone(), &url);
    let sent = event("evt_3");
    events.enqueue(&sent).await.expect("enqueue");
    assert_eq!(
        events.attempt(&sent).await.expect("attempt"),
        Verdict::Retry
    );
    assert_eq!(
        store.due_events(u64::MAX, 10).await.expect("due")[0].attempts,
        1
    );
}

#[tokio::test]
async fn a_turn_leaves_its_event_and_sends_it_once_it_has_ended() {
    let (url, seen) = receiver(vec![503]).await;
    let store = Arc::new(MemoryStore::new());
    let agent = Arc::new(Agent::builder(Arc::new(OfflineModel::new())).build());
    let secrets = WebhookSecrets::parse(SECRET).expect("secret");
    let runner =
        TurnRunner::new(store.clone(), agent).with_webhook(Arc::new(Webhook::new(url, secrets)));
    let session = Session::new("chat-events", now_ms());
    let session_id = session.id.clone();
    store.create_session(session).await.expect("session");
    let mut message = UIMessage::new("u1", Role::User);
    message.parts.push(UIPart::text("hello"));
    let payload = MessagePayload {
        message: Some(message),
        chat_id: "chat-events".into(),
        trigger: ChatTrigger::SubmitMessage,
        message_id: None,
        metadata: None,
        extra: Default::default(),
    };
    let input = ChatInput::Message {
        payload: payload.clone(),
    };
    let seq = runner
        .record_input("chat-events", Some("part-1"), &input)
        .await
        .expect("input")
        .seq;
    let (_, task) = runner
        .start("chat-events", seq, payload)
        .await
        .expect("start");
    task.await;
    // Its one attempt failed (503): the event waits in the outbox for the sweeper.
    let waiting = store.due_events(u64::MAX, 10).await.expect("due");
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].id, turn_event_id(&session_id, Some(seq)));
    assert_eq!(waiting[0].attempts, 1);
    let body: serde_json::Value = serde_json::from_str(&waiting[0].body).expect("json");
    assert_eq!(body["type"], "turn.completed");
    assert_eq!(body["data"]["chatId"], "chat-events");
    assert_eq!(body["data"]["sessionId"], session_id.as_str());
    assert_eq!(body["data"]["recovered"], false);
    assert_eq!(seen.lock().expect("lock").len(), 1);
}
