//! The multi-step loop of one turn: model call, tool calls, tool results, next step, until the
//! model stops, the step limit, a stop request or a failure. Every chunk goes to a sink as it is
//! produced and into a fold, so the reply so far is always known.

use std::future::Future;
use std::ops::ControlFlow;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::{Either, select};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::approval::{ApprovalClaim, ApprovalSigner};
use super::{Agent, ToolContext, TurnControls};
use crate::model::{FinishReason, ModelEvent, ModelMessage, ModelRequest, ModelStream, Usage};
use crate::ui::{ConvertOptions, MessageFold, UIMessage, UIMessageChunk, to_model_messages};

/// Where the engine's chunks go. An error means nobody can take them any more (the store is gone,
/// the lease was lost): the engine ends the turn at once.
#[async_trait]
pub trait ChunkSink: Send {
    async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the turn's output cannot be written: {0}")]
pub struct SinkClosed(pub String);

/// What a turn starts from.
#[derive(Debug, Clone)]
pub struct TurnRequest {
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
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// The usage of every turn of the chat so far, this one included (the engine only knows
    /// this turn's; the runner adds the chat's earlier turns).
    pub total_usage: Usage,
    pub steps: usize,
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

/// A turn your own code drives, in place of the engine's model loop. The engine has already
/// sent the reply's `start` and sends its `finish` (or `abort` when stopped) after
/// [`TurnHandler::run`] returns; in between, what the handler emits streams to every reader and
/// lands in the output log, and the reply it folds into is persisted when the turn completes.
/// The runner around it is the one every agent gets: the input log, the lease, stop requests,
/// hooks, state, deferred work and recovery.
pub struct RawTurn<'r, 'a> {
    run: &'r mut Run<'a>,
    history: &'r [UIMessage],
    stop: &'r CancellationToken,
}

impl RawTurn<'_, '_> {
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
    pub fn state(&self) -> &super::ChatState {
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
        finish(run, handled).await?;
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
        StepEnd::Done(reason) => finish(run, reason).await?,
        // The step limit came before the model was done with its tools.
        StepEnd::Continue => finish(run, FinishReason::ToolCalls).await?,
    }
    Ok(end)
}

async fn finish(run: &mut Run<'_>, reason: FinishReason) -> Result<(), SinkClosed> {
    run.emit(UIMessageChunk::Finish {
        finish_reason: Some(reason),
        message_metadata: None,
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

/// How many times a model call is retried when it fails before its first event.
const MODEL_RETRIES: u32 = 2;

/// Opens the model stream, retrying transient failures (rate limits, overload, broken
/// connections) as long as nothing has been streamed: once an event arrived, a retry would
/// repeat it to the client.
async fn open_stream(
    agent: &Agent,
    chat_id: &str,
    request: ModelRequest,
) -> Result<crate::model::ModelStream, crate::model::ModelError> {
    let idle = agent.model_idle_timeout();
    let mut attempt = 0;
    loop {
        let opened = crate::runtime::timeout(idle, agent.model().stream(request.clone()))
            .await
            .unwrap_or(Err(crate::model::ModelError::Idle(idle)));
        let error = match opened.map(|stream| crate::model::idle_limited(stream, idle)) {
            Ok(mut stream) => match stream.next().await {
                Some(Err(error)) if error.is_transient() && attempt < MODEL_RETRIES => error,
                first => {
                    let first = futures::stream::iter(first);
                    return Ok(Box::pin(first.chain(stream)));
                }
            },
            Err(error) if error.is_transient() && attempt < MODEL_RETRIES => error,
            Err(error) => return Err(error),
        };
        attempt += 1;
        let delay = std::time::Duration::from_millis(250 * 4u64.pow(attempt - 1));
        tracing::info!(chat = %chat_id, attempt, ?delay, "retrying the model call: {error}");
        crate::runtime::sleep(delay).await;
    }
}

struct PendingCall {
    id: String,
    name: String,
    input: Value,
}

/// What the model asked for in a step, once its stream has ended.
#[derive(Default)]
struct StepCalls {
    /// Accepted calls that need no approval.
    accepted: Vec<PendingCall>,
    /// Calls refused (an unknown tool, an invalid input): the model reads why in the next step.
    rejected: usize,
    /// Calls sent to a person for approval.
    awaiting_approval: usize,
    /// The finish reason the provider reported.
    reason: Option<FinishReason>,
}

/// One model call of the turn and the tools it asks for: opens the call, streams what the model
/// says, then runs the server's tools and decides whether the turn goes on.
async fn step(
    agent: &Agent,
    chat_id: &str,
    history: &[UIMessage],
    run: &mut Run<'_>,
    usage: &mut Usage,
    stop: &CancellationToken,
) -> Result<StepEnd, SinkClosed> {
    let stream = match open_step(agent, chat_id, history, run, stop).await? {
        ControlFlow::Continue(stream) => stream,
        ControlFlow::Break(end) => return Ok(end),
    };
    let calls = match read_step(agent, chat_id, run, usage, stop, stream).await? {
        ControlFlow::Continue(calls) => calls,
        ControlFlow::Break(end) => return Ok(end),
    };
    end_step(agent, chat_id, run, calls, stop).await
}

/// Starts the step and calls the model with the conversation so far (the messages injected
/// since the last step included). A stop or a failed call ends the step here.
async fn open_step(
    agent: &Agent,
    chat_id: &str,
    history: &[UIMessage],
    run: &mut Run<'_>,
    stop: &CancellationToken,
) -> Result<ControlFlow<StepEnd, ModelStream>, SinkClosed> {
    let pending = run.controls.take_pending();
    run.injected.extend(pending);
    let request = ModelRequest {
        messages: model_messages(agent, history, run.fold.message(), &run.injected),
        tools: agent.tools().iter().map(|tool| tool.spec()).collect(),
        ..ModelRequest::default()
    };
    run.emit(UIMessageChunk::StartStep).await?;
    match unless_stopped(stop, open_stream(agent, chat_id, request)).await {
        None => Ok(ControlFlow::Break(stopped_step(run).await?)),
        Some(Ok(stream)) => Ok(ControlFlow::Continue(stream)),
        Some(Err(error)) => {
            tracing::warn!(chat = %chat_id, model = %agent.model().id(), "model call failed: {error}");
            run.emit(UIMessageChunk::Error {
                error_text: error.to_string(),
            })
            .await?;
            run.emit(UIMessageChunk::FinishStep).await?;
            Ok(ControlFlow::Break(StepEnd::Done(FinishReason::Error)))
        }
    }
}

/// Streams the model's text, reasoning and tool calls as chunks until its stream ends, and
/// collects the calls. A stop or a failed stream ends the step here.
async fn read_step(
    agent: &Agent,
    chat_id: &str,
    run: &mut Run<'_>,
    usage: &mut Usage,
    stop: &CancellationToken,
    stream: ModelStream,
) -> Result<ControlFlow<StepEnd, StepCalls>, SinkClosed> {
    let mut stream = std::pin::pin!(stream);
    let mut ids = PartIds::default();
    let mut calls = StepCalls::default();
    loop {
        let event = match unless_stopped(stop, stream.next()).await {
            None => return Ok(ControlFlow::Break(stopped_step(run).await?)),
            Some(None) => break,
            Some(Some(event)) => event,
        };
        match event {
            Ok(ModelEvent::TextDelta(delta)) => {
                stream_delta(run, &mut ids, PartKind::Text, delta).await?
            }
            Ok(ModelEvent::ReasoningDelta(delta)) => {
                stream_delta(run, &mut ids, PartKind::Reasoning, delta).await?
            }
            Ok(ModelEvent::ToolCallStart { id, name }) => {
                run.close_open_parts().await?;
                ids = PartIds::default();
                run.emit(UIMessageChunk::ToolInputStart {
                    tool_call_id: id,
                    tool_name: name.clone(),
                    provider_executed: None,
                    provider_metadata: None,
                    tool_metadata: None,
                    dynamic: dynamic_flag(agent, &name),
                    title: None,
                })
                .await?;
            }
            Ok(ModelEvent::ToolCallDelta {
                id,
                arguments_delta,
            }) => {
                run.emit(UIMessageChunk::ToolInputDelta {
                    tool_call_id: id,
                    input_text_delta: arguments_delta,
                })
                .await?;
            }
            Ok(ModelEvent::ToolCall {
                id,
                name,
                arguments,
            }) => {
                run.close_open_parts().await?;
                ids = PartIds::default();
                take_call(agent, run, &mut calls, id, name, &arguments).await?;
            }
            Ok(ModelEvent::Finish {
                reason,
                usage: step_usage,
            }) => {
                *usage += step_usage;
                calls.reason = Some(reason);
            }
            Err(error) => {
                tracing::warn!(chat = %chat_id, model = %agent.model().id(), "model stream failed: {error}");
                run.close_open_parts().await?;
                run.emit(UIMessageChunk::Error {
                    error_text: error.to_string(),
                })
                .await?;
                run.emit(UIMessageChunk::FinishStep).await?;
                return Ok(ControlFlow::Break(StepEnd::Done(FinishReason::Error)));
            }
        }
    }
    run.close_open_parts().await?;
    Ok(ControlFlow::Continue(calls))
}

/// A finished tool call: accepted, sent to a person for approval when the tool asks for it,
/// or rejected.
async fn take_call(
    agent: &Agent,
    run: &mut Run<'_>,
    calls: &mut StepCalls,
    id: String,
    name: String,
    arguments: &str,
) -> Result<(), SinkClosed> {
    match accept_call(agent, run, id, name, arguments).await? {
        Some(call) if agent.needs_approval(&call.name, &call.input) => {
            let approval_id = format!("approval_{}", uuid::Uuid::new_v4().simple());
            let signature = run.approvals.as_ref().map(|signer| {
                signer.sign(ApprovalClaim {
                    chat_id: &run.chat_id,
                    approval_id: &approval_id,
                    tool_call_id: &call.id,
                    tool_name: &call.name,
                    input: &call.input,
                })
            });
            run.emit(UIMessageChunk::ToolApprovalRequest {
                approval_id,
                tool_call_id: call.id,
                is_automatic: None,
                signature,
            })
            .await?;
            calls.awaiting_approval += 1;
        }
        Some(call) => calls.accepted.push(call),
        None => calls.rejected += 1,
    }
    Ok(())
}

/// Runs the step's server tools and ends the step; says whether the turn goes on.
async fn end_step(
    agent: &Agent,
    chat_id: &str,
    run: &mut Run<'_>,
    calls: StepCalls,
    stop: &CancellationToken,
) -> Result<StepEnd, SinkClosed> {
    let reason = calls
        .reason
        .unwrap_or(if calls.accepted.is_empty() && calls.rejected == 0 {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
    let mut client_side = false;
    let mut server_calls = Vec::new();
    for call in calls.accepted {
        match agent.tool(&call.name) {
            Some(tool) if tool.runs_on_client() => client_side = true,
            Some(_) => server_calls.push(call),
            None => {}
        }
    }
    let ran_tools = !server_calls.is_empty();
    if ran_tools && execute_tools(agent, chat_id, run, server_calls, stop).await? {
        return stopped_step(run).await;
    }
    run.emit(UIMessageChunk::FinishStep).await?;
    if client_side || calls.awaiting_approval > 0 {
        // The browser owns the next move: it runs the call or asks a person, and sends the
        // message back to continue.
        return Ok(StepEnd::Done(FinishReason::ToolCalls));
    }
    // Like the AI SDK, go on whenever every call of the step has a result for the model to read,
    // whatever finish reason the provider reported.
    if ran_tools || calls.rejected > 0 {
        return Ok(StepEnd::Continue);
    }
    Ok(StepEnd::Done(reason))
}

/// Settles the calls a person answered since the last turn: approved ones run, denied ones are
/// reported denied. Returns true when a stop cut the tools short.
async fn run_answered_approvals(
    agent: &Agent,
    chat_id: &str,
    run: &mut Run<'_>,
    stop: &CancellationToken,
) -> Result<bool, SinkClosed> {
    let answered: Vec<(PendingCall, bool, bool)> = run
        .fold
        .message()
        .tool_parts()
        .filter(|part| part.state == crate::ui::ToolState::ApprovalResponded)
        .map(|part| {
            let approval = part.approval.as_ref();
            let approved = approval.and_then(|a| a.approved) == Some(true);
            let call = PendingCall {
                id: part.tool_call_id.clone(),
                name: part.tool_name.clone(),
                input: part
                    .input
                    .clone()
                    .unwrap_or(Value::Object(Default::default())),
            };
            let signed = match (&run.approvals, approval) {
                (None, _) => true,
                (Some(signer), Some(approval)) => {
                    approval.signature.as_deref().is_some_and(|sig| {
                        signer.verify(
                            ApprovalClaim {
                                chat_id: &run.chat_id,
                                approval_id: &approval.id,
                                tool_call_id: &call.id,
                                tool_name: &call.name,
                                input: &call.input,
                            },
                            sig,
                        )
                    })
                }
                (Some(_), None) => false,
            };
            (call, approved, signed)
        })
        .collect();
    let mut approved = Vec::new();
    for (call, yes, signed) in answered {
        if !signed {
            tracing::warn!(chat = %chat_id, tool = %call.name, "refused an approval this server did not sign");
            run.emit(UIMessageChunk::ToolOutputError {
                tool_call_id: call.id,
                error_text: "the approval was refused: it does not match a request this server \
                             signed for this call"
                    .to_owned(),
                provider_executed: None,
                provider_metadata: None,
                tool_metadata: None,
                dynamic: None,
            })
            .await?;
        } else if yes && agent.tool(&call.name).is_some() {
            approved.push(call);
        } else {
            run.emit(UIMessageChunk::ToolOutputDenied {
                tool_call_id: call.id,
            })
            .await?;
        }
    }
    if approved.is_empty() {
        return Ok(false);
    }
    execute_tools(agent, chat_id, run, approved, stop).await
}

async fn stopped_step(run: &mut Run<'_>) -> Result<StepEnd, SinkClosed> {
    run.close_open_parts().await?;
    run.emit(UIMessageChunk::FinishStep).await?;
    Ok(StepEnd::Stopped)
}

/// Tools the agent does not declare are shown as dynamic tools.
fn dynamic_flag(agent: &Agent, name: &str) -> Option<bool> {
    agent.tool(name).is_none().then_some(true)
}

/// Checks a finished call: its tool must exist and its arguments must be a JSON object.
async fn accept_call(
    agent: &Agent,
    run: &mut Run<'_>,
    id: String,
    name: String,
    arguments: &str,
) -> Result<Option<PendingCall>, SinkClosed> {
    let parsed = if arguments.trim().is_empty() {
        Ok(Value::Object(Default::default()))
    } else {
        serde_json::from_str::<Value>(arguments)
    };
    let problem = match (&parsed, agent.tool(&name)) {
        (_, None) => Some(format!(
            "the model called `{name}`, which is not a tool of this agent"
        )),
        (Err(error), _) => Some(format!("the tool input is not valid JSON: {error}")),
        (Ok(value), _) if !value.is_object() => {
            Some("the tool input must be a JSON object".to_owned())
        }
        _ => None,
    };
    match (problem, parsed) {
        (None, Ok(input)) => {
            run.emit(UIMessageChunk::ToolInputAvailable {
                tool_call_id: id.clone(),
                tool_name: name.clone(),
                input: input.clone(),
                provider_executed: None,
                provider_metadata: None,
                tool_metadata: None,
                dynamic: None,
                title: None,
            })
            .await?;
            Ok(Some(PendingCall { id, name, input }))
        }
        (problem, parsed) => {
            let input = parsed.unwrap_or_else(|_| Value::String(arguments.to_owned()));
            run.emit(UIMessageChunk::ToolInputError {
                tool_call_id: id,
                tool_name: name.clone(),
                input,
                error_text: problem.unwrap_or_default(),
                provider_executed: None,
                provider_metadata: None,
                tool_metadata: None,
                dynamic: dynamic_flag(agent, &name),
                title: None,
            })
            .await?;
            Ok(None)
        }
    }
}

/// Runs the step's server tools concurrently and reports each result as it lands. Returns true
/// when a stop cut them short.
async fn execute_tools(
    agent: &Agent,
    chat_id: &str,
    run: &mut Run<'_>,
    calls: Vec<PendingCall>,
    stop: &CancellationToken,
) -> Result<bool, SinkClosed> {
    let (sender, mut written) = futures::channel::mpsc::unbounded::<UIMessageChunk>();
    let mut pending: futures::stream::FuturesUnordered<_> = calls
        .into_iter()
        .filter_map(|call| {
            let tool = agent.tool(&call.name)?.clone();
            let context = ToolContext {
                chat_id: chat_id.to_owned(),
                tool_call_id: call.id.clone(),
                stop: stop.clone(),
                state: run.state.clone(),
                controls: run.controls.clone(),
                writer: super::DataWriter::new(sender.clone(), Some(call.id.clone())),
            };
            Some(async move {
                let result = tool.execute(call.input, context).await;
                (call.id, result)
            })
        })
        .collect();
    drop(sender);
    loop {
        let next = {
            let either = select(pending.next(), written.next());
            match unless_stopped(stop, either).await {
                None => return Ok(true),
                Some(Either::Right((Some(chunk), _))) => {
                    run.emit(chunk).await?;
                    continue;
                }
                Some(Either::Right((None, finished))) => finished.await,
                Some(Either::Left((finished, _))) => finished,
            }
        };
        // What a tool wrote before it returned goes out before its result.
        while let Ok(chunk) = written.try_recv() {
            run.emit(chunk).await?;
        }
        let Some(next) = next else {
            return Ok(false);
        };
        let chunk = match next {
            (tool_call_id, Ok(output)) => UIMessageChunk::ToolOutputAvailable {
                tool_call_id,
                output,
                provider_executed: None,
                provider_metadata: None,
                tool_metadata: None,
                dynamic: None,
                preliminary: None,
            },
            (tool_call_id, Err(error)) => UIMessageChunk::ToolOutputError {
                tool_call_id,
                error_text: error.0,
                provider_executed: None,
                provider_metadata: None,
                tool_metadata: None,
                dynamic: None,
            },
        };
        run.emit(chunk).await?;
    }
}

/// The streaming part kinds a model's deltas fill.
#[derive(Clone, Copy)]
enum PartKind {
    Text,
    Reasoning,
}

impl PartKind {
    fn other(self) -> PartKind {
        match self {
            PartKind::Text => PartKind::Reasoning,
            PartKind::Reasoning => PartKind::Text,
        }
    }

    fn start(self, id: String) -> UIMessageChunk {
        match self {
            PartKind::Text => UIMessageChunk::TextStart {
                id,
                provider_metadata: None,
            },
            PartKind::Reasoning => UIMessageChunk::ReasoningStart {
                id,
                provider_metadata: None,
            },
        }
    }

    fn delta(self, id: String, delta: String) -> UIMessageChunk {
        match self {
            PartKind::Text => UIMessageChunk::TextDelta {
                id,
                delta,
                provider_metadata: None,
            },
            PartKind::Reasoning => UIMessageChunk::ReasoningDelta {
                id,
                delta,
                provider_metadata: None,
            },
        }
    }

    fn end(self, id: String) -> UIMessageChunk {
        match self {
            PartKind::Text => UIMessageChunk::TextEnd {
                id,
                provider_metadata: None,
            },
            PartKind::Reasoning => UIMessageChunk::ReasoningEnd {
                id,
                provider_metadata: None,
            },
        }
    }
}

/// The text and reasoning parts open in a step; their ids are unique within a turn.
#[derive(Default)]
struct PartIds {
    text: Option<String>,
    reasoning: Option<String>,
}

impl PartIds {
    fn slot(&mut self, kind: PartKind) -> &mut Option<String> {
        match kind {
            PartKind::Text => &mut self.text,
            PartKind::Reasoning => &mut self.reasoning,
        }
    }
}

/// A delta of `kind`: closes the open part of the other kind, opens one of this kind if needed.
async fn stream_delta(
    run: &mut Run<'_>,
    ids: &mut PartIds,
    kind: PartKind,
    delta: String,
) -> Result<(), SinkClosed> {
    if let Some(id) = ids.slot(kind.other()).take() {
        run.emit(kind.other().end(id)).await?;
    }
    let id = match ids.slot(kind) {
        Some(id) => id.clone(),
        None => {
            let prefix = match kind {
                PartKind::Text => "text",
                PartKind::Reasoning => "reasoning",
            };
            let id = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
            run.emit(kind.start(id.clone())).await?;
            *ids.slot(kind) = Some(id.clone());
            id
        }
    };
    run.emit(kind.delta(id, delta)).await
}
