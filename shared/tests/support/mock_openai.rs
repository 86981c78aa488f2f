//! A scripted OpenAI-compatible chat completions server for tests.
//!
//! [`MockOpenAi`] listens on `127.0.0.1` (a free port) and answers `POST /v1/chat/completions`
//! with [`ScriptedReply`]s: streamed chunks with pauses between them, HTTP errors, broken
//! connections. Replies are served in order, one per request ([`MockOpenAi::start`]), or chosen
//! by a rule over the request body ([`MockOpenAi::start_with_rule`]) to script multi-step tool
//! conversations. Every request is recorded for assertions.
//!
//! ```ignore
//! let mock = MockOpenAi::start(vec![
//!     ScriptedReply::stream().text("Hel").sleep_ms(100).text("lo").finish("stop", Usage::default()),
//!     ScriptedReply::error(429, "Rate limit reached"),
//! ])
//! .await;
//! let model = OpenAiCompatible::new(mock.base_url(), None, "mock-model")?;
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatfn::model::Usage;
use serde_json::{Value, json};

/// The chat completions path under [`MockOpenAi::base_url`].
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";

/// A running mock server; it stops when dropped.
pub struct MockOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// The caller's end of the connection: one address for two requests means the client reused
    /// the connection.
    pub client: SocketAddr,
}

type Rule = Box<dyn Fn(&Value) -> ScriptedReply + Send + Sync>;

enum Replies {
    InOrder(Mutex<VecDeque<ScriptedReply>>),
    ByRule(Rule),
}

struct Shared {
    replies: Replies,
    received: Mutex<Vec<ReceivedRequest>>,
}

impl MockOpenAi {
    /// Serves `replies` in order, one per chat completions request. A request beyond the script
    /// gets a 500 saying so.
    pub async fn start(replies: Vec<ScriptedReply>) -> Self {
        Self::serve(Replies::InOrder(Mutex::new(replies.into()))).await
    }

    /// Answers each request with the reply `rule` picks from its JSON body.
    pub async fn start_with_rule(
        rule: impl Fn(&Value) -> ScriptedReply + Send + Sync + 'static,
    ) -> Self {
        Self::serve(Replies::ByRule(Box::new(rule))).await
    }

    async fn serve(replies: Replies) -> Self {
        let shared = Arc::new(Shared {
            replies,
            received: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock server");
        let addr = listener.local_addr().expect("mock server address");
        let app = Router::new()
            .route(CHAT_COMPLETIONS_PATH, post(chat_completions))
            .fallback(not_found)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("mock server failed");
        });
        MockOpenAi {
            addr,
            shared,
            server,
        }
    }

    /// The API root to give a client, like `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JSON bodies of the requests received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .map(|request| request.body)
            .collect()
    }

    /// Everything recorded about the requests received so far, in order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.shared.received.lock().unwrap().clone()
    }
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let number = {
        let mut received = shared.received.lock().unwrap();
        received.push(ReceivedRequest {
            path: uri.path().to_owned(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            body: body.clone(),
            client,
        });
        received.len()
    };
    let reply = match &shared.replies {
        Replies::InOrder(replies) => replies.lock().unwrap().pop_front(),
        Replies::ByRule(rule) => Some(rule(&body)),
    };
    let Some(reply) = reply else {
        return ScriptedReply::error(
            500,
            &format!("mock OpenAI: no scripted reply left for request {number}"),
        )
        .into_response(&body);
    };
    reply.into_response(&body)
}

async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("mock OpenAI: no route for {uri}"),
    )
        .into_response()
}

/// One reply: a streamed completion built step by step, or a whole HTTP response.
#[derive(Debug, Clone)]
pub struct ScriptedReply {
    kind: ReplyKind,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    Stream(Vec<Step>),
    Whole {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// One step of a streamed reply.
#[derive(Debug, Clone)]
pub enum Step {
    /// A `chat.completion.chunk` whose only choice has this `delta`.
    Delta(Value),
    /// A `chat.completion.chunk` whose only choice finishes with this reason.
    FinishReason(String),
    /// A chunk with no choices carrying this usage (as `stream_options.include_usage` asks).
    Usage(Usage),
    /// Any JSON object as one SSE event (`data: {json}`), e.g. an `{"error": …}` object.
    Event(Value),
    /// `data: [DONE]`.
    Done,
    /// Bytes sent as they are: comments, broken JSON, odd line endings.
    Raw(Bytes),
    /// Waits before the next step (after flushing what came before).
    Sleep(Duration),
    /// Breaks the connection without ending the response, as a crashed server would.
    DropConnection,
}

impl ScriptedReply {
    /// An empty streamed (`200 text/event-stream`) reply; add steps with the builder methods.
    /// Without a `done` or `drop_connection` step the response just ends after the last step.
    pub fn stream() -> Self {
        ScriptedReply {
            kind: ReplyKind::Stream(Vec::new()),
        }
    }

    /// A whole streamed reply saying `text`, finishing with `stop`.
    pub fn say(text: &str) -> Self {
        Self::stream().text(text).finish("stop", Usage::default())
    }

    /// A whole streamed reply calling one tool, finishing with `tool_calls`.
    pub fn call_tool(id: &str, name: &str, arguments: &Value) -> Self {
        Self::stream()
            .tool_call(0, id, name, &arguments.to_string())
            .finish("tool_calls", Usage::default())
    }

    /// An HTTP error with an OpenAI-style body: `{"error": {"message", "type", "code"}}`.
    pub fn error(status: u16, message: &str) -> Self {
        let body = json!({
            "error": { "message": message, "type": "mock_error", "param": null, "code": null },
        });
        Self::http(status, "application/json", &body.to_string())
    }

    /// Any whole HTTP response.
    pub fn http(status: u16, content_type: &str, body: &str) -> Self {
        ScriptedReply {
            kind: ReplyKind::Whole {
                status,
                content_type: content_type.to_owned(),
                body: body.to_owned(),
            },
        }
    }

    /// Adds a step to a streamed reply.
    pub fn step(mut self, step: Step) -> Self {
        match &mut self.kind {
            ReplyKind::Stream(steps) => steps.push(step),
            ReplyKind::Whole { .. } => panic!("steps only apply to ScriptedReply::stream()"),
        }
        self
    }

    pub fn text(self, delta: &str) -> Self {
        self.step(Step::Delta(json!({ "content": delta })))
    }

    /// A reasoning delta in `reasoning_content` (DeepSeek, vLLM, Ollama).
    pub fn reasoning(self, delta: &str) -> Self {
        self.step(Step::Delta(json!({ "reasoning_content": delta })))
    }

    /// The first fragment of a tool call: its id and name, no arguments yet.
    pub fn tool_call_start(self, index: u64, id: &str, name: &str) -> Self {
        self.step(Step::Delta(json!({ "tool_calls": [{
            "index": index,
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": "" },
        }] })))
    }

    /// A later fragment of the tool call at `index`: more argument text.
    pub fn tool_call_arguments(self, index: u64, fragment: &str) -> Self {
        self.step(Step::Delta(json!({ "tool_calls": [{
            "index": index,
            "function": { "arguments": fragment },
        }] })))
    }

    /// A whole tool call in one fragment (as Ollama sends them).
    pub fn tool_call(self, index: u64, id: &str, name: &str, arguments: &str) -> Self {
        self.step(Step::Delta(json!({ "tool_calls": [{
            "index": index,
            "id": id,
            "type": "function",
            "function": { "name": name, "arguments": arguments },
        }] })))
    }

    pub fn sleep_ms(self, ms: u64) -> Self {
        self.step(Step::Sleep(Duration::from_millis(ms)))
    }

    pub fn finish_reason(self, reason: &str) -> Self {
        self.step(Step::FinishReason(reason.to_owned()))
    }

    pub fn usage(self, usage: Usage) -> Self {
        self.step(Step::Usage(usage))
    }

    pub fn done(self) -> Self {
        self.step(Step::Done)
    }

    /// The end of a reply as OpenAI sends it: the finish reason, the usage chunk, `[DONE]`.
    pub fn finish(self, reason: &str, usage: Usage) -> Self {
        self.finish_reason(reason).usage(usage).done()
    }

    /// An `{"error": {"message": …}}` object inside the stream.
    pub fn error_event(self, message: &str) -> Self {
        self.step(Step::Event(
            json!({ "error": { "message": message, "type": "server_error" } }),
        ))
    }

    pub fn raw(self, bytes: impl Into<Bytes>) -> Self {
        self.step(Step::Raw(bytes.into()))
    }

    pub fn drop_connection(self) -> Self {
        self.step(Step::DropConnection)
    }

    fn into_response(self, request: &Value) -> Response {
        let steps = match self.kind {
            ReplyKind::Whole {
                status,
                content_type,
                body,
            } => {
                return Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(body))
                    .expect("a valid mock response");
            }
            ReplyKind::Stream(steps) => steps,
        };
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock")
            .to_owned();
        let frames = futures::stream::unfold(steps.into_iter(), move |mut steps| {
            let model = model.clone();
            async move {
                loop {
                    match steps.next()? {
                        Step::Sleep(duration) => tokio::time::sleep(duration).await,
                        Step::DropConnection => {
                            // An error from the body makes hyper abort the connection before
                            // the final chunk, discarding what it has not written yet. The
                            // pause lets it flush the earlier steps, which a real server that
                            // crashed would have sent.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            let error = std::io::Error::other("mock OpenAI dropped the connection");
                            return Some((Err(error), Vec::new().into_iter()));
                        }
                        step => return Some((Ok(render(&step, &model)), steps)),
                    }
                }
            }
        });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(frames))
            .expect("a valid mock response")
    }
}

fn render(step: &Step, model: &str) -> Bytes {
    let chunk = |choices: Value, usage: Value| {
        json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": choices,
            "usage": usage,
        })
    };
    let event = match step {
        Step::Delta(delta) => chunk(
            json!([{ "index": 0, "delta": delta, "finish_reason": null }]),
            Value::Null,
        ),
        Step::FinishReason(reason) => chunk(
            json!([{ "index": 0, "delta": {}, "finish_reason": reason }]),
            Value::Null,
        ),
        Step::Usage(usage) => chunk(json!([]), usage_json(usage)),
        Step::Event(value) => value.clone(),
        Step::Done => return Bytes::from_static(b"data: [DONE]\n\n"),
        Step::Raw(bytes) => return bytes.clone(),
        Step::Sleep(_) | Step::DropConnection => unreachable!("handled by the stream"),
    };
    Bytes::from(format!("data: {event}\n\n"))
}

/// `Usage` as OpenAI reports it.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": { "cached_tokens": usage.cached_input_tokens },
        "completion_tokens_details": { "reasoning_tokens": usage.reasoning_tokens },
    })
}

// Helpers for rules over a request body.

/// The role of the last message of a chat completions request.
pub fn last_role(request: &Value) -> Option<&str> {
    request["messages"].as_array()?.last()?["role"].as_str()
}

/// The text of the last user message (string content, or its text parts joined).
pub fn last_user_text(request: &Value) -> Option<String> {
    let message = request["messages"]
        .as_array()?
        .iter()
        .rev()
        .find(|message| message["role"] == "user")?;
    match &message["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

/// The `(tool_call_id, content)` of every tool message in the request, in order.
pub fn tool_results(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|message| message["role"] == "tool")
        .map(|message| {
            (
                message["tool_call_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                message["content"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
