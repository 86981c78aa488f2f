//! The Lambda host exports an invocation's spans before the invocation ends: a turn's trace
//! reaches an OTLP/HTTP receiver (this test's own, decoding `http/json`) by the time the
//! streaming response's body has ended, with no flush from the test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatfn::agent::configured_agent;
use chatfn::auth::SecretKeys;
use chatfn::config::Config;
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::offline::OfflineModel;
use chatfn::store::memory::MemoryStore;
use chatfn::turn::TurnRunner;
use chatfn_lambda::StreamingInvocations;
use http_body_util::BodyExt;
use lambda_http::Service;
use serde_json::{Value, json};

const SECRET: &str = "sk_lambda_traces_test";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

type Received = Arc<Mutex<Vec<Value>>>;

async fn receiver(received: Received) -> String {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                if let Ok(export) = serde_json::from_slice::<Value>(&body)
                    && let Ok(mut all) = received.lock()
                {
                    all.push(export);
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

fn span_names(received: &Received) -> Vec<(String, String)> {
    let exports = received.lock().map(|all| all.clone()).unwrap_or_default();
    exports
        .iter()
        .flat_map(|export| {
            export["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|resource| {
            resource["scopeSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|scope| scope["spans"].as_array().cloned().unwrap_or_default())
        .map(|span| {
            (
                span["name"].as_str().unwrap_or_default().to_owned(),
                span["traceId"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn request(path: &str, bearer: &str, body: Value) -> lambda_http::Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("https://function.example{path}"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
        .body(lambda_http::Body::Text(body.to_string()))
        .expect("request")
}

async fn call(service: &mut StreamingInvocations, request: lambda_http::Request) -> String {
    let response = service.call(request).await.expect("infallible");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turns_spans_are_exported_before_its_invocation_ends() {
    let received = Received::default();
    let endpoint = receiver(received.clone()).await;
    // SAFETY: set before anything reads the environment, in this binary's only test.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
        // Long enough that only the host's flush can have sent the spans.
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "600000");
    }
    chatfn_lambda::init_logging();
    assert!(chatfn_telemetry::exporting());

    let config = Config::from_lookup(|_| None).expect("config");
    let runner = TurnRunner::new(
        Arc::new(MemoryStore::new()),
        Arc::new(configured_agent(&config, Arc::new(OfflineModel::new()))),
    );
    let app = App::new(
        HttpSettings::new(SecretKeys::parse(SECRET).expect("key")),
        runner.clone(),
    );
    let router = router(app, Routes::All).layer(chatfn_telemetry::RequestSpansLayer);
    let mut service = StreamingInvocations::new(router, runner);

    let session = call(
        &mut service,
        request(
            "/api/v1/sessions",
            SECRET,
            json!({"type": "chat.agent", "externalId": "chat-lambda", "taskIdentifier": "chat"}),
        ),
    )
    .await;
    let session: Value = serde_json::from_str(&session).expect("session");
    let token = session["publicAccessToken"].as_str().expect("token");
    let started = Instant::now();
    let reply = call(
        &mut service,
        request(
            "/api/chat",
            token,
            json!({
                "id": "chat-lambda",
                "trigger": "submit-message",
                "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
            }),
        ),
    )
    .await;
    assert!(reply.contains("[DONE]"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let names = span_names(&received);
    assert!(
        names
            .iter()
            .any(|(name, trace)| name == "invoke_agent" && trace == TRACE_ID),
        "the turn's span was exported before the response ended: {names:?}"
    );
    assert!(
        names.iter().any(|(name, _)| name == "chat offline"),
        "{names:?}"
    );
}
