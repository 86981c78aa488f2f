//! The chat page (`web/`, built with Vite) and the backend it needs, served by the local server
//! only: `/` and `/assets/…` from the built folder, and dev routes that create sessions and mint
//! tokens with the secret key, so the page never sees the key. They play the part of a web app's
//! server actions (`chat.createStartSessionAction`, `auth.createPublicToken`), in process: each
//! one calls the core's own session route with the secret key.
//!
//! | route | answer |
//! |---|---|
//! | `GET /dev/info` | `{model, offline, approvalTools}` |
//! | `POST /dev/sessions` `{chatId}` | creates the chat's session (idempotent): `{publicAccessToken, chatId, model, offline, isCached}` |
//! | `POST /dev/sessions/{chatId}/token` | a fresh token: `{publicAccessToken, expiresAt, chatId}` |
//! | `GET /dev/sessions` | the chats, last active first: `{chats: [{chatId, title, lastActivityAt, createdAt}], truncated}` |
//! | `PATCH /dev/sessions/{chatId}` `{title}` | renames the chat (`metadata.title`; empty or `null` goes back to its first message): the chat as listed |
//! | `DELETE /dev/sessions/{chatId}` | erases the chat: `{chatId, deleted}` |
//! | `GET /dev/store/capacity` | with `--dynamodb` only: `{readUnits, writeUnits, calls}` consumed so far |
//!
//! Anyone who reaches these routes gets tokens for any chat, as anyone who reaches a local dev
//! server can: they answer only requests addressed to a loopback name (or the `--host` given), and
//! refuse requests sent by pages of another origin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chatfn::http::{ApiError, ApiJson, validate_chat_id};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// The built page's folder when neither `--web-dir` nor `CHATFN_WEB_DIR` says otherwise.
pub fn default_web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("web")
        .join("dist")
}

/// What the dev routes need besides the core router: the key to call it with, and what to tell
/// the page about the model.
pub struct DevSettings {
    /// The secret key that signs; sent only to `core`, never to the browser.
    pub secret_key: String,
    /// `offline` or `provider:model`.
    pub model: String,
    pub offline: bool,
    pub approval_tools: Vec<String>,
    /// Host names (without port) the dev routes answer to, besides the loopback names.
    pub extra_hosts: Vec<String>,
    /// The store's capacity units consumed so far, when it counts them (DynamoDB): the
    /// benchmarks read it before and after their turns.
    pub store_capacity: Option<Arc<dyn Fn() -> Value + Send + Sync>>,
}

struct DevBackend {
    /// The core's routes (`router(app, Routes::All)`), called in process.
    core: Router,
    settings: DevSettings,
}

struct PageState {
    web_dir: PathBuf,
}

/// The local server's router: the page, the dev routes, and the core's routes (which keep their
/// JSON 404 for every other path).
pub fn local_router(core: Router, settings: DevSettings, web_dir: PathBuf) -> Router {
    let assets = ServeDir::new(web_dir.join("assets"));
    let page = Router::new()
        .route("/", get(index))
        .with_state(Arc::new(PageState { web_dir }))
        .nest_service("/assets", assets);
    let dev = Arc::new(DevBackend {
        core: core.clone(),
        settings,
    });
    let mut dev_routes = Router::new()
        .route("/dev/info", get(info))
        .route("/dev/sessions", post(create_session).get(list_chats))
        .route(
            "/dev/sessions/{chat_id}",
            patch(rename_chat).delete(delete_chat),
        )
        .route("/dev/sessions/{chat_id}/token", post(refresh_token));
    if dev.settings.store_capacity.is_some() {
        dev_routes = dev_routes.route("/dev/store/capacity", get(store_capacity));
    }
    let dev_routes = dev_routes
        .route_layer(middleware::from_fn_with_state(dev.clone(), local_only))
        .with_state(dev.clone());
    page.merge(dev_routes).merge(core)
}

/// `GET /`: the built page, or how to build it.
async fn index(State(state): State<Arc<PageState>>) -> Response {
    let path = state.web_dir.join("index.html");
    match tokio::fs::read(&path).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
        Err(_) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            not_built_page(&state.web_dir),
        )
            .into_response(),
    }
}

fn not_built_page(web_dir: &Path) -> String {
    let folder = html_escape(&web_dir.display().to_string());
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>chatfn: the chat page is not built</title></head>\n\
         <body style=\"font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; \
         line-height: 1.5\">\n<h1>The chat page is not built</h1>\n\
         <p>chatfn is running: its routes answer on this server. The chat page comes from \
         <code>{folder}</code>, which does not exist yet.</p>\n\
         <p>Build it and reload, or start the server with <code>bash scripts/run.sh</code>, \
         which does both:</p>\n<pre>bash scripts/npm-install.sh web\n(cd web &amp;&amp; npm run build)</pre>\n\
         <p>Another folder can be served with <code>--web-dir</code> or \
         <code>CHATFN_WEB_DIR</code>.</p>\n</body></html>\n"
    )
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Refuses dev requests addressed to another host name (DNS rebinding) or sent by a page of
/// another origin.
async fn local_only(State(dev): State<Arc<DevBackend>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, &dev.settings.extra_hosts) {
        return ApiError::forbidden(format!(
            "the dev routes answer only on localhost (this request was for `{host}`)"
        ))
        .into_response();
    }
    if !same_origin(headers, host) {
        return ApiError::forbidden("the dev routes answer only the page this server serves")
            .into_response();
    }
    next.run(request).await
}

/// The host name of a `Host` header value (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn host_allowed(host: &str, extra: &[String]) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || extra
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
}

/// Browsers send `Origin` with every `POST` and every cross-origin request.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => true,
        Some(Ok(origin)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        Some(Err(_)) => false,
    }
}

/// `GET /dev/info`: which model answers.
async fn info(State(dev): State<Arc<DevBackend>>) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({
            "model": dev.settings.model,
            "offline": dev.settings.offline,
            "approvalTools": dev.settings.approval_tools,
        })),
    )
        .into_response()
}

/// `GET /dev/store/capacity`: the capacity units the store consumed since the server started.
async fn store_capacity(State(dev): State<Arc<DevBackend>>) -> Response {
    match &dev.settings.store_capacity {
        Some(capacity) => (
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(capacity()),
        )
            .into_response(),
        None => ApiError::not_found("this store does not count capacity").into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    chat_id: String,
}

/// `POST /dev/sessions` `{chatId}`: what `chat.createStartSessionAction("chat")` does.
async fn create_session(
    State(dev): State<Arc<DevBackend>>,
    ApiJson(request): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    validate_chat_id(&request.chat_id)?;
    let chat_id = request.chat_id;
    let body = json!({
        "type": "chat.agent",
        "externalId": chat_id,
        "taskIdentifier": "chat",
        "triggerConfig": {
            "basePayload": {"messages": [], "trigger": "preload", "chatId": chat_id},
            "tags": [format!("chat:{chat_id}")],
        },
    });
    let (status, answer) = call_core(&dev, Method::POST, "/api/v1/sessions", Some(body)).await?;
    Ok(relayed(status, answer, |answer| {
        json!({
            "publicAccessToken": answer["publicAccessToken"],
            "chatId": chat_id,
            "model": dev.settings.model,
            "offline": dev.settings.offline,
            "isCached": answer["isCached"],
        })
    }))
}

/// `POST /dev/sessions/{chatId}/token`: what `auth.createPublicToken` does for one chat.
async fn refresh_token(
    State(dev): State<Arc<DevBackend>>,
    UrlPath(chat_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    validate_chat_id(&chat_id)?;
    let path = format!("/api/v1/sessions/{chat_id}/token");
    let (status, answer) = call_core(&dev, Method::POST, &path, None).await?;
    Ok(relayed(status, answer, |answer| {
        json!({
            "publicAccessToken": answer["publicAccessToken"],
            "expiresAt": answer["expiresAt"],
            "chatId": chat_id,
        })
    }))
}

/// Pages of the sessions API read for the chat list at most; past them the list is cut short
/// (`truncated`), the oldest chats left out.
const MAX_LIST_PAGES: usize = 10;
const LIST_PAGE_SIZE: usize = 100;

/// `GET /dev/sessions`: every open chat, as `sessions.list(...)` run by a web app's server with
/// the secret key would give them, ordered by last activity (the sessions API pages by creation,
/// an order that never changes under a cursor).
async fn list_chats(State(dev): State<Arc<DevBackend>>) -> Result<Response, ApiError> {
    let mut chats = Vec::new();
    let mut after: Option<String> = None;
    let mut truncated = true;
    for _ in 0..MAX_LIST_PAGES {
        let size = LIST_PAGE_SIZE.to_string();
        let mut query = vec![
            ("page[size]", size.as_str()),
            ("filter[type]", "chat.agent"),
            ("filter[status]", "ACTIVE"),
        ];
        if let Some(cursor) = &after {
            query.push(("page[after]", cursor));
        }
        let query = serde_urlencoded::to_string(&query)
            .map_err(|e| ApiError::internal(format!("dev route: {e}")))?;
        let path = format!("/api/v1/sessions?{query}");
        let (status, answer) = call_core(&dev, Method::GET, &path, None).await?;
        if !status.is_success() {
            return Ok((status, axum::Json(answer)).into_response());
        }
        if let Some(page) = answer["data"].as_array() {
            chats.extend(page.iter().map(listed_chat));
        }
        match answer["pagination"]["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                truncated = false;
                break;
            }
        }
    }
    sort_by_last_activity(&mut chats);
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"chats": chats, "truncated": truncated})),
    )
        .into_response())
}

/// A listed session as the page's chat list shows it.
fn listed_chat(session: &Value) -> Value {
    json!({
        "chatId": session["externalId"],
        "title": session["title"],
        "lastActivityAt": session["lastActivityAt"],
        "createdAt": session["createdAt"],
    })
}

/// Last active first; the timestamps are ISO 8601 in UTC with milliseconds, so they sort as text.
fn sort_by_last_activity(chats: &mut [Value]) {
    let key = |chat: &Value| {
        (
            chat["lastActivityAt"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            chat["createdAt"].as_str().unwrap_or_default().to_owned(),
            chat["chatId"].as_str().unwrap_or_default().to_owned(),
        )
    };
    chats.sort_by_key(|chat| std::cmp::Reverse(key(chat)));
}

/// The longest title a person may give a chat, in characters.
const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
struct RenameRequest {
    title: Option<String>,
}

/// `PATCH /dev/sessions/{chatId}` `{title}`: `sessions.update(...)` with the chat's metadata and
/// the new `title` in it (the sessions API replaces `metadata` whole, so the rest is read first).
async fn rename_chat(
    State(dev): State<Arc<DevBackend>>,
    UrlPath(chat_id): UrlPath<String>,
    ApiJson(request): ApiJson<RenameRequest>,
) -> Result<Response, ApiError> {
    validate_chat_id(&chat_id)?;
    let title = request
        .title
        .map(|title| title.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|title| !title.is_empty());
    if title
        .as_ref()
        .is_some_and(|title| title.chars().count() > MAX_TITLE_CHARS)
    {
        return Err(ApiError::invalid(format!(
            "a title has at most {MAX_TITLE_CHARS} characters"
        )));
    }
    let path = format!("/api/v1/sessions/{chat_id}");
    let (status, session) = call_core(&dev, Method::GET, &path, None).await?;
    if !status.is_success() {
        return Ok((status, axum::Json(session)).into_response());
    }
    let mut metadata = match &session["metadata"] {
        Value::Object(fields) => fields.clone(),
        _ => serde_json::Map::new(),
    };
    match title {
        Some(title) => metadata.insert("title".to_owned(), Value::String(title)),
        None => metadata.remove("title"),
    };
    let body = json!({"metadata": metadata});
    let (status, updated) = call_core(&dev, Method::PATCH, &path, Some(body)).await?;
    Ok(relayed(status, updated, listed_chat))
}

/// `DELETE /dev/sessions/{chatId}`: erases the chat (a running turn is stopped first).
async fn delete_chat(
    State(dev): State<Arc<DevBackend>>,
    UrlPath(chat_id): UrlPath<String>,
) -> Result<Response, ApiError> {
    validate_chat_id(&chat_id)?;
    let path = format!("/api/v1/sessions/{chat_id}");
    let (status, answer) = call_core(&dev, Method::DELETE, &path, None).await?;
    Ok(relayed(
        status,
        answer,
        |answer| json!({"chatId": chat_id, "deleted": answer["deleted"]}),
    ))
}

/// The core's answer passed on: an error as the core gave it, a success (with the core's status:
/// 201 for a new chat, 202 for an erase still running) as `shape` makes it, never cached.
fn relayed(status: StatusCode, answer: Value, shape: impl FnOnce(&Value) -> Value) -> Response {
    if !status.is_success() {
        return (status, axum::Json(answer)).into_response();
    }
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(shape(&answer)),
    )
        .into_response()
}

/// `{method} {path}` on the core router with the secret key, as a server action would send it.
async fn call_core(
    dev: &DevBackend,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), ApiError> {
    let mut builder = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", dev.settings.secret_key),
        );
    let body = match body {
        Some(value) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Body::from(value.to_string())
        }
        None => Body::empty(),
    };
    let request = builder
        .body(body)
        .map_err(|e| ApiError::internal(format!("dev route: {e}")))?;
    let response = match dev.core.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(|e| ApiError::internal(format!("dev route: {e}")))?;
    let value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::internal(format!(
            "dev route: {path} answered {status} with no JSON: {e}"
        ))
    })?;
    Ok((status, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatfn::agent::Agent;
    use chatfn::auth::SecretKeys;
    use chatfn::http::{App, HttpSettings, Routes, router};
    use chatfn::model::offline::OfflineModel;
    use chatfn::store::memory::MemoryStore;
    use chatfn::turn::TurnRunner;

    /// The local router over an in-memory core, serving `web_dir`.
    fn local(web_dir: PathBuf) -> Router {
        let keys = SecretKeys::generate();
        let settings = DevSettings {
            secret_key: keys.signing_key().to_owned(),
            model: "offline".to_owned(),
            offline: true,
            approval_tools: vec!["roll_dice".to_owned()],
            extra_hosts: Vec::new(),
            store_capacity: None,
        };
        let agent = Agent::builder(Arc::new(OfflineModel::new())).build();
        let runner = TurnRunner::new(Arc::new(MemoryStore::new()), Arc::new(agent));
        let core = router(App::new(HttpSettings::new(keys), runner), Routes::All);
        local_router(core, settings, web_dir)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chatfn-web-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    async fn send(
        router: &Router,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut builder = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "127.0.0.1:8787");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_assets_win_and_other_paths_keep_the_json_404() {
        let dir = temp_dir("built");
        std::fs::create_dir_all(dir.join("assets")).expect("assets");
        std::fs::write(dir.join("index.html"), "<!doctype html><title>chat</title>")
            .expect("write");
        std::fs::write(dir.join("assets/app-1.js"), "console.log(1)").expect("write");
        let router = local(dir.clone());

        let (status, headers, body) = send(&router, Method::GET, "/?chat=c1", &[], None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("<title>chat</title>"), "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");

        let (status, headers, body) =
            send(&router, Method::GET, "/assets/app-1.js", &[], None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "console.log(1)");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .contains("javascript")
        );

        let (status, _, _) = send(&router, Method::GET, "/assets/missing.js", &[], None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, body) = send(&router, Method::GET, "/no/such/route", &[], None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let error: Value = serde_json::from_str(&body).expect("a JSON 404");
        assert_eq!(error["ok"], false);
        let (status, _, _) = send(&router, Method::GET, "/api/chat/c1/messages", &[], None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the core's routes still answer"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_missing_page_says_how_to_build_it() {
        let router = local(temp_dir("missing").join("dist"));
        let (status, _, body) = send(&router, Method::GET, "/", &[], None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("not built"), "{body}");
        assert!(body.contains("scripts/run.sh"), "{body}");
    }

    #[tokio::test]
    async fn the_dev_routes_hand_out_tokens_that_open_the_chat() {
        let router = local(temp_dir("dev"));
        let (status, _, body) = send(&router, Method::GET, "/dev/info", &[], None).await;
        assert_eq!(status, StatusCode::OK);
        let info: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            info,
            json!({"model": "offline", "offline": true, "approvalTools": ["roll_dice"]})
        );

        let origin = [("origin", "http://127.0.0.1:8787")];
        let create = Some(r#"{"chatId":"chat-dev"}"#);
        let (status, _, body) = send(&router, Method::POST, "/dev/sessions", &origin, create).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let created: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(created["chatId"], "chat-dev");
        assert_eq!(created["model"], "offline");
        assert_eq!(created["isCached"], false);
        let token = created["publicAccessToken"].as_str().expect("token");
        let (status, _, body) = send(&router, Method::POST, "/dev/sessions", &origin, create).await;
        assert_eq!(status, StatusCode::OK, "idempotent: {body}");

        let bearer = format!("Bearer {token}");
        let auth = [("authorization", bearer.as_str())];
        let (status, _, body) = send(
            &router,
            Method::GET,
            "/api/chat/chat-dev/messages",
            &auth,
            None,
        )
        .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, r#"{"messages":[]}"#)
        );

        let (status, _, body) = send(
            &router,
            Method::POST,
            "/dev/sessions/chat-dev/token",
            &origin,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let fresh: Value = serde_json::from_str(&body).expect("json");
        assert!(fresh["publicAccessToken"].is_string());
        let (status, _, _) = send(
            &router,
            Method::POST,
            "/dev/sessions/chat-none/token",
            &[],
            None,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "no token for a chat with no session"
        );
        let (status, _, _) = send(
            &router,
            Method::POST,
            "/dev/sessions",
            &[],
            Some(r#"{"chat":1}"#),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn the_dev_routes_list_rename_and_delete_chats() {
        let router = local(temp_dir("list"));
        let origin = [("origin", "http://127.0.0.1:8787")];
        for chat in ["chat-older", "chat-newer"] {
            let body = format!(r#"{{"chatId":"{chat}"}}"#);
            let (status, _, body) =
                send(&router, Method::POST, "/dev/sessions", &origin, Some(&body)).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            // Creation times in milliseconds: the second chat is the newer one.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let list = |router: Router| async move {
            let (status, headers, body) =
                send(&router, Method::GET, "/dev/sessions", &[], None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store");
            serde_json::from_str::<Value>(&body).expect("json")
        };
        let listed = list(router.clone()).await;
        assert_eq!(listed["truncated"], false);
        let ids: Vec<&str> = listed["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .map(|chat| chat["chatId"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, ["chat-newer", "chat-older"], "last active first");
        assert_eq!(listed["chats"][0]["title"], Value::Null);
        assert!(listed["chats"][0]["lastActivityAt"].is_string());

        let rename = Some(r#"{"title":"  Trip   to Lisbon "}"#);
        let (status, _, body) = send(
            &router,
            Method::PATCH,
            "/dev/sessions/chat-older",
            &origin,
            rename,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let renamed: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(renamed["title"], "Trip to Lisbon");
        assert_eq!(
            list(router.clone()).await["chats"][1]["title"],
            "Trip to Lisbon"
        );
        let long = format!(r#"{{"title":"{}"}}"#, "x".repeat(MAX_TITLE_CHARS + 1));
        let (status, _, _) = send(
            &router,
            Method::PATCH,
            "/dev/sessions/chat-older",
            &origin,
            Some(&long),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _, body) = send(
            &router,
            Method::PATCH,
            "/dev/sessions/chat-older",
            &origin,
            Some(r#"{"title":null}"#),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("json")["title"],
            Value::Null
        );
        let (status, _, _) = send(
            &router,
            Method::PATCH,
            "/dev/sessions/chat-none",
            &origin,
            rename,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        let (status, _, body) = send(
            &router,
            Method::DELETE,
            "/dev/sessions/chat-newer",
            &origin,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("json"),
            json!({"chatId": "chat-newer", "deleted": true})
        );
        let ids = list(router.clone()).await["chats"]
            .as_array()
            .expect("chats")
            .iter()
            .map(|chat| chat["chatId"].clone())
            .collect::<Vec<_>>();
        assert_eq!(ids, [json!("chat-older")]);
        let (status, _, body) = send(
            &router,
            Method::DELETE,
            "/dev/sessions/chat-newer",
            &origin,
            None,
        )
        .await;
        assert_eq!(
            (status, body.contains("false")),
            (StatusCode::OK, true),
            "{body}"
        );

        let other = [("origin", "https://evil.example")];
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let uri = if method == Method::GET {
                "/dev/sessions"
            } else {
                "/dev/sessions/chat-older"
            };
            let (status, _, _) = send(&router, method, uri, &other, rename).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
    }

    #[tokio::test]
    async fn the_dev_routes_refuse_other_origins_and_host_names() {
        let router = local(temp_dir("refuse"));
        let create = Some(r#"{"chatId":"chat-x"}"#);
        let other = [("origin", "https://evil.example")];
        let (status, _, _) = send(&router, Method::POST, "/dev/sessions", &other, create).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let rebound = [("host", "evil.example:8787")];
        let request = axum::http::Request::builder()
            .method(Method::GET)
            .uri("/dev/info")
            .header(rebound[0].0, rebound[0].1)
            .body(Body::empty())
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn host_names_are_read_from_host_headers() {
        assert_eq!(host_name("localhost:8787"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8787"), "::1");
        assert!(host_allowed("localhost:8787", &[]));
        assert!(host_allowed("LOCALHOST", &[]));
        assert!(host_allowed("127.0.0.2:1", &[]));
        assert!(host_allowed("[::1]:8787", &[]));
        assert!(!host_allowed("evil.example:8787", &[]));
        assert!(!host_allowed("", &[]));
        assert!(host_allowed("devbox:8787", &["devbox".to_owned()]));
    }

    #[test]
    fn only_the_same_origin_may_call() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers, "127.0.0.1:8787"));
        headers.insert(header::ORIGIN, "http://127.0.0.1:8787".parse().unwrap());
        assert!(same_origin(&headers, "127.0.0.1:8787"));
        assert!(!same_origin(&headers, "127.0.0.1:9999"));
        headers.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&headers, "127.0.0.1:8787"));
    }
}
