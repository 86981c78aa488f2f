//! Testing an agent: a model that follows a script, and the agent served on a loopback port with
//! an in-memory store, spoken to over the AI SDK wire the way `useChat` speaks it. Enable with the
//! `testing` feature (in `dev-dependencies`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), chatfn::testing::TestError> {
//! use chatfn::agent::{Agent, FunctionTool};
//! use chatfn::testing::{ScriptedModel, TestServer, script};
//! use serde_json::json;
//!
//! // The model calls `add` first, then answers once it has the tool's result.
//! let model = ScriptedModel::new(|request| {
//!     if script::tool_results(request).is_empty() {
//!         script::call("call-1", "add", json!({"a": 2, "b": 3}))
//!     } else {
//!         script::say("It is 5.")
//!     }
//! });
//! let add = FunctionTool::new(
//!     "add",
//!     "Add two numbers.",
//!     json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}),
//!     |input, _context| async move {
//!         let sum = input["a"].as_f64().unwrap_or(0.0) + input["b"].as_f64().unwrap_or(0.0);
//!         Ok(json!({"sum": sum}))
//!     },
//! );
//! let agent = Agent::builder(model.clone())
//!     .system_prompt("You add numbers with the `add` tool.")
//!     .tool(add)
//!     .max_steps(3)
//!     .build();
//!
//! let server = TestServer::start(agent).await?;
//! let chat = server.chat("chat-1").await?;
//! let reply = chat.send_text("u1", "What is 2 + 3?").await?;
//! assert_eq!(reply.text(), "It is 5.");
//! assert!(reply.kinds().iter().any(|kind| kind == "tool-output-available"));
//! // Two model calls: the tool call, then the answer with the tool's result.
//! assert_eq!(model.requests().len(), 2);
//! # Ok(())
//! # }
//! ```

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::agent::Agent;
use crate::auth::SecretKeys;
use crate::http::{App, HttpSettings, Routes, router};
use crate::model::{Model, ModelError, ModelEvent, ModelRequest, ModelStream};
use crate::store::Store;
use crate::store::memory::MemoryStore;
use crate::turn::TurnRunner;
use crate::ui::{MessageFold, UIMessage, UIMessageChunk};

type Script = dyn Fn(&ModelRequest) -> Vec<ModelEvent> + Send + Sync;

/// A model whose every call is answered by a function of the request; it keeps the requests it
/// got, so a test can check what the model saw.
pub struct ScriptedModel {
    script: Box<Script>,
    requests: Mutex<Vec<ModelRequest>>,
}

impl ScriptedModel {
    /// A model that answers each call with `script(request)`; shared, so the test keeps a handle to
    /// read [`requests`](Self::requests) after the agent took it.
    pub fn new(
        script: impl Fn(&ModelRequest) -> Vec<ModelEvent> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(ScriptedModel {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
        })
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<ModelRequest> {
        self.requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Model for ScriptedModel {
    fn id(&self) -> String {
        "scripted:test".to_owned()
    }

    async fn stream(&self, request: ModelRequest) -> Result<ModelStream, ModelError> {
        let events = (self.script)(&request);
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
        Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
    }
}

/// Building blocks of scripts, and questions about the request a script answers.
pub mod script {
    use serde_json::Value;

    use crate::model::{
        FinishReason, ModelEvent, ModelMessage, ModelRequest, ToolContent, ToolResult, Usage,
    };

    /// Says `text` (word by word) and stops.
    pub fn say(text: &str) -> Vec<ModelEvent> {
        let mut events: Vec<ModelEvent> = text
            .split_inclusive(' ')
            .map(|word| ModelEvent::TextDelta(word.to_owned()))
            .collect();
        events.push(finish(FinishReason::Stop));
        events
    }

    /// Calls the tool `name` with `input` and stops for its result.
    pub fn call(id: &str, name: &str, input: Value) -> Vec<ModelEvent> {
        vec![
            ModelEvent::ToolCallStart {
                id: id.to_owned(),
                name: name.to_owned(),
            },
            ModelEvent::ToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                arguments: input.to_string(),
            },
            finish(FinishReason::ToolCalls),
        ]
    }

    fn finish(reason: FinishReason) -> ModelEvent {
        ModelEvent::Finish {
            reason,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Usage::default()
            },
        }
    }

    /// The results of the tool calls the request ends with (the last tool message).
    pub fn tool_results(request: &ModelRequest) -> Vec<&ToolResult> {
        match request.messages.last() {
            Some(ModelMessage::Tool { content }) => content
                .iter()
                .filter_map(|content| match content {
                    ToolContent::ToolResult(result) => Some(result),
                    ToolContent::ToolApprovalResponse { .. } => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The text of the last user message.
    pub fn last_user_text(request: &ModelRequest) -> Option<String> {
        request.last_user_text()
    }
}

/// A test failed to talk to the server.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// No loopback port could be bound.
    #[error("cannot serve on loopback: {0}")]
    Bind(#[from] std::io::Error),
    /// A request did not go through.
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered with an error status.
    #[error("the server answered {status}: {body}")]
    Status {
        /// The status.
        status: reqwest::StatusCode,
        /// The error body.
        body: String,
    },
    /// The stream held something that is not a UI message chunk.
    #[error("the server sent something that is not a UI message chunk: {0}")]
    Wire(String),
}

/// The secret key of a test server.
pub const TEST_SECRET_KEY: &str = "sk_test_chatfn_testing";

/// An agent served on a loopback port with every route, an in-memory store and a known secret
/// key. Stops when dropped.
pub struct TestServer {
    base: String,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Serves `agent` on `127.0.0.1` at a free port, with every route, an in-memory store and
    /// [`TEST_SECRET_KEY`].
    pub async fn start(agent: Agent) -> Result<TestServer, TestError> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let keys = SecretKeys::parse(TEST_SECRET_KEY)
            .ok_or_else(|| TestError::Wire("the test secret key does not parse".to_owned()))?;
        let runner = TurnRunner::new(store.clone(), Arc::new(agent));
        let app = App::new(HttpSettings::new(keys), runner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router(app, Routes::All)).await;
        });
        Ok(TestServer {
            base: format!("http://{address}"),
            store,
            client: reqwest::Client::new(),
            task,
        })
    }

    /// The server's base URL (`http://127.0.0.1:port`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The store the server keeps chats in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates a chat's session (as your backend would, with the secret key) and returns a client
    /// for it holding the session's token.
    pub async fn chat(&self, chat_id: &str) -> Result<TestChat<'_>, TestError> {
        let response = self
            .client
            .post(format!("{}/api/v1/sessions", self.base))
            .bearer_auth(TEST_SECRET_KEY)
            .json(&json!({"type": "chat.agent", "externalId": chat_id, "taskIdentifier": "chat"}))
            .send()
            .await?;
        let body = checked(response).await?.json::<Value>().await?;
        let token = body["publicAccessToken"]
            .as_str()
            .ok_or_else(|| TestError::Wire(format!("no token in {body}")))?
            .to_owned();
        Ok(TestChat {
            server: self,
            chat_id: chat_id.to_owned(),
            token,
            client_data: None,
        })
    }
}

/// One chat of a [`TestServer`], spoken to the way `useChat` with `DefaultChatTransport` does.
pub struct TestChat<'a> {
    server: &'a TestServer,
    chat_id: String,
    token: String,
    client_data: Option<Value>,
}

/// A reply as the client saw it: the chunks in order and the message they fold into.
#[derive(Debug, Clone)]
pub struct TestReply {
    /// Every chunk of the reply, in order.
    pub chunks: Vec<UIMessageChunk>,
    /// The message the chunks fold into.
    pub message: UIMessage,
}

impl TestReply {
    /// The reply's text parts, joined.
    pub fn text(&self) -> String {
        self.message.text()
    }

    /// The `type` of every chunk, in order.
    pub fn kinds(&self) -> Vec<String> {
        self.chunks
            .iter()
            .filter_map(|chunk| serde_json::to_value(chunk).ok())
            .map(|value| value["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl TestChat<'_> {
    /// Sends this client data (`metadata`) with every later message.
    pub fn with_client_data(mut self, data: Value) -> Self {
        self.client_data = Some(data);
        self
    }

    /// The chat's session token, as a browser would hold it.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Sends a user message saying `text`; returns the streamed reply.
    pub async fn send_text(&self, message_id: &str, text: &str) -> Result<TestReply, TestError> {
        self.send(UIMessage::user_text(message_id, text)).await
    }

    /// Sends a message (a new user message, or an assistant message answering a tool call or
    /// an approval) and reads the reply's stream to its end.
    pub async fn send(&self, message: UIMessage) -> Result<TestReply, TestError> {
        // A reply to an assistant message continues it, as `useChat` shows it.
        let continuing = match message.role {
            crate::ui::Role::Assistant => message.clone(),
            _ => UIMessage::new(String::new(), crate::ui::Role::Assistant),
        };
        let mut body =
            json!({"id": self.chat_id, "messages": [message], "trigger": "submit-message"});
        if let Some(data) = &self.client_data {
            body["metadata"] = data.clone();
        }
        let response = self
            .server
            .client
            .post(format!("{}/api/chat", self.server.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        read_reply(checked(response).await?, continuing).await
    }

    /// Stops the chat's running turn (on the server too); true when one was running.
    pub async fn stop(&self) -> Result<bool, TestError> {
        let response = self
            .server
            .client
            .post(format!(
                "{}/api/chat/{}/stop",
                self.server.base, self.chat_id
            ))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let body = checked(response).await?.json::<Value>().await?;
        Ok(body["stopped"].as_bool().unwrap_or(false))
    }

    /// The chat's history as the server keeps it.
    pub async fn messages(&self) -> Result<Vec<UIMessage>, TestError> {
        let response = self
            .server
            .client
            .get(format!(
                "{}/api/chat/{}/messages",
                self.server.base, self.chat_id
            ))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let body = checked(response).await?.json::<Value>().await?;
        serde_json::from_value(body["messages"].clone())
            .map_err(|error| TestError::Wire(error.to_string()))
    }

    /// Answers the approval request of the last assistant message the way
    /// `addToolApprovalResponse` does, and sends it; returns the continued reply.
    pub async fn answer_approval(&self, approved: bool) -> Result<TestReply, TestError> {
        let messages = self.messages().await?;
        let mut reply = messages
            .into_iter()
            .rev()
            .find(|m| m.role == crate::ui::Role::Assistant)
            .ok_or_else(|| TestError::Wire("no assistant message to answer".to_owned()))?;
        let mut value =
            serde_json::to_value(&reply).map_err(|error| TestError::Wire(error.to_string()))?;
        for part in value["parts"].as_array_mut().into_iter().flatten() {
            if part["state"] == "approval-requested" {
                part["state"] = json!("approval-responded");
                part["approval"]["approved"] = json!(approved);
            }
        }
        reply =
            serde_json::from_value(value).map_err(|error| TestError::Wire(error.to_string()))?;
        self.send(reply).await
    }
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, TestError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(TestError::Status { status, body })
}

async fn read_reply(
    response: reqwest::Response,
    continuing: UIMessage,
) -> Result<TestReply, TestError> {
    let mut chunks = Vec::new();
    let mut fold = MessageFold::continuing(continuing);
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(bytes) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&bytes?));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|line| line.strip_prefix("data: ")) {
                if data == "[DONE]" {
                    continue;
                }
                let chunk: UIMessageChunk = serde_json::from_str(data)
                    .map_err(|error| TestError::Wire(format!("{error}: {data}")))?;
                fold.apply(&chunk)
                    .map_err(|error| TestError::Wire(error.to_string()))?;
                chunks.push(chunk);
            }
        }
    }
    Ok(TestReply {
        chunks,
        message: fold.into_message(),
    })
}
