//! Erasing chats: `DELETE /api/v1/sessions/{id}` (one chat) and `DELETE
//! /api/v1/owners/{sub}/sessions` (every chat of an end user, for account deletion). The secret
//! key may erase any chat, an end user's ID token only that user's. A running turn is stopped
//! first, then everything the store keeps of the chat goes, and a `chat.deleted` event is sent
//! when events are on. Erasing is idempotent: a chat that is gone answers `deleted: false`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::App;
use super::error::ApiError;
use super::extract::{ApiPath, Caller, authenticate_caller, validate_path_chat_id};
use super::sessions::check_owner;
use crate::clock::now_ms;
use crate::store::listing::Direction;
use crate::store::{Session, SessionFilter, SessionQuery};

/// How long an erase waits for a running turn to end after asking it to stop. A turn in this
/// process ends at its next chunk; one in another process sees the stop in the input log within
/// its writer's next check (every 500 ms).
const STOP_WAIT: Duration = Duration::from_secs(15);

/// `DELETE /api/v1/sessions/{id}`: erases one chat.
pub async fn delete_session(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate_caller(&app, &headers).await?;
    let store = app.runner().store();
    let session = if id.starts_with("session_") {
        store.session_by_id(&id).await?
    } else {
        validate_path_chat_id(&id)?;
        store.session(&id).await?
    };
    let not_there = Json(json!({"id": id, "deleted": false}));
    let Some(session) = session else {
        // What an erase cut short left behind (its session item goes first) is unreachable, but
        // still stored: the secret key's retry finishes it.
        if caller == Caller::Server && !id.starts_with("session_") {
            store.delete_chat(&id).await?;
        }
        return Ok(not_there);
    };
    // Another user's chat answers as one that is not there: an end user learns nothing of
    // which chat ids others use.
    if check_owner(&caller, &session).is_err() {
        return Ok(not_there);
    }
    let deleted = erase(&app, &session).await?;
    Ok(Json(json!({
        "id": session.id,
        "externalId": session.chat_id,
        "deleted": deleted,
    })))
}

/// `DELETE /api/v1/owners/{sub}/sessions`: erases every chat the end user `sub` created.
pub async fn delete_owner_sessions(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(owner): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    match authenticate_caller(&app, &headers).await? {
        Caller::Server => {}
        Caller::EndUser(sub) if sub == owner => {}
        Caller::EndUser(_) => {
            return Err(ApiError::forbidden(
                "an ID token may only erase its own user's chats",
            ));
        }
    }
    let store = app.runner().store();
    let mut deleted = 0u64;
    loop {
        // Always the first page: what was erased is gone from it.
        let page = store
            .list_sessions(&SessionQuery {
                owner: Some(owner.clone()),
                filter: SessionFilter::default(),
                cursor: None,
                direction: Direction::Older,
                size: 100,
                now_ms: now_ms(),
            })
            .await?;
        if page.sessions.is_empty() {
            break;
        }
        let mut erased_any = false;
        for listed in &page.sessions {
            if erase(&app, &listed.session).await? {
                erased_any = true;
                deleted += 1;
            }
        }
        // A listing that still shows chats nobody could erase would loop for ever.
        if !erased_any {
            break;
        }
    }
    Ok(Json(json!({"owner": owner, "deleted": deleted})))
}

/// Erases the chat `chat_id` as `DELETE /api/v1/sessions/{id}` does for the secret key, for a
/// host that erases a chat on behalf of another part of itself (the Worker's entry erasing an
/// owner's chats in their objects); whether there was one to erase.
pub async fn erase_chat(app: &App, chat_id: &str) -> Result<bool, ApiError> {
    let store = app.runner().store();
    match store.session(chat_id).await? {
        Some(session) => erase(app, &session).await,
        None => Ok(store.delete_chat(chat_id).await?),
    }
}

/// Stops the chat's turn, if one runs, then erases the chat; whether there was one to erase.
async fn erase(app: &App, session: &Session) -> Result<bool, ApiError> {
    let chat_id = &session.chat_id;
    stop_running_turn(app, chat_id).await?;
    let runner = app.runner();
    let erased = runner.store().delete_chat(chat_id).await?;
    if erased {
        tracing::info!(chat = %chat_id, "chat erased");
        runner
            .chat_changed(crate::events::CHAT_DELETED, session)
            .await;
    }
    Ok(erased)
}

/// Asks a running turn to stop (wherever it runs) and waits until it has let the chat go, so
/// it writes nothing back after the erase.
async fn stop_running_turn(app: &App, chat_id: &str) -> Result<(), ApiError> {
    let runner = app.runner();
    let live = runner.live_turns().get(chat_id);
    if live.is_none() && !runner.turn_running(chat_id).await? {
        return Ok(());
    }
    // A stop that cannot be recorded (a closed chat takes no input) still cancels a turn here.
    if let Err(error) = runner.stop(chat_id).await {
        tracing::warn!(chat = %chat_id, "could not record the stop before erasing: {error}");
        if let Some(live) = &live {
            live.stop_signal().cancel();
        }
    }
    if let Some(live) = live {
        let _ = crate::runtime::timeout(STOP_WAIT, live.finished()).await;
    }
    let deadline = now_ms() + STOP_WAIT.as_millis() as u64;
    while now_ms() < deadline {
        match runner.store().lease(chat_id).await? {
            Some(lease) if !lease.is_expired(now_ms()) => {
                crate::runtime::sleep(Duration::from_millis(100)).await;
            }
            _ => return Ok(()),
        }
    }
    tracing::warn!(chat = %chat_id, "the running turn did not stop in time; erasing anyway");
    Ok(())
}
