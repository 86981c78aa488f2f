//! The realtime routes of the Trigger.dev chat session wire (`/realtime/v1/sessions/{id}/...`):
//! what `TriggerChatTransport` and the SDK's server actions call to talk to a chat. Appends record
//! inputs; the `out` reader that finds an unanswered input runs its turn while streaming it, and
//! every other reader replays the log and follows. The session routes are in `sessions`.

use std::future::Future;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::App;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, parse_json, read_body};
use super::sessions::{
    authorized_session, authorized_session_beside, authorized_view, refreshed_token,
};
use crate::auth::Access;
use crate::clock::now_ms;
use crate::store::{OutputRecord, StoreError, TurnView};
use crate::trigger::{
    STREAM_VERSION, batch_event, parse_last_event_id, parse_timeout_seconds, ping_event,
};
use crate::turn::{
    ChatInput, ChatTrigger, FollowOn, FollowWatch, LiveTurn, LogFollower, TurnRunner,
};

/// The largest input record, as on Trigger.dev.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Records per batch event when replaying a backlog.
const BACKLOG_BATCH: usize = 100;
const PING_INTERVAL_MS: u64 = 5_000;

/// `POST /realtime/v1/sessions/{id}/in/append`: records one `ChatInputChunk`.
pub async fn append(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let headers = request.headers().clone();
    let runner = app.runner();
    // With a client's part id, the input log's end is read beside the session: the record's
    // write then follows at once.
    let claimed = headers.contains_key("x-part-id");
    let (session, claims, next_input) =
        authorized_session_beside(&app, &headers, &id, Access::Write, |chat_id| async move {
            match claimed {
                true => runner.next_input_seq(&chat_id).await,
                false => None,
            }
        })
        .await?;
    let chat_id = session.chat_id.clone();
    let headless = claims.is_none();
    if session.is_closed() {
        return Err(ApiError::session_closed(session.closed_reason.as_deref()));
    }
    if session.is_expired(now_ms()) {
        return Err(ApiError::session_closed(Some("expired")));
    }
    let body = read_body(request, &()).await?;
    if body.len() > MAX_RECORD_BYTES {
        return Err(ApiError::too_large(MAX_RECORD_BYTES));
    }
    let input: ChatInput = parse_json(&body)?;
    if let ChatInput::Message { payload } = &input
        && payload.chat_id != chat_id
    {
        return Err(ApiError::invalid(format!(
            "`payload.chatId` is `{}` but this is chat `{chat_id}`",
            payload.chat_id
        )));
    }
    let part_id = match headers.get("x-part-id").map(|v| v.to_str()) {
        None => None,
        Some(Ok(part)) if !part.is_empty() && part.len() <= 256 => Some(part),
        Some(_) => {
            return Err(ApiError::bad_request(
                "`X-Part-Id` must be 1 to 256 visible characters",
            ));
        }
    };
    // A message past a usage limit is refused before anything of it is recorded.
    if let ChatInput::Message { payload } = &input
        && matches!(
            payload.trigger,
            ChatTrigger::SubmitMessage | ChatTrigger::RegenerateMessage
        )
    {
        runner.admit(&session).await?;
    }
    let appended = runner
        .record_input_at(&chat_id, part_id, &input, next_input)
        .await?;
    match input {
        ChatInput::Stop { .. } => {
            if let Some(live) = runner.live_turns().get(&chat_id) {
                live.stop_signal().cancel();
            }
        }
        // A server-side caller has no reader to run the turn: run it in the background.
        ChatInput::Message { .. } if headless && !appended.duplicate => {
            if let Some((_, task)) = runner.claim_pending(&chat_id).await? {
                crate::runtime::spawn_detached(task);
            }
        }
        ChatInput::Message { .. } => {}
    }
    Ok(Json(json!({"ok": true, "seq": appended.seq})))
}

/// The read options of an `out` request.
struct ReadOptions {
    cursor: Option<u64>,
    timeout_ms: u64,
    peek_settled: bool,
}

impl ReadOptions {
    fn from_headers(headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        ReadOptions {
            cursor: parse_last_event_id(header("last-event-id")),
            timeout_ms: parse_timeout_seconds(header("timeout-seconds")) * 1000,
            peek_settled: header("x-peek-settled").is_some_and(|v| v.trim() == "1"),
        }
    }
}

/// `GET /realtime/v1/sessions/{id}/out`: the output log as `event: batch` SSE, from after the
/// client's cursor, running the next unanswered turn if nobody is.
pub async fn read(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let options = ReadOptions::from_headers(&headers);
    // A reader that may run the chat's turn reads the turn's view as it authorizes: its first
    // look is that view, and a waiting input's lease is taken from it at once.
    let (session, claims, view) = match options.peek_settled {
        true => {
            let (session, claims) = authorized_session(&app, &headers, &id, Access::Read).await?;
            (session, claims, None)
        }
        false => {
            let (session, claims, view) =
                authorized_view(&app, &headers, &id, Access::Read).await?;
            (session, claims, Some(view))
        }
    };
    let chat_id = session.chat_id.clone();
    let slot = app.readers().take(&chat_id)?;
    let runner = app.runner().clone();
    let settled = options.peek_settled && is_settled(&runner, &chat_id).await?;
    let (sender, receiver) = mpsc::channel::<Bytes>(64);
    let token = refreshed_token(&app, &chat_id, claims.as_ref());
    crate::runtime::spawn_detached(async move {
        produce(runner, chat_id, options, settled, view, token, sender).await;
        drop(slot);
    });
    let body =
        Body::from_stream(tokio_stream_from(receiver).map(Ok::<_, std::convert::Infallible>));
    let mut response = Response::new(body);
    let response_headers = response.headers_mut();
    response_headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    response_headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response_headers.insert("x-stream-version", HeaderValue::from_static(STREAM_VERSION));
    if settled {
        response_headers.insert("x-session-settled", HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn tokio_stream_from(
    mut receiver: mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Settled: nothing running, nothing waiting, and the log ends with a turn boundary.
async fn is_settled(runner: &TurnRunner, chat_id: &str) -> Result<bool, ApiError> {
    if runner.turn_running(chat_id).await? || runner.has_pending(chat_id).await? {
        return Ok(false);
    }
    let Some(last) = runner.store().last_output_seq(chat_id).await? else {
        return Ok(true);
    };
    let tail = runner
        .store()
        .output(chat_id, last.checked_sub(1), 1)
        .await?;
    Ok(tail.iter().all(|record| record.body.is_turn_complete()))
}

/// Writes the reader's events into `sender` until the client leaves, the read times out idle,
/// or (when settled) the backlog is sent.
async fn produce(
    runner: TurnRunner,
    chat_id: String,
    options: ReadOptions,
    settled: bool,
    view: Option<TurnView>,
    token: String,
    sender: mpsc::Sender<Bytes>,
) {
    let mut log = LogFollower::new(runner.store().clone(), &chat_id, options.cursor)
        .woken_by(runner.reader_wake(&chat_id));
    let now = now_ms();
    let mut reader = OutReader {
        runner,
        chat_id,
        token,
        sender,
        timeout_ms: options.timeout_ms,
        idle_since: now,
        last_ping: now,
        viewed_quiet: false,
    };
    if let Err(Gone) = reader.run(&mut log, settled, view).await {
        tracing::debug!(chat = %reader.chat_id, "out reader ended: client gone");
    }
}

/// The read ends early: the client left, or the log could not be read.
struct Gone;

/// An `out` request's reader: sends the log's records as batch events, follows a turn of this
/// process from memory and any other turn through the log, and pings while the log is quiet.
struct OutReader {
    runner: TurnRunner,
    chat_id: String,
    token: String,
    sender: mpsc::Sender<Bytes>,
    /// How long the read is held while nothing happens and no turn runs.
    timeout_ms: u64,
    idle_since: u64,
    last_ping: u64,
    /// The reader's first look, its request's view, found no input waiting a moment ago: the
    /// next quiet look claims nothing.
    viewed_quiet: bool,
}

impl OutReader {
    async fn send(&self, event: String) -> Result<(), Gone> {
        self.sender.send(Bytes::from(event)).await.map_err(|_| Gone)
    }

    async fn send_records(&self, records: &[OutputRecord]) -> Result<(), Gone> {
        for batch in records.chunks(BACKLOG_BATCH) {
            self.send(batch_event(batch, Some(&self.token))).await?;
        }
        Ok(())
    }

    /// Sends everything the store has after the cursor.
    async fn backlog(&self, log: &mut LogFollower) -> Result<(), Gone> {
        match log.read_new().await {
            Ok(records) => self.send_records(&records).await,
            Err(error) => {
                self.cannot_read(error).await;
                Err(Gone)
            }
        }
    }

    /// Tells the client the log cannot be read; the read ends.
    async fn cannot_read(&self, error: StoreError) {
        tracing::warn!(chat = %self.chat_id, "out reader cannot read the log: {error}");
        let _ = self
            .send("event: error\ndata: {\"error\":\"store unavailable\"}\n\n".into())
            .await;
    }

    async fn run(
        &mut self,
        log: &mut LogFollower,
        settled: bool,
        view: Option<TurnView>,
    ) -> Result<(), Gone> {
        if settled {
            return self.backlog(log).await;
        }
        if let Some(view) = view {
            self.first_look(log, view).await?;
        }
        while let Some(records) = log.next(self).await {
            self.send_records(&records).await?;
            self.idle_since = now_ms();
        }
        if self.sender.is_closed() {
            return Err(Gone);
        }
        Ok(())
    }

    /// The reader's first look, at the view its request read: a turn of this process is followed
    /// from memory, and an input waiting on a free chat is claimed from the view (its lease
    /// taken as viewed, with no look at the log or the lease of the reader's own before it).
    /// Otherwise the reader follows the log as usual.
    async fn first_look(&mut self, log: &mut LogFollower, view: TurnView) -> Result<(), Gone> {
        let live = match self.runner.live_turns().get(&self.chat_id) {
            Some(live) => Some(live),
            None if self.runner.running_in(&view) => None,
            None => match self.runner.claim_viewed(&self.chat_id, view).await {
                Ok(Some((started, task))) => {
                    crate::runtime::spawn_detached(task);
                    Some(started.live)
                }
                Ok(None) => {
                    self.viewed_quiet = true;
                    None
                }
                Err(error) => {
                    tracing::warn!(chat = %self.chat_id, "could not start the pending turn: {error}");
                    None
                }
            },
        };
        if let Some(live) = live {
            self.follow_live(log, live).await?;
            self.idle_since = now_ms();
        }
        Ok(())
    }

    /// The turn running in this process, or the one it starts for the oldest unanswered input.
    /// `remote_turn`: a turn holds the chat, so there is nothing to claim. `idle`: the reader has
    /// found the chat quiet before, and asks whether an input waits (two reads) before it claims
    /// one (four): on DynamoDB every look of an idle reader is billed.
    async fn live_turn(&mut self, remote_turn: bool, idle: bool) -> Option<Arc<LiveTurn>> {
        if let Some(live) = self.runner.live_turns().get(&self.chat_id) {
            return Some(live);
        }
        if std::mem::take(&mut self.viewed_quiet) || remote_turn {
            return None;
        }
        if idle {
            match self.runner.has_pending(&self.chat_id).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    tracing::warn!(chat = %self.chat_id, "could not look for a pending input: {error}");
                    return None;
                }
            }
        }
        match self.runner.claim_pending(&self.chat_id).await {
            Ok(Some((started, task))) => {
                crate::runtime::spawn_detached(task);
                Some(started.live)
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(chat = %self.chat_id, "could not start the pending turn: {error}");
                None
            }
        }
    }

    /// Follows a turn of this process from memory, after anything stored before it began (read
    /// only when the reader's cursor is short of the turn's start: a reader at the log's end
    /// goes straight to the turn, with no read of the log on its way to the model request).
    async fn follow_live(&self, log: &mut LogFollower, live: Arc<LiveTurn>) -> Result<(), Gone> {
        if log.cursor().map_or(0, |seq| seq.saturating_add(1)) < live.first_seq() {
            self.backlog(log).await?;
        }
        let mut records = std::pin::pin!(live.follow(log.cursor()));
        while let Some(record) = records.next().await {
            self.send_records(std::slice::from_ref(&record)).await?;
            log.advance_to(record.seq);
        }
        Ok(())
    }
}

impl FollowWatch for OutReader {
    async fn quiet(
        &mut self,
        log: &mut LogFollower,
        turn_running: Result<bool, StoreError>,
    ) -> FollowOn {
        // A turn running elsewhere keeps the read open however long it takes.
        let remote_turn = turn_running.unwrap_or(false);
        if let Some(live) = self.live_turn(remote_turn, log.idle()).await {
            if self.follow_live(log, live).await.is_err() {
                return FollowOn::End;
            }
            self.idle_since = now_ms();
            return FollowOn::Now;
        }
        let now = now_ms();
        if !remote_turn && now.saturating_sub(self.idle_since) >= self.timeout_ms {
            return FollowOn::End;
        }
        if now.saturating_sub(self.last_ping) >= PING_INTERVAL_MS {
            if self.send(ping_event(now)).await.is_err() {
                return FollowOn::End;
            }
            self.last_ping = now;
        }
        FollowOn::Later
    }

    async fn failed(&mut self, error: StoreError) -> FollowOn {
        self.cannot_read(error).await;
        FollowOn::End
    }

    fn abandoned(&self) -> impl Future<Output = ()> + Send {
        self.sender.closed()
    }
}

/// `HEAD /realtime/v1/sessions/{id}/out`: whether the stream exists, and its last index.
pub async fn head(
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (session, _) = authorized_session(&app, &headers, &id, Access::Read).await?;
    let last = app
        .runner()
        .store()
        .last_output_seq(&session.chat_id)
        .await?;
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert("x-stream-version", HeaderValue::from_static(STREAM_VERSION));
    if let Ok(value) = HeaderValue::from_str(&last.unwrap_or(0).to_string()) {
        headers.insert("x-last-chunk-index", value);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordsQuery {
    #[serde(default)]
    after_event_id: Option<String>,
}

/// `GET /realtime/v1/sessions/{id}/{in|out}/records?afterEventId=N`: records as JSON.
pub async fn records(
    State(app): State<App>,
    ApiPath((id, io)): ApiPath<(String, String)>,
    query: Result<ApiQuery<RecordsQuery>, ApiError>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    // The query is judged after the credential, like everything else the caller sends.
    let (session, _) = authorized_session(&app, &headers, &id, Access::Read).await?;
    let ApiQuery(query) = query?;
    let chat_id = session.chat_id;
    let after = parse_last_event_id(query.after_event_id.as_deref());
    let store = app.runner().store();
    let records: Vec<Value> = match io.as_str() {
        "in" => store
            .inputs(&chat_id, after, 1000)
            .await?
            .into_iter()
            .map(|input| json!({"data": input.body, "id": input.part_id, "seqNum": input.seq}))
            .collect(),
        "out" => store
            .output(&chat_id, after, 1000)
            .await?
            .into_iter()
            .map(|record| match record.body {
                crate::store::OutputBody::Chunk { record_id, chunk } => json!({
                    "data": crate::trigger::data_body(&chunk, &record_id),
                    "id": record_id,
                    "seqNum": record.seq,
                }),
                crate::store::OutputBody::Control { headers } => json!({
                    "data": "",
                    "id": Value::Null,
                    "seqNum": record.seq,
                    "headers": headers.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>(),
                }),
            })
            .collect(),
        _ => {
            return Err(ApiError::not_found("no such stream: use `in` or `out`"));
        }
    };
    Ok(Json(json!({"records": records})))
}
