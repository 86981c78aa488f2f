//! Applying an input to the chat's history before its turn runs: the user message it adds (an
//! edit drops what came after the edited message), the assistant message a client continues with
//! its answers, or the answer a regeneration replaces. A new user message closes the approval
//! requests it moved past.

use super::moved_past::{SkippedApproval, close_unanswered};
use super::runner::{TurnError, TurnRunner};
use super::{ChatTrigger, MessagePayload};
use crate::agent::{Agent, TurnControls, TurnInfo};
use crate::ui::{Role, UIMessage, UIPart};

/// A turn ready to run: the history the model sees, the reply to stream, and what hooks see.
pub(super) struct PreparedTurn {
    pub(super) history: Vec<UIMessage>,
    pub(super) reply: UIMessage,
    pub(super) info: TurnInfo,
    /// The input is answered with the turn's end alone: no model, no hooks, nothing stored (an
    /// action that asks for no reply).
    pub(super) quiet: bool,
    /// The tool calls whose approval the new message moved past, closed in the history; the
    /// reply's readers are told.
    pub(super) skipped: Vec<SkippedApproval>,
    /// The new user message, in `history` but not yet stored: it is written beside the model
    /// request, and must land before the reply does (a recovery stores it from the input).
    pub(super) unstored: Option<UIMessage>,
}

impl PreparedTurn {
    /// A turn that answers its input with its end alone.
    pub(super) fn quiet(history: Vec<UIMessage>, info: TurnInfo) -> Self {
        PreparedTurn {
            history,
            reply: new_reply(),
            info,
            quiet: true,
            skipped: Vec::new(),
            unstored: None,
        }
    }
}

/// An input applied to the history: the history before the reply, the reply, the approvals
/// the new message moved past, and the new message yet to be stored.
type Applied = (
    Vec<UIMessage>,
    UIMessage,
    Vec<SkippedApproval>,
    Option<UIMessage>,
);

pub(super) fn new_reply() -> UIMessage {
    UIMessage::new(
        format!("msg_{}", uuid::Uuid::new_v4().simple()),
        Role::Assistant,
    )
}

impl TurnRunner {
    /// Applies the input to the history (as read under the lease); returns the history before
    /// the reply, and the reply to stream (new, or the assistant message being continued).
    pub(super) async fn prepare(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: &MessagePayload,
        history: Vec<UIMessage>,
    ) -> Result<PreparedTurn, TurnError> {
        let info = TurnInfo {
            chat_id: chat_id.to_owned(),
            input_seq: Some(input_seq),
            first_turn: history.is_empty(),
            client_data: payload.metadata.clone(),
            controls: TurnControls::default(),
        };
        self.agent
            .check_client_data(info.client_data.as_ref())
            .map_err(TurnError::InvalidInput)?;
        if payload.trigger == ChatTrigger::Action {
            return self.prepare_action(chat_id, info, history, payload).await;
        }
        let (history, reply, skipped, unstored) =
            self.apply_input(chat_id, &info, history, payload).await?;
        let history = match self.agent.hooks().hydrate_messages(&info, history).await {
            Ok(history) => history,
            Err(refused) => {
                // A refused turn keeps the message, as one that ran would.
                if let Some(message) = &unstored {
                    self.store.put_message(chat_id, message).await?;
                }
                return Err(TurnError::InvalidInput(refused.0));
            }
        };
        Ok(PreparedTurn {
            history,
            reply,
            info,
            quiet: false,
            skipped,
            unstored,
        })
    }

    async fn apply_input(
        &self,
        chat_id: &str,
        info: &TurnInfo,
        mut history: Vec<UIMessage>,
        payload: &MessagePayload,
    ) -> Result<Applied, TurnError> {
        match payload.trigger {
            ChatTrigger::SubmitMessage => {
                let message = payload.message.clone().ok_or_else(|| {
                    TurnError::InvalidInput("submit-message needs a message".into())
                })?;
                match message.role {
                    Role::User => {
                        self.agent
                            .hooks()
                            .validate_message(info, &message)
                            .await
                            .map_err(|e| TurnError::InvalidInput(e.0))?;
                        // An edit (or a re-send) of a known message drops everything after it.
                        let edited = payload.message_id.as_deref().unwrap_or(&message.id);
                        if let Some(index) = history.iter().position(|m| m.id == edited) {
                            self.store.truncate_messages(chat_id, edited).await?;
                            history.truncate(index);
                        }
                        let skipped = self.close_moved_past(chat_id, &mut history).await?;
                        history.push(message.clone());
                        Ok((history, new_reply(), skipped, Some(message)))
                    }
                    Role::Assistant => {
                        let index = history
                            .iter()
                            .position(|m| m.id == message.id && m.role == Role::Assistant)
                            .ok_or_else(|| {
                                TurnError::InvalidInput(format!(
                                    "assistant message `{}` is not in this chat",
                                    message.id
                                ))
                            })?;
                        let stored = history.remove(index);
                        let continued = overlay_client_answers(stored, &message, &self.agent)?;
                        // Later messages cannot exist when a client answers a tool call.
                        history.truncate(index);
                        self.store.put_message(chat_id, &continued).await?;
                        Ok((history, continued, Vec::new(), None))
                    }
                    Role::System => Err(TurnError::InvalidInput(
                        "clients cannot send system messages".into(),
                    )),
                }
            }
            ChatTrigger::RegenerateMessage => {
                let from = match &payload.message_id {
                    Some(id) => history.iter().position(|m| &m.id == id).ok_or_else(|| {
                        TurnError::InvalidInput(format!("message `{id}` is not in this chat"))
                    })?,
                    None => history
                        .iter()
                        .rposition(|m| m.role == Role::User)
                        .map_or(history.len(), |index| index + 1),
                };
                // Regenerating a user message keeps it and replaces what answered it.
                let from = match history.get(from) {
                    Some(message) if message.role == Role::User => from + 1,
                    _ => from,
                };
                if let Some(message) = history.get(from) {
                    self.store
                        .truncate_messages(chat_id, &message.id.clone())
                        .await?;
                    history.truncate(from);
                }
                if history.last().is_none_or(|m| m.role != Role::User) {
                    return Err(TurnError::InvalidInput(
                        "there is no user message to answer".into(),
                    ));
                }
                Ok((history, new_reply(), Vec::new(), None))
            }
            other => Err(TurnError::InvalidInput(format!(
                "trigger `{}` does not start a turn",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ))),
        }
    }
}

impl TurnRunner {
    /// Closes the approval requests still open in `history` as skipped, in the history and in
    /// the store, before the new user message that moved past them is stored after them.
    async fn close_moved_past(
        &self,
        chat_id: &str,
        history: &mut [UIMessage],
    ) -> Result<Vec<SkippedApproval>, TurnError> {
        let mut skipped = Vec::new();
        for message in history.iter_mut().filter(|m| m.role == Role::Assistant) {
            let closed = close_unanswered(message);
            if !closed.is_empty() {
                self.store.put_message(chat_id, message).await?;
                skipped.extend(closed);
            }
        }
        Ok(skipped)
    }
}

/// The server's copy of an assistant message, with what the client may answer for it: the
/// outputs of tools that run in the browser, and a person's answer to an approval request whose
/// id matches. Everything else stays the server's, so a client cannot forge a server tool's
/// output or approve a call it was never asked about; an answer that tries is refused, and so is
/// a message that only repeats (or changes) answers already given.
fn overlay_client_answers(
    mut stored: UIMessage,
    client: &UIMessage,
    agent: &Agent,
) -> Result<UIMessage, TurnError> {
    use crate::ui::ToolState;
    let mut answered_now = false;
    let mut repeated = false;
    for part in stored.parts.iter_mut() {
        let UIPart::Tool(tool) = part else { continue };
        let Some(answer) = client
            .tool_parts()
            .find(|t| t.tool_call_id == tool.tool_call_id)
        else {
            continue;
        };
        let answers_approval = matches!(
            answer.state,
            ToolState::ApprovalResponded | ToolState::OutputDenied
        );
        let claims_output = matches!(
            answer.state,
            ToolState::OutputAvailable | ToolState::OutputError
        );
        let has_output = matches!(
            tool.state,
            ToolState::OutputAvailable | ToolState::OutputError | ToolState::OutputDenied
        );
        match tool.state {
            ToolState::ApprovalRequested if answers_approval => {
                let (Some(mine), Some(theirs)) = (tool.approval.as_mut(), answer.approval.as_ref())
                else {
                    return Err(tampered());
                };
                if mine.id != theirs.id {
                    return Err(tampered());
                }
                let approved =
                    answer.state == ToolState::ApprovalResponded && theirs.approved == Some(true);
                mine.approved = Some(approved);
                mine.reason = theirs.reason.clone();
                tool.state = ToolState::ApprovalResponded;
                answered_now = true;
            }
            ToolState::InputAvailable if claims_output && agent.runs_on_client(&tool.tool_name) => {
                tool.state = answer.state;
                tool.output = answer.output.clone();
                tool.error_text = answer.error_text.clone();
                answered_now = true;
            }
            // An output the server has not produced, for a tool that runs on the server.
            _ if claims_output && !has_output => return Err(tampered()),
            // An answer to an approval answered before: the same answer is a replay, another
            // one an attempt to change it.
            _ if answers_approval => {
                let (Some(mine), Some(theirs)) = (tool.approval.as_ref(), answer.approval.as_ref())
                else {
                    return Err(tampered());
                };
                let approved =
                    answer.state == ToolState::ApprovalResponded && theirs.approved == Some(true);
                if mine.id != theirs.id || mine.approved != Some(approved) {
                    return Err(already_answered());
                }
                // Answered but not yet settled (its turn ended first): this turn settles it.
                if tool.state == ToolState::ApprovalResponded {
                    answered_now = true;
                } else {
                    repeated = true;
                }
            }
            _ => {}
        }
    }
    if repeated && !answered_now {
        return Err(already_answered());
    }
    Ok(stored)
}

fn tampered() -> TurnError {
    TurnError::InvalidInput(
        "the tool answers do not match what this server asked for: an approval must answer the \
         request it was sent, and only tools that run in the browser take their output from it"
            .into(),
    )
}

fn already_answered() -> TurnError {
    TurnError::InvalidInput(
        "these approvals have been answered already: reload the chat to see the reply".into(),
    )
}
