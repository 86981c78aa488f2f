//! The agent engine against a mock OpenAI-compatible server over real HTTP: multi-step tool
//! calls, reasoning, failures before and during the stream, malformed tool input.

#[path = "support/app.rs"]
mod app;
mod support;

use std::sync::Arc;

use app::{TestApp, kinds, read_events, stock_agent, submit, user_message};
use chatfn::model::Usage;
use chatfn::model::openai::OpenAiCompatible;
use serde_json::{Value, json};
use support::mock_openai::{MockOpenAi, ScriptedReply, last_role, tool_results};

async fn app_for(mock: &MockOpenAi) -> TestApp {
    let model = OpenAiCompatible::new(mock.base_url(), Some("test-key".into()), "mock-model")
        .expect("client");
    TestApp::start(stock_agent(Arc::new(model))).await
}

fn chunks_of(events: &[app::Received], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.data != "[DONE]" && e.kind() == kind)
        .map(app::Received::chunk)
        .collect()
}

#[tokio::test]
async fn a_tool_call_streams_its_arguments_runs_and_feeds_the_next_step() {
    let mock = MockOpenAi::start_with_rule(|request| {
        if last_role(request) == Some("tool") {
            let (_, result) = tool_results(request).pop().unwrap_or_default();
            let total = serde_json::from_str::<Value>(&result)
                .map(|r| r["total"].clone())
                .unwrap_or_default();
            ScriptedReply::stream()
                .text("You rolled ")
                .sleep_ms(20)
                .text(&format!("{total}."))
                .finish(
                    "stop",
                    Usage {
                        input_tokens: 30,
                        output_tokens: 4,
                        ..Usage::default()
                    },
                )
        } else {
            ScriptedReply::stream()
                .tool_call_start(0, "call_1", "roll_dice")
                .tool_call_arguments(0, "{\"sides\": ")
                .sleep_ms(20)
                .tool_call_arguments(0, "20, \"count\": 3}")
                .finish(
                    "tool_calls",
                    Usage {
                        input_tokens: 20,
                        output_tokens: 9,
                        ..Usage::default()
                    },
                )
        }
    })
    .await;
    let app = app_for(&mock).await;
    let token = app.session("e-tools").await;
    let events = read_events(
        app.send(
            &token,
            submit("e-tools", vec![user_message("u1", "roll 3d20")]),
        )
        .await,
        None,
    )
    .await;

    let deltas: Vec<String> = chunks_of(&events, "tool-input-delta")
        .iter()
        .map(|c| c["inputTextDelta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(deltas.concat(), "{\"sides\": 20, \"count\": 3}");
    let available = &chunks_of(&events, "tool-input-available")[0];
    assert_eq!(available["input"], json!({"sides": 20, "count": 3}));
    let output = chunks_of(&events, "tool-output-available")[0]["output"].clone();
    assert_eq!(output["rolls"].as_array().map(Vec::len), Some(3));
    let text: String = chunks_of(&events, "text-delta")
        .iter()
        .map(|c| c["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, format!("You rolled {}.", output["total"]));
    assert_eq!(chunks_of(&events, "finish")[0]["finishReason"], "stop");

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["tools"].as_array().map(Vec::len), Some(2));
    assert_eq!(requests[0]["messages"][0]["role"], "system");
    let results = tool_results(&requests[1]);
    assert_eq!(results[0].0, "call_1");
    assert_eq!(
        serde_json::from_str::<Value>(&results[0].1).ok(),
        Some(output)
    );
}

#[tokio::test]
async fn reasoning_and_text_become_their_own_parts() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .reasoning("Let me think. ")
            .reasoning("Done.")
            .text("Answer.")
            .finish("stop", Usage::default()),
    ])
    .await;
    let app = app_for(&mock).await;
    let token = app.session("e-reason").await;
    let events = read_events(
        app.send(
            &token,
            submit("e-reason", vec![user_message("u1", "think")]),
        )
        .await,
        None,
    )
    .await;
    let kinds = kinds(&events);
    let reasoning_end = kinds
        .iter()
        .position(|k| k == "reasoning-end")
        .expect("reasoning-end");
    let text_start = kinds
        .iter()
        .position(|k| k == "text-start")
        .expect("text-start");
    assert!(reasoning_end < text_start);
    let messages = app.messages(&token, "e-reason").await;
    assert_eq!(
        messages[1]["parts"][1],
        json!({"type": "reasoning", "text": "Let me think. Done.", "state": "done"})
    );
    assert_eq!(messages[1]["parts"][2]["text"], "Answer.");
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_an_error_and_keeps_the_partial_reply() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .text("Half of ")
            .sleep_ms(10)
            .text("an answer")
            .drop_connection(),
        ScriptedReply::say("Recovered."),
    ])
    .await;
    let app = app_for(&mock).await;
    let token = app.session("e-broken").await;
    let events = read_events(
        app.send(&token, submit("e-broken", vec![user_message("u1", "go")]))
            .await,
        None,
    )
    .await;
    let kinds = kinds(&events);
    assert!(kinds.contains(&"error".to_owned()), "{kinds:?}");
    assert_eq!(kinds[kinds.len() - 2..], ["finish", "[DONE]"]);
    assert_eq!(chunks_of(&events, "finish")[0]["finishReason"], "error");
    let error = chunks_of(&events, "error")[0]["errorText"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!error.is_empty());
    let messages = app.messages(&token, "e-broken").await;
    assert_eq!(messages[1]["parts"][1]["text"], "Half of an answer");
    assert_eq!(messages[1]["parts"][1]["state"], "done");
    // The chat goes on.
    let next = read_events(
        app.send(
            &token,
            submit("e-broken", vec![user_message("u2", "again")]),
        )
        .await,
        None,
    )
    .await;
    assert_eq!(chunks_of(&next, "finish")[0]["finishReason"], "stop");
}

#[tokio::test]
async fn a_provider_error_before_the_first_token_reaches_the_client() {
    let mock = MockOpenAi::start(vec![ScriptedReply::error(
        400,
        "Unsupported parameter: tools",
    )])
    .await;
    let app = app_for(&mock).await;
    let token = app.session("e-400").await;
    let events = read_events(
        app.send(&token, submit("e-400", vec![user_message("u1", "hi")]))
            .await,
        None,
    )
    .await;
    let error = chunks_of(&events, "error")[0]["errorText"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("400") && error.contains("Unsupported parameter"),
        "{error}"
    );
    assert_eq!(chunks_of(&events, "finish")[0]["finishReason"], "error");
    assert_eq!(mock.requests().len(), 1, "a client error is not retried");
}

#[tokio::test]
async fn transient_failures_before_the_first_token_are_retried() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::error(429, "Rate limit reached for requests"),
        ScriptedReply::stream().drop_connection(),
        ScriptedReply::say("Third time lucky."),
    ])
    .await;
    let app = app_for(&mock).await;
    let token = app.session("e-retry").await;
    let events = read_events(
        app.send(&token, submit("e-retry", vec![user_message("u1", "hi")]))
            .await,
        None,
    )
    .await;
    assert!(
        chunks_of(&events, "error").is_empty(),
        "{:?}",
        kinds(&events)
    );
    assert_eq!(chunks_of(&events, "text-delta").len(), 1);
    assert_eq!(mock.requests().len(), 3);

    let exhausted = MockOpenAi::start(vec![
        ScriptedReply::error(503, "overloaded"),
        ScriptedReply::error(503, "overloaded"),
        ScriptedReply::error(503, "still overloaded"),
    ])
    .await;
    let app = app_for(&exhausted).await;
    let token = app.session("e-exhausted").await;
    let events = read_events(
        app.send(
            &token,
            submit("e-exhausted", vec![user_message("u1", "hi")]),
        )
        .await,
        None,
    )
    .await;
    let error = chunks_of(&events, "error")[0]["errorText"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("still overloaded"), "{error}");
    assert_eq!(exhausted.requests().len(), 3);
}

#[tokio::test]
async fn malformed_tool_input_is_reported_and_the_model_may_retry() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .tool_call(0, "call_bad", "roll_dice", "{\"sides\": ")
            .finish("tool_calls", Usage::default()),
        ScriptedReply::say("Sorry, let me fix that."),
    ])
    .await;
    let app = app_for(&mock).await;
    let token = app.session("e-badargs").await;
    let events = read_events(
        app.send(
            &token,
            submit("e-badargs", vec![user_message("u1", "roll")]),
        )
        .await,
        None,
    )
    .await;
    let error = &chunks_of(&events, "tool-input-error")[0];
    assert!(
        error["errorText"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid JSON")
    );
    assert_eq!(mock.requests().len(), 2, "the model was called again");
    let retry = &mock.requests()[1];
    assert!(tool_results(retry)[0].1.contains("not valid JSON"));
}
