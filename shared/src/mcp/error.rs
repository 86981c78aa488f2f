//! What can go wrong talking to an MCP server. None of it fails a turn: a server whose tools
//! cannot be listed is left out of the turn, and a failed call is a tool error the model reads.

use std::time::Duration;

/// The longest message of a server's kept in an error: the model reads it, and a log shows it.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1000;

/// What went wrong talking to an MCP server; the message is what the model and the logs read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpError {
    /// The request did not reach the server, or its answer did not come back whole.
    #[error("could not reach the MCP server: {0}")]
    Transport(String),
    /// No answer within the server's timeout.
    #[error("the MCP server did not answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// A non-2xx answer; the message is the start of its body.
    #[error("the MCP server answered HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// What the body said, cut short.
        message: String,
    },
    /// The server no longer knows the session (HTTP 404 to a request carrying its id): the
    /// client starts a new one.
    #[error("the MCP server ended the session")]
    SessionExpired,
    /// The server answered the request with a JSON-RPC error.
    #[error("the MCP server answered with error {code}: {message}")]
    Rpc {
        /// The JSON-RPC error code.
        code: i64,
        /// The error's message, cut short.
        message: String,
    },
    /// The answer is not the JSON-RPC/MCP it should be.
    #[error("the MCP server's answer is not valid MCP: {0}")]
    Protocol(String),
    /// The server chose a protocol version chatfn does not speak.
    #[error("the MCP server speaks protocol version `{0}`, which chatfn does not")]
    UnsupportedVersion(String),
    /// The answer passed the byte limit the variant holds.
    #[error("the MCP server's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The configuration's allow-list leaves the tool out.
    #[error("the MCP server's tool `{0}` is not allowed by chatfn's configuration")]
    NotAllowed(String),
    /// The turn was stopped while the call was running.
    #[error("the tool call was stopped")]
    Cancelled,
}

/// `text` cut to `max_chars` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        assert_eq!(
            McpError::Timeout(Duration::from_millis(1500)).to_string(),
            "the MCP server did not answer within 1s 500ms"
        );
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
    }
}
