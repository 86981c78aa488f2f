//! Which chat a request is about, for hosts that keep each chat in its own place (the Worker's
//! Durable Object per chat) and must forward a request there before the routes run. Sans-IO: a
//! method, a path and, for the two routes that name the chat only in their body, the body.

use axum::http::Method;
use serde::Deserialize;

use super::extract::validate_chat_id;

/// Whether the chat of a `method` request to `path` is named in its body (session start and the
/// AI SDK's send), so a host must read the body to address it.
pub fn chat_in_body(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/api/v1/sessions" | "/api/chat")
}

/// The chat a request addresses, if it names a valid chat id. `body` matters only where
/// [`chat_in_body`] says so. Requests that name no chat (token minting, CORS preflights, unknown
/// routes, malformed bodies) get `None`: the routes answer them without any chat's state.
///
/// Sessions addressed by their `session_…` id give `None` too: the id does not say which chat it
/// belongs to.
pub fn addressed_chat(method: &Method, path: &str, body: &[u8]) -> Option<String> {
    if method == Method::OPTIONS {
        return None;
    }
    if chat_in_body(method, path) {
        return chat_in(body, path == "/api/chat");
    }
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let chat = match segments.as_slice() {
        ["api", "v1", "sessions", id, ..] => *id,
        ["api", "chat", id, _, ..] => *id,
        ["realtime", "v1", "sessions", id, _, ..] => *id,
        _ => return None,
    };
    valid(chat)
}

fn valid(chat: &str) -> Option<String> {
    if chat.starts_with("session_") || validate_chat_id(chat).is_err() {
        return None;
    }
    Some(chat.to_owned())
}

/// `id` (the AI SDK's send) or `externalId` (session start) of a JSON body.
fn chat_in(body: &[u8], ai_sdk: bool) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        id: Option<String>,
        #[serde(rename = "externalId")]
        external_id: Option<String>,
    }
    let named: Named = serde_json::from_slice(body).ok()?;
    let chat = if ai_sdk { named.id } else { named.external_id }?;
    valid(&chat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(method: Method, path: &str, body: &str) -> Option<String> {
        addressed_chat(&method, path, body.as_bytes())
    }

    #[test]
    fn chats_named_in_the_path() {
        for path in [
            "/api/v1/sessions/chat-1",
            "/api/v1/sessions/chat-1/token",
            "/api/v1/sessions/chat-1/close",
            "/api/chat/chat-1/stream",
            "/api/chat/chat-1/stop",
            "/api/chat/chat-1/messages",
            "/realtime/v1/sessions/chat-1/in/append",
            "/realtime/v1/sessions/chat-1/out",
            "/realtime/v1/sessions/chat-1/out/records",
        ] {
            assert_eq!(chat(Method::GET, path, ""), Some("chat-1".into()), "{path}");
        }
    }

    #[test]
    fn chats_named_in_the_body() {
        assert!(chat_in_body(&Method::POST, "/api/chat"));
        assert!(chat_in_body(&Method::POST, "/api/v1/sessions"));
        assert!(!chat_in_body(&Method::GET, "/api/chat/chat-1/stream"));
        assert_eq!(
            chat(
                Method::POST,
                "/api/chat",
                r#"{"id":"chat-2","messages":[]}"#
            ),
            Some("chat-2".into())
        );
        assert_eq!(
            chat(
                Method::POST,
                "/api/v1/sessions",
                r#"{"type":"chat.agent","externalId":"chat-3"}"#
            ),
            Some("chat-3".into())
        );
    }

    #[test]
    fn requests_without_a_valid_chat_name_none() {
        for (method, path, body) in [
            (Method::POST, "/api/v1/auth/jwt/claims", ""),
            (Method::POST, "/api/v1/auth/public-tokens", "{}"),
            (Method::OPTIONS, "/api/chat/chat-1/stream", ""),
            (Method::GET, "/", ""),
            (Method::GET, "/api/chat", ""),
            (Method::GET, "/api/chat/chat-1", ""),
            (Method::POST, "/api/chat", "not json"),
            (Method::POST, "/api/chat", r#"{"id":42}"#),
            (Method::POST, "/api/chat", r#"{"externalId":"chat-1"}"#),
            (Method::POST, "/api/v1/sessions", r#"{"id":"chat-1"}"#),
            (Method::GET, "/api/v1/sessions/session_0123", ""),
            (Method::GET, "/api/v1/sessions/bad%2Fid", ""),
        ] {
            assert_eq!(
                chat(method.clone(), path, body),
                None,
                "{method} {path} {body}"
            );
        }
    }
}
