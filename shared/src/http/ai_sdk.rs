//! The AI SDK wire: what `useChat`'s `DefaultChatTransport` sends, and the resume and stop routes
//! its docs prescribe. The server keeps the history; of each request it takes only the new
//! message.

use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::App;
use super::error::ApiError;
use super::extract::{
    ApiPath, authenticate, parse_json, read_body, validate_chat_id, validate_path_chat_id,
};
use super::sessions::check_token_age;
use super::stream::{ui_message_events, ui_message_response, with_keepalive};
use crate::auth::Access;
use crate::store::OutputRecord;
use crate::turn::{ChatTrigger, MessagePayload, TurnError, TurnSource};
use crate::ui::UIMessage;

/// The body `DefaultChatTransport` posts.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendRequest {
    id: String,
    #[serde(default)]
    messages: Vec<UIMessage>,
    trigger: SendTrigger,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    /// `transport.body` and per-call `body` fields.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SendTrigger {
    SubmitMessage,
    RegenerateMessage,
}

/// `POST /api/chat`: runs a turn and streams it.
pub async fn send(State(app): State<App>, request: Request) -> Result<Response, ApiError> {
    // The credential first: a caller without one learns nothing from how its body is judged.
    let credential = authenticate(&app, request.headers())?;
    let body = read_body(request, &()).await?;
    let request: SendRequest = parse_json(&body)?;
    validate_chat_id(&request.id)?;
    let claims = credential.grant(&request.id, Access::Write)?;
    let chat_id = request.id.clone();
    let runner = app.runner();
    // The session, the lease and what the turn starts from, in one go; the session counts first.
    let view = runner.view(&chat_id).await?;
    let session = runner.open_in(&chat_id, &view)?;
    check_token_age(claims.as_ref(), &session)?;
    // Refuse before recording anything: a request that gets a 409 or a 429 must leave no trace.
    if runner.running_in(&view) {
        return Err(ApiError::turn_in_progress());
    }
    runner.admit(&session).await?;
    let trigger = match request.trigger {
        SendTrigger::SubmitMessage => ChatTrigger::SubmitMessage,
        SendTrigger::RegenerateMessage => ChatTrigger::RegenerateMessage,
    };
    let message = match trigger {
        ChatTrigger::SubmitMessage => Some(request.messages.last().cloned().ok_or_else(|| {
            ApiError::invalid("submit-message needs at least one message in `messages`")
        })?),
        _ => None,
    };
    let payload = MessagePayload {
        message,
        chat_id: chat_id.clone(),
        trigger,
        message_id: request.message_id,
        metadata: request.metadata,
        extra: request.extra,
    };
    let (started, task) = match runner.start_message(&chat_id, view, payload).await {
        Ok(started) => started,
        // The message is recorded, and a turn that ended just before claimed it as the chat's
        // next (it answers what arrived while it ran): follow that turn.
        Err(TurnError::Answering { first_seq }) => {
            let source = runner.turn_source(&chat_id, first_seq);
            return Ok(follow_from_start(&app, &chat_id, source));
        }
        // That turn has even ended already: replay it from the log.
        Err(TurnError::Answered { input_seq, before }) => {
            return match runner.turn_answering(&chat_id, input_seq, before).await? {
                Some(first_seq) => Ok(follow_from_start(
                    &app,
                    &chat_id,
                    TurnSource::Log { first_seq },
                )),
                None => Err(TurnError::Answered { input_seq, before }.into()),
            };
        }
        Err(error) => return Err(error.into()),
    };
    crate::runtime::spawn_detached(task);
    let records = started
        .live
        .clone()
        .follow(started.live.first_seq().checked_sub(1));
    Ok(stream_response(&app, records, &started.message_id))
}

/// The running turn's stream from its start: from memory when it runs in this process, from the
/// log otherwise.
fn follow_from_start(app: &App, chat_id: &str, source: TurnSource) -> Response {
    match source {
        TurnSource::Live(live) => {
            let after = live.first_seq().checked_sub(1);
            stream_response(app, live.follow(after), "")
        }
        TurnSource::Log { first_seq } => {
            let records = app.runner().follow_log(chat_id, first_seq.checked_sub(1));
            stream_response(app, records, "")
        }
    }
}

fn stream_response(
    app: &App,
    records: impl Stream<Item = OutputRecord> + Send + 'static,
    message_id: &str,
) -> Response {
    let events = with_keepalive(
        ui_message_events(records),
        app.settings().keepalive_interval,
    );
    ui_message_response(events, &[("x-chatfn-message-id", message_id.to_owned())])
}

fn checked_chat_id(chat_id: &str) -> Result<(), ApiError> {
    validate_path_chat_id(chat_id)
}

/// `GET /api/chat/{chatId}/stream`: the reply in flight from its `start`, then live; 204 when
/// nothing is streaming.
pub async fn resume(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let credential = authenticate(&app, &headers)?;
    checked_chat_id(&chat_id)?;
    let claims = credential.grant(&chat_id, Access::Read)?;
    let runner = app.runner();
    let Some(session) = runner.store().session(&chat_id).await? else {
        return Err(ApiError::no_session());
    };
    check_token_age(claims.as_ref(), &session)?;
    match runner.running_turn(&chat_id).await? {
        None => Ok(StatusCode::NO_CONTENT.into_response()),
        Some(source) => Ok(follow_from_start(&app, &chat_id, source)),
    }
}

/// `POST /api/chat/{chatId}/stop`: ends the running turn, keeping the partial reply. Answers once
/// the turn has ended (or after a short wait), so the history is settled when it returns.
pub async fn stop(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let credential = authenticate(&app, &headers)?;
    checked_chat_id(&chat_id)?;
    let claims = credential.grant(&chat_id, Access::Write)?;
    let runner = app.runner();
    check_token_age(claims.as_ref(), &runner.open_session(&chat_id).await?)?;
    let live = runner.live_turns().get(&chat_id);
    let stopped = runner.stop(&chat_id).await?;
    let settled = match live {
        Some(live) => crate::runtime::timeout(Duration::from_secs(10), live.finished())
            .await
            .is_ok(),
        None => !stopped,
    };
    Ok(Json(
        json!({"ok": true, "stopped": stopped, "settled": settled}),
    ))
}

/// `GET /api/chat/{chatId}/messages`: the persisted history.
pub async fn messages(
    State(app): State<App>,
    headers: HeaderMap,
    ApiPath(chat_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let credential = authenticate(&app, &headers)?;
    checked_chat_id(&chat_id)?;
    let claims = credential.grant(&chat_id, Access::Read)?;
    let store = app.runner().store();
    let Some(session) = store.session(&chat_id).await? else {
        return Err(ApiError::no_session());
    };
    check_token_age(claims.as_ref(), &session)?;
    let messages = store.messages(&chat_id).await?;
    Ok(Json(json!({"messages": messages})))
}
