//! `UIMessage` and its parts, as the `ai` package (v5, v6, v7) sends and stores them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who a message is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model, set by the app.
    System,
    /// The person chatting.
    User,
    /// The agent: the model and the tools it ran.
    Assistant,
}

/// A chat message as the client shows it and the store keeps it: who sent it and its parts in
/// order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UIMessage {
    /// The message's id, unique in its chat.
    pub id: String,
    /// Who the message is from.
    pub role: Role,
    /// The app's data about the message (model, usage, timing), any JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Text, reasoning, tool calls, files, sources and data, in the order they arrived.
    #[serde(default)]
    pub parts: Vec<UIPart>,
}

impl UIMessage {
    /// A message with no metadata and no parts yet.
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

    /// The message's tool calls, in order.
    pub fn tool_parts(&self) -> impl Iterator<Item = &ToolPart> {
        self.parts.iter().filter_map(|part| match part {
            UIPart::Tool(tool) => Some(tool),
            _ => None,
        })
    }
}

/// Whether a text or reasoning part is still growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartState {
    /// Deltas may still be appended.
    Streaming,
    /// The part is complete.
    Done,
}

// Tool parts are the largest and among the most common parts: boxing them would cost an
// allocation per part and make every match on them clumsier, for little memory saved.
/// One part of a message, tagged by its `type` on the wire.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum UIPart {
    /// `text`: text for the person to read.
    Text(TextPart),
    /// `reasoning`: the model's visible thinking.
    Reasoning(TextPart),
    /// `source-url`: a web page the reply cites.
    SourceUrl(SourceUrlPart),
    /// `source-document`: a document the reply cites.
    SourceDocument(SourceDocumentPart),
    /// `file`: a file the person attached or the model produced.
    File(FilePart),
    /// `reasoning-file`: a file the model produced while reasoning.
    ReasoningFile(ReasoningFilePart),
    /// `custom`: provider-specific content kept as is.
    Custom(CustomPart),
    /// `step-start`: where a model call begins; parts after it, up to the next one, are its.
    StepStart,
    /// `tool-<name>` and `dynamic-tool`.
    #[serde(untagged)]
    Tool(ToolPart),
    /// `data-<name>`.
    #[serde(untagged)]
    Data(DataPart),
}

impl UIPart {
    /// A finished text part.
    pub fn text(text: impl Into<String>) -> Self {
        UIPart::Text(TextPart {
            text: text.into(),
            state: Some(PartState::Done),
            provider_metadata: None,
        })
    }
}

/// A text or reasoning part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextPart {
    /// The text so far.
    pub text: String,
    /// Whether the text is still streaming; older clients send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PartState>,
    /// `providerMetadata`: provider data for the part, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

/// A web page the reply cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceUrlPart {
    /// `sourceId`: the source's id, unique in the message.
    pub source_id: String,
    /// The page's address.
    pub url: String,
    /// The page's title, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Provider data, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

/// A document the reply cites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDocumentPart {
    /// The source's id, unique in the message.
    pub source_id: String,
    /// `mediaType`: the document's IANA media type.
    pub media_type: String,
    /// The document's title.
    pub title: String,
    /// The document's file name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Provider data, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

/// A file the person attached or the model produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilePart {
    /// The file's IANA media type.
    pub media_type: String,
    /// The file's name, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Where the file is: a URL, or a `data:` URL carrying the bytes.
    pub url: String,
    /// Provider data, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
    /// `providerReference`: the provider's handle for a file it already holds, passed through
    /// as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_reference: Option<Value>,
}

/// A file the model produced while reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReasoningFilePart {
    /// The file's IANA media type.
    pub media_type: String,
    /// Where the file is: a URL, or a `data:` URL carrying the bytes.
    pub url: String,
    /// Provider data, passed through as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

/// Provider-specific content that the client keeps without understanding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPart {
    /// What the content is, named by its provider (`openai.compaction`).
    pub kind: String,
    /// The content itself, as the provider gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_metadata: Option<Value>,
}

/// The life of a tool call, in the order the states are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToolState {
    /// The model is still writing the input.
    InputStreaming,
    /// The input is complete; the call runs or waits to.
    InputAvailable,
    /// The call waits for a person to approve or deny it.
    ApprovalRequested,
    /// The person answered; the call runs next if approved.
    ApprovalResponded,
    /// The tool returned an output.
    OutputAvailable,
    /// The tool failed, or its input was refused.
    OutputError,
    /// The person denied the call; it did not run.
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

/// A tool call's approval: the request and, once a person answered, the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolApproval {
    /// The approval's id, which the answer refers to.
    pub id: String,
    /// The answer: `None` while nobody has answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    /// Why, in the person's words, when they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `isAutomatic`: kept as received; chatfn's own requests leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_automatic: Option<bool>,
    /// The server's signature of the request, which an answer must carry for the call to run
    /// (see [`crate::agent::ApprovalSigner`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// A tool call: `tool-<name>` for tools the app declared, `dynamic-tool` for the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawToolPart", into = "RawToolPart")]
pub struct ToolPart {
    /// The tool called: from the `type` (`tool-<name>`), or `toolName` for a dynamic one.
    pub tool_name: String,
    /// The tool is not one the app declared, so the part is a `dynamic-tool`.
    pub dynamic: bool,
    /// `toolCallId`: the call's id, unique in the chat.
    pub tool_call_id: String,
    /// How far the call got.
    pub state: ToolState,
    /// The input: partial while it streams, whole once it is available.
    pub input: Option<Value>,
    /// What the tool returned, once it did.
    pub output: Option<Value>,
    /// `errorText`: why the call failed or its input was refused.
    pub error_text: Option<String>,
    /// `rawInput`: the input as the model sent it, when it was refused.
    pub raw_input: Option<Value>,
    /// The approval the call waits for or got.
    pub approval: Option<ToolApproval>,
    /// `providerExecuted`: the provider runs the tool itself, not the app.
    pub provider_executed: Option<bool>,
    /// `callProviderMetadata`: provider data about the call, passed through as is.
    pub call_provider_metadata: Option<Value>,
    /// `resultProviderMetadata`: provider data about the result, passed through as is.
    pub result_provider_metadata: Option<Value>,
    /// The output is one so far from a tool that streams; a later one replaces it.
    pub preliminary: Option<bool>,
    /// A title to show for the call instead of the tool's name.
    pub title: Option<String>,
    /// `toolMetadata`: data about the tool for the client, passed through as is.
    pub tool_metadata: Option<Value>,
}

impl ToolPart {
    /// A call of a declared tool in `state`, with nothing else known yet.
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
    /// The full type, `data-<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Names the part, so a later chunk with the same type and id replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The application's data, any JSON.
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
