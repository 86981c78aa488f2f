//! One step of a turn: a model call, the text, reasoning and tool calls it streams, then the
//! server's tools and whether the turn goes on.

use std::ops::ControlFlow;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::parts::{PartIds, PartKind, end_reasoning, stream_delta};
use super::spans;
use super::tool_calls::{
    PendingCall, dynamic_flag, execute_tools, provider_call, provider_result, take_call,
};
use super::{Run, SinkClosed, StepEnd, model_messages, unless_stopped};
use crate::agent::Agent;
use crate::model::{FinishReason, ModelEvent, ModelRequest, ModelStream, Usage};
use crate::ui::{UIMessage, UIMessageChunk};

/// What the model asked for in a step, once its stream has ended.
#[derive(Default)]
pub(super) struct StepCalls {
    /// Accepted calls that need no approval.
    pub(super) accepted: Vec<PendingCall>,
    /// Calls refused (an unknown tool, an invalid input): the model reads why in the next step.
    pub(super) rejected: usize,
    /// Calls sent to a person for approval.
    pub(super) awaiting_approval: usize,
    /// The finish reason the provider reported.
    pub(super) reason: Option<FinishReason>,
}

/// One model call of the turn and the tools it asks for: opens the call, streams what the model
/// says, then runs the server's tools and decides whether the turn goes on.
pub(super) async fn step(
    agent: &Agent,
    chat_id: &str,
    history: &[UIMessage],
    run: &mut Run<'_>,
    usage: &mut Usage,
    stop: &CancellationToken,
) -> Result<StepEnd, SinkClosed> {
    let (stream, span) = match open_step(agent, chat_id, history, run, stop).await? {
        ControlFlow::Continue(opened) => opened,
        ControlFlow::Break(end) => return Ok(end),
    };
    let read = read_step(agent, chat_id, run, usage, stop, stream).instrument(span);
    let calls = match read.await? {
        ControlFlow::Continue(calls) => calls,
        ControlFlow::Break(end) => return Ok(end),
    };
    end_step(agent, chat_id, run, calls, stop).await
}

/// Starts the step and calls the model with the conversation so far (the messages injected
/// since the last step included), in the call's span. A stop or a failed call ends the step
/// here.
async fn open_step(
    agent: &Agent,
    chat_id: &str,
    history: &[UIMessage],
    run: &mut Run<'_>,
    stop: &CancellationToken,
) -> Result<ControlFlow<StepEnd, (ModelStream, tracing::Span)>, SinkClosed> {
    let pending = run.controls.take_pending();
    run.injected.extend(pending);
    let request = ModelRequest {
        messages: model_messages(agent, history, run.fold.message(), &run.injected),
        tools: agent.tools().iter().map(|tool| tool.spec()).collect(),
        thinking_budget: agent.thinking_budget(),
        ..ModelRequest::default()
    };
    run.emit(UIMessageChunk::StartStep).await?;
    let span = spans::chat(&agent.model().id(), &request.messages);
    run.figures.call_started();
    let opening = open_stream(agent, chat_id, request).instrument(span.clone());
    match unless_stopped(stop, opening).await {
        None => Ok(ControlFlow::Break(stopped_step(run).await?)),
        Some(Ok(stream)) => Ok(ControlFlow::Continue((stream, span))),
        Some(Err(error)) => {
            spans::failed(&span, "model_error");
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
    let mut output = spans::CallOutput::new();
    loop {
        let event = match unless_stopped(stop, stream.next()).await {
            None => return Ok(ControlFlow::Break(stopped_step(run).await?)),
            Some(None) => break,
            Some(Some(event)) => event,
        };
        if let Ok(event) = &event {
            output.observe(event);
        }
        match event {
            Ok(ModelEvent::ResponseModel(model)) => run.figures.response_model(model),
            Ok(ModelEvent::Source { id, url, title }) => {
                // A source is a part of its own, as a tool call is.
                run.close_open_parts().await?;
                ids = PartIds::default();
                run.emit(UIMessageChunk::SourceUrl {
                    source_id: id,
                    url,
                    title,
                    provider_metadata: None,
                })
                .await?
            }
            Ok(ModelEvent::TextDelta(delta)) => {
                run.figures.token();
                stream_delta(run, &mut ids, PartKind::Text, delta).await?
            }
            Ok(ModelEvent::ReasoningDelta(delta)) => {
                run.figures.token();
                stream_delta(run, &mut ids, PartKind::Reasoning, delta).await?
            }
            Ok(ModelEvent::ReasoningEnd { provider_metadata }) => {
                run.figures.token();
                end_reasoning(run, &mut ids, provider_metadata).await?
            }
            Ok(ModelEvent::ProviderToolCall { id, name, input }) => {
                run.figures.token();
                run.close_open_parts().await?;
                ids = PartIds::default();
                run.emit(provider_call(agent, id, name, input)).await?;
            }
            Ok(ModelEvent::ProviderToolResult {
                id,
                name: _,
                output,
                failed,
            }) => run.emit(provider_result(id, output, failed)).await?,
            Ok(ModelEvent::ToolCallStart { id, name }) => {
                run.figures.token();
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
                run.figures.token();
                run.close_open_parts().await?;
                ids = PartIds::default();
                take_call(agent, run, &mut calls, id, name, &arguments).await?;
            }
            Ok(ModelEvent::Finish {
                reason,
                usage: step_usage,
            }) => {
                spans::call_finished(reason, step_usage, &mut output);
                *usage += step_usage;
                calls.reason = Some(reason);
            }
            Err(error) => {
                spans::failed(&tracing::Span::current(), "model_error");
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

/// Ends a step that a stop cut short.
pub(super) async fn stopped_step(run: &mut Run<'_>) -> Result<StepEnd, SinkClosed> {
    run.close_open_parts().await?;
    run.emit(UIMessageChunk::FinishStep).await?;
    Ok(StepEnd::Stopped)
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
            Ok(mut stream) => {
                // The model a provider names is not content: a transient error right after it
                // is still retried.
                let mut named = Vec::new();
                let first = loop {
                    match stream.next().await {
                        Some(Ok(event @ ModelEvent::ResponseModel(_))) => named.push(Ok(event)),
                        other => break other,
                    }
                };
                match first {
                    Some(Err(error)) if error.is_transient() && attempt < MODEL_RETRIES => error,
                    first => {
                        let head = futures::stream::iter(named.into_iter().chain(first));
                        return Ok(Box::pin(head.chain(stream)));
                    }
                }
            }
            Err(error) if error.is_transient() && attempt < MODEL_RETRIES => error,
            Err(error) => return Err(error),
        };
        attempt += 1;
        let Some(delay) = error.retry_delay(attempt, crate::events::retry::random_jitter()) else {
            return Err(error);
        };
        tracing::info!(chat = %chat_id, attempt, ?delay, "retrying the model call: {error}");
        crate::runtime::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::model::{Model, ModelError};

    /// Names itself, then fails as overloaded, on its first call; answers on the next.
    struct OverloadedOnce(AtomicUsize);

    #[async_trait]
    impl Model for OverloadedOnce {
        fn id(&self) -> String {
            "test:flaky".into()
        }

        async fn stream(&self, _request: ModelRequest) -> Result<ModelStream, ModelError> {
            let named = Ok(ModelEvent::ResponseModel("flaky-1".into()));
            let events = if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                vec![
                    named,
                    Err(ModelError::Provider {
                        status: 503,
                        message: "overloaded".into(),
                        retry_after: None,
                    }),
                ]
            } else {
                vec![named, Ok(ModelEvent::TextDelta("hi".into()))]
            };
            Ok(Box::pin(futures::stream::iter(events)))
        }
    }

    #[tokio::test]
    async fn a_transient_error_right_after_the_model_is_named_is_retried() {
        let model = Arc::new(OverloadedOnce(AtomicUsize::new(0)));
        let agent = Agent::builder(model.clone()).build();
        let stream = open_stream(&agent, "chat-flaky", ModelRequest::default())
            .await
            .expect("the second call answers");
        let events: Vec<_> = stream.collect().await;
        assert_eq!(
            events,
            vec![
                Ok(ModelEvent::ResponseModel("flaky-1".into())),
                Ok(ModelEvent::TextDelta("hi".into())),
            ]
        );
        assert_eq!(model.0.load(Ordering::SeqCst), 2);
    }
}
