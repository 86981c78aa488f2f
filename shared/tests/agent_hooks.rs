//! Hooks and per-chat state, seen through the HTTP routes and a mock model.

#[path = "support/app.rs"]
mod app;
mod support;

use std::sync::{Arc, Mutex};

use app::{TestApp, kinds, read_events, submit, user_message};
use async_trait::async_trait;
use chatfn::agent::{Agent, ChatHooks, ChatState, FunctionTool, HookError, TurnInfo, TurnOutcome};
use chatfn::model::openai::OpenAiCompatible;
use chatfn::turn::ChatRecord;
use chatfn::ui::UIMessage;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::mock_openai::{MockOpenAi, ScriptedReply, last_role};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn push(&self, event: String) {
        self.0.lock().expect("lock").push(event);
    }

    fn events(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Visits {
    turns: u32,
    tool_calls: u32,
}

struct RecordingHooks(Recorder);

#[async_trait]
impl ChatHooks for RecordingHooks {
    async fn on_chat_start(&self, turn: &TurnInfo, _state: &ChatState) -> Result<(), HookError> {
        self.0.push(format!("chat-start {}", turn.chat_id));
        Ok(())
    }

    async fn on_turn_start(&self, turn: &TurnInfo, state: &ChatState) -> Result<(), HookError> {
        if turn
            .client_data
            .as_ref()
            .is_some_and(|data| data["plan"] == "expired")
        {
            return Err(HookError::new("your plan has expired"));
        }
        let turns = state
            .update(|visits: &mut Visits| {
                visits.turns += 1;
                visits.turns
            })
            .map_err(|e| HookError::new(e.to_string()))?;
        self.0.push(format!("turn-start {turns}"));
        Ok(())
    }

    async fn on_turn_complete(&self, _turn: &TurnInfo, _state: &ChatState, outcome: &TurnOutcome) {
        self.0.push(format!(
            "turn-complete {:?} error={}",
            outcome.finish_reason,
            outcome.error.is_some()
        ));
    }

    async fn choose_model(
        &self,
        turn: &TurnInfo,
        _state: &ChatState,
    ) -> Option<Arc<dyn chatfn::model::Model>> {
        let wants_offline = turn
            .client_data
            .as_ref()
            .is_some_and(|data| data["model"] == "offline");
        wants_offline.then(|| {
            Arc::new(chatfn::model::offline::OfflineModel::new()) as Arc<dyn chatfn::model::Model>
        })
    }

    async fn validate_message(
        &self,
        _turn: &TurnInfo,
        message: &UIMessage,
    ) -> Result<(), HookError> {
        if message.text().contains("forbidden") {
            return Err(HookError::new("that topic is not allowed here"));
        }
        Ok(())
    }

    async fn hydrate_messages(
        &self,
        _turn: &TurnInfo,
        stored: Vec<UIMessage>,
    ) -> Result<Vec<UIMessage>, HookError> {
        // Our own database knows one more thing about the user.
        let mut messages = vec![UIMessage::user_text("from-db", "My name is Ada.")];
        messages.extend(stored);
        Ok(messages)
    }
}

fn agent(model: OpenAiCompatible, recorder: Recorder) -> Agent {
    Agent::builder(Arc::new(model))
        .tool(FunctionTool::new(
            "count_visit",
            "Counts a visit in the chat's state.",
            json!({"type": "object", "properties": {}}),
            |_input, context| async move {
                let calls = context
                    .state
                    .update(|visits: &mut Visits| {
                        visits.tool_calls += 1;
                        visits.tool_calls
                    })
                    .map_err(|e| chatfn::agent::ToolError::new(e.to_string()))?;
                Ok(json!({"toolCalls": calls}))
            },
        ))
        .hooks(RecordingHooks(recorder))
        .build()
}

async fn start() -> (MockOpenAi, TestApp, Recorder) {
    let mock = MockOpenAi::start_with_rule(|request| {
        if last_role(request) == Some("tool") {
            ScriptedReply::say("Counted.")
        } else {
            ScriptedReply::call_tool("call_v", "count_visit", &json!({}))
        }
    })
    .await;
    let model = OpenAiCompatible::new(mock.base_url(), None, "mock").expect("client");
    let recorder = Recorder::default();
    let app = TestApp::start(agent(model, recorder.clone())).await;
    (mock, app, recorder)
}

#[tokio::test]
async fn hooks_fire_in_order_and_state_survives_between_turns() {
    let (mock, app, recorder) = start().await;
    let token = app.session("h-state").await;
    for (id, text) in [("u1", "hello"), ("u2", "again")] {
        let events = read_events(
            app.send(&token, submit("h-state", vec![user_message(id, text)]))
                .await,
            None,
        )
        .await;
        assert!(kinds(&events).contains(&"tool-output-available".to_owned()));
    }
    assert_eq!(
        recorder.events(),
        [
            "chat-start h-state",
            "turn-start 1",
            "turn-complete Stop error=false",
            "turn-start 2",
            "turn-complete Stop error=false"
        ]
    );
    let record = ChatRecord::decode(app.store.state("h-state").await.expect("store"));
    assert_eq!(record.state, Some(json!({"turns": 2, "tool_calls": 2})));
    // The model saw the hydrated history, not only what chatfn stored.
    let first = &mock.requests()[0];
    assert_eq!(first["messages"][0]["content"], "My name is Ada.");
}

#[tokio::test]
async fn a_refused_message_is_a_clear_error_and_leaves_no_trace() {
    let (mock, app, recorder) = start().await;
    let token = app.session("h-refuse").await;
    let response = app
        .send(
            &token,
            submit("h-refuse", vec![user_message("u1", "a forbidden thing")]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "that topic is not allowed here");
    assert!(app.messages(&token, "h-refuse").await.is_empty());
    assert!(mock.requests().is_empty());
    assert!(recorder.events().is_empty());
}

#[tokio::test]
async fn a_turn_refused_at_start_reports_why_and_still_completes() {
    let (mock, app, recorder) = start().await;
    let token = app.session("h-plan").await;
    let mut body = submit("h-plan", vec![user_message("u1", "hi")]);
    body["metadata"] = json!({"plan": "expired"});
    let events = read_events(app.send(&token, body).await, None).await;
    assert_eq!(kinds(&events), ["start", "error", "finish", "[DONE]"]);
    assert_eq!(events[1].chunk()["errorText"], "your plan has expired");
    assert!(mock.requests().is_empty());
    assert_eq!(
        recorder.events().last().map(String::as_str),
        Some("turn-complete Error error=true")
    );
}

#[tokio::test]
async fn a_hook_picks_the_model_per_turn() {
    let (mock, app, _) = start().await;
    let token = app.session("h-model").await;
    let mut body = submit("h-model", vec![user_message("u1", "hello")]);
    body["metadata"] = json!({"model": "offline"});
    let events = read_events(app.send(&token, body).await, None).await;
    let text: String = events
        .iter()
        .filter(|e| e.data != "[DONE]" && e.kind() == "text-delta")
        .map(|e| e.chunk()["delta"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(text.contains("offline model"), "{text}");
    assert!(
        mock.requests().is_empty(),
        "the agent's own model was not called"
    );
}
