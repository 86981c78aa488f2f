//! Agents on `openai-responses` in a tool loop, against a stand-in that, like OpenAI's reasoning
//! models without storage, refuses a follow-up request that does not send the encrypted
//! reasoning item back: the recorded loop of `tests/data/openai-responses/`, and the stock agent
//! as every host builds it from the configuration, over the HTTP routes.

#[path = "support/app.rs"]
mod app;
#[path = "support/openai_responses_stand_in.rs"]
mod stand_in;

use std::sync::Arc;

use app::{TestApp, read_events, submit, user_message};
use chatfn::agent::{Agent, FunctionTool, ToolError, configured_agent};
use chatfn::config::Config;
use chatfn::model::openai_responses::OpenAiResponses;
use chatfn::testing::TestServer;
use chatfn::ui::UIPart;
use serde_json::{Value, json};
use stand_in::{Reply, ResponsesStandIn, input, of_type, recording};

/// Why the API would refuse `request`, whose conversation holds the reasoning item `id` (with
/// `encrypted` content) and the call `call_id` it led to, with that call's output.
fn missing_reasoning(request: &Value, id: &str, encrypted: &str, call_id: &str) -> Option<String> {
    let items = input(request);
    let reasoning = items
        .iter()
        .position(|item| item["type"] == "reasoning" && item["id"] == id);
    let call = items
        .iter()
        .position(|item| item["type"] == "function_call" && item["call_id"] == call_id);
    let output = items
        .iter()
        .position(|item| item["type"] == "function_call_output" && item["call_id"] == call_id);
    let (Some(reasoning), Some(call), Some(_)) = (reasoning, call, output) else {
        return Some(format!(
            "Item for call '{call_id}' of type 'function_call' was provided without its \
             required 'reasoning' item: '{id}'."
        ));
    };
    if items[reasoning]["encrypted_content"] != encrypted {
        return Some(format!(
            "The encrypted content for item {id} could not be verified."
        ));
    }
    (reasoning > call).then(|| format!("Item '{id}' must come before the call it led to."))
}

fn calculator() -> FunctionTool {
    FunctionTool::new(
        "calculator",
        "A minimal calculator for basic arithmetic. Call it once per step.",
        json!({
            "type": "object",
            "properties": {
                "a": {"type": "number"},
                "b": {"type": "number"},
                "op": {"type": "string", "enum": ["add", "subtract", "multiply", "divide"]},
            },
            "required": ["a", "b", "op"],
        }),
        |input, _context| async move {
            let (Some(a), Some(b)) = (input["a"].as_f64(), input["b"].as_f64()) else {
                return Err(ToolError::new("a and b must be numbers"));
            };
            let result = match input["op"].as_str() {
                Some("add") => a + b,
                Some("subtract") => a - b,
                Some("multiply") => a * b,
                Some("divide") if b != 0.0 => a / b,
                _ => return Err(ToolError::new("unknown operation")),
            };
            Ok(json!(result))
        },
    )
}

#[tokio::test]
async fn the_recorded_tool_loop_runs_to_its_answer_sending_the_reasoning_back() {
    let steps = recording("openai-reasoning-encrypted-content.1.chunks.txt");
    let later_turn = recording("github-copilot-id-rotation.1.chunks.txt");
    let reasoning_done = of_type(&steps[0], "response.output_item.done")[0]["item"].clone();
    let reasoning_id = reasoning_done["id"].as_str().expect("id").to_owned();
    let encrypted = reasoning_done["encrypted_content"]
        .as_str()
        .expect("encrypted content")
        .to_owned();
    let first_call = "call_AB6AaRZ1FYZB2RwS6A5vbdqn";

    let stand_in = {
        let (reasoning_id, encrypted) = (reasoning_id.clone(), encrypted.clone());
        ResponsesStandIn::start(move |number, request| {
            if number > 0
                && let Some(refusal) =
                    missing_reasoning(request, &reasoning_id, &encrypted, first_call)
            {
                return Reply::invalid_request(refusal);
            }
            let events = match steps.get(number) {
                Some(step) => step.clone(),
                None => later_turn[0].clone(),
            };
            // The last step arrives one byte per write.
            if number == 3 {
                Reply::stream(events).byte_by_byte()
            } else {
                Reply::stream(events)
            }
        })
        .await
    };
    let model = OpenAiResponses::new(
        stand_in.base_url(),
        Some("sk-test".into()),
        "gpt-5.1-codex-max",
    )
    .expect("client");
    let agent = Agent::builder(Arc::new(model)).tool(calculator()).build();
    let server = TestServer::start(agent).await.expect("server");
    let chat = server.chat("calc").await.expect("chat");

    let reply = chat
        .send_text(
            "u1",
            "Compute ((12 + 7) * 3) * 10 with the calculator, one step at a time.",
        )
        .await
        .expect("reply");
    let kinds = reply.kinds();
    assert!(!kinds.contains(&"error".to_owned()), "{kinds:?}");
    assert_eq!(reply.text(), "The final result is **570**.");
    let outputs: Vec<Value> = reply
        .message
        .tool_parts()
        .map(|part| part.output.clone().unwrap_or_default())
        .collect();
    assert_eq!(outputs, [json!(19.0), json!(57.0), json!(570.0)]);
    let reasoning: Vec<(String, Option<Value>)> = reply
        .message
        .parts
        .iter()
        .filter_map(|part| match part {
            UIPart::Reasoning(part) => Some((part.text.clone(), part.provider_metadata.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning.len(), 1, "{reasoning:?}");
    assert!(reasoning[0].0.starts_with("**Calculating step-by-step"));
    assert_eq!(
        reasoning[0].1,
        Some(
            json!({ "openai": { "itemId": reasoning_id, "reasoningEncryptedContent": encrypted } })
        )
    );
    let finish = reply
        .chunks
        .iter()
        .filter_map(|chunk| serde_json::to_value(chunk).ok())
        .find(|chunk| chunk["type"] == "finish")
        .expect("finish");
    assert_eq!(finish["finishReason"], "stop");
    let requests = stand_in.requests();
    assert_eq!(requests.len(), 4, "one request per step, none refused");
    for request in &requests {
        assert_eq!(request["store"], false);
        assert_eq!(request["include"], json!(["reasoning.encrypted_content"]));
    }

    // A later turn sends the reasoning back too, from the stored conversation.
    let later = chat
        .send_text("u2", "Thanks! And how many r's in strawberry?")
        .await
        .expect("reply");
    assert!(
        !later.kinds().contains(&"error".to_owned()),
        "{:?}",
        later.kinds()
    );
    assert!(
        later.text().starts_with("There are **3** letter"),
        "{}",
        later.text()
    );
    assert_eq!(stand_in.requests().len(), 5);
}

#[tokio::test]
async fn the_stock_agent_on_the_local_routes_round_trips_its_reasoning() {
    let stand_in = ResponsesStandIn::start(|number, request| match number {
        0 => Reply::stream(stand_in::response(
            vec![
                stand_in::reasoning(0, "rs_a", "The user wants a d20 roll.", "enc-a"),
                stand_in::function_call(1, "call_d20", "roll_dice", "{\"sides\":20}"),
            ],
            40,
            25,
        )),
        _ => {
            if let Some(refusal) = missing_reasoning(request, "rs_a", "enc-a", "call_d20") {
                return Reply::invalid_request(refusal);
            }
            let output = input(request)
                .iter()
                .find(|item| item["type"] == "function_call_output")
                .and_then(|item| item["output"].as_str())
                .and_then(|output| serde_json::from_str::<Value>(output).ok())
                .unwrap_or_default();
            let text = format!("You rolled {}.", output["total"]);
            Reply::stream(stand_in::response(
                vec![stand_in::message(0, "msg_b", &text)],
                80,
                6,
            ))
            .byte_by_byte()
        }
    })
    .await;
    let base_url = stand_in.base_url();
    let config = Config::from_lookup(|name| match name {
        "CHATFN_MODEL_PROVIDER" => Some("openai-responses".to_owned()),
        "CHATFN_MODEL_BASE_URL" => Some(base_url.clone()),
        "CHATFN_MODEL_API_KEY" => Some("sk-test".to_owned()),
        "CHATFN_MODEL_REASONING_EFFORT" => Some("low".to_owned()),
        _ => None,
    })
    .expect("config");
    let model = chatfn::model::from_config(&config).expect("model");
    assert_eq!(model.id(), "openai-responses:gpt-5-mini");
    let app = TestApp::start(configured_agent(&config, model)).await;
    let token = app.session("dice").await;
    let events = read_events(
        app.send(
            &token,
            submit("dice", vec![user_message("u1", "Roll a d20")]),
        )
        .await,
        None,
    )
    .await;
    let chunks: Vec<Value> = events
        .iter()
        .filter(|event| event.data != "[DONE]")
        .map(app::Received::chunk)
        .collect();
    let of = |kind: &str| -> Vec<&Value> {
        chunks
            .iter()
            .filter(|chunk| chunk["type"] == kind)
            .collect()
    };
    assert!(of("error").is_empty(), "{chunks:?}");
    let reasoning: String = of("reasoning-delta")
        .iter()
        .filter_map(|chunk| chunk["delta"].as_str())
        .collect();
    assert_eq!(reasoning, "The user wants a d20 roll.");
    assert_eq!(
        of("reasoning-end")[0]["providerMetadata"],
        json!({ "openai": { "itemId": "rs_a", "reasoningEncryptedContent": "enc-a" } })
    );
    let input_deltas: String = of("tool-input-delta")
        .iter()
        .filter_map(|chunk| chunk["inputTextDelta"].as_str())
        .collect();
    assert_eq!(input_deltas, "{\"sides\":20}");
    assert_eq!(of("tool-input-available")[0]["toolCallId"], "call_d20");
    assert_eq!(
        of("tool-input-available")[0]["input"],
        json!({ "sides": 20 })
    );
    let total = of("tool-output-available")[0]["output"]["total"].clone();
    let text: String = of("text-delta")
        .iter()
        .filter_map(|chunk| chunk["delta"].as_str())
        .collect();
    assert_eq!(text, format!("You rolled {total}."));
    assert_eq!(of("finish")[0]["finishReason"], "stop");
    assert_eq!(
        events.last().map(|event| event.data.as_str()),
        Some("[DONE]")
    );

    let received = stand_in.received();
    assert_eq!(received.len(), 2, "the follow-up was not refused");
    assert_eq!(received[0].authorization.as_deref(), Some("Bearer sk-test"));
    let first = &received[0].body;
    assert_eq!(first["model"], "gpt-5-mini");
    assert_eq!(
        first["reasoning"],
        json!({ "effort": "low", "summary": "auto" })
    );
    assert_eq!(first["input"][0]["role"], "system");
    let tools: Vec<&str> = first["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert_eq!(tools, ["current_time", "roll_dice"]);

    let messages = app.messages(&token, "dice").await;
    let stored_reasoning = messages[1]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|part| part["type"] == "reasoning")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        stored_reasoning["providerMetadata"]["openai"]["reasoningEncryptedContent"],
        "enc-a"
    );
}

#[tokio::test]
async fn a_recorded_web_search_answer_shows_its_searches_and_cited_pages() {
    let search = recording("openai-web-search-tool.1.chunks.txt");
    let stand_in = ResponsesStandIn::start(move |_, _| Reply::stream(search[0].clone())).await;
    let model = OpenAiResponses::new(stand_in.base_url(), Some("sk-test".into()), "gpt-5-mini")
        .expect("client");
    let server = TestServer::start(Agent::builder(Arc::new(model)).build())
        .await
        .expect("server");
    let chat = server.chat("news").await.expect("chat");
    let reply = chat
        .send_text("u1", "Tech news today?")
        .await
        .expect("reply");
    let kinds = reply.kinds();
    assert!(!kinds.contains(&"error".to_owned()), "{kinds:?}");
    let sources: Vec<(String, Option<String>)> = reply
        .message
        .parts
        .iter()
        .filter_map(|part| match part {
            UIPart::SourceUrl(source) => Some((source.url.clone(), source.title.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sources.len(), 7, "{sources:?}");
    assert!(
        sources
            .iter()
            .all(|(url, title)| url.starts_with("https://") && title.is_some())
    );
    // After the answer's text, which they cite; the searches before it.
    let position = |wanted: fn(&UIPart) -> bool| reply.message.parts.iter().position(wanted);
    let first_source = position(|part| matches!(part, UIPart::SourceUrl(_)));
    let text = position(|part| matches!(part, UIPart::Text(_)));
    assert!(text < first_source, "{kinds:?}");
    assert_eq!(reply.message.tool_parts().count(), 6, "the six searches");
    // What a reload is served is what streamed: sources included.
    let stored = chat.messages().await.expect("messages");
    assert_eq!(stored.last(), Some(&reply.message));
}
