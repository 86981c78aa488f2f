//! chatfn on Cloudflare Workers: every route of both wires, with one Durable Object per chat.
//!
//! The Worker's entry only addresses requests: one that names a chat goes to that chat's
//! [`ChatObject`], which owns the chat's state in its SQLite storage, runs its turns with the
//! core engine and fans chunks out from memory to every reader. Requests that name no chat (token
//! minting, CORS preflights, errors) are answered by the core's routes in the entry itself, with
//! no chat state at all. Routes, protocol and engine are the core's; this crate only wires them
//! to workerd.

mod chat_object;
mod settings;
mod store;

pub use chat_object::ChatObject;
pub use store::DurableObjectStore;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use chatfn::error::ApiError;
use chatfn::http::{addressed_chat, chat_in_body};
use tower::ServiceExt;
use worker::{Context, Env, HttpRequest, event};

/// The Durable Object namespace binding of the chats (see `infra/wrangler.toml`).
pub const CHATS_BINDING: &str = "CHATS";

#[event(fetch)]
async fn fetch(
    request: HttpRequest,
    env: Env,
    _context: Context,
) -> worker::Result<Response<Body>> {
    Ok(match route(request, &env).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    })
}

async fn route(request: HttpRequest, env: &Env) -> Result<Response<Body>, ApiError> {
    let config = settings::config(env)?;
    let (parts, body) = request.into_parts();
    let body = Body::new(body);
    // Only session start and the AI SDK's send name their chat in the body: read those (within
    // the body limit), stream the rest through untouched.
    let (chat, body) = if chat_in_body(&parts.method, parts.uri.path()) {
        let bytes = axum::body::to_bytes(body, config.max_body_bytes)
            .await
            .map_err(|_| ApiError::too_large(config.max_body_bytes))?;
        let chat = addressed_chat(&parts.method, parts.uri.path(), &bytes);
        (chat, Body::from(bytes))
    } else {
        (addressed_chat(&parts.method, parts.uri.path(), &[]), body)
    };
    let request = Request::from_parts(parts, body);
    match chat {
        Some(chat) => forward(env, &chat, request).await,
        None => {
            let router = settings::stateless_router(&config)?;
            Ok(router.oneshot(request).await.into_response())
        }
    }
}

/// Hands the request to the chat's Durable Object and its answer (streamed) back.
async fn forward(
    env: &Env,
    chat: &str,
    request: Request<Body>,
) -> Result<Response<Body>, ApiError> {
    let unavailable =
        |error: worker::Error| ApiError::internal(format!("the chat's Durable Object: {error}"));
    let stub = env
        .durable_object(CHATS_BINDING)
        .and_then(|namespace| namespace.id_from_name(chat)?.get_stub())
        .map_err(unavailable)?;
    let request = worker::Request::try_from(request).map_err(unavailable)?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(unavailable)?;
    Ok(Response::<Body>::from(response))
}
