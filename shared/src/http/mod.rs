//! The HTTP application: every route of both wires over the `Store` and `Model` ports. Hosts
//! serve [`router`] (all routes, or one function's share of them) and nothing else.

mod addressing;
mod ai_sdk;
mod erasure;
pub mod error;
mod extract;
mod readers;
mod realtime;
mod session_list;
mod sessions;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::auth::SecretKeys;
use crate::turn::TurnRunner;

pub use addressing::{addressed_chat, chat_in_body};
pub use erasure::erase_chat;
pub use error::ApiError;
pub use extract::{ApiJson, bearer, validate_chat_id};
pub use session_list::message_title;

/// The settings of the HTTP application.
#[derive(Clone)]
pub struct HttpSettings {
    /// Sign and verify session tokens; a bearer holding one of them is the environment's backend.
    pub secret_keys: SecretKeys,
    /// The token `sub`: which environment minted it.
    pub token_subject: String,
    /// Lifetime of the session tokens the routes mint.
    pub token_ttl_seconds: u64,
    /// Allowed browser origins; empty means any.
    pub cors_origins: Vec<String>,
    /// The largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Comment lines sent on an idle stream, so proxies keep it open.
    pub keepalive_interval: Duration,
    /// Trigger-wire `out` readers one chat may have open at once (429 past it).
    pub max_readers_per_chat: usize,
    /// `out` readers this process keeps open at once, over all chats (429 past it).
    pub max_readers: usize,
    /// Stored items of a chat an erase deletes before it answers (202 when more are left).
    pub erase_items_per_request: usize,
    /// End users may start sessions and refresh tokens with an ID token from this issuer.
    #[cfg(any(feature = "native", target_arch = "wasm32"))]
    pub oidc: Option<Arc<crate::auth::OidcVerifier>>,
}

impl HttpSettings {
    /// Settings with the defaults of [`Config`](crate::config::Config), `chatfn` as the token
    /// subject and no end-user sign-in.
    pub fn new(secret_keys: SecretKeys) -> Self {
        HttpSettings {
            secret_keys,
            token_subject: "chatfn".to_owned(),
            token_ttl_seconds: crate::config::Config::DEFAULT_TOKEN_TTL_SECONDS,
            cors_origins: Vec::new(),
            max_body_bytes: crate::config::Config::DEFAULT_MAX_BODY_BYTES,
            keepalive_interval: Duration::from_secs(15),
            max_readers_per_chat: 32,
            erase_items_per_request: crate::config::Config::DEFAULT_ERASE_ITEMS_PER_REQUEST,
            max_readers: 1024,
            #[cfg(any(feature = "native", target_arch = "wasm32"))]
            oidc: None,
        }
    }

    /// The settings the configuration gives, signing with `secret_keys`.
    pub fn from_config(config: &crate::config::Config, secret_keys: SecretKeys) -> Self {
        HttpSettings {
            token_ttl_seconds: config.token_ttl_seconds,
            cors_origins: config.cors_origins.clone(),
            max_body_bytes: config.max_body_bytes,
            erase_items_per_request: config.erase_items_per_request,
            #[cfg(any(feature = "native", target_arch = "wasm32"))]
            oidc: config.oidc_issuer.as_ref().map(|issuer| {
                Arc::new(crate::auth::OidcVerifier::new(
                    issuer.clone(),
                    config.oidc_audience.clone(),
                ))
            }),
            ..HttpSettings::new(secret_keys)
        }
    }
}

/// Which function's routes a router serves. Each Lambda function answers only its own; the
/// local server and the Worker answer all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Every route: the local server and the Worker.
    All,
    /// Starting, listing, reading, editing, closing and erasing sessions (the `session-start`
    /// function).
    SessionStart,
    /// Refreshing tokens and minting public ones (the `token-refresh` function).
    TokenRefresh,
    /// Both chat wires: messages, streams, stop, history (the `agent-turn` function).
    AgentTurn,
}

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

struct AppInner {
    settings: HttpSettings,
    runner: TurnRunner,
    readers: Arc<readers::ReaderSlots>,
}

impl App {
    /// The application of `runner`'s routes. Its turns' approval requests are signed with the
    /// settings' secret keys unless the runner already has a signer.
    pub fn new(settings: HttpSettings, runner: TurnRunner) -> Self {
        let runner = match runner.approval_signer() {
            Some(_) => runner,
            None => runner.with_approval_signer(crate::agent::ApprovalSigner::new(
                settings.secret_keys.clone(),
            )),
        };
        let readers =
            readers::ReaderSlots::new(settings.max_readers_per_chat, settings.max_readers);
        App {
            inner: Arc::new(AppInner {
                settings,
                runner,
                readers,
            }),
        }
    }

    /// The settings the routes run with.
    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }

    /// The runner the routes hand turns to.
    pub fn runner(&self) -> &TurnRunner {
        &self.inner.runner
    }

    /// The open `out` readers, under their caps.
    fn readers(&self) -> &Arc<readers::ReaderSlots> {
        &self.inner.readers
    }
}

/// The routes of `routes`, with CORS, body limits and JSON errors for everything else.
///
/// A host builds one [`App`] from its store and agent and serves this router with its runtime
/// (hyper with timeouts locally, the Lambda adapter on AWS). Here the router answers one request
/// directly: a backend holding the secret key starts a chat's session.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
///
/// use axum::body::Body;
/// use axum::http::Request;
/// use chatfn::agent::Agent;
/// use chatfn::auth::SecretKeys;
/// use chatfn::http::{App, HttpSettings, Routes, router};
/// use chatfn::model::offline::OfflineModel;
/// use chatfn::store::memory::MemoryStore;
/// use chatfn::turn::TurnRunner;
/// use http_body_util::BodyExt;
/// use tower::ServiceExt;
///
/// let agent = Agent::builder(Arc::new(OfflineModel::new())).build();
/// let runner = TurnRunner::new(Arc::new(MemoryStore::new()), Arc::new(agent));
/// let keys = SecretKeys::parse("sk_example").expect("one key");
/// let app = App::new(HttpSettings::new(keys), runner);
///
/// let request = Request::post("/api/v1/sessions")
///     .header("authorization", "Bearer sk_example")
///     .header("content-type", "application/json")
///     .body(Body::from(
///         r#"{"type": "chat.agent", "externalId": "chat-1", "taskIdentifier": "chat"}"#,
///     ))
///     .expect("a request");
/// let response = router(app, Routes::All).oneshot(request).await.expect("an answer");
/// assert!(response.status().is_success());
///
/// let body = response.into_body().collect().await.expect("a body").to_bytes();
/// let session: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
/// assert!(session["publicAccessToken"].is_string());
/// # }
/// ```
pub fn router(app: App, routes: Routes) -> Router {
    let mut router = Router::new();
    if matches!(routes, Routes::All | Routes::SessionStart) {
        router = router
            .route(
                "/api/v1/sessions",
                post(sessions::create).get(session_list::list),
            )
            .route(
                "/api/v1/sessions/{id}",
                get(sessions::get_session)
                    .patch(sessions::update_session)
                    .delete(erasure::delete_session),
            )
            .route(
                "/api/v1/owners/{sub}/sessions",
                delete(erasure::delete_owner_sessions),
            )
            .route("/api/v1/sessions/{id}/close", post(sessions::close_session));
    }
    if matches!(routes, Routes::All | Routes::TokenRefresh) {
        router = router
            .route("/api/v1/sessions/{id}/token", post(sessions::refresh_token))
            .route("/api/v1/auth/jwt/claims", post(sessions::jwt_claims))
            .route("/api/v1/auth/public-tokens", post(sessions::public_token));
    }
    if matches!(routes, Routes::All | Routes::AgentTurn) {
        router = router
            .route("/api/chat", post(ai_sdk::send))
            .route("/api/chat/{chat_id}/stream", get(ai_sdk::resume))
            .route("/api/chat/{chat_id}/stop", post(ai_sdk::stop))
            .route("/api/chat/{chat_id}/messages", get(ai_sdk::messages))
            .route(
                "/realtime/v1/sessions/{id}/in/append",
                post(realtime::append),
            )
            .route(
                "/realtime/v1/sessions/{id}/out",
                get(realtime::read).head(realtime::head),
            )
            .route(
                "/realtime/v1/sessions/{id}/{io}/records",
                get(realtime::records),
            );
    }
    let cors = cors_layer(&app.settings().cors_origins);
    let max_body = app.settings().max_body_bytes;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(cors)
}

// Neither echoes the path or the method: they are the caller's own, and may be kilobytes long.
async fn not_found() -> ApiError {
    ApiError::not_found("no route for this method and path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept this method",
    )
}

/// Browsers on other origins send bearer tokens and the wires' custom headers, and read the
/// stream headers back.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    let exposed = [
        "x-stream-version",
        "x-session-settled",
        "x-last-chunk-index",
        "x-vercel-ai-ui-message-stream",
        "x-chatfn-message-id",
    ];
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
            Method::OPTIONS,
        ])
        // Mirroring covers `Authorization` (which `*` does not) and any header a client adds.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(ExposeHeaders::list(
            exposed.into_iter().map(HeaderName::from_static),
        ))
        .max_age(Duration::from_secs(86_400))
}
