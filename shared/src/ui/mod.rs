//! The AI SDK UI message stream: messages, chunks, SSE framing, the fold and model conversion.

mod chunk;
mod message;

pub use chunk::{DataChunk, UIMessageChunk};
pub use message::{
    CustomPart, DataPart, FilePart, PartState, ReasoningFilePart, Role, SourceDocumentPart,
    SourceUrlPart, TextPart, ToolApproval, ToolPart, ToolState, UIMessage, UIPart,
};
