//! `OpenAiResponses` against recordings of real Responses API streams (see
//! `tests/data/openai-responses/`), served on the API's framing by a loopback stand-in, whole and
//! one byte per write.

#[path = "support/openai_responses_stand_in.rs"]
mod stand_in;

use chatfn::model::openai_responses::OpenAiResponses;
use chatfn::model::{
    FinishReason, Model, ModelError, ModelEvent, ModelMessage, ModelRequest, Usage, UserContent,
};
use futures::StreamExt;
use serde_json::{Value, json};
use stand_in::{Reply, ResponsesStandIn, of_type, recording};

fn request(text: &str) -> ModelRequest {
    ModelRequest {
        messages: vec![ModelMessage::User {
            content: vec![UserContent::Text { text: text.into() }],
        }],
        ..ModelRequest::default()
    }
}

/// What the provider makes of `events`, served whole and byte by byte; both must agree.
async fn served(model_name: &str, events: &[Value]) -> Vec<Result<ModelEvent, ModelError>> {
    let mut runs = Vec::new();
    for byte_by_byte in [false, true] {
        let events = events.to_vec();
        let stand_in = ResponsesStandIn::start(move |_, _| {
            let reply = Reply::stream(events.clone());
            if byte_by_byte {
                reply.byte_by_byte()
            } else {
                reply
            }
        })
        .await;
        let model = OpenAiResponses::new(stand_in.base_url(), Some("sk-test".into()), model_name)
            .expect("client");
        let mut stream = model.stream(request("Hi")).await.expect("stream starts");
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item);
        }
        let sent = &stand_in.requests()[0];
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["store"], false);
        assert_eq!(
            stand_in.received()[0].authorization.as_deref(),
            Some("Bearer sk-test")
        );
        runs.push(items);
    }
    let byte_by_byte = runs.pop().unwrap_or_default();
    let whole = runs.pop().unwrap_or_default();
    assert_eq!(whole, byte_by_byte, "one byte per write decodes the same");
    whole
}

/// The events of a stream that must end cleanly: no error, `Finish` last.
fn clean(items: Vec<Result<ModelEvent, ModelError>>) -> Vec<ModelEvent> {
    let events: Vec<ModelEvent> = items
        .into_iter()
        .map(|item| item.expect("no stream error"))
        .collect();
    assert!(
        matches!(events.last(), Some(ModelEvent::Finish { .. })),
        "ends with Finish: {events:?}"
    );
    let finishes = events
        .iter()
        .filter(|event| matches!(event, ModelEvent::Finish { .. }))
        .count();
    assert_eq!(finishes, 1);
    events
}

fn text_of(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::TextDelta(delta) => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

fn reasoning_of(events: &[ModelEvent]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::ReasoningDelta(delta) => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

fn finish_of(events: &[ModelEvent]) -> (FinishReason, Usage) {
    match events.last() {
        Some(ModelEvent::Finish { reason, usage }) => (*reason, *usage),
        other => panic!("no finish: {other:?}"),
    }
}

/// The `text` of every `*.done` event of this type, joined.
fn done_text(events: &[Value], kind: &str) -> String {
    of_type(events, kind)
        .iter()
        .filter_map(|event| event["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_recorded_tool_loop_gives_reasoning_calls_and_the_answer() {
    let responses = recording("openai-reasoning-encrypted-content.1.chunks.txt");
    assert_eq!(responses.len(), 4, "four steps");

    // Step 1: a reasoning summary with its encrypted item, then a call.
    let events = clean(served("gpt-5.1-codex-max", &responses[0]).await);
    let summary = done_text(&responses[0], "response.reasoning_summary_text.done");
    assert!(
        summary.starts_with("**Calculating step-by-step"),
        "{summary}"
    );
    assert_eq!(reasoning_of(&events), summary);
    let reasoning_done = of_type(&responses[0], "response.output_item.done")[0];
    let encrypted = reasoning_done["item"]["encrypted_content"]
        .as_str()
        .expect("encrypted");
    let ends: Vec<&ModelEvent> = events
        .iter()
        .filter(|event| matches!(event, ModelEvent::ReasoningEnd { .. }))
        .collect();
    assert_eq!(
        ends,
        [&ModelEvent::ReasoningEnd {
            provider_metadata: Some(json!({ "openai": {
                "itemId": "rs_01830d662ab3856501693c321405c88190be3ab04d5782d5f9",
                "reasoningEncryptedContent": encrypted,
            } })),
        }]
    );
    let calls: Vec<(String, String, Value)> = events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::ToolCall {
                id,
                name,
                arguments,
            } => Some((
                id.clone(),
                name.clone(),
                serde_json::from_str(arguments).expect("JSON arguments"),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [(
            "call_AB6AaRZ1FYZB2RwS6A5vbdqn".to_owned(),
            "calculator".to_owned(),
            json!({ "a": 12, "b": 7, "op": "add" })
        )]
    );
    let deltas: String = events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::ToolCallDelta {
                id,
                arguments_delta,
            } if id == "call_AB6AaRZ1FYZB2RwS6A5vbdqn" => Some(arguments_delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deltas, "{\"a\":12,\"b\":7,\"op\":\"add\"}",
        "arguments streamed as deltas"
    );
    assert_eq!(
        finish_of(&events),
        (
            FinishReason::ToolCalls,
            Usage {
                input_tokens: 134,
                output_tokens: 28,
                ..Usage::default()
            }
        )
    );

    // Steps 2 and 3: a call each, no reasoning.
    for (step, arguments) in [
        (1, json!({ "a": 19, "b": 3, "op": "multiply" })),
        (2, json!({ "a": 57, "b": 10, "op": "multiply" })),
    ] {
        let events = clean(served("gpt-5.1-codex-max", &responses[step]).await);
        assert_eq!(reasoning_of(&events), "");
        let arguments_seen: Vec<Value> = events
            .iter()
            .filter_map(|event| match event {
                ModelEvent::ToolCall { arguments, .. } => serde_json::from_str(arguments).ok(),
                _ => None,
            })
            .collect();
        assert_eq!(arguments_seen, [arguments], "step {}", step + 1);
        assert_eq!(finish_of(&events).0, FinishReason::ToolCalls);
    }

    // Step 4: the answer.
    let events = clean(served("gpt-5.1-codex-max", &responses[3]).await);
    assert_eq!(text_of(&events), "The final result is **570**.");
    assert_eq!(
        finish_of(&events),
        (
            FinishReason::Stop,
            Usage {
                input_tokens: 299,
                output_tokens: 12,
                ..Usage::default()
            }
        )
    );
}

#[tokio::test]
async fn a_recorded_stream_whose_item_ids_change_in_every_event() {
    let responses = recording("github-copilot-id-rotation.1.chunks.txt");
    let events = clean(served("gpt-5.3-codex", &responses[0]).await);
    assert_eq!(reasoning_of(&events), "**Counting character occurrences**");
    assert_eq!(
        text_of(&events),
        done_text(&responses[0], "response.output_text.done")
    );
    assert!(text_of(&events).starts_with("There are **3** letter"));
    // The item keeps the id it was announced with; it has no encrypted content.
    assert!(events.contains(&ModelEvent::ReasoningEnd {
        provider_metadata: Some(json!({ "openai": { "itemId": "capture-id-3" } })),
    }));
    assert_eq!(
        finish_of(&events),
        (
            FinishReason::Stop,
            Usage {
                input_tokens: 19,
                output_tokens: 105,
                reasoning_tokens: 44,
                cached_input_tokens: 0,
                cache_write_input_tokens: 0,
            }
        )
    );
}

#[tokio::test]
async fn a_recorded_web_search_is_shown_as_provider_run_tools() {
    let responses = recording("openai-web-search-tool.1.chunks.txt");
    let events = clean(served("gpt-5-mini", &responses[0]).await);
    let searches: Vec<(String, Value)> = events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::ProviderToolCall { id, name, input } => {
                assert_eq!(name, "web_search");
                Some((id.clone(), input["action"]["query"].clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(searches.len(), 6, "{searches:?}");
    assert_eq!(searches[0].1, "tech news today December 5 2025");
    let results: Vec<&ModelEvent> = events
        .iter()
        .filter(|event| matches!(event, ModelEvent::ProviderToolResult { failed: false, .. }))
        .collect();
    assert_eq!(results.len(), 6);
    // Reasoning with neither a summary nor encrypted content leaves no part behind.
    assert!(
        !events.iter().any(|event| matches!(
            event,
            ModelEvent::ReasoningEnd { .. } | ModelEvent::ReasoningDelta(_)
        )),
        "{events:?}"
    );
    let text = text_of(&events);
    assert_eq!(text, done_text(&responses[0], "response.output_text.done"));
    assert!(text.len() > 1000, "{text}");
    // Its twelve citations name seven pages: each is one source, with its title.
    let sources: Vec<(&str, Option<&str>)> = events
        .iter()
        .filter_map(|event| match event {
            ModelEvent::Source { url, title, .. } => Some((url.as_str(), title.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(sources.len(), 7, "{sources:?}");
    assert_eq!(
        sources[0],
        (
            "https://techcrunch.com/2025/12/05/petco-confirms-security-lapse-exposed-customers-personal-data/?utm_source=openai",
            Some("Petco confirms security lapse exposed customers’ personal data | TechCrunch")
        )
    );
    assert_eq!(
        finish_of(&events),
        (
            FinishReason::Stop,
            Usage {
                input_tokens: 31073,
                output_tokens: 4416,
                reasoning_tokens: 3712,
                cached_input_tokens: 3712,
                cache_write_input_tokens: 0,
            }
        )
    );
}

#[tokio::test]
async fn a_recorded_image_generation_is_shown_with_its_image() {
    let responses = recording("openai-image-generation-tool.1.chunks.txt");
    let events = clean(served("gpt-5", &responses[0]).await);
    let (id, input) = events
        .iter()
        .find_map(|event| match event {
            ModelEvent::ProviderToolCall { id, name, input } if name == "image_generation" => {
                Some((id.clone(), input.clone()))
            }
            _ => None,
        })
        .expect("the image generation call");
    assert_eq!(id, "ig_0df93c0bb83a72f20068c979f589c0819e9f0fc2d1a27aa1b8");
    assert!(input["revised_prompt"].is_string(), "{input}");
    let output = events
        .iter()
        .find_map(|event| match event {
            ModelEvent::ProviderToolResult {
                id: result_id,
                output,
                ..
            } if *result_id == id => Some(output.clone()),
            _ => None,
        })
        .expect("its result");
    assert!(
        output["result"]
            .as_str()
            .is_some_and(|image| image.starts_with("UklGR"))
    );
    assert_eq!(text_of(&events), "");
    assert_eq!(finish_of(&events).0, FinishReason::Stop);
}

#[tokio::test]
async fn a_recorded_error_ends_the_stream_with_its_message() {
    let responses = recording("openai-error.1.chunks.txt");
    let mut items = served("gpt-5-nano", &responses[0]).await;
    // `response.created` named the model before the response failed.
    let named = items.remove(0);
    assert_eq!(
        named,
        Ok(ModelEvent::ResponseModel("gpt-5-nano-2025-08-07".into()))
    );
    assert_eq!(items.len(), 1, "{items:?}");
    match &items[0] {
        Err(ModelError::Stream(message)) => {
            assert!(
                message.starts_with("You exceeded your current quota"),
                "{message}"
            )
        }
        other => panic!("a stream error: {other:?}"),
    }
}

#[tokio::test]
async fn a_reasoning_model_is_asked_for_summaries_and_encrypted_reasoning() {
    let stand_in = ResponsesStandIn::start(|_, _| {
        Reply::stream(stand_in::response(
            vec![stand_in::message(0, "msg_1", "Hi.")],
            3,
            2,
        ))
    })
    .await;
    for model_name in ["gpt-5-mini", "gpt-4.1"] {
        let model = OpenAiResponses::new(stand_in.base_url(), None, model_name).expect("client");
        let items: Vec<_> = model
            .stream(request("Hi"))
            .await
            .expect("stream")
            .collect()
            .await;
        assert_eq!(text_of(&clean(items)), "Hi.");
    }
    let requests = stand_in.requests();
    assert_eq!(
        requests[0]["include"],
        json!(["reasoning.encrypted_content"])
    );
    assert_eq!(requests[0]["reasoning"], json!({ "summary": "auto" }));
    assert!(requests[1].get("include").is_none(), "{}", requests[1]);
    assert!(requests[1].get("reasoning").is_none(), "{}", requests[1]);
    assert!(stand_in.received()[0].authorization.is_none());
}

#[tokio::test]
async fn an_http_error_is_a_provider_error_with_the_api_message() {
    let stand_in =
        ResponsesStandIn::start(|_, _| Reply::invalid_request("Unsupported model")).await;
    let model = OpenAiResponses::new(stand_in.base_url(), None, "o3").expect("client");
    let error = model.stream(request("Hi")).await.err().expect("an error");
    assert_eq!(
        error,
        ModelError::Provider {
            status: 400,
            message: "Unsupported model".into(),
            retry_after: None,
        }
    );
}
