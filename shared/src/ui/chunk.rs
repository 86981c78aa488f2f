//! `UIMessageChunk`: every chunk type of the UI message stream (wire v1).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::FinishReason;

/// One chunk of the UI message stream. Field names follow the `ai` package exactly; extra fields
/// a newer client sends are ignored, an unknown `type` is an error (as in the client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum UIMessageChunk {
    Start {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_metadata: Option<Value>,
    },
    StartStep,
    FinishStep,
    ResetStep,
    TextStart {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    TextDelta {
        id: String,
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    TextEnd {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    ReasoningStart {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    ReasoningDelta {
        id: String,
        delta: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    ReasoningEnd {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    ReasoningFile {
        url: String,
        media_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    Custom {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    ToolInputStart {
        tool_call_id: String,
        tool_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    ToolInputDelta {
        tool_call_id: String,
        input_text_delta: String,
    },
    ToolInputAvailable {
        tool_call_id: String,
        tool_name: String,
        input: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    ToolInputError {
        tool_call_id: String,
        tool_name: String,
        input: Value,
        error_text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    ToolApprovalRequest {
        approval_id: String,
        tool_call_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_automatic: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    ToolApprovalResponse {
        approval_id: String,
        approved: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    ToolOutputAvailable {
        tool_call_id: String,
        output: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preliminary: Option<bool>,
    },
    ToolOutputError {
        tool_call_id: String,
        error_text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
    },
    ToolOutputDenied {
        tool_call_id: String,
    },
    SourceUrl {
        source_id: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    SourceDocument {
        source_id: String,
        media_type: String,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    File {
        url: String,
        media_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    MessageMetadata {
        message_metadata: Value,
    },
    Finish {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<FinishReason>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_metadata: Option<Value>,
    },
    Abort {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Error {
        error_text: String,
    },
    /// `data-<name>`: application data parts.
    #[serde(untagged)]
    Data(DataChunk),
}

/// A `data-<name>` chunk. With an `id`, a later chunk of the same type and id replaces it in place;
/// `transient` ones reach only the client's `onData` and are never stored in the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDataChunk")]
pub struct DataChunk {
    /// The full type, `data-<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient: Option<bool>,
}

#[derive(Deserialize)]
struct RawDataChunk {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    data: Value,
    #[serde(default)]
    transient: Option<bool>,
}

impl TryFrom<RawDataChunk> for DataChunk {
    type Error = String;

    fn try_from(raw: RawDataChunk) -> Result<Self, Self::Error> {
        if raw.kind.len() > "data-".len() && raw.kind.starts_with("data-") {
            Ok(DataChunk {
                kind: raw.kind,
                id: raw.id,
                data: raw.data,
                transient: raw.transient,
            })
        } else {
            Err(format!("unknown chunk type `{}`", raw.kind))
        }
    }
}

impl UIMessageChunk {
    /// The chunk's `type` on the wire.
    pub fn type_name(&self) -> &str {
        match self {
            UIMessageChunk::Start { .. } => "start",
            UIMessageChunk::StartStep => "start-step",
            UIMessageChunk::FinishStep => "finish-step",
            UIMessageChunk::ResetStep => "reset-step",
            UIMessageChunk::TextStart { .. } => "text-start",
            UIMessageChunk::TextDelta { .. } => "text-delta",
            UIMessageChunk::TextEnd { .. } => "text-end",
            UIMessageChunk::ReasoningStart { .. } => "reasoning-start",
            UIMessageChunk::ReasoningDelta { .. } => "reasoning-delta",
            UIMessageChunk::ReasoningEnd { .. } => "reasoning-end",
            UIMessageChunk::ReasoningFile { .. } => "reasoning-file",
            UIMessageChunk::Custom { .. } => "custom",
            UIMessageChunk::ToolInputStart { .. } => "tool-input-start",
            UIMessageChunk::ToolInputDelta { .. } => "tool-input-delta",
            UIMessageChunk::ToolInputAvailable { .. } => "tool-input-available",
            UIMessageChunk::ToolInputError { .. } => "tool-input-error",
            UIMessageChunk::ToolApprovalRequest { .. } => "tool-approval-request",
            UIMessageChunk::ToolApprovalResponse { .. } => "tool-approval-response",
            UIMessageChunk::ToolOutputAvailable { .. } => "tool-output-available",
            UIMessageChunk::ToolOutputError { .. } => "tool-output-error",
            UIMessageChunk::ToolOutputDenied { .. } => "tool-output-denied",
            UIMessageChunk::SourceUrl { .. } => "source-url",
            UIMessageChunk::SourceDocument { .. } => "source-document",
            UIMessageChunk::File { .. } => "file",
            UIMessageChunk::MessageMetadata { .. } => "message-metadata",
            UIMessageChunk::Finish { .. } => "finish",
            UIMessageChunk::Abort { .. } => "abort",
            UIMessageChunk::Error { .. } => "error",
            UIMessageChunk::Data(data) => &data.kind,
        }
    }

    /// Whether this chunk ends the reply (the stream carries nothing after it).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            UIMessageChunk::Finish { .. } | UIMessageChunk::Abort { .. }
        )
    }

    pub fn text_delta(id: impl Into<String>, delta: impl Into<String>) -> Self {
        UIMessageChunk::TextDelta {
            id: id.into(),
            delta: delta.into(),
            provider_metadata: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(value: Value) -> UIMessageChunk {
        let chunk: UIMessageChunk = serde_json::from_value(value.clone()).expect("parses");
        assert_eq!(serde_json::to_value(&chunk).expect("serializes"), value);
        chunk
    }

    #[test]
    fn every_v7_chunk_round_trips() {
        let samples = [
            json!({"type":"start","messageId":"m1"}),
            json!({"type":"start","messageId":"m1","messageMetadata":{"model":"x"}}),
            json!({"type":"start"}),
            json!({"type":"start-step"}),
            json!({"type":"finish-step"}),
            json!({"type":"reset-step"}),
            json!({"type":"text-start","id":"t1"}),
            json!({"type":"text-delta","id":"t1","delta":"Hel"}),
            json!({"type":"text-end","id":"t1","providerMetadata":{"openai":{"a":1}}}),
            json!({"type":"reasoning-start","id":"r1"}),
            json!({"type":"reasoning-delta","id":"r1","delta":"hmm"}),
            json!({"type":"reasoning-end","id":"r1"}),
            json!({"type":"reasoning-file","url":"data:image/png;base64,AA==","mediaType":"image/png"}),
            json!({"type":"custom","kind":"openai.compaction"}),
            json!({"type":"tool-input-start","toolCallId":"c1","toolName":"weather","dynamic":true,"title":"Weather"}),
            json!({"type":"tool-input-delta","toolCallId":"c1","inputTextDelta":"{\"ci"}),
            json!({"type":"tool-input-available","toolCallId":"c1","toolName":"weather","input":{"city":"Oslo"}}),
            json!({"type":"tool-input-error","toolCallId":"c1","toolName":"weather","input":"{bad","errorText":"invalid JSON"}),
            json!({"type":"tool-approval-request","approvalId":"a1","toolCallId":"c1"}),
            json!({"type":"tool-approval-response","approvalId":"a1","approved":false,"reason":"no"}),
            json!({"type":"tool-output-available","toolCallId":"c1","output":{"t":3},"preliminary":true}),
            json!({"type":"tool-output-error","toolCallId":"c1","errorText":"boom"}),
            json!({"type":"tool-output-denied","toolCallId":"c1"}),
            json!({"type":"source-url","sourceId":"s1","url":"https://example.com","title":"Ex"}),
            json!({"type":"source-document","sourceId":"s2","mediaType":"application/pdf","title":"Doc","filename":"a.pdf"}),
            json!({"type":"file","url":"https://example.com/a.png","mediaType":"image/png"}),
            json!({"type":"data-weather","id":"w1","data":{"temp":3}}),
            json!({"type":"data-progress","data":0.5,"transient":true}),
            json!({"type":"message-metadata","messageMetadata":{"tokens":3}}),
            json!({"type":"finish","finishReason":"tool-calls"}),
            json!({"type":"finish"}),
            json!({"type":"abort","reason":"stopped"}),
            json!({"type":"error","errorText":"rate limited"}),
        ];
        for sample in samples {
            round_trip(sample);
        }
    }

    #[test]
    fn data_chunks_keep_their_name() {
        let chunk = round_trip(json!({"type":"data-weather","data":{"temp":3}}));
        assert_eq!(chunk.type_name(), "data-weather");
    }

    #[test]
    fn unknown_types_are_rejected() {
        for bad in [
            json!({"type":"text-sparkle","id":"x"}),
            json!({"type":"data-","data":1}),
            json!({"type":"start-step-2"}),
            json!({"id":"x"}),
        ] {
            assert!(
                serde_json::from_value::<UIMessageChunk>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn extra_fields_are_ignored() {
        let chunk: UIMessageChunk =
            serde_json::from_value(json!({"type":"text-delta","id":"t","delta":"a","future":1}))
                .expect("loose objects parse");
        assert_eq!(chunk, UIMessageChunk::text_delta("t", "a"));
    }
}
