//! chatfn on Cloudflare Workers: every route of both wires, with one Durable Object per chat.
//!
//! The Worker's entry only addresses requests: one that names a chat goes to that chat's
//! [`ChatObject`], which owns the chat's state in its SQLite storage, runs its turns with the
//! core engine and fans chunks out from memory to every reader. Requests that name no chat (token
//! minting, CORS preflights, errors) are answered by the core's routes in the entry itself, with
//! no chat state at all. Routes, protocol and engine are the core's; this crate only wires them
//! to workerd.
//!
//! It serves the stock agent the environment configures. To serve your own, make a Worker crate
//! (`crate-type = ["cdylib"]`) that depends on this one and names your agent at start-up:
//!
//! ```ignore
//! #[worker::event(start)]
//! fn start() {
//!     chatfn_worker::serve_agent(|_config, model| my_agent::agent(model));
//! }
//! ```
//!
//! `examples/bank-teller/worker` is one.

mod chat_object;
#[cfg(feature = "store-conformance")]
mod conformance;
mod directory;
mod logs;
mod settings;
mod store;
mod usage_counters;

pub use chat_object::ChatObject;
pub use settings::{AgentFactory, serve_agent};
pub use store::DurableObjectStore;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use chatfn::http::{ApiError, addressed_chat, chat_in_body};
use chatfn::store::Store;
use chatfn::store::memory::MemoryStore;
use directory::DirectoryStore;
use tower::ServiceExt;
use worker::{Context, Env, HttpRequest, event};

/// The Durable Object namespace binding of the chats (see `infra/wrangler.toml`).
pub const CHATS_BINDING: &str = "CHATS";

#[event(fetch)]
async fn fetch(
    request: HttpRequest,
    env: Env,
    _context: Context,
) -> worker::Result<worker::web_sys::Response> {
    logs::init();
    match route(request, &env).await {
        Ok(Answer::Forwarded(response)) => Ok(response.into()),
        Ok(Answer::Here(response)) => to_raw(response),
        Err(error) => to_raw(error.into_response()),
    }
}

/// Who answered a request.
enum Answer {
    /// The chat's Durable Object. Its response goes back to the client as it is: its body stays
    /// the runtime's stream, piped without a Rust reader, so a client that hangs up cancels it
    /// inside the runtime. Read through Rust, a hang-up dropped the Rust reader, whose drop
    /// releases its lock on the stream from a cancel callback that may run once the request is
    /// gone, where workerd refuses the call ("Disallowed operation called within global scope").
    Forwarded(worker::Response),
    /// The Worker itself: requests that name no chat, and errors.
    Here(Response<Body>),
}

fn to_raw(response: Response<Body>) -> worker::Result<worker::web_sys::Response> {
    worker::IntoResponse::into_raw(response).map_err(|error| {
        let error: Box<dyn std::error::Error> = error.into();
        worker::Error::RustError(error.to_string())
    })
}

async fn route(request: HttpRequest, env: &Env) -> Result<Answer, ApiError> {
    let config = settings::config(env)?;
    let (parts, body) = request.into_parts();
    // Bodies are small (at most the body limit) and every route reads them whole: read them
    // here, so the chat's object gets bytes rather than a stream it might leave unread, and an
    // oversized body is refused before anything is forwarded.
    let body = read_body(Body::new(body), config.max_body_bytes).await?;
    let inspected: &[u8] = if chat_in_body(&parts.method, parts.uri.path()) {
        &body
    } else {
        &[]
    };
    #[cfg(feature = "store-conformance")]
    if parts.uri.path().starts_with(conformance::PREFIX) {
        return match conformance::object_name(parts.uri.path()) {
            Some(object) => forward(env, &object, &parts, body)
                .await
                .map(Answer::Forwarded),
            None => Ok(Answer::Here(
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    conformance::case_names(),
                )
                    .into_response(),
            )),
        };
    }
    match addressed_chat(&parts.method, parts.uri.path(), inspected) {
        Some(chat) => forward(env, &chat, &parts, body)
            .await
            .map(Answer::Forwarded),
        None => {
            let store: Arc<dyn Store> = if reads_directory(&parts.method, parts.uri.path()) {
                let chats = env
                    .durable_object(CHATS_BINDING)
                    .map_err(|error| ApiError::internal(format!("the chats' binding: {error}")))?;
                DirectoryStore::new(chats)
            } else {
                Arc::new(MemoryStore::new())
            };
            let router = settings::stateless_router(&config, store)?;
            let request = Request::from_parts(parts, Body::from(body));
            Ok(Answer::Here(router.oneshot(request).await.into_response()))
        }
    }
}

/// Whether a request reads the directory of chats (listing, erasing an owner's chats); the
/// other requests that name no chat run over an empty store.
fn reads_directory(method: &axum::http::Method, path: &str) -> bool {
    (method == axum::http::Method::GET && path == "/api/v1/sessions")
        || (method == axum::http::Method::DELETE && path.starts_with("/api/v1/owners/"))
}

/// Past the body limit, how much more of a body is read (and dropped) before the 413, so the
/// client's connection is left clean for its next request.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// The whole body, or 413 when it is over `limit`. An oversized body is read to its end (up to
/// [`DRAIN_LIMIT`]) before the answer: a body left unread wedges the client's connection in the
/// local runtime.
async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|error| ApiError::invalid(format!("could not read the body: {error}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(limit));
    }
    Ok(kept.freeze())
}

/// Hands the request to the chat's Durable Object, and its answer (streamed) back.
async fn forward(
    env: &Env,
    chat: &str,
    parts: &axum::http::request::Parts,
    body: bytes::Bytes,
) -> Result<worker::Response, ApiError> {
    let unavailable =
        |error: worker::Error| ApiError::internal(format!("the chat's Durable Object: {error}"));
    let stub = env
        .durable_object(CHATS_BINDING)
        .and_then(|namespace| namespace.id_from_name(chat)?.get_stub())
        .map_err(unavailable)?;
    let headers = worker::Headers::from(&parts.headers);
    let mut init = worker::RequestInit::new();
    init.with_method(worker::Method::from(parts.method.as_str().to_owned()))
        .with_headers(headers);
    if !body.is_empty() {
        init.with_body(Some(worker::js_sys::Uint8Array::from(body.as_ref()).into()));
    }
    let request =
        worker::Request::new_with_init(&parts.uri.to_string(), &init).map_err(unavailable)?;
    stub.fetch_with_request(request).await.map_err(unavailable)
}
