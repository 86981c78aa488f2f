//! One MCP server as configured: its name, URL, headers, tool allow-list and timeout, built in
//! Rust with [`McpServer::http`] or read from `CHATFN_MCP_SERVERS` with [`parse_servers`].
//!
//! The headers usually carry credentials, and URLs sometimes do (an API key in the query), so
//! neither the `Debug` output nor any error of this module shows a header value or a query.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Uri};
use serde::Deserialize;

/// How long one operation on a server (listing its tools, one tool call) may take when the
/// configuration does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest server name: a prefixed tool name (`{server}_{tool}`) must still leave room for
/// the tool's own name within the providers' 64 characters.
pub const MAX_SERVER_NAME_CHARS: usize = 32;

/// Headers the client sets itself; a configured value would break the protocol.
const PROTOCOL_HEADERS: [&str; 5] = [
    "accept",
    "content-type",
    "content-length",
    "mcp-session-id",
    "mcp-protocol-version",
];

/// An MCP server reached over Streamable HTTP.
#[derive(Clone, PartialEq, Eq)]
pub struct McpServer {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    allowed_tools: Option<Vec<String>>,
    timeout: Duration,
}

impl McpServer {
    /// The server at `url` (its MCP endpoint, e.g. `https://example.com/mcp`), named after the
    /// URL's host until [`McpServer::named`] says otherwise.
    pub fn http(url: impl Into<String>) -> Self {
        let url = url.into();
        let name = url
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.host().map(name_from_host))
            .unwrap_or_else(|| "mcp".to_owned());
        McpServer {
            name,
            url,
            headers: Vec::new(),
            allowed_tools: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The name chatfn knows the server by: in logs, and as the prefix of its tools' names when
    /// two servers offer a tool of the same name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A header sent with every request (`Authorization`, an API key). Setting a name twice keeps
    /// the last value.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Offers the model only these tools of the server (by the server's own names).
    pub fn allow<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.allowed_tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// The most one operation on this server (listing its tools, one tool call) may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's name as configured (it prefixes a tool's name that another server also offers).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's Streamable HTTP endpoint.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Headers sent with every request (credentials, usually).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The most one operation on this server may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the model may be offered the server's tool `name`.
    pub fn allows(&self, name: &str) -> bool {
        self.allowed_tools
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|tool| tool == name))
    }

    /// Checks what the builder could not: the name, the URL, the headers and the timeout.
    pub fn validate(&self) -> Result<(), McpConfigError> {
        let server = || self.name.clone();
        if !is_valid_server_name(&self.name) {
            return Err(McpConfigError::BadName(self.name.clone()));
        }
        let uri: Uri = self
            .url
            .parse()
            .map_err(
                |error: axum::http::uri::InvalidUri| McpConfigError::BadUrl {
                    server: server(),
                    reason: error.to_string(),
                },
            )?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        if !scheme_ok || uri.host().is_none_or(str::is_empty) {
            return Err(McpConfigError::BadUrl {
                server: server(),
                reason: "it must be an absolute http:// or https:// URL".to_owned(),
            });
        }
        for (name, value) in &self.headers {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                return Err(McpConfigError::BadHeaderName {
                    server: server(),
                    header: name.clone(),
                });
            };
            if PROTOCOL_HEADERS.contains(&header.as_str()) {
                return Err(McpConfigError::ProtocolHeader {
                    server: server(),
                    header: name.clone(),
                });
            }
            if HeaderValue::from_str(value).is_err() {
                return Err(McpConfigError::BadHeaderValue {
                    server: server(),
                    header: name.clone(),
                });
            }
        }
        if self.timeout.is_zero() {
            return Err(McpConfigError::ZeroTimeout(server()));
        }
        Ok(())
    }

    /// The URL without its query and user info: what a log line may show.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let McpServer {
            name,
            url,
            headers,
            allowed_tools,
            timeout,
        } = self;
        let headers: Vec<String> = headers
            .iter()
            .map(|(name, _)| format!("{name}: <redacted>"))
            .collect();
        f.debug_struct("McpServer")
            .field("name", name)
            .field("url", &redact_url(url))
            .field("headers", &headers)
            .field("allowed_tools", allowed_tools)
            .field("timeout", timeout)
            .finish()
    }
}

/// `CHATFN_MCP_SERVERS` could not be read; the message names the server and what is wrong,
/// never a header's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpConfigError {
    /// An entry of the comma form without `=`.
    #[error(
        "CHATFN_MCP_SERVERS: `{0}` is not a `name=url` pair (use commas between servers, or a \
         JSON array for headers and allow-lists)"
    )]
    NotAPair(String),
    /// The JSON form does not parse as a list of servers.
    #[error("CHATFN_MCP_SERVERS is not a JSON array of servers: {0}")]
    Json(String),
    /// A server's name is empty, too long or has other characters.
    #[error("MCP server name `{0}` must be 1 to 32 characters of letters, digits, `_` and `-`")]
    BadName(String),
    /// Two servers share a name.
    #[error("MCP server `{0}` is configured twice")]
    DuplicateName(String),
    /// A server's URL does not parse or is not http(s).
    #[error("MCP server `{server}`: the URL is not usable: {reason}")]
    BadUrl {
        /// The server's name.
        server: String,
        /// What is wrong with the URL.
        reason: String,
    },
    /// A configured header's name is not a valid header name.
    #[error("MCP server `{server}`: `{header}` is not a valid header name")]
    BadHeaderName {
        /// The server's name.
        server: String,
        /// The header's name.
        header: String,
    },
    /// A configured header's value is not a valid header value (the value is not repeated).
    #[error("MCP server `{server}`: the value of header `{header}` is not a valid header value")]
    BadHeaderValue {
        /// The server's name.
        server: String,
        /// The header's name.
        header: String,
    },
    /// A configured header is one the client sets itself (session id, protocol version, ...).
    #[error("MCP server `{server}`: header `{header}` is set by the MCP client itself")]
    ProtocolHeader {
        /// The server's name.
        server: String,
        /// The header's name.
        header: String,
    },
    /// A server's timeout is not a duration.
    #[error("MCP server `{server}`: timeout `{value}` is not a duration like `30s` or `500ms`")]
    BadTimeout {
        /// The server's name.
        server: String,
        /// The timeout as configured.
        value: String,
    },
    /// A server's timeout is zero.
    #[error("MCP server `{0}`: the timeout must be longer than zero")]
    ZeroTimeout(String),
}

/// One server in the JSON form of `CHATFN_MCP_SERVERS`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntry {
    name: String,
    url: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    tools: Option<Vec<String>>,
    /// A duration as people write it: `30s`, `1m`, `500ms`.
    timeout: Option<String>,
}

/// Reads `CHATFN_MCP_SERVERS`: comma-separated `name=url` pairs, or a JSON array of
/// `{"name", "url", "headers"?, "tools"?, "timeout"?}` objects. Blank means no servers.
pub fn parse_servers(text: &str) -> Result<Vec<McpServer>, McpConfigError> {
    let text = text.trim();
    let servers = if text.is_empty() {
        Vec::new()
    } else if text.starts_with('[') {
        parse_json(text)?
    } else {
        parse_pairs(text)?
    };
    let mut names = HashSet::new();
    for server in &servers {
        server.validate()?;
        if !names.insert(server.name.to_ascii_lowercase()) {
            return Err(McpConfigError::DuplicateName(server.name.clone()));
        }
    }
    Ok(servers)
}

fn parse_pairs(text: &str) -> Result<Vec<McpServer>, McpConfigError> {
    text.split(',')
        .map(str::trim)
        // A trailing comma is a slip, not a server.
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, url) = pair
                .split_once('=')
                .map(|(name, url)| (name.trim(), url.trim()))
                // A name with `:` or `/` is a URL missing its name.
                .filter(|(name, url)| {
                    !name.is_empty() && !url.is_empty() && !name.contains([':', '/'])
                })
                // The pair itself is left out: its URL may hold a key.
                .ok_or_else(|| McpConfigError::NotAPair(pair_name(pair)))?;
            Ok(McpServer::http(url).named(name))
        })
        .collect()
}

/// What of a malformed pair an error may show: the text before `=` or `:`, where a name would be.
fn pair_name(pair: &str) -> String {
    let end = pair.find(['=', ':', '/']).unwrap_or(pair.len());
    let shown = &pair[..end];
    if shown.len() == pair.len() {
        shown.to_owned()
    } else {
        format!("{shown}…")
    }
}

fn parse_json(text: &str) -> Result<Vec<McpServer>, McpConfigError> {
    let entries: Vec<ServerEntry> =
        serde_json::from_str(text).map_err(|error| McpConfigError::Json(error.to_string()))?;
    entries
        .into_iter()
        .map(|entry| {
            let mut server = McpServer::http(entry.url).named(entry.name);
            for (name, value) in entry.headers {
                server = server.header(name, value);
            }
            if let Some(tools) = entry.tools {
                server = server.allow(tools);
            }
            if let Some(value) = entry.timeout {
                let timeout = humantime::parse_duration(value.trim()).map_err(|_| {
                    McpConfigError::BadTimeout {
                        server: server.name.clone(),
                        value: value.clone(),
                    }
                })?;
                server = server.with_timeout(timeout);
            }
            Ok(server)
        })
        .collect()
}

fn is_valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SERVER_NAME_CHARS
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// A server name from a host: `mcp.example.com` is `mcp_example_com`.
fn name_from_host(host: &str) -> String {
    let name: String = host
        .trim_matches(['[', ']'])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SERVER_NAME_CHARS)
        .collect();
    if name.is_empty() {
        "mcp".to_owned()
    } else {
        name
    }
}

fn redact_url(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("");
            let host = uri.host().unwrap_or("");
            let port = uri
                .port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default();
            let query = if uri.query().is_some() { "?…" } else { "" };
            format!("{scheme}://{host}{port}{}{query}", uri.path())
        }
        Err(_) => "<not a URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_name_servers_by_their_urls() {
        let servers =
            parse_servers(" docs=https://docs.example.com/mcp , local=http://127.0.0.1:3001/mcp,")
                .expect("valid");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].name(), "docs");
        assert_eq!(servers[0].url(), "https://docs.example.com/mcp");
        assert_eq!(servers[1].name(), "local");
        assert_eq!(servers[1].url(), "http://127.0.0.1:3001/mcp");
        assert_eq!(servers[1].timeout(), DEFAULT_TIMEOUT);
        assert!(servers[1].allows("anything"));
        assert!(servers[1].headers().is_empty());
    }

    #[test]
    fn blank_is_no_servers() {
        assert_eq!(parse_servers(""), Ok(vec![]));
        assert_eq!(parse_servers("  \n"), Ok(vec![]));
    }

    #[test]
    fn json_carries_headers_allow_list_and_timeout() {
        let servers = parse_servers(
            r#"[{"name": "github", "url": "https://api.example.com/mcp",
                 "headers": {"Authorization": "Bearer s3cret"},
                 "tools": ["search_issues", "get.file"], "timeout": "5s"},
                {"name": "plain", "url": "http://localhost:9/mcp"}]"#,
        )
        .expect("valid");
        let github = &servers[0];
        assert_eq!(
            github.headers(),
            [("Authorization".to_owned(), "Bearer s3cret".to_owned())]
        );
        assert!(github.allows("get.file"));
        assert!(!github.allows("delete_repo"));
        assert_eq!(github.timeout(), Duration::from_secs(5));
        assert!(servers[1].allows("x"));
    }

    #[test]
    fn an_empty_allow_list_allows_nothing() {
        let servers =
            parse_servers(r#"[{"name": "a", "url": "http://h/mcp", "tools": []}]"#).expect("ok");
        assert!(!servers[0].allows("x"));
    }

    #[test]
    fn malformed_pairs_are_named_without_their_urls() {
        assert_eq!(
            parse_servers("docs"),
            Err(McpConfigError::NotAPair("docs".into()))
        );
        assert_eq!(
            parse_servers("https://example.com/mcp?key=abc"),
            Err(McpConfigError::NotAPair("https…".into()))
        );
        assert_eq!(
            parse_servers("=http://h/mcp"),
            Err(McpConfigError::NotAPair("…".into()))
        );
        assert_eq!(
            parse_servers("a="),
            Err(McpConfigError::NotAPair("a…".into()))
        );
    }

    #[test]
    fn names_must_be_usable_as_tool_prefixes() {
        assert_eq!(
            parse_servers("my docs=http://h/mcp"),
            Err(McpConfigError::BadName("my docs".into()))
        );
        assert_eq!(
            parse_servers("a.b=http://h/mcp"),
            Err(McpConfigError::BadName("a.b".into()))
        );
        let long = "n".repeat(MAX_SERVER_NAME_CHARS + 1);
        assert_eq!(
            parse_servers(&format!("{long}=http://h/mcp")),
            Err(McpConfigError::BadName(long))
        );
        assert_eq!(
            parse_servers("a=http://h/1,A=http://h/2"),
            Err(McpConfigError::DuplicateName("A".into()))
        );
    }

    #[test]
    fn urls_must_be_absolute_http() {
        for url in [
            "ftp://h/mcp",
            "/mcp",
            "h/mcp",
            "http://",
            "http://exa mple/",
        ] {
            let error = parse_servers(&format!("a={url}")).expect_err(url);
            assert!(
                matches!(&error, McpConfigError::BadUrl { server, .. } if server == "a"),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn json_errors_are_typed() {
        let error = parse_servers(r#"[{"name": "a"}]"#).expect_err("no url");
        assert!(
            matches!(&error, McpConfigError::Json(message) if message.contains("url")),
            "{error}"
        );
        let error = parse_servers(r#"[{"name": "a", "url": "http://h/", "header": {}}]"#)
            .expect_err("typo");
        assert!(
            matches!(&error, McpConfigError::Json(message) if message.contains("header")),
            "{error}"
        );
        assert!(matches!(
            parse_servers("[1, 2"),
            Err(McpConfigError::Json(_))
        ));
        assert_eq!(
            parse_servers(r#"[{"name": "a", "url": "http://h/", "timeout": "soon"}]"#),
            Err(McpConfigError::BadTimeout {
                server: "a".into(),
                value: "soon".into()
            })
        );
        assert_eq!(
            parse_servers(r#"[{"name": "a", "url": "http://h/", "timeout": "0s"}]"#),
            Err(McpConfigError::ZeroTimeout("a".into()))
        );
    }

    #[test]
    fn header_errors_never_show_the_value() {
        let error = parse_servers(
            r#"[{"name": "a", "url": "http://h/", "headers": {"Authorization": "Bearer s3cret\n"}}]"#,
        )
        .expect_err("newline in value");
        assert_eq!(
            error,
            McpConfigError::BadHeaderValue {
                server: "a".into(),
                header: "Authorization".into()
            }
        );
        assert!(!error.to_string().contains("s3cret"));
        assert_eq!(
            parse_servers(r#"[{"name": "a", "url": "http://h/", "headers": {"Bad Name": "x"}}]"#),
            Err(McpConfigError::BadHeaderName {
                server: "a".into(),
                header: "Bad Name".into()
            })
        );
        assert_eq!(
            parse_servers(
                r#"[{"name": "a", "url": "http://h/", "headers": {"Mcp-Session-Id": "x"}}]"#
            ),
            Err(McpConfigError::ProtocolHeader {
                server: "a".into(),
                header: "Mcp-Session-Id".into()
            })
        );
    }

    #[test]
    fn debug_redacts_header_values_and_the_query() {
        let server = McpServer::http("https://user:pw@api.example.com:8443/mcp?api_key=k3y")
            .named("api")
            .header("Authorization", "Bearer s3cret");
        let debug = format!("{server:?}");
        assert!(debug.contains("Authorization: <redacted>"), "{debug}");
        assert!(
            debug.contains("https://api.example.com:8443/mcp?…"),
            "{debug}"
        );
        for secret in ["s3cret", "k3y", "pw"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn the_builder_names_a_server_after_its_host() {
        let server = McpServer::http("https://mcp.example.com/mcp");
        assert_eq!(server.name(), "mcp_example_com");
        assert_eq!(server.validate(), Ok(()));
        assert_eq!(McpServer::http("not a url").name(), "mcp");
        let server = McpServer::http("http://[::1]:3001/mcp");
        assert_eq!(server.name(), "__1");
        assert_eq!(server.validate(), Ok(()));
    }

    #[test]
    fn the_builder_keeps_the_last_value_of_a_header() {
        let server = McpServer::http("http://h/mcp")
            .header("authorization", "old")
            .header("Authorization", "new")
            .with_timeout(Duration::from_millis(250));
        assert_eq!(
            server.headers(),
            [("Authorization".to_owned(), "new".to_owned())]
        );
        assert_eq!(server.timeout(), Duration::from_millis(250));
    }
}
