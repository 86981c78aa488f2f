//! An agent used as a tool of another: the parent's model hands it a task, the sub-agent's reply
//! streams into the tool's part as preliminary outputs, and its final text is the tool's result.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Agent, ChunkSink, SinkClosed, Tool, ToolContext, ToolError, TurnRequest, run_turn};
use crate::ui::{MessageFold, Role, UIMessage, UIMessageChunk};

/// An [`Agent`] the parent's model calls as a tool with a `task`: the sub-agent runs a turn of its
/// own on the task and its final text becomes the tool's output.
pub struct SubAgentTool {
    name: String,
    description: String,
    agent: Arc<Agent>,
}

impl SubAgentTool {
    /// The sub-agent `agent` as a tool called `name`; `description` tells the parent's model
    /// when to hand it a task.
    pub fn new(name: impl Into<String>, description: impl Into<String>, agent: Agent) -> Self {
        SubAgentTool {
            name: name.into(),
            description: description.into(),
            agent: Arc::new(agent),
        }
    }
}

/// Shows the sub-agent's reply so far in the parent's tool part.
struct Progress<'a> {
    fold: MessageFold,
    context: &'a ToolContext,
}

#[async_trait]
impl ChunkSink for Progress<'_> {
    async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed> {
        let _ = self.fold.apply(chunk);
        // Deltas and boundaries change what the reader sees; finish and the like do not.
        if !matches!(
            chunk,
            UIMessageChunk::Start { .. } | UIMessageChunk::Finish { .. }
        ) {
            self.context.writer.preliminary(self.fold.message());
        }
        Ok(())
    }
}

#[async_trait]
impl Tool for SubAgentTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"task": {"type": "string", "description": "What the sub-agent should do, with everything it needs to know."}},
            "required": ["task"],
            "additionalProperties": false
        })
    }

    async fn execute(&self, input: Value, context: ToolContext) -> Result<Value, ToolError> {
        let task = input
            .get("task")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::new("`task` must be a string"))?;
        let reply = UIMessage::new(
            format!("{}-{}", self.name, context.tool_call_id),
            Role::Assistant,
        );
        let request = TurnRequest::new(
            context.chat_id.clone(),
            vec![UIMessage::user_text(
                format!("{}-task", context.tool_call_id),
                task,
            )],
            reply.clone(),
        );
        let mut progress = Progress {
            fold: MessageFold::continuing(reply),
            context: &context,
        };
        let outcome = run_turn(&self.agent, request, &mut progress, &context.stop).await;
        match outcome.error {
            Some(error) if outcome.message.text().is_empty() => Err(ToolError::new(format!(
                "the `{}` sub-agent failed: {error}",
                self.name
            ))),
            _ => Ok(Value::String(outcome.message.text())),
        }
    }
}
