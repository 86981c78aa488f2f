//! Approval requests a user moved past: a new user message while a tool call waits for Approve
//! or Deny closes that call as denied, with a reason the model and the page can show. Left open,
//! the call would keep live buttons on the page that nothing answers any more, and the history
//! would hold a tool call without a result, which providers refuse.

use async_trait::async_trait;
use serde_json::json;

use crate::agent::{ChunkSink, SinkClosed};
use crate::ui::{DataChunk, ToolState, UIMessage, UIMessageChunk, UIPart};

/// The reason a moved-past call is denied with: the model reads it as the call's outcome, and
/// the page shows the call as skipped from it.
pub const SKIPPED_APPROVAL_REASON: &str = "skipped: the user sent a new message";

/// The type of the transient data chunk that tells the readers of the next reply which calls
/// were closed, so a page shows them skipped without reloading the history.
pub const SKIPPED_APPROVAL_CHUNK: &str = "data-approval-skipped";

/// A tool call closed because the user moved past its approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SkippedApproval {
    /// The assistant message that holds the call.
    pub(super) message_id: String,
    /// The call.
    pub(super) tool_call_id: String,
    /// The approval request that went unanswered.
    pub(super) approval_id: String,
}

impl SkippedApproval {
    /// The transient chunk that tells a reader of the next reply about this call.
    pub(super) fn chunk(&self) -> UIMessageChunk {
        UIMessageChunk::Data(DataChunk {
            kind: SKIPPED_APPROVAL_CHUNK.to_owned(),
            id: Some(self.tool_call_id.clone()),
            data: json!({
                "messageId": self.message_id,
                "toolCallId": self.tool_call_id,
                "approvalId": self.approval_id,
                "reason": SKIPPED_APPROVAL_REASON,
            }),
            transient: Some(true),
        })
    }
}

/// Closes every unanswered approval request in `message` as denied with
/// [`SKIPPED_APPROVAL_REASON`]; returns the calls it closed.
pub(super) fn close_unanswered(message: &mut UIMessage) -> Vec<SkippedApproval> {
    let mut skipped = Vec::new();
    for part in message.parts.iter_mut() {
        let UIPart::Tool(tool) = part else { continue };
        if tool.state != ToolState::ApprovalRequested {
            continue;
        }
        let Some(approval) = tool.approval.as_mut() else {
            continue;
        };
        approval.approved = Some(false);
        approval.reason = Some(SKIPPED_APPROVAL_REASON.to_owned());
        tool.state = ToolState::OutputDenied;
        skipped.push(SkippedApproval {
            message_id: message.id.clone(),
            tool_call_id: tool.tool_call_id.clone(),
            approval_id: approval.id.clone(),
        });
    }
    skipped
}

/// A sink that hands the reply's chunks on, with the chunks of the skipped calls right after
/// the reply's `start`: readers learn of them with the reply that moved past them.
pub(super) struct AnnouncingSkipped<'a> {
    inner: &'a mut dyn ChunkSink,
    pending: Vec<SkippedApproval>,
}

impl<'a> AnnouncingSkipped<'a> {
    pub(super) fn new(inner: &'a mut dyn ChunkSink, skipped: Vec<SkippedApproval>) -> Self {
        AnnouncingSkipped {
            inner,
            pending: skipped,
        }
    }
}

#[async_trait]
impl ChunkSink for AnnouncingSkipped<'_> {
    async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed> {
        self.inner.emit(chunk).await?;
        if matches!(chunk, UIMessageChunk::Start { .. }) {
            for skipped in std::mem::take(&mut self.pending) {
                self.inner.emit(&skipped.chunk()).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting_reply() -> UIMessage {
        serde_json::from_value(json!({
            "id": "a1", "role": "assistant", "parts": [
                {"type": "text", "text": "Rolling."},
                {"type": "tool-roll_dice", "toolCallId": "c1", "state": "approval-requested",
                 "input": {"sides": 6}, "approval": {"id": "ap1"}},
                {"type": "tool-clock", "toolCallId": "c2", "state": "output-available",
                 "input": {}, "output": "noon"}
            ]
        }))
        .expect("a message")
    }

    #[test]
    fn an_unanswered_request_is_denied_as_skipped() {
        let mut message = waiting_reply();
        let skipped = close_unanswered(&mut message);
        assert_eq!(
            skipped,
            vec![SkippedApproval {
                message_id: "a1".into(),
                tool_call_id: "c1".into(),
                approval_id: "ap1".into(),
            }]
        );
        let value = serde_json::to_value(&message).expect("json");
        assert_eq!(value["parts"][1]["state"], "output-denied");
        assert_eq!(
            value["parts"][1]["approval"],
            json!({"id": "ap1", "approved": false, "reason": SKIPPED_APPROVAL_REASON})
        );
        assert_eq!(value["parts"][2]["state"], "output-available");
        assert!(close_unanswered(&mut message).is_empty(), "closed once");
    }

    #[test]
    fn the_model_reads_the_skip_as_the_calls_outcome() {
        let mut message = waiting_reply();
        close_unanswered(&mut message);
        let converted = crate::ui::to_model_messages(
            &[message],
            crate::ui::ConvertOptions {
                ignore_incomplete_tool_calls: true,
            },
        );
        let text = serde_json::to_string(&converted).expect("json");
        assert!(text.contains("\"toolCallId\":\"c1\""), "{text}");
        assert!(text.contains(SKIPPED_APPROVAL_REASON), "{text}");
    }

    #[derive(Default)]
    struct Collect(Vec<UIMessageChunk>);

    #[async_trait]
    impl ChunkSink for Collect {
        async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed> {
            self.0.push(chunk.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_skips_follow_the_replys_start() {
        let mut message = waiting_reply();
        let skipped = close_unanswered(&mut message);
        let mut collect = Collect::default();
        let mut sink = AnnouncingSkipped::new(&mut collect, skipped);
        let start = UIMessageChunk::Start {
            message_id: Some("a2".into()),
            message_metadata: None,
        };
        sink.emit(&start).await.expect("emit");
        sink.emit(&start).await.expect("emit");
        let types: Vec<_> = collect
            .0
            .iter()
            .map(|chunk| serde_json::to_value(chunk).expect("json")["type"].clone())
            .collect();
        assert_eq!(types, vec!["start", SKIPPED_APPROVAL_CHUNK, "start"]);
        let data = serde_json::to_value(&collect.0[1]).expect("json");
        assert_eq!(data["transient"], true);
        assert_eq!(data["data"]["messageId"], "a1");
    }
}
