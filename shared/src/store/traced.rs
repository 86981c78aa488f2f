//! A store whose every call runs in a span of its own (`store {operation}`, target
//! `chatfn::store`, level DEBUG): in a trace, a turn's store calls show as its children. With
//! no subscriber interested in DEBUG spans of `chatfn::store`, a call costs one check more.
//!
//! Every method of [`Store`] is forwarded here, the defaulted ones included, so the store's own
//! behaviour is kept whatever it overrides.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tracing::Instrument as _;

use super::{
    ChatErasure, InputAppend, InputRecord, LeaseAcquire, LeasedAppend, ListedSession, OutboxEvent,
    OutputCadence, OutputRecord, Session, SessionCreate, SessionPage, SessionQuery, SessionUpdate,
    Store, StoreResult, TurnLease, TurnView,
};
use crate::ui::UIMessage;

/// `store` with a span around each call.
pub struct TracedStore {
    store: Arc<dyn Store>,
}

impl TracedStore {
    /// Wraps `store`.
    pub fn wrap(store: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(TracedStore { store })
    }
}

/// The span of one store call on `chat_id`.
fn span(operation: &'static str, chat_id: &str) -> tracing::Span {
    tracing::debug_span!(
        target: "chatfn::store",
        "store",
        otel.name = format_args!("store {operation}"),
        otel.kind = "client",
        db.operation.name = operation,
        gen_ai.conversation.id = chat_id,
    )
}

/// The span of one call on the usage counter `key`.
fn counter_span(operation: &'static str, key: &str) -> tracing::Span {
    tracing::debug_span!(
        target: "chatfn::store",
        "store",
        otel.name = format_args!("store {operation}"),
        otel.kind = "client",
        db.operation.name = operation,
        chatfn.counter = key,
    )
}

#[async_trait]
impl Store for TracedStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        let span = span("create_session", &session.chat_id);
        self.store.create_session(session).instrument(span).await
    }

    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        let span = span("session", chat_id);
        self.store.session(chat_id).instrument(span).await
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        let span = span("session_by_id", "");
        self.store.session_by_id(session_id).instrument(span).await
    }

    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let span = span("close_session", chat_id);
        self.store
            .close_session(chat_id, reason, now_ms)
            .instrument(span)
            .await
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend> {
        let span = span("append_input", chat_id);
        self.store
            .append_input(chat_id, part_id, body, now_ms)
            .instrument(span)
            .await
    }

    async fn next_input_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let span = span("next_input_seq", chat_id);
        self.store.next_input_seq(chat_id).instrument(span).await
    }

    async fn append_input_at(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
        next: Option<u64>,
    ) -> StoreResult<InputAppend> {
        let span = span("append_input_at", chat_id);
        self.store
            .append_input_at(chat_id, part_id, body, now_ms, next)
            .instrument(span)
            .await
    }

    async fn append_minted_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<u64> {
        let span = span("append_minted_input", chat_id);
        self.store
            .append_minted_input(chat_id, part_id, body, now_ms)
            .instrument(span)
            .await
    }

    async fn turn_view(&self, chat_id: &str) -> StoreResult<TurnView> {
        let span = span("turn_view", chat_id);
        self.store.turn_view(chat_id).instrument(span).await
    }

    async fn append_input_leased(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
        lease: TurnLease,
        view: &TurnView,
    ) -> StoreResult<LeasedAppend> {
        let span = span("append_input_leased", chat_id);
        self.store
            .append_input_leased(chat_id, part_id, body, now_ms, lease, view)
            .instrument(span)
            .await
    }

    async fn acquire_lease_as_viewed(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
        view: &TurnView,
    ) -> StoreResult<Option<TurnLease>> {
        let span = span("acquire_lease_as_viewed", chat_id);
        self.store
            .acquire_lease_as_viewed(chat_id, lease, now_ms, view)
            .instrument(span)
            .await
    }

    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        let span = span("inputs", chat_id);
        self.store
            .inputs(chat_id, after, limit)
            .instrument(span)
            .await
    }

    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let span = span("consumed_input", chat_id);
        self.store.consumed_input(chat_id).instrument(span).await
    }

    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        let span = span("append_output", chat_id);
        self.store
            .append_output(chat_id, records)
            .instrument(span)
            .await
    }

    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        let span = span("output", chat_id);
        self.store
            .output(chat_id, after, limit)
            .instrument(span)
            .await
    }

    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let span = span("last_output_seq", chat_id);
        self.store.last_output_seq(chat_id).instrument(span).await
    }

    fn output_cadence(&self) -> OutputCadence {
        self.store.output_cadence()
    }

    async fn follow_output(&self, chat_id: &str, until_ms: u64) -> StoreResult<()> {
        let span = span("follow_output", chat_id);
        self.store
            .follow_output(chat_id, until_ms)
            .instrument(span)
            .await
    }

    async fn output_followed_until(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let span = span("output_followed_until", chat_id);
        self.store
            .output_followed_until(chat_id)
            .instrument(span)
            .await
    }

    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire> {
        let span = span("acquire_lease", chat_id);
        self.store
            .acquire_lease(chat_id, lease, now_ms)
            .instrument(span)
            .await
    }

    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        let span = span("renew_lease", chat_id);
        self.store
            .renew_lease(chat_id, holder, expires_at_ms, now_ms)
            .instrument(span)
            .await
    }

    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()> {
        let span = span("release_lease", chat_id);
        self.store
            .release_lease(chat_id, holder, consumed_input)
            .instrument(span)
            .await
    }

    async fn release_lease_with_state(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
        state: &Value,
    ) -> StoreResult<()> {
        let span = span("release_lease_with_state", chat_id);
        self.store
            .release_lease_with_state(chat_id, holder, consumed_input, state)
            .instrument(span)
            .await
    }

    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        let span = span("lease", chat_id);
        self.store.lease(chat_id).instrument(span).await
    }

    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        let span = span("messages", chat_id);
        self.store.messages(chat_id).instrument(span).await
    }

    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        let span = span("put_message", chat_id);
        self.store
            .put_message(chat_id, message)
            .instrument(span)
            .await
    }

    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        let span = span("truncate_messages", chat_id);
        self.store
            .truncate_messages(chat_id, from_id)
            .instrument(span)
            .await
    }

    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        let span = span("state", chat_id);
        self.store.state(chat_id).instrument(span).await
    }

    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        let span = span("put_state", chat_id);
        self.store.put_state(chat_id, state).instrument(span).await
    }

    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        let span = span("put_event", &event.chat_id);
        self.store.put_event(event).instrument(span).await
    }

    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        let span = span("due_events", "");
        self.store.due_events(now_ms, limit).instrument(span).await
    }

    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        let span = span("reschedule_event", chat_id);
        self.store
            .reschedule_event(chat_id, id, attempts, next_attempt_ms)
            .instrument(span)
            .await
    }

    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        let span = span("remove_event", chat_id);
        self.store.remove_event(chat_id, id).instrument(span).await
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        let span = span("list_sessions", "");
        self.store.list_sessions(query).instrument(span).await
    }

    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        let span = span("listed_session", chat_id);
        self.store.listed_session(chat_id).instrument(span).await
    }

    async fn update_session(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let span = span("update_session", chat_id);
        self.store
            .update_session(chat_id, update, now_ms)
            .instrument(span)
            .await
    }

    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        let span = span("delete_chat", chat_id);
        self.store.delete_chat(chat_id).instrument(span).await
    }

    async fn refuse_new_turns(&self, chat_id: &str) -> StoreResult<()> {
        let span = span("refuse_new_turns", chat_id);
        self.store.refuse_new_turns(chat_id).instrument(span).await
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        let span = counter_span("add_to_counter", key);
        self.store
            .add_to_counter(key, amount, limit, expires_at_ms, now_ms)
            .instrument(span)
            .await
    }

    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        let span = counter_span("counter", key);
        self.store.counter(key, now_ms).instrument(span).await
    }

    async fn delete_chat_step(&self, chat_id: &str, max_items: usize) -> StoreResult<ChatErasure> {
        let span = span("delete_chat_step", chat_id);
        self.store
            .delete_chat_step(chat_id, max_items)
            .instrument(span)
            .await
    }
}
