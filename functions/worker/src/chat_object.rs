//! The Durable Object of one chat: its state in the object's SQLite storage, its turns run by the
//! core engine in the object, its live chunks fanned out from the object's memory to every reader
//! (reload-resume, other tabs, stop), and an alarm that keeps a running turn alive, retries the
//! chat's undelivered events (the Worker's event sweeper) and removes the chat once its session
//! has expired.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use chatfn::clock::now_ms;
use chatfn::http::{ApiError, App, Routes, router};
use chatfn::store::Store as _;
use tower::ServiceExt;
use worker::{DurableObject, Env, HttpRequest, ScheduledTime, State, durable_object, wasm_bindgen};

use crate::settings;
use crate::store::DurableObjectStore;

/// While a turn runs, the object wakes itself this often: an object with no request and no alarm
/// may be evicted, which would cut a turn whose client went away.
const TURN_HEARTBEAT: Duration = Duration::from_secs(20);

#[durable_object]
pub struct ChatObject {
    state: State,
    env: Env,
    chat: RefCell<Option<Chat>>,
}

/// What the object builds on its first request and keeps while it lives in memory: the live
/// turns of the chat are in the app's runner.
#[derive(Clone)]
struct Chat {
    app: App,
    router: Router,
    store: Arc<DurableObjectStore>,
}

impl DurableObject for ChatObject {
    fn new(state: State, env: Env) -> Self {
        crate::logs::init();
        ChatObject {
            state,
            env,
            chat: RefCell::new(None),
        }
    }

    async fn fetch(&self, request: worker::Request) -> worker::Result<worker::Response> {
        let response = match self.serve(request).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        };
        worker::Response::try_from(response)
    }

    async fn alarm(&self) -> worker::Result<worker::Response> {
        if let Err(error) = self.on_alarm().await {
            worker::console_error!("chat alarm: {}", error.message);
        }
        worker::Response::empty()
    }
}

impl ChatObject {
    fn chat(&self) -> Result<Chat, ApiError> {
        if let Some(chat) = self.chat.borrow().as_ref() {
            return Ok(chat.clone());
        }
        let config = settings::config(&self.env)?;
        let store = DurableObjectStore::open(self.state.storage().sql())
            .map_err(|error| ApiError::internal(error.to_string()))?;
        let store = Arc::new(match self.env.durable_object(crate::CHATS_BINDING) {
            Ok(namespace) => store
                .with_shared_counters(namespace.clone())
                .with_directory(namespace),
            Err(_) => store,
        });
        let app = settings::app(&config, store.clone())?;
        let chat = Chat {
            router: router(app.clone(), Routes::All),
            app,
            store,
        };
        *self.chat.borrow_mut() = Some(chat.clone());
        Ok(chat)
    }

    async fn serve(&self, request: worker::Request) -> Result<axum::response::Response, ApiError> {
        let chat = self.chat()?;
        #[cfg(feature = "store-conformance")]
        if let Ok(url) = request.url()
            && url.path().starts_with(crate::conformance::PREFIX)
        {
            return crate::conformance::run_case(url.path(), &chat.store)
                .await
                .map(|body| {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response()
                })
                .map_err(ApiError::not_found);
        }
        if request.path() == crate::directory::PATH {
            let mut request = request;
            let body = request
                .bytes()
                .await
                .map_err(|error| ApiError::internal(error.to_string()))?;
            return crate::directory::serve(&self.state.storage().sql(), &body)
                .map(|answer| {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        answer,
                    )
                        .into_response()
                })
                .map_err(ApiError::from);
        }
        if request.path() == crate::directory::ERASE_PATH {
            let mut request = request;
            let chat_id = request
                .text()
                .await
                .map_err(|error| ApiError::internal(error.to_string()))?;
            let deleted = chatfn::http::erase_chat(&chat.app, &chat_id).await?;
            return Ok(axum::Json(serde_json::json!({ "deleted": deleted })).into_response());
        }
        if request.path() == crate::usage_counters::PATH {
            let mut request = request;
            let body = request
                .bytes()
                .await
                .map_err(|error| ApiError::internal(error.to_string()))?;
            return crate::usage_counters::serve(&chat.store, &body)
                .map(|answer| {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        answer,
                    )
                        .into_response()
                })
                .map_err(ApiError::from);
        }
        let request = HttpRequest::try_from(request)
            .map_err(|error| ApiError::internal(format!("could not read the request: {error}")))?;
        let response = match chat.router.clone().oneshot(request.map(Body::new)).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let Err(error) = self.schedule_alarm(&chat).await {
            worker::console_error!("chat alarm: {}", error.message);
        }
        Ok(response)
    }

    /// Wakes the object while a turn runs, when the next undelivered event is due, and at the
    /// session's expiry to remove the chat.
    async fn schedule_alarm(&self, chat: &Chat) -> Result<(), ApiError> {
        let Some(chat_id) = chat.store.chat_id().map_err(ApiError::from)? else {
            return Ok(());
        };
        let runner = chat.app.runner();
        let turn_or_expiry = if runner.turn_running(&chat_id).await? {
            Some(now_ms() + TURN_HEARTBEAT.as_millis() as u64)
        } else {
            runner
                .store()
                .session(&chat_id)
                .await
                .map_err(ApiError::from)?
                .and_then(|session| session.expires_at_ms)
        };
        let next_event = match runner.events() {
            Some(events) => events.next_due_ms().await.map_err(ApiError::from)?,
            None => None,
        };
        let wake_at = match (turn_or_expiry, next_event) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let storage = self.state.storage();
        let current = storage.get_alarm().await.map_err(storage_error)?;
        match wake_at {
            Some(at) if current.is_none_or(|current| current as u64 > at) => storage
                .set_alarm(ScheduledTime::new(worker::js_sys::Date::new(
                    &worker::wasm_bindgen::JsValue::from_f64(at as f64),
                )))
                .await
                .map_err(storage_error),
            _ => Ok(()),
        }
    }

    async fn on_alarm(&self) -> Result<(), ApiError> {
        let chat = self.chat()?;
        let Some(chat_id) = chat.store.chat_id().map_err(ApiError::from)? else {
            return Ok(());
        };
        let runner = chat.app.runner();
        if let Some(events) = runner.events()
            && let Err(error) = events.sweep(64).await
        {
            worker::console_error!("chat alarm: the event outbox: {error}");
        }
        let expired = runner
            .store()
            .session(&chat_id)
            .await
            .map_err(ApiError::from)?
            .is_some_and(|session| session.is_expired(now_ms()));
        if expired && !runner.turn_running(&chat_id).await? {
            // The chat is gone for good: take it out of the directory, free its storage, and
            // forget the app built over it.
            chat.store
                .delete_chat(&chat_id)
                .await
                .map_err(ApiError::from)?;
            self.state
                .storage()
                .delete_all()
                .await
                .map_err(storage_error)?;
            *self.chat.borrow_mut() = None;
            return Ok(());
        }
        self.schedule_alarm(&chat).await
    }
}

fn storage_error(error: worker::Error) -> ApiError {
    ApiError::internal(format!("Durable Object storage: {error}"))
}
