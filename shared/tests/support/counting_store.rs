//! A store that counts its writes, so a test can prove a refused request left no trace: not in a
//! chat the test knows about, and not under a key (a hostile id) it could not think to look up.
//! It can also run a piece of work right before its next lease read, to put a race in a test.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chatfn::store::memory::MemoryStore;
use chatfn::store::{
    InputAppend, InputRecord, LeaseAcquire, ListedSession, OutboxEvent, OutputCadence,
    OutputRecord, Session, SessionCreate, SessionPage, SessionQuery, SessionUpdate, Store,
    StoreResult, TurnLease,
};
use chatfn::ui::UIMessage;
use serde_json::Value;

/// A [`MemoryStore`] behind a counter of every call that may change what is stored.
type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
pub struct CountingStore {
    inner: MemoryStore,
    writes: AtomicUsize,
    session_id_lookups: AtomicUsize,
    output_reads: AtomicUsize,
    before_lease_read: Mutex<Option<Work>>,
}

impl CountingStore {
    pub fn new() -> Arc<Self> {
        Arc::new(CountingStore::default())
    }

    /// Calls that may have written, successful or not.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Sessions looked up by their `session_…` id.
    pub fn session_id_lookups(&self) -> usize {
        self.session_id_lookups.load(Ordering::SeqCst)
    }

    /// Reads of the output log.
    pub fn output_reads(&self) -> usize {
        self.output_reads.load(Ordering::SeqCst)
    }

    /// Runs `work` once, right before the next lease read answers.
    pub fn before_next_lease_read(&self, work: impl Future<Output = ()> + Send + 'static) {
        *self.before_lease_read.lock().unwrap() = Some(Box::pin(work));
    }

    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for CountingStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        self.wrote();
        self.inner.create_session(session).await
    }

    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        self.inner.session(chat_id).await
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        self.session_id_lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.session_by_id(session_id).await
    }

    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session> {
        self.wrote();
        self.inner.close_session(chat_id, reason, now_ms).await
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend> {
        self.wrote();
        self.inner
            .append_input(chat_id, part_id, body, now_ms)
            .await
    }

    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        self.inner.inputs(chat_id, after, limit).await
    }

    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.inner.consumed_input(chat_id).await
    }

    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        self.wrote();
        self.inner.append_output(chat_id, records).await
    }

    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        self.output_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.output(chat_id, after, limit).await
    }

    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.inner.last_output_seq(chat_id).await
    }

    fn output_cadence(&self) -> OutputCadence {
        self.inner.output_cadence()
    }

    async fn follow_output(&self, chat_id: &str, until_ms: u64) -> StoreResult<()> {
        self.wrote();
        self.inner.follow_output(chat_id, until_ms).await
    }

    async fn output_followed_until(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.inner.output_followed_until(chat_id).await
    }

    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire> {
        self.wrote();
        self.inner.acquire_lease(chat_id, lease, now_ms).await
    }

    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        self.wrote();
        self.inner
            .renew_lease(chat_id, holder, expires_at_ms, now_ms)
            .await
    }

    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()> {
        self.wrote();
        self.inner
            .release_lease(chat_id, holder, consumed_input)
            .await
    }

    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        let work = self.before_lease_read.lock().unwrap().take();
        if let Some(work) = work {
            work.await;
        }
        self.inner.lease(chat_id).await
    }

    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        self.inner.messages(chat_id).await
    }

    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        self.wrote();
        self.inner.put_message(chat_id, message).await
    }

    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        self.wrote();
        self.inner.truncate_messages(chat_id, from_id).await
    }

    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        self.inner.state(chat_id).await
    }

    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        self.wrote();
        self.inner.put_state(chat_id, state).await
    }

    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.wrote();
        self.inner.put_event(event).await
    }

    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.inner.due_events(now_ms, limit).await
    }

    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        self.wrote();
        self.inner
            .reschedule_event(chat_id, id, attempts, next_attempt_ms)
            .await
    }

    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        self.wrote();
        self.inner.remove_event(chat_id, id).await
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        self.inner.list_sessions(query).await
    }

    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        self.inner.listed_session(chat_id).await
    }

    async fn update_session(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now_ms: u64,
    ) -> StoreResult<Session> {
        self.wrote();
        self.inner.update_session(chat_id, update, now_ms).await
    }

    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        self.wrote();
        self.inner.delete_chat(chat_id).await
    }

    async fn refuse_new_turns(&self, chat_id: &str) -> StoreResult<()> {
        self.wrote();
        self.inner.refuse_new_turns(chat_id).await
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        self.wrote();
        self.inner
            .add_to_counter(key, amount, limit, expires_at_ms, now_ms)
            .await
    }

    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        self.inner.counter(key, now_ms).await
    }
}
