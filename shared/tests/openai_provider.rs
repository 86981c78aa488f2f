//! `OpenAiCompatible` over real HTTP against the scripted mock server.

mod support;

use std::time::{Duration, Instant};

use chatfn::model::openai::OpenAiCompatible;
use chatfn::model::{
    AssistantContent, FinishReason, Model, ModelError, ModelEvent, ModelMessage, ModelRequest,
    ToolContent, ToolOutput, ToolResult, ToolSpec, Usage, UserContent,
};
use futures::StreamExt;
use serde_json::{Value, json};
use support::mock_openai::{self, MockOpenAi, ScriptedReply};

fn user(text: &str) -> ModelRequest {
    ModelRequest {
        messages: vec![ModelMessage::User {
            content: vec![UserContent::Text { text: text.into() }],
        }],
        ..ModelRequest::default()
    }
}

fn model(mock: &MockOpenAi) -> OpenAiCompatible {
    OpenAiCompatible::new(mock.base_url(), None, "mock-model").expect("client")
}

/// Every item of the stream with the time it arrived, but the model's name
/// (`the_stream_names_the_model_that_answers_first` checks it).
async fn collect_timed(
    model: &dyn Model,
    request: ModelRequest,
) -> Vec<(Instant, Result<ModelEvent, ModelError>)> {
    let mut stream = model.stream(request).await.expect("stream starts");
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        if !matches!(item, Ok(ModelEvent::ResponseModel(_))) {
            items.push((Instant::now(), item));
        }
    }
    items
}

#[tokio::test]
async fn the_stream_names_the_model_that_answers_first() {
    let mock = MockOpenAi::start(vec![ScriptedReply::say("Hi.")]).await;
    let stream = model(&mock)
        .stream(user("Hi"))
        .await
        .expect("stream starts");
    let events: Vec<_> = stream.collect().await;
    assert_eq!(
        events.first(),
        Some(&Ok(ModelEvent::ResponseModel("mock-model".into())))
    );
    let named = events
        .iter()
        .filter(|event| matches!(event, Ok(ModelEvent::ResponseModel(_))))
        .count();
    assert_eq!(named, 1, "{events:?}");
}

async fn collect(model: &dyn Model, request: ModelRequest) -> Vec<Result<ModelEvent, ModelError>> {
    collect_timed(model, request)
        .await
        .into_iter()
        .map(|(_, item)| item)
        .collect()
}

async fn collect_ok(model: &dyn Model, request: ModelRequest) -> Vec<ModelEvent> {
    collect(model, request)
        .await
        .into_iter()
        .map(|item| item.expect("no stream error"))
        .collect()
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        ..Usage::default()
    }
}

#[tokio::test]
async fn text_streams_incrementally() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .text("Hel")
            .sleep_ms(150)
            .text("lo")
            .sleep_ms(150)
            .text(" world")
            .finish("stop", usage(12, 3)),
    ])
    .await;

    let items = collect_timed(&model(&mock), user("Hi")).await;
    let events: Vec<ModelEvent> = items
        .iter()
        .map(|(_, item)| item.clone().expect("no stream error"))
        .collect();
    assert_eq!(
        events,
        vec![
            ModelEvent::TextDelta("Hel".into()),
            ModelEvent::TextDelta("lo".into()),
            ModelEvent::TextDelta(" world".into()),
            ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: usage(12, 3),
            },
        ]
    );
    // Buffering the body would deliver all three deltas at once, after the last pause.
    let first = items[0].0;
    let second = items[1].0;
    let last = items[2].0;
    assert!(
        second.duration_since(first) >= Duration::from_millis(100),
        "second delta {:?} after the first",
        second.duration_since(first)
    );
    assert!(
        last.duration_since(first) >= Duration::from_millis(250),
        "last delta {:?} after the first",
        last.duration_since(first)
    );
}

#[tokio::test]
async fn request_reaches_the_server_with_auth_and_body() {
    let mock = MockOpenAi::start(vec![ScriptedReply::say("ok"), ScriptedReply::say("ok")]).await;

    // A trailing slash on the base URL is tolerated.
    let with_key = OpenAiCompatible::new(
        format!("{}/", mock.base_url()),
        Some("sk-test".into()),
        "gpt-test",
    )
    .expect("client");
    let mut request = user("Hello");
    request.tools = vec![ToolSpec {
        name: "weather".into(),
        description: "Weather in a city".into(),
        input_schema: json!({ "type": "object", "properties": { "city": { "type": "string" } } }),
    }];
    request.max_output_tokens = Some(100);
    collect_ok(&with_key, request).await;
    collect_ok(&model(&mock), user("Again")).await;

    let received = mock.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].path, mock_openai::CHAT_COMPLETIONS_PATH);
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    assert_eq!(received[1].authorization, None);
    assert_eq!(
        received[0].body,
        json!({
            "model": "gpt-test",
            "messages": [{ "role": "user", "content": "Hello" }],
            "stream": true,
            "stream_options": { "include_usage": true },
            "tools": [{ "type": "function", "function": {
                "name": "weather",
                "description": "Weather in a city",
                "parameters": { "type": "object", "properties": { "city": { "type": "string" } } },
            } }],
            "max_tokens": 100,
        })
    );
    assert_eq!(
        mock_openai::last_user_text(&mock.requests()[1]).as_deref(),
        Some("Again")
    );
}

#[tokio::test]
async fn a_replaced_key_is_sent_from_the_next_request_on() {
    let mock = MockOpenAi::start(vec![ScriptedReply::say("ok"), ScriptedReply::say("ok")]).await;
    // The configuration's key, as a host holds it, and the model made from the configuration.
    let config = chatfn::config::Config::from_lookup(|name| match name {
        "CHATFN_MODEL_PROVIDER" => Some("openai".to_owned()),
        "CHATFN_MODEL_API_KEY" => Some("sk-before".to_owned()),
        "CHATFN_MODEL_BASE_URL" => Some(mock.base_url()),
        "CHATFN_MODEL" => Some("gpt-test".to_owned()),
        _ => None,
    })
    .expect("the configuration");
    let model = chatfn::model::from_config(&config).expect("the model");
    collect_ok(model.as_ref(), user("Hello")).await;
    let held = config.model_api_key.expect("the key");
    assert!(held.replace("sk-after"), "a rotated key");
    collect_ok(model.as_ref(), user("Again")).await;

    let received = mock.received();
    assert_eq!(
        received[0].authorization.as_deref(),
        Some("Bearer sk-before")
    );
    assert_eq!(
        received[1].authorization.as_deref(),
        Some("Bearer sk-after")
    );
}

#[tokio::test]
async fn tool_calls_stream_in_fragments() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .reasoning("Two lookups.")
            .tool_call_start(0, "call_a", "weather")
            .tool_call_arguments(0, "{\"city\":")
            .sleep_ms(20)
            .tool_call_start(1, "call_b", "time")
            .tool_call_arguments(1, "{\"tz\":\"CET\"}")
            .tool_call_arguments(0, "\"Paris\"}")
            .finish("tool_calls", usage(40, 20)),
    ])
    .await;

    let events = collect_ok(&model(&mock), user("Weather and time?")).await;
    let start = |id: &str, name: &str| ModelEvent::ToolCallStart {
        id: id.into(),
        name: name.into(),
    };
    let delta = |id: &str, arguments: &str| ModelEvent::ToolCallDelta {
        id: id.into(),
        arguments_delta: arguments.into(),
    };
    assert_eq!(
        events,
        vec![
            ModelEvent::ReasoningDelta("Two lookups.".into()),
            start("call_a", "weather"),
            delta("call_a", "{\"city\":"),
            start("call_b", "time"),
            delta("call_b", "{\"tz\":\"CET\"}"),
            delta("call_a", "\"Paris\"}"),
            ModelEvent::ToolCall {
                id: "call_a".into(),
                name: "weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            },
            ModelEvent::ToolCall {
                id: "call_b".into(),
                name: "time".into(),
                arguments: "{\"tz\":\"CET\"}".into(),
            },
            ModelEvent::Finish {
                reason: FinishReason::ToolCalls,
                usage: usage(40, 20),
            },
        ]
    );
}

#[tokio::test]
async fn rate_limit_is_a_transient_provider_error() {
    let mock = MockOpenAi::start(vec![ScriptedReply::error(
        429,
        "Rate limit reached for requests",
    )])
    .await;
    let error = model(&mock)
        .stream(user("Hi"))
        .await
        .err()
        .expect("an error");
    assert_eq!(
        error,
        ModelError::Provider {
            status: 429,
            message: "Rate limit reached for requests".into(),
            retry_after: None,
        }
    );
    assert!(error.is_transient());
}

#[tokio::test]
async fn server_errors_keep_the_body_text() {
    let long = "y".repeat(10_000);
    let mock = MockOpenAi::start(vec![
        ScriptedReply::http(500, "text/plain", "upstream exploded\n"),
        ScriptedReply::http(503, "text/html", &long),
        ScriptedReply::http(400, "application/json", ""),
        ScriptedReply::error(401, "Incorrect API key provided"),
    ])
    .await;
    let model = model(&mock);

    let error = model.stream(user("Hi")).await.err().expect("an error");
    assert_eq!(
        error,
        ModelError::Provider {
            status: 500,
            message: "upstream exploded".into(),
            retry_after: None,
        }
    );
    assert!(error.is_transient());

    let Some(ModelError::Provider {
        status, message, ..
    }) = model.stream(user("Hi")).await.err()
    else {
        panic!("expected a provider error");
    };
    assert_eq!(status, 503);
    assert!(message.len() < 2000, "long bodies are truncated");

    let error = model.stream(user("Hi")).await.err().expect("an error");
    assert_eq!(
        error,
        ModelError::Provider {
            status: 400,
            message: "Bad Request".into(),
            retry_after: None,
        }
    );
    assert!(!error.is_transient());

    let error = model.stream(user("Hi")).await.err().expect("an error");
    assert_eq!(
        error,
        ModelError::Provider {
            status: 401,
            message: "Incorrect API key provided".into(),
            retry_after: None,
        }
    );
}

#[tokio::test]
async fn dropped_connection_mid_stream_is_a_transport_error() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .text("partial")
            .sleep_ms(50)
            .text(" answer")
            .drop_connection()
            .text("never sent"),
    ])
    .await;

    let items = collect(&model(&mock), user("Hi")).await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0], Ok(ModelEvent::TextDelta("partial".into())));
    assert_eq!(items[1], Ok(ModelEvent::TextDelta(" answer".into())));
    let Err(error) = &items[2] else {
        panic!("expected an error, got {items:?}");
    };
    assert!(matches!(error, ModelError::Transport(_)), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test]
async fn stream_ending_without_finishing_is_a_transport_error() {
    let mock = MockOpenAi::start(vec![ScriptedReply::stream().text("cut")]).await;
    let items = collect(&model(&mock), user("Hi")).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        matches!(&items[1], Err(ModelError::Transport(_))),
        "{items:?}"
    );
}

#[tokio::test]
async fn error_object_in_the_stream() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .text("Sta")
            .error_event("The server had an error while processing your request."),
    ])
    .await;
    let items = collect(&model(&mock), user("Hi")).await;
    assert_eq!(
        items,
        vec![
            Ok(ModelEvent::TextDelta("Sta".into())),
            Err(ModelError::Stream(
                "The server had an error while processing your request.".into()
            )),
        ]
    );
}

#[tokio::test]
async fn malformed_chunk_is_a_protocol_error() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .raw(": a comment\r\n\r\n")
            .text("ok")
            .raw("data: {\"choices\": [\n\n"),
    ])
    .await;
    let items = collect(&model(&mock), user("Hi")).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0], Ok(ModelEvent::TextDelta("ok".into())));
    assert!(
        matches!(&items[1], Err(ModelError::Protocol(_))),
        "{items:?}"
    );
}

#[tokio::test]
async fn stream_ends_at_finish_without_waiting_for_the_rest() {
    let mock = MockOpenAi::start(vec![
        ScriptedReply::stream()
            .text("done")
            .finish_reason("stop")
            .usage(usage(1, 1))
            .sleep_ms(5_000)
            .done(),
    ])
    .await;
    let started = Instant::now();
    let events = collect_ok(&model(&mock), user("Hi")).await;
    assert_eq!(events.len(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn whole_json_completion_is_accepted() {
    let completion = json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Not streamed." },
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 4, "completion_tokens": 2 },
    });
    let mock = MockOpenAi::start(vec![ScriptedReply::http(
        200,
        "application/json",
        &completion.to_string(),
    )])
    .await;
    assert_eq!(
        collect_ok(&model(&mock), user("Hi")).await,
        vec![
            ModelEvent::TextDelta("Not streamed.".into()),
            ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: usage(4, 2),
            },
        ]
    );
}

#[tokio::test]
async fn requests_beyond_the_script_get_a_clear_error() {
    let mock = MockOpenAi::start(vec![ScriptedReply::say("only one")]).await;
    let model = model(&mock);
    collect_ok(&model, user("1")).await;
    let Some(ModelError::Provider {
        status, message, ..
    }) = model.stream(user("2")).await.err()
    else {
        panic!("expected a provider error");
    };
    assert_eq!(status, 500);
    assert!(message.contains("no scripted reply left"), "{message}");
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let model =
        OpenAiCompatible::new(format!("http://127.0.0.1:{port}/v1"), None, "m").expect("client");
    let error = model.stream(user("Hi")).await.err().expect("an error");
    assert!(matches!(error, ModelError::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn rule_scripts_a_tool_conversation() {
    // Call the tool until its result is in the prompt, then answer with it.
    let mock = MockOpenAi::start_with_rule(|request: &Value| {
        match mock_openai::tool_results(request).first() {
            None => ScriptedReply::call_tool("call_1", "weather", &json!({ "city": "Paris" })),
            Some((_, result)) => ScriptedReply::say(&format!("Paris: {result}")),
        }
    })
    .await;
    let model = model(&mock);

    let mut request = user("Weather in Paris?");
    let events = collect_ok(&model, request.clone()).await;
    assert_eq!(
        events[2],
        ModelEvent::ToolCall {
            id: "call_1".into(),
            name: "weather".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
        }
    );
    assert_eq!(
        events.last(),
        Some(&ModelEvent::Finish {
            reason: FinishReason::ToolCalls,
            usage: Usage::default(),
        })
    );

    request.messages.push(ModelMessage::Assistant {
        content: vec![AssistantContent::ToolCall {
            tool_call_id: "call_1".into(),
            tool_name: "weather".into(),
            input: json!({ "city": "Paris" }),
            provider_executed: false,
        }],
    });
    request.messages.push(ModelMessage::Tool {
        content: vec![ToolContent::ToolResult(ToolResult {
            tool_call_id: "call_1".into(),
            tool_name: "weather".into(),
            output: ToolOutput::Text("21 °C".into()),
        })],
    });
    let events = collect_ok(&model, request).await;
    assert_eq!(
        events,
        vec![
            ModelEvent::TextDelta("Paris: 21 °C".into()),
            ModelEvent::Finish {
                reason: FinishReason::Stop,
                usage: Usage::default(),
            },
        ]
    );

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(mock_openai::last_role(&requests[1]), Some("tool"));
    assert_eq!(
        requests[1]["messages"][1]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
}

#[tokio::test]
async fn the_next_call_reuses_the_connection_of_a_finished_stream() {
    // The stream is over for the engine at `[DONE]`; the body's chunked end comes after it, and
    // the client reads it in the background to keep the connection.
    let reply = |text: &str| {
        ScriptedReply::stream()
            .text(text)
            .finish("stop", usage(5, 1))
    };
    let mock = MockOpenAi::start(vec![reply("one"), reply("two")]).await;
    let model = model(&mock);

    let first = collect_ok(&model, user("hi")).await;
    assert!(matches!(first.last(), Some(ModelEvent::Finish { .. })));
    // The background read of the first body's end gets a moment to return the connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = collect_ok(&model, user("again")).await;
    assert!(matches!(second.last(), Some(ModelEvent::Finish { .. })));

    let clients: Vec<_> = mock.received().iter().map(|r| r.client).collect();
    assert_eq!(clients.len(), 2);
    assert_eq!(
        clients[0], clients[1],
        "the second call came on a new connection"
    );
}
