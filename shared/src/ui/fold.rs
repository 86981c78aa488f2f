//! Rebuilding a `UIMessage` from its chunk stream, with the rules of the `ai` client's
//! `processUIMessageStream`. The engine folds its own output to know the reply so far; recovery
//! folds the output log of a turn whose executor died.

use std::collections::HashMap;

use serde_json::Value;

use super::{
    DataPart, FilePart, PartState, ReasoningFilePart, Role, SourceDocumentPart, SourceUrlPart,
    TextPart, ToolApproval, ToolPart, ToolState, UIMessage, UIMessageChunk, UIPart,
};
use crate::model::FinishReason;

/// A chunk that does not fit the message folded so far (a delta for a part never started, …).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("chunk `{chunk}` does not fit the message: {reason}")]
pub struct FoldError {
    /// The chunk's `type`.
    pub chunk: String,
    /// Why it does not fit.
    pub reason: String,
}

/// The fields `tool-input-available` and `tool-input-error` share.
struct ToolInput<'a> {
    tool_call_id: &'a String,
    tool_name: &'a String,
    input: &'a Value,
    provider_executed: &'a Option<bool>,
    provider_metadata: &'a Option<Value>,
    tool_metadata: &'a Option<Value>,
    dynamic: &'a Option<bool>,
    title: &'a Option<String>,
}

/// Folds chunks into the assistant message they describe.
#[derive(Debug, Clone)]
pub struct MessageFold {
    message: UIMessage,
    open_text: HashMap<String, usize>,
    open_reasoning: HashMap<String, usize>,
    tool_input_text: HashMap<String, String>,
    finish_reason: Option<FinishReason>,
    aborted: bool,
    errors: Vec<String>,
}

impl MessageFold {
    /// Starts a new assistant message with this id (a `start` chunk may replace it).
    pub fn new(message_id: impl Into<String>) -> Self {
        Self::continuing(UIMessage::new(message_id, Role::Assistant))
    }

    /// Continues an existing assistant message, as the client does after tool results.
    pub fn continuing(message: UIMessage) -> Self {
        MessageFold {
            message,
            open_text: HashMap::new(),
            open_reasoning: HashMap::new(),
            tool_input_text: HashMap::new(),
            finish_reason: None,
            aborted: false,
            errors: Vec::new(),
        }
    }

    /// The message folded so far.
    pub fn message(&self) -> &UIMessage {
        &self.message
    }

    /// The message folded so far, taken out of the fold.
    pub fn into_message(self) -> UIMessage {
        self.message
    }

    /// Why the reply finished: `None` until a `finish` chunk, `stop` when that named none.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish_reason
    }

    /// Whether an `abort` chunk was seen.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The `errorText` of every `error` chunk seen.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Whether any streaming text, reasoning or tool input is still open.
    pub fn has_open_parts(&self) -> bool {
        !self.open_text.is_empty() || !self.open_reasoning.is_empty()
    }

    /// The chunks that close whatever is still open, for ending a reply that was cut short.
    pub fn closing_chunks(&self) -> Vec<UIMessageChunk> {
        let mut chunks = Vec::new();
        let mut reasoning: Vec<_> = self.open_reasoning.iter().collect();
        reasoning.sort_by_key(|(_, index)| **index);
        for (id, _) in reasoning {
            chunks.push(UIMessageChunk::ReasoningEnd {
                id: id.clone(),
                provider_metadata: None,
            });
        }
        let mut text: Vec<_> = self.open_text.iter().collect();
        text.sort_by_key(|(_, index)| **index);
        for (id, _) in text {
            chunks.push(UIMessageChunk::TextEnd {
                id: id.clone(),
                provider_metadata: None,
            });
        }
        chunks
    }

    /// Folds one chunk into the message. A chunk that does not fit (a delta for a part never
    /// started, an output for an unknown call) is an error and leaves the message as it was.
    pub fn apply(&mut self, chunk: &UIMessageChunk) -> Result<(), FoldError> {
        let fail = |reason: &str| FoldError {
            chunk: chunk.type_name().to_owned(),
            reason: reason.to_owned(),
        };
        match chunk {
            UIMessageChunk::Start {
                message_id,
                message_metadata,
            } => {
                if let Some(id) = message_id {
                    self.message.id = id.clone();
                }
                if let Some(metadata) = message_metadata {
                    self.merge_metadata(metadata);
                }
            }
            UIMessageChunk::StartStep => self.message.parts.push(UIPart::StepStart),
            UIMessageChunk::FinishStep => {
                self.open_text.clear();
                self.open_reasoning.clear();
            }
            UIMessageChunk::ResetStep => {
                let step_start = self
                    .message
                    .parts
                    .iter()
                    .rposition(|part| matches!(part, UIPart::StepStart));
                if let Some(index) = step_start {
                    self.message.parts.truncate(index + 1);
                }
                self.open_text.clear();
                self.open_reasoning.clear();
            }
            UIMessageChunk::TextStart {
                id,
                provider_metadata,
            } => self.start_part(false, id, provider_metadata),
            UIMessageChunk::ReasoningStart {
                id,
                provider_metadata,
            } => self.start_part(true, id, provider_metadata),
            UIMessageChunk::TextDelta {
                id,
                delta,
                provider_metadata,
            } => self
                .update_part(false, id, Some(delta), provider_metadata, false)
                .ok_or_else(|| fail("no open text part with that id"))?,
            UIMessageChunk::ReasoningDelta {
                id,
                delta,
                provider_metadata,
            } => self
                .update_part(true, id, Some(delta), provider_metadata, false)
                .ok_or_else(|| fail("no open reasoning part with that id"))?,
            UIMessageChunk::TextEnd {
                id,
                provider_metadata,
            } => self
                .update_part(false, id, None, provider_metadata, true)
                .ok_or_else(|| fail("no open text part with that id"))?,
            UIMessageChunk::ReasoningEnd {
                id,
                provider_metadata,
            } => self
                .update_part(true, id, None, provider_metadata, true)
                .ok_or_else(|| fail("no open reasoning part with that id"))?,
            UIMessageChunk::ReasoningFile {
                url,
                media_type,
                provider_metadata,
            } => self
                .message
                .parts
                .push(UIPart::ReasoningFile(ReasoningFilePart {
                    media_type: media_type.clone(),
                    url: url.clone(),
                    provider_metadata: provider_metadata.clone(),
                })),
            UIMessageChunk::Custom {
                kind,
                provider_metadata,
            } => self.message.parts.push(UIPart::Custom(super::CustomPart {
                kind: kind.clone(),
                provider_metadata: provider_metadata.clone(),
            })),
            UIMessageChunk::ToolInputStart {
                tool_call_id,
                tool_name,
                provider_executed,
                provider_metadata,
                tool_metadata,
                dynamic,
                title,
            } => {
                let mut part = ToolPart::new(
                    tool_name.clone(),
                    tool_call_id.clone(),
                    ToolState::InputStreaming,
                );
                part.dynamic = dynamic.unwrap_or(false);
                part.provider_executed = *provider_executed;
                part.call_provider_metadata = provider_metadata.clone();
                part.tool_metadata = tool_metadata.clone();
                part.title = title.clone();
                self.tool_input_text
                    .insert(tool_call_id.clone(), String::new());
                self.upsert_tool(part);
            }
            UIMessageChunk::ToolInputDelta {
                tool_call_id,
                input_text_delta,
            } => {
                let text = self
                    .tool_input_text
                    .get_mut(tool_call_id)
                    .ok_or_else(|| fail("no streaming tool input with that id"))?;
                text.push_str(input_text_delta);
                let partial = parse_partial_json(text);
                let part = self
                    .tool_mut(tool_call_id)
                    .ok_or_else(|| fail("no tool call with that id"))?;
                if partial.is_some() {
                    part.input = partial;
                }
            }
            UIMessageChunk::ToolInputAvailable {
                tool_call_id,
                tool_name,
                input,
                provider_executed,
                provider_metadata,
                tool_metadata,
                dynamic,
                title,
            } => self.settle_input(
                ToolInput {
                    tool_call_id,
                    tool_name,
                    input,
                    provider_executed,
                    provider_metadata,
                    tool_metadata,
                    dynamic,
                    title,
                },
                None,
            ),
            UIMessageChunk::ToolInputError {
                tool_call_id,
                tool_name,
                input,
                error_text,
                provider_executed,
                provider_metadata,
                tool_metadata,
                dynamic,
                title,
            } => self.settle_input(
                ToolInput {
                    tool_call_id,
                    tool_name,
                    input,
                    provider_executed,
                    provider_metadata,
                    tool_metadata,
                    dynamic,
                    title,
                },
                Some(error_text),
            ),
            UIMessageChunk::ToolApprovalRequest {
                approval_id,
                tool_call_id,
                is_automatic,
                signature,
            } => {
                let part = self
                    .tool_mut(tool_call_id)
                    .ok_or_else(|| fail("no tool call with that id"))?;
                part.state = ToolState::ApprovalRequested;
                part.approval = Some(ToolApproval {
                    id: approval_id.clone(),
                    approved: None,
                    reason: None,
                    is_automatic: *is_automatic,
                    signature: signature.clone(),
                });
            }
            UIMessageChunk::ToolApprovalResponse {
                approval_id,
                approved,
                reason,
                ..
            } => {
                let part = self
                    .message
                    .parts
                    .iter_mut()
                    .find_map(|part| match part {
                        UIPart::Tool(tool)
                            if tool.approval.as_ref().is_some_and(|a| &a.id == approval_id) =>
                        {
                            Some(tool)
                        }
                        _ => None,
                    })
                    .ok_or_else(|| fail("no approval with that id"))?;
                part.state = ToolState::ApprovalResponded;
                if let Some(approval) = part.approval.as_mut() {
                    approval.approved = Some(*approved);
                    approval.reason = reason.clone();
                }
            }
            UIMessageChunk::ToolOutputAvailable {
                tool_call_id,
                output,
                provider_metadata,
                preliminary,
                ..
            } => {
                let part = self
                    .tool_mut(tool_call_id)
                    .ok_or_else(|| fail("no tool call with that id"))?;
                part.state = ToolState::OutputAvailable;
                part.output = Some(output.clone());
                part.preliminary = *preliminary;
                if provider_metadata.is_some() {
                    part.result_provider_metadata = provider_metadata.clone();
                }
            }
            UIMessageChunk::ToolOutputError {
                tool_call_id,
                error_text,
                provider_metadata,
                ..
            } => {
                let part = self
                    .tool_mut(tool_call_id)
                    .ok_or_else(|| fail("no tool call with that id"))?;
                part.state = ToolState::OutputError;
                part.error_text = Some(error_text.clone());
                part.preliminary = None;
                if provider_metadata.is_some() {
                    part.result_provider_metadata = provider_metadata.clone();
                }
            }
            UIMessageChunk::ToolOutputDenied { tool_call_id } => {
                let part = self
                    .tool_mut(tool_call_id)
                    .ok_or_else(|| fail("no tool call with that id"))?;
                part.state = ToolState::OutputDenied;
            }
            UIMessageChunk::SourceUrl {
                source_id,
                url,
                title,
                provider_metadata,
            } => self.message.parts.push(UIPart::SourceUrl(SourceUrlPart {
                source_id: source_id.clone(),
                url: url.clone(),
                title: title.clone(),
                provider_metadata: provider_metadata.clone(),
            })),
            UIMessageChunk::SourceDocument {
                source_id,
                media_type,
                title,
                filename,
                provider_metadata,
            } => self
                .message
                .parts
                .push(UIPart::SourceDocument(SourceDocumentPart {
                    source_id: source_id.clone(),
                    media_type: media_type.clone(),
                    title: title.clone(),
                    filename: filename.clone(),
                    provider_metadata: provider_metadata.clone(),
                })),
            UIMessageChunk::File {
                url,
                media_type,
                provider_metadata,
            } => self.message.parts.push(UIPart::File(FilePart {
                media_type: media_type.clone(),
                filename: None,
                url: url.clone(),
                provider_metadata: provider_metadata.clone(),
                provider_reference: None,
            })),
            UIMessageChunk::Data(data) => {
                if data.transient == Some(true) {
                    return Ok(());
                }
                let part = DataPart {
                    kind: data.kind.clone(),
                    id: data.id.clone(),
                    data: data.data.clone(),
                };
                let existing = data.id.as_ref().and_then(|id| {
                    self.message.parts.iter_mut().find(|candidate| {
                        matches!(candidate, UIPart::Data(d) if d.kind == data.kind && d.id.as_ref() == Some(id))
                    })
                });
                match existing {
                    Some(slot) => *slot = UIPart::Data(part),
                    None => self.message.parts.push(UIPart::Data(part)),
                }
            }
            UIMessageChunk::MessageMetadata { message_metadata } => {
                self.merge_metadata(message_metadata)
            }
            UIMessageChunk::Finish {
                finish_reason,
                message_metadata,
            } => {
                self.finish_reason = finish_reason.or(Some(FinishReason::Stop));
                if let Some(metadata) = message_metadata {
                    self.merge_metadata(metadata);
                }
            }
            UIMessageChunk::Abort { .. } => self.aborted = true,
            UIMessageChunk::Error { error_text } => self.errors.push(error_text.clone()),
        }
        Ok(())
    }

    fn open_parts(&mut self, reasoning: bool) -> &mut HashMap<String, usize> {
        if reasoning {
            &mut self.open_reasoning
        } else {
            &mut self.open_text
        }
    }

    fn start_part(&mut self, reasoning: bool, id: &str, provider_metadata: &Option<Value>) {
        let part = TextPart {
            text: String::new(),
            state: Some(PartState::Streaming),
            provider_metadata: provider_metadata.clone(),
        };
        self.message.parts.push(if reasoning {
            UIPart::Reasoning(part)
        } else {
            UIPart::Text(part)
        });
        let index = self.message.parts.len() - 1;
        self.open_parts(reasoning).insert(id.to_owned(), index);
    }

    /// Appends a delta to (or ends) the open part with this id; `None` if there is none.
    fn update_part(
        &mut self,
        reasoning: bool,
        id: &str,
        delta: Option<&String>,
        provider_metadata: &Option<Value>,
        end: bool,
    ) -> Option<()> {
        let index = *self.open_parts(reasoning).get(id)?;
        let (UIPart::Text(part) | UIPart::Reasoning(part)) = self.message.parts.get_mut(index)?
        else {
            return None;
        };
        if let Some(delta) = delta {
            part.text.push_str(delta);
        }
        if provider_metadata.is_some() {
            part.provider_metadata = provider_metadata.clone();
        }
        if end {
            part.state = Some(PartState::Done);
            self.open_parts(reasoning).remove(id);
        }
        Some(())
    }

    /// The tool call's whole input arrived: valid (`error` is `None`), or refused.
    fn settle_input(&mut self, call: ToolInput<'_>, error: Option<&String>) {
        self.tool_input_text.remove(call.tool_call_id);
        let state = match error {
            None => ToolState::InputAvailable,
            Some(_) => ToolState::OutputError,
        };
        let mut part = match self.tool_mut(call.tool_call_id) {
            Some(existing) => existing.clone(),
            None => ToolPart::new(call.tool_name.clone(), call.tool_call_id.clone(), state),
        };
        part.state = state;
        part.input = Some(call.input.clone());
        if let Some(error) = error {
            part.raw_input = Some(call.input.clone());
            part.error_text = Some(error.clone());
        }
        part.dynamic = call.dynamic.unwrap_or(part.dynamic);
        part.provider_executed = call.provider_executed.or(part.provider_executed);
        part.call_provider_metadata = call
            .provider_metadata
            .clone()
            .or(part.call_provider_metadata);
        part.tool_metadata = call.tool_metadata.clone().or(part.tool_metadata);
        part.title = call.title.clone().or(part.title);
        self.upsert_tool(part);
    }

    fn tool_mut(&mut self, tool_call_id: &str) -> Option<&mut ToolPart> {
        self.message.parts.iter_mut().find_map(|part| match part {
            UIPart::Tool(tool) if tool.tool_call_id == tool_call_id => Some(tool),
            _ => None,
        })
    }

    fn upsert_tool(&mut self, mut part: ToolPart) {
        // `tool-` with no name does not load back: a call without a name cannot be one of the
        // app's declared tools, so it is kept as a dynamic one.
        if part.tool_name.is_empty() {
            part.dynamic = true;
        }
        match self.tool_mut(&part.tool_call_id) {
            Some(existing) => *existing = part,
            None => self.message.parts.push(UIPart::Tool(part)),
        }
    }

    /// Metadata merges like the client's `mergeObjects`: objects recursively, the rest replaced.
    fn merge_metadata(&mut self, incoming: &Value) {
        match self.message.metadata.as_mut() {
            Some(existing) => merge_objects(existing, incoming),
            None => self.message.metadata = Some(incoming.clone()),
        }
    }
}

fn merge_objects(target: &mut Value, incoming: &Value) {
    match (target, incoming) {
        (Value::Object(target), Value::Object(incoming)) => {
            for (key, value) in incoming {
                match target.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_objects(existing, value)
                    }
                    _ => {
                        target.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (target, incoming) => *target = incoming.clone(),
    }
}

/// Best effort parse of a JSON prefix, as the client does for streaming tool input: close open
/// strings, arrays and objects and drop a dangling key or separator.
pub fn parse_partial_json(text: &str) -> Option<Value> {
    if let Ok(value) = serde_json::from_str(text) {
        return Some(value);
    }
    let mut closers = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => closers.push('}'),
            '[' => closers.push(']'),
            '}' | ']' => {
                closers.pop();
            }
            _ => {}
        }
    }
    let mut repaired = text.to_owned();
    if escaped {
        repaired.pop();
    }
    if in_string {
        repaired.push('"');
    }
    // Trim what cannot end a value: separators, a key without its value, a partial literal.
    for _ in 0..4 {
        let mut candidate = repaired.clone();
        for closer in closers.iter().rev() {
            candidate.push(*closer);
        }
        if let Ok(value) = serde_json::from_str(&candidate) {
            return Some(value);
        }
        let trimmed = repaired.trim_end();
        let cut = trimmed
            .rfind([',', ':', '{', '['])
            .map(|index| {
                if trimmed[index..].starts_with(['{', '[']) {
                    index + 1
                } else {
                    index
                }
            })
            .unwrap_or(0);
        if cut == 0 || cut >= repaired.len() {
            break;
        }
        repaired.truncate(cut);
        if repaired.ends_with(':') {
            // A key whose value never came: drop the key too.
            if let Some(start) = repaired.trim_end_matches(':').rfind([',', '{']) {
                repaired.truncate(start + usize::from(repaired[start..].starts_with('{')));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(value: Value) -> UIMessageChunk {
        serde_json::from_value(value).expect("valid chunk")
    }

    fn fold(chunks: &[Value]) -> MessageFold {
        let mut fold = MessageFold::new("fallback");
        for value in chunks {
            fold.apply(&chunk(value.clone())).expect("applies");
        }
        fold
    }

    #[test]
    fn a_tool_call_without_a_name_is_kept_as_a_dynamic_tool() {
        // Found by fuzzing: the part was stored as `tool-`, which does not load back, so the
        // chat's history could no longer be read.
        for chunks in [
            vec![
                json!({"type":"tool-input-error","toolCallId":"c1","toolName":"","input":"{","errorText":"bad"}),
            ],
            vec![
                json!({"type":"tool-input-start","toolCallId":"c1","toolName":"","dynamic":true}),
                json!({"type":"tool-input-available","toolCallId":"c1","toolName":"","input":{},"dynamic":false}),
            ],
        ] {
            let fold = fold(&chunks);
            let stored = serde_json::to_string(fold.message()).expect("json");
            let loaded: UIMessage = serde_json::from_str(&stored).expect("loads back");
            assert_eq!(&loaded, fold.message());
            let part = loaded.tool_parts().next().expect("a tool part");
            assert!(part.dynamic);
            assert_eq!(part.tool_name, "");
            assert!(stored.contains(r#""type":"dynamic-tool""#), "{stored}");
        }
    }

    #[test]
    fn text_and_reasoning_accumulate_into_parts() {
        let fold = fold(&[
            json!({"type":"start","messageId":"m1"}),
            json!({"type":"start-step"}),
            json!({"type":"reasoning-start","id":"r"}),
            json!({"type":"reasoning-delta","id":"r","delta":"think"}),
            json!({"type":"reasoning-end","id":"r"}),
            json!({"type":"text-start","id":"t"}),
            json!({"type":"text-delta","id":"t","delta":"Hel"}),
            json!({"type":"text-delta","id":"t","delta":"lo"}),
            json!({"type":"text-end","id":"t"}),
            json!({"type":"finish-step"}),
            json!({"type":"finish","finishReason":"stop"}),
        ]);
        let message = serde_json::to_value(fold.message()).expect("json");
        assert_eq!(
            message,
            json!({"id":"m1","role":"assistant","parts":[
                {"type":"step-start"},
                {"type":"reasoning","text":"think","state":"done"},
                {"type":"text","text":"Hello","state":"done"}
            ]})
        );
        assert_eq!(fold.finish_reason(), Some(FinishReason::Stop));
    }

    #[test]
    fn tool_calls_move_through_their_states() {
        let fold = fold(&[
            json!({"type":"tool-input-start","toolCallId":"c1","toolName":"roll_dice"}),
            json!({"type":"tool-input-delta","toolCallId":"c1","inputTextDelta":"{\"sides\": 2"}),
            json!({"type":"tool-input-delta","toolCallId":"c1","inputTextDelta":"0}"}),
            json!({"type":"tool-input-available","toolCallId":"c1","toolName":"roll_dice","input":{"sides":20}}),
            json!({"type":"tool-output-available","toolCallId":"c1","output":{"total":7}}),
        ]);
        let tool = fold.message().tool_parts().next().expect("a tool part");
        assert_eq!(tool.state, ToolState::OutputAvailable);
        assert_eq!(tool.input, Some(json!({"sides":20})));
        assert_eq!(tool.output, Some(json!({"total":7})));
    }

    #[test]
    fn streaming_tool_input_is_parsed_partially() {
        let fold = fold(&[
            json!({"type":"tool-input-start","toolCallId":"c1","toolName":"search"}),
            json!({"type":"tool-input-delta","toolCallId":"c1","inputTextDelta":"{\"query\": \"oslo wea"}),
        ]);
        let tool = fold.message().tool_parts().next().expect("a tool part");
        assert_eq!(tool.state, ToolState::InputStreaming);
        assert_eq!(tool.input, Some(json!({"query":"oslo wea"})));
    }

    #[test]
    fn approvals_are_requested_and_answered() {
        let fold = fold(&[
            json!({"type":"tool-input-available","toolCallId":"c1","toolName":"delete","input":{}}),
            json!({"type":"tool-approval-request","approvalId":"a1","toolCallId":"c1"}),
            json!({"type":"tool-approval-response","approvalId":"a1","approved":false,"reason":"no"}),
            json!({"type":"tool-output-denied","toolCallId":"c1"}),
        ]);
        let tool = fold.message().tool_parts().next().expect("a tool part");
        assert_eq!(tool.state, ToolState::OutputDenied);
        let approval = tool.approval.as_ref().expect("approval");
        assert_eq!(approval.approved, Some(false));
    }

    #[test]
    fn data_parts_with_an_id_replace_in_place_and_transient_ones_are_dropped() {
        let fold = fold(&[
            json!({"type":"data-progress","id":"p","data":1}),
            json!({"type":"text-start","id":"t"}),
            json!({"type":"data-progress","id":"p","data":2}),
            json!({"type":"data-toast","data":"hi","transient":true}),
        ]);
        let parts = &fold.message().parts;
        assert_eq!(parts.len(), 2);
        assert!(matches!(&parts[0], UIPart::Data(d) if d.data == json!(2)));
    }

    #[test]
    fn metadata_merges_deeply() {
        let fold = fold(&[
            json!({"type":"start","messageMetadata":{"a":{"x":1},"b":1}}),
            json!({"type":"message-metadata","messageMetadata":{"a":{"y":2}}}),
            json!({"type":"finish","messageMetadata":{"b":2}}),
        ]);
        assert_eq!(
            fold.message().metadata,
            Some(json!({"a":{"x":1,"y":2},"b":2}))
        );
    }

    #[test]
    fn a_delta_without_its_start_is_an_error() {
        let mut fold = MessageFold::new("m");
        let error = fold
            .apply(&UIMessageChunk::text_delta("t", "x"))
            .expect_err("no open part");
        assert_eq!(error.chunk, "text-delta");
    }

    #[test]
    fn closing_chunks_end_open_parts() {
        let mut fold = fold(&[
            json!({"type":"reasoning-start","id":"r"}),
            json!({"type":"text-start","id":"t"}),
        ]);
        let closing = fold.closing_chunks();
        assert_eq!(closing.len(), 2);
        for chunk in &closing {
            fold.apply(chunk).expect("closes");
        }
        assert!(!fold.has_open_parts());
    }

    #[test]
    fn partial_json_repairs_prefixes() {
        let cases = [
            ("{", json!({})),
            ("{\"a\"", json!({})),
            ("{\"a\":", json!({})),
            ("{\"a\": 1,", json!({"a":1})),
            ("{\"a\": [1, 2", json!({"a":[1,2]})),
            ("{\"a\": \"x\\", json!({"a":"x"})),
            ("{\"a\": {\"b\": \"c", json!({"a":{"b":"c"}})),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_partial_json(text), Some(expected), "{text}");
        }
    }
}
