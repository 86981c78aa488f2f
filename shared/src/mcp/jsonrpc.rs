//! JSON-RPC 2.0, the framing of every MCP message (sans-IO): requests and notifications out,
//! any message in. chatfn's request ids are numbers it counts up; a server's may be anything.

use serde_json::{Map, Value, json};

use super::error::{MAX_MESSAGE_CHARS, McpError, truncate};

/// A message a server sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The answer to one of chatfn's requests.
    Result {
        /// The id of the request it answers.
        id: Value,
        /// The request's result.
        result: Value,
    },
    /// A failed request. `id` is `None` when the server could not read the request's id.
    Error {
        /// The id of the request that failed.
        id: Option<Value>,
        /// What went wrong.
        error: RpcError,
    },
    /// A request of the server's own (`ping`, sampling, elicitation) that wants an answer.
    Request {
        /// The server's id for it, which the answer repeats.
        id: Value,
        /// What the server asks for.
        method: String,
    },
    /// A message that wants no answer (progress, logging, a changed tool list).
    Notification {
        /// What the notification is about.
        method: String,
        /// Its details, if any.
        params: Option<Value>,
    },
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// The error code (negative codes are JSON-RPC's own, the rest the server's).
    pub code: i64,
    /// What went wrong, as the server put it.
    pub message: String,
}

impl From<RpcError> for McpError {
    fn from(error: RpcError) -> Self {
        McpError::Rpc {
            code: error.code,
            message: error.message,
        }
    }
}

/// The error code JSON-RPC reserves for a method the receiver does not have.
pub const METHOD_NOT_FOUND: i64 = -32601;

/// A request, as bytes to post.
pub fn request(id: u64, method: &str, params: Option<Value>) -> Vec<u8> {
    let mut message = envelope();
    message.insert("id".into(), id.into());
    message.insert("method".into(), method.into());
    if let Some(params) = params {
        message.insert("params".into(), params);
    }
    to_bytes(message)
}

/// A notification (no id, no answer), as bytes to post.
pub fn notification(method: &str, params: Option<Value>) -> Vec<u8> {
    let mut message = envelope();
    message.insert("method".into(), method.into());
    if let Some(params) = params {
        message.insert("params".into(), params);
    }
    to_bytes(message)
}

/// The answer to a server's request: `result`, or the error saying chatfn has no such method.
pub fn response(id: &Value, result: Result<Value, RpcError>) -> Vec<u8> {
    let mut message = envelope();
    message.insert("id".into(), id.clone());
    match result {
        Ok(result) => message.insert("result".into(), result),
        Err(error) => message.insert(
            "error".into(),
            json!({"code": error.code, "message": error.message}),
        ),
    };
    to_bytes(message)
}

/// Reads a body of messages: one message, or a batch (an array; servers of the 2025-03-26
/// revision may send them).
pub fn decode_body(bytes: &[u8]) -> Result<Vec<Message>, McpError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|error| McpError::Protocol(format!("not JSON: {error}")))?;
    match value {
        Value::Array(batch) => batch.into_iter().map(decode).collect(),
        message => decode(message).map(|message| vec![message]),
    }
}

/// Reads one message.
pub fn decode(value: Value) -> Result<Message, McpError> {
    let Value::Object(mut message) = value else {
        return Err(McpError::Protocol(
            "a JSON-RPC message must be an object".into(),
        ));
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(McpError::Protocol(
            "a JSON-RPC message must say `\"jsonrpc\": \"2.0\"`".into(),
        ));
    }
    let id = message.remove("id").filter(|id| !id.is_null());
    if let Some(method) = message.remove("method") {
        let Value::String(method) = method else {
            return Err(McpError::Protocol("a method must be a string".into()));
        };
        return Ok(match id {
            Some(id) => Message::Request { id, method },
            None => Message::Notification {
                method,
                params: message.remove("params"),
            },
        });
    }
    if let Some(error) = message.remove("error") {
        return Ok(Message::Error {
            id,
            error: rpc_error(&error)?,
        });
    }
    match (id, message.remove("result")) {
        (Some(id), Some(result)) => Ok(Message::Result { id, result }),
        (None, Some(_)) => Err(McpError::Protocol("a result without an id".into())),
        (_, None) => Err(McpError::Protocol(
            "a message with neither a method, a result nor an error".into(),
        )),
    }
}

/// An error object's code and message, with its `data` when that is a string (servers put the
/// detail there).
fn rpc_error(error: &Value) -> Result<RpcError, McpError> {
    let code = error.get("code").and_then(Value::as_i64);
    let message = error.get("message").and_then(Value::as_str);
    let (Some(code), Some(message)) = (code, message) else {
        return Err(McpError::Protocol(
            "an error must have a numeric code and a message".into(),
        ));
    };
    let message = match error.get("data").and_then(Value::as_str) {
        Some(data) if !data.is_empty() && !message.contains(data) => format!("{message}: {data}"),
        _ => message.to_owned(),
    };
    Ok(RpcError {
        code,
        message: truncate(&message, MAX_MESSAGE_CHARS),
    })
}

/// The message of a JSON-RPC error in an HTTP error body, if the body is one.
pub fn error_message_of_body(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?;
    rpc_error(error).ok().map(|error| error.message)
}

fn envelope() -> Map<String, Value> {
    let mut message = Map::new();
    message.insert("jsonrpc".into(), "2.0".into());
    message
}

fn to_bytes(message: Map<String, Value>) -> Vec<u8> {
    // A map of strings and JSON values always serializes.
    serde_json::to_vec(&message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).expect("JSON")
    }

    #[test]
    fn requests_and_notifications_are_encoded() {
        assert_eq!(
            parsed(&request(7, "tools/list", Some(json!({"cursor": "c"})))),
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"cursor": "c"}})
        );
        assert_eq!(
            parsed(&request(1, "ping", None)),
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        );
        assert_eq!(
            parsed(&notification("notifications/initialized", None)),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        );
    }

    #[test]
    fn responses_answer_the_servers_id() {
        assert_eq!(
            parsed(&response(&json!("s-1"), Ok(json!({})))),
            json!({"jsonrpc": "2.0", "id": "s-1", "result": {}})
        );
        let error = RpcError {
            code: METHOD_NOT_FOUND,
            message: "no".into(),
        };
        assert_eq!(
            parsed(&response(&json!(4), Err(error))),
            json!({"jsonrpc": "2.0", "id": 4, "error": {"code": -32601, "message": "no"}})
        );
    }

    #[test]
    fn every_kind_of_message_is_decoded() {
        let body = br#"[
            {"jsonrpc": "2.0", "id": 1, "result": {"tools": []}},
            {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "Unknown tool"}},
            {"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}},
            {"jsonrpc": "2.0", "id": "p", "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
        ]"#;
        assert_eq!(
            decode_body(body),
            Ok(vec![
                Message::Result {
                    id: json!(1),
                    result: json!({"tools": []})
                },
                Message::Error {
                    id: Some(json!(2)),
                    error: RpcError {
                        code: -32602,
                        message: "Unknown tool".into()
                    }
                },
                Message::Error {
                    id: None,
                    error: RpcError {
                        code: -32700,
                        message: "Parse error".into()
                    }
                },
                Message::Request {
                    id: json!("p"),
                    method: "ping".into()
                },
                Message::Notification {
                    method: "notifications/progress".into(),
                    params: Some(json!({"progress": 1}))
                },
            ])
        );
    }

    #[test]
    fn error_data_that_is_text_joins_the_message() {
        let body = br#"{"jsonrpc": "2.0", "id": 1,
                        "error": {"code": -32603, "message": "Internal error", "data": "db down"}}"#;
        let [Message::Error { error, .. }] = &decode_body(body).expect("valid")[..] else {
            panic!("one error");
        };
        assert_eq!(error.message, "Internal error: db down");
        assert_eq!(
            McpError::from(error.clone()).to_string(),
            "the MCP server answered with error -32603: Internal error: db down"
        );
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for body in [
            &b"<html>Bad gateway</html>"[..],
            b"",
            b"42",
            b"{}",
            br#"{"jsonrpc": "1.0", "id": 1, "result": {}}"#,
            br#"{"jsonrpc": "2.0", "result": {}}"#,
            br#"{"jsonrpc": "2.0", "id": 1}"#,
            br#"{"jsonrpc": "2.0", "id": 1, "method": 5}"#,
            br#"{"jsonrpc": "2.0", "id": 1, "error": {"message": "no code"}}"#,
            br#"[{"jsonrpc": "2.0", "id": 1, "result": {}}, 3]"#,
        ] {
            let decoded = decode_body(body);
            assert!(
                matches!(decoded, Err(McpError::Protocol(_))),
                "{}: {decoded:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_message_of_an_http_error_body() {
        assert_eq!(
            error_message_of_body(
                br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}"#
            ),
            Some("Bad Request: No valid session ID provided".into())
        );
        assert_eq!(error_message_of_body(b"Not Found"), None);
    }
}
