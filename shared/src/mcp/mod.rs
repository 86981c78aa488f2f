//! Tools from MCP servers: a Model Context Protocol client for tools over Streamable HTTP.
//!
//! [`McpServer`] is a server as configured, in Rust or from `CHATFN_MCP_SERVERS`.

mod server;

pub use server::{DEFAULT_TIMEOUT, McpConfigError, McpServer, parse_servers};
