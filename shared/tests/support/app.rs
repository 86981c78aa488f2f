//! A chatfn app on a loopback port, and a small client for its UI message streams.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatfn::agent::{Agent, configured_agent};
use chatfn::auth::{SecretKeys, SessionToken};
use chatfn::config::Config;
use chatfn::http::{App, HttpSettings, Routes, router};
use chatfn::model::Model;
use chatfn::store::Store;
use chatfn::store::memory::MemoryStore;
use chatfn::turn::TurnRunner;
use futures::StreamExt;
use serde_json::{Value, json};

pub const SECRET: &str = "sk_test_secret";

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub client: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub fn stock_agent(model: Arc<dyn Model>) -> Agent {
    let config = Config::from_lookup(|_| None).expect("default config");
    configured_agent(&config, model)
}

/// The stock agent with `roll_dice` behind a person's approval.
pub fn approval_agent(model: Arc<dyn Model>) -> Agent {
    let config = Config::from_lookup(|name| {
        (name == "CHATFN_APPROVAL_TOOLS").then(|| "roll_dice".to_owned())
    })
    .expect("config");
    configured_agent(&config, model)
}

impl TestApp {
    pub async fn start(agent: Agent) -> TestApp {
        Self::start_with(agent, Arc::new(MemoryStore::new()), |settings| settings).await
    }

    pub async fn start_with(
        agent: Agent,
        store: Arc<dyn Store>,
        settings: impl FnOnce(HttpSettings) -> HttpSettings,
    ) -> TestApp {
        let keys = SecretKeys::parse(SECRET).expect("key");
        let runner = TurnRunner::new(store.clone(), Arc::new(agent));
        let app = App::new(settings(HttpSettings::new(keys)), runner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router(app, Routes::All)).await;
        });
        TestApp {
            base: format!("http://{address}"),
            store,
            client: reqwest::Client::new(),
            server,
        }
    }

    /// Creates the chat's session; returns its token.
    pub async fn session(&self, chat_id: &str) -> String {
        let response = self
            .client
            .post(format!("{}/api/v1/sessions", self.base))
            .bearer_auth(SECRET)
            .json(&json!({"type": "chat.agent", "externalId": chat_id, "taskIdentifier": "chat"}))
            .send()
            .await
            .expect("session create");
        assert!(response.status().is_success(), "{}", response.status());
        let body: Value = response.json().await.expect("json");
        body["publicAccessToken"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub fn token_for(&self, chat_id: &str, ttl: u64) -> String {
        let keys = SecretKeys::parse(SECRET).expect("key");
        let now = chatfn::clock::now_ms() / 1000;
        SessionToken::mint(&keys, "test", chat_id, now, ttl)
    }

    pub async fn send(&self, token: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/chat", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    pub async fn messages(&self, token: &str, chat_id: &str) -> Vec<Value> {
        let body: Value = self
            .client
            .get(format!("{}/api/chat/{chat_id}/messages", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("messages")
            .json()
            .await
            .expect("json");
        body["messages"].as_array().cloned().unwrap_or_default()
    }
}

pub fn user_message(id: &str, text: &str) -> Value {
    json!({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]})
}

pub fn submit(chat_id: &str, messages: Vec<Value>) -> Value {
    json!({"id": chat_id, "messages": messages, "trigger": "submit-message"})
}

/// One SSE event as the client received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub data: String,
    pub at: Instant,
}

impl Received {
    pub fn chunk(&self) -> Value {
        serde_json::from_str(&self.data).expect("chunk JSON")
    }

    pub fn kind(&self) -> String {
        self.chunk()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// Reads a UI message stream to its end (or until `limit` events), timestamping each event.
pub async fn read_events(response: reqwest::Response, limit: Option<usize>) -> Vec<Received> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(Ok(bytes))) = tokio::time::timeout_at(deadline, body.next()).await {
        buffer.push_str(std::str::from_utf8(&bytes).expect("utf-8"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    events.push(Received {
                        data: data.to_owned(),
                        at: Instant::now(),
                    });
                }
            }
            if limit.is_some_and(|limit| events.len() >= limit) {
                return events;
            }
        }
    }
    events
}

pub fn kinds(events: &[Received]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            if e.data == "[DONE]" {
                "[DONE]".to_owned()
            } else {
                e.kind()
            }
        })
        .collect()
}
