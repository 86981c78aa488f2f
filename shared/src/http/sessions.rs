//! Sessions: start, read, close and token refresh (`/api/v1/sessions/...`), and the token routes
//! of `/api/v1/auth`. Start and refresh follow what `@trigger.dev/sdk`'s
//! `chat.createStartSessionAction` sends and reads, so both wires share them; reading a session
//! takes the secret key or a token of its chat, the other routes the secret key (or, for start and
//! refresh, an end user's ID token).

use std::future::Future;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::error::ApiError;
use super::extract::{
    ApiPath, Caller, Credential, authenticate, authenticate_caller, parse_json, read_body,
    require_secret_key, validate_chat_id, validate_path_chat_id,
};
use super::session_list::listed_json;
use crate::auth::{Access, SessionClaims, SessionToken, TokenError, scope};
use crate::clock::{iso8601, now_ms};
use crate::store::{Session, SessionCreate, SessionUpdate, TurnView};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionRequest {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    external_id: Option<String>,
    #[serde(default)]
    task_identifier: Option<String>,
    #[serde(default)]
    trigger_config: Option<Value>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    expires_at: Option<Value>,
    /// The end user (an ID token's `sub`) the secret key's holder starts or takes up the chat for.
    #[serde(default)]
    owner: Option<String>,
}

impl CreateSessionRequest {
    /// The session this request describes, or what is wrong with it (422).
    fn into_session(self, now: u64) -> Result<Session, ApiError> {
        let chat_id = self
            .external_id
            .ok_or_else(|| ApiError::invalid("`externalId` (the chat id) is required"))?;
        validate_chat_id(&chat_id)?;
        if chat_id.starts_with("session_") {
            return Err(ApiError::invalid(
                "`externalId` may not start with `session_`",
            ));
        }
        if let Some(kind) = &self.kind
            && kind != Session::KIND
        {
            return Err(ApiError::invalid(format!(
                "`type` must be `{}` (got `{kind}`)",
                Session::KIND
            )));
        }
        let trigger_config = match self.trigger_config {
            None | Some(Value::Null) => json!({}),
            Some(config @ Value::Object(_)) => {
                validate_trigger_config(&config)?;
                config
            }
            Some(_) => return Err(ApiError::invalid("`triggerConfig` must be an object")),
        };
        let tags = self.tags.unwrap_or_default();
        if tags.len() > 10 || tags.iter().any(|tag| tag.is_empty() || tag.len() > 128) {
            return Err(ApiError::invalid(
                "at most 10 `tags` of 1 to 128 characters",
            ));
        }
        let expires_at_ms = self
            .expires_at
            .map(|value| parse_time(&value))
            .transpose()?;
        let session = Session::new(chat_id, now);
        Ok(Session {
            task_identifier: self.task_identifier.unwrap_or(session.task_identifier),
            trigger_config,
            tags,
            metadata: self.metadata.filter(|m| !m.is_null()),
            expires_at_ms,
            ..session
        })
    }
}

fn validate_trigger_config(config: &Value) -> Result<(), ApiError> {
    if let Some(tags) = config.get("tags") {
        let ok = tags.as_array().is_some_and(|tags| {
            tags.len() <= 10
                && tags
                    .iter()
                    .all(|t| t.as_str().is_some_and(|t| !t.is_empty() && t.len() <= 128))
        });
        if !ok {
            return Err(ApiError::invalid(
                "`triggerConfig.tags` must be at most 10 strings of 1 to 128 characters",
            ));
        }
    }
    let bounded = |key: &str, max: u64| -> Result<(), ApiError> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(value) if value.as_u64().is_some_and(|n| n <= max) => Ok(()),
            Some(_) => Err(ApiError::invalid(format!(
                "`triggerConfig.{key}` must be a whole number up to {max}"
            ))),
        }
    };
    bounded("maxAttempts", 10)?;
    bounded("idleTimeoutInSeconds", 3600)?;
    if let Some(payload) = config.get("basePayload")
        && !payload.is_object()
    {
        return Err(ApiError::invalid(
            "`triggerConfig.basePayload` must be an object",
        ));
    }
    Ok(())
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z): formatting a later time
/// fails, and a stored session with one could never be shown again.
const LAST_WRITABLE_MS: u64 = 253_402_300_799_999;

/// An ISO 8601 string or epoch milliseconds.
fn parse_time(value: &Value) -> Result<u64, ApiError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| ApiError::invalid("`expiresAt` must be a positive time"))
            .and_then(|ms| {
                (ms <= LAST_WRITABLE_MS)
                    .then_some(ms)
                    .ok_or_else(|| ApiError::invalid("`expiresAt` must be before the year 10000"))
            }),
        Value::String(text) => humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|elapsed| elapsed.as_millis() as u64)
            .ok_or_else(|| ApiError::invalid("`expiresAt` must be an ISO 8601 time")),
        _ => Err(ApiError::invalid(
            "`expiresAt` must be an ISO 8601 time or epoch milliseconds",
        )),
    }
}

/// Clamped: a time past the year 9999 (a session stored before such times were refused, or a
/// token lifetime configured as forever) shows as the last writable one instead of failing.
fn iso(ms: u64) -> String {
    iso8601(ms.min(LAST_WRITABLE_MS))
}

fn time_or_null(ms: Option<u64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(iso(ms)))
}

/// The session as the Trigger SDK reads it.
pub fn session_json(session: &Session) -> Value {
    json!({
        "id": session.id,
        "externalId": session.chat_id,
        "type": session.kind,
        "taskIdentifier": session.task_identifier,
        "triggerConfig": session.trigger_config,
        "currentRunId": Value::Null,
        "tags": session.tags,
        "metadata": session.metadata,
        "closedAt": time_or_null(session.closed_at_ms),
        "closedReason": session.closed_reason,
        "expiresAt": time_or_null(session.expires_at_ms),
        "createdAt": iso(session.created_at_ms),
        "updatedAt": iso(session.updated_at_ms),
    })
}

/// The session create response: the session, a fresh token, and whether it already existed.
pub fn session_body(session: &Session, token: &str, cached: bool) -> Value {
    let mut body = session_json(session);
    if let Value::Object(fields) = &mut body {
        // chatfn has no runs; the chat's session stands in for its run everywhere.
        fields.insert(
            "runId".into(),
            json!(format!("run_{}", session.id.trim_start_matches("session_"))),
        );
        fields.insert("publicAccessToken".into(), json!(token));
        fields.insert("isCached".into(), json!(cached));
    }
    body
}

fn mint(app: &App, chat_id: &str) -> (String, u64) {
    let now = now_ms() / 1000;
    let settings = app.settings();
    let token = SessionToken::mint(
        &settings.secret_keys,
        &settings.token_subject,
        chat_id,
        now,
        settings.token_ttl_seconds,
    );
    let expires_s = now.saturating_add(settings.token_ttl_seconds);
    (token, expires_s.saturating_mul(1000))
}

/// A fresh token for one chat, for a reader to continue with: read/write for the holder of the
/// secret key, else exactly the access to this chat that `claims` grant, so a read-only token
/// never comes back read-write.
pub fn refreshed_token(app: &App, chat_id: &str, claims: Option<&SessionClaims>) -> String {
    let Some(claims) = claims else {
        return mint(app, chat_id).0;
    };
    let scopes = [Access::Read, Access::Write]
        .into_iter()
        .filter(|access| claims.allows(*access, chat_id))
        .map(|access| scope(access, chat_id))
        .collect();
    let settings = app.settings();
    SessionToken::mint_with_scopes(
        &settings.secret_keys,
        &settings.token_subject,
        scopes,
        now_ms() / 1000,
        settings.token_ttl_seconds,
    )
}

/// `POST /api/v1/sessions`: idempotent on the chat id; 201 on create, 200 with `isCached` after.
pub async fn create(
    State(app): State<App>,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The credential before the body: a caller without one learns nothing from its judgement.
    let caller = authenticate_caller(&app, request.headers()).await?;
    let mut request: CreateSessionRequest = parse_json(&read_body(request, &()).await?)?;
    let named_owner = request.owner.take();
    if let Some(owner) = &named_owner
        && (owner.is_empty() || owner.len() > 255)
    {
        return Err(ApiError::invalid(
            "`owner` must be an ID token's `sub`: 1 to 255 characters",
        ));
    }
    let now = now_ms();
    let mut session = request.into_session(now)?;
    session.owner = match &caller {
        Caller::Server => named_owner.clone(),
        Caller::EndUser(sub) if named_owner.as_ref().is_none_or(|owner| owner == sub) => {
            Some(sub.clone())
        }
        Caller::EndUser(_) => {
            return Err(ApiError::forbidden(
                "an end user's chats are their own: `owner` may only name the ID token's subject",
            ));
        }
    };
    let (status, session, cached) = match app.runner().store().create_session(session).await? {
        SessionCreate::Created(session) => {
            app.runner()
                .chat_changed(crate::events::CHAT_CREATED, &session)
                .await;
            (StatusCode::CREATED, session, false)
        }
        SessionCreate::Existing(session) => {
            check_not_squatted(&caller, &session, named_owner.as_deref())?;
            (StatusCode::OK, session, true)
        }
    };
    check_owner(&caller, &session)?;
    if session.is_closed() {
        return Err(ApiError::session_closed(session.closed_reason.as_deref()));
    }
    if session.is_expired(now) {
        return Err(ApiError::session_closed(Some("expired")));
    }
    let (token, _) = mint(&app, &session.chat_id);
    Ok((status, Json(session_body(&session, &token, cached))))
}

/// `POST /api/v1/sessions/{chatId}/token`: a fresh session token for an open chat.
pub async fn refresh_token(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate_caller(&app, &headers).await?;
    validate_path_chat_id(&chat_id)?;
    let session = app.runner().open_session(&chat_id).await?;
    check_owner(&caller, &session)?;
    let (token, expires_ms) = mint(&app, &chat_id);
    Ok(Json(json!({
        "publicAccessToken": token,
        "expiresAt": iso(expires_ms),
    })))
}

/// An end user may start a chat under any id not yet taken. When the backend later starts a chat
/// under the same id, it must not be handed that user's chat as if it were its own: it gets the
/// chat only when it names the owner.
fn check_not_squatted(
    caller: &Caller,
    session: &Session,
    named_owner: Option<&str>,
) -> Result<(), ApiError> {
    match (caller, session.owner.as_deref()) {
        (Caller::Server, Some(owner)) if named_owner != Some(owner) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "chat_owned_by_another",
            "an end user started a chat with this id: name its owner (`owner`) to take it up, \
             or keep each user's chat ids apart (prefix them with the user's id)",
        )),
        _ => Ok(()),
    }
}

/// An end user may only hold tokens for (and edit, and erase) the chats they created.
pub(super) fn check_owner(caller: &Caller, session: &Session) -> Result<(), ApiError> {
    match caller {
        Caller::Server => Ok(()),
        Caller::EndUser(sub) if session.owner.as_deref() == Some(sub.as_str()) => Ok(()),
        Caller::EndUser(_) => Err(ApiError::forbidden("this chat belongs to another user")),
    }
}

/// `POST /api/v1/auth/jwt/claims`: the claims `auth.createPublicToken` signs locally with the
/// secret key. Only `sub` and `pub`: the SDK copies every key into the token.
pub async fn jwt_claims(
    State(app): State<App>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    require_secret_key(&app, &headers)?;
    Ok(Json(
        json!({"sub": app.settings().token_subject, "pub": true}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicTokenRequest {
    scopes: Vec<String>,
    #[serde(default)]
    expiration_time: Option<Value>,
}

/// `POST /api/v1/auth/public-tokens`: a token minted by the server, for secrets the SDK will not
/// sign with. Only session scopes are granted.
pub async fn public_token(
    State(app): State<App>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    require_secret_key(&app, request.headers())?;
    let request: PublicTokenRequest = parse_json(&read_body(request, &()).await?)?;
    for scope in &request.scopes {
        let chat = scope
            .strip_prefix("read:sessions:")
            .or_else(|| scope.strip_prefix("write:sessions:"))
            .ok_or_else(|| ApiError::invalid(format!("scope `{scope}` cannot be granted: only read:sessions:{{chatId}} and write:sessions:{{chatId}}")))?;
        validate_chat_id(chat)?;
    }
    let now = now_ms() / 1000;
    let exp = match &request.expiration_time {
        None | Some(Value::Null) => now + 15 * 60,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| ApiError::invalid("`expirationTime` must be a positive time"))?,
        Some(Value::String(text)) => match humantime::parse_duration(text.trim()) {
            Ok(duration) => now.saturating_add(duration.as_secs()),
            Err(_) => parse_time(&Value::String(text.clone()))? / 1000,
        },
        Some(_) => {
            return Err(ApiError::invalid(
                "`expirationTime` must be a duration like \"1h\" or a time",
            ));
        }
    };
    let settings = app.settings();
    let token = SessionToken::mint_with_scopes(
        &settings.secret_keys,
        &settings.token_subject,
        request.scopes,
        now,
        exp.saturating_sub(now),
    );
    Ok(Json(json!({"token": token})))
}

/// Resolves `{id}` (a chat id or a `session_…` id) to the chat's session.
async fn resolve_session(app: &App, id: &str) -> Result<Session, ApiError> {
    let store = app.runner().store();
    let session = if id.starts_with("session_") {
        store.session_by_id(id).await?
    } else {
        validate_path_chat_id(id)?;
        store.session(id).await?
    };
    session.ok_or_else(ApiError::no_session)
}

/// Resolves `{id}` for a caller whose credential grants `access` on its chat. The credential is
/// authenticated before anything is looked up (401), and a chat id is checked against it before
/// the lookup, so a caller without a token for a chat cannot learn whether it exists (401/403,
/// never 404). A `session_…` id is looked up first, as only the session says which chat it is;
/// a token that does not open the chat gets the same 403 whether or not the session exists.
pub(super) async fn authorized_session(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    access: Access,
) -> Result<(Session, Option<SessionClaims>), ApiError> {
    if id.starts_with("session_") {
        return authorized_session_id(app, headers, id, access).await;
    }
    let (session, claims, ()) =
        authorized_session_beside(app, headers, id, access, |_| async {}).await?;
    Ok((session, claims))
}

/// [`authorized_session`] for a `session_…` id, which only its session can tie to a chat.
async fn authorized_session_id(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    access: Access,
) -> Result<(Session, Option<SessionClaims>), ApiError> {
    let credential = authenticate(app, headers)?;
    let found = app.runner().store().session_by_id(id).await?;
    match (found, &credential) {
        (Some(session), _) => {
            let claims = credential.grant(&session.chat_id, access)?;
            check_token_age(claims.as_ref(), &session)?;
            Ok((session, claims))
        }
        (None, Credential::SecretKey) => Err(ApiError::no_session()),
        // The refusal a token for another chat gets: its scope cannot name this one.
        (None, Credential::Token(_)) => Err(TokenError::MissingScope(scope(access, id)).into()),
    }
}

/// What the credential grants on the chat `id` names, judged before anything is looked up.
fn granted_on_chat(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    access: Access,
) -> Result<Option<SessionClaims>, ApiError> {
    let credential = authenticate(app, headers)?;
    validate_path_chat_id(id)?;
    credential.grant(id, access)
}

/// [`authorized_session`], running `beside` (given the chat id) side by side with the session's
/// read once the credential opens the chat: a read the request needs next, in the same round
/// trip. A `session_…` id is resolved first, and `beside` runs after.
pub(super) async fn authorized_session_beside<F: Future>(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    access: Access,
    beside: impl FnOnce(String) -> F,
) -> Result<(Session, Option<SessionClaims>, F::Output), ApiError> {
    if id.starts_with("session_") {
        let (session, claims) = authorized_session_id(app, headers, id, access).await?;
        let extra = beside(session.chat_id.clone()).await;
        return Ok((session, claims, extra));
    }
    let claims = granted_on_chat(app, headers, id, access)?;
    let (session, extra) = futures::join!(resolve_session(app, id), beside(id.to_owned()));
    let session = session?;
    check_token_age(claims.as_ref(), &session)?;
    Ok((session, claims, extra))
}

/// [`authorized_session`] with the chat's [`TurnView`], for a reader that may claim its turn: a
/// chat id is judged against the credential first, then the view (which holds the session) is
/// read in place of the session alone, so the reader's claim starts from what authorized it. A
/// `session_…` id is resolved first, then viewed.
pub(super) async fn authorized_view(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    access: Access,
) -> Result<(Session, Option<SessionClaims>, TurnView), ApiError> {
    if id.starts_with("session_") {
        let (session, claims) = authorized_session_id(app, headers, id, access).await?;
        let view = app.runner().view(&session.chat_id).await?;
        return Ok((session, claims, view));
    }
    let claims = granted_on_chat(app, headers, id, access)?;
    let view = app.runner().view(id).await?;
    let session = view.session.clone().ok_or_else(ApiError::no_session)?;
    check_token_age(claims.as_ref(), &session)?;
    Ok((session, claims, view))
}

/// A session token opens only the chat that existed when it was minted: one issued before the
/// session was created (for a chat since erased and created again under its id) opens nothing.
/// `iat` has whole seconds, so a token from the second the chat was created still opens it.
pub(super) fn check_token_age(
    claims: Option<&SessionClaims>,
    session: &Session,
) -> Result<(), ApiError> {
    match claims {
        Some(claims) if claims.iat < session.created_at_ms / 1000 => Err(ApiError::unauthorized(
            "this token was issued before the chat was created; get a new one",
        )),
        _ => Ok(()),
    }
}

/// `GET /api/v1/sessions/{id}`: the session (secret key, or a token of the chat).
pub async fn get_session(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (session, _) = authorized_session(&app, &headers, &id, Access::Read).await?;
    let listed = app
        .runner()
        .store()
        .listed_session(&session.chat_id)
        .await?
        .ok_or_else(ApiError::no_session)?;
    Ok(Json(listed_json(&app, &listed).await?))
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The body of `sessions.update(...)`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSessionRequest {
    #[serde(default, deserialize_with = "present")]
    tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    external_id: Option<Option<String>>,
}

impl UpdateSessionRequest {
    /// The change this request asks of `session`, or what is wrong with it (422).
    fn into_update(self, session: &Session) -> Result<SessionUpdate, ApiError> {
        if let Some(external_id) = self.external_id
            && external_id.as_deref() != Some(session.chat_id.as_str())
        {
            return Err(ApiError::invalid(
                "`externalId` is the chat id and cannot change",
            ));
        }
        let tags = self.tags.map(Option::unwrap_or_default);
        if let Some(tags) = &tags
            && (tags.len() > 10 || tags.iter().any(|tag| tag.is_empty() || tag.len() > 128))
        {
            return Err(ApiError::invalid(
                "at most 10 `tags` of 1 to 128 characters",
            ));
        }
        if let Some(Some(metadata)) = &self.metadata
            && !metadata.is_object()
        {
            return Err(ApiError::invalid("`metadata` must be an object or null"));
        }
        Ok(SessionUpdate {
            tags,
            metadata: self.metadata,
        })
    }
}

/// `PATCH /api/v1/sessions/{id}`: changes a chat's tags and metadata (`null` clears them); the
/// secret key, or the ID token of the chat's owner.
pub async fn update_session(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let headers = request.headers().clone();
    // The credential first: its verdict, not the body's, is what an unknown caller learns.
    let caller = authenticate_caller(&app, &headers).await?;
    let body = read_body(request, &()).await?;
    let request: UpdateSessionRequest = parse_json(&body)?;
    let session = resolve_session(&app, &id).await?;
    // Another user's chat answers as one that is not there, as an erase does.
    check_owner(&caller, &session).map_err(|_| ApiError::no_session())?;
    let update = request.into_update(&session)?;
    let store = app.runner().store();
    store
        .update_session(&session.chat_id, &update, now_ms())
        .await?;
    let listed = store
        .listed_session(&session.chat_id)
        .await?
        .ok_or_else(ApiError::no_session)?;
    Ok(Json(listed_json(&app, &listed).await?))
}

#[derive(Debug, Default, Deserialize)]
pub struct CloseRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/sessions/{id}/close`: closes the chat for good (idempotent; secret key).
pub async fn close_session(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let headers = request.headers().clone();
    require_secret_key(&app, &headers)?;
    let body = read_body(request, &()).await?;
    let close: CloseRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CloseRequest::default()
    } else {
        parse_json(&body)?
    };
    let session = resolve_session(&app, &id).await?;
    let runner = app.runner();
    runner.stop_for_close(&session.chat_id).await?;
    let closed = runner
        .store()
        .close_session(&session.chat_id, close.reason, now_ms())
        .await?;
    // A repeated close changes nothing, and sends nothing again.
    if !session.is_closed() {
        runner
            .chat_changed(crate::events::CHAT_CLOSED, &closed)
            .await;
    }
    Ok(Json(session_json(&closed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> Result<Session, ApiError> {
        serde_json::from_value::<CreateSessionRequest>(value)
            .map_err(|e| ApiError::invalid(e.to_string()))?
            .into_session(1_000)
    }

    #[test]
    fn the_start_session_action_body_is_accepted() {
        let session = request(json!({
            "type": "chat.agent", "externalId": "chat-basic", "taskIdentifier": "chat",
            "triggerConfig": {"basePayload": {"messages": [], "trigger": "preload", "metadata": {}, "chatId": "chat-basic"},
                              "tags": ["chat:chat-basic"]}
        }))
        .expect("valid");
        assert_eq!(session.chat_id, "chat-basic");
        assert!(session.id.starts_with("session_"));
        let body = session_body(&session, "tok", false);
        for key in [
            "id",
            "externalId",
            "type",
            "taskIdentifier",
            "tags",
            "metadata",
            "closedAt",
            "closedReason",
            "expiresAt",
            "createdAt",
            "updatedAt",
            "runId",
            "publicAccessToken",
            "isCached",
        ] {
            assert!(body.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn invalid_requests_say_what_is_wrong() {
        for (body, needle) in [
            (json!({}), "externalId"),
            (json!({"externalId": "session_x"}), "session_"),
            (json!({"externalId": "a/b"}), "chat id"),
            (json!({"externalId": "c", "type": "task"}), "type"),
            (
                json!({"externalId": "c", "triggerConfig": {"maxAttempts": 11}}),
                "maxAttempts",
            ),
            (json!({"externalId": "c", "tags": vec!["t"; 11]}), "tags"),
            (
                json!({"externalId": "c", "expiresAt": "tomorrow"}),
                "expiresAt",
            ),
        ] {
            let error = request(body.clone()).expect_err("invalid");
            assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(error.message.contains(needle), "{body}: {}", error.message);
        }
    }

    #[test]
    fn expiry_accepts_iso_and_epoch_ms() {
        let iso = request(json!({"externalId": "c", "expiresAt": "2026-11-23T20:52:07.183Z"}))
            .expect("valid");
        assert_eq!(iso.expires_at_ms, Some(1_795_467_127_183));
        let ms = request(json!({"externalId": "c", "expiresAt": 5})).expect("valid");
        assert_eq!(ms.expires_at_ms, Some(5));
    }
}
