//! A research desk: the agent hands research to a sub-agent (whose reply so far streams into the
//! tool's part), cites its sources as typed `data-source` parts, marks its replies with typed
//! message metadata, and names the chat in deferred work once a turn is over. The types the
//! frontend sees are generated as TypeScript (`web/research-desk.ts`) from the Rust types.

use std::sync::Arc;

use async_trait::async_trait;
use chatfn::agent::{
    Agent, ChatHooks, ChatState, FunctionTool, SubAgentTool, ToolError, TurnInfo, TurnOutcome,
};
use chatfn::model::Model;
use chatfn::ui::DataType;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A source the desk cites: a `data-source` part of the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Source {
    /// The source's title, as the reader should see it.
    pub title: String,
    pub url: String,
}

impl DataType for Source {
    const NAME: &'static str = "source";
}

/// The desk's message metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DeskMetadata {
    /// How many sources the reply cites.
    pub cited_sources: u32,
}

/// What the desk keeps about a chat between turns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeskState {
    /// The chat's title, from its first question.
    pub title: Option<String>,
    pub cited_sources: u32,
}

pub const INSTRUCTIONS: &str = "You run a research desk. Hand questions that need facts to the \
    `research` tool, cite every source you use with `cite`, then answer briefly.";

pub const RESEARCHER_INSTRUCTIONS: &str =
    "You are a careful researcher. Answer the task with facts and name your sources.";

/// The desk, with `model` for itself and for its researcher.
pub fn agent(model: Arc<dyn Model>) -> Agent {
    let researcher = Agent::builder(model.clone())
        .system_prompt(RESEARCHER_INSTRUCTIONS)
        .max_steps(4)
        .build();
    Agent::builder(model)
        .system_prompt(INSTRUCTIONS)
        .tool(SubAgentTool::new(
            "research",
            "Researches a task and reports what it found.",
            researcher,
        ))
        .tool(FunctionTool::typed(
            "cite",
            "Cites a source in the reply.",
            |source: Source, context| async move {
                let cited = context
                    .state
                    .update(|state: &mut DeskState| {
                        state.cited_sources += 1;
                        state.cited_sources
                    })
                    .map_err(|e| ToolError::new(e.to_string()))?;
                context
                    .writer
                    .part(Some(&format!("source-{cited}")), &source);
                context.writer.typed_metadata(&DeskMetadata {
                    cited_sources: cited,
                });
                Ok(serde_json::json!({"cited": cited}))
            },
        ))
        .hooks(ChatTitles)
        .build()
}

/// Names a chat after its first question, in work deferred to the end of the turn (where a real
/// desk would call a model or its database).
struct ChatTitles;

#[async_trait]
impl ChatHooks for ChatTitles {
    async fn on_turn_complete(&self, turn: &TurnInfo, state: &ChatState, _outcome: &TurnOutcome) {
        if !turn.first_turn {
            return;
        }
        let state = state.clone();
        let question = turn.chat_id.clone();
        turn.controls.defer(async move {
            let title = format!("Research: {question}");
            let _ = state.update(|desk: &mut DeskState| desk.title = Some(title));
        });
    }
}

/// The TypeScript of the desk's message types, for the frontend: `useChat<ResearchDeskMessage>`.
pub fn typescript() -> String {
    let mut out = String::from(
        "// Generated from examples/research-desk/src/lib.rs by its tests; do not edit.\n\
         import type { UIMessage } from 'ai';\n\n",
    );
    for decl in [Source::decl(), DeskMetadata::decl()] {
        out.push_str("export ");
        out.push_str(&decl);
        out.push_str("\n\n");
    }
    out.push_str(&format!(
        "export type ResearchDeskMessage = UIMessage<{}, {{ {}: {} }}>;\n",
        DeskMetadata::name(),
        Source::NAME,
        Source::name()
    ));
    out
}
