//! Erasing chats: `DELETE /api/v1/sessions/{id}` (one chat) and `DELETE
//! /api/v1/owners/{sub}/sessions` (every chat of an end user, for account deletion). The secret
//! key may erase any chat, an end user's ID token only that user's. The chat is closed to new
//! turns and a running turn is stopped first, then everything the store keeps of the chat goes,
//! and a `chat.deleted` event is sent when events are on. Erasing is idempotent: a chat that is gone answers `deleted: false`.
//!
//! A chat with more stored items than the settings allow in one request is erased in steps
//! (`Store::delete_chat_step`): the first takes its session, so it is gone at once, and the answer
//! is 202 while the rest is erased after it.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::App;
use super::error::ApiError;
use super::extract::{ApiPath, Caller, authenticate_caller, validate_path_chat_id};
use super::sessions::check_owner;
use crate::clock::now_ms;
use crate::store::listing::Direction;
use crate::store::{ChatErasure, Session, SessionFilter, SessionQuery};

/// How long an erase waits for a running turn to end after asking it to stop. A turn in this
/// process ends at its next chunk; one in another process sees the stop in the input log within
/// its writer's next check (every 500 ms).
const STOP_WAIT: Duration = Duration::from_secs(15);

/// `DELETE /api/v1/sessions/{id}`: erases one chat.
pub async fn delete_session(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let caller = authenticate_caller(&app, &headers).await?;
    let store = app.runner().store();
    let session = if id.starts_with("session_") {
        store.session_by_id(&id).await?
    } else {
        validate_path_chat_id(&id)?;
        store.session(&id).await?
    };
    let not_there = json!({"id": id, "deleted": false});
    let Some(session) = session else {
        // What an erase cut short left behind (its session item goes first) is unreachable, but
        // still stored: the secret key's retry goes on with it.
        if caller == Caller::Server && !id.starts_with("session_") {
            let step = erase_step(&app, &id, Rest::InBackground).await?;
            return Ok(answer(not_there, step.finished));
        }
        return Ok(answer(not_there, true));
    };
    // Another user's chat answers as one that is not there: an end user learns nothing of
    // which chat ids others use.
    if check_owner(&caller, &session).is_err() {
        return Ok(answer(not_there, true));
    }
    let step = erase(&app, &session, Rest::InBackground).await?;
    let body = json!({
        "id": session.id,
        "externalId": session.chat_id,
        "deleted": step.existed,
    });
    Ok(answer(body, step.finished))
}

/// 200 with `body` once nothing of the chat is left; 202 with `complete: false` while the rest
/// of a large chat is being erased (the chat already reads as gone).
fn answer(mut body: Value, finished: bool) -> Response {
    if finished {
        return Json(body).into_response();
    }
    if let Value::Object(fields) = &mut body {
        fields.insert("complete".into(), json!(false));
    }
    (
        StatusCode::ACCEPTED,
        [(header::RETRY_AFTER, "1")],
        Json(body),
    )
        .into_response()
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
            if erase(&app, &listed.session, Rest::InRequest).await?.existed {
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
    let step = match app.runner().store().session(chat_id).await? {
        Some(session) => erase(app, &session, Rest::InRequest).await?,
        None => erase_step(app, chat_id, Rest::InRequest).await?,
    };
    Ok(step.existed)
}

/// Where what the first step of an erase leaves of a large chat is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rest {
    /// After the answer, in this process (on Lambda, where nothing runs after the answer, the
    /// `DELETE` retried with the secret key goes on with it).
    InBackground,
    /// Before the answer: an owner's erasure, which lists chats by their sessions and so could
    /// not find what was left of one again.
    InRequest,
}

/// Stops the chat's turn, if one runs, then erases the chat (the session in the first step).
async fn erase(app: &App, session: &Session, rest: Rest) -> Result<ChatErasure, ApiError> {
    let chat_id = &session.chat_id;
    // Else a turn could take the chat between the wait below and the erase.
    app.runner().store().refuse_new_turns(chat_id).await?;
    stop_running_turn(app, chat_id).await?;
    let step = erase_step(app, chat_id, rest).await?;
    if step.existed {
        tracing::info!(chat = %chat_id, complete = step.finished, "chat erased");
        app.runner()
            .chat_changed(crate::events::CHAT_DELETED, session)
            .await;
    }
    Ok(step)
}

/// The first step of erasing the chat, at most the configured number of items; the rest as
/// `rest` says.
async fn erase_step(app: &App, chat_id: &str, rest: Rest) -> Result<ChatErasure, ApiError> {
    let store = app.runner().store().clone();
    let max_items = app.settings().erase_items_per_request;
    let first = store.delete_chat_step(chat_id, max_items).await?;
    if first.finished {
        return Ok(first);
    }
    let chat = chat_id.to_owned();
    let finish = async move {
        loop {
            match store.delete_chat_step(&chat, max_items).await {
                Ok(step) if step.finished => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    };
    match rest {
        Rest::InRequest => {
            finish.await?;
            Ok(ChatErasure {
                finished: true,
                ..first
            })
        }
        Rest::InBackground => {
            let chat = chat_id.to_owned();
            crate::runtime::spawn_detached(async move {
                match finish.await {
                    Ok(()) => tracing::info!(chat = %chat, "the rest of the chat erased"),
                    Err(error) => {
                        tracing::warn!(chat = %chat, "erasing the rest of the chat: {error}")
                    }
                }
            });
            Ok(first)
        }
    }
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
