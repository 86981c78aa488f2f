//! Starting, following, stopping and recovering turns. A turn answers one input of the chat's
//! input log; it holds the chat's lease while it runs, streams through an [`OutputWriter`], and
//! leaves the reply in the message history and a turn-complete record in the output log.

use std::future::Future;
use std::sync::Arc;

use futures::Stream;

use super::live::{LiveTurn, LiveTurns};
use super::record::ChatRecord;
use super::writer::{OutputWriter, REPLY_HEADER, WriterSettings, parse_reply_header};
use super::{ChatInput, ChatTrigger, MessagePayload};
use crate::agent::{
    Agent, ApprovalSigner, ChatState, TurnControls, TurnInfo, TurnRequest, refuse_turn, run_turn,
};
use crate::clock::now_ms;
use crate::store::{
    InputAppend, LeaseAcquire, OutputBody, OutputRecord, Session, Store, StoreError, TurnLease,
};
use crate::ui::{MessageFold, Role, UIMessage, UIMessageChunk, UIPart};

#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("no chat session `{0}`")]
    NoSession(String),
    #[error("the chat session is closed")]
    SessionClosed(Option<String>),
    #[error("a reply is still streaming in this chat")]
    InProgress,
    /// The chat's output log grew since the caller read the input log: what it read may be
    /// answered already. Read again.
    #[error("the chat moved on since its inputs were read")]
    Stale,
    /// Another turn answers this input; it starts at `first_seq` in the output log.
    #[error("another turn is answering this input")]
    Answering { first_seq: u64 },
    /// Another turn answered the input between its caller's look at the input log and the lease;
    /// it ended before output seq `before`.
    #[error("input {input_seq} has been answered already")]
    Answered { input_seq: u64, before: u64 },
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A turn that has started: follow it through `live`.
pub struct StartedTurn {
    pub live: Arc<LiveTurn>,
    pub message_id: String,
    pub input_seq: u64,
}

/// The work of a started turn; the host runs it to completion, detached from any connection.
pub type TurnTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

type ClaimFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<Option<(StartedTurn, TurnTask)>, TurnError>> + Send>,
>;

/// Where to read a turn from, for a resuming reader.
pub enum TurnSource {
    /// Running in this process: follow it from memory.
    Live(Arc<LiveTurn>),
    /// Running elsewhere (or recovered just now): read the log from `first_seq`.
    Log { first_seq: u64 },
}

#[derive(Clone)]
pub struct TurnRunner {
    store: Arc<dyn Store>,
    agent: Arc<Agent>,
    live: Arc<LiveTurns>,
    settings: WriterSettings,
    approvals: Option<ApprovalSigner>,
}

impl TurnRunner {
    pub fn new(store: Arc<dyn Store>, agent: Arc<Agent>) -> Self {
        TurnRunner {
            store,
            agent,
            live: Arc::new(LiveTurns::default()),
            settings: WriterSettings::default(),
            approvals: None,
        }
    }

    /// Signs the approval requests of this runner's turns and checks the answers (hosts set it
    /// from the environment's secret keys when they build their `App`).
    pub fn with_approval_signer(mut self, signer: ApprovalSigner) -> Self {
        self.approvals = Some(signer);
        self
    }

    pub fn approval_signer(&self) -> Option<&ApprovalSigner> {
        self.approvals.as_ref()
    }

    pub fn with_settings(mut self, settings: WriterSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    pub fn live_turns(&self) -> &LiveTurns {
        &self.live
    }

    /// The chat's session, if it exists and is open.
    pub async fn open_session(&self, chat_id: &str) -> Result<Session, TurnError> {
        let session = self
            .store
            .session(chat_id)
            .await?
            .ok_or_else(|| TurnError::NoSession(chat_id.to_owned()))?;
        if session.is_closed() {
            return Err(TurnError::SessionClosed(session.closed_reason.clone()));
        }
        if session.is_expired(now_ms()) {
            return Err(TurnError::SessionClosed(Some("expired".to_owned())));
        }
        Ok(session)
    }

    /// Whether a live (unexpired) turn holds the chat. The lease says, not this process's list
    /// of live turns: a turn stays listed for a moment after it frees the chat (while the answer
    /// to its release is still on its way), and its readers may have seen its end by then.
    pub async fn turn_running(&self, chat_id: &str) -> Result<bool, TurnError> {
        Ok(self
            .store
            .lease(chat_id)
            .await?
            .is_some_and(|lease| !lease.is_expired(now_ms())))
    }

    /// Records an input in the chat's input log.
    pub async fn record_input(
        &self,
        chat_id: &str,
        part_id: Option<&str>,
        input: &ChatInput,
    ) -> Result<InputAppend, TurnError> {
        let body = input.to_json();
        match part_id {
            Some(part_id) => Ok(self
                .store
                .append_input(chat_id, part_id, &body, now_ms())
                .await?),
            // No idempotency key from the client: one of our own, which nobody can send again.
            None => {
                let part_id = uuid::Uuid::new_v4().to_string();
                let seq = self
                    .store
                    .append_minted_input(chat_id, &part_id, &body, now_ms())
                    .await?;
                Ok(InputAppend {
                    seq,
                    duplicate: false,
                })
            }
        }
    }

    /// Takes the chat's lease and starts the turn answering input `input_seq`. The returned task
    /// must be spawned; the turn then runs whether or not anyone reads it.
    pub async fn start(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: MessagePayload,
    ) -> Result<(StartedTurn, TurnTask), TurnError> {
        self.begin(chat_id, input_seq, payload, None).await
    }

    /// [`start`](Self::start); with `log_end`, the output log's next seq when the caller read the
    /// input log, and [`TurnError::Stale`] without taking the lease if the log has grown since.
    async fn begin(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: MessagePayload,
        log_end: Option<u64>,
    ) -> Result<(StartedTurn, TurnTask), TurnError> {
        let lease = self.acquire(chat_id, Some(input_seq), log_end).await?;
        // What the caller read of the input log may be stale by now: a turn that ended meanwhile
        // (its release raises the mark and frees the lease in one write) may have answered this
        // very input. Only under the lease is the mark settled.
        let answered = self
            .store
            .consumed_input(chat_id)
            .await
            .map(|consumed| consumed.is_some_and(|consumed| consumed >= input_seq));
        if !matches!(answered, Ok(false)) {
            self.store
                .release_lease(chat_id, &lease.holder, None)
                .await?;
            return Err(match answered {
                Err(error) => error.into(),
                _ => TurnError::Answered {
                    input_seq,
                    before: lease.first_seq,
                },
            });
        }
        match self.prepare(chat_id, input_seq, &payload).await {
            Ok(prepared) => {
                let live = Arc::new(LiveTurn::new(chat_id, lease.first_seq));
                self.live.insert(live.clone());
                let message_id = prepared.reply.id.clone();
                let task = self.clone().execute(live.clone(), lease, prepared);
                Ok((
                    StartedTurn {
                        live,
                        message_id,
                        input_seq,
                    },
                    Box::pin(task),
                ))
            }
            Err(error) => {
                // The input cannot be answered: say why in the log (a reader waiting for this
                // turn gets the error and its turn-complete), and consume it so it never blocks
                // the chat.
                self.fail_input(chat_id, &lease, input_seq, &error).await;
                self.store
                    .release_lease(chat_id, &lease.holder, Some(input_seq))
                    .await?;
                Err(error)
            }
        }
    }

    async fn fail_input(
        &self,
        chat_id: &str,
        lease: &TurnLease,
        input_seq: u64,
        error: &TurnError,
    ) {
        let live = Arc::new(LiveTurn::new(chat_id, lease.first_seq));
        let mut writer = OutputWriter::new(self.store.clone(), live, self.settings, None);
        let chunk = UIMessageChunk::Error {
            error_text: error.to_string(),
        };
        let written = match crate::agent::ChunkSink::emit(&mut writer, &chunk).await {
            Ok(()) => writer.complete(Some(input_seq), None).await.map(drop),
            Err(closed) => Err(closed),
        };
        if let Err(closed) = written {
            tracing::warn!(chat = %chat_id, "could not record a refused input: {closed}");
        }
    }

    /// Starts the turn for the chat's oldest unanswered message, unless a turn is running. The
    /// returned task must be spawned.
    pub async fn claim_pending(
        &self,
        chat_id: &str,
    ) -> Result<Option<(StartedTurn, TurnTask)>, TurnError> {
        loop {
            if self.turn_running(chat_id).await? {
                return Ok(None);
            }
            // Read first: a turn that ends while this claim looks at the inputs moves the log
            // on, and the claim then looks again rather than briefly lock the chat for an input
            // that turn answered.
            let log_end = self.next_output_seq(chat_id).await?;
            let consumed = self.store.consumed_input(chat_id).await?;
            let inputs = self.store.inputs(chat_id, consumed, 64).await?;
            let next = inputs.into_iter().find_map(|input| {
                match serde_json::from_str::<ChatInput>(&input.body) {
                    Ok(ChatInput::Message { payload }) => Some((input.seq, payload)),
                    _ => None,
                }
            });
            let Some((seq, payload)) = next else {
                return Ok(None);
            };
            match self.begin(chat_id, seq, payload, Some(log_end)).await {
                Ok(started) => return Ok(Some(started)),
                Err(TurnError::InProgress | TurnError::Answering { .. }) => return Ok(None),
                // A turn ended after the look above, maybe answering this input: look again.
                Err(TurnError::Stale | TurnError::Answered { .. }) => {}
                // Recorded and consumed by `start`: go on with the next input.
                Err(TurnError::InvalidInput(reason)) => {
                    tracing::warn!(chat = %chat_id, seq, "input refused: {reason}");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `claim_pending` behind a named future type: a turn that starts the next one would
    /// otherwise make the turn's future type refer to itself.
    fn claim_next(&self, chat_id: String) -> ClaimFuture {
        let runner = self.clone();
        Box::pin(async move { runner.claim_pending(&chat_id).await })
    }

    /// Whether an unanswered message waits in the input log.
    pub async fn has_pending(&self, chat_id: &str) -> Result<bool, TurnError> {
        let consumed = self.store.consumed_input(chat_id).await?;
        let inputs = self.store.inputs(chat_id, consumed, 64).await?;
        Ok(inputs.iter().any(|input| {
            matches!(
                serde_json::from_str::<ChatInput>(&input.body),
                Ok(ChatInput::Message { .. })
            )
        }))
    }

    /// Takes the lease, recovering an expired turn first.
    async fn acquire(
        &self,
        chat_id: &str,
        input_seq: Option<u64>,
        log_end: Option<u64>,
    ) -> Result<TurnLease, TurnError> {
        // A few rounds: each recovery or lost race moves the log forward and tries again.
        for _ in 0..4 {
            let first_seq = self.next_output_seq(chat_id).await?;
            if log_end.is_some_and(|end| end != first_seq) {
                return Err(TurnError::Stale);
            }
            let now = now_ms();
            let wanted = TurnLease {
                holder: uuid::Uuid::new_v4().to_string(),
                acquired_at_ms: now,
                expires_at_ms: now + self.settings.lease_ttl_ms,
                first_seq,
                input_seq,
            };
            match self.store.acquire_lease(chat_id, wanted, now).await? {
                // Another claimer took this very input: its turn is the answer to follow.
                LeaseAcquire::Held(held) if input_seq.is_some() && held.input_seq == input_seq => {
                    return Err(TurnError::Answering {
                        first_seq: held.first_seq,
                    });
                }
                LeaseAcquire::Held(_) => return Err(TurnError::InProgress),
                LeaseAcquire::Acquired {
                    lease,
                    expired: Some(expired),
                } => {
                    self.recover(chat_id, &expired).await?;
                    self.store
                        .release_lease(chat_id, &lease.holder, expired.input_seq)
                        .await?;
                }
                LeaseAcquire::Acquired {
                    lease,
                    expired: None,
                } => {
                    if self.next_output_seq(chat_id).await? == lease.first_seq {
                        return Ok(lease);
                    }
                    // Another executor finished writing between our read and our acquire.
                    self.store
                        .release_lease(chat_id, &lease.holder, None)
                        .await?;
                }
            }
        }
        Err(TurnError::InProgress)
    }

    async fn next_output_seq(&self, chat_id: &str) -> Result<u64, TurnError> {
        Ok(self
            .store
            .last_output_seq(chat_id)
            .await?
            .map_or(0, |seq| seq + 1))
    }

    /// Applies the input to the history; returns the history before the reply, and the reply
    /// to stream (new, or the assistant message being continued).
    async fn prepare(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: &MessagePayload,
    ) -> Result<PreparedTurn, TurnError> {
        let history = self.store.messages(chat_id).await?;
        let info = TurnInfo {
            chat_id: chat_id.to_owned(),
            input_seq: Some(input_seq),
            first_turn: history.is_empty(),
            client_data: payload.metadata.clone(),
            controls: TurnControls::default(),
        };
        self.agent
            .check_client_data(info.client_data.as_ref())
            .map_err(TurnError::InvalidInput)?;
        let (history, reply) = self.apply_input(chat_id, &info, history, payload).await?;
        let history = self
            .agent
            .hooks()
            .hydrate_messages(&info, history)
            .await
            .map_err(|e| TurnError::InvalidInput(e.0))?;
        Ok(PreparedTurn {
            history,
            reply,
            info,
        })
    }

    async fn apply_input(
        &self,
        chat_id: &str,
        info: &TurnInfo,
        mut history: Vec<UIMessage>,
        payload: &MessagePayload,
    ) -> Result<(Vec<UIMessage>, UIMessage), TurnError> {
        match payload.trigger {
            ChatTrigger::SubmitMessage => {
                let message = payload.message.clone().ok_or_else(|| {
                    TurnError::InvalidInput("submit-message needs a message".into())
                })?;
                match message.role {
                    Role::User => {
                        self.agent
                            .hooks()
                            .validate_message(info, &message)
                            .await
                            .map_err(|e| TurnError::InvalidInput(e.0))?;
                        // An edit (or a re-send) of a known message drops everything after it.
                        let edited = payload.message_id.as_deref().unwrap_or(&message.id);
                        if let Some(index) = history.iter().position(|m| m.id == edited) {
                            self.store.truncate_messages(chat_id, edited).await?;
                            history.truncate(index);
                        }
                        self.store.put_message(chat_id, &message).await?;
                        history.push(message);
                        Ok((history, new_reply()))
                    }
                    Role::Assistant => {
                        let index = history
                            .iter()
                            .position(|m| m.id == message.id && m.role == Role::Assistant)
                            .ok_or_else(|| {
                                TurnError::InvalidInput(format!(
                                    "assistant message `{}` is not in this chat",
                                    message.id
                                ))
                            })?;
                        let stored = history.remove(index);
                        let continued = overlay_client_answers(stored, &message, &self.agent);
                        // Later messages cannot exist when a client answers a tool call.
                        history.truncate(index);
                        self.store.put_message(chat_id, &continued).await?;
                        Ok((history, continued))
                    }
                    Role::System => Err(TurnError::InvalidInput(
                        "clients cannot send system messages".into(),
                    )),
                }
            }
            ChatTrigger::RegenerateMessage => {
                let from = match &payload.message_id {
                    Some(id) => history.iter().position(|m| &m.id == id).ok_or_else(|| {
                        TurnError::InvalidInput(format!("message `{id}` is not in this chat"))
                    })?,
                    None => history
                        .iter()
                        .rposition(|m| m.role == Role::User)
                        .map_or(history.len(), |index| index + 1),
                };
                // Regenerating a user message keeps it and replaces what answered it.
                let from = match history.get(from) {
                    Some(message) if message.role == Role::User => from + 1,
                    _ => from,
                };
                if let Some(message) = history.get(from) {
                    self.store
                        .truncate_messages(chat_id, &message.id.clone())
                        .await?;
                    history.truncate(from);
                }
                if history.last().is_none_or(|m| m.role != Role::User) {
                    return Err(TurnError::InvalidInput(
                        "there is no user message to answer".into(),
                    ));
                }
                Ok((history, new_reply()))
            }
            other => Err(TurnError::InvalidInput(format!(
                "trigger `{}` does not start a turn",
                serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ))),
        }
    }

    async fn execute(self, live: Arc<LiveTurn>, lease: TurnLease, prepared: PreparedTurn) {
        let PreparedTurn {
            history,
            reply,
            info,
        } = prepared;
        let chat_id = live.chat_id().to_owned();
        let heartbeat = super::heartbeat::LeaseHeartbeat::start(
            self.store.clone(),
            chat_id.clone(),
            lease.holder.clone(),
            self.settings.lease_ttl_ms,
        );
        let stop_after = self.last_input_seq(&chat_id, lease.input_seq).await;
        let mut writer =
            OutputWriter::new(self.store.clone(), live.clone(), self.settings, stop_after);
        let record = match self.store.state(&chat_id).await {
            Ok(value) => ChatRecord::decode(value),
            Err(error) => {
                tracing::error!(chat = %chat_id, "could not load the chat state: {error}");
                ChatRecord::default()
            }
        };
        let state = ChatState::loaded(record.state.clone());
        let hooks = self.agent.hooks().clone();
        let started = match info.first_turn {
            true => hooks.on_chat_start(&info, &state).await,
            false => Ok(()),
        };
        let started = match started {
            Ok(()) => hooks.on_turn_start(&info, &state).await,
            refused => refused,
        };
        let mut new_summary = None;
        let outcome = match started {
            Ok(()) => {
                let compacted = crate::agent::compaction::compact(
                    &self.agent,
                    &info,
                    &history,
                    record.summary.as_ref(),
                )
                .await;
                new_summary = compacted.new_summary;
                let history = compacted.history;
                let request = TurnRequest {
                    chat_id: chat_id.clone(),
                    history,
                    reply,
                    state: state.clone(),
                    approvals: self.approvals.clone(),
                    controls: info.controls.clone(),
                };
                let stop = live.stop_signal().clone();
                let agent = match hooks.choose_model(&info, &state).await {
                    Some(model) => Arc::new(self.agent.with_model(model)),
                    None => self.agent.clone(),
                };
                run_turn(&agent, request, &mut writer, &stop).await
            }
            Err(refusal) => refuse_turn(reply, &mut writer, &refusal.0).await,
        };
        let mut outcome = outcome;
        let mut total_usage = record.usage;
        total_usage += outcome.usage;
        outcome.total_usage = total_usage;
        hooks.on_turn_complete(&info, &state, &outcome).await;
        // Deferred work (from hooks and tools, `on_turn_complete` included) ends before the turn
        // does: its effects on the state are saved, and the next turn sees them.
        // The lease is not renewed while nothing is written: the wait stays well inside it.
        let cap = self
            .agent
            .defer_timeout()
            .min(std::time::Duration::from_millis(
                self.settings.lease_ttl_ms / 2,
            ));
        let deferred = info.controls.settle_deferred(cap).await;
        if deferred.timed_out > 0 {
            tracing::warn!(
                chat = %chat_id,
                timed_out = deferred.timed_out,
                "deferred work still ran at the agent's cap and was dropped"
            );
        }
        // Saved as the turn frees the chat (one write on DynamoDB), or alone if it cannot.
        let changed_state = state.changed_value();
        let saved = (changed_state.is_some()
            || total_usage != record.usage
            || new_summary.is_some())
        .then(|| {
            ChatRecord {
                state: changed_state.or(record.state),
                usage: total_usage,
                summary: new_summary.or(record.summary),
            }
            .encode()
        });
        tracing::info!(
            chat = %chat_id,
            steps = outcome.steps,
            finish = ?outcome.finish_reason,
            stopped = outcome.stopped,
            input_tokens = outcome.usage.input_tokens,
            output_tokens = outcome.usage.output_tokens,
            "turn finished"
        );
        drop(heartbeat);
        if writer.lease_lost() {
            // Someone recovered this chat while we stalled; the turn is theirs to close.
            if let Some(saved) = &saved {
                self.save_state(&chat_id, saved).await;
            }
            self.live.remove(&live);
            live.finish();
            return;
        }
        if let Err(error) = self
            .settle(
                &chat_id,
                &mut writer,
                &outcome.message,
                &info.controls.injected(),
                &lease,
                saved.as_ref(),
            )
            .await
        {
            tracing::error!(chat = %chat_id, "could not settle the turn: {error}");
        }
        // Unlisted before its readers end: a client that saw the end and sends the next message
        // at once must not find this turn still running.
        self.live.remove(&live);
        live.finish();
        // Messages that arrived during this turn queue as the next turns: run them now, so a
        // chat with no reader attached (server-side appends) does not stall.
        match self.claim_next(chat_id.clone()).await {
            Ok(Some((_, next))) => next.await,
            Ok(None) => {}
            Err(error) => tracing::warn!(chat = %chat_id, "could not start the next turn: {error}"),
        }
    }

    /// Closes the turn in the log (what is pending and the turn-complete, one batch), persists
    /// the reply and frees the chat, in that order. Readers are given the turn's end only once
    /// the chat is free, so they also find the reply in the history. The turn-complete names
    /// the reply ([`REPLY_HEADER`]): a turn that dies before storing it is recovered with it.
    /// `state`, when the turn changed it, is saved with the release, or alone when the turn
    /// cannot free the chat.
    async fn settle(
        &self,
        chat_id: &str,
        writer: &mut OutputWriter,
        message: &UIMessage,
        injected: &[UIMessage],
        lease: &TurnLease,
        state: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        let ended = self
            .end_and_store(chat_id, writer, message, injected, lease)
            .await;
        let released = match &ended {
            Ok(_) => self.free_chat(chat_id, lease, state).await,
            Err(error) => Err(error.clone()),
        };
        if released.is_err()
            && let Some(state) = state
        {
            self.save_state(chat_id, state).await;
        }
        if let Ok(closing) = ended {
            writer.announce(closing);
        }
        released
    }

    /// Releases the turn's lease, with the chat's state when the turn changed it.
    async fn free_chat(
        &self,
        chat_id: &str,
        lease: &TurnLease,
        state: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        let released = match state {
            Some(state) => {
                self.store
                    .release_lease_with_state(chat_id, &lease.holder, lease.input_seq, state)
                    .await
            }
            None => {
                self.store
                    .release_lease(chat_id, &lease.holder, lease.input_seq)
                    .await
            }
        };
        match released {
            // The turn-complete is written, so nobody took the turn over: an earlier attempt
            // of this release landed and its answer was lost (the store retried it).
            Err(StoreError::LeaseLost) => Ok(()),
            released => released.map_err(|e| e.to_string()),
        }
    }

    /// The turn's end in the log, then its reply and the messages it injected in the history.
    async fn end_and_store(
        &self,
        chat_id: &str,
        writer: &mut OutputWriter,
        message: &UIMessage,
        injected: &[UIMessage],
        lease: &TurnLease,
    ) -> Result<OutputRecord, String> {
        let reply = has_content(message).then_some(message);
        let closing = writer
            .complete(lease.input_seq, reply)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(reply) = reply {
            self.store
                .put_message(chat_id, reply)
                .await
                .map_err(|e| e.to_string())?;
        }
        for injected in injected {
            self.store
                .put_message(chat_id, injected)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(closing)
    }

    /// Saves the chat's state on its own; a failure is logged (the turn goes on ending).
    async fn save_state(&self, chat_id: &str, state: &serde_json::Value) {
        if let Err(error) = self.store.put_state(chat_id, state).await {
            tracing::error!(chat = %chat_id, "could not save the chat state: {error}");
        }
    }

    async fn last_input_seq(&self, chat_id: &str, after: Option<u64>) -> Option<u64> {
        let mut last = after;
        loop {
            match self.store.inputs(chat_id, last, 256).await {
                Ok(inputs) if !inputs.is_empty() => last = inputs.last().map(|input| input.seq),
                _ => return last,
            }
        }
    }

    /// Closes a turn whose executor died: folds what it wrote, ends the open parts, marks it
    /// aborted, writes its turn-complete and keeps the partial reply. A turn that died after
    /// writing its turn-complete only misses its reply, if that: it is stored from the log.
    async fn recover(&self, chat_id: &str, expired: &TurnLease) -> Result<(), TurnError> {
        tracing::warn!(chat = %chat_id, first_seq = expired.first_seq, "recovering an interrupted turn");
        let records = self
            .read_log(chat_id, expired.first_seq.checked_sub(1))
            .await?;
        let history = self.store.messages(chat_id).await?;
        if let Some(end) = records.iter().position(|r| r.body.is_turn_complete()) {
            let named = records[end]
                .body
                .control_header(REPLY_HEADER)
                .and_then(parse_reply_header);
            if let Some((parts, id)) = named {
                // A stored message with the reply's id and fewer parts is the one it continues.
                let stored = history.iter().find(|m| m.id == id);
                if stored.is_none_or(|m| m.parts.len() < parts)
                    && let Some(fold) = fold_reply(&records[..end], &history)
                    && has_content(fold.message())
                {
                    self.store.put_message(chat_id, fold.message()).await?;
                }
            }
            return Ok(());
        }
        let mut fold = fold_reply(&records, &history);
        let live = Arc::new(LiveTurn::new(chat_id, self.next_output_seq(chat_id).await?));
        let mut writer = OutputWriter::new(self.store.clone(), live, self.settings, None);
        if let Some(fold) = fold.as_mut() {
            let mut closing = fold.closing_chunks();
            if !fold.is_aborted() && fold.finish_reason().is_none() {
                closing.push(UIMessageChunk::Error {
                    error_text: "the reply was interrupted before it finished".to_owned(),
                });
                closing.push(UIMessageChunk::Abort {
                    reason: Some("interrupted".to_owned()),
                });
            }
            for chunk in closing {
                let _ = fold.apply(&chunk);
                crate::agent::ChunkSink::emit(&mut writer, &chunk)
                    .await
                    .map_err(|e| StoreError::Backend(e.0))?;
            }
        }
        // As a turn settles: its end in the log naming the reply, then the reply.
        let reply = fold
            .as_ref()
            .map(MessageFold::message)
            .filter(|message| has_content(message));
        writer
            .complete(expired.input_seq, reply)
            .await
            .map_err(|e| StoreError::Backend(e.0))?;
        if let Some(reply) = reply {
            self.store.put_message(chat_id, reply).await?;
        }
        Ok(())
    }

    /// Every output record after `after`.
    pub async fn read_log(
        &self,
        chat_id: &str,
        after: Option<u64>,
    ) -> Result<Vec<OutputRecord>, TurnError> {
        Ok(super::follow::read_after(self.store.as_ref(), chat_id, after).await?)
    }

    /// Where to follow the turn that starts at `first_seq`: from memory while it runs in this
    /// process, from the log otherwise.
    pub fn turn_source(&self, chat_id: &str, first_seq: u64) -> TurnSource {
        match self.live.get(chat_id) {
            Some(live) if live.first_seq() == first_seq => TurnSource::Live(live),
            _ => TurnSource::Log { first_seq },
        }
    }

    /// The first output seq of the finished turn that answered input `input_seq`, looking back
    /// from output seq `before` (exclusive) over a few pages of the log: the answer to a message
    /// whose sender lost the race to start it and found it answered already.
    pub async fn turn_answering(
        &self,
        chat_id: &str,
        input_seq: u64,
        before: u64,
    ) -> Result<Option<u64>, TurnError> {
        const PAGE: u64 = 256;
        const PAGES: usize = 16;
        let answers = |record: &OutputRecord| {
            record
                .body
                .control_header(super::ANSWERED_INPUT_HEADER)
                .and_then(|seq| seq.parse::<u64>().ok())
                == Some(input_seq)
        };
        let mut end = before;
        let mut found = false;
        for _ in 0..PAGES {
            let start = end.saturating_sub(PAGE);
            let page = self
                .store
                .output(chat_id, start.checked_sub(1), (end - start) as usize)
                .await?;
            for record in page.iter().rev().filter(|record| record.seq < end) {
                if !record.body.is_turn_complete() {
                    continue;
                }
                if found {
                    return Ok(Some(record.seq + 1));
                }
                found = answers(record);
            }
            if start == 0 {
                return Ok(found.then_some(0));
            }
            end = start;
        }
        Ok(None)
    }

    /// Where a resuming reader finds the chat's running turn, if there is one. An expired turn is
    /// recovered first, so the reader gets a cleanly closed reply instead of a hang.
    pub async fn running_turn(&self, chat_id: &str) -> Result<Option<TurnSource>, TurnError> {
        if let Some(live) = self.live.get(chat_id) {
            return Ok(Some(TurnSource::Live(live)));
        }
        let Some(lease) = self.store.lease(chat_id).await? else {
            return Ok(None);
        };
        if lease.is_expired(now_ms()) {
            match self.acquire(chat_id, None, None).await {
                Ok(mine) => {
                    self.store
                        .release_lease(chat_id, &mine.holder, None)
                        .await?;
                }
                Err(TurnError::InProgress) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Some(TurnSource::Log {
            first_seq: lease.first_seq,
        }))
    }

    /// Follows the log of a turn from `after` until its turn-complete, polling the store: for
    /// turns running in another process.
    pub fn follow_log(
        &self,
        chat_id: &str,
        after: Option<u64>,
    ) -> impl Stream<Item = OutputRecord> + Send + 'static {
        super::follow::follow_turn_log(self.store.clone(), chat_id, after)
    }

    /// Asks the running turn to stop: in this process at once, elsewhere through the input log.
    /// Returns whether a turn was running.
    pub async fn stop(&self, chat_id: &str) -> Result<bool, TurnError> {
        self.record_input(chat_id, None, &ChatInput::Stop { message: None })
            .await?;
        if let Some(live) = self.live.get(chat_id) {
            live.stop_signal().cancel();
            return Ok(true);
        }
        self.turn_running(chat_id).await
    }
}

/// A turn ready to run: the history the model sees, the reply to stream, and what hooks see.
struct PreparedTurn {
    history: Vec<UIMessage>,
    reply: UIMessage,
    info: TurnInfo,
}

fn new_reply() -> UIMessage {
    UIMessage::new(
        format!("msg_{}", uuid::Uuid::new_v4().simple()),
        Role::Assistant,
    )
}

/// The reply a turn's records build, from the `start` that names it on; a continued reply
/// builds on the stored message with its id.
fn fold_reply(records: &[OutputRecord], history: &[UIMessage]) -> Option<MessageFold> {
    let mut fold: Option<MessageFold> = None;
    for record in records {
        let OutputBody::Chunk { chunk, .. } = &record.body else {
            continue;
        };
        let Ok(chunk) = serde_json::from_str::<UIMessageChunk>(chunk) else {
            continue;
        };
        if let UIMessageChunk::Start {
            message_id: Some(id),
            ..
        } = &chunk
        {
            let base = history
                .iter()
                .find(|m| &m.id == id)
                .cloned()
                .unwrap_or_else(|| UIMessage::new(id.clone(), Role::Assistant));
            fold = Some(MessageFold::continuing(base));
        }
        if let Some(fold) = fold.as_mut() {
            let _ = fold.apply(&chunk);
        }
    }
    fold
}

fn has_content(message: &UIMessage) -> bool {
    message
        .parts
        .iter()
        .any(|part| !matches!(part, UIPart::StepStart))
}

/// The server's copy of an assistant message, with what the client may answer for it: the
/// outputs of tools that run in the browser, and a person's answer to an approval request whose
/// id matches. Everything else stays the server's, so a client cannot forge a server tool's
/// output or approve a call it was never asked about.
fn overlay_client_answers(mut stored: UIMessage, client: &UIMessage, agent: &Agent) -> UIMessage {
    use crate::ui::ToolState;
    for part in stored.parts.iter_mut() {
        let UIPart::Tool(tool) = part else { continue };
        let Some(answer) = client
            .tool_parts()
            .find(|t| t.tool_call_id == tool.tool_call_id)
        else {
            continue;
        };
        match (tool.state, answer.state) {
            (
                ToolState::ApprovalRequested,
                ToolState::ApprovalResponded | ToolState::OutputDenied,
            ) => {
                let (Some(mine), Some(theirs)) = (tool.approval.as_mut(), answer.approval.as_ref())
                else {
                    continue;
                };
                if mine.id != theirs.id {
                    continue;
                }
                let approved =
                    answer.state == ToolState::ApprovalResponded && theirs.approved == Some(true);
                mine.approved = Some(approved);
                mine.reason = theirs.reason.clone();
                tool.state = ToolState::ApprovalResponded;
            }
            (ToolState::InputAvailable, ToolState::OutputAvailable | ToolState::OutputError)
                if agent.runs_on_client(&tool.tool_name) =>
            {
                tool.state = answer.state;
                tool.output = answer.output.clone();
                tool.error_text = answer.error_text.clone();
            }
            _ => {}
        }
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::offline::OfflineModel;
    use crate::store::memory::MemoryStore;

    async fn chat_with_input(
        store: &Arc<MemoryStore>,
        runner: &TurnRunner,
    ) -> (u64, MessagePayload) {
        let now = now_ms();
        let session = Session::new("answered", now);
        store.create_session(session).await.expect("session");
        let mut message = UIMessage::new("u1", Role::User);
        message.parts.push(UIPart::text("hello there"));
        let payload = MessagePayload {
            message: Some(message),
            chat_id: "answered".into(),
            trigger: ChatTrigger::SubmitMessage,
            message_id: None,
            metadata: None,
            extra: Default::default(),
        };
        let input = ChatInput::Message {
            payload: payload.clone(),
        };
        let appended = runner
            .record_input("answered", Some("part-1"), &input)
            .await
            .expect("input");
        (appended.seq, payload)
    }

    /// A claimer that read the input log before another turn answered the input, and reached
    /// the lease after that turn ended, must not answer it a second time.
    #[tokio::test]
    async fn a_stale_claim_does_not_answer_an_input_twice() {
        let store = Arc::new(MemoryStore::new());
        let agent = Arc::new(Agent::builder(Arc::new(OfflineModel::new())).build());
        let runner = TurnRunner::new(store.clone(), agent);
        let (seq, payload) = chat_with_input(&store, &runner).await;
        let (_, task) = runner
            .start("answered", seq, payload.clone())
            .await
            .expect("the first claim starts the turn");
        task.await;
        match runner.start("answered", seq, payload).await {
            Err(TurnError::Answered { input_seq, before }) => {
                assert_eq!(input_seq, seq);
                let first_seq = runner
                    .turn_answering("answered", seq, before)
                    .await
                    .expect("the log");
                assert_eq!(first_seq, Some(0), "the answer is found in the log");
            }
            Err(other) => panic!("expected Answered, got {other}"),
            Ok(_) => panic!("the input was answered twice"),
        }
        let lease = store.lease("answered").await.expect("lease");
        assert!(lease.is_none(), "the chat is free: {lease:?}");
        let log = runner.read_log("answered", None).await.expect("log");
        let completes = log.iter().filter(|r| r.body.is_turn_complete()).count();
        assert_eq!(completes, 1, "one turn answered the input");
        assert!(
            runner
                .claim_pending("answered")
                .await
                .expect("claim")
                .is_none()
        );
    }
}
