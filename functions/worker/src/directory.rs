//! The directory of chats: what `GET /api/v1/sessions` and `DELETE /api/v1/owners/{sub}/sessions`
//! read on the Worker, without waking every chat's object.
//!
//! Each chat lives in its own Durable Object, so a listing cannot ask them all. Instead every
//! chat's object tells the directory about itself when its session is created, closed or
//! edited, when a turn ends (its last activity and title) and when it is erased; the directory
//! keeps one row per chat, ordered as listings read them.
//!
//! The directory is [`SHARDS`] objects of the chats' namespace, `directory#0` to `directory#7`
//! (no chat has that name: chat ids have no `#`), and a chat's shard follows from its id alone:
//! a chat's writes and its erasure go to one place without reading anything first, and no
//! object takes more than its share of the turns' writes (one small write per turn). A listing,
//! of every chat or of one owner's (an index per shard serves both), asks all shards at once
//! and merges their pages, which is correct because each shard returns its rows in the
//! listing's order.
//!
//! Each message carries a version that only grows per chat, so a late message never undoes a
//! newer one; an erased chat keeps a short row marked removed for that reason, dropped after
//! an hour.

use std::sync::Arc;

use async_trait::async_trait;
use chatfn::store::listing::{Direction, ListKey, collect_page, scan_sorted};
use chatfn::store::memory::MemoryStore;
use chatfn::store::{
    InputAppend, InputRecord, LeaseAcquire, ListedSession, OutboxEvent, OutputRecord, Session,
    SessionCreate, SessionPage, SessionQuery, Store, StoreError, StoreResult, TurnLease,
};
use chatfn::ui::UIMessage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use worker::{Method, ObjectNamespace, Request, RequestInit, SqlStorage, SqlStorageValue};

/// The internal path of a directory call. No outside request reaches it: the entry forwards
/// only the requests that name a chat, and those keep their own paths.
pub const PATH: &str = "/__chatfn/directory";

/// The internal path on which the entry asks a chat's object to erase its chat.
pub const ERASE_PATH: &str = "/__chatfn/erase";

/// How many objects the directory is spread over. Fixed: a chat's shard follows from it.
pub const SHARDS: u32 = 8;

/// How long an erased chat's row stays (marked removed), so a late message cannot bring it back.
const REMOVED_KEPT_MS: u64 = 60 * 60 * 1000;

/// What the directory keeps of a chat: what a listing shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    pub session: Session,
    pub last_activity_ms: Option<u64>,
    pub message_title: Option<String>,
}

impl DirectoryEntry {
    fn into_listed(self) -> ListedSession {
        ListedSession {
            session: self.session,
            last_activity_ms: self.last_activity_ms,
            message_title: self.message_title,
        }
    }
}

/// A call to one shard.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "camelCase")]
enum DirectoryCall {
    /// The chat as it is now.
    Put {
        entry: Box<DirectoryEntry>,
        version: u64,
    },
    /// The chat is gone.
    Remove { chat_id: String, version: u64 },
    /// Up to `limit` chats (of `owner`, or all) strictly past `from`, in the listing's order.
    Scan {
        owner: Option<String>,
        from: Option<(u64, String)>,
        newer: bool,
        limit: usize,
        now_ms: u64,
    },
}

fn failed(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("chat directory: {error}"))
}

/// The shard that holds `chat_id`.
fn shard_of(chat_id: &str) -> u32 {
    crc32fast::hash(chat_id.as_bytes()) % SHARDS
}

/// Tells the directory that the chat is now `entry`.
pub async fn put(
    namespace: &ObjectNamespace,
    entry: DirectoryEntry,
    version: u64,
) -> StoreResult<()> {
    let shard = shard_of(&entry.session.chat_id);
    let entry = Box::new(entry);
    call(namespace, shard, &DirectoryCall::Put { entry, version }).await?;
    Ok(())
}

/// Tells the directory that the chat is gone.
pub async fn remove(namespace: &ObjectNamespace, chat_id: &str, version: u64) -> StoreResult<()> {
    let call_body = DirectoryCall::Remove {
        chat_id: chat_id.to_owned(),
        version,
    };
    call(namespace, shard_of(chat_id), &call_body).await?;
    Ok(())
}

async fn call(
    namespace: &ObjectNamespace,
    shard: u32,
    call: &DirectoryCall,
) -> StoreResult<String> {
    // The object's fetch is a JavaScript promise; the Worker runs on one thread.
    worker::send::SendFuture::new(call_object(namespace, shard, call)).await
}

async fn call_object(
    namespace: &ObjectNamespace,
    shard: u32,
    call: &DirectoryCall,
) -> StoreResult<String> {
    let stub = namespace
        .id_from_name(&format!("directory#{shard}"))
        .and_then(|id| id.get_stub())
        .map_err(failed)?;
    let body = serde_json::to_string(call).map_err(failed)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init(&format!("https://directory.internal{PATH}"), &init)
        .map_err(failed)?;
    let mut response = stub.fetch_with_request(request).await.map_err(failed)?;
    let text = response.text().await.map_err(failed)?;
    if response.status_code() != 200 {
        return Err(failed(format!("{}: {text}", response.status_code())));
    }
    Ok(text)
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS directory (\
     chat_id TEXT PRIMARY KEY, version INTEGER NOT NULL, removed INTEGER NOT NULL, \
     created_at_ms INTEGER NOT NULL, owner TEXT, entry TEXT)";
const ORDER_INDEX: &str = "CREATE INDEX IF NOT EXISTS directory_order \
     ON directory (removed, created_at_ms, chat_id)";
const OWNER_INDEX: &str = "CREATE INDEX IF NOT EXISTS directory_owner \
     ON directory (owner, removed, created_at_ms, chat_id)";

/// ?1 chat id, ?2 version, ?3 removed, ?4 created, ?5 owner, ?6 entry.
const UPSERT: &str = "INSERT INTO directory (chat_id, version, removed, created_at_ms, owner, entry) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (chat_id) DO UPDATE SET \
     version = excluded.version, removed = excluded.removed, \
     created_at_ms = excluded.created_at_ms, owner = excluded.owner, entry = excluded.entry \
     WHERE excluded.version > directory.version";

/// Serves a directory call in the shard's object, on its own storage.
pub fn serve(sql: &SqlStorage, body: &[u8]) -> StoreResult<String> {
    for statement in [SCHEMA, ORDER_INDEX, OWNER_INDEX] {
        sql.exec(statement, Vec::new()).map_err(failed)?;
    }
    let call: DirectoryCall = serde_json::from_slice(body).map_err(failed)?;
    match call {
        DirectoryCall::Put { entry, version } => {
            let json = serde_json::to_string(&entry).map_err(failed)?;
            let session = &entry.session;
            let owner = session
                .owner
                .clone()
                .map_or(SqlStorageValue::Null, SqlStorageValue::String);
            let params = vec![
                SqlStorageValue::String(session.chat_id.clone()),
                int(version),
                int(0),
                int(session.created_at_ms),
                owner,
                SqlStorageValue::String(json),
            ];
            sql.exec(UPSERT, params).map_err(failed)?;
            Ok("{}".to_owned())
        }
        DirectoryCall::Remove { chat_id, version } => {
            let params = vec![
                SqlStorageValue::String(chat_id),
                int(version),
                int(1),
                int(0),
                SqlStorageValue::Null,
                SqlStorageValue::Null,
            ];
            sql.exec(UPSERT, params).map_err(failed)?;
            Ok("{}".to_owned())
        }
        DirectoryCall::Scan {
            owner,
            from,
            newer,
            limit,
            now_ms,
        } => {
            sql.exec(
                "DELETE FROM directory WHERE removed = 1 AND version < ?1",
                vec![int(now_ms.saturating_sub(REMOVED_KEPT_MS))],
            )
            .map_err(failed)?;
            let entries = scan_rows(sql, owner, from, newer, limit)?;
            serde_json::to_string(&entries).map_err(failed)
        }
    }
}

fn scan_rows(
    sql: &SqlStorage,
    owner: Option<String>,
    from: Option<(u64, String)>,
    newer: bool,
    limit: usize,
) -> StoreResult<Vec<DirectoryEntry>> {
    #[derive(Deserialize)]
    struct Row {
        entry: String,
    }
    let (past, order) = if newer {
        (
            "(created_at_ms > ?1 OR (created_at_ms = ?1 AND chat_id > ?2))",
            "ASC",
        )
    } else {
        (
            "(created_at_ms < ?1 OR (created_at_ms = ?1 AND chat_id < ?2))",
            "DESC",
        )
    };
    // Without a cursor, start past either end of the creation times.
    let (created, chat_id) = match from {
        Some((created, chat_id)) => (int(created), SqlStorageValue::String(chat_id)),
        None if newer => (
            SqlStorageValue::Integer(-1),
            SqlStorageValue::String(String::new()),
        ),
        None => (
            SqlStorageValue::Integer(i64::MAX),
            SqlStorageValue::String(String::new()),
        ),
    };
    let mut params = vec![created, chat_id, int(limit as u64)];
    let owner_clause = match owner {
        Some(owner) => {
            params.push(SqlStorageValue::String(owner));
            "AND owner = ?4"
        }
        None => "",
    };
    let query = format!(
        "SELECT entry FROM directory WHERE removed = 0 {owner_clause} AND {past} \
         ORDER BY created_at_ms {order}, chat_id {order} LIMIT ?3"
    );
    let rows: Vec<Row> = sql
        .exec(&query, params)
        .and_then(|cursor| cursor.to_array())
        .map_err(failed)?;
    rows.iter()
        .map(|row| serde_json::from_str(&row.entry).map_err(failed))
        .collect()
}

fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value.min(i64::MAX as u64) as i64)
}

/// The store of the Worker's entry for the routes that read the directory: listing pages come
/// from the directory's shards, and an erase goes to the chat's own object, which stops its
/// turn, erases it and tells the directory. Everything else is an empty store: the entry holds
/// no chat.
pub struct DirectoryStore {
    chats: ObjectNamespace,
    empty: MemoryStore,
}

impl DirectoryStore {
    /// The directory of the chats in `chats`.
    pub fn new(chats: ObjectNamespace) -> Arc<Self> {
        Arc::new(DirectoryStore {
            chats,
            empty: MemoryStore::new(),
        })
    }

    /// Up to `limit` chats past `from`, in `query`'s order, from every shard.
    async fn scan(
        &self,
        query: &SessionQuery,
        from: Option<ListKey>,
        limit: usize,
    ) -> StoreResult<Vec<ListedSession>> {
        let call_body = DirectoryCall::Scan {
            owner: query.owner.clone(),
            from: from.clone().map(|key| (key.created_at_ms, key.chat_id)),
            newer: query.direction == Direction::Newer,
            limit,
            now_ms: query.now_ms,
        };
        let answers = futures::future::join_all(
            (0..SHARDS).map(|shard| call_object(&self.chats, shard, &call_body)),
        )
        .await;
        let mut found = Vec::new();
        for answer in answers {
            let entries: Vec<DirectoryEntry> = serde_json::from_str(&answer?).map_err(failed)?;
            found.extend(entries.into_iter().map(DirectoryEntry::into_listed));
        }
        Ok(scan_sorted(found, query.direction, from.as_ref(), limit))
    }

    async fn list(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        collect_page(query, |from, limit| self.scan(query, from, limit)).await
    }

    async fn erase(&self, chat_id: &str) -> StoreResult<bool> {
        #[derive(Deserialize)]
        struct Erased {
            deleted: bool,
        }
        let stub = self
            .chats
            .id_from_name(chat_id)
            .and_then(|id| id.get_stub())
            .map_err(failed)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(chat_id.to_owned().into()));
        let request = Request::new_with_init(&format!("https://chat.internal{ERASE_PATH}"), &init)
            .map_err(failed)?;
        let mut response = stub.fetch_with_request(request).await.map_err(failed)?;
        let text = response.text().await.map_err(failed)?;
        if response.status_code() != 200 {
            return Err(failed(format!("{}: {text}", response.status_code())));
        }
        let erased: Erased = serde_json::from_str(&text).map_err(failed)?;
        Ok(erased.deleted)
    }
}

#[async_trait]
impl Store for DirectoryStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        self.empty.create_session(session).await
    }
    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        self.empty.session(chat_id).await
    }
    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        self.empty.session_by_id(session_id).await
    }
    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session> {
        self.empty.close_session(chat_id, reason, now_ms).await
    }
    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend> {
        self.empty
            .append_input(chat_id, part_id, body, now_ms)
            .await
    }
    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        self.empty.inputs(chat_id, after, limit).await
    }
    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.empty.consumed_input(chat_id).await
    }
    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        self.empty.append_output(chat_id, records).await
    }
    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        self.empty.output(chat_id, after, limit).await
    }
    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        self.empty.last_output_seq(chat_id).await
    }
    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire> {
        self.empty.acquire_lease(chat_id, lease, now_ms).await
    }
    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        self.empty
            .renew_lease(chat_id, holder, expires_at_ms, now_ms)
            .await
    }
    async fn release_lease(
        &self,
        chat_id: &str,
        holder: &str,
        consumed_input: Option<u64>,
    ) -> StoreResult<()> {
        self.empty
            .release_lease(chat_id, holder, consumed_input)
            .await
    }
    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        self.empty.lease(chat_id).await
    }
    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        self.empty.messages(chat_id).await
    }
    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        self.empty.put_message(chat_id, message).await
    }
    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        self.empty.truncate_messages(chat_id, from_id).await
    }
    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        self.empty.state(chat_id).await
    }
    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        self.empty.put_state(chat_id, state).await
    }
    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.empty.put_event(event).await
    }
    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        self.empty.due_events(now_ms, limit).await
    }
    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        self.empty
            .reschedule_event(chat_id, id, attempts, next_attempt_ms)
            .await
    }
    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        self.empty.remove_event(chat_id, id).await
    }
    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        worker::send::SendFuture::new(self.list(query)).await
    }
    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        worker::send::SendFuture::new(self.erase(chat_id)).await
    }
    async fn add_to_counter(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        self.empty
            .add_to_counter(key, amount, limit, expires_at_ms, now_ms)
            .await
    }
    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        self.empty.counter(key, now_ms).await
    }
}
