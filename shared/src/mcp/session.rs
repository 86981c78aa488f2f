//! The state of a conversation with one server (sans-IO): the handshake that opens a session,
//! the headers every later request carries, and the walk through a paginated tool list.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::error::McpError;
use super::schema::{InitializeResult, McpTool, ToolPage};

/// The header that carries the server's session id, once it gave one.
pub const SESSION_ID_HEADER: &str = "mcp-session-id";
/// The header that carries the protocol revision of the session.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// What a POST carries besides the configured headers: it may be answered in JSON or as an
/// event stream, and the client reads both.
pub const POST_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

/// An open session: what the server said in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The server's id for the session, when it keeps sessions.
    pub id: Option<String>,
    /// The revision both sides speak.
    pub protocol_version: String,
    /// What the server tells the model about using its tools, if anything.
    pub instructions: Option<String>,
}

impl Session {
    /// The session from the server's answer to `initialize`: its `Mcp-Session-Id` header and
    /// its result.
    pub fn open(session_id: Option<&[u8]>, result: Value) -> Result<Self, McpError> {
        let id = match session_id {
            Some(id) if is_valid_session_id(id) => {
                // Visible ASCII only, as checked.
                Some(String::from_utf8_lossy(id).into_owned())
            }
            Some(_) => {
                return Err(McpError::Protocol(
                    "the session id must be visible ASCII characters".into(),
                ));
            }
            None => None,
        };
        let result = InitializeResult::parse(result)?;
        Ok(Session {
            id,
            protocol_version: result.protocol_version,
            instructions: result.instructions,
        })
    }

    /// The headers of every request after `initialize`.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![(PROTOCOL_VERSION_HEADER, self.protocol_version.as_str())];
        if let Some(id) = &self.id {
            headers.push((SESSION_ID_HEADER, id.as_str()));
        }
        headers
    }
}

/// The spec's rule for session ids: one or more visible ASCII characters.
fn is_valid_session_id(id: &[u8]) -> bool {
    !id.is_empty() && id.iter().all(|byte| (0x21..=0x7e).contains(byte))
}

/// The most pages of tools read from one server: a server that keeps handing out cursors is
/// broken, and its list must not grow without bound.
pub const MAX_TOOL_PAGES: usize = 100;

/// Walks `tools/list` page by page: the params of each request, the tools of each answer.
#[derive(Debug, Default)]
pub struct ToolPages {
    tools: Vec<McpTool>,
    cursors: HashSet<String>,
    pages: usize,
}

impl ToolPages {
    /// A walk at the first page.
    pub fn new() -> Self {
        ToolPages::default()
    }

    /// Takes an answer; the params of the next request, or `None` at the last page. The first
    /// request has no params.
    pub fn push(&mut self, result: Value) -> Result<Option<Value>, McpError> {
        let page = ToolPage::parse(result)?;
        self.pages += 1;
        self.tools.extend(page.tools);
        let Some(cursor) = page.next_cursor else {
            return Ok(None);
        };
        if self.pages >= MAX_TOOL_PAGES {
            return Err(McpError::Protocol(format!(
                "the tool list goes on past {MAX_TOOL_PAGES} pages"
            )));
        }
        if !self.cursors.insert(cursor.clone()) {
            return Err(McpError::Protocol(
                "the tool list's cursor came back to a page already read".into(),
            ));
        }
        Ok(Some(json!({ "cursor": cursor })))
    }

    /// Every tool of every page, in the server's order; a name the server lists twice is kept
    /// once, with its first description.
    pub fn into_tools(self) -> Vec<McpTool> {
        let mut seen = HashSet::new();
        self.tools
            .into_iter()
            .filter(|tool| seen.insert(tool.name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Value {
        json!({"name": name, "description": name, "inputSchema": {"type": "object"}})
    }

    #[test]
    fn a_session_with_an_id_sends_it_and_the_version() {
        let session = Session::open(
            Some(b"cc08a4d9-7a7e-4121-8bbb-a15d6276fb85"),
            json!({"protocolVersion": "2025-06-18", "capabilities": {}}),
        )
        .expect("opens");
        assert_eq!(
            session.headers(),
            [
                (PROTOCOL_VERSION_HEADER, "2025-06-18"),
                (SESSION_ID_HEADER, "cc08a4d9-7a7e-4121-8bbb-a15d6276fb85")
            ]
        );
    }

    #[test]
    fn a_stateless_server_gets_the_version_alone() {
        let session = Session::open(
            None,
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "instructions": "Hi"}),
        )
        .expect("opens");
        assert_eq!(session.id, None);
        assert_eq!(session.instructions.as_deref(), Some("Hi"));
        assert_eq!(session.headers(), [(PROTOCOL_VERSION_HEADER, "2025-11-25")]);
    }

    #[test]
    fn a_bad_session_id_or_version_refuses_the_session() {
        let result = json!({"protocolVersion": "2025-06-18", "capabilities": {}});
        for id in [&b""[..], b"has space", b"tab\t", "é".as_bytes()] {
            assert!(
                matches!(
                    Session::open(Some(id), result.clone()),
                    Err(McpError::Protocol(_))
                ),
                "{id:?}"
            );
        }
        assert_eq!(
            Session::open(
                None,
                json!({"protocolVersion": "1999-01-01", "capabilities": {}})
            ),
            Err(McpError::UnsupportedVersion("1999-01-01".into()))
        );
    }

    #[test]
    fn pages_are_followed_until_there_is_no_cursor() {
        let mut pages = ToolPages::new();
        let next = pages
            .push(json!({"tools": [tool("a"), tool("b")], "nextCursor": "2"}))
            .expect("page 1");
        assert_eq!(next, Some(json!({"cursor": "2"})));
        let next = pages
            .push(json!({"tools": [tool("c"), tool("a")], "nextCursor": "3"}))
            .expect("page 2");
        assert_eq!(next, Some(json!({"cursor": "3"})));
        assert_eq!(pages.push(json!({"tools": [tool("d")]})), Ok(None));
        let names: Vec<_> = pages
            .into_tools()
            .into_iter()
            .map(|tool| tool.name)
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_cursor_that_loops_or_never_ends_is_an_error() {
        let mut pages = ToolPages::new();
        pages
            .push(json!({"tools": [], "nextCursor": "x"}))
            .expect("first");
        assert!(matches!(
            pages.push(json!({"tools": [], "nextCursor": "x"})),
            Err(McpError::Protocol(_))
        ));

        let mut pages = ToolPages::new();
        let mut result = Ok(None);
        for page in 0..MAX_TOOL_PAGES {
            result = pages.push(json!({"tools": [], "nextCursor": page.to_string()}));
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(McpError::Protocol(m)) if m.contains("pages")));
    }
}
