//! What a provider attaches to its reasoning stays on the reasoning part and goes back to the
//! model on the next step and in later turns; tools the provider ran are shown, never run here.

use chatfn::agent::{Agent, tools};
use chatfn::model::{
    AssistantContent, FinishReason, ModelEvent, ModelMessage, ModelRequest, Usage,
};
use chatfn::testing::{ScriptedModel, TestServer, script};
use chatfn::ui::{ToolState, UIPart};
use serde_json::{Value, json};

fn metadata(item: &str, encrypted: Option<&str>) -> Value {
    let mut openai = json!({ "itemId": item });
    if let Some(encrypted) = encrypted {
        openai["reasoningEncryptedContent"] = encrypted.into();
    }
    json!({ "openai": openai })
}

/// Every reasoning part of the assistant messages of `request`, with its provider options.
fn reasoning_sent(request: &ModelRequest) -> Vec<(String, Option<Value>)> {
    request
        .messages
        .iter()
        .filter_map(|message| match message {
            ModelMessage::Assistant { content } => Some(content),
            _ => None,
        })
        .flatten()
        .filter_map(|content| match content {
            AssistantContent::Reasoning {
                text,
                provider_options,
            } => Some((text.clone(), provider_options.clone())),
            _ => None,
        })
        .collect()
}

fn finish(reason: FinishReason) -> ModelEvent {
    ModelEvent::Finish {
        reason,
        usage: Usage::default(),
    }
}

fn first_step() -> Vec<ModelEvent> {
    let mut events = vec![
        ModelEvent::ReasoningDelta("Search, ".into()),
        ModelEvent::ReasoningDelta("then roll.".into()),
        ModelEvent::ReasoningEnd {
            provider_metadata: Some(metadata("rs_1", None)),
        },
        ModelEvent::TextDelta("Looking.".into()),
        // Reasoning the provider keeps to itself: no text, only what it needs back.
        ModelEvent::ReasoningEnd {
            provider_metadata: Some(metadata("rs_2", Some("sealed-2"))),
        },
        ModelEvent::ProviderToolCall {
            id: "ws_1".into(),
            name: "web_search".into(),
            input: json!({ "action": { "query": "dice" } }),
        },
        ModelEvent::ProviderToolResult {
            id: "ws_1".into(),
            name: "web_search".into(),
            output: json!({ "status": "completed" }),
            failed: false,
        },
        ModelEvent::ProviderToolCall {
            id: "ci_1".into(),
            name: "code_interpreter".into(),
            input: json!({ "code": "1/0" }),
        },
        ModelEvent::ProviderToolResult {
            id: "ci_1".into(),
            name: "code_interpreter".into(),
            output: json!("division by zero"),
            failed: true,
        },
        // A part end with nothing to end and nothing to keep changes nothing.
        ModelEvent::ReasoningEnd {
            provider_metadata: None,
        },
    ];
    events.extend(
        script::call("call_1", "roll_dice", json!({ "sides": 6 }))
            .into_iter()
            .filter(|event| !matches!(event, ModelEvent::Finish { .. })),
    );
    events.push(finish(FinishReason::ToolCalls));
    events
}

fn agent(model: std::sync::Arc<ScriptedModel>) -> Agent {
    Agent::builder(model).tool(tools::roll_dice()).build()
}

#[tokio::test]
async fn reasoning_metadata_comes_back_and_provider_tools_are_shown_not_run() {
    let model = ScriptedModel::new(|request| {
        if script::tool_results(request).is_empty() {
            first_step()
        } else {
            script::say("Done.")
        }
    });
    let server = TestServer::start(agent(model.clone()))
        .await
        .expect("server");
    let chat = server.chat("meta").await.expect("chat");
    let reply = chat
        .send_text("u1", "search and roll")
        .await
        .expect("reply");

    assert_eq!(reply.text(), "Looking.Done.");
    assert!(
        !reply.kinds().contains(&"error".to_owned()),
        "{:?}",
        reply.kinds()
    );
    let reasoning: Vec<_> = reply
        .message
        .parts
        .iter()
        .filter_map(|part| match part {
            UIPart::Reasoning(part) => Some((part.text.clone(), part.provider_metadata.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasoning,
        [
            (
                "Search, then roll.".to_owned(),
                Some(metadata("rs_1", None))
            ),
            (String::new(), Some(metadata("rs_2", Some("sealed-2")))),
        ]
    );
    let provider_tools: Vec<_> = reply
        .message
        .tool_parts()
        .filter(|part| part.provider_executed == Some(true))
        .map(|part| {
            (
                part.tool_name.clone(),
                part.state,
                part.output.clone(),
                part.error_text.clone(),
            )
        })
        .collect();
    assert_eq!(
        provider_tools,
        [
            (
                "web_search".to_owned(),
                ToolState::OutputAvailable,
                Some(json!({ "status": "completed" })),
                None
            ),
            (
                "code_interpreter".to_owned(),
                ToolState::OutputError,
                None,
                Some("division by zero".to_owned())
            ),
        ]
    );
    let dice = reply
        .message
        .tool_parts()
        .find(|part| part.tool_call_id == "call_1")
        .expect("the dice call");
    assert_eq!(dice.state, ToolState::OutputAvailable);

    let requests = model.requests();
    assert_eq!(
        requests.len(),
        2,
        "provider tools are not run, so one more step only"
    );
    let expected = [
        (
            "Search, then roll.".to_owned(),
            Some(metadata("rs_1", None)),
        ),
        (String::new(), Some(metadata("rs_2", Some("sealed-2")))),
    ];
    assert_eq!(reasoning_sent(&requests[1]), expected, "the next step");

    chat.send_text("u2", "again").await.expect("second turn");
    let requests = model.requests();
    assert_eq!(reasoning_sent(&requests[2]), expected, "a later turn");
}
