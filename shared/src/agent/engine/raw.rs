//! Turns an agent's own code drives in place of the model loop ([`TurnHandler`]), and what such
//! code sees of its turn ([`RawTurn`]).

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::{Run, SinkClosed, model_messages};
use crate::agent::{Agent, ChatState, TurnControls};
use crate::model::{FinishReason, ModelMessage};
use crate::ui::{UIMessage, UIMessageChunk};

/// A turn your own code drives, in place of the engine's model loop. The engine has already
/// sent the reply's `start` and sends its `finish` (or `abort` when stopped) after
/// [`TurnHandler::run`] returns; in between, what the handler emits streams to every reader and
/// lands in the output log, and the reply it folds into is persisted when the turn completes.
/// The runner around it is the one every agent gets: the input log, the lease, stop requests,
/// hooks, state, deferred work and recovery.
pub struct RawTurn<'r, 'a> {
    pub(super) run: &'r mut Run<'a>,
    pub(super) history: &'r [UIMessage],
    pub(super) stop: &'r CancellationToken,
}

impl RawTurn<'_, '_> {
    /// The chat the turn belongs to.
    pub fn chat_id(&self) -> &str {
        &self.run.chat_id
    }

    /// The conversation before the reply (hydrated and compacted as the model would see it).
    pub fn history(&self) -> &[UIMessage] {
        self.history
    }

    /// The reply so far: everything emitted, folded the way the client folds it.
    pub fn message(&self) -> &UIMessage {
        self.run.fold.message()
    }

    /// The chat's state, saved when the turn completes if it changed.
    pub fn state(&self) -> &ChatState {
        &self.run.state
    }

    /// Injected messages and deferred work.
    pub fn controls(&self) -> &TurnControls {
        &self.run.controls
    }

    /// Fires when the client (or anyone holding the chat's token) stops the turn.
    pub fn stop_signal(&self) -> &CancellationToken {
        self.stop
    }

    /// Streams a chunk to the readers and the output log. An error means the turn cannot be
    /// written any more (its lease was taken over): return it.
    pub async fn emit(&mut self, chunk: UIMessageChunk) -> Result<(), SinkClosed> {
        self.run.emit(chunk).await
    }

    /// Ends the text, reasoning and tool input parts that are still open.
    pub async fn close_open_parts(&mut self) -> Result<(), SinkClosed> {
        self.run.close_open_parts().await
    }

    /// The prompt the agent's model would get now: instructions, history, the reply so far.
    pub fn model_messages(&self, agent: &Agent) -> Vec<ModelMessage> {
        model_messages(
            agent,
            self.history,
            self.run.fold.message(),
            &self.run.injected,
        )
    }
}

/// Drives turns in place of the engine's model loop (see [`RawTurn`]); set it with
/// `AgentBuilder::handler`.
#[async_trait]
pub trait TurnHandler: Send + Sync {
    /// Emits the reply's content; returns why it finished. Return early with the error of a
    /// failed `emit`.
    async fn run(&self, turn: &mut RawTurn<'_, '_>) -> Result<FinishReason, SinkClosed>;
}
