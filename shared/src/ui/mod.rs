//! The AI SDK UI message stream: messages, chunks, SSE framing, the fold and model conversion.

mod chunk;
pub mod convert;
pub mod fold;
mod message;
pub mod sse;
mod typed;

pub use chunk::{DataChunk, UIMessageChunk};
pub use convert::{ConvertOptions, to_model_messages};
pub use fold::MessageFold;
pub use message::{
    CustomPart, DataPart, FilePart, PartState, ReasoningFilePart, Role, SourceDocumentPart,
    SourceUrlPart, TextPart, ToolApproval, ToolPart, ToolState, UIMessage, UIPart,
};
pub use typed::DataType;
