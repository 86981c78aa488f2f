//! The tools of an agent's MCP servers, resolved once per turn: each server's list (cached per
//! process by its client), named for the model beside the agent's own tools, each name routed
//! back to its server's own name for `tools/call`.
//!
//! The clients are shared per process, keyed by the server's configuration, so a host that
//! builds its agent per request (the Worker) still lists a server's tools once per TTL rather
//! than once per turn.

use std::sync::Arc;

#[cfg(any(feature = "native", target_arch = "wasm32"))]
use crate::mcp::McpClient;
use crate::mcp::McpServer;

use super::Tool;

/// The MCP servers whose tools an agent offers, and the way to resolve them for one turn.
#[derive(Clone, Default)]
pub(crate) struct McpToolSource {
    #[cfg(any(feature = "native", target_arch = "wasm32"))]
    clients: Vec<Arc<McpClient>>,
}

#[cfg(any(feature = "native", target_arch = "wasm32"))]
impl McpToolSource {
    /// Adds `server`; a server whose configuration is not usable is left out with an error in
    /// the log (the configuration from the environment was checked when it was read).
    pub(crate) fn add(&mut self, server: McpServer) {
        match shared_client(server) {
            Ok(client) => {
                if !self.clients.iter().any(|known| Arc::ptr_eq(known, &client)) {
                    self.clients.push(client);
                }
            }
            Err(error) => tracing::error!(%error, "the agent goes on without this MCP server"),
        }
    }

    /// Whether the agent has no MCP server.
    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// The tools of every server for one turn, named so that none takes a name in `taken` (the
    /// agent's own tools). Servers are asked concurrently; one that cannot list its tools
    /// contributes none (its client logs why).
    pub(crate) async fn resolve(&self, taken: &[&str]) -> Vec<Arc<dyn Tool>> {
        resolve(&self.clients, taken).await
    }
}

/// Without an HTTP client (a build with neither `native` nor wasm32) there are no MCP tools.
#[cfg(not(any(feature = "native", target_arch = "wasm32")))]
impl McpToolSource {
    pub(crate) fn add(&mut self, server: McpServer) {
        tracing::error!(
            mcp_server = %server.name(),
            "this build of chatfn has no HTTP client for MCP servers: enable the `native` feature"
        );
    }

    pub(crate) fn is_empty(&self) -> bool {
        true
    }

    pub(crate) async fn resolve(&self, _taken: &[&str]) -> Vec<Arc<dyn Tool>> {
        Vec::new()
    }
}

#[cfg(any(feature = "native", target_arch = "wasm32"))]
async fn resolve(clients: &[Arc<McpClient>], taken: &[&str]) -> Vec<Arc<dyn Tool>> {
    use crate::mcp::{ServerTools, map_tool_names};

    let lists = futures::future::join_all(clients.iter().map(|client| client.tools())).await;
    let names: Vec<Vec<&str>> = lists
        .iter()
        .map(|tools| tools.iter().map(|tool| tool.name.as_str()).collect())
        .collect();
    let servers: Vec<ServerTools<'_>> = clients
        .iter()
        .zip(&names)
        .map(|(client, tools)| ServerTools {
            server: client.server().name(),
            tools,
        })
        .collect();
    // The routes come in the servers' order, then each server's: the order of `lists`.
    let names = map_tool_names(&servers, taken);
    let mut routes = names.routes().iter();
    let mut resolved: Vec<Arc<dyn Tool>> = Vec::new();
    for (client, tools) in clients.iter().zip(&lists) {
        for (tool, route) in tools.iter().zip(routes.by_ref()) {
            resolved.push(Arc::new(remote::RemoteTool {
                model_name: route.model_name.clone(),
                tool: tool.clone(),
                client: client.clone(),
            }));
        }
    }
    resolved
}

/// The process's client of `server`: the one made for an equal configuration before, else a
/// new one.
#[cfg(any(feature = "native", target_arch = "wasm32"))]
fn shared_client(server: McpServer) -> Result<Arc<McpClient>, crate::mcp::McpConfigError> {
    static CLIENTS: std::sync::Mutex<Vec<Arc<McpClient>>> = std::sync::Mutex::new(Vec::new());
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(client) = clients.iter().find(|client| client.server() == &server) {
        return Ok(client.clone());
    }
    let client = Arc::new(McpClient::new(server)?);
    clients.push(client.clone());
    Ok(client)
}

#[cfg(any(feature = "native", target_arch = "wasm32"))]
mod remote {
    use std::sync::Arc;

    use async_trait::async_trait;
    use serde_json::Value;

    use crate::agent::{Tool, ToolContext, ToolError};
    use crate::mcp::{McpClient, McpTool};

    /// One MCP tool as the agent offers it: under the model's name, called by the server's.
    pub(super) struct RemoteTool {
        pub(super) model_name: String,
        pub(super) tool: McpTool,
        pub(super) client: Arc<McpClient>,
    }

    #[async_trait]
    impl Tool for RemoteTool {
        fn name(&self) -> &str {
            &self.model_name
        }

        fn description(&self) -> &str {
            &self.tool.description
        }

        fn input_schema(&self) -> Value {
            self.tool.input_schema.clone()
        }

        async fn execute(&self, input: Value, context: ToolContext) -> Result<Value, ToolError> {
            match self
                .client
                .call_tool_until(&self.tool.name, input, &context.stop)
                .await
            {
                Ok(result) => result.into_tool_result(),
                Err(error) => {
                    tracing::warn!(
                        chat = %context.chat_id,
                        tool = %self.model_name,
                        mcp_server = %self.client.server().name(),
                        %error,
                        "an MCP tool call failed"
                    );
                    Err(ToolError::new(error.to_string()))
                }
            }
        }
    }
}
