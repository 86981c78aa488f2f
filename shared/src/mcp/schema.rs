//! The few MCP messages a tool client exchanges (initialize, `tools/list`, `tools/call`), as
//! serde types, and what a tool call's result becomes for the model.
//!
//! The official SDK's types are not used: that crate needs tokio's runtime features on every
//! target (the Worker has no tokio runtime) and compiles a whole service layer besides.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::McpError;
use crate::agent::ToolError;

/// The revision chatfn asks for in `initialize`.
pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";

/// The revisions whose transport is Streamable HTTP; a server answering any other is left.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The params of `initialize`: chatfn asks for no client capabilities (no sampling, roots or
/// elicitation), so a server has no reason to send it requests of its own.
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": LATEST_PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "chatfn", "version": env!("CARGO_PKG_VERSION")},
    })
}

/// What a server says of itself in its answer to `initialize`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InitializeResult {
    /// The protocol revision the server chose.
    #[serde(rename = "protocolVersion")]
    pub protocol_version: String,
    /// The server's name and version, if it gave them.
    #[serde(rename = "serverInfo", default)]
    pub server_info: Option<Implementation>,
    /// How to use the server, for a model's system prompt.
    #[serde(default)]
    pub instructions: Option<String>,
}

/// A program's name and version, as MCP's handshake names client and server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Implementation {
    /// The program's name.
    pub name: String,
    /// Its version, if given.
    #[serde(default)]
    pub version: Option<String>,
}

impl InitializeResult {
    /// Reads the answer to `initialize`; a protocol revision chatfn does not speak is an error.
    pub fn parse(result: Value) -> Result<Self, McpError> {
        let result: InitializeResult = serde_json::from_value(result)
            .map_err(|error| McpError::Protocol(format!("the answer to initialize: {error}")))?;
        if !SUPPORTED_PROTOCOL_VERSIONS.contains(&result.protocol_version.as_str()) {
            return Err(McpError::UnsupportedVersion(result.protocol_version));
        }
        Ok(result)
    }
}

/// A tool as the server describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpTool {
    /// The server's own name for it: what `tools/call` is sent with.
    pub name: String,
    /// What the tool does (its title when it has no description), for the model.
    pub description: String,
    /// The JSON schema of its input (an object schema).
    pub input_schema: Value,
}

/// One page of `tools/list`.
pub(crate) struct ToolPage {
    pub tools: Vec<McpTool>,
    pub next_cursor: Option<String>,
}

impl ToolPage {
    /// Reads a page. A tool entry that is not a tool (no name, no object schema) is skipped
    /// rather than costing the server all its tools; so is a tool that can only be called as a
    /// task, which chatfn does not do.
    pub fn parse(result: Value) -> Result<Self, McpError> {
        #[derive(Deserialize)]
        struct Page {
            tools: Vec<Value>,
            #[serde(rename = "nextCursor", default)]
            next_cursor: Option<String>,
        }
        let page: Page = serde_json::from_value(result)
            .map_err(|error| McpError::Protocol(format!("the answer to tools/list: {error}")))?;
        Ok(ToolPage {
            tools: page.tools.into_iter().filter_map(McpTool::parse).collect(),
            next_cursor: page.next_cursor.filter(|cursor| !cursor.is_empty()),
        })
    }
}

impl McpTool {
    fn parse(tool: Value) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire {
            name: String,
            #[serde(default)]
            title: Option<String>,
            #[serde(default)]
            description: Option<String>,
            #[serde(rename = "inputSchema")]
            input_schema: Value,
            #[serde(default)]
            execution: Option<Execution>,
        }
        #[derive(Deserialize)]
        struct Execution {
            #[serde(rename = "taskSupport", default)]
            task_support: Option<String>,
        }
        let tool: Wire = serde_json::from_value(tool).ok()?;
        let task_only = tool
            .execution
            .and_then(|execution| execution.task_support)
            .is_some_and(|support| support == "required");
        if tool.name.is_empty() || !tool.input_schema.is_object() || task_only {
            return None;
        }
        Some(McpTool {
            description: tool.description.or(tool.title).unwrap_or_default(),
            name: tool.name,
            input_schema: tool.input_schema,
        })
    }
}

/// The params of `tools/call`.
pub fn call_params(name: &str, arguments: Value) -> Value {
    let arguments = match arguments {
        // A model that calls a tool without input sends null; MCP wants an object.
        Value::Null => json!({}),
        arguments => arguments,
    };
    json!({"name": name, "arguments": arguments})
}

/// What a tool call came to. `is_error` means the tool ran and failed (bad input, a failure of
/// its own): the model should read why and may try again.
#[derive(Debug, Clone, PartialEq)]
pub struct CallToolResult {
    /// The blocks of the result, in order.
    pub content: Vec<Content>,
    /// The tool's result as JSON, for tools that declare an output schema.
    pub structured_content: Option<Value>,
    /// True when the tool ran and failed; `content` says why.
    pub is_error: bool,
}

/// One block of a tool's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Text.
    Text(String),
    /// An image, base64-encoded.
    Image {
        /// The base64 bytes.
        data: String,
        /// Their media type.
        mime_type: String,
    },
    /// A sound, base64-encoded.
    Audio {
        /// The base64 bytes.
        data: String,
        /// Their media type.
        mime_type: String,
    },
    /// A pointer to a resource the server holds.
    ResourceLink {
        /// Where the resource is.
        uri: String,
        /// Its name.
        name: String,
        /// What it is, if said.
        description: Option<String>,
        /// Its media type, if said.
        mime_type: Option<String>,
    },
    /// A resource's contents, inline.
    Resource {
        /// Where the resource is.
        uri: String,
        /// Its media type, if said.
        mime_type: Option<String>,
        /// Its contents.
        body: ResourceBody,
    },
    /// A block of a type this client does not know, by its `type`.
    Other(String),
}

/// The contents of an inline resource.
#[derive(Debug, Clone, PartialEq)]
pub enum ResourceBody {
    /// Text.
    Text(String),
    /// Base64-encoded bytes.
    Blob(String),
}

impl CallToolResult {
    /// Reads the answer to `tools/call`.
    pub fn parse(result: Value) -> Result<Self, McpError> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            content: Vec<Value>,
            #[serde(rename = "structuredContent", default)]
            structured_content: Option<Value>,
            #[serde(rename = "isError", default)]
            is_error: Option<bool>,
        }
        let wire: Wire = serde_json::from_value(result)
            .map_err(|error| McpError::Protocol(format!("the answer to tools/call: {error}")))?;
        Ok(CallToolResult {
            content: wire.content.into_iter().map(Content::parse).collect(),
            structured_content: wire.structured_content.filter(|value| !value.is_null()),
            is_error: wire.is_error.unwrap_or(false),
        })
    }

    /// What the model is given: the structured result when there is one (its text blocks are
    /// the same JSON, serialized, for older clients), else the blocks as text.
    pub fn output(&self) -> Value {
        match &self.structured_content {
            Some(structured) if !self.is_error => structured.clone(),
            _ => Value::String(self.text()),
        }
    }

    /// Every block as text, one after another: images, sounds and binary resources are
    /// described, not inlined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .map(Content::describe)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// chatfn's tool result: the output, or a tool error (whose text the model reads).
    pub fn into_tool_result(self) -> Result<Value, ToolError> {
        if !self.is_error {
            return Ok(self.output());
        }
        let text = self.text();
        Err(ToolError::new(if text.trim().is_empty() {
            "the tool failed without saying why".to_owned()
        } else {
            text
        }))
    }
}

impl Content {
    fn parse(block: Value) -> Content {
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Wire {
            Text {
                text: String,
            },
            Image {
                data: String,
                #[serde(rename = "mimeType")]
                mime_type: String,
            },
            Audio {
                data: String,
                #[serde(rename = "mimeType")]
                mime_type: String,
            },
            ResourceLink {
                uri: String,
                name: String,
                #[serde(default)]
                description: Option<String>,
                #[serde(rename = "mimeType", default)]
                mime_type: Option<String>,
            },
            Resource {
                resource: Resource,
            },
        }
        #[derive(Deserialize)]
        struct Resource {
            uri: String,
            #[serde(rename = "mimeType", default)]
            mime_type: Option<String>,
            #[serde(default)]
            text: Option<String>,
            #[serde(default)]
            blob: Option<String>,
        }
        let kind = block
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("untyped")
            .to_owned();
        match serde_json::from_value(block) {
            Ok(Wire::Text { text }) => Content::Text(text),
            Ok(Wire::Image { data, mime_type }) => Content::Image { data, mime_type },
            Ok(Wire::Audio { data, mime_type }) => Content::Audio { data, mime_type },
            Ok(Wire::ResourceLink {
                uri,
                name,
                description,
                mime_type,
            }) => Content::ResourceLink {
                uri,
                name,
                description,
                mime_type,
            },
            Ok(Wire::Resource { resource }) => {
                let body = match (resource.text, resource.blob) {
                    (Some(text), _) => ResourceBody::Text(text),
                    (None, Some(blob)) => ResourceBody::Blob(blob),
                    (None, None) => ResourceBody::Text(String::new()),
                };
                Content::Resource {
                    uri: resource.uri,
                    mime_type: resource.mime_type,
                    body,
                }
            }
            Err(_) => Content::Other(kind),
        }
    }

    /// The block as text for the model.
    pub fn describe(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Image { data, mime_type } => {
                format!("[image: {mime_type}, {} bytes]", decoded_len(data))
            }
            Content::Audio { data, mime_type } => {
                format!("[audio: {mime_type}, {} bytes]", decoded_len(data))
            }
            Content::ResourceLink {
                uri,
                name,
                description,
                mime_type,
            } => {
                let mut text = format!("[resource link: {name} <{uri}>");
                if let Some(mime_type) = mime_type {
                    text.push_str(&format!(", {mime_type}"));
                }
                text.push(']');
                if let Some(description) = description.as_deref().filter(|d| !d.is_empty()) {
                    text.push_str(&format!(" {description}"));
                }
                text
            }
            Content::Resource {
                uri,
                mime_type,
                body: ResourceBody::Text(text),
            } => match mime_type {
                Some(mime_type) => format!("[resource <{uri}>, {mime_type}]\n{text}"),
                None => format!("[resource <{uri}>]\n{text}"),
            },
            Content::Resource {
                uri,
                mime_type,
                body: ResourceBody::Blob(blob),
            } => format!(
                "[resource <{uri}>: {}, {} bytes]",
                mime_type.as_deref().unwrap_or("application/octet-stream"),
                decoded_len(blob)
            ),
            Content::Other(kind) => format!("[{kind} content]"),
        }
    }
}

/// The size of what base64 `data` encodes, without decoding it.
fn decoded_len(data: &str) -> usize {
    let data = data.trim_end();
    let padding = data.bytes().rev().take_while(|&byte| byte == b'=').count();
    (data.len() / 4 * 3 + (data.len() % 4).saturating_sub(1)).saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_asks_for_the_latest_revision_and_no_capabilities() {
        let params = initialize_params();
        assert_eq!(params["protocolVersion"], LATEST_PROTOCOL_VERSION);
        assert_eq!(params["capabilities"], json!({}));
        assert_eq!(params["clientInfo"]["name"], "chatfn");
    }

    #[test]
    fn an_older_streamable_revision_is_accepted_and_others_are_not() {
        let result = InitializeResult::parse(json!({
            "protocolVersion": "2025-03-26",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "s", "version": "1"},
            "instructions": "Use it well."
        }))
        .expect("supported");
        assert_eq!(result.protocol_version, "2025-03-26");
        assert_eq!(result.instructions.as_deref(), Some("Use it well."));
        assert_eq!(
            InitializeResult::parse(json!({"protocolVersion": "2024-11-05", "capabilities": {}})),
            Err(McpError::UnsupportedVersion("2024-11-05".into()))
        );
        assert!(matches!(
            InitializeResult::parse(json!({"capabilities": {}})),
            Err(McpError::Protocol(_))
        ));
    }

    #[test]
    fn a_tool_page_skips_what_is_not_a_callable_tool() {
        let page = ToolPage::parse(json!({
            "tools": [
                {"name": "echo", "description": "Echoes", "inputSchema": {"type": "object"}},
                {"name": "titled", "title": "A title", "inputSchema": {"type": "object"}},
                {"name": "no-schema"},
                {"name": "", "inputSchema": {"type": "object"}},
                {"name": "task", "inputSchema": {"type": "object"},
                 "execution": {"taskSupport": "required"}},
                {"name": "maybe-task", "inputSchema": {"type": "object"},
                 "execution": {"taskSupport": "optional"}},
                7
            ],
            "nextCursor": "page-2"
        }))
        .expect("valid page");
        let names: Vec<_> = page.tools.iter().map(|tool| tool.name.as_str()).collect();
        assert_eq!(names, ["echo", "titled", "maybe-task"]);
        assert_eq!(page.tools[1].description, "A title");
        assert_eq!(page.next_cursor.as_deref(), Some("page-2"));

        let last = ToolPage::parse(json!({"tools": [], "nextCursor": ""})).expect("valid");
        assert_eq!(last.next_cursor, None);
        assert!(matches!(
            ToolPage::parse(json!({"items": []})),
            Err(McpError::Protocol(_))
        ));
    }

    #[test]
    fn call_params_always_send_an_object() {
        assert_eq!(
            call_params("get-sum", json!({"a": 1})),
            json!({"name": "get-sum", "arguments": {"a": 1}})
        );
        assert_eq!(
            call_params("ping", Value::Null),
            json!({"name": "ping", "arguments": {}})
        );
    }

    #[test]
    fn text_content_is_the_output() {
        let result = CallToolResult::parse(json!({
            "content": [{"type": "text", "text": "Echo: hi"}]
        }))
        .expect("valid");
        assert!(!result.is_error);
        assert_eq!(result.output(), json!("Echo: hi"));
        assert_eq!(result.into_tool_result(), Ok(json!("Echo: hi")));
    }

    #[test]
    fn structured_content_is_the_output_when_present() {
        let result = CallToolResult::parse(json!({
            "content": [{"type": "text", "text": "{\"temperature\":36}"}],
            "structuredContent": {"temperature": 36}
        }))
        .expect("valid");
        assert_eq!(result.output(), json!({"temperature": 36}));
    }

    #[test]
    fn an_error_result_is_a_tool_error_with_its_text() {
        let result = CallToolResult::parse(json!({
            "content": [{"type": "text", "text": "Invalid arguments for tool get-sum"}],
            "isError": true
        }))
        .expect("valid");
        assert_eq!(
            result.into_tool_result(),
            Err(ToolError::new("Invalid arguments for tool get-sum"))
        );
        let silent = CallToolResult::parse(json!({"content": [], "isError": true})).expect("ok");
        assert_eq!(
            silent.into_tool_result(),
            Err(ToolError::new("the tool failed without saying why"))
        );
    }

    #[test]
    fn media_and_resources_are_described() {
        let result = CallToolResult::parse(json!({"content": [
            {"type": "text", "text": "Here:"},
            {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
            {"type": "resource_link", "uri": "demo://r/1", "name": "R1",
             "description": "First", "mimeType": "text/plain"},
            {"type": "resource", "resource": {"uri": "demo://r/2", "mimeType": "text/plain",
                                              "text": "Resource 2"}},
            {"type": "resource", "resource": {"uri": "demo://r/3", "blob": "AAE="}},
            {"type": "hologram", "data": "?"},
            {"type": "image"}
        ]}))
        .expect("valid");
        assert_eq!(
            result.text(),
            "Here:\n\
             [image: image/png, 8 bytes]\n\
             [audio: audio/wav, 3 bytes]\n\
             [resource link: R1 <demo://r/1>, text/plain] First\n\
             [resource <demo://r/2>, text/plain]\nResource 2\n\
             [resource <demo://r/3>: application/octet-stream, 2 bytes]\n\
             [hologram content]\n\
             [image content]"
        );
        assert!(
            matches!(&result.content[1], Content::Image { mime_type, .. } if mime_type == "image/png")
        );
    }

    #[test]
    fn a_result_that_is_not_one_is_a_protocol_error() {
        assert!(matches!(
            CallToolResult::parse(json!("done")),
            Err(McpError::Protocol(_))
        ));
        assert!(matches!(
            CallToolResult::parse(json!({"content": "text"})),
            Err(McpError::Protocol(_))
        ));
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(decoded_len(""), 0);
        assert_eq!(decoded_len("AA=="), 1);
        assert_eq!(decoded_len("AAE="), 2);
        assert_eq!(decoded_len("AAAA"), 3);
        assert_eq!(decoded_len("AAAAAA"), 4);
    }
}
