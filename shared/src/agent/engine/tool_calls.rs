//! The model's tool calls: each checked and accepted (or sent to a person for approval), the
//! server's tools run concurrently with their results streamed as they land, and the calls a
//! person answered since the last turn settled; the tools the provider ran, shown as it reports
//! them.

use futures::StreamExt;
use futures::future::{Either, select};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::spans;
use super::step::StepCalls;
use super::{Run, SinkClosed, unless_stopped};
use crate::agent::approval::ApprovalClaim;
use crate::agent::{Agent, DataWriter, ToolContext};
use crate::ui::UIMessageChunk;

/// A tool call the model made, with its input checked.
pub(super) struct PendingCall {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) input: Value,
}

/// A finished tool call: accepted, sent to a person for approval when the tool asks for it,
/// or rejected.
pub(super) async fn take_call(
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

/// Settles the calls a person answered since the last turn: approved ones run, denied ones are
/// reported denied. Returns true when a stop cut the tools short.
pub(super) async fn run_answered_approvals(
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
        } else if yes {
            // Approved in an earlier turn, and the tool is gone since (an MCP server that no
            // longer offers it): the model reads that it did not run.
            tracing::warn!(chat = %chat_id, tool = %call.name, "an approved tool is no longer offered");
            run.emit(UIMessageChunk::ToolOutputError {
                tool_call_id: call.id,
                error_text: format!("the tool `{}` is no longer available", call.name),
                provider_executed: None,
                provider_metadata: None,
                tool_metadata: None,
                dynamic: None,
            })
            .await?;
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

/// A tool the provider ran: shown with its input, never run here.
pub(super) fn provider_call(
    agent: &Agent,
    id: String,
    name: String,
    input: Value,
) -> UIMessageChunk {
    UIMessageChunk::ToolInputAvailable {
        tool_call_id: id,
        dynamic: dynamic_flag(agent, &name),
        tool_name: name,
        input,
        provider_executed: Some(true),
        provider_metadata: None,
        tool_metadata: None,
        title: None,
    }
}

/// The outcome of a tool the provider ran: its output, or its error as text.
pub(super) fn provider_result(tool_call_id: String, output: Value, failed: bool) -> UIMessageChunk {
    if failed {
        let error_text = match output {
            Value::String(text) => text,
            other => other.to_string(),
        };
        return UIMessageChunk::ToolOutputError {
            tool_call_id,
            error_text,
            provider_executed: Some(true),
            provider_metadata: None,
            tool_metadata: None,
            dynamic: None,
        };
    }
    UIMessageChunk::ToolOutputAvailable {
        tool_call_id,
        output,
        provider_executed: Some(true),
        provider_metadata: None,
        tool_metadata: None,
        dynamic: None,
        preliminary: None,
    }
}

/// Tools the agent does not declare are shown as dynamic tools.
pub(super) fn dynamic_flag(agent: &Agent, name: &str) -> Option<bool> {
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
pub(super) async fn execute_tools(
    agent: &Agent,
    chat_id: &str,
    run: &mut Run<'_>,
    calls: Vec<PendingCall>,
    stop: &CancellationToken,
) -> Result<bool, SinkClosed> {
    run.figures.tools_run(calls.len());
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
                writer: DataWriter::new(sender.clone(), Some(call.id.clone())),
            };
            let span = spans::execute_tool(&call.name, &call.id, &call.input);
            Some(
                async move {
                    let result = tool.execute(call.input, context).await;
                    spans::tool_finished(result.as_ref().map_err(|error| error.0.as_str()));
                    (call.id, result)
                }
                .instrument(span),
            )
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
