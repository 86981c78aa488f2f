//! Tools that write into the reply (data parts, metadata) and sub-agents whose progress streams
//! into the parent's tool part.

#[path = "support/app.rs"]
mod app;
mod support;

use std::sync::Arc;
use std::time::Duration;

use app::{TestApp, read_events, submit, user_message};
use chatfn::agent::{Agent, FunctionTool, SubAgentTool};
use chatfn::model::offline::OfflineModel;
use chatfn::model::openai::OpenAiCompatible;
use serde_json::json;
use support::mock_openai::{MockOpenAi, ScriptedReply, last_role};

fn parent(mock: &MockOpenAi) -> Agent {
    let researcher = Agent::builder(Arc::new(
        OfflineModel::new().with_word_delay(Duration::from_millis(2)),
    ))
    .build();
    Agent::builder(Arc::new(
        OpenAiCompatible::new(mock.base_url(), None, "mock").expect("client"),
    ))
    .tool(SubAgentTool::new(
        "research",
        "Researches a topic.",
        researcher,
    ))
    .tool(FunctionTool::new(
        "index_files",
        "Indexes files, reporting progress.",
        json!({"type": "object", "properties": {}}),
        |_input, context| async move {
            for done in [1, 2, 3] {
                context
                    .writer
                    .data("indexing", Some("job-1"), json!({"done": done, "of": 3}));
            }
            context.writer.transient("toast", "indexing finished");
            context.writer.metadata(json!({"indexed": 3}));
            Ok(json!({"files": 3}))
        },
    ))
    .build()
}

#[tokio::test]
async fn a_sub_agent_streams_preliminary_outputs_then_its_answer() {
    let mock = MockOpenAi::start_with_rule(|request| {
        if last_role(request) == Some("tool") {
            ScriptedReply::say("Here is what research found.")
        } else {
            ScriptedReply::call_tool("call_r", "research", &json!({"task": "find the answer"}))
        }
    })
    .await;
    let app = TestApp::start(parent(&mock)).await;
    let token = app.session("s-sub").await;
    let events = read_events(
        app.send(
            &token,
            submit("s-sub", vec![user_message("u1", "research it")]),
        )
        .await,
        None,
    )
    .await;
    let outputs: Vec<_> = events
        .iter()
        .filter(|e| e.data != "[DONE]" && e.kind() == "tool-output-available")
        .map(app::Received::chunk)
        .collect();
    assert!(outputs.len() > 3, "progress streamed: {}", outputs.len());
    let (last, progress) = outputs.split_last().expect("outputs");
    assert!(progress.iter().all(|o| o["preliminary"] == true));
    assert!(last.get("preliminary").is_none());
    let answer = last["output"].as_str().expect("final text");
    assert!(answer.contains("find the answer"), "{answer}");
    // Progress grows: each preliminary output is the sub-agent's message so far.
    let lengths: Vec<usize> = progress
        .iter()
        .map(|o| {
            o["output"]["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p["text"].as_str().map_or(0, str::len))
                .sum()
        })
        .collect();
    assert!(lengths.windows(2).all(|w| w[0] <= w[1]));
    let messages = app.messages(&token, "s-sub").await;
    let tool = messages[1]["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find(|p| p["type"] == "tool-research")
        .cloned()
        .expect("tool part");
    assert_eq!(tool["state"], "output-available");
    assert_eq!(tool["output"], json!(answer));
    assert!(tool.get("preliminary").is_none());
    assert!(mock.requests()[1].to_string().contains("find the answer"));
}

#[tokio::test]
async fn data_parts_metadata_and_transient_data_reach_the_client() {
    let mock = MockOpenAi::start_with_rule(|request| {
        if last_role(request) == Some("tool") {
            ScriptedReply::say("Indexed.")
        } else {
            ScriptedReply::call_tool("call_i", "index_files", &json!({}))
        }
    })
    .await;
    let app = TestApp::start(parent(&mock)).await;
    let token = app.session("s-data").await;
    let events = read_events(
        app.send(&token, submit("s-data", vec![user_message("u1", "index")]))
            .await,
        None,
    )
    .await;
    let kinds = app::kinds(&events);
    let first_data = kinds
        .iter()
        .position(|k| k == "data-indexing")
        .expect("data");
    let output = kinds
        .iter()
        .position(|k| k == "tool-output-available")
        .expect("output");
    assert!(
        first_data < output,
        "data written by a tool precedes its result"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "data-indexing").count(), 3);
    assert!(kinds.contains(&"data-toast".to_owned()));
    assert!(kinds.contains(&"message-metadata".to_owned()));
    let messages = app.messages(&token, "s-data").await;
    let parts = messages[1]["parts"].as_array().cloned().unwrap_or_default();
    let data: Vec<_> = parts
        .iter()
        .filter(|p| p["type"] == "data-indexing")
        .collect();
    assert_eq!(data.len(), 1, "same id: replaced in place");
    assert_eq!(data[0]["data"], json!({"done": 3, "of": 3}));
    assert!(
        !parts.iter().any(|p| p["type"] == "data-toast"),
        "transient data is not stored"
    );
    assert_eq!(messages[1]["metadata"], json!({"indexed": 3}));
}
