//! The client of one MCP server: the thin IO around the sans-IO protocol modules. Every host
//! runs it: natively on tokio, and in the Worker on workerd's fetch (reqwest compiles to it), so
//! it spawns nothing and waits only through [`crate::runtime`].
//!
//! One client per server per process. It opens a session on first use and keeps it (a new one
//! when the server forgets it), lists the tools when a turn needs them and the kept list is
//! old, and bounds every operation by the server's timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{Either, select};
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::answer::{AnswerReader, BodyKind};
use super::cache::{CachePolicy, Lookup, ToolListCache};
use super::error::{MAX_MESSAGE_CHARS, McpError, truncate};
use super::jsonrpc::{self, METHOD_NOT_FOUND, RpcError};
use super::schema::{CallToolResult, McpTool, call_params, initialize_params};
use super::server::{McpConfigError, McpServer};
use super::session::{POST_HEADERS, SESSION_ID_HEADER, Session, ToolPages};
use crate::model::transport::{ProviderClient, error_chain};

/// The most of an HTTP error body read for its message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// How long telling the server a call was given up may take: the turn is already moving on.
const CANCEL_NOTICE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most times one answer's event stream is resumed: a server that keeps closing it
/// without answering is not waited on until the timeout.
const MAX_RESUMPTIONS: usize = 10;

/// The longest wait before resuming a stream that a server's `retry:` is allowed to ask for.
const MAX_RESUME_WAIT: Duration = Duration::from_secs(5);

/// A client of one MCP server over Streamable HTTP.
pub struct McpClient {
    server: McpServer,
    http: ProviderClient,
    next_id: AtomicU64,
    /// The open session; `None` before the first use and after the server forgot it. Locked
    /// while one is opened, so concurrent first uses open one, not several.
    session: Mutex<Option<Arc<Session>>>,
    /// Locked while the tools are listed, so concurrent turns share one listing.
    tools: Mutex<ToolListCache>,
}

impl McpClient {
    /// A client on chatfn's own HTTP client.
    pub fn new(server: McpServer) -> Result<Self, McpConfigError> {
        Self::with_http(server, ProviderClient::new())
    }

    /// A client on the caller's HTTP client (its TLS, proxy and pool settings).
    pub fn with_http_client(
        server: McpServer,
        client: reqwest::Client,
    ) -> Result<Self, McpConfigError> {
        Self::with_http(server, ProviderClient::from(client))
    }

    fn with_http(server: McpServer, http: ProviderClient) -> Result<Self, McpConfigError> {
        server.validate()?;
        Ok(McpClient {
            server,
            http,
            next_id: AtomicU64::new(1),
            session: Mutex::new(None),
            tools: Mutex::new(ToolListCache::new(CachePolicy::default())),
        })
    }

    /// How long tool lists are kept, and how a failing server is treated.
    pub fn cache_policy(self, policy: CachePolicy) -> Self {
        McpClient {
            tools: Mutex::new(ToolListCache::new(policy)),
            ..self
        }
    }

    /// The server this client talks to, as configured.
    pub fn server(&self) -> &McpServer {
        &self.server
    }

    /// The tools a turn may offer the model: the kept list while it is fresh, else listed
    /// now. A server that cannot list them (down, slow, answering garbage) contributes none; its
    /// failure is logged once per interval and it is left alone for a while.
    pub async fn tools(&self) -> Arc<[McpTool]> {
        let mut cache = self.tools.lock().await;
        match cache.lookup(crate::clock::now_ms()) {
            Lookup::Listed(tools) => return tools,
            Lookup::Skip => return Arc::from(Vec::new()),
            Lookup::List => {}
        }
        match self.list_tools().await {
            Ok(tools) => {
                let tools: Arc<[McpTool]> = Arc::from(tools);
                if cache.listed(crate::clock::now_ms(), tools.clone()) {
                    tracing::info!(
                        mcp_server = %self.server.name(),
                        tools = tools.len(),
                        "the MCP server answers again; its tools are back"
                    );
                }
                tools
            }
            Err(error) => {
                if cache.failed(crate::clock::now_ms()) {
                    tracing::warn!(
                        mcp_server = %self.server.name(),
                        url = %self.server.redacted_url(),
                        %error,
                        "turns go on without this MCP server's tools until it answers"
                    );
                }
                Arc::from(Vec::new())
            }
        }
    }

    /// Lists the server's tools now, every page, keeping those the configuration allows.
    pub async fn list_tools(&self) -> Result<Vec<McpTool>, McpError> {
        self.bounded(async {
            let mut pages = ToolPages::new();
            let mut params = None;
            loop {
                let id = self.next_id();
                let result = self.request(id, "tools/list", params).await?;
                match pages.push(result)? {
                    Some(next) => params = Some(next),
                    None => break,
                }
            }
            let mut tools = pages.into_tools();
            tools.retain(|tool| self.server.allows(&tool.name));
            Ok(tools)
        })
        .await
    }

    /// Calls the server's tool `name`. A result with `is_error` is the tool's own failure;
    /// `Err` is a failed call (unreachable, timed out, refused).
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: Value,
    ) -> Result<CallToolResult, McpError> {
        self.call_tool_until(name, arguments, &CancellationToken::new())
            .await
    }

    /// [`McpClient::call_tool`], given up when `stop` fires (the turn was stopped). The server
    /// is told a call was given up, on a stop or a timeout, so it can stop working on it.
    pub async fn call_tool_until(
        &self,
        name: &str,
        arguments: Value,
        stop: &CancellationToken,
    ) -> Result<CallToolResult, McpError> {
        if !self.server.allows(name) {
            return Err(McpError::NotAllowed(name.to_owned()));
        }
        let id = self.next_id();
        let params = call_params(name, arguments);
        // In a block, so the call's request is dropped (its connection closed, any lock it
        // held released) before the server is told.
        let (error, reason) = {
            let call = std::pin::pin!(crate::runtime::timeout(
                self.server.timeout(),
                self.request(id, "tools/call", Some(params)),
            ));
            let stopped = std::pin::pin!(stop.cancelled());
            match select(call, stopped).await {
                Either::Left((Ok(result), _)) => return CallToolResult::parse(result?),
                Either::Left((Err(_), _)) => {
                    (McpError::Timeout(self.server.timeout()), "timed out")
                }
                Either::Right(((), _)) => (McpError::Cancelled, "the chat turn was stopped"),
            }
        };
        self.tell_cancelled(id, reason).await;
        Err(error)
    }

    /// `operation`, or a timeout error once the server's timeout has passed.
    async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, McpError>>,
    ) -> Result<T, McpError> {
        let timeout = self.server.timeout();
        crate::runtime::timeout(timeout, operation)
            .await
            .map_err(|_| McpError::Timeout(timeout))?
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request in the open session (opening one first if needed) and reads its result.
    /// A session the server forgot is replaced once and the request sent again.
    async fn request(
        &self,
        id: u64,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, McpError> {
        let session = self.session().await?;
        let body = jsonrpc::request(id, method, params);
        match self.exchange(Some(&session), id, body.clone()).await {
            Err(McpError::SessionExpired) => {
                self.forget(&session).await;
                let session = self.session().await?;
                self.exchange(Some(&session), id, body).await
            }
            // A server that restarted may answer an unknown session with another status than
            // 404 (the reference server says 400): the next request opens a new one.
            Err(error @ (McpError::Transport(_) | McpError::Status { .. })) => {
                self.forget(&session).await;
                Err(error)
            }
            answered => answered,
        }
    }

    async fn session(&self) -> Result<Arc<Session>, McpError> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let session = Arc::new(self.open_session().await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    /// Drops `session` unless another caller has replaced it already.
    async fn forget(&self, session: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|open| Arc::ptr_eq(open, session)) {
            *slot = None;
        }
    }

    /// The handshake: `initialize`, then `notifications/initialized` in the new session.
    async fn open_session(&self) -> Result<Session, McpError> {
        let id = self.next_id();
        let body = jsonrpc::request(id, "initialize", Some(initialize_params()));
        let answer = self.post(None, body).await?;
        let session_id = answer
            .headers
            .get(SESSION_ID_HEADER)
            .map(|value| value.as_bytes().to_vec());
        let result = self.read_answer(None, id, answer).await?;
        let session = Session::open(session_id.as_deref(), result)?;
        let initialized = jsonrpc::notification("notifications/initialized", None);
        self.post(Some(&session), initialized).await?;
        Ok(session)
    }

    /// Tells the server the request `id` was given up, if a session is open; failures are
    /// ignored (the server may be the reason it was given up).
    async fn tell_cancelled(&self, id: u64, reason: &str) {
        let Some(session) = self.session.try_lock().ok().and_then(|slot| slot.clone()) else {
            return;
        };
        let notice = jsonrpc::notification(
            "notifications/cancelled",
            Some(json!({"requestId": id, "reason": reason})),
        );
        let _ =
            crate::runtime::timeout(CANCEL_NOTICE_TIMEOUT, self.post(Some(&session), notice)).await;
    }

    /// Posts a request and reads its result.
    async fn exchange(
        &self,
        session: Option<&Session>,
        id: u64,
        body: Vec<u8>,
    ) -> Result<Value, McpError> {
        let answer = self.post(session, body).await?;
        self.read_answer(session, id, answer).await
    }

    /// Reads the result of request `id` from its answer, answering the server's own requests
    /// met on the way.
    async fn read_answer(
        &self,
        session: Option<&Session>,
        id: u64,
        answer: HttpAnswer,
    ) -> Result<Value, McpError> {
        if answer.status == StatusCode::ACCEPTED {
            return Err(McpError::Protocol(
                "the request was accepted but not answered".into(),
            ));
        }
        let content_type = answer
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        let mut reader = AnswerReader::new(id, BodyKind::of(content_type)?);
        let mut body = answer.body;
        let mut resumptions = 0;
        loop {
            let (received, ended) = match body.next().await {
                Some(Ok(bytes)) => (reader.push(&bytes)?, false),
                Some(Err(error)) => {
                    return Err(McpError::Transport(format!(
                        "the answer broke off: {}",
                        error_chain(&error.without_url())
                    )));
                }
                None => (reader.finish()?, true),
            };
            for (request_id, method) in received.server_requests {
                self.answer_server_request(session, &request_id, &method)
                    .await;
            }
            if let Some(result) = received.answer {
                return Ok(result);
            }
            if !ended {
                continue;
            }
            // The stream ended unanswered and can be resumed (else `finish` failed).
            let last_event_id = reader.resume_from().unwrap_or_default().to_owned();
            resumptions += 1;
            if resumptions > MAX_RESUMPTIONS {
                return Err(McpError::Protocol(format!(
                    "the server closed the answer's stream {MAX_RESUMPTIONS} times without \
                     answering"
                )));
            }
            if let Some(wait) = reader.retry_after() {
                crate::runtime::sleep(wait.min(MAX_RESUME_WAIT)).await;
            }
            body = self.resume_stream(session, &last_event_id).await?.body;
            reader.resume();
        }
    }

    /// GETs the rest of an event stream, from after the event `last_event_id`.
    async fn resume_stream(
        &self,
        session: Option<&Session>,
        last_event_id: &str,
    ) -> Result<HttpAnswer, McpError> {
        let (client, _) = self
            .http
            .post(self.server.url())
            .map_err(|error| McpError::Transport(error.to_string()))?
            .build_split();
        let request = client
            .get(self.server.url())
            .header("accept", "text/event-stream")
            .header("last-event-id", last_event_id);
        let answer = self.send(request, session).await?;
        let content_type = answer
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        if BodyKind::of(content_type)? != BodyKind::EventStream {
            return Err(McpError::Protocol(
                "a resumed stream must be an event stream".into(),
            ));
        }
        Ok(answer)
    }

    /// chatfn offers the server no capabilities, so `ping` is the only request it answers.
    async fn answer_server_request(&self, session: Option<&Session>, id: &Value, method: &str) {
        let result = match method {
            "ping" => Ok(json!({})),
            _ => Err(RpcError {
                code: METHOD_NOT_FOUND,
                message: format!("chatfn does not offer `{method}`"),
            }),
        };
        // An answer that does not arrive only costs the server its request.
        let _ = self.post(session, jsonrpc::response(id, result)).await;
    }

    /// POSTs one message to the server.
    async fn post(&self, session: Option<&Session>, body: Vec<u8>) -> Result<HttpAnswer, McpError> {
        let mut request = self
            .http
            .post(self.server.url())
            .map_err(|error| McpError::Transport(error.to_string()))?;
        for (name, value) in POST_HEADERS {
            request = request.header(name, value);
        }
        self.send(request.body(body), session).await
    }

    /// Sends a request with the configured headers and the session's. A non-2xx answer is an
    /// error here.
    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        session: Option<&Session>,
    ) -> Result<HttpAnswer, McpError> {
        for (name, value) in self.server.headers() {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(session) = session {
            for (name, value) in session.headers() {
                request = request.header(name, value);
            }
        }
        let answer = HttpAnswer::send(request).await?;
        if answer.status.is_success() {
            return Ok(answer);
        }
        // A 404 to a request in a session means the server no longer knows the session.
        let has_session_id = session.is_some_and(|session| session.id.is_some());
        if answer.status == StatusCode::NOT_FOUND && has_session_id {
            return Err(McpError::SessionExpired);
        }
        Err(answer.into_status_error().await)
    }
}

/// A server's HTTP answer: status, headers, and the body as it arrives. `Send` on every host
/// (on the Worker the body wraps JavaScript values).
struct HttpAnswer {
    status: StatusCode,
    headers: HeaderMap,
    body: Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>,
}

impl HttpAnswer {
    async fn send(request: reqwest::RequestBuilder) -> Result<Self, McpError> {
        crate::runtime::sendable(async move {
            let response = request.send().await?;
            Ok(HttpAnswer {
                status: response.status(),
                headers: response.headers().clone(),
                body: Box::pin(crate::runtime::sendable_stream(response.bytes_stream())),
            })
        })
        .await
        // reqwest's message names the URL, whose query may hold a key.
        .map_err(|error: reqwest::Error| McpError::Transport(error_chain(&error.without_url())))
    }

    /// The error a non-2xx answer is: its JSON-RPC error's message, its text, or its status.
    async fn into_status_error(mut self) -> McpError {
        let mut body = Vec::new();
        while let Some(Ok(chunk)) = self.body.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY_BYTES {
                break;
            }
        }
        let message = jsonrpc::error_message_of_body(&body)
            .unwrap_or_else(|| truncate(String::from_utf8_lossy(&body).trim(), MAX_MESSAGE_CHARS));
        let message = if message.is_empty() {
            self.status
                .canonical_reason()
                .unwrap_or("no details given")
                .to_owned()
        } else {
            message
        };
        McpError::Status {
            status: self.status.as_u16(),
            message,
        }
    }
}
