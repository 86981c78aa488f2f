//! The Bedrock ConverseStream provider over real HTTP against a local stand-in of the API that
//! speaks the binary event stream and verifies every SigV4 signature: the whole engine through
//! the HTTP routes (streaming, tool round trips, reasoning, usage, retries, failures), and the
//! provider built from the environment the way a Lambda function builds it.

#[path = "support/app.rs"]
mod app;
#[path = "support/bedrock_stand_in.rs"]
mod bedrock_stand_in;

use std::sync::Arc;
use std::time::Duration;

use app::{Received, TestApp, kinds, read_events, stock_agent, submit, user_message};
use bedrock_stand_in::{BedrockReply, BedrockStandIn, REGION, ReceivedCall, test_credentials};
use chatfn::model::bedrock::Bedrock;
use chatfn::model::{Model, ModelEvent, ModelMessage, ModelRequest, UserContent};
use chatfn::turn::ChatRecord;
use futures::StreamExt;
use serde_json::{Value, json};

const MODEL_ID: &str = "anthropic.claude-stand-in-v1:0";

async fn app_for(stand_in: &BedrockStandIn) -> TestApp {
    let model =
        Bedrock::with_credentials(stand_in.endpoint(), REGION, MODEL_ID, test_credentials())
            .expect("client");
    TestApp::start(stock_agent(Arc::new(model))).await
}

async fn turn(app: &TestApp, chat_id: &str, text: &str) -> Vec<Received> {
    let token = app.session(chat_id).await;
    read_events(
        app.send(&token, submit(chat_id, vec![user_message("u1", text)]))
            .await,
        None,
    )
    .await
}

fn chunks_of(events: &[Received], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.data != "[DONE]" && e.kind() == kind)
        .map(Received::chunk)
        .collect()
}

fn error_text(events: &[Received]) -> Option<String> {
    chunks_of(events, "error")
        .first()
        .map(|chunk| chunk["errorText"].as_str().unwrap_or_default().to_owned())
}

fn assert_all_signed(calls: &[ReceivedCall]) {
    assert!(!calls.is_empty());
    for call in calls {
        assert_eq!(
            call.signature,
            Ok(()),
            "every call carries a valid signature"
        );
    }
}

fn has_tool_result(call: &ReceivedCall) -> bool {
    call.body.to_string().contains("toolResult")
}

#[tokio::test]
async fn streamed_text_arrives_incrementally_and_its_usage_is_recorded() {
    let stand_in = BedrockStandIn::start(|_, _| {
        BedrockReply::stream()
            .text("Hello")
            .sleep_ms(150)
            .text(", ")
            .sleep_ms(150)
            .text("world.")
            .finish("end_turn", 11, 7)
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-text", "hi").await;

    let deltas: Vec<&Received> = events
        .iter()
        .filter(|e| e.data != "[DONE]" && e.kind() == "text-delta")
        .collect();
    let text: String = deltas
        .iter()
        .map(|e| e.chunk()["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "Hello, world.");
    assert_eq!(deltas.len(), 3, "one chunk per delta");
    let spread = deltas[2].at - deltas[0].at;
    assert!(
        spread >= Duration::from_millis(250),
        "the deltas arrived {spread:?} apart: buffered instead of streamed"
    );
    let kinds = kinds(&events);
    assert_eq!(kinds[kinds.len() - 2..], ["finish", "[DONE]"]);

    let record = ChatRecord::decode(app.store.state("b-text").await.expect("store"));
    assert_eq!(record.usage.input_tokens, 11);
    assert_eq!(record.usage.output_tokens, 7);

    let calls = stand_in.calls();
    assert_eq!(calls.len(), 1);
    assert_all_signed(&calls);
    let call = &calls[0];
    assert_eq!(call.model_id, MODEL_ID);
    assert!(
        call.raw_path.contains("v1%3A0"),
        "the model id is encoded in the path: {}",
        call.raw_path
    );
    assert_eq!(call.headers["content-type"], "application/json");
    let signed = call.headers["authorization"].to_str().unwrap_or_default();
    assert!(
        signed.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
        "{signed}"
    );
    // Prompt caching is on by default for Claude: a cache point after the instructions and
    // after the history so far.
    let cache_point = json!({"cachePoint": {"type": "default"}});
    assert!(call.body["system"][0]["text"].is_string());
    assert_eq!(call.body["system"][1], cache_point);
    assert_eq!(
        call.body["messages"],
        json!([{"role": "user", "content": [{"text": "hi"}, cache_point]}])
    );
}

#[tokio::test]
async fn a_tool_call_round_trip_sends_the_tool_result_back() {
    let stand_in = BedrockStandIn::start(|call, _| {
        if has_tool_result(call) {
            BedrockReply::stream()
                .text("You rolled well.")
                .finish("end_turn", 40, 5)
        } else {
            BedrockReply::stream()
                .text("Rolling.")
                .tool_use(
                    "tooluse_abc",
                    "roll_dice",
                    &["{\"sides\": ", "6, \"count\": 2}"],
                )
                .finish("tool_use", 30, 12)
        }
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-tools", "roll two dice").await;

    let deltas: Vec<String> = chunks_of(&events, "tool-input-delta")
        .iter()
        .map(|c| c["inputTextDelta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(deltas.concat(), "{\"sides\": 6, \"count\": 2}");
    let available = chunks_of(&events, "tool-input-available");
    assert_eq!(available.len(), 1);
    assert_eq!(available[0]["toolCallId"], "tooluse_abc");
    assert_eq!(available[0]["input"], json!({"sides": 6, "count": 2}));
    let outputs = chunks_of(&events, "tool-output-available");
    assert_eq!(outputs.len(), 1);
    let total = outputs[0]["output"]["total"].clone();
    assert!(total.is_u64(), "{outputs:?}");

    let calls = stand_in.calls();
    assert_eq!(calls.len(), 2);
    assert_all_signed(&calls);
    let tools = calls[0].body["toolConfig"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = tools
        .iter()
        .filter_map(|t| t["toolSpec"]["name"].as_str())
        .collect();
    assert!(names.contains(&"roll_dice"), "{names:?}");
    let (cache_point, specs) = tools.split_last().expect("tools");
    assert_eq!(cache_point, &json!({"cachePoint": {"type": "default"}}));
    assert!(
        specs
            .iter()
            .all(|t| t["toolSpec"]["inputSchema"]["json"].is_object())
    );

    let messages = calls[1].body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(
        messages[1]["content"],
        json!([
            {"text": "Rolling."},
            {"toolUse": {"toolUseId": "tooluse_abc", "name": "roll_dice", "input": {"sides": 6, "count": 2}}}
        ])
    );
    let result = &messages[2]["content"][0]["toolResult"];
    assert_eq!(result["toolUseId"], "tooluse_abc");
    assert_eq!(result["status"], "success");
    assert_eq!(result["content"][0]["json"]["total"], total);

    let token = app.session("b-tools").await;
    let stored = app.messages(&token, "b-tools").await;
    let parts = stored[1]["parts"].as_array().cloned().unwrap_or_default();
    assert!(parts.iter().any(|p| p["type"] == "tool-roll_dice"));
    assert!(parts.iter().any(|p| p["text"] == "You rolled well."));
    let record = ChatRecord::decode(app.store.state("b-tools").await.expect("store"));
    assert_eq!(
        (record.usage.input_tokens, record.usage.output_tokens),
        (70, 17),
        "both steps' usage is counted"
    );
}

#[tokio::test]
async fn reasoning_streams_as_reasoning_parts() {
    let stand_in = BedrockStandIn::start(|_, _| {
        BedrockReply::stream()
            .reasoning("The user greets me. ")
            .sleep_ms(50)
            .reasoning("I greet back.")
            .text("Hi!")
            .finish("end_turn", 9, 20)
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-think", "hello").await;
    let reasoning: String = chunks_of(&events, "reasoning-delta")
        .iter()
        .map(|c| c["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(reasoning, "The user greets me. I greet back.");
    let kinds = kinds(&events);
    let reasoning_end = kinds.iter().position(|k| k == "reasoning-end");
    let text_start = kinds.iter().position(|k| k == "text-start");
    assert!(
        reasoning_end.is_some() && reasoning_end < text_start,
        "{kinds:?}"
    );
    let token = app.session("b-think").await;
    let stored = app.messages(&token, "b-think").await;
    let parts = stored[1]["parts"].as_array().cloned().unwrap_or_default();
    assert!(
        parts
            .iter()
            .any(|p| p["type"] == "reasoning" && p["text"] == "The user greets me. I greet back."),
        "{parts:?}"
    );
}

#[tokio::test]
async fn throttling_before_the_first_token_is_retried() {
    // An HTTP 429 first, then a throttling exception as the stream's first frame, then a reply.
    let stand_in = BedrockStandIn::start(|_, index| match index {
        0 => BedrockReply::error(
            429,
            "ThrottlingException",
            "Too many requests, please wait.",
        ),
        1 => BedrockReply::stream().exception("throttlingException", "Too many tokens."),
        _ => BedrockReply::stream()
            .text("Third time lucky.")
            .finish("end_turn", 5, 4),
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-throttle", "hi").await;
    assert_eq!(error_text(&events), None, "{:?}", kinds(&events));
    let text: String = chunks_of(&events, "text-delta")
        .iter()
        .map(|c| c["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "Third time lucky.");
    let calls = stand_in.calls();
    assert_eq!(calls.len(), 3);
    assert_all_signed(&calls);
    assert_eq!(
        calls[0].body, calls[2].body,
        "the retry sends the same request"
    );
}

#[tokio::test]
async fn a_mid_stream_exception_ends_the_turn_with_a_readable_error() {
    let stand_in = BedrockStandIn::start(|_, _| {
        BedrockReply::stream()
            .text("Half an ans")
            .sleep_ms(20)
            .exception(
                "modelStreamErrorException",
                "The model stream was interrupted.",
            )
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-exception", "hi").await;
    let error = error_text(&events).expect("an error chunk");
    assert!(
        error.contains("modelStreamErrorException")
            && error.contains("The model stream was interrupted."),
        "{error}"
    );
    assert_eq!(stand_in.calls().len(), 1, "not retried after text streamed");
    let kinds = kinds(&events);
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("[DONE]"),
        "{kinds:?}"
    );
    let token = app.session("b-exception").await;
    let stored = app.messages(&token, "b-exception").await;
    let parts = stored[1]["parts"].as_array().cloned().unwrap_or_default();
    assert!(
        parts.iter().any(|p| p["text"] == "Half an ans"),
        "the partial reply is kept: {parts:?}"
    );
}

#[tokio::test]
async fn a_corrupt_frame_is_an_error_not_a_panic_and_the_chat_goes_on() {
    let stand_in = BedrockStandIn::start(|call, _| {
        let last_text = call.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .map(|m| m["content"][0]["text"].clone())
            .unwrap_or_default();
        if last_text == "again" {
            BedrockReply::stream()
                .text("All good now.")
                .finish("end_turn", 3, 3)
        } else {
            BedrockReply::stream().text("Fine so far").corrupt_frame()
        }
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-corrupt", "hi").await;
    let error = error_text(&events).expect("an error chunk");
    assert!(
        error.contains("corrupt event-stream frame") && error.contains("checksum"),
        "{error}"
    );
    let text: String = chunks_of(&events, "text-delta")
        .iter()
        .map(|c| c["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "Fine so far", "nothing of the corrupt frame is shown");

    // The next turn of the same chat works.
    let token = app.session("b-corrupt").await;
    let history = app.messages(&token, "b-corrupt").await;
    let mut messages = history.clone();
    messages.push(user_message("u2", "again"));
    let events = read_events(app.send(&token, submit("b-corrupt", messages)).await, None).await;
    assert_eq!(error_text(&events), None);
    let text: String = chunks_of(&events, "text-delta")
        .iter()
        .map(|c| c["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "All good now.");
}

#[tokio::test]
async fn access_denied_and_validation_errors_are_clear_and_not_retried() {
    let stand_in = BedrockStandIn::start(|call, _| {
        if call.body.to_string().contains("too long") {
            BedrockReply::error(
                400,
                "ValidationException",
                "Input is too long for requested model.",
            )
        } else {
            BedrockReply::error(
                403,
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/chatfn-agent-turn/fn is not \
                 authorized to perform: bedrock:InvokeModelWithResponseStream",
            )
        }
    })
    .await;
    let app = app_for(&stand_in).await;
    let events = turn(&app, "b-denied", "hi").await;
    let error = error_text(&events).expect("an error chunk");
    assert!(
        error.contains("403")
            && error.contains("not authorized to perform: bedrock:InvokeModelWithResponseStream"),
        "{error}"
    );
    let events = turn(&app, "b-invalid", "this is too long").await;
    let error = error_text(&events).expect("an error chunk");
    assert!(
        error.contains("400") && error.contains("Input is too long"),
        "{error}"
    );
    assert_eq!(stand_in.calls().len(), 2, "neither is retried");
}

#[tokio::test]
async fn a_wrong_secret_key_fails_the_signature_check() {
    let stand_in = BedrockStandIn::start(|_, _| {
        BedrockReply::stream()
            .text("unreachable")
            .finish("end_turn", 1, 1)
    })
    .await;
    let wrong = aws_credential_types::Credentials::new(
        bedrock_stand_in::ACCESS_KEY_ID,
        "not-the-secret",
        Some(bedrock_stand_in::SESSION_TOKEN.to_owned()),
        None,
        "test",
    );
    let model =
        Bedrock::with_credentials(stand_in.endpoint(), REGION, MODEL_ID, wrong).expect("client");
    let request = ModelRequest {
        messages: vec![ModelMessage::User {
            content: vec![UserContent::Text { text: "hi".into() }],
        }],
        ..ModelRequest::default()
    };
    let error = match model.stream(request).await {
        Ok(_) => panic!("a bad signature is refused"),
        Err(error) => error,
    };
    assert!(!error.is_transient());
    assert!(
        error.to_string().contains("403")
            && error
                .to_string()
                .contains("signature we calculated does not match"),
        "{error}"
    );
    let calls = stand_in.calls();
    assert!(
        matches!(&calls[0].signature, Err(reason) if reason.contains("signature mismatch")),
        "{:?}",
        calls[0].signature
    );
}

/// The variable that makes [`provider_from_environment_child`] run: the parent test sets it,
/// with the rest of a Lambda-like environment, on a child process of this test binary. A child
/// process because the credential chain reads the process environment, which tests running in
/// parallel threads must not change.
const CHILD_ENDPOINT: &str = "CHATFN_TEST_BEDROCK_CHILD_ENDPOINT";

#[tokio::test]
async fn the_configured_provider_signs_with_credentials_from_the_environment() {
    let stand_in = BedrockStandIn::start(|_, _| {
        BedrockReply::stream()
            .text("Signed by the chain.")
            .finish("end_turn", 2, 4)
    })
    .await;
    let executable = std::env::current_exe().expect("test binary");
    let empty = std::env::temp_dir().join("chatfn-no-aws-config");
    let mut child = std::process::Command::new(executable);
    child
        .args([
            "provider_from_environment_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(CHILD_ENDPOINT, stand_in.endpoint())
        .env("CHATFN_MODEL_PROVIDER", "bedrock")
        .env("CHATFN_MODEL", MODEL_ID)
        .env("CHATFN_MODEL_BASE_URL", stand_in.endpoint())
        .env("AWS_REGION", REGION)
        // What Lambda puts in a function's environment from its role.
        .env("AWS_ACCESS_KEY_ID", bedrock_stand_in::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", bedrock_stand_in::SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", bedrock_stand_in::SESSION_TOKEN)
        // Nothing else of this machine's AWS setup may answer.
        .env("AWS_CONFIG_FILE", empty.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", empty.join("credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    // Off the runtime's thread: the stand-in answers the child on it meanwhile.
    let output = tokio::task::spawn_blocking(move || child.output())
        .await
        .expect("joined")
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls = stand_in.calls();
    assert_eq!(calls.len(), 1);
    assert_all_signed(&calls);
}

#[tokio::test]
#[ignore = "runs as a child process of the_configured_provider_signs_with_credentials_from_the_environment"]
async fn provider_from_environment_child() {
    assert!(
        std::env::var_os(CHILD_ENDPOINT).is_some(),
        "run by the_configured_provider_signs_with_credentials_from_the_environment only"
    );
    let config = chatfn::config::Config::from_env().expect("config");
    let model = chatfn::model::from_config(&config).expect("model");
    assert_eq!(model.id(), format!("bedrock:{MODEL_ID}"));
    let request = ModelRequest {
        messages: vec![ModelMessage::User {
            content: vec![UserContent::Text { text: "hi".into() }],
        }],
        ..ModelRequest::default()
    };
    let stream = model.stream(request).await.expect("stream");
    let events: Vec<ModelEvent> = stream.map(|event| event.expect("event")).collect().await;
    assert_eq!(
        events[..2],
        [
            ModelEvent::ResponseModel(MODEL_ID.into()),
            ModelEvent::TextDelta("Signed by the chain.".into())
        ]
    );
    assert!(matches!(events.last(), Some(ModelEvent::Finish { .. })));
}
