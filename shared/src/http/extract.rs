//! Request parsing that fails with the one JSON error type.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::App;
use super::error::ApiError;
use crate::auth::{Access, SessionClaims, SessionToken, TokenError};
use crate::clock::now_ms;

/// A JSON body: 413 over the size limit, 400 when it is not JSON, 422 when it is JSON of the
/// wrong shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A path's parameters. A segment that is not UTF-8 once percent-decoded names no chat: a JSON
/// 404 instead of axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            // axum's explanation quotes the segment: not echoed, like any id in a path.
            .map_err(|_| ApiError::not_found("no chat session at this path"))
    }
}

/// A query string, with axum's plain-text rejection as a JSON 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!(
                    "the query string is not valid: {}",
                    rejection.body_text()
                ))
            })
    }
}

/// The body's bytes, with the size limit as a JSON 413.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request(format!("could not read the request body: {rejection}"))
            }
        })
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Checked whole: the parser checks only the strings it keeps, and would pass bytes that are
    // not UTF-8 in the fields it skips.
    let text = std::str::from_utf8(bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "the body is not valid JSON: it is not UTF-8 ({error})"
        ))
    })?;
    check_depth(bytes)?;
    serde_json::from_str(text).map_err(|error| {
        use serde_json::error::Category;
        match error.classify() {
            Category::Data => ApiError::invalid(format!("invalid request: {error}")),
            Category::Syntax | Category::Eof | Category::Io => {
                shape_or_syntax_error::<T>(text, error)
            }
        }
    })
}

/// The parser also reports some wrong shapes as syntax (an array where an enum's string goes is
/// "expected value"), so a syntax error is trusted only when the text is not JSON at all; for
/// JSON of the wrong shape the typed read of its value says what is wrong (a 422).
fn shape_or_syntax_error<T: DeserializeOwned>(text: &str, error: serde_json::Error) -> ApiError {
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(_) => ApiError::bad_request(format!("the body is not valid JSON: {error}")),
        Ok(value) => match serde_json::from_value::<T>(value) {
            Err(shape) => ApiError::invalid(format!("invalid request: {shape}")),
            // Only the streaming read refused it (a field given twice, say).
            Ok(_) => ApiError::invalid(format!("invalid request: {error}")),
        },
    }
}

/// The deepest nesting a body may have. The parser stops at 128 levels in the values it keeps but
/// skips ignored fields at any depth; and a stored input wraps a body's values a few levels
/// deeper, so it must stay under the parser's limit when read back.
const MAX_JSON_DEPTH: usize = 100;

/// Refuses bodies nested deeper than [`MAX_JSON_DEPTH`], counting brackets outside strings. A
/// body that is not JSON at all is left to the parser to explain.
fn check_depth(bytes: &[u8]) -> Result<(), ApiError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(ApiError::bad_request(format!(
                        "the body nests deeper than {MAX_JSON_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The bearer credential of the request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|credential| !credential.is_empty())
}

/// Requires the environment's secret key (server-to-server calls).
pub fn require_secret_key(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let credential = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("send the secret key as `Authorization: Bearer …`")
    })?;
    if app.settings().secret_keys.matches(credential) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("the secret key is not valid"))
    }
}

/// Who called a server-to-server route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The holder of the environment's secret key: trusted with every chat.
    Server,
    /// An end user proven by an OpenID Connect ID token: trusted with the chats they own.
    #[cfg_attr(not(any(feature = "native", target_arch = "wasm32")), allow(dead_code))]
    EndUser(String),
}

/// Requires the secret key, or (when an issuer is configured) an end user's ID token.
pub async fn authenticate_caller(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let credential = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized(
            "send the secret key (or an end user's ID token) as `Authorization: Bearer …`",
        )
    })?;
    if app.settings().secret_keys.matches(credential) {
        return Ok(Caller::Server);
    }
    #[cfg(any(feature = "native", target_arch = "wasm32"))]
    if let Some(oidc) = &app.settings().oidc {
        use crate::auth::OidcError;
        return match oidc.verify(credential).await {
            Ok(user) => Ok(Caller::EndUser(user.sub)),
            Err(OidcError::Unavailable(reason)) => {
                tracing::error!("OIDC keys unavailable: {reason}");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "identity_provider_unavailable",
                    "the identity provider's keys could not be fetched; try again",
                ))
            }
            Err(error) => Err(ApiError::unauthorized(error.to_string())),
        };
    }
    Err(ApiError::unauthorized("the secret key is not valid"))
}

/// The bearer of a chat route, authenticated before the request is read any further: what it
/// may open is judged once the request names its chat ([`Credential::grant`]).
#[derive(Debug, Clone)]
pub enum Credential {
    /// The environment's secret key: every chat.
    SecretKey,
    /// A session token, signed with a live key and within its lifetime: the chats of its scopes.
    Token(SessionClaims),
}

impl Credential {
    /// The token's claims when it grants `access` on `chat_id` (`None` for the secret key); 403
    /// otherwise.
    pub fn grant(&self, chat_id: &str, access: Access) -> Result<Option<SessionClaims>, ApiError> {
        match self {
            Credential::SecretKey => Ok(None),
            Credential::Token(claims) if claims.allows(access, chat_id) => Ok(Some(claims.clone())),
            Credential::Token(_) => {
                Err(TokenError::MissingScope(crate::auth::scope(access, chat_id)).into())
            }
        }
    }
}

/// Requires the secret key or a valid session token (401 otherwise), whatever chat it is for.
pub fn authenticate(app: &App, headers: &HeaderMap) -> Result<Credential, ApiError> {
    let credential = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("send the chat's session token as `Authorization: Bearer …`")
    })?;
    let keys = &app.settings().secret_keys;
    if keys.matches(credential) {
        return Ok(Credential::SecretKey);
    }
    SessionToken::authenticate(credential, keys, now_ms() / 1000)
        .map(Credential::Token)
        .map_err(ApiError::from)
}

const CHAT_ID_RULE: &str =
    "a chat id is 1 to 256 characters of letters, digits and - _ . : @, and not `.` or `..`";

/// Chat ids travel in paths, headers and store keys: keep them to a safe alphabet. `.` and `..`
/// are in it but not allowed alone: clients and proxies resolve them as path segments, so such a
/// chat's routes would reach another path.
pub fn validate_chat_id(chat_id: &str) -> Result<(), ApiError> {
    let valid = !chat_id.is_empty()
        && chat_id.len() <= 256
        && chat_id != "."
        && chat_id != ".."
        && chat_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(CHAT_ID_RULE))
    }
}

/// A chat id from a path: an invalid one names no chat (404). The id is not echoed: it may be
/// kilobytes long or made of control characters.
pub fn validate_path_chat_id(chat_id: &str) -> Result<(), ApiError> {
    validate_chat_id(chat_id)
        .map_err(|_| ApiError::not_found(format!("no chat session with that id: {CHAT_ID_RULE}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_credentials_are_found_in_any_case() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().expect("header"));
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().expect("header"));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn chat_ids_keep_to_a_safe_alphabet() {
        for good in ["chat-basic", "c1", "user@x:chat_2.3", &"a".repeat(256)] {
            assert!(validate_chat_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "a b",
            "x\r\ny",
            "../etc",
            "é",
            ".",
            "..",
            &"a".repeat(257),
        ] {
            assert!(validate_chat_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn depth_is_counted_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth(deep(MAX_JSON_DEPTH).as_bytes()).is_ok());
        assert!(check_depth(deep(MAX_JSON_DEPTH + 1).as_bytes()).is_err());
        let quoted = format!(r#"{{"text": "{}\" {}"}}"#, "[".repeat(500), "{".repeat(500));
        assert!(check_depth(quoted.as_bytes()).is_ok(), "{quoted}");
    }

    #[test]
    fn json_errors_tell_syntax_from_shape() {
        #[derive(serde::Deserialize, Debug)]
        struct Body {
            #[allow(dead_code)]
            id: String,
        }
        assert_eq!(
            parse_json::<Body>(b"{not json").map_err(|e| e.status).err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse_json::<Body>(b"{\"id\": 3}")
                .map_err(|e| e.status)
                .err(),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
    }

    #[test]
    fn json_of_the_wrong_shape_is_never_called_a_syntax_error() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "kebab-case")]
        enum Trigger {
            SubmitMessage,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            id: String,
            trigger: Trigger,
            #[serde(flatten)]
            extra: serde_json::Map<String, serde_json::Value>,
        }
        // The parser itself answers "expected value" (a syntax error) for the array.
        for body in [
            r#"{"id": "c", "trigger": []}"#,
            r#"{"id": "c", "trigger": [], "trigger": "nope"}"#,
        ] {
            let error = parse_json::<Body>(body.as_bytes()).expect_err(body);
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                error.message.contains("invalid"),
                "{body}: {}",
                error.message
            );
        }
        let error = parse_json::<Body>(br#"{"id": "c", "trigger": [}"#).expect_err("syntax");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(
            error.message.starts_with("the body is not valid JSON"),
            "{}",
            error.message
        );
    }
}
