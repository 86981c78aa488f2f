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
    /// `start`: opens the assistant message the chunks after it build.
    Start {
        /// `messageId`: the id the client gives the message; without it the client makes one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
        /// `messageMetadata`: merged into the message's metadata.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_metadata: Option<Value>,
    },
    /// `start-step`: one model call begins; the client marks it with a `step-start` part.
    StartStep,
    /// `finish-step`: the model call ended; text and reasoning parts still open take no more
    /// deltas.
    FinishStep,
    /// `reset-step`: drops the parts of the current step, for a step that is done over.
    ResetStep,
    /// `text-start`: opens a text part that the deltas with the same `id` fill.
    TextStart {
        /// The text part's id, which its deltas and its end repeat.
        id: String,
        /// `providerMetadata`: provider data for the part, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `text-delta`: text appended to an open text part.
    TextDelta {
        /// Which open text part the text belongs to.
        id: String,
        /// The text to append.
        delta: String,
        /// Provider data; replaces the part's when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `text-end`: closes a text part.
    TextEnd {
        /// Which open text part ends.
        id: String,
        /// Provider data; replaces the part's when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `reasoning-start`: opens a reasoning part, the model's visible thinking.
    ReasoningStart {
        /// The reasoning part's id, which its deltas and its end repeat.
        id: String,
        /// Provider data for the part, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `reasoning-delta`: text appended to an open reasoning part.
    ReasoningDelta {
        /// Which open reasoning part the text belongs to.
        id: String,
        /// The text to append.
        delta: String,
        /// Provider data; replaces the part's when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `reasoning-end`: closes a reasoning part.
    ReasoningEnd {
        /// Which open reasoning part ends.
        id: String,
        /// Provider data; replaces the part's when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `reasoning-file`: a file the model produced while reasoning.
    ReasoningFile {
        /// Where the file is: a URL, or a `data:` URL carrying the bytes.
        url: String,
        /// `mediaType`: the file's IANA media type.
        media_type: String,
        /// Provider data, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `custom`: provider-specific content the client keeps without understanding it.
    Custom {
        /// What the content is, named by its provider (`openai.compaction`).
        kind: String,
        /// The content itself, as the provider gave it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `tool-input-start`: the model began a tool call; its input follows in deltas.
    ToolInputStart {
        /// `toolCallId`: the call's id, which every later chunk about the call repeats.
        tool_call_id: String,
        /// `toolName`: the tool called.
        tool_name: String,
        /// `providerExecuted`: the provider runs the tool itself (a hosted web search), not
        /// the app.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// Provider data for the call, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        /// `toolMetadata`: data about the tool for the client, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        /// The tool is not one the app declared: its part is a `dynamic-tool` one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        /// A title to show for the call instead of the tool's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// `tool-input-delta`: more of a tool call's input, as JSON text.
    ToolInputDelta {
        /// The call the input belongs to.
        tool_call_id: String,
        /// `inputTextDelta`: JSON text to append; the client shows what parses of it so far.
        input_text_delta: String,
    },
    /// `tool-input-available`: a tool call's whole input, parsed; the call can run.
    ToolInputAvailable {
        /// The call's id.
        tool_call_id: String,
        /// The tool called.
        tool_name: String,
        /// The input the tool gets.
        input: Value,
        /// The provider runs the tool itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// Provider data for the call, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        /// Data about the tool for the client, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        /// The tool is not one the app declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        /// A title to show for the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// `tool-input-error`: a tool call whose input was refused (not JSON, no such tool, not
    /// the tool's schema); the call ends in an error without running.
    ToolInputError {
        /// The call's id.
        tool_call_id: String,
        /// The tool the model named.
        tool_name: String,
        /// The input as the model sent it, often the raw text that did not parse.
        input: Value,
        /// `errorText`: why the input was refused.
        error_text: String,
        /// The provider runs the tool itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// Provider data for the call, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        /// Data about the tool for the client, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        /// The tool is not one the app declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        /// A title to show for the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// `tool-approval-request`: a tool call waits for a person to approve or deny it.
    ToolApprovalRequest {
        /// `approvalId`: the id the answer refers to.
        approval_id: String,
        /// The call waiting.
        tool_call_id: String,
        /// `isAutomatic`: kept as received; chatfn's own requests leave it out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_automatic: Option<bool>,
        /// The server's signature over the chat, approval, call and input, which the answer
        /// must bring back (see [`crate::agent::ApprovalSigner`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// `tool-approval-response`: the answer to an approval request.
    ToolApprovalResponse {
        /// The request answered.
        approval_id: String,
        /// Whether the call may run.
        approved: bool,
        /// Why, in the person's words, when they gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The provider runs the tool itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// Provider data, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `tool-output-available`: what the tool returned.
    ToolOutputAvailable {
        /// The call answered.
        tool_call_id: String,
        /// The tool's output.
        output: Value,
        /// The provider ran the tool itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// Provider data for the result; replaces the part's result metadata when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        /// Data about the tool for the client, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        /// The tool is not one the app declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
        /// An output so far from a tool that streams; a later one replaces it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        preliminary: Option<bool>,
    },
    /// `tool-output-error`: the tool failed.
    ToolOutputError {
        /// The call that failed.
        tool_call_id: String,
        /// `errorText`: what went wrong, for the person and the model.
        error_text: String,
        /// The provider ran the tool itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_executed: Option<bool>,
        /// Provider data for the result; replaces the part's result metadata when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
        /// Data about the tool for the client, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_metadata: Option<Value>,
        /// The tool is not one the app declared.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dynamic: Option<bool>,
    },
    /// `tool-output-denied`: the call was denied and did not run.
    ToolOutputDenied {
        /// The call denied.
        tool_call_id: String,
    },
    /// `source-url`: a web page the reply cites.
    SourceUrl {
        /// `sourceId`: the source's id, unique in the message.
        source_id: String,
        /// The page's address.
        url: String,
        /// The page's title, when the provider gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Provider data, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `source-document`: a document the reply cites.
    SourceDocument {
        /// The source's id, unique in the message.
        source_id: String,
        /// The document's IANA media type.
        media_type: String,
        /// The document's title.
        title: String,
        /// The document's file name, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        /// Provider data, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `file`: a file in the reply, such as a generated image.
    File {
        /// Where the file is: a URL, or a `data:` URL carrying the bytes.
        url: String,
        /// The file's IANA media type.
        media_type: String,
        /// Provider data, passed through as is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_metadata: Option<Value>,
    },
    /// `message-metadata`: metadata merged into the message's at any point of the stream.
    MessageMetadata {
        /// The metadata; objects merge key by key, anything else replaces.
        message_metadata: Value,
    },
    /// `finish`: the reply is complete.
    Finish {
        /// `finishReason`: why the turn stopped; a client reads a missing one as `stop`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finish_reason: Option<FinishReason>,
        /// Metadata merged into the message's, such as the turn's usage.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_metadata: Option<Value>,
    },
    /// `abort`: the reply was stopped before it was complete.
    Abort {
        /// Why, when it is known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `error`: a failure to show the person.
    Error {
        /// `errorText`: the error as the person may see it.
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
    /// Names the part, so a later chunk with the same type and id replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The application's data, any JSON.
    pub data: Value,
    /// Sent to the client's `onData` only, never kept in the message.
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

    /// A `text-delta` with no provider metadata.
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
