//! Tools from MCP servers: a Model Context Protocol client for tools over Streamable HTTP.
//!
//! The protocol is sans-IO, unit-tested beside its code: JSON-RPC framing ([`jsonrpc`]), the
//! MCP messages a tool client needs ([`schema`]), an answer read as JSON or as an event stream
//! ([`answer`]), the session's handshake and the tool list's pages ([`session`]), the model's
//! names for the tools ([`names`]) and when to list them again ([`cache`]). [`McpClient`] is
//! the thin IO over them; [`McpServer`] is a server as configured (in Rust or from
//! `CHATFN_MCP_SERVERS`).
//!
//! The official Rust SDK needs tokio tasks and `Send` futures throughout, which the Worker
//! (wasm32, no tokio runtime) cannot give; the subset a tool client speaks is small enough to
//! own.

pub mod answer;
pub mod cache;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
mod client;
mod error;
pub mod jsonrpc;
pub mod names;
pub mod schema;
mod server;
pub mod session;

pub use cache::CachePolicy;
#[cfg(any(feature = "native", target_arch = "wasm32"))]
pub use client::McpClient;
pub use error::McpError;
pub use names::{ServerTools, ToolNames, ToolRoute, map_tool_names};
pub use schema::{CallToolResult, Content, McpTool, ResourceBody};
pub use server::{DEFAULT_TIMEOUT, McpConfigError, McpServer, parse_servers};
