//! Tools from MCP servers: a Model Context Protocol client for tools over Streamable HTTP.
//!
//! The protocol is sans-IO, unit-tested beside its code: JSON-RPC framing ([`jsonrpc`]), the
//! MCP messages a tool client needs ([`schema`]), an answer read as JSON or as an event stream
//! ([`answer`]), and the session's handshake and the tool list's pages ([`session`]).
//! [`McpServer`] is a server as configured, in Rust or from `CHATFN_MCP_SERVERS`.

pub mod answer;
mod error;
pub mod jsonrpc;
pub mod schema;
mod server;
pub mod session;

pub use error::McpError;
pub use schema::{CallToolResult, Content, McpTool, ResourceBody};
pub use server::{DEFAULT_TIMEOUT, McpConfigError, McpServer, parse_servers};
