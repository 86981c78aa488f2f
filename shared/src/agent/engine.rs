//! The multi-step loop of one turn: model call, tool calls, tool results, next step, until the
//! model stops, the step limit, a stop request or a failure. Every chunk goes to a sink as it is
//! produced and into a fold, so the reply so far is always known.

mod metadata;
mod parts;
mod raw;
mod spans;
mod step;
mod tool_calls;

use std::future::Future;

use async_trait::async_trait;
use futures::future::{Either, select};
use tokio_util::sync::CancellationToken;

use super::approval::ApprovalSigner;
use super::{Agent, TurnControls};
use crate::model::{FinishReason, ModelMessage, Usage};
use crate::ui::{ConvertOptions, MessageFold, UIMessage, UIMessageChunk, to_model_messages};
use step::step;
use tool_calls::run_answered_approvals;

pub use raw::{RawTurn, TurnHandler};
pub(crate) use spans::count as span_count;

/// Where the engine's chunks go. An error means nobody can take them any more (the store is gone,
/// the lease was lost): the engine ends the turn at once.
#[async_trait]
pub trait ChunkSink: Send {
    /// Hands one chunk on, in the order the engine produced it.
    async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed>;
}

/// The sink cannot take the turn's chunks any more; the reason says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the turn's output cannot be written: {0}")]
pub struct SinkClosed(pub String);

/// What a turn starts from.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// The chat the turn belongs to.
    pub chat_id: String,
    /// The conversation before the reply.
    pub history: Vec<UIMessage>,
    /// The reply: a new empty assistant message, or the assistant message being continued (after
    /// tool outputs or approvals).
    pub reply: UIMessage,
    /// The chat's state, shared with the tools.
    pub state: super::ChatState,
    /// Signs approval requests and checks the answers. Without one, approval requests go out
    /// unsigned and answers are trusted as the host hands them over.
    pub approvals: Option<ApprovalSigner>,
    /// Injected messages and deferred work of the turn, shared with hooks and tools.
    pub controls: TurnControls,
}

impl TurnRequest {
    /// A turn of `chat_id` answering `history` with `reply`, with no state, signer or controls.
    pub fn new(chat_id: impl Into<String>, history: Vec<UIMessage>, reply: UIMessage) -> Self {
        TurnRequest {
            chat_id: chat_id.into(),
            history,
            reply,
            state: Default::default(),
            approvals: None,
            controls: Default::default(),
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone)]
pub struct TurnOutcome {
    /// The reply as folded from the chunks that were emitted.
    pub message: UIMessage,
    /// Why the model stopped (`Error` when the sink closed under the turn).
    pub finish_reason: FinishReason,
    /// The tokens this turn used, summed over its steps.
    pub usage: Usage,
    /// The usage of every turn of the chat so far, this one included (the engine only knows
    /// this turn's; the runner adds the chat's earlier turns).
    pub total_usage: Usage,
    /// The model calls the turn made.
    pub steps: usize,
    /// True when a stop request ended the turn.
    pub stopped: bool,
    /// The first error shown to the client, if any.
    pub error: Option<String>,
}

struct Run<'a> {
    sink: &'a mut dyn ChunkSink,
    fold: MessageFold,
    error: Option<String>,
    state: super::ChatState,
    chat_id: String,
    approvals: Option<ApprovalSigner>,
    controls: TurnControls,
    /// Messages injected during the turn, which the model sees after the reply so far.
    injected: Vec<UIMessage>,
    /// What the turn's span reports that only the engine measures.
    figures: spans::TurnFigures,
}

impl Run<'_> {
    async fn emit(&mut self, chunk: UIMessageChunk) -> Result<(), SinkClosed> {
        // The fold only rejects chunks the engine never produces out of order.
        if let Err(error) = self.fold.apply(&chunk) {
            tracing::warn!("engine emitted a chunk its own fold rejects: {error}");
        }
        if let UIMessageChunk::Error { error_text } = &chunk {
            self.error.get_or_insert_with(|| error_text.clone());
        }
        self.sink.emit(&chunk).await
    }

    async fn close_open_parts(&mut self) -> Result<(), SinkClosed> {
        for chunk in self.fold.closing_chunks() {
            self.emit(chunk).await?;
        }
        Ok(())
    }
}

/// Ends a turn that a hook refused before the model was called: the client sees the reason as
/// an `error` chunk and the turn finishes with reason `error`.
pub async fn refuse_turn(reply: UIMessage, sink: &mut dyn ChunkSink, reason: &str) -> TurnOutcome {
    let mut run = Run {
        sink,
        fold: MessageFold::continuing(reply),
        error: None,
        state: super::ChatState::default(),
        chat_id: String::new(),
        approvals: None,
        controls: TurnControls::default(),
        injected: Vec::new(),
        figures: spans::TurnFigures::default(),
    };
    let message_id = run.fold.message().id.clone();
    let chunks = [
        UIMessageChunk::Start {
            message_id: Some(message_id),
            message_metadata: None,
        },
        UIMessageChunk::Error {
            error_text: reason.to_owned(),
        },
        UIMessageChunk::Finish {
            finish_reason: Some(FinishReason::Error),
            message_metadata: None,
        },
    ];
    for chunk in chunks {
        if run.emit(chunk).await.is_err() {
            break;
        }
    }
    TurnOutcome {
        message: run.fold.into_message(),
        finish_reason: FinishReason::Error,
        usage: Usage::default(),
        total_usage: Usage::default(),
        steps: 0,
        stopped: false,
        error: Some(reason.to_owned()),
    }
}

/// Runs `future` unless `stop` fires first.
async fn unless_stopped<F: Future>(stop: &CancellationToken, future: F) -> Option<F::Output> {
    let cancelled = std::pin::pin!(stop.cancelled());
    let future = std::pin::pin!(future);
    match select(future, cancelled).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

enum StepEnd {
    /// The model asked for tools that ran on the server: call it again with their results.
    Continue,
    Done(FinishReason),
    Stopped,
}

/// Runs one turn of `agent`, streaming its chunks into `sink`.
pub async fn run_turn(
    agent: &Agent,
    request: TurnRequest,
    sink: &mut dyn ChunkSink,
    stop: &CancellationToken,
) -> TurnOutcome {
    // One tool list for the whole turn, however the servers' lists change meanwhile.
    let turn_agent = match agent.handler() {
        Some(_) => None,
        None => unless_stopped(stop, agent.with_turn_tools()).await,
    };
    let agent = turn_agent.as_ref().unwrap_or(agent);
    let message_id = request.reply.id.clone();
    let mut run = Run {
        sink,
        fold: MessageFold::continuing(request.reply),
        error: None,
        state: request.state.clone(),
        chat_id: request.chat_id.clone(),
        approvals: request.approvals.clone(),
        controls: request.controls.clone(),
        injected: Vec::new(),
        figures: spans::TurnFigures::default(),
    };
    let mut usage = Usage::default();
    let mut steps = 0;
    let result = drive(
        agent,
        &request.chat_id,
        &request.history,
        &mut run,
        &mut usage,
        &mut steps,
        stop,
        message_id,
    )
    .await;
    run.figures.record();
    let (finish_reason, stopped) = match result {
        Ok(StepEnd::Stopped) => (FinishReason::Stop, true),
        Ok(StepEnd::Done(reason)) => (reason, false),
        Ok(StepEnd::Continue) => (FinishReason::ToolCalls, false),
        Err(closed) => {
            tracing::warn!(chat = %request.chat_id, "turn ended early: {closed}");
            run.error.get_or_insert(closed.0);
            (FinishReason::Error, false)
        }
    };
    TurnOutcome {
        message: run.fold.into_message(),
        finish_reason,
        usage,
        total_usage: usage,
        steps,
        stopped,
        error: run.error,
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    agent: &Agent,
    chat_id: &str,
    history: &[UIMessage],
    run: &mut Run<'_>,
    usage: &mut Usage,
    steps: &mut usize,
    stop: &CancellationToken,
    message_id: String,
) -> Result<StepEnd, SinkClosed> {
    run.emit(UIMessageChunk::Start {
        message_id: Some(message_id),
        message_metadata: None,
    })
    .await?;
    if let Some(handler) = agent.handler() {
        let mut turn = RawTurn {
            run: &mut *run,
            history,
            stop,
        };
        let handled = handler.run(&mut turn).await?;
        run.close_open_parts().await?;
        *steps = 1;
        if stop.is_cancelled() {
            run.emit(UIMessageChunk::Abort {
                reason: Some("stopped".to_owned()),
            })
            .await?;
            return Ok(StepEnd::Stopped);
        }
        finish(run, handled, usage).await?;
        return Ok(StepEnd::Done(handled));
    }
    if run_answered_approvals(agent, chat_id, run, stop).await? {
        run.emit(UIMessageChunk::Abort {
            reason: Some("stopped".to_owned()),
        })
        .await?;
        return Ok(StepEnd::Stopped);
    }
    let mut end = StepEnd::Done(FinishReason::Stop);
    while *steps < agent.max_steps() {
        if stop.is_cancelled() {
            end = StepEnd::Stopped;
            break;
        }
        *steps += 1;
        end = step(agent, chat_id, history, run, usage, stop).await?;
        if !matches!(end, StepEnd::Continue) {
            break;
        }
    }
    match end {
        StepEnd::Stopped => {
            run.emit(UIMessageChunk::Abort {
                reason: Some("stopped".to_owned()),
            })
            .await?;
        }
        StepEnd::Done(reason) => finish(run, reason, usage).await?,
        // The step limit came before the model was done with its tools.
        StepEnd::Continue => finish(run, FinishReason::ToolCalls, usage).await?,
    }
    Ok(end)
}

/// Ends the reply: its reason, and the turn's usage as message metadata where it is known.
async fn finish(run: &mut Run<'_>, reason: FinishReason, usage: &Usage) -> Result<(), SinkClosed> {
    run.emit(UIMessageChunk::Finish {
        finish_reason: Some(reason),
        message_metadata: metadata::usage_metadata(usage),
    })
    .await
}

fn model_messages(
    agent: &Agent,
    history: &[UIMessage],
    reply: &UIMessage,
    injected: &[UIMessage],
) -> Vec<ModelMessage> {
    let mut messages = Vec::with_capacity(history.len() + injected.len() + 2);
    if let Some(system) = agent.system_prompt() {
        messages.push(ModelMessage::System {
            content: system.to_owned(),
        });
    }
    let options = ConvertOptions {
        ignore_incomplete_tool_calls: true,
    };
    messages.extend(to_model_messages(history, options));
    messages.extend(to_model_messages(std::slice::from_ref(reply), options));
    messages.extend(to_model_messages(injected, options));
    messages
}
