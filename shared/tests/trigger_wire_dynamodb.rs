//! The Trigger wire's DynamoDB calls before the model is asked, counted at a proxy in front of
//! DynamoDB Local: the append reads the session and the input log's end side by side, then
//! writes the part id's claim and the record; the `out` reader that finds the input waiting
//! claims its turn from one view of the chat (the session, the head item, the input log's tail,
//! the output log's end, the history), then takes the lease, and asks the model.
//!
//! Needs `AWS_ENDPOINT_URL_DYNAMODB` (`eval "$(bash scripts/dynamodb-local.sh start)"`).

#[path = "support/app.rs"]
mod app;
#[path = "support/fault_proxy.rs"]
mod fault_proxy;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::config::{Credentials, Region};
use chatfn::agent::Agent;
use chatfn::model::offline::OfflineModel;
use chatfn::model::{Model, ModelError, ModelRequest, ModelStream};
use chatfn::store::dynamodb::DynamoStore;
use fault_proxy::{Fault, FaultProxy};
use serde_json::json;

const CHAT: &str = "chat-trigger-calls";

/// The DynamoDB operations that reached the proxy, in order.
type Calls = Arc<Mutex<Vec<String>>>;

/// How long the proxy holds the append's session read: a read made beside it arrives well
/// within it, one made after it cannot arrive before it has passed.
const HELD: Duration = Duration::from_secs(1);

/// The offline model, noting how many DynamoDB calls had reached the proxy when it was asked.
struct NotingModel {
    inner: OfflineModel,
    calls: Calls,
    asked_after: Arc<Mutex<Option<usize>>>,
}

#[async_trait]
impl Model for NotingModel {
    fn id(&self) -> String {
        self.inner.id()
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        let seen = self.calls.lock().unwrap().len();
        self.asked_after.lock().unwrap().get_or_insert(seen);
        self.inner.stream(request).await
    }
}

/// `calls` sorted, to hold side-by-side calls (whose order is the network's) against a list.
fn sorted(calls: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = calls.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_of_the_trigger_wire_reads_then_writes_before_the_model_is_asked() {
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(
        !upstream.is_empty(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: start DynamoDB Local with \
         `eval \"$(bash scripts/dynamodb-local.sh start)\"`"
    );
    let proxy = FaultProxy::start(&upstream).await;
    let calls: Calls = Arc::default();
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let hold_reads = Arc::new(AtomicBool::new(false));
    let (noted, arrived, held) = (calls.clone(), arrivals.clone(), hold_reads.clone());
    proxy.set_schedule(move |call| {
        noted.lock().unwrap().push(call.operation.clone());
        arrived.lock().unwrap().push(Instant::now());
        match held.load(Ordering::SeqCst) && call.operation == "GetItem" {
            true => Fault::Delay(HELD),
            false => Fault::Pass,
        }
    });
    let config = DynamoStore::sdk_config()
        .endpoint_url(proxy.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "calls"))
        .load()
        .await;
    let table = format!("chatfn-trigger-calls-{}", uuid::Uuid::new_v4().simple());
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        &table,
    ));
    store.create_table().await.expect("create the table");
    let asked_after = Arc::new(Mutex::new(None));
    let model = NotingModel {
        inner: OfflineModel::new().with_word_delay(Duration::ZERO),
        calls: calls.clone(),
        asked_after: asked_after.clone(),
    };
    let agent = Agent::builder(Arc::new(model)).build();
    let app = app::TestApp::start_with(agent, store.clone(), |settings| settings).await;
    let token = app.session(CHAT).await;
    let realtime = format!("{}/realtime/v1/sessions/{CHAT}", app.base);

    let before_append = calls.lock().unwrap().len();
    hold_reads.store(true, Ordering::SeqCst);
    let message = json!({"kind": "message", "payload": {
        "message": {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hello"}]},
        "chatId": CHAT,
        "trigger": "submit-message",
    }});
    let appended = app
        .client
        .post(format!("{realtime}/in/append"))
        .bearer_auth(&token)
        .header("x-part-id", "part-1")
        .json(&message)
        .send()
        .await
        .expect("append");
    assert!(appended.status().is_success(), "{}", appended.status());
    hold_reads.store(false, Ordering::SeqCst);
    let after_append = calls.lock().unwrap().len();
    {
        let calls = calls.lock().unwrap();
        let append = &calls[before_append..after_append];
        assert_eq!(
            sorted(append),
            ["GetItem", "Query", "TransactWriteItems"],
            "the append: the session and the log's end, then the claim and the record: {append:?}"
        );
        assert_eq!(
            append.last().map(String::as_str),
            Some("TransactWriteItems")
        );
        let arrivals = arrivals.lock().unwrap();
        let apart = arrivals[before_append + 1].duration_since(arrivals[before_append]);
        assert!(
            apart < HELD,
            "the append's two reads went one after the other, {apart:?} apart: {append:?}"
        );
    }

    let reader = app
        .client
        .get(format!("{realtime}/out"))
        .bearer_auth(&token)
        .header("timeout-seconds", "10")
        .send()
        .await
        .expect("out");
    assert!(reader.status().is_success(), "{}", reader.status());
    let mut body = reader.bytes_stream();
    let mut text = String::new();
    let started = Instant::now();
    while !text.contains("turn-complete") {
        assert!(started.elapsed() < Duration::from_secs(20), "{text}");
        match tokio::time::timeout(Duration::from_secs(20), futures::StreamExt::next(&mut body))
            .await
        {
            Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the reader ended early ({other:?}): {text}"),
        }
    }
    assert!(text.contains("text-delta"), "{text}");
    let asked_after = asked_after.lock().unwrap().expect("the model was asked");
    let calls = calls.lock().unwrap().clone();
    let reader_calls = &calls[after_append..asked_after];
    assert_eq!(
        sorted(reader_calls),
        [
            "GetItem",
            "GetItem",
            "Query",
            "Query",
            "Query",
            "UpdateItem"
        ],
        "the reader: one view (the session, the head item, the input tail, the output log's end, \
         the history), then the lease: {reader_calls:?}"
    );
    assert_eq!(reader_calls.last().map(String::as_str), Some("UpdateItem"));
    let _ = aws_sdk_dynamodb::Client::new(&config)
        .delete_table()
        .table_name(&table)
        .send()
        .await;
}
