//! A turn with a tool call, driven through the router with a `traceparent`, and the checks of
//! the trace an OTLP/HTTP receiver of the test's own gets: names, attributes and parentage (the
//! request's span continues the caller's, the turn is its child, the model calls and the tool
//! call are the turn's children, store calls hang under them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use chatfn::agent::{Agent, FunctionTool};
use chatfn::auth::SecretKeys;
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::ModelEvent;
use chatfn::store::memory::MemoryStore;
use chatfn::testing::{ScriptedModel, TEST_SECRET_KEY, script};
use chatfn::turn::TurnRunner;
use chatfn::ui::UIMessage;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use serde_json::{Value, json};
use tower::ServiceExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<Value>>>;

/// An OTLP/HTTP receiver of trace exports, `http/json` or `http/protobuf` by their content
/// type, each kept in the JSON form of OTLP; returns its base URL.
async fn receiver(received: Received) -> String {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let received = received.clone();
                async move {
                    let protobuf = headers
                        .get("content-type")
                        .is_some_and(|kind| kind.as_bytes() == b"application/x-protobuf");
                    let export = if protobuf {
                        ExportTraceServiceRequest::decode(body.as_ref())
                            .ok()
                            .and_then(|export| serde_json::to_value(export).ok())
                    } else {
                        serde_json::from_slice::<Value>(&body).ok()
                    };
                    if let Some(export) = export
                        && let Ok(mut all) = received.lock()
                    {
                        all.push(export);
                    }
                    axum::Json(json!({}))
                }
            },
        ),
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

/// Every span received so far.
fn spans(received: &Received) -> Vec<Value> {
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
        .collect()
}

/// The value of a span's attribute, as a string.
fn attribute(span: &Value, key: &str) -> Option<String> {
    let value = span["attributes"]
        .as_array()?
        .iter()
        .find(|attribute| attribute["key"] == key)?["value"]
        .clone();
    let value = value.as_object()?.values().next()?.clone();
    Some(match value {
        Value::String(text) => text,
        other => other.to_string(),
    })
}

async fn request(app: &axum::Router, request: Request<Body>) -> Value {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// What the test binary sets up: the protocol the exporter speaks, and whether spans carry
/// message contents.
pub struct Setup {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: &'static str,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.
    pub capture_content: bool,
}

/// The model the scripted provider says answered.
const RESPONSE_MODEL: &str = "test-2026-12-01";

/// Drives a turn with a tool call through the router with a `traceparent` and checks the trace
/// the receiver got. The exporter and the subscriber are global: one call per test binary.
pub async fn a_turn_with_a_tool_call_is_exported_as_one_trace(setup: Setup) {
    let received = Received::default();
    let endpoint = receiver(received.clone()).await;
    // SAFETY: set before anything reads the environment, in the binary's only test.
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
        std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", setup.protocol);
        std::env::set_var("OTEL_SERVICE_NAME", "chatfn-test");
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
        if setup.capture_content {
            std::env::set_var("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true");
        }
    }
    let telemetry = chatfn_telemetry::init(chatfn_telemetry::Settings {
        default_format: chatfn_telemetry::LogFormat::Json,
        emf: None,
    });
    assert!(telemetry.exporting);

    let model = ScriptedModel::new(|request| {
        let answer = if script::tool_results(request).is_empty() {
            script::call("call-1", "lookup", json!({"city": "Oslo"}))
        } else {
            script::say("It is sunny.")
        };
        std::iter::once(ModelEvent::ResponseModel(RESPONSE_MODEL.into()))
            .chain(answer)
            .collect()
    });
    let agent = Agent::builder(model)
        .tool(FunctionTool::new(
            "lookup",
            "Looks the weather up.",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            |_input, _context| async move { Ok(json!({"weather": "sunny"})) },
        ))
        .build();
    let keys = SecretKeys::parse(TEST_SECRET_KEY).expect("key");
    let runner = TurnRunner::new(Arc::new(MemoryStore::new()), Arc::new(agent));
    let app = router(App::new(HttpSettings::new(keys), runner), Routes::All)
        .layer(chatfn_telemetry::RequestSpansLayer);

    let session = request(
        &app,
        Request::post("/api/v1/sessions")
            .header("authorization", format!("Bearer {TEST_SECRET_KEY}"))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"type": "chat.agent", "externalId": "chat-otel", "taskIdentifier": "chat"})
                    .to_string(),
            ))
            .expect("request"),
    )
    .await;
    let token = session["publicAccessToken"].as_str().expect("token");
    let message = UIMessage::user_text("u1", "Weather in Oslo?");
    let chat = Request::post("/api/chat")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
        .body(Body::from(
            json!({"id": "chat-otel", "messages": [message], "trigger": "submit-message"})
                .to_string(),
        ))
        .expect("request");
    let response = app.clone().oneshot(chat).await.expect("response");
    let reply = response
        .into_body()
        .collect()
        .await
        .expect("reply")
        .to_bytes();
    assert!(String::from_utf8_lossy(&reply).contains("sunny"));

    let mut all = Vec::new();
    for _ in 0..50 {
        tokio::task::spawn_blocking(chatfn_telemetry::flush)
            .await
            .expect("flush");
        all = spans(&received);
        if all.iter().any(|span| span["name"] == "invoke_agent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let named = |name: &str| -> Vec<&Value> { all.iter().filter(|s| s["name"] == name).collect() };
    let names: Vec<&Value> = all.iter().map(|span| &span["name"]).collect();

    let requests: Vec<&Value> = named("POST")
        .into_iter()
        .filter(|span| span["traceId"] == TRACE_ID)
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "one request span in the caller's trace: {names:?}"
    );
    let request_span = requests[0];
    assert_eq!(request_span["parentSpanId"], CALLER_SPAN_ID);
    assert_eq!(request_span["kind"], 2, "a server span");

    let turns = named("invoke_agent");
    assert_eq!(turns.len(), 1, "{names:?}");
    let turn = turns[0];
    assert_eq!(turn["traceId"], TRACE_ID);
    assert_eq!(turn["parentSpanId"], request_span["spanId"]);
    assert_eq!(
        attribute(turn, "gen_ai.conversation.id").as_deref(),
        Some("chat-otel")
    );
    assert_eq!(
        attribute(turn, "gen_ai.operation.name").as_deref(),
        Some("invoke_agent")
    );
    assert_eq!(
        attribute(turn, "chatfn.turn.input_seq").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(turn, "gen_ai.response.finish_reasons").as_deref(),
        Some("stop")
    );
    assert_eq!(
        attribute(turn, "gen_ai.usage.input_tokens").as_deref(),
        Some("20")
    );
    assert_eq!(
        attribute(turn, "gen_ai.usage.output_tokens").as_deref(),
        Some("10")
    );
    assert_eq!(
        attribute(turn, "chatfn.turn.tool_calls").as_deref(),
        Some("1")
    );
    assert_eq!(
        attribute(turn, "chatfn.turn.stopped").as_deref(),
        Some("false")
    );
    assert!(attribute(turn, "chatfn.turn.time_to_first_token_ms").is_some());
    assert_eq!(
        attribute(turn, "gen_ai.response.model").as_deref(),
        Some(RESPONSE_MODEL)
    );
    assert!(
        attribute(turn, "chatfn.turn.store_write_units").is_none(),
        "the memory store counts no write units"
    );

    let calls = named("chat test");
    assert_eq!(calls.len(), 2, "two model calls: {names:?}");
    for call in &calls {
        assert_eq!(call["parentSpanId"], turn["spanId"]);
        assert_eq!(call["kind"], 3, "a client span");
        assert_eq!(
            attribute(call, "gen_ai.operation.name").as_deref(),
            Some("chat")
        );
        assert_eq!(
            attribute(call, "gen_ai.provider.name").as_deref(),
            Some("scripted")
        );
        assert_eq!(
            attribute(call, "gen_ai.request.model").as_deref(),
            Some("test")
        );
        assert_eq!(
            attribute(call, "gen_ai.usage.input_tokens").as_deref(),
            Some("10")
        );
        assert_eq!(
            attribute(call, "gen_ai.usage.output_tokens").as_deref(),
            Some("5")
        );
        assert_eq!(
            attribute(call, "gen_ai.response.model").as_deref(),
            Some(RESPONSE_MODEL)
        );
        assert!(attribute(call, "chatfn.time_to_first_token_ms").is_some());
        if !setup.capture_content {
            assert!(
                attribute(call, "gen_ai.input.messages").is_none()
                    && attribute(call, "gen_ai.output.messages").is_none(),
                "no contents by default"
            );
        }
    }
    if setup.capture_content {
        let messages = |call: &Value, key: &str| -> Value {
            let text = attribute(call, key).unwrap_or_else(|| panic!("{key} on {call}"));
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{key} is JSON: {text}"))
        };
        let input = messages(calls[0], "gen_ai.input.messages");
        assert_eq!(
            input[0],
            json!({"role": "user", "parts": [{"type": "text", "content": "Weather in Oslo?"}]})
        );
        let output = messages(calls[0], "gen_ai.output.messages");
        assert_eq!(
            output,
            json!([{"role": "assistant", "finish_reason": "tool_call", "parts": [
                {"type": "tool_call", "id": "call-1", "name": "lookup", "arguments": {"city": "Oslo"}}
            ]}])
        );
        let input = messages(calls[1], "gen_ai.input.messages");
        let last = input.as_array().and_then(|all| all.last()).cloned();
        assert_eq!(
            last,
            Some(json!({"role": "tool", "parts": [
                {"type": "tool_call_response", "id": "call-1", "response": {"weather": "sunny"}}
            ]}))
        );
        let output = messages(calls[1], "gen_ai.output.messages");
        assert_eq!(output[0]["finish_reason"], "stop");
        assert_eq!(output[0]["parts"][0]["type"], "text");
    }

    let tools = named("execute_tool lookup");
    assert_eq!(tools.len(), 1, "{names:?}");
    assert_eq!(tools[0]["parentSpanId"], turn["spanId"]);
    assert_eq!(
        attribute(tools[0], "gen_ai.tool.name").as_deref(),
        Some("lookup")
    );
    assert_eq!(
        attribute(tools[0], "gen_ai.tool.call.id").as_deref(),
        Some("call-1")
    );
    assert!(attribute(tools[0], "error.type").is_none());

    let turn_ids = [turn["spanId"].clone()];
    let call_ids: Vec<Value> = calls.iter().map(|call| call["spanId"].clone()).collect();
    let store_calls: Vec<&Value> = all
        .iter()
        .filter(|span| {
            span["name"]
                .as_str()
                .is_some_and(|name| name.starts_with("store "))
        })
        .filter(|span| {
            turn_ids.contains(&span["parentSpanId"]) || call_ids.contains(&span["parentSpanId"])
        })
        .collect();
    assert!(
        store_calls
            .iter()
            .any(|span| span["name"] == "store append_output"),
        "the turn's output writes are its children: {names:?}"
    );
}
