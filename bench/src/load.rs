//! The load driver: concurrent chats speaking the AI SDK wire (`POST /api/chat`, a UI message
//! stream back), each turn timed chunk by chunk.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::mock_model::MockModel;
use crate::server::{Server, Target};

/// What one turn looked like from the client.
#[derive(Debug, Clone, Default)]
pub struct TurnTiming {
    /// Request sent to first response byte.
    pub first_byte: Duration,
    /// Request sent to the first `text-delta` chunk.
    pub first_text: Duration,
    /// The mock's own time to first token in this turn, as measured by the mock (turns run one
    /// at a time only: concurrent turns' model calls cannot be told apart).
    pub model_first_token: Option<Duration>,
    /// Gaps between consecutive `text-delta` chunks.
    pub gaps: Vec<Duration>,
    pub text_deltas: usize,
    pub bytes: usize,
    /// Request sent to the body's end (or the end event, when the reader stops there).
    pub total: Duration,
    pub error: Option<String>,
}

/// A chat ready to send: its id and, for chatfn, its session token.
pub struct Chat {
    id: String,
    token: Option<String>,
}

pub async fn open_chat(
    client: &reqwest::Client,
    target: &Target,
    server: &Server,
) -> Result<Chat, String> {
    let id = format!("bench-{}", uuid::Uuid::new_v4().simple());
    if !target.needs_session() {
        return Ok(Chat { id, token: None });
    }
    let response = client
        .post(format!("{}/api/v1/sessions", server.base_url))
        .bearer_auth(&server.secret_key)
        .json(&json!({"type": "chat.agent", "externalId": id, "taskIdentifier": "bench"}))
        .send()
        .await
        .map_err(|error| format!("session start: {error}"))?;
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|error| format!("session start: {error}"))?;
    let token = body["publicAccessToken"]
        .as_str()
        .ok_or_else(|| format!("session start gave no token: {body}"))?
        .to_owned();
    Ok(Chat {
        id,
        token: Some(token),
    })
}

pub async fn send_turn(client: &reqwest::Client, server: &Server, chat: &Chat) -> TurnTiming {
    let body = json!({
        "id": chat.id,
        "messages": [{"id": uuid::Uuid::new_v4().to_string(), "role": "user", "parts": [{"type": "text", "text": "Tell me something."}]}],
        "trigger": "submit-message",
    });
    let mut request = client
        .post(format!("{}/api/chat", server.base_url))
        .json(&body);
    if let Some(token) = &chat.token {
        request = request.bearer_auth(token);
    }
    time_stream(request, "\"type\":\"text-delta\"", "\"type\":\"finish\"").await
}

/// One turn on the Trigger wire, as `TriggerChatTransport` sends it: the message appended to the
/// chat's input log (under a part id), then its `out` stream read from the log's start until the
/// turn-complete. Timed from the append, as its user waits from there.
pub async fn send_trigger_turn(
    client: &reqwest::Client,
    server: &Server,
    chat: &Chat,
) -> TurnTiming {
    let mut timing = TurnTiming::default();
    let input = json!({"kind": "message", "payload": {
        "message": {"id": uuid::Uuid::new_v4().to_string(), "role": "user", "parts": [{"type": "text", "text": "Tell me something."}]},
        "chatId": chat.id, "trigger": "submit-message",
    }});
    let base = format!("{}/realtime/v1/sessions/{}", server.base_url, chat.id);
    let token = chat.token.as_deref().unwrap_or_default();
    let sent = Instant::now();
    let appended = client
        .post(format!("{base}/in/append"))
        .bearer_auth(token)
        .header("x-part-id", uuid::Uuid::new_v4().to_string())
        .json(&input)
        .send()
        .await;
    match appended {
        Ok(response) if response.status().is_success() => {
            let _ = response.bytes().await;
        }
        Ok(response) => {
            timing.error = Some(format!("append: status {}", response.status()));
            return timing;
        }
        Err(error) => {
            timing.error = Some(format!("append: {error}"));
            return timing;
        }
    }
    let response = match client
        .get(format!("{base}/out"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("timeout-seconds", "10")
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            timing.error = Some(format!("out: status {}", response.status()));
            return timing;
        }
        Err(error) => {
            timing.error = Some(format!("out: {error}"));
            return timing;
        }
    };
    timing.first_byte = sent.elapsed();
    // The `out` stream stays open after the turn; its turn-complete ends the turn.
    time_events(
        response,
        sent,
        &mut timing,
        "text-delta",
        "turn-complete",
        true,
    )
    .await;
    timing
}

/// Sends `request` and reads its SSE response to the end, timing the events that hold
/// `text_marker`; the stream is whole once an event holds `end_marker`.
async fn time_stream(
    request: reqwest::RequestBuilder,
    text_marker: &str,
    end_marker: &str,
) -> TurnTiming {
    let mut timing = TurnTiming::default();
    let sent = Instant::now();
    let response = match request.send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            timing.error = Some(format!("status {}", response.status()));
            return timing;
        }
        Err(error) => {
            timing.error = Some(error.to_string());
            return timing;
        }
    };
    timing.first_byte = sent.elapsed();
    time_events(response, sent, &mut timing, text_marker, end_marker, false).await;
    timing
}

/// Reads an SSE body to its end (or, with `stop_at_end`, to the event holding `end_marker`),
/// timing its text events into `timing` (from `sent`).
async fn time_events(
    response: reqwest::Response,
    sent: Instant,
    timing: &mut TurnTiming,
    text_marker: &str,
    end_marker: &str,
    stop_at_end: bool,
) {
    let mut body = response.bytes_stream();
    let mut pending = Vec::new();
    let mut last_text: Option<Instant> = None;
    let mut finished = false;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                timing.error = Some(error.to_string());
                return;
            }
        };
        let now = Instant::now();
        timing.bytes += chunk.len();
        pending.extend_from_slice(&chunk);
        while let Some(end) = find_event_end(&pending) {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            if event.contains(text_marker) {
                timing.text_deltas += 1;
                match last_text {
                    None => timing.first_text = now - sent,
                    Some(previous) => timing.gaps.push(now - previous),
                }
                last_text = Some(now);
            } else if event.contains(end_marker) {
                finished = true;
            }
        }
        if finished && stop_at_end {
            timing.total = sent.elapsed();
            return;
        }
    }
    timing.total = sent.elapsed();
    if !finished {
        timing.error = Some(format!(
            "the stream ended without an event holding {end_marker}"
        ));
    }
}

fn find_event_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|pair| pair == b"\n\n")
}

/// Runs `concurrency` chats at once, one turn each, after opening them all.
pub async fn run_level(target: &Target, server: &Server, concurrency: usize) -> Vec<TurnTiming> {
    let client = client(concurrency);
    let (chats, failed) = open_chats(&client, target, server, concurrency).await;
    let mut timings = send_turns(&client, server, &chats).await;
    timings.extend(failed);
    timings
}

pub fn client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap_or_default()
}

/// Opens `count` chats; the ones that failed to open come back as failed turns.
pub async fn open_chats(
    client: &reqwest::Client,
    target: &Target,
    server: &Server,
    count: usize,
) -> (Vec<Chat>, Vec<TurnTiming>) {
    let opened = futures::stream::iter(0..count)
        .map(|_| open_chat(client, target, server))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let mut chats = Vec::new();
    let mut failed = Vec::new();
    for chat in opened {
        match chat {
            Ok(chat) => chats.push(chat),
            Err(error) => failed.push(TurnTiming {
                error: Some(error),
                ..TurnTiming::default()
            }),
        }
    }
    (chats, failed)
}

/// One turn in each chat, all at once.
pub async fn send_turns(
    client: &reqwest::Client,
    server: &Server,
    chats: &[Chat],
) -> Vec<TurnTiming> {
    futures::future::join_all(chats.iter().map(|chat| send_turn(client, server, chat))).await
}

/// Runs `turns` turns one after another (one chat each), for latency without contention. Each
/// turn goes on a connection already open, so no server's figure holds a TCP handshake: chatfn's
/// is opened by the chat's session start, the others' by a request to a route they do not have.
pub async fn run_sequential(
    target: &Target,
    server: &Server,
    mock: &MockModel,
    turns: usize,
) -> Vec<TurnTiming> {
    let mut timings = Vec::with_capacity(turns);
    for _ in 0..turns {
        let client = client(1);
        let (chats, mut turn) = open_chats(&client, target, server, 1).await;
        if !target.needs_session() {
            open_connection(&client, &format!("{}/bench-ready", server.base_url)).await;
        }
        mock.take_first_tokens();
        turn.extend(send_turns(&client, server, &chats).await);
        if let ([timing], [own]) = (turn.as_mut_slice(), mock.take_first_tokens().as_slice()) {
            timing.model_first_token = Some(*own);
        }
        timings.extend(turn);
    }
    timings
}

/// Opens `client`'s connection with a request to `url`, read to the end so the connection goes
/// back to the pool for the request that is timed next.
async fn open_connection(client: &reqwest::Client, url: &str) {
    if let Ok(response) = client.get(url).send().await {
        let _ = response.bytes().await;
    }
}

/// Runs `turns` calls to the mock model itself, one at a time, as a client with no server in
/// between would make them (the same HTTP client, a connection already open, the model's own
/// SSE read event by event). Their time to first token over the mock's own is the two hops
/// between a client and a model, which any client pays; what a server adds is measured over it.
pub async fn run_direct(mock: &MockModel, turns: usize) -> Vec<TurnTiming> {
    let body = json!({
        "model": "mock-model",
        "stream": true,
        "messages": [{"role": "user", "content": "Tell me something."}],
    });
    let mut timings = Vec::with_capacity(turns);
    for _ in 0..turns {
        let client = client(1);
        // The mock has no such route: the request only opens the connection.
        open_connection(&client, &format!("{}/models", mock.url)).await;
        mock.take_first_tokens();
        let request = client
            .post(format!("{}/chat/completions", mock.url))
            .json(&body);
        let mut timing = time_stream(request, "\"content\"", "data: [DONE]").await;
        if let [own] = mock.take_first_tokens().as_slice() {
            timing.model_first_token = Some(*own);
        }
        timings.push(timing);
    }
    timings
}
