//! The ConverseStream protocol, sans IO: the request body from the core's model messages
//! (`request`), and the stream's event-stream messages mapped to
//! [`ModelEvent`](crate::model::ModelEvent)s (`decode`).
//!
//! Reasoning is streamed whenever a model sends it (`reasoningContent` deltas). The request does
//! not turn on Claude's extended thinking: with it, every later step of a tool loop must send
//! each earlier thought back with the signature the model gave it, which UI messages do not keep.

mod decode;
mod request;

pub use decode::{ConverseDecoder, ConverseStreamDecoder, exception_error, stop_reason};
pub use request::request_body;
