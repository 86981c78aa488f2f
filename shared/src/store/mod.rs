//! The `Store` port: everything chatfn keeps about a chat, and its implementations.
//!
//! Every host implements this one trait (memory for tests, SQLite for the local server, DynamoDB on
//! AWS, Durable Object storage on Cloudflare). The conformance suite in `conformance` (built with
//! the `conformance` feature) pins down the semantics every implementation must share.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod listing;
pub mod memory;
mod select;
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod traced;
pub mod write_units;

pub use listing::{ListKey, ListedSession, SessionFilter, SessionPage, SessionQuery};
pub use select::{OpenedStore, StoreChoice, StoreChoiceError, from_config};
pub use traced::TracedStore;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ui::UIMessage;

/// A chat session: created once per chat id, closed at most once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// `session_…`: the id chatfn gives the session.
    pub id: String,
    /// The chat id the client chose (the Trigger wire's `externalId`).
    pub chat_id: String,
    /// Always [`Session::KIND`] (`type` on the wire).
    #[serde(rename = "type")]
    pub kind: String,
    /// The Trigger.dev task the session runs (`chat` unless the creator named another).
    pub task_identifier: String,
    /// The creator's `triggerConfig`, kept and returned as given (an object).
    pub trigger_config: Value,
    /// Tags the creator gave, for its own bookkeeping.
    pub tags: Vec<String>,
    /// Metadata the creator gave, returned with the session.
    pub metadata: Option<Value>,
    /// The subject of the end user who created it, when an ID token authenticated the caller.
    pub owner: Option<String>,
    /// When the session was created, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When the session last changed, in ms since the Unix epoch.
    pub updated_at_ms: u64,
    /// When the session stops taking messages, if the creator set a limit.
    pub expires_at_ms: Option<u64>,
    /// When the session was closed, if it was.
    pub closed_at_ms: Option<u64>,
    /// Why it was closed, as the closer said.
    pub closed_reason: Option<String>,
}

impl Session {
    /// The only session type chatfn serves (the Trigger wire's `type`).
    pub const KIND: &'static str = "chat.agent";

    /// A new open session for `chat_id` with a fresh id, created at `now_ms`: task `chat`, an
    /// empty trigger config, no tags, metadata, owner or expiry.
    pub fn new(chat_id: impl Into<String>, now_ms: u64) -> Session {
        Session {
            id: format!("session_{}", uuid::Uuid::new_v4().simple()),
            chat_id: chat_id.into(),
            kind: Session::KIND.to_owned(),
            task_identifier: "chat".to_owned(),
            trigger_config: Value::Object(serde_json::Map::new()),
            tags: Vec::new(),
            metadata: None,
            owner: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            expires_at_ms: None,
            closed_at_ms: None,
            closed_reason: None,
        }
    }

    /// Whether the session has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed_at_ms.is_some()
    }

    /// Whether the session's expiry has passed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| at <= now_ms)
    }
}

/// What an update of a session changes: each `Some` replaces the field, `None` keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionUpdate {
    /// The new tags (empty clears them).
    pub tags: Option<Vec<String>>,
    /// The new metadata (`Some(None)` clears it).
    pub metadata: Option<Option<Value>>,
}

impl SessionUpdate {
    /// Applies the update to `session`, changed at `now_ms`.
    pub fn apply(&self, session: &mut Session, now_ms: u64) {
        if let Some(tags) = &self.tags {
            session.tags = tags.clone();
        }
        if let Some(metadata) = &self.metadata {
            session.metadata = metadata.clone();
        }
        session.updated_at_ms = session.updated_at_ms.max(now_ms);
    }
}

/// The result of an idempotent session create.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionCreate {
    /// The session was created by this call.
    Created(Session),
    /// A session for that chat id already existed; it is returned unchanged.
    Existing(Session),
}

/// One accepted input (a message, a stop, …) in a chat's input log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The input's place in the chat's input log, from 0.
    pub seq: u64,
    /// The client's idempotency key (`X-Part-Id`), or one chatfn made up.
    pub part_id: String,
    /// The raw JSON body the client sent.
    pub body: String,
    /// When the input was accepted, in ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// The result of an idempotent input append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputAppend {
    /// The input's sequence number (the original one for a duplicate).
    pub seq: u64,
    /// True when the part id had been appended before; nothing new was written.
    pub duplicate: bool,
}

/// One record of a chat's output log. Sequence numbers grow for the life of the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// The record's place in the output log.
    pub seq: u64,
    /// When the record was written, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// What the record holds.
    pub body: OutputBody,
}

/// The header that marks an output record as a control record.
pub const CONTROL_HEADER: &str = "trigger-control";
/// The control subtype that closes a turn.
pub const TURN_COMPLETE: &str = "turn-complete";

/// What an output record holds: a chunk of a reply, or a control record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OutputBody {
    /// A UI message chunk, kept as the JSON text it is sent as. `record_id` is unique per record.
    /// Both are shared, not copied, between the live feed, the pending batch and an in-memory
    /// store: a reply's chunks are most of what a streaming turn holds.
    Chunk {
        /// The record's id on the wire.
        record_id: Arc<str>,
        /// The chunk's JSON.
        chunk: Arc<str>,
    },
    /// A control record (turn boundaries and the like), as name/value headers.
    Control {
        /// The record's headers, in order.
        headers: Vec<(String, String)>,
    },
}

impl OutputBody {
    /// The value of a control record's header, if this is one.
    pub fn control_header(&self, name: &str) -> Option<&str> {
        match self {
            OutputBody::Control { headers } => headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str()),
            OutputBody::Chunk { .. } => None,
        }
    }

    /// Whether this is the control record that closes a turn.
    pub fn is_turn_complete(&self) -> bool {
        self.control_header(CONTROL_HEADER) == Some(TURN_COMPLETE)
    }
}

/// An event waiting in the outbox to be delivered (see `crate::events`). It is written with the
/// turn's last writes and removed once delivered; a sweeper finds the ones whose next attempt is
/// due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    /// The event's id (`webhook-id`): derived from what it is about, so a repeat has the same.
    pub id: String,
    /// The chat it is about.
    pub chat_id: String,
    /// The JSON body, as sent.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due, in ms since the Unix epoch.
    pub next_attempt_ms: u64,
}

/// The right to run the one turn of a chat. It expires, so a crashed executor is recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnLease {
    /// Unique per acquisition; renew and release must present it.
    pub holder: String,
    /// When the lease was taken, in ms since the Unix epoch.
    pub acquired_at_ms: u64,
    /// When the lease lapses unless renewed, in ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// The first output sequence number this turn writes.
    pub first_seq: u64,
    /// The input this turn answers, when it answers one.
    pub input_seq: Option<u64>,
}

impl TurnLease {
    /// Whether the lease has lapsed at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms <= now_ms
    }
}

/// The result of trying to take a chat's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAcquire {
    /// The lease is the caller's.
    Acquired {
        /// The lease as stored.
        lease: TurnLease,
        /// The lease it replaced because it had expired: that turn must be recovered.
        expired: Option<TurnLease>,
    },
    /// Another live turn holds it.
    Held(TurnLease),
}

/// What a turn's start needs to know of a chat, read in one go (see [`Store::turn_view`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnView {
    /// The chat's session, if it has one.
    pub session: Option<Session>,
    /// The chat's lease, live or expired, if one is stored.
    pub lease: Option<TurnLease>,
    /// The highest input seq a finished turn has consumed.
    pub consumed: Option<u64>,
    /// Where the next input goes, when the store read it (`None`: the append finds it).
    pub next_input: Option<u64>,
    /// The output log's next seq: 0 for an empty log, else one past its last record's.
    pub next_output: u64,
    /// The chat's finished messages, in conversation order.
    pub history: Vec<UIMessage>,
    /// The chat's state as last saved.
    pub state: Option<Value>,
    /// Every input after the consumed mark, in order, when the store read them with the view.
    pub pending: Option<Vec<InputRecord>>,
}

/// The result of [`Store::append_input_leased`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeasedAppend {
    /// The input is recorded at the lease's `input_seq`, and the lease is the caller's, taken
    /// at the view's `next_output` with nothing written to the chat since the view was read.
    Leased(TurnLease),
    /// The input is recorded at this seq; no lease was taken.
    Recorded(u64),
}

/// How often a running turn writes its output to a store. Readers in the turn's own process get
/// every chunk from memory at once; the log's batches are for readers in other processes (a
/// reload served elsewhere) and for recovering a turn whose process died.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputCadence {
    /// Short batches all the time: writes are cheap (a local database, a Durable Object).
    #[default]
    Steady,
    /// Short batches while a reader in another process follows the log (it says so with
    /// [`Store::follow_output`]), long ones otherwise: every write is billed (DynamoDB), and
    /// most turns are read only where they run.
    WhileFollowed,
}

/// How far one step of erasing a chat got (see [`Store::delete_chat_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatErasure {
    /// Whether this step found the chat's session (and erased it).
    pub existed: bool,
    /// Whether nothing of the chat is left.
    pub finished: bool,
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No session for that chat.
    #[error("no session for chat {0}")]
    NoSession(String),
    /// An output record with that sequence number already exists.
    #[error("output sequence number {0} is already taken")]
    SequenceTaken(u64),
    /// The caller does not hold the lease it presented.
    #[error("the turn lease is no longer held")]
    LeaseLost,
    /// The backing store failed.
    #[error("store failure: {0}")]
    Backend(String),
    /// This store cannot do that (yet); the message says what.
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
}

/// A store operation's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// The rule every store applies to the seqs of an output batch before writing it (see
/// `conformance`): output seqs only grow, so a seq at or below `highest` (the highest seq written
/// so far) is taken, written or skipped. Fails with `SequenceTaken` for a seq the batch holds
/// twice, else for its lowest seq when that is taken.
pub fn check_output_batch(
    seqs: impl IntoIterator<Item = u64>,
    highest: Option<u64>,
) -> StoreResult<()> {
    let mut seqs: Vec<u64> = seqs.into_iter().collect();
    seqs.sort_unstable();
    if let Some(pair) = seqs.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(StoreError::SequenceTaken(pair[0]));
    }
    match (seqs.first(), highest) {
        (Some(&lowest), Some(highest)) if lowest <= highest => {
            Err(StoreError::SequenceTaken(lowest))
        }
        _ => Ok(()),
    }
}

/// Everything chatfn keeps, per chat. Implementations must be safe under concurrent callers in
/// different processes: the lease, idempotent appends and sequence numbers rely on atomic
/// conditional writes, never on in-process locks alone.
#[async_trait]
pub trait Store: Send + Sync {
    // Sessions.
    /// Creates the session unless one exists for `session.chat_id`, in which case that one is
    /// returned untouched.
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate>;
    /// The session of `chat_id`, if it has one.
    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>>;
    /// Looks a session up by its `session_…` id.
    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>>;
    /// Closes the session (idempotent: a second close keeps the first time and reason).
    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session>;

    // Input log.
    /// Appends an input unless one with the same part id exists; sequence numbers start at 0.
    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend>;
    /// Appends an input under a part id chatfn minted for it just now, which no client can send
    /// again: there is nothing to deduplicate, so a store may keep no claim for it. Returns its
    /// seq, numbered as [`append_input`](Self::append_input) numbers them.
    async fn append_minted_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<u64> {
        Ok(self.append_input(chat_id, part_id, body, now_ms).await?.seq)
    }
    /// Where the chat's next input goes, where the store finds it with a read of its own
    /// (`None`: it does not, or the log is read as the input is written): read beside other
    /// work (the session's), it spares [`append_input_at`](Self::append_input_at) that read.
    async fn next_input_seq(&self, _chat_id: &str) -> StoreResult<Option<u64>> {
        Ok(None)
    }
    /// [`append_input`](Self::append_input), trying seq `next` first (as
    /// [`next_input_seq`](Self::next_input_seq) read it): a seq taken since is found taken by
    /// the write, and the append goes on as usual. By default `next` is not needed.
    async fn append_input_at(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
        _next: Option<u64>,
    ) -> StoreResult<InputAppend> {
        self.append_input(chat_id, part_id, body, now_ms).await
    }

    /// What a turn's start reads of the chat, side by side where the store can. The history
    /// and state are as of the view: only a holder of the lease may rely on them, and
    /// [`append_input_leased`](Self::append_input_leased) says when it does.
    async fn turn_view(&self, chat_id: &str) -> StoreResult<TurnView> {
        let (session, lease, consumed, last_output, history, state) = futures::join!(
            self.session(chat_id),
            self.lease(chat_id),
            self.consumed_input(chat_id),
            self.last_output_seq(chat_id),
            self.messages(chat_id),
            self.state(chat_id),
        );
        Ok(TurnView {
            session: session?,
            lease: lease?,
            consumed: consumed?,
            next_input: None,
            next_output: last_output?.map_or(0, |seq| seq + 1),
            history: history?,
            state: state?,
            pending: None,
        })
    }
    /// Appends an input under a part id chatfn minted (as
    /// [`append_minted_input`](Self::append_minted_input)) and, where the store can at once,
    /// takes the chat's lease for it: only when `view` saw no lease and the chat has not changed
    /// since (no turn ran in between), so the view's history and state hold under the lease.
    /// `lease` is taken with its `input_seq` set to the input's. By default the input alone is
    /// recorded, and the caller takes the lease as after any append.
    async fn append_input_leased(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
        _lease: TurnLease,
        _view: &TurnView,
    ) -> StoreResult<LeasedAppend> {
        let seq = self
            .append_minted_input(chat_id, part_id, body, now_ms)
            .await?;
        Ok(LeasedAppend::Recorded(seq))
    }

    /// Takes the chat's lease as [`acquire_lease`](Self::acquire_lease) would, but only where
    /// `view` saw it free and the chat has not changed since (no turn ran in between), so that
    /// the view's history and state hold under it: the lease as stored, or `None` when it was
    /// not taken that way (the caller then takes it as usual). By default, `None`.
    async fn acquire_lease_as_viewed(
        &self,
        _chat_id: &str,
        _lease: TurnLease,
        _now_ms: u64,
        _view: &TurnView,
    ) -> StoreResult<Option<TurnLease>> {
        Ok(None)
    }

    /// Inputs with `seq > after` (all with `None`), in order, at most `limit`.
    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>>;
    /// The highest input sequence number a finished turn has consumed.
    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>>;

    // Output log.
    /// Appends records whose sequence numbers are all free; all or nothing.
    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()>;
    /// Records with `seq > after` (all with `None`), in order, at most `limit`.
    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>>;
    /// The highest sequence number in the output log, `None` while it is empty.
    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>>;

    /// How often a running turn wants its output written; see [`OutputCadence`].
    fn output_cadence(&self) -> OutputCadence {
        OutputCadence::Steady
    }
    /// A reader in another process follows the chat's output log live until `until_ms`. A
    /// mark never moves back; stores with the steady cadence need none and keep none.
    async fn follow_output(&self, _chat_id: &str, _until_ms: u64) -> StoreResult<()> {
        Ok(())
    }
    /// Until when a reader in another process said it follows the chat's output log: `None`
    /// when nobody did (or the store keeps no marks).
    async fn output_followed_until(&self, _chat_id: &str) -> StoreResult<Option<u64>> {
        Ok(None)
    }

    // The turn lease.
    /// Takes the chat's lease for a turn unless a live lease is held (even by the same holder);
    /// an expired lease is replaced, and returned so its turn can be recovered.
    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire>;
    /// Pushes the expiry out; `LeaseLost` if the lease changed hands.
    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()>;
    /// Ends the turn: drops the lease and records the input it consumed, in one write.
    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()>;
    /// Ends the turn as [`release_lease`](Self::release_lease) does, with the chat's state
    /// saved: by default [`put_state`](Self::put_state), then the release; a store may do both in
    /// one write. When the release lands, [`state`](Self::state) reads `state`; with `LeaseLost`,
    /// the state may or may not have been saved.
    async fn release_lease_with_state(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
        state: &Value,
    ) -> StoreResult<()> {
        self.put_state(chat_id, state).await?;
        self.release_lease(chat_id, holder, consumed_input).await
    }
    /// The chat's current lease, live or expired, if one is stored.
    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>>;

    // Finished messages, in conversation order.
    /// The chat's finished messages, in conversation order.
    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>>;
    /// Replaces the message with the same id in place, or appends it.
    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()>;
    /// Removes the message with this id and everything after it.
    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()>;

    // Per-chat state that survives between turns.
    /// The chat's state as last saved, `None` for a chat that has none.
    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>>;
    /// Saves the chat's state, replacing what was there.
    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()>;

    // The outbox of events to deliver.
    /// Adds an event unless one with its id is there already (that one is kept untouched).
    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()>;
    /// Events whose next attempt is due at `now_ms`, the most overdue first, at most `limit`.
    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>>;
    /// Records a failed attempt: the count of attempts and when the next is due. An event that
    /// is gone (delivered meanwhile) stays gone.
    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()>;
    /// Removes a delivered (or given up) event; removing one that is gone is no error.
    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()>;

    // Listing, editing and erasing chats.
    /// One page of sessions, filled and ordered as [`listing`] says: a store scans its sessions
    /// (the query owner's, or all) in key order and hands them to [`listing::collect_page`].
    async fn list_sessions(&self, _query: &SessionQuery) -> StoreResult<SessionPage> {
        Err(StoreError::Unsupported("listing sessions"))
    }
    /// The session of `chat_id` as a listing shows it, with when its last turn ended.
    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        Ok(self.session(chat_id).await?.map(|session| ListedSession {
            session,
            last_activity_ms: None,
            message_title: None,
        }))
    }
    /// Changes the session's tags and metadata; `NoSession` when there is none.
    async fn update_session(
        &self,
        _chat_id: &str,
        _update: &SessionUpdate,
        _now_ms: u64,
    ) -> StoreResult<Session> {
        Err(StoreError::Unsupported("updating sessions"))
    }
    /// Erases the chat: its session, alias, inputs, output log, lease, messages and state. The
    /// chat reads as one that never existed, and a session created under its id later is a new
    /// chat. Returns whether there was anything to erase; erasing twice is no error.
    async fn delete_chat(&self, _chat_id: &str) -> StoreResult<bool> {
        Err(StoreError::Unsupported("erasing chats"))
    }
    /// Closes the chat to new turns ahead of its erase: from here on no lease is taken on it,
    /// while a running turn can still be asked to stop and let the chat go. For a store whose
    /// erase cannot refuse a writer that checked the chat before it (DynamoDB); the default
    /// does nothing, as a store that checks the session in each write's own transaction needs
    /// no such warning.
    async fn refuse_new_turns(&self, _chat_id: &str) -> StoreResult<()> {
        Ok(())
    }

    // Usage counters (the usage limits): one count per key, seen alike by every instance.
    /// Adds `amount` to the counter `key`, atomically, unless `limit` is given and the counter
    /// holds `limit` or more already; returns the new count, or `None` when refused. A counter
    /// that does not exist, or whose expiry has passed at `now_ms`, counts from zero and takes
    /// `expires_at_ms` as its expiry (after which it may be deleted).
    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>>;
    /// The counter `key` at `now_ms`: zero when it does not exist or has expired.
    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64>;

    // Erasing a chat too large to erase at once.
    /// One step of [`delete_chat`](Self::delete_chat) that deletes about `max_items` stored
    /// items: the first step takes the session and its alias, so the chat reads as gone at once,
    /// and each further step more of the rest, until one answers `finished`. A store whose erase
    /// is one local transaction, quick however large the chat, erases it all in one step.
    async fn delete_chat_step(&self, chat_id: &str, _max_items: usize) -> StoreResult<ChatErasure> {
        Ok(ChatErasure {
            existed: self.delete_chat(chat_id).await?,
            finished: true,
        })
    }
}
