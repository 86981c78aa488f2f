//! The turn runner: starting a turn under the chat's lease, claiming the next unanswered input,
//! and finding, following and stopping running turns. A turn answers one input of the chat's
//! input log; it holds the chat's lease while it runs, streams through an [`OutputWriter`], and
//! leaves the reply in the message history and a turn-complete record in the output log. The
//! input is applied to the history in `prepare`, the turn runs in `execute` and ends in `settle`,
//! and a turn whose executor died is closed in `recovery`.

use std::future::Future;
use std::sync::Arc;

use futures::Stream;
use tracing::Instrument as _;

use super::execute::LoadedRecord;
use super::live::{LiveTurn, LiveTurns};
use super::writer::{OutputWriter, WriterSettings};
use super::{ChatInput, MessagePayload};
use crate::agent::{Agent, ApprovalSigner};
use crate::clock::now_ms;
use crate::store::write_units::WriteUnits;
use crate::store::{
    InputAppend, LeaseAcquire, LeasedAppend, OutputRecord, Session, Store, StoreError, StoreResult,
    TurnLease, TurnView,
};
use crate::ui::{UIMessage, UIMessageChunk};

/// Why a turn could not start (or a running one could not be reached).
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The chat has no session.
    #[error("no chat session `{0}`")]
    NoSession(String),
    /// The chat's session is closed; the reason is the closer's.
    #[error("the chat session is closed")]
    SessionClosed(Option<String>),
    /// Another turn holds the chat's lease.
    #[error("a reply is still streaming in this chat")]
    InProgress,
    /// The chat's output log grew since the caller read the input log: what it read may be
    /// answered already. Read again.
    #[error("the chat moved on since its inputs were read")]
    Stale,
    /// Another turn answers this input; it starts at `first_seq` in the output log.
    #[error("another turn is answering this input")]
    Answering {
        /// Where that turn's output starts.
        first_seq: u64,
    },
    /// Another turn answered the input between its caller's look at the input log and the lease;
    /// it ended before output seq `before`.
    #[error("input {input_seq} has been answered already")]
    Answered {
        /// The input.
        input_seq: u64,
        /// The output seq the answering turn ended before.
        before: u64,
    },
    /// The input cannot be answered (a hook refused it, or it does not fit the chat); the message
    /// says why, for the client.
    #[error("{0}")]
    InvalidInput(String),
    /// A usage limit refuses the message; nothing of it was recorded.
    #[error(transparent)]
    LimitReached(#[from] super::LimitReached),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A turn that has started: follow it through `live`.
pub struct StartedTurn {
    /// The turn's output as it streams, in this process.
    pub live: Arc<LiveTurn>,
    /// The id of the reply message.
    pub message_id: String,
    /// The input the turn answers.
    pub input_seq: u64,
}

/// The work of a started turn; the host runs it to completion, detached from any connection.
pub type TurnTask = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

type ClaimFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<Option<(StartedTurn, TurnTask)>, TurnError>> + Send>,
>;

/// What a caller knows of the output log's end as it asks for the lease.
#[derive(Debug, Clone, Copy)]
enum LogEnd {
    /// Nothing: the lease reads it.
    Unread,
    /// Its next seq when the caller read the input log: [`TurnError::Stale`], without taking
    /// the lease, if the log has grown since.
    Expected(u64),
    /// Its next seq, read just now beside other work: the lease is taken at it.
    Read(u64),
}

/// What a turn starts with, read side by side under its lease.
struct StartReads {
    consumed: StoreResult<Option<u64>>,
    history: StoreResult<Vec<UIMessage>>,
    loaded: LoadedRecord,
}

/// Where to read a turn from, for a resuming reader.
pub enum TurnSource {
    /// Running in this process: follow it from memory.
    Live(Arc<LiveTurn>),
    /// Running elsewhere (or recovered just now): read the log from `first_seq`.
    Log {
        /// Where the turn's output starts.
        first_seq: u64,
    },
}

/// Starts, claims, follows and stops the turns of one agent over one store. Cheap to clone.
#[derive(Clone)]
pub struct TurnRunner {
    pub(super) store: Arc<dyn Store>,
    pub(super) agent: Arc<Agent>,
    pub(super) live: Arc<LiveTurns>,
    pub(super) settings: WriterSettings,
    pub(super) approvals: Option<ApprovalSigner>,
    /// Where the turns' events go, when a webhook is configured.
    pub(super) events: Option<crate::events::EventDelivery>,
    /// This process is the store's only writer: idle readers wait for its wake-ups.
    pub(super) sole_writer: bool,
}

impl TurnRunner {
    /// A runner of `agent`'s turns over `store`, with the default writer settings and no signer.
    pub fn new(store: Arc<dyn Store>, agent: Arc<Agent>) -> Self {
        TurnRunner {
            store: crate::store::TracedStore::wrap(store),
            agent,
            live: Arc::new(LiveTurns::default()),
            settings: WriterSettings::default(),
            approvals: None,
            events: None,
            sole_writer: false,
        }
    }

    /// Declares this process the store's only writer (the memory store, a SQLite file no other
    /// process writes, a Durable Object): a reader waiting on a quiet chat is woken by this
    /// process's appends and turns, and looks at the store itself only every few seconds, where
    /// it otherwise looks ten times a second.
    pub fn with_sole_writer(mut self) -> Self {
        self.sole_writer = true;
        self
    }

    /// A wake-up subscription for a reader waiting on `chat_id`, where this process is the
    /// store's only writer.
    pub fn reader_wake(&self, chat_id: &str) -> Option<super::ChatWake> {
        self.sole_writer
            .then(|| self.live.wakes().subscribe(chat_id))
    }

    /// Signs the approval requests of this runner's turns and checks the answers (hosts set it
    /// from the environment's secret keys when they build their `App`).
    pub fn with_approval_signer(mut self, signer: ApprovalSigner) -> Self {
        self.approvals = Some(signer);
        self
    }

    /// The signer of this runner's approval requests, if it has one.
    pub fn approval_signer(&self) -> Option<&ApprovalSigner> {
        self.approvals.as_ref()
    }

    /// Writes turns' output with `settings` instead of the defaults.
    pub fn with_settings(mut self, settings: WriterSettings) -> Self {
        self.settings = settings;
        self
    }

    /// The store the runner keeps chats in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The agent whose turns the runner runs.
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    /// The turns running in this process.
    pub fn live_turns(&self) -> &LiveTurns {
        &self.live
    }

    /// The chat's session, if it exists and is open.
    pub async fn open_session(&self, chat_id: &str) -> Result<Session, TurnError> {
        open(chat_id, self.store.session(chat_id).await?)
    }

    /// What a new message's turn starts from, read in one go: the session (see
    /// [`open_in`](Self::open_in)), whether a turn runs ([`running_in`](Self::running_in)),
    /// and what [`start_message`](Self::start_message) takes the chat on with.
    pub async fn view(&self, chat_id: &str) -> Result<TurnView, TurnError> {
        Ok(self.store.turn_view(chat_id).await?)
    }

    /// The view's session, if it exists and is open.
    pub fn open_in(&self, chat_id: &str, view: &TurnView) -> Result<Session, TurnError> {
        open(chat_id, view.session.clone())
    }

    /// Whether a live turn held the chat when the view was read.
    pub fn running_in(&self, view: &TurnView) -> bool {
        view.lease
            .as_ref()
            .is_some_and(|lease| !lease.is_expired(now_ms()))
    }

    /// Records the message of `payload` (under a part id of chatfn's own) and starts its turn:
    /// where the store can, the input's append takes the lease in the same round trip, and the
    /// turn starts from the view's history and state, as nothing ran since it was read; else
    /// as [`start_at`](Self::start_at) after [`record_input`](Self::record_input).
    pub async fn start_message(
        &self,
        chat_id: &str,
        view: TurnView,
        payload: MessagePayload,
    ) -> Result<(StartedTurn, TurnTask), TurnError> {
        let body = ChatInput::Message {
            payload: payload.clone(),
        }
        .to_json();
        let part_id = uuid::Uuid::new_v4().to_string();
        let now = now_ms();
        let wanted = TurnLease {
            holder: uuid::Uuid::new_v4().to_string(),
            acquired_at_ms: now,
            expires_at_ms: now + self.settings.lease_ttl_ms,
            first_seq: view.next_output,
            input_seq: None,
        };
        let appended = self
            .store
            .append_input_leased(chat_id, &part_id, &body, now, wanted, &view)
            .await?;
        self.live.wakes().wake(chat_id);
        match appended {
            LeasedAppend::Leased(lease) => {
                let Some(input_seq) = lease.input_seq else {
                    return Err(StoreError::Backend("a lease without its input".into()).into());
                };
                let reads = StartReads {
                    consumed: Ok(view.consumed),
                    history: Ok(view.history),
                    loaded: LoadedRecord {
                        state: Ok(view.state),
                        stop_after: Some(input_seq),
                    },
                };
                self.launch(chat_id, input_seq, payload, lease, reads).await
            }
            LeasedAppend::Recorded(seq) => {
                self.start_at(chat_id, seq, payload, view.next_output).await
            }
        }
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
        self.record_input_at(chat_id, part_id, input, None).await
    }

    /// Where the chat's next input goes, where the store reads it apart from the append: read
    /// beside the session's check, it spares [`record_input_at`](Self::record_input_at) its
    /// own look at the log. `None` when the store does not, or the read failed (the append
    /// then looks itself).
    pub async fn next_input_seq(&self, chat_id: &str) -> Option<u64> {
        match self.store.next_input_seq(chat_id).await {
            Ok(next) => next,
            Err(error) => {
                tracing::debug!(chat = %chat_id, "could not read the input log's end: {error}");
                None
            }
        }
    }

    /// [`record_input`](Self::record_input), trying seq `next` first (from
    /// [`next_input_seq`](Self::next_input_seq)) for an input with a client's part id.
    pub async fn record_input_at(
        &self,
        chat_id: &str,
        part_id: Option<&str>,
        input: &ChatInput,
        next: Option<u64>,
    ) -> Result<InputAppend, TurnError> {
        let body = input.to_json();
        let appended = self.append_input(chat_id, part_id, &body, next).await;
        if appended.as_ref().is_ok_and(|append| !append.duplicate) {
            self.live.wakes().wake(chat_id);
        }
        appended
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: Option<&str>,
        body: &str,
        next: Option<u64>,
    ) -> Result<InputAppend, TurnError> {
        match part_id {
            Some(part_id) => Ok(self
                .store
                .append_input_at(chat_id, part_id, body, now_ms(), next)
                .await?),
            // No idempotency key from the client: one of our own, which nobody can send again.
            None => {
                let part_id = uuid::Uuid::new_v4().to_string();
                let seq = self
                    .store
                    .append_minted_input(chat_id, &part_id, body, now_ms())
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
        self.begin(chat_id, input_seq, payload, LogEnd::Unread)
            .await
    }

    /// [`start`](Self::start), with `log_end`, the output log's next seq
    /// ([`next_output_seq`](Self::next_output_seq)) as read beside the input's append: the lease
    /// is taken at it without reading it again. A log that moved meanwhile is caught by the look
    /// at the log under the lease, which then lets go and tries again.
    pub async fn start_at(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: MessagePayload,
        log_end: u64,
    ) -> Result<(StartedTurn, TurnTask), TurnError> {
        self.begin(chat_id, input_seq, payload, LogEnd::Read(log_end))
            .await
    }

    /// [`start`](Self::start), knowing what `log_end` says of the output log.
    async fn begin(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: MessagePayload,
        log_end: LogEnd,
    ) -> Result<(StartedTurn, TurnTask), TurnError> {
        let (lease, reads) = self
            .acquire(chat_id, Some(input_seq), log_end, |input_seq| {
                self.start_reads(chat_id, input_seq)
            })
            .await?;
        self.launch(chat_id, input_seq, payload, lease, reads).await
    }

    /// Starts the turn answering `input_seq` under `lease`, with what was read under it.
    async fn launch(
        &self,
        chat_id: &str,
        input_seq: u64,
        payload: MessagePayload,
        lease: TurnLease,
        reads: StartReads,
    ) -> Result<(StartedTurn, TurnTask), TurnError> {
        // What the caller read of the input log may be stale by now: a turn that ended meanwhile
        // (its release raises the mark and frees the lease in one write) may have answered this
        // very input. Only under the lease is the mark settled.
        let StartReads {
            consumed,
            history,
            loaded,
        } = reads;
        let answered =
            consumed.map(|consumed| consumed.is_some_and(|consumed| consumed >= input_seq));
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
        let prepared = match history {
            Ok(history) => self.prepare(chat_id, input_seq, &payload, history).await,
            Err(error) => Err(error.into()),
        };
        match prepared {
            Ok(prepared) => {
                let live = Arc::new(LiveTurn::new(chat_id, lease.first_seq));
                self.live.insert(live.clone());
                let message_id = prepared.reply.id.clone();
                // The turn runs detached from the request; its span keeps it in the request's
                // trace.
                let span = super::span::turn(chat_id, input_seq, &self.agent.model().id());
                let turn = self.clone().execute(live.clone(), lease, prepared, loaded);
                let task = async move {
                    let units = WriteUnits::default();
                    units.count(turn).await;
                    super::span::record_write_units(&tracing::Span::current(), &units);
                }
                .instrument(span);
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
                let refused = UIMessage::new(String::new(), crate::ui::Role::Assistant);
                let end = super::events::TurnEnd {
                    input_seq: Some(input_seq),
                    message: &refused,
                    usage: crate::model::Usage::default(),
                    total_usage: None,
                    finish_reason: crate::model::FinishReason::Error,
                    stopped: false,
                    recovered: false,
                    error: Some(error.to_string()),
                };
                if let Some(event) = self.turn_event(chat_id, end).await {
                    self.record_event(&event).await;
                }
                self.store
                    .release_lease(chat_id, &lease.holder, Some(input_seq))
                    .await?;
                Err(error)
            }
        }
    }

    /// The reads a turn starts with, made side by side once it holds the lease (every one of
    /// them is settled only under the lease): the consumed mark, the history, the chat's state
    /// and the last input recorded so far.
    async fn start_reads(&self, chat_id: &str, input_seq: Option<u64>) -> StartReads {
        let (consumed, history, state, stop_after) = futures::join!(
            self.store.consumed_input(chat_id),
            self.store.messages(chat_id),
            self.store.state(chat_id),
            self.last_input_seq(chat_id, input_seq),
        );
        StartReads {
            consumed,
            history,
            loaded: LoadedRecord { state, stop_after },
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
        self.claim_from(chat_id, None).await
    }

    /// [`claim_pending`](Self::claim_pending) from `view`, a [`view`](Self::view) of the chat
    /// its caller read just now: the claim makes no look of its own before it takes the lease
    /// (as viewed, so a view that has aged since is caught by the lease's condition).
    pub async fn claim_viewed(
        &self,
        chat_id: &str,
        view: TurnView,
    ) -> Result<Option<(StartedTurn, TurnTask)>, TurnError> {
        self.claim_from(chat_id, Some(view)).await
    }

    async fn claim_from(
        &self,
        chat_id: &str,
        mut viewed: Option<TurnView>,
    ) -> Result<Option<(StartedTurn, TurnTask)>, TurnError> {
        loop {
            // One look at the lease, the consumed mark, the log's end and, where the store
            // reads them with it, the inputs after the mark. A turn that ends after this look
            // moves the mark, and the lease is then not taken as viewed: the claim goes the
            // usual way, which reads the log's end again under the lease.
            let view = match viewed.take() {
                Some(view) => view,
                None => self.store.turn_view(chat_id).await?,
            };
            if self.running_in(&view) {
                return Ok(None);
            }
            let pending = match &view.pending {
                Some(pending) if view.lease.is_none() => pending.clone(),
                _ => self.store.inputs(chat_id, view.consumed, 64).await?,
            };
            let next = pending.iter().find_map(|input| {
                serde_json::from_str::<ChatInput>(&input.body)
                    .ok()
                    .and_then(ChatInput::into_turn_payload)
                    .map(|payload| (input.seq, payload))
            });
            let Some((seq, payload)) = next else {
                return Ok(None);
            };
            let now = now_ms();
            let wanted = TurnLease {
                holder: uuid::Uuid::new_v4().to_string(),
                acquired_at_ms: now,
                expires_at_ms: now + self.settings.lease_ttl_ms,
                first_seq: view.next_output,
                input_seq: Some(seq),
            };
            let log_end = view.next_output;
            let viewed = match view.pending.is_some() && view.lease.is_none() {
                true => {
                    self.store
                        .acquire_lease_as_viewed(chat_id, wanted, now, &view)
                        .await?
                }
                false => None,
            };
            let started = match viewed {
                Some(lease) => {
                    // Under the lease as viewed: the view's history and state hold, and a stop
                    // recorded after the view's last input is meant for this turn.
                    let stop_after = pending.last().map(|input| input.seq);
                    let reads = StartReads {
                        consumed: Ok(view.consumed),
                        history: Ok(view.history),
                        loaded: LoadedRecord {
                            state: Ok(view.state),
                            stop_after,
                        },
                    };
                    self.launch(chat_id, seq, payload, lease, reads).await
                }
                None => {
                    self.begin(chat_id, seq, payload, LogEnd::Expected(log_end))
                        .await
                }
            };
            match started {
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
    pub(super) fn claim_next(&self, chat_id: String) -> ClaimFuture {
        let runner = self.clone();
        Box::pin(async move { runner.claim_pending(&chat_id).await })
    }

    /// Whether an unanswered message waits in the input log.
    pub async fn has_pending(&self, chat_id: &str) -> Result<bool, TurnError> {
        let consumed = self.store.consumed_input(chat_id).await?;
        let inputs = self.store.inputs(chat_id, consumed, 64).await?;
        Ok(inputs.iter().any(|input| {
            serde_json::from_str::<ChatInput>(&input.body)
                .ok()
                .and_then(ChatInput::into_turn_payload)
                .is_some()
        }))
    }

    /// Takes the lease, recovering an expired turn first. Once the lease is taken, `reads` (given
    /// the lease's input seq) runs beside the check that the log has not moved meanwhile, and
    /// its answer comes back with the lease.
    async fn acquire<R, Reads>(
        &self,
        chat_id: &str,
        input_seq: Option<u64>,
        log_end: LogEnd,
        reads: impl Fn(Option<u64>) -> Reads,
    ) -> Result<(TurnLease, R), TurnError>
    where
        Reads: Future<Output = R>,
    {
        let mut known = match log_end {
            LogEnd::Read(seq) => Some(seq),
            LogEnd::Unread | LogEnd::Expected(_) => None,
        };
        // A few rounds: each recovery or lost race moves the log forward and tries again.
        for _ in 0..4 {
            let first_seq = match known.take() {
                Some(seq) => seq,
                None => self.next_output_seq(chat_id).await?,
            };
            if let LogEnd::Expected(end) = log_end
                && end != first_seq
            {
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
                    self.recover(chat_id, &expired)
                        .instrument(super::span::recovery(chat_id, expired.input_seq))
                        .await?;
                    self.store
                        .release_lease(chat_id, &lease.holder, expired.input_seq)
                        .await?;
                }
                LeaseAcquire::Acquired {
                    lease,
                    expired: None,
                } => {
                    let (log_end, read) =
                        futures::join!(self.next_output_seq(chat_id), reads(lease.input_seq));
                    if log_end? == lease.first_seq {
                        return Ok((lease, read));
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

    /// The last input recorded so far: a stop after it is meant for this turn.
    async fn last_input_seq(&self, chat_id: &str, after: Option<u64>) -> Option<u64> {
        let mut last = after;
        loop {
            match self.store.inputs(chat_id, last, 256).await {
                Ok(inputs) if !inputs.is_empty() => last = inputs.last().map(|input| input.seq),
                _ => return last,
            }
        }
    }

    /// The output log's next seq: 0 for an empty log, else one past its last record's.
    pub async fn next_output_seq(&self, chat_id: &str) -> Result<u64, TurnError> {
        Ok(self
            .store
            .last_output_seq(chat_id)
            .await?
            .map_or(0, |seq| seq + 1))
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
            match self
                .acquire(chat_id, None, LogEnd::Unread, |_| std::future::ready(()))
                .await
            {
                Ok((mine, ())) => {
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

    /// Stops the running turn of a chat being closed, wherever it runs: in this process at
    /// once, in another through a stop in the input log, which its writer sees as it sees any
    /// stop (the stop is only recorded while a turn holds the chat).
    pub async fn stop_for_close(&self, chat_id: &str) -> Result<(), TurnError> {
        if let Some(live) = self.live.get(chat_id) {
            live.stop_signal().cancel();
            return Ok(());
        }
        if self.turn_running(chat_id).await? {
            let stop = ChatInput::Stop {
                message: Some("the chat was closed".to_owned()),
            };
            self.record_input(chat_id, None, &stop).await?;
        }
        Ok(())
    }
}

/// `session`, if it exists and is open.
fn open(chat_id: &str, session: Option<Session>) -> Result<Session, TurnError> {
    let session = session.ok_or_else(|| TurnError::NoSession(chat_id.to_owned()))?;
    if session.is_closed() {
        return Err(TurnError::SessionClosed(session.closed_reason.clone()));
    }
    if session.is_expired(now_ms()) {
        return Err(TurnError::SessionClosed(Some("expired".to_owned())));
    }
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::offline::OfflineModel;
    use crate::store::memory::MemoryStore;
    use crate::turn::ChatTrigger;
    use crate::ui::{Role, UIMessage, UIPart};

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

    /// A turn whose lease another executor took over (or an erase removed) learns it from its
    /// heartbeat's next renewal, not at its end: it stops at once, writes nothing more, and
    /// neither stores its reply nor frees the chat it no longer holds.
    #[tokio::test]
    async fn a_turn_that_lost_its_lease_stops_writing_at_once() {
        let store = Arc::new(MemoryStore::new());
        // About 45 words at 40 ms each: the reply would stream for almost two seconds.
        let model = OfflineModel::new().with_word_delay(std::time::Duration::from_millis(40));
        let agent = Arc::new(Agent::builder(Arc::new(model)).build());
        let runner = TurnRunner::new(store.clone(), agent).with_settings(WriterSettings {
            lease_ttl_ms: 300,
            flush_interval_ms: 20,
            ..WriterSettings::default()
        });
        let (seq, payload) = chat_with_input(&store, &runner).await;
        let (_, task) = runner.start("answered", seq, payload).await.expect("turn");
        let task = tokio::spawn(task);
        crate::runtime::sleep(std::time::Duration::from_millis(200)).await;

        // A recovery elsewhere found the lease lapsed (its clock a minute on) and took it.
        let later = now_ms() + 60_000;
        let taken = store
            .acquire_lease(
                "answered",
                TurnLease {
                    holder: "recovery".into(),
                    acquired_at_ms: later,
                    expires_at_ms: later + 600_000,
                    first_seq: 0,
                    input_seq: Some(seq),
                },
                later,
            )
            .await
            .expect("takeover");
        assert!(matches!(taken, LeaseAcquire::Acquired { .. }), "{taken:?}");
        let written = runner.read_log("answered", None).await.expect("log").len();
        assert!(written > 0, "the turn was streaming");

        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the turn ends")
            .expect("no panic");
        let log = runner.read_log("answered", None).await.expect("log");
        assert!(
            !log.iter().any(|record| record.body.is_turn_complete()),
            "no turn-complete from a turn that lost its lease: {} records",
            log.len()
        );
        let messages = store.messages("answered").await.expect("messages");
        assert_eq!(messages.len(), 1, "the user's message, and no reply");
        let lease = store.lease("answered").await.expect("lease");
        assert_eq!(lease.map(|lease| lease.holder), Some("recovery".into()));
    }
}
