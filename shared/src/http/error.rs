//! The one HTTP error type. Every failure a route can meet maps to it here, and it renders as
//! `{"ok": false, "error": "<message>", "code": "<code>"}` with the matching status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::TokenError;
use crate::store::StoreError;
use crate::turn::{LimitKind, LimitReached, TurnError};

/// An error answer of a route: a status, a stable machine-readable code and a message for people.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status it is sent with.
    pub status: StatusCode,
    /// The stable code clients switch on (`not_found`, `turn_in_progress`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// More fields for the body (e.g. `closedReason` next to `session_closed`).
    pub extra: Map<String, Value>,
    /// Seconds to wait before trying again (`Retry-After`), when the refusal is temporary.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with no extra fields.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            retry_after_s: None,
        }
    }

    /// Adds `key` to the body next to `error` and `code`.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// 400 `bad_request`: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422 `invalid_request`: the request reads but its content is not acceptable.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 401 `unauthorized`: no credential, or one that is not valid.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: a valid credential that does not grant this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 `not_found` for a chat session: the same words whichever id was asked for, which is
    /// never echoed (it may be kilobytes long, and the caller knows it).
    pub fn no_session() -> Self {
        Self::not_found("no chat session with that id")
    }

    /// 413 `payload_too_large`: the body passed `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 409 `turn_in_progress`: the chat has a reply streaming, so a new message must wait.
    pub fn turn_in_progress() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "turn_in_progress",
            "a reply is still streaming in this chat: resume it or stop it first",
        )
    }

    /// 409 `session_closed`, with the session's `closedReason` (`null` when it gave none).
    pub fn session_closed(reason: Option<&str>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "session_closed",
            "the chat session is closed",
        )
        .with("closedReason", reason.map_or(Value::Null, |r| json!(r)))
    }

    /// 429 `rate_limited` (turns per minute) or `budget_exceeded` (tokens per day), with
    /// `Retry-After` and `retryAfter` (seconds) in the body.
    pub fn limit_reached(reached: LimitReached) -> Self {
        let code = match reached.kind {
            LimitKind::TurnsPerMinute => "rate_limited",
            LimitKind::OutputTokensPerDay => "budget_exceeded",
        };
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, code, reached.to_string())
            .with("retryAfter", json!(reached.retry_after_s));
        error.retry_after_s = Some(reached.retry_after_s);
        error
    }

    /// 500 `internal`: a failure that is not the caller's.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body: `{"ok": false, "error", "code"}` and the extra fields.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("ok".into(), Value::Bool(false));
        body.insert("error".into(), Value::String(self.message.clone()));
        body.insert("code".into(), Value::String(self.code.to_owned()));
        for (key, value) in &self.extra {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                code = self.code,
                "{}",
                self.message
            );
        }
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.code == "session_closed" || self.retry_after_s.is_some() {
            // Retrying cannot reopen a closed chat, and a limit holds until its window ends:
            // tell the Trigger SDK not to retry on its own, so the caller hears of it.
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            // Names the access, not the chat: the caller knows which chat it asked for, and a
            // chat id from a body would come back in the answer.
            TokenError::MissingScope(scope) => {
                let access = if scope.starts_with("write:") {
                    "write"
                } else {
                    "read"
                };
                ApiError::forbidden(format!(
                    "the token does not grant {access} access to this chat"
                ))
            }
            TokenError::Invalid | TokenError::Expired | TokenError::NotYetValid => {
                ApiError::unauthorized(error.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NoSession(_) => ApiError::no_session(),
            StoreError::LeaseLost | StoreError::SequenceTaken(_) => ApiError::turn_in_progress(),
            StoreError::Unsupported(what) => ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_implemented",
                format!("this host's store does not support {what} yet"),
            ),
            StoreError::Backend(message) => {
                tracing::error!("store failure: {message}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the chat store is unavailable; try again",
                )
            }
        }
    }
}

impl From<TurnError> for ApiError {
    fn from(error: TurnError) -> Self {
        match error {
            TurnError::NoSession(_) => ApiError::no_session(),
            TurnError::SessionClosed(reason) => ApiError::session_closed(reason.as_deref()),
            TurnError::InProgress => ApiError::turn_in_progress(),
            // A caller that can follow the other turn does so; these reach clients only when not.
            TurnError::Answering { .. } | TurnError::Stale => ApiError::turn_in_progress(),
            TurnError::Answered { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "already_answered",
                "this message has been answered already: reload the chat to see the reply",
            ),
            TurnError::InvalidInput(message) => ApiError::invalid(message),
            TurnError::LimitReached(reached) => ApiError::limit_reached(reached),
            TurnError::Store(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_message_code_and_extras() {
        let error = ApiError::session_closed(Some("done"));
        assert_eq!(error.status, StatusCode::CONFLICT);
        assert_eq!(
            error.body(),
            json!({"ok": false, "error": "the chat session is closed", "code": "session_closed", "closedReason": "done"})
        );
    }

    #[test]
    fn token_errors_map_to_401_and_403() {
        assert_eq!(
            ApiError::from(TokenError::Expired).status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::from(TokenError::Invalid).status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::from(TokenError::MissingScope("read:sessions:x".into())).status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn refusals_echo_no_chat_id() {
        let refused = ApiError::from(TokenError::MissingScope("write:sessions:chat-b".into()));
        assert_eq!(
            refused.message,
            "the token does not grant write access to this chat"
        );
        let missing = ApiError::from(StoreError::NoSession("chat-b".into()));
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(!missing.message.contains("chat-b"), "{}", missing.message);
    }

    #[test]
    fn store_failures_hide_their_details() {
        let error = ApiError::from(StoreError::Backend("disk I/O error at /secret/path".into()));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.message.contains("/secret/path"));
    }

    #[test]
    fn limits_are_429_with_retry_after() {
        let reached = LimitReached {
            kind: LimitKind::TurnsPerMinute,
            retry_after_s: 17,
        };
        let response = ApiError::from(TurnError::LimitReached(reached)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "17");
        assert_eq!(response.headers()["x-should-retry"], "false");
        let budget = ApiError::limit_reached(LimitReached {
            kind: LimitKind::OutputTokensPerDay,
            retry_after_s: 3600,
        });
        assert_eq!(budget.code, "budget_exceeded");
        assert_eq!(budget.body()["retryAfter"], 3600);
    }
}
