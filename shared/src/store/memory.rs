//! The in-memory store: for tests and the local server's `--memory` mode.
//!
//! All state sits behind one mutex, which is never held across an await: every method does its
//! whole read or check-then-write under one lock, so each is atomic like the conditional writes
//! of the durable stores.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::Value;

use super::listing::{self, ListKey, ListedSession, SessionPage, SessionQuery};
use super::{
    InputAppend, InputRecord, LeaseAcquire, OutboxEvent, OutputCadence, OutputRecord, Session,
    SessionCreate, SessionUpdate, Store, StoreError, StoreResult, TurnLease, check_output_batch,
};
use crate::ui::UIMessage;

/// A [`Store`] that keeps everything in process memory; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    cadence: OutputCadence,
}

#[derive(Debug, Default)]
struct Inner {
    /// A chat exists exactly when its session does: every write needs the session.
    chats: HashMap<String, Chat>,
    /// `session_…` id → chat id.
    session_ids: HashMap<String, String>,
    /// Events to deliver, by chat id and event id.
    outbox: HashMap<(String, String), OutboxEvent>,
    /// Usage counters: key → (count, expiry in ms).
    counters: HashMap<String, (u64, u64)>,
}

#[derive(Debug)]
struct Chat {
    session: Session,
    /// Indexed by seq: input seqs are dense from 0.
    inputs: Vec<InputRecord>,
    /// part id → seq, for idempotent appends.
    part_ids: HashMap<String, u64>,
    consumed_input: Option<u64>,
    /// In seq order. Seqs only grow (`check_output_batch`), so a batch goes at the end; a Vec
    /// rather than a map, as a reply's records are most of what a chat holds.
    output: Vec<OutputRecord>,
    lease: Option<TurnLease>,
    /// Until when a reader in another process follows the output log.
    followed_until: Option<u64>,
    messages: Vec<UIMessage>,
    state: Option<Value>,
    /// When the last turn ended.
    last_activity_ms: Option<u64>,
}

impl Chat {
    fn new(session: Session) -> Self {
        Chat {
            session,
            inputs: Vec::new(),
            part_ids: HashMap::new(),
            consumed_input: None,
            output: Vec::new(),
            lease: None,
            followed_until: None,
            messages: Vec::new(),
            state: None,
            last_activity_ms: None,
        }
    }
}

impl Inner {
    fn chat(&self, chat_id: &str) -> Option<&Chat> {
        self.chats.get(chat_id)
    }

    fn chat_mut(&mut self, chat_id: &str) -> StoreResult<&mut Chat> {
        self.chats
            .get_mut(chat_id)
            .ok_or_else(|| StoreError::NoSession(chat_id.to_owned()))
    }

    /// The lease of a chat, if `holder` holds it.
    fn held_lease(&mut self, chat_id: &str, holder: &str) -> StoreResult<&mut Chat> {
        match self.chats.get_mut(chat_id) {
            Some(chat) if chat.lease.as_ref().is_some_and(|l| l.holder == holder) => Ok(chat),
            _ => Err(StoreError::LeaseLost),
        }
    }
}

impl Chat {
    fn listed(&self) -> ListedSession {
        ListedSession {
            session: self.session.clone(),
            last_activity_ms: self.last_activity_ms,
            message_title: None,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that asks turns for the given cadence (it keeps follow marks either way): for
    /// testing how turns write to a store that bills each write.
    pub fn with_output_cadence(cadence: OutputCadence) -> Self {
        MemoryStore {
            cadence,
            ..Self::default()
        }
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        // A panic while holding the lock may have left a chat half-written: refuse to go on.
        self.inner
            .lock()
            .map_err(|_| StoreError::Backend("memory store mutex poisoned".into()))
    }

    /// Runs a read on a chat; an unknown chat reads as `default`.
    fn read<T>(&self, chat_id: &str, default: T, f: impl FnOnce(&Chat) -> T) -> StoreResult<T> {
        Ok(self.lock()?.chat(chat_id).map_or(default, f))
    }
}

/// At most `limit` values of `range`, for `seq > after` reads.
fn page<'a, T: Clone + 'a>(range: impl Iterator<Item = &'a T>, limit: usize) -> Vec<T> {
    range.take(limit).cloned().collect()
}

/// The first seq a `seq > after` read starts at.
fn start(after: Option<u64>) -> u64 {
    after.map_or(0, |after| after.saturating_add(1))
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        let mut inner = self.lock()?;
        if let Some(chat) = inner.chats.get(&session.chat_id) {
            return Ok(SessionCreate::Existing(chat.session.clone()));
        }
        if inner.session_ids.contains_key(&session.id) {
            return Err(StoreError::Backend(format!(
                "session id {} is already used by another chat",
                session.id
            )));
        }
        inner
            .session_ids
            .insert(session.id.clone(), session.chat_id.clone());
        inner
            .chats
            .insert(session.chat_id.clone(), Chat::new(session.clone()));
        Ok(SessionCreate::Created(session))
    }

    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        self.read(chat_id, None, |chat| Some(chat.session.clone()))
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        let inner = self.lock()?;
        Ok(inner
            .session_ids
            .get(session_id)
            .and_then(|chat_id| inner.chat(chat_id))
            .map(|chat| chat.session.clone()))
    }

    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let mut inner = self.lock()?;
        let session = &mut inner.chat_mut(chat_id)?.session;
        if !session.is_closed() {
            session.closed_at_ms = Some(now_ms);
            session.closed_reason = reason;
            session.updated_at_ms = now_ms;
        }
        Ok(session.clone())
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend> {
        let mut inner = self.lock()?;
        let chat = inner.chat_mut(chat_id)?;
        if let Some(&seq) = chat.part_ids.get(part_id) {
            return Ok(InputAppend {
                seq,
                duplicate: true,
            });
        }
        let seq = chat.inputs.len() as u64;
        chat.part_ids.insert(part_id.to_owned(), seq);
        chat.inputs.push(InputRecord {
            seq,
            part_id: part_id.to_owned(),
            body: body.to_owned(),
            timestamp_ms: now_ms,
        });
        Ok(InputAppend {
            seq,
            duplicate: false,
        })
    }

    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        self.read(chat_id, Vec::new(), |chat| {
            let from = usize::try_from(start(after)).unwrap_or(usize::MAX);
            page(chat.inputs.iter().skip(from), limit)
        })
    }

    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.read(chat_id, None, |chat| chat.consumed_input)
    }

    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let chat = inner.chat_mut(chat_id)?;
        // Check the whole batch first so a refusal writes nothing.
        check_output_batch(
            records.iter().map(|record| record.seq),
            chat.output.last().map(|record| record.seq),
        )?;
        let first_new = chat.output.len();
        chat.output.extend_from_slice(records);
        chat.output[first_new..].sort_unstable_by_key(|record| record.seq);
        Ok(())
    }

    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        self.read(chat_id, Vec::new(), |chat| {
            let from = chat
                .output
                .partition_point(|record| record.seq < start(after));
            page(chat.output[from..].iter(), limit)
        })
    }

    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.read(chat_id, None, |chat| {
            chat.output.last().map(|record| record.seq)
        })
    }

    fn output_cadence(&self) -> OutputCadence {
        self.cadence
    }

    async fn follow_output(&self, chat_id: &str, until_ms: u64) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let followed = &mut inner.chat_mut(chat_id)?.followed_until;
        *followed = Some(followed.map_or(until_ms, |at| at.max(until_ms)));
        Ok(())
    }

    async fn output_followed_until(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.read(chat_id, None, |chat| chat.followed_until)
    }

    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire> {
        let mut inner = self.lock()?;
        let chat = inner.chat_mut(chat_id)?;
        match &chat.lease {
            Some(current) if !current.is_expired(now_ms) => Ok(LeaseAcquire::Held(current.clone())),
            _ => {
                let expired = chat.lease.replace(lease.clone());
                Ok(LeaseAcquire::Acquired { lease, expired })
            }
        }
    }

    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let chat = inner.held_lease(chat_id, holder)?;
        match chat.lease.as_mut() {
            Some(lease) if !lease.is_expired(now_ms) => {
                lease.expires_at_ms = expires_at_ms;
                Ok(())
            }
            _ => Err(StoreError::LeaseLost),
        }
    }

    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let chat = inner.held_lease(chat_id, holder)?;
        chat.lease = None;
        chat.consumed_input = chat.consumed_input.max(consumed_input);
        chat.last_activity_ms = Some(crate::clock::now_ms());
        Ok(())
    }

    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        self.read(chat_id, None, |chat| chat.lease.clone())
    }

    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        self.read(chat_id, Vec::new(), |chat| chat.messages.clone())
    }

    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let messages = &mut inner.chat_mut(chat_id)?.messages;
        match messages.iter_mut().find(|m| m.id == message.id) {
            Some(existing) => *existing = message.clone(),
            None => messages.push(message.clone()),
        }
        Ok(())
    }

    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        let mut inner = self.lock()?;
        let messages = &mut inner.chat_mut(chat_id)?.messages;
        if let Some(position) = messages.iter().position(|m| m.id == from_id) {
            messages.truncate(position);
        }
        Ok(())
    }

    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        self.read(chat_id, None, |chat| chat.state.clone())
    }

    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        self.lock()?.chat_mut(chat_id)?.state = Some(state.clone());
        Ok(())
    }

    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.lock()?
            .outbox
            .entry((event.chat_id.clone(), event.id.clone()))
            .or_insert_with(|| event.clone());
        Ok(())
    }

    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        let inner = self.lock()?;
        let mut due: Vec<OutboxEvent> = inner
            .outbox
            .values()
            .filter(|event| event.next_attempt_ms <= now_ms)
            .cloned()
            .collect();
        due.sort_by(|a, b| (a.next_attempt_ms, &a.id).cmp(&(b.next_attempt_ms, &b.id)));
        due.truncate(limit);
        Ok(due)
    }

    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        let mut inner = self.lock()?;
        if let Some(event) = inner.outbox.get_mut(&(chat_id.to_owned(), id.to_owned())) {
            event.attempts = attempts;
            event.next_attempt_ms = next_attempt_ms;
        }
        Ok(())
    }

    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        self.lock()?
            .outbox
            .remove(&(chat_id.to_owned(), id.to_owned()));
        Ok(())
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        let owned: Vec<ListedSession> = self
            .lock()?
            .chats
            .values()
            .filter(|chat| query.owner.is_none() || chat.session.owner == query.owner)
            .map(Chat::listed)
            .collect();
        listing::collect_page(query, |from: Option<ListKey>, limit| {
            let found = listing::scan_sorted(owned.clone(), query.direction, from.as_ref(), limit);
            async move { Ok(found) }
        })
        .await
    }

    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        self.read(chat_id, None, |chat| Some(chat.listed()))
    }

    async fn update_session(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let mut inner = self.lock()?;
        let session = &mut inner.chat_mut(chat_id)?.session;
        update.apply(session, now_ms);
        Ok(session.clone())
    }

    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        let mut inner = self.lock()?;
        let Some(chat) = inner.chats.remove(chat_id) else {
            return Ok(false);
        };
        inner.session_ids.remove(&chat.session.id);
        Ok(true)
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        let mut inner = self.lock()?;
        let counter = inner
            .counters
            .entry(key.to_owned())
            .or_insert((0, expires_at_ms));
        if counter.1 <= now_ms {
            *counter = (0, expires_at_ms);
        }
        if limit.is_some_and(|limit| counter.0 >= limit) {
            return Ok(None);
        }
        counter.0 = counter.0.saturating_add(amount);
        Ok(Some(counter.0))
    }

    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        Ok(self
            .lock()?
            .counters
            .get(key)
            .filter(|(_, expires_at_ms)| *expires_at_ms > now_ms)
            .map_or(0, |(count, _)| *count))
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;
    use crate::store::OutputCadence;

    #[tokio::test]
    async fn conforms() {
        crate::store::conformance::run_all(|| async { MemoryStore::new() }).await;
    }

    #[tokio::test]
    async fn conforms_keeping_follow_marks() {
        crate::store::conformance::run_all(|| async {
            MemoryStore::with_output_cadence(OutputCadence::WhileFollowed)
        })
        .await;
    }
}
