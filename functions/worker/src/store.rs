//! The `Store` port on a Durable Object's own SQLite storage, with the schema and statements of
//! the core's SQL stores.
//!
//! A Durable Object runs one request's synchronous code at a time, and every method here is
//! synchronous SQL with no `await` inside: each is atomic and isolated without explicit
//! transactions (which the object's SQL API does not accept anyway). A batch of output records is
//! one statement, so it is written all or nothing.

use async_trait::async_trait;
use chatfn::store::sql::{SessionRow, json_column};
use chatfn::store::{
    InputAppend, InputRecord, LeaseAcquire, ListedSession, OutboxEvent, OutputRecord, Session,
    SessionCreate, SessionUpdate, Store, StoreError, StoreResult, TurnLease, check_output_batch,
    sql,
};
use chatfn::ui::UIMessage;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use worker::{ObjectNamespace, SqlCursor, SqlStorage, SqlStorageValue};

use crate::directory;
use crate::usage_counters::{self, CounterCall};

/// A [`Store`] in the calling Durable Object's storage.
pub struct DurableObjectStore {
    sql: SqlStorage,
    /// The chats' namespace, whose objects hold the usage counters several chats share.
    shared_counters: Option<ObjectNamespace>,
    /// The chats' namespace, whose directory objects this chat tells about itself.
    directory: Option<ObjectNamespace>,
}

impl DurableObjectStore {
    /// The store of the object whose storage this is, creating its tables on first use.
    pub fn open(sql: SqlStorage) -> StoreResult<Self> {
        let store = DurableObjectStore {
            sql,
            shared_counters: None,
            directory: None,
        };
        store.exec(sql::SCHEMA_V1, Vec::new())?;
        store.exec(sql::SCHEMA_V2_OUTBOX, Vec::new())?;
        store.exec(ACTIVITY_SCHEMA, Vec::new())?;
        store.exec(sql::SCHEMA_V3_COUNTERS, Vec::new())?;
        store.exec(DIRECTORY_VERSION_SCHEMA, Vec::new())?;
        Ok(store)
    }

    /// Tells the directory of chats (in `namespace`) about this chat whenever its session is
    /// created, closed or edited, a turn ends, or it is erased.
    pub fn with_directory(mut self, namespace: ObjectNamespace) -> Self {
        self.directory = Some(namespace);
        self
    }

    /// Tells the directory what the chat is now (or that it is gone). A directory that cannot
    /// be reached is logged, not an error of the write that changed the chat: the chat's own
    /// storage is what counts, and the chat's next change tells the directory again.
    pub async fn tell_directory(&self, chat_id: &str) {
        if let Err(error) = self.try_tell_directory(chat_id).await {
            worker::console_error!("chat directory: {error}");
        }
    }

    async fn try_tell_directory(&self, chat_id: &str) -> StoreResult<()> {
        let Some(namespace) = &self.directory else {
            return Ok(());
        };
        let version = self.next_directory_version()?;
        match self.listed_session(chat_id).await? {
            Some(listed) => {
                let entry = directory::DirectoryEntry {
                    message_title: chatfn::http::message_title(&self.messages(chat_id).await?),
                    session: listed.session,
                    last_activity_ms: listed.last_activity_ms,
                };
                directory::put(namespace, entry, version).await
            }
            None => directory::remove(namespace, chat_id, version).await,
        }
    }

    /// A version above every one this chat told the directory before: the time, or one more
    /// than the last when several changes fall in one millisecond.
    fn next_directory_version(&self) -> StoreResult<u64> {
        #[derive(Deserialize)]
        struct Row {
            version: u64,
        }
        let last: Option<Row> = self.first("SELECT version FROM directory_version", Vec::new())?;
        let version = chatfn::clock::now_ms().max(last.map_or(0, |row| row.version + 1));
        self.write(
            "INSERT INTO directory_version (id, version) VALUES (0, ?1) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version",
            vec![int(version.min(MAX_SAFE))?],
        )?;
        Ok(version)
    }

    /// Keeps the usage counters that several chats share (an owner's token budget) in the
    /// object of their scope in `namespace`, rather than in this chat's object.
    pub fn with_shared_counters(mut self, namespace: ObjectNamespace) -> Self {
        self.shared_counters = Some(namespace);
        self
    }

    /// Where `key` is kept when it is shared by several chats: the namespace and its scope.
    fn shared_counters<'a>(&'a self, key: &'a str) -> Option<(&'a ObjectNamespace, &'a str)> {
        let namespace = self.shared_counters.as_ref()?;
        Some((namespace, chatfn::turn::shared_counter_scope(key)?))
    }

    /// `Store::add_to_counter` on this object's own storage.
    pub fn add_to_local_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        if limit == Some(0) {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct Row {
            count: u64,
        }
        let limit = limit.map_or(SqlStorageValue::Null, |limit| {
            SqlStorageValue::Integer(limit.min(MAX_SAFE) as i64)
        });
        let row: Option<Row> = self.first(
            sql::ADD_TO_COUNTER,
            vec![
                text(key),
                int(amount.min(MAX_SAFE))?,
                int(expires_at_ms.min(MAX_SAFE))?,
                limit,
                int(now_ms.min(MAX_SAFE))?,
            ],
        )?;
        Ok(row.map(|row| row.count))
    }

    /// `Store::counter` on this object's own storage.
    pub fn local_counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        #[derive(Deserialize)]
        struct Row {
            count: u64,
        }
        let row: Option<Row> =
            self.first(sql::COUNTER, vec![text(key), int(now_ms.min(MAX_SAFE))?])?;
        Ok(row.map_or(0, |row| row.count))
    }

    /// Removes the counters whose window has passed (the objects of shared counters have no
    /// session whose expiry would remove them).
    pub fn remove_passed_counters(&self, now_ms: u64) -> StoreResult<()> {
        self.write(
            "DELETE FROM counters WHERE expires_at_ms <= ?1",
            vec![int(now_ms.min(MAX_SAFE))?],
        )?;
        Ok(())
    }

    /// The chat this object holds: an object is named after its chat and holds its one session.
    pub fn chat_id(&self) -> StoreResult<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            chat_id: String,
        }
        Ok(self
            .first::<Row>("SELECT chat_id FROM sessions LIMIT 1", Vec::new())?
            .map(|row| row.chat_id))
    }

    fn exec(&self, query: &str, params: Vec<SqlStorageValue>) -> StoreResult<SqlCursor> {
        self.sql.exec(query, params).map_err(backend)
    }

    fn rows<T: DeserializeOwned>(
        &self,
        query: &str,
        params: Vec<SqlStorageValue>,
    ) -> StoreResult<Vec<T>> {
        self.exec(query, params)?.to_array().map_err(backend)
    }

    fn first<T: DeserializeOwned>(
        &self,
        query: &str,
        params: Vec<SqlStorageValue>,
    ) -> StoreResult<Option<T>> {
        Ok(self.rows(query, params)?.into_iter().next())
    }

    /// Runs a write and says how many rows it changed.
    fn write(&self, query: &str, params: Vec<SqlStorageValue>) -> StoreResult<usize> {
        Ok(self.exec(query, params)?.rows_written())
    }

    fn require_session(&self, chat_id: &str) -> StoreResult<()> {
        let found: Option<Value> = self.first(sql::SESSION_EXISTS, vec![text(chat_id)])?;
        match found {
            Some(_) => Ok(()),
            None => Err(StoreError::NoSession(chat_id.to_owned())),
        }
    }

    fn select_session(&self, statement: &str, key: &str) -> StoreResult<Option<Session>> {
        self.first::<SessionRow>(statement, vec![text(key)])?
            .map(SessionRow::into_session)
            .transpose()
    }

    fn max_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        #[derive(Deserialize)]
        struct Max {
            seq: Option<u64>,
        }
        Ok(self
            .first::<Max>(sql::MAX_OUTPUT_SEQ, vec![text(chat_id)])?
            .and_then(|max| max.seq))
    }

    fn select_lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        Ok(self
            .first::<LeaseRow>(sql::LEASE, vec![text(chat_id)])?
            .map(LeaseRow::into_lease))
    }
}

/// When the chat's last turn ended. A table of its own rather than a column of `sessions`: the
/// schema is applied on every open, and `CREATE TABLE IF NOT EXISTS` can be, where adding a
/// column cannot.
const ACTIVITY_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS activity (\
     chat_id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL)";

/// The last version this chat told the directory (one row).
const DIRECTORY_VERSION_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS directory_version (\
     id INTEGER PRIMARY KEY CHECK (id = 0), version INTEGER NOT NULL)";

/// ?1 chat id, ?2 now.
const RECORD_ACTIVITY: &str = "INSERT INTO activity (chat_id, at_ms) VALUES (?1, ?2) \
     ON CONFLICT (chat_id) DO UPDATE SET at_ms = excluded.at_ms";

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("durable object storage: {error}"))
}

fn text(value: &str) -> SqlStorageValue {
    SqlStorageValue::String(value.to_owned())
}

fn optional_text(value: Option<&str>) -> SqlStorageValue {
    value.map_or(SqlStorageValue::Null, text)
}

/// The largest integer JavaScript carries exactly, and so the largest this storage keeps.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// A `u64` as an integer JavaScript can carry exactly, or an error.
fn int(value: u64) -> StoreResult<SqlStorageValue> {
    if value > MAX_SAFE {
        return Err(StoreError::Backend(format!(
            "{value} is too large for Durable Object storage"
        )));
    }
    Ok(SqlStorageValue::Integer(value as i64))
}

fn optional_int(value: Option<u64>) -> StoreResult<SqlStorageValue> {
    value.map_or(Ok(SqlStorageValue::Null), int)
}

/// `seq > after` as a bound: -1 when reading from the start. No stored seq exceeds
/// [`MAX_SAFE`], so clamping a larger cursor still reads nothing.
fn after_bound(after: Option<u64>) -> SqlStorageValue {
    match after {
        None => SqlStorageValue::Integer(-1),
        Some(after) => SqlStorageValue::Integer(after.min(MAX_SAFE) as i64),
    }
}

fn limit_bound(limit: usize) -> SqlStorageValue {
    SqlStorageValue::Integer((limit as u64).min(MAX_SAFE) as i64)
}

fn to_json(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(backend)
}

#[derive(Deserialize)]
struct LeaseRow {
    holder: String,
    acquired_at_ms: u64,
    expires_at_ms: u64,
    first_seq: u64,
    input_seq: Option<u64>,
}

impl LeaseRow {
    fn into_lease(self) -> TurnLease {
        TurnLease {
            holder: self.holder,
            acquired_at_ms: self.acquired_at_ms,
            expires_at_ms: self.expires_at_ms,
            first_seq: self.first_seq,
            input_seq: self.input_seq,
        }
    }
}

#[derive(Deserialize)]
struct EventRow {
    chat_id: String,
    id: String,
    body: String,
    attempts: u32,
    next_attempt_ms: u64,
}

impl EventRow {
    fn into_event(self) -> OutboxEvent {
        OutboxEvent {
            id: self.id,
            chat_id: self.chat_id,
            body: self.body,
            attempts: self.attempts,
            next_attempt_ms: self.next_attempt_ms,
        }
    }
}

#[derive(Deserialize)]
struct Seq {
    seq: u64,
}

#[derive(Deserialize)]
struct Json {
    json: String,
}

#[async_trait]
impl Store for DurableObjectStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        if let Some(existing) = self.select_session(sql::SESSION_BY_CHAT, &session.chat_id)? {
            return Ok(SessionCreate::Existing(existing));
        }
        let chat_id = session.chat_id.clone();
        let metadata = session.metadata.as_ref().map(to_json).transpose()?;
        self.write(
            sql::INSERT_SESSION,
            vec![
                text(&session.id),
                text(&session.chat_id),
                text(&session.kind),
                text(&session.task_identifier),
                SqlStorageValue::String(to_json(&session.trigger_config)?),
                SqlStorageValue::String(to_json(&session.tags)?),
                optional_text(metadata.as_deref()),
                optional_text(session.owner.as_deref()),
                int(session.created_at_ms)?,
                int(session.updated_at_ms)?,
                optional_int(session.expires_at_ms)?,
                optional_int(session.closed_at_ms)?,
                optional_text(session.closed_reason.as_deref()),
            ],
        )?;
        self.tell_directory(&chat_id).await;
        Ok(SessionCreate::Created(session))
    }

    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        self.select_session(sql::SESSION_BY_CHAT, chat_id)
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        self.select_session(sql::SESSION_BY_ID, session_id)
    }

    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session> {
        self.write(
            sql::CLOSE_SESSION,
            vec![
                text(chat_id),
                int(now_ms)?,
                optional_text(reason.as_deref()),
            ],
        )?;
        let session = self
            .select_session(sql::SESSION_BY_CHAT, chat_id)?
            .ok_or_else(|| StoreError::NoSession(chat_id.to_owned()))?;
        self.tell_directory(chat_id).await;
        Ok(session)
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend> {
        self.require_session(chat_id)?;
        if let Some(existing) =
            self.first::<Seq>(sql::INPUT_SEQ_OF_PART, vec![text(chat_id), text(part_id)])?
        {
            return Ok(InputAppend {
                seq: existing.seq,
                duplicate: true,
            });
        }
        let inserted = self
            .first::<Seq>(
                sql::INSERT_INPUT,
                vec![text(chat_id), text(part_id), text(body), int(now_ms)?],
            )?
            .ok_or_else(|| StoreError::Backend("the input insert returned no seq".into()))?;
        Ok(InputAppend {
            seq: inserted.seq,
            duplicate: false,
        })
    }

    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        #[derive(Deserialize)]
        struct Row {
            seq: u64,
            part_id: String,
            body: String,
            timestamp_ms: u64,
        }
        let rows: Vec<Row> = self.rows(
            sql::INPUTS_AFTER,
            vec![text(chat_id), after_bound(after), limit_bound(limit)],
        )?;
        Ok(rows
            .into_iter()
            .map(|row| InputRecord {
                seq: row.seq,
                part_id: row.part_id,
                body: row.body,
                timestamp_ms: row.timestamp_ms,
            })
            .collect())
    }

    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        #[derive(Deserialize)]
        struct Row {
            consumed_input: Option<u64>,
        }
        Ok(self
            .first::<Row>(sql::CONSUMED_INPUT, vec![text(chat_id)])?
            .and_then(|row| row.consumed_input))
    }

    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        self.require_session(chat_id)?;
        check_output_batch(
            records.iter().map(|record| record.seq),
            self.max_output_seq(chat_id)?,
        )?;
        if records.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(records.len());
        for record in records {
            int(record.seq)?;
            int(record.timestamp_ms)?;
            batch.push(json!({
                "seq": record.seq,
                "timestampMs": record.timestamp_ms,
                "body": to_json(&record.body)?,
            }));
        }
        self.write(
            sql::INSERT_OUTPUT_BATCH,
            vec![text(chat_id), SqlStorageValue::String(to_json(&batch)?)],
        )?;
        Ok(())
    }

    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        #[derive(Deserialize)]
        struct Row {
            seq: u64,
            timestamp_ms: u64,
            body: String,
        }
        let rows: Vec<Row> = self.rows(
            sql::OUTPUT_AFTER,
            vec![text(chat_id), after_bound(after), limit_bound(limit)],
        )?;
        rows.into_iter()
            .map(|row| {
                Ok(OutputRecord {
                    seq: row.seq,
                    timestamp_ms: row.timestamp_ms,
                    body: json_column(&row.body)?,
                })
            })
            .collect()
    }

    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.max_output_seq(chat_id)
    }

    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire> {
        self.require_session(chat_id)?;
        let current = self.select_lease(chat_id)?;
        if let Some(current) = current.as_ref().filter(|l| !l.is_expired(now_ms)) {
            return Ok(LeaseAcquire::Held(current.clone()));
        }
        self.write(
            sql::PUT_LEASE,
            vec![
                text(chat_id),
                text(&lease.holder),
                int(lease.acquired_at_ms)?,
                int(lease.expires_at_ms)?,
                int(lease.first_seq)?,
                optional_int(lease.input_seq)?,
            ],
        )?;
        Ok(LeaseAcquire::Acquired {
            lease,
            expired: current,
        })
    }

    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        let renewed = self.write(
            sql::RENEW_LEASE,
            vec![
                text(chat_id),
                text(holder),
                int(expires_at_ms)?,
                int(now_ms)?,
            ],
        )?;
        if renewed == 0 {
            return Err(StoreError::LeaseLost);
        }
        Ok(())
    }

    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()> {
        let released = self.write(sql::DELETE_LEASE, vec![text(chat_id), text(holder)])?;
        if released == 0 {
            return Err(StoreError::LeaseLost);
        }
        if let Some(consumed) = consumed_input {
            self.write(sql::RECORD_CONSUMED, vec![text(chat_id), int(consumed)?])?;
        }
        self.write(
            RECORD_ACTIVITY,
            vec![text(chat_id), int(chatfn::clock::now_ms())?],
        )?;
        self.tell_directory(chat_id).await;
        Ok(())
    }

    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        self.select_lease(chat_id)
    }

    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        let rows: Vec<Json> = self.rows(sql::MESSAGES, vec![text(chat_id)])?;
        rows.iter().map(|row| json_column(&row.json)).collect()
    }

    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        self.require_session(chat_id)?;
        let params = vec![
            text(chat_id),
            text(&message.id),
            SqlStorageValue::String(to_json(message)?),
        ];
        if self.write(sql::REPLACE_MESSAGE, params.clone())? == 0 {
            self.write(sql::APPEND_MESSAGE, params)?;
        }
        Ok(())
    }

    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        self.require_session(chat_id)?;
        self.write(sql::TRUNCATE_MESSAGES, vec![text(chat_id), text(from_id)])?;
        Ok(())
    }

    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        self.first::<Json>(sql::STATE, vec![text(chat_id)])?
            .map(|row| json_column(&row.json))
            .transpose()
    }

    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        self.require_session(chat_id)?;
        self.write(
            sql::PUT_STATE,
            vec![text(chat_id), SqlStorageValue::String(to_json(state)?)],
        )?;
        Ok(())
    }

    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.write(
            sql::INSERT_EVENT,
            vec![
                text(&event.chat_id),
                text(&event.id),
                text(&event.body),
                int(u64::from(event.attempts))?,
                int(event.next_attempt_ms)?,
            ],
        )?;
        Ok(())
    }

    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        let rows: Vec<EventRow> = self.rows(
            sql::DUE_EVENTS,
            vec![int(now_ms.min(MAX_SAFE))?, limit_bound(limit)],
        )?;
        Ok(rows.into_iter().map(EventRow::into_event).collect())
    }

    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        self.write(
            sql::RESCHEDULE_EVENT,
            vec![
                text(chat_id),
                text(id),
                int(u64::from(attempts))?,
                int(next_attempt_ms)?,
            ],
        )?;
        Ok(())
    }

    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        self.write(sql::REMOVE_EVENT, vec![text(chat_id), text(id)])?;
        Ok(())
    }

    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        #[derive(Deserialize)]
        struct Activity {
            at_ms: u64,
        }
        let Some(session) = self.select_session(sql::SESSION_BY_CHAT, chat_id)? else {
            return Ok(None);
        };
        let activity: Option<Activity> = self.first(
            "SELECT at_ms FROM activity WHERE chat_id = ?1",
            vec![text(chat_id)],
        )?;
        Ok(Some(ListedSession {
            session,
            last_activity_ms: activity.map(|activity| activity.at_ms),
            message_title: None,
        }))
    }

    async fn update_session(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let mut session = self
            .select_session(sql::SESSION_BY_CHAT, chat_id)?
            .ok_or_else(|| StoreError::NoSession(chat_id.to_owned()))?;
        update.apply(&mut session, now_ms);
        let metadata = session.metadata.as_ref().map(to_json).transpose()?;
        self.write(
            sql::UPDATE_SESSION,
            vec![
                text(chat_id),
                text(&to_json(&session.tags)?),
                optional_text(metadata.as_deref()),
                int(session.updated_at_ms)?,
            ],
        )?;
        self.tell_directory(chat_id).await;
        Ok(session)
    }

    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        self.write(
            "DELETE FROM activity WHERE chat_id = ?1",
            vec![text(chat_id)],
        )?;
        let mut erased = 0;
        for statement in sql::DELETE_CHAT {
            erased = self.write(statement, vec![text(chat_id)])?;
        }
        // Also when nothing was left: a directory that missed the erase hears of it again.
        self.tell_directory(chat_id).await;
        Ok(erased > 0)
    }

    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        match self.shared_counters(key) {
            Some((namespace, scope)) => {
                let call = CounterCall {
                    key: key.to_owned(),
                    amount: Some(amount),
                    limit,
                    expires_at_ms,
                    now_ms,
                };
                usage_counters::call(namespace, scope, &call).await
            }
            None => self.add_to_local_counter(key, amount, limit, expires_at_ms, now_ms),
        }
    }

    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        match self.shared_counters(key) {
            Some((namespace, scope)) => {
                let call = CounterCall {
                    key: key.to_owned(),
                    amount: None,
                    limit: None,
                    expires_at_ms: now_ms,
                    now_ms,
                };
                Ok(usage_counters::call(namespace, scope, &call)
                    .await?
                    .unwrap_or(0))
            }
            None => self.local_counter(key, now_ms),
        }
    }
}
