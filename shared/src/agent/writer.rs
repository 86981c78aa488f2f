//! What tools write into the reply besides their result: `data-*` parts (kept in the message, or
//! transient for the client's `onData` only), message metadata, and preliminary outputs (progress
//! shown in the tool's part while it runs, e.g. a sub-agent's reply so far).

use futures::channel::mpsc::UnboundedSender;
use serde::Serialize;
use serde_json::Value;

use crate::ui::{DataChunk, UIMessageChunk};

/// Writes into the running reply. Writes after the turn ended are dropped.
#[derive(Debug, Clone)]
pub struct DataWriter {
    sender: Option<UnboundedSender<UIMessageChunk>>,
    tool_call_id: Option<String>,
}

impl DataWriter {
    pub(crate) fn new(
        sender: UnboundedSender<UIMessageChunk>,
        tool_call_id: Option<String>,
    ) -> Self {
        DataWriter {
            sender: Some(sender),
            tool_call_id,
        }
    }

    /// A writer that goes nowhere, for tools run outside a turn (tests, sub-agents' own tools).
    pub fn detached() -> Self {
        DataWriter {
            sender: None,
            tool_call_id: None,
        }
    }

    fn send(&self, chunk: UIMessageChunk) {
        if let Some(sender) = &self.sender {
            // The receiver is gone only once the turn ended; nothing is left to write to.
            let _ = sender.unbounded_send(chunk);
        }
    }

    /// A `data-<name>` part kept in the message. A later write with the same name and id
    /// replaces it in place (progress bars, live status).
    pub fn data(&self, name: &str, id: Option<&str>, data: impl Serialize) {
        self.send_data(name, id, data, None);
    }

    /// A part of one of your data types (`data-{T::NAME}`), kept in the message; a later write
    /// with the same id replaces it in place.
    pub fn part<T: crate::ui::DataType>(&self, id: Option<&str>, part: &T) {
        self.send_data(T::NAME, id, part, None);
    }

    /// Merges your typed metadata into the reply's message metadata.
    pub fn typed_metadata(&self, metadata: &impl Serialize) {
        self.metadata(serde_json::to_value(metadata).unwrap_or(Value::Null));
    }

    /// A `data-<name>` part for the client's `onData` only: never stored in the message.
    pub fn transient(&self, name: &str, data: impl Serialize) {
        self.send_data(name, None, data, Some(true));
    }

    fn send_data(
        &self,
        name: &str,
        id: Option<&str>,
        data: impl Serialize,
        transient: Option<bool>,
    ) {
        let data = serde_json::to_value(data).unwrap_or(Value::Null);
        self.send(UIMessageChunk::Data(DataChunk {
            kind: format!("data-{name}"),
            id: id.map(str::to_owned),
            data,
            transient,
        }));
    }

    /// Merges `metadata` into the reply's message metadata.
    pub fn metadata(&self, metadata: Value) {
        self.send(UIMessageChunk::MessageMetadata {
            message_metadata: metadata,
        });
    }

    /// Shows `output` in this tool's part while it still runs; its result replaces it.
    pub fn preliminary(&self, output: impl Serialize) {
        let Some(tool_call_id) = &self.tool_call_id else {
            return;
        };
        self.send(UIMessageChunk::ToolOutputAvailable {
            tool_call_id: tool_call_id.clone(),
            output: serde_json::to_value(output).unwrap_or(Value::Null),
            provider_executed: None,
            provider_metadata: None,
            tool_metadata: None,
            dynamic: None,
            preliminary: Some(true),
        });
    }
}
