//! `UIMessage` and its parts, as the `ai` package (v5, v6, v7) sends and stores them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UIMessage {
    pub id: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub parts: Vec<UIPart>,
}

impl UIMessage {
    pub fn new(id: impl Into<String>, role: Role) -> Self {
        UIMessage {
            id: id.into(),
            role,
            metadata: None,
            parts: Vec::new(),
        }
    }

    /// A user message with one text part.
    pub fn user_text(id: impl Into<String>, text: impl Into<String>) -> Self {
        let mut message = UIMessage::new(id, Role::User);
        message.parts.push(UIPart::text(text));
        message
    }

    /// The text parts joined, for logs and tests.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|part| match part {
                UIPart::Text(text) => Some(text.text.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn tool_parts(&self) -> impl Iterator<Item = &ToolPart> {
        self.parts.iter().filter_map(|part| match part {
            UIPart::Tool(tool) => Some(tool),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartState {
    Streaming,
    Done,
}

// Tool parts are the largest and among the most common parts: boxing them would cost an
// allocation per part and make every match on them clumsier, for little memory saved.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum UIPart {
    Text(TextPart),
    Reasoning(TextPart),
    SourceUrl(SourceUrlPart),
    SourceDocument(SourceDocumentPart),
    File(FilePart),
    ReasoningFile(ReasoningFilePart),
    Custom(CustomPart),
    StepStart,
    /// `tool-<name>` and `dynamic-tool`.
    #[serde(untagged)]
    Tool(ToolPart),
    /// `data-<name>`.
    #[serde(untagged)]
    Data(DataPart),
}

impl UIPart {
    pub fn text(text: impl Into<String>) -> Self {
        UIPart::Text(TextPart {
            text: text.into(),
            state: Some(PartState::Done),
            provider_metadata: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextPart {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PartState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceUrlPart {
    pub source_id: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDocumentPart {
    pub source_id: String,
    pub media_type: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilePart {
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningFilePart {
    pub media_type: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPart {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

/// The life of a tool call, in the order the states are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToolState {
    InputStreaming,
    InputAvailable,
    ApprovalRequested,
    ApprovalResponded,
    OutputAvailable,
    OutputError,
    OutputDenied,
}

impl ToolState {
    /// The call has a final outcome (an output, an error or a denial).
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            ToolState::OutputAvailable | ToolState::OutputError | ToolState::OutputDenied
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolApproval {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_automatic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A tool call: `tool-<name>` for tools the app declared, `dynamic-tool` for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawToolPart", into = "RawToolPart")]
pub struct ToolPart {
    pub tool_name: String,
    pub dynamic: bool,
    pub tool_call_id: String,
    pub state: ToolState,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error_text: Option<String>,
    pub raw_input: Option<Value>,
    pub approval: Option<ToolApproval>,
    pub provider_executed: Option<bool>,
    pub call_provider_metadata: Option<Value>,
    pub result_provider_metadata: Option<Value>,
    pub preliminary: Option<bool>,
    pub title: Option<String>,
    pub tool_metadata: Option<Value>,
}

impl ToolPart {
    pub fn new(
        tool_name: impl Into<String>,
        tool_call_id: impl Into<String>,
        state: ToolState,
    ) -> Self {
        ToolPart {
            tool_name: tool_name.into(),
            dynamic: false,
            tool_call_id: tool_call_id.into(),
            state,
            input: None,
            output: None,
            error_text: None,
            raw_input: None,
            approval: None,
            provider_executed: None,
            call_provider_metadata: None,
            result_provider_metadata: None,
            preliminary: None,
            title: None,
            tool_metadata: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawToolPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_name: Option<String>,
    tool_call_id: String,
    state: ToolState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval: Option<ToolApproval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_executed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_provider_metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result_provider_metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preliminary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_metadata: Option<Value>,
}

impl TryFrom<RawToolPart> for ToolPart {
    type Error = String;

    fn try_from(raw: RawToolPart) -> Result<Self, Self::Error> {
        let (tool_name, dynamic) = if raw.kind == "dynamic-tool" {
            let name = raw
                .tool_name
                .ok_or_else(|| "a dynamic-tool part needs `toolName`".to_owned())?;
            (name, true)
        } else if let Some(name) = raw.kind.strip_prefix("tool-").filter(|n| !n.is_empty()) {
            (name.to_owned(), false)
        } else {
            return Err(format!("unknown part type `{}`", raw.kind));
        };
        Ok(ToolPart {
            tool_name,
            dynamic,
            tool_call_id: raw.tool_call_id,
            state: raw.state,
            input: raw.input,
            output: raw.output,
            error_text: raw.error_text,
            raw_input: raw.raw_input,
            approval: raw.approval,
            provider_executed: raw.provider_executed,
            call_provider_metadata: raw.call_provider_metadata,
            result_provider_metadata: raw.result_provider_metadata,
            preliminary: raw.preliminary,
            title: raw.title,
            tool_metadata: raw.tool_metadata,
        })
    }
}

impl From<ToolPart> for RawToolPart {
    fn from(part: ToolPart) -> Self {
        let (kind, tool_name) = if part.dynamic {
            ("dynamic-tool".to_owned(), Some(part.tool_name))
        } else {
            (format!("tool-{}", part.tool_name), None)
        };
        RawToolPart {
            kind,
            tool_name,
            tool_call_id: part.tool_call_id,
            state: part.state,
            input: part.input,
            output: part.output,
            error_text: part.error_text,
            raw_input: part.raw_input,
            approval: part.approval,
            provider_executed: part.provider_executed,
            call_provider_metadata: part.call_provider_metadata,
            result_provider_metadata: part.result_provider_metadata,
            preliminary: part.preliminary,
            title: part.title,
            tool_metadata: part.tool_metadata,
        }
    }
}

/// A `data-<name>` part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDataPart")]
pub struct DataPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub data: Value,
}

#[derive(Deserialize)]
struct RawDataPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    data: Value,
}

impl TryFrom<RawDataPart> for DataPart {
    type Error = String;

    fn try_from(raw: RawDataPart) -> Result<Self, Self::Error> {
        if raw.kind.len() > "data-".len() && raw.kind.starts_with("data-") {
            Ok(DataPart {
                kind: raw.kind,
                id: raw.id,
                data: raw.data,
            })
        } else {
            Err(format!("unknown part type `{}`", raw.kind))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(value: Value) -> UIMessage {
        let message: UIMessage = serde_json::from_value(value.clone()).expect("parses");
        assert_eq!(serde_json::to_value(&message).expect("serializes"), value);
        message
    }

    #[test]
    fn a_v7_assistant_message_with_every_part_round_trips() {
        let message = round_trip(json!({
            "id": "m1",
            "role": "assistant",
            "metadata": {"model": "gpt"},
            "parts": [
                {"type": "step-start"},
                {"type": "reasoning", "text": "thinking", "state": "done"},
                {"type": "text", "text": "Hello", "state": "done", "providerMetadata": {"x": {}}},
                {"type": "tool-weather", "toolCallId": "c1", "state": "output-available",
                 "input": {"city": "Oslo"}, "output": {"temp": 3}},
                {"type": "tool-delete", "toolCallId": "c2", "state": "approval-requested",
                 "input": {"path": "/"}, "approval": {"id": "a1"}},
                {"type": "dynamic-tool", "toolName": "search", "toolCallId": "c3",
                 "state": "output-error", "input": {}, "errorText": "boom"},
                {"type": "source-url", "sourceId": "s1", "url": "https://example.com"},
                {"type": "source-document", "sourceId": "s2", "mediaType": "text/plain", "title": "T"},
                {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AA=="},
                {"type": "reasoning-file", "mediaType": "image/png", "url": "https://x/y.png"},
                {"type": "custom", "kind": "openai.compaction"},
                {"type": "data-weather", "id": "w", "data": {"temp": 3}}
            ]
        }));
        let tools: Vec<_> = message.tool_parts().collect();
        assert_eq!(tools.len(), 3);
        assert_eq!(tools[0].tool_name, "weather");
        assert!(tools[2].dynamic);
        assert_eq!(tools[2].tool_name, "search");
    }

    #[test]
    fn a_v5_user_message_round_trips() {
        let message = round_trip(json!({
            "id": "u1",
            "role": "user",
            "parts": [{"type": "text", "text": "hi"}]
        }));
        assert_eq!(message.text(), "hi");
    }

    #[test]
    fn unknown_part_types_are_rejected() {
        for part in [
            json!({"type": "sparkle"}),
            json!({"type": "tool-", "toolCallId": "c", "state": "input-available"}),
            json!({"type": "dynamic-tool", "toolCallId": "c", "state": "input-available"}),
            json!({"type": "tool-x", "toolCallId": "c", "state": "exploded"}),
        ] {
            let message = json!({"id": "m", "role": "assistant", "parts": [part]});
            assert!(
                serde_json::from_value::<UIMessage>(message).is_err(),
                "{part}"
            );
        }
    }
}
