//! Extended thinking through a multi-step tool loop and a later turn, per provider, against
//! stand-ins that refuse what the real APIs refuse: with thinking on, an assistant message that
//! calls a tool must bring back the thinking before it, with the signature it was given.

#[path = "support/app.rs"]
mod app;
#[cfg(feature = "bedrock")]
#[path = "support/bedrock_stand_in.rs"]
mod bedrock_stand_in;

use std::sync::{Arc, Mutex};

use app::{Received, TestApp, read_events, submit, user_message};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chatfn::agent::{Agent, tools};
use chatfn::model::anthropic::Anthropic;
use chatfn::model::{Model, ModelSettings};
use serde_json::{Value, json};

/// Runs two turns (each a tool call and its answer) on `agent`; every chunk must be clean.
async fn two_turns(agent: Agent) -> TestApp {
    let app = TestApp::start(agent).await;
    let token = app.session("thinking").await;
    for (id, text) in [("u1", "roll a die"), ("u2", "again")] {
        let events = read_events(
            app.send(&token, submit("thinking", vec![user_message(id, text)]))
                .await,
            None,
        )
        .await;
        assert_clean(&events);
    }
    app
}

fn assert_clean(events: &[Received]) {
    let kinds = app::kinds(events);
    let errors: Vec<Value> = events
        .iter()
        .filter(|event| event.data != "[DONE]" && event.kind() == "error")
        .map(Received::chunk)
        .collect();
    assert!(errors.is_empty(), "no error: {errors:?}");
    assert!(
        kinds.contains(&"tool-output-available".to_owned()),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"reasoning-end".to_owned()), "{kinds:?}");
    assert_eq!(kinds[kinds.len() - 2..], ["finish", "[DONE]"]);
}

/// The reasoning parts of the stored assistant messages keep their provider's signature.
async fn stored_signatures(app: &TestApp, provider: &str) -> Vec<String> {
    let token = app.session("thinking").await;
    app.messages(&token, "thinking")
        .await
        .iter()
        .flat_map(|message| message["parts"].as_array().cloned().unwrap_or_default())
        .filter(|part| part["type"] == "reasoning")
        .filter_map(|part| {
            part["providerMetadata"][provider]["signature"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Anthropic

#[derive(Clone, Default)]
struct Requests(Arc<Mutex<Vec<Value>>>);

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|event| {
            format!(
                "event: {}\ndata: {event}\n\n",
                event["type"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// What the Messages API says when thinking is on and an assistant message that used a tool
/// does not start with its thinking, or brings it back with a signature it never gave.
fn refusal(body: &Value) -> Option<String> {
    if body["thinking"]["type"] != "enabled" {
        return Some("thinking is not enabled".into());
    }
    let budget = body["thinking"]["budget_tokens"].as_u64().unwrap_or(0);
    if budget < 1024 || body["max_tokens"].as_u64().unwrap_or(0) <= budget {
        return Some("max_tokens must be greater than thinking.budget_tokens".into());
    }
    if body.get("temperature").is_some() {
        return Some("temperature may only be set to 1 when thinking is enabled".into());
    }
    for (index, message) in body["messages"].as_array()?.iter().enumerate() {
        let content = message["content"].as_array()?;
        let uses_tool = content.iter().any(|block| block["type"] == "tool_use");
        if message["role"] != "assistant" || !uses_tool {
            continue;
        }
        let first = &content[0];
        if first["type"] != "thinking" {
            return Some(format!(
                "messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, \
                 but found `{}`. When `thinking` is enabled, a final `assistant` message must \
                 start with a thinking block",
                first["type"].as_str().unwrap_or("?")
            ));
        }
        let signed = first["signature"]
            .as_str()
            .is_some_and(|signature| signature.starts_with("sig-") && signature.len() > 4);
        if !signed || first["thinking"].as_str().is_none_or(str::is_empty) {
            return Some(format!(
                "messages.{index}.content.0: Invalid `signature` in `thinking` block"
            ));
        }
    }
    None
}

async fn messages_api(requests: Requests, body: Value) -> axum::response::Response {
    let number = {
        let mut seen = requests.0.lock().expect("lock");
        seen.push(body.clone());
        seen.len()
    };
    if let Some(message) = refusal(&body) {
        let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let last = body["messages"]
        .as_array()
        .and_then(|messages| messages.last())
        .cloned()
        .unwrap_or_default();
    let answering = last.to_string().contains("tool_result");
    let signature = format!("sig-{number}");
    let mut events = vec![
        json!({"type":"message_start","message":{"id": format!("msg_{number}"),"model":"claude-test","usage":{"input_tokens":40,"output_tokens":1}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"A die, then the total."}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":signature}}),
        json!({"type":"content_block_stop","index":0}),
    ];
    if answering {
        events.extend([
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Rolled."}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":20}}),
        ]);
    } else {
        events.extend([
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":format!("toolu_{number}"),"name":"roll_dice","input":{}}}),
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"count\": 1}"}}),
            json!({"type":"content_block_stop","index":1}),
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}),
        ]);
    }
    events.push(json!({"type":"message_stop"}));
    ([("content-type", "text/event-stream")], sse(&events)).into_response()
}

async fn anthropic_stand_in() -> (String, Requests) {
    let requests = Requests::default();
    let state = requests.clone();
    let router = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            messages_api(state.clone(), body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/v1", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, requests)
}

#[tokio::test]
async fn anthropic_thinking_survives_the_tool_loop_and_later_turns() {
    let (base, requests) = anthropic_stand_in().await;
    // Thinking on from the provider's settings (`CHATFN_MODEL_THINKING_BUDGET`).
    let model = Anthropic::new(base, "sk-ant-test", "claude-test")
        .expect("client")
        .with_settings(ModelSettings {
            thinking_budget: Some(2048),
            ..ModelSettings::default()
        });
    let agent = Agent::builder(Arc::new(model) as Arc<dyn Model>)
        .tool(tools::roll_dice())
        .build();
    let app = two_turns(agent).await;
    let requests = requests.0.lock().expect("lock").clone();
    assert_eq!(requests.len(), 4, "two steps a turn, none refused");
    let later = requests[2].to_string();
    assert!(
        later.contains("\"signature\":\"sig-1\"") && later.contains("\"signature\":\"sig-2\""),
        "the later turn sends the first turn's thinking back"
    );
    assert_eq!(
        stored_signatures(&app, "anthropic").await,
        ["sig-1", "sig-2", "sig-3", "sig-4"]
    );

    // Without the signature the stand-in refuses, as the API does: it is the signature that
    // makes the loop work.
    let mut unsigned = requests[1].clone();
    unsigned["messages"][1]["content"]
        .as_array_mut()
        .expect("content")
        .remove(0);
    assert!(refusal(&unsigned).is_some_and(|m| m.contains("must start with a thinking block")));
}

// ---------------------------------------------------------------------------------------------
// Bedrock

#[cfg(feature = "bedrock")]
mod bedrock {
    use super::*;

    use super::bedrock_stand_in::{
        BedrockReply, BedrockStandIn, REGION, ReceivedCall, test_credentials,
    };
    use chatfn::model::bedrock::Bedrock;

    /// What Bedrock answers (a `ValidationException`) when Claude thinks and an assistant
    /// message that used a tool does not start with its reasoning and signature.
    fn refusal(body: &Value) -> Option<String> {
        let thinking = &body["additionalModelRequestFields"]["thinking"];
        if thinking["type"] != "enabled" {
            return Some("thinking is not enabled".into());
        }
        let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
        if body["inferenceConfig"]["maxTokens"].as_u64().unwrap_or(0) <= budget {
            return Some("max_tokens must be greater than thinking.budget_tokens".into());
        }
        for (index, message) in body["messages"].as_array()?.iter().enumerate() {
            let content = message["content"].as_array()?;
            let uses_tool = content.iter().any(|block| block.get("toolUse").is_some());
            if message["role"] != "assistant" || !uses_tool {
                continue;
            }
            let signature = content[0]["reasoningContent"]["reasoningText"]["signature"].as_str();
            if signature != Some("c2lnbmF0dXJl") {
                return Some(format!(
                    "The model returned the following errors: messages.{index}.content.0.type: \
                     Expected `thinking` or `redacted_thinking`, but found `{}`.",
                    content[0]
                        .as_object()
                        .and_then(|block| block.keys().next().cloned())
                        .unwrap_or_default()
                ));
            }
        }
        None
    }

    fn reply(call: &ReceivedCall, _: usize) -> BedrockReply {
        if let Some(message) = refusal(&call.body) {
            return BedrockReply::error(400, "ValidationException", &message);
        }
        let last = call.body["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .cloned()
            .unwrap_or_default();
        let stream = BedrockReply::stream().reasoning("A die, then the total.");
        if last.to_string().contains("toolResult") {
            stream.text("Rolled.").finish("end_turn", 40, 20)
        } else {
            stream
                .tool_use("tooluse_1", "roll_dice", &["{\"count\": ", "1}"])
                .finish("tool_use", 40, 30)
        }
    }

    #[tokio::test]
    async fn bedrock_thinking_survives_the_tool_loop_and_later_turns() {
        let stand_in = BedrockStandIn::start(reply).await;
        let model = Bedrock::with_credentials(
            stand_in.endpoint(),
            REGION,
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            test_credentials(),
        )
        .expect("client");
        // Thinking on from the agent, for every turn.
        let agent = Agent::builder(Arc::new(model) as Arc<dyn Model>)
            .tool(tools::roll_dice())
            .thinking_budget(1024)
            .build();
        let app = two_turns(agent).await;
        let calls = stand_in.calls();
        assert_eq!(calls.len(), 4, "two steps a turn, none refused");
        assert!(calls.iter().all(|call| call.signature.is_ok()));
        assert_eq!(stored_signatures(&app, "amazonBedrock").await.len(), 4);

        let mut unsigned = calls[1].body.clone();
        unsigned["messages"][1]["content"]
            .as_array_mut()
            .expect("content")
            .remove(0);
        assert!(refusal(&unsigned).is_some_and(|m| m.contains("Expected `thinking`")));
    }
}
