//! Request parsing that fails with the one JSON error type.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::App;
use crate::auth::{Access, SessionClaims, SessionToken};
use crate::clock::now_ms;
use crate::error::ApiError;

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
    serde_json::from_slice(bytes).map_err(|error| {
        use serde_json::error::Category;
        match error.classify() {
            Category::Data => ApiError::invalid(format!("invalid request: {error}")),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request(format!("the body is not valid JSON: {error}"))
            }
        }
    })
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

/// Requires a session token granting `access` on `chat_id`. The secret key works too, for
/// server-side callers.
pub fn require_token(
    app: &App,
    headers: &HeaderMap,
    chat_id: &str,
    access: Access,
) -> Result<Option<SessionClaims>, ApiError> {
    let credential = bearer(headers).ok_or_else(|| {
        ApiError::unauthorized("send the chat's session token as `Authorization: Bearer …`")
    })?;
    if app.settings().secret_keys.matches(credential) {
        return Ok(None);
    }
    SessionToken::verify(
        credential,
        &app.settings().secret_keys,
        chat_id,
        access,
        now_ms() / 1000,
    )
    .map(Some)
    .map_err(ApiError::from)
}

/// Chat ids travel in paths, headers and store keys: keep them to a safe alphabet.
pub fn validate_chat_id(chat_id: &str) -> Result<(), ApiError> {
    let valid = !chat_id.is_empty()
        && chat_id.len() <= 256
        && chat_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "a chat id is 1 to 256 characters of letters, digits and - _ . : @",
        ))
    }
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
        for bad in ["", "a/b", "a b", "x\r\ny", "../etc", "é", &"a".repeat(257)] {
            assert!(validate_chat_id(bad).is_err(), "{bad}");
        }
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
}
