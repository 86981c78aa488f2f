//! The SQLite store: the local server's default, so local chats survive a restart.
//!
//! One file, in WAL mode. Every check-then-write runs in a `BEGIN IMMEDIATE` transaction, so it
//! stays atomic when several processes (or several handles) share the file. rusqlite is
//! blocking: a call runs on its caller's thread only when a connection is free and nothing can
//! make it wait, else on a few threads of the store's own ([`workers`]): one writer, which
//! commits many callers' writes together, and a few readers beside it.

mod turn_start;
mod workers;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, TransactionBehavior, params};
use serde::Serialize;
use serde_json::Value;

use super::listing::{self, Direction, ListKey, ListedSession, SessionPage, SessionQuery};
use super::sql::{self, SessionRow, json_column};
use super::{
    InputAppend, InputRecord, LeaseAcquire, LeasedAppend, OutboxEvent, OutputRecord, Session,
    SessionCreate, SessionUpdate, Store, StoreError, StoreResult, TurnLease, TurnView,
    check_output_batch,
};
use crate::ui::UIMessage;
use workers::Workers;

/// The schema version this code writes, kept in `PRAGMA user_version`. Bump it with a migration
/// step in [`migrate`] whenever the schema changes.
const SCHEMA_VERSION: i64 = 4;

/// How long a write waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Creates `dir` and its missing parents readable by this user only (0700 on Unix); folders
/// that exist are left as they are.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file readable by this user only (0600 on Unix), or makes an existing one
/// so, with its WAL and shared-memory files. SQLite gives the files it creates next to the
/// database the database's own mode, so the WAL written later is private too.
fn keep_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let mut companions = [path.as_os_str().to_owned(), path.as_os_str().to_owned()];
        companions[0].push("-wal");
        companions[1].push("-shm");
        for file in
            std::iter::once(path.as_os_str()).chain(companions.iter().map(|c| c.as_os_str()))
        {
            match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// A [`Store`] in one SQLite file (or in memory, for tests).
///
/// One writer's connection, [`reader_count`] readers' and a checkpointer's, used as
/// [`workers`] says: at once when free, else through queues to a fixed set of threads, so no
/// thread is parked per waiting caller whatever the load.
#[derive(Clone)]
pub struct SqliteStore {
    workers: Arc<Workers>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// How many reader connections a file gets: one per core (reads are CPU work once the pages
/// are cached), at most four, as the writer and the server want the cores too.
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, creating its directory and schema as needed.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        keep_private(path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let mut writer = open_connection(path)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        // In WAL mode, NORMAL syncs the log at checkpoints, not at every commit: a commit
        // survives the process crashing, and the last commits before a power loss may not
        // (docs/configuration.md).
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        writer
            .pragma_update(None, "foreign_keys", true)
            .map_err(backend)?;
        // Syncing the file is the checkpointer's, off every caller's path.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)?;
        migrate(&mut writer)?;
        let readers = (0..reader_count())
            .map(|_| {
                let reader = open_connection(path)?;
                // A reader never writes; this makes sure of it.
                reader
                    .pragma_update(None, "query_only", true)
                    .map_err(backend)?;
                Ok(reader)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let checkpointer = open_connection(path)?;
        Self::start(writer, readers, Some(checkpointer))
    }

    /// A private database that lives as long as this handle (and its clones). It has one
    /// connection, so reads queue with the writes.
    pub fn in_memory() -> StoreResult<Self> {
        let mut conn = Connection::open_in_memory().map_err(backend)?;
        keep_statements(&conn)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(backend)?;
        migrate(&mut conn)?;
        Self::start(conn, Vec::new(), None)
    }

    fn start(
        writer: Connection,
        readers: Vec<Connection>,
        checkpointer: Option<Connection>,
    ) -> StoreResult<Self> {
        Ok(SqliteStore {
            workers: Arc::new(Workers::start(writer, readers, checkpointer)?),
        })
    }

    /// Runs `f` on a reader's connection.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.workers.read(f).await
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction (shared with the other writes queued with
    /// it), its changes kept only if it succeeds.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.workers.write(f).await
    }
}

/// A connection to the file at `path` that waits for other processes' transactions.
fn open_connection(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    // Set first so the rest of the set-up waits for a process that is opening the file too.
    conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    keep_statements(&conn)?;
    Ok(conn)
}

/// Keeps every statement prepared once per connection. SQLite as built here (with STAT4) would
/// otherwise prepare a statement again whenever a value bound to an indexed column changes, in
/// case the value changes the best plan: with no statistics gathered it never does, and the
/// preparing was 4% of the server's CPU under load.
fn keep_statements(conn: &Connection) -> StoreResult<()> {
    conn.set_prepared_statement_cache_capacity(workers::STATEMENT_CACHE);
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`], atomically so two processes opening a new file
/// at once do not both create it.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(backend)?;
    match version {
        SCHEMA_VERSION => return Ok(()),
        0 => {
            tx.execute_batch(sql::SCHEMA_V1).map_err(backend)?;
            tx.execute_batch(sql::SCHEMA_V2_OUTBOX).map_err(backend)?;
            tx.execute_batch(sql::SCHEMA_V3_COUNTERS).map_err(backend)?;
            tx.execute_batch(sql::SCHEMA_V4_LISTING).map_err(backend)?;
        }
        1 => {
            tx.execute_batch(sql::SCHEMA_V2_OUTBOX).map_err(backend)?;
            tx.execute_batch(sql::SCHEMA_V3_COUNTERS).map_err(backend)?;
            tx.execute_batch(sql::SCHEMA_V4_LISTING).map_err(backend)?;
        }
        2 => {
            tx.execute_batch(sql::SCHEMA_V3_COUNTERS).map_err(backend)?;
            tx.execute_batch(sql::SCHEMA_V4_LISTING).map_err(backend)?;
        }
        3 => tx.execute_batch(sql::SCHEMA_V4_LISTING).map_err(backend)?,
        other => {
            return Err(StoreError::Backend(format!(
                "unknown database schema version {other} (this chatfn writes {SCHEMA_VERSION}); \
                 was it written by a newer chatfn?"
            )));
        }
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(backend)?;
    tx.commit().map_err(backend)
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sqlite: {error}"))
}

/// A `u64` as SQLite's signed INTEGER: out of range fails rather than wraps, both ways.
#[derive(Debug, Clone, Copy)]
struct Int(u64);

impl ToSql for Int {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        i64::try_from(self.0)
            .map(ToSqlOutput::from)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }
}

impl FromSql for Int {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let signed = i64::column_result(value)?;
        u64::try_from(signed)
            .map(Int)
            .map_err(|_| FromSqlError::OutOfRange(signed))
    }
}

fn u64_at(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    row.get::<_, Int>(index).map(|int| int.0)
}

fn opt_u64_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    row.get::<_, Option<Int>>(index)
        .map(|int| int.map(|int| int.0))
}

fn to_json(value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value).map_err(backend)
}

fn no_session(chat_id: &str) -> StoreError {
    StoreError::NoSession(chat_id.to_owned())
}

/// Fails with `NoSession` unless the chat has a session; every write starts with it.
fn require_session(tx: &Connection, chat_id: &str) -> StoreResult<()> {
    let found = tx
        .prepare_cached(sql::SESSION_EXISTS)
        .and_then(|mut stmt| stmt.exists([chat_id]))
        .map_err(backend)?;
    if found {
        Ok(())
    } else {
        Err(no_session(chat_id))
    }
}

/// A session row in [`sql::SESSION_COLUMNS`] order.
fn read_session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        session_id: row.get(0)?,
        chat_id: row.get(1)?,
        kind: row.get(2)?,
        task_identifier: row.get(3)?,
        trigger_config: row.get(4)?,
        tags: row.get(5)?,
        metadata: row.get(6)?,
        owner: row.get(7)?,
        created_at_ms: u64_at(row, 8)?,
        updated_at_ms: u64_at(row, 9)?,
        expires_at_ms: opt_u64_at(row, 10)?,
        closed_at_ms: opt_u64_at(row, 11)?,
        closed_reason: row.get(12)?,
    })
}

/// The session of the row `column = key`, if any.
fn select_session(conn: &Connection, statement: &str, key: &str) -> StoreResult<Option<Session>> {
    conn.prepare_cached(statement)
        .and_then(|mut stmt| stmt.query_row([key], read_session_row).optional())
        .map_err(backend)?
        .map(SessionRow::into_session)
        .transpose()
}

fn insert_session(tx: &Connection, session: &Session) -> StoreResult<()> {
    let metadata = session.metadata.as_ref().map(to_json).transpose()?;
    tx.prepare_cached(sql::INSERT_SESSION)
        .and_then(|mut stmt| {
            stmt.execute(params![
                session.id,
                session.chat_id,
                session.kind,
                session.task_identifier,
                to_json(&session.trigger_config).map_err(to_sql_error)?,
                to_json(&session.tags).map_err(to_sql_error)?,
                metadata,
                session.owner,
                Int(session.created_at_ms),
                Int(session.updated_at_ms),
                session.expires_at_ms.map(Int),
                session.closed_at_ms.map(Int),
                session.closed_reason,
            ])
        })
        .map_err(backend)?;
    Ok(())
}

/// Carries a serialisation failure through a rusqlite closure.
fn to_sql_error(error: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(error.to_string())))
}

fn read_lease(row: &Row<'_>) -> rusqlite::Result<TurnLease> {
    Ok(TurnLease {
        holder: row.get(0)?,
        acquired_at_ms: u64_at(row, 1)?,
        expires_at_ms: u64_at(row, 2)?,
        first_seq: u64_at(row, 3)?,
        input_seq: opt_u64_at(row, 4)?,
    })
}

fn select_lease(conn: &Connection, chat_id: &str) -> StoreResult<Option<TurnLease>> {
    conn.prepare_cached(sql::LEASE)
        .and_then(|mut stmt| stmt.query_row([chat_id], read_lease).optional())
        .map_err(backend)
}

fn put_lease(tx: &Connection, chat_id: &str, lease: &TurnLease) -> StoreResult<()> {
    tx.prepare_cached(sql::PUT_LEASE)
        .and_then(|mut stmt| {
            stmt.execute(params![
                chat_id,
                lease.holder,
                Int(lease.acquired_at_ms),
                Int(lease.expires_at_ms),
                Int(lease.first_seq),
                lease.input_seq.map(Int),
            ])
        })
        .map_err(backend)?;
    Ok(())
}

/// Appends an input at the seq after the chat's last; its seq.
fn insert_input(
    tx: &Connection,
    chat_id: &str,
    part_id: &str,
    body: &str,
    now_ms: u64,
) -> StoreResult<u64> {
    tx.prepare_cached(sql::INSERT_INPUT)
        .and_then(|mut stmt| {
            stmt.query_row(params![chat_id, part_id, body, Int(now_ms)], |row| {
                u64_at(row, 0)
            })
        })
        .map_err(backend)
}

fn select_inputs(
    conn: &Connection,
    chat_id: &str,
    after: Option<u64>,
    limit: usize,
) -> StoreResult<Vec<InputRecord>> {
    conn.prepare_cached(sql::INPUTS_AFTER)
        .and_then(|mut stmt| {
            stmt.query_map(
                params![chat_id, after_bound(after), limit_bound(limit)],
                read_input,
            )?
            .collect()
        })
        .map_err(backend)
}

fn select_consumed(conn: &Connection, chat_id: &str) -> StoreResult<Option<u64>> {
    conn.prepare_cached(sql::CONSUMED_INPUT)
        .and_then(|mut stmt| {
            stmt.query_row([chat_id], |row| opt_u64_at(row, 0))
                .optional()
        })
        .map(Option::flatten)
        .map_err(backend)
}

fn select_messages(conn: &Connection, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
    let rows: Vec<String> = conn
        .prepare_cached(sql::MESSAGES)
        .and_then(|mut stmt| stmt.query_map([chat_id], |row| row.get(0))?.collect())
        .map_err(backend)?;
    rows.iter().map(|json| json_column(json)).collect()
}

fn select_state(conn: &Connection, chat_id: &str) -> StoreResult<Option<Value>> {
    conn.prepare_cached(sql::STATE)
        .and_then(|mut stmt| {
            stmt.query_row([chat_id], |row| row.get::<_, String>(0))
                .optional()
        })
        .map_err(backend)?
        .as_deref()
        .map(json_column)
        .transpose()
}

fn max_output_seq(conn: &Connection, chat_id: &str) -> StoreResult<Option<u64>> {
    conn.prepare_cached(sql::MAX_OUTPUT_SEQ)
        .and_then(|mut stmt| stmt.query_row([chat_id], |row| opt_u64_at(row, 0)))
        .map_err(backend)
}

fn read_input(row: &Row<'_>) -> rusqlite::Result<InputRecord> {
    Ok(InputRecord {
        seq: u64_at(row, 0)?,
        part_id: row.get(1)?,
        body: row.get(2)?,
        timestamp_ms: u64_at(row, 3)?,
    })
}

fn read_event(row: &Row<'_>) -> rusqlite::Result<OutboxEvent> {
    Ok(OutboxEvent {
        chat_id: row.get(0)?,
        id: row.get(1)?,
        body: row.get(2)?,
        attempts: row.get(3)?,
        next_attempt_ms: u64_at(row, 4)?,
    })
}

/// `seq > after` as a bound SQLite can compare with: -1 when reading from the start. No stored
/// seq exceeds `i64::MAX`, so clamping a larger cursor still reads nothing.
fn after_bound(after: Option<u64>) -> i64 {
    after.map_or(-1, |after| i64::try_from(after).unwrap_or(i64::MAX))
}

/// SQLite takes a negative LIMIT as "no limit", so clamp rather than wrap.
fn limit_bound(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_session(&self, session: Session) -> StoreResult<SessionCreate> {
        self.write(move |tx| {
            if let Some(existing) = select_session(tx, sql::SESSION_BY_CHAT, &session.chat_id)? {
                return Ok(SessionCreate::Existing(existing));
            }
            insert_session(tx, &session)?;
            Ok(SessionCreate::Created(session))
        })
        .await
    }

    async fn session(&self, chat_id: &str) -> StoreResult<Option<Session>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| select_session(conn, sql::SESSION_BY_CHAT, &chat_id))
            .await
    }

    async fn session_by_id(&self, session_id: &str) -> StoreResult<Option<Session>> {
        let session_id = session_id.to_owned();
        self.read(move |conn| select_session(conn, sql::SESSION_BY_ID, &session_id))
            .await
    }

    async fn close_session(
        &self,
        chat_id: &str,
        reason: Option<String>,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let chat_id = chat_id.to_owned();
        self.write(move |tx| {
            // Only the first close sets the time and reason.
            tx.prepare_cached(sql::CLOSE_SESSION)
                .and_then(|mut stmt| stmt.execute(params![chat_id, Int(now_ms), reason]))
                .map_err(backend)?;
            select_session(tx, sql::SESSION_BY_CHAT, &chat_id)?.ok_or_else(|| no_session(&chat_id))
        })
        .await
    }

    async fn append_input(
        &self,
        chat_id: &str,
        part_id: &str,
        body: &str,
        now_ms: u64,
    ) -> StoreResult<InputAppend> {
        let (chat_id, part_id, body) = (chat_id.to_owned(), part_id.to_owned(), body.to_owned());
        self.write(move |tx| {
            require_session(tx, &chat_id)?;
            let existing = tx
                .prepare_cached(sql::INPUT_SEQ_OF_PART)
                .and_then(|mut stmt| {
                    stmt.query_row([&chat_id, &part_id], |row| u64_at(row, 0))
                        .optional()
                })
                .map_err(backend)?;
            if let Some(seq) = existing {
                return Ok(InputAppend {
                    seq,
                    duplicate: true,
                });
            }
            let seq = insert_input(tx, &chat_id, &part_id, &body, now_ms)?;
            Ok(InputAppend {
                seq,
                duplicate: false,
            })
        })
        .await
    }

    async fn inputs(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<InputRecord>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| select_inputs(conn, &chat_id, after, limit))
            .await
    }

    async fn consumed_input(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| select_consumed(conn, &chat_id)).await
    }

    async fn turn_view(&self, chat_id: &str) -> StoreResult<TurnView> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| workers::in_snapshot(conn, |conn| turn_start::view(conn, &chat_id)))
            .await
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
        let (chat_id, part_id, body) = (chat_id.to_owned(), part_id.to_owned(), body.to_owned());
        let seen = turn_start::Seen::of(view);
        self.write(move |tx| {
            turn_start::append_leased(tx, &chat_id, &part_id, &body, now_ms, lease, &seen)
        })
        .await
    }

    async fn acquire_lease_as_viewed(
        &self,
        chat_id: &str,
        lease: TurnLease,
        _now_ms: u64,
        view: &TurnView,
    ) -> StoreResult<Option<TurnLease>> {
        let chat_id = chat_id.to_owned();
        let seen = turn_start::Seen::of(view);
        self.write(move |tx| turn_start::lease_as_viewed(tx, &chat_id, lease, &seen))
            .await
    }

    async fn append_output(&self, chat_id: &str, records: &[OutputRecord]) -> StoreResult<()> {
        let chat_id = chat_id.to_owned();
        let rows = records
            .iter()
            .map(|record| Ok((record.seq, record.timestamp_ms, to_json(&record.body)?)))
            .collect::<StoreResult<Vec<_>>>()?;
        self.write(move |tx| {
            require_session(tx, &chat_id)?;
            check_output_batch(
                rows.iter().map(|(seq, _, _)| *seq),
                max_output_seq(tx, &chat_id)?,
            )?;
            let mut insert = tx.prepare_cached(sql::INSERT_OUTPUT).map_err(backend)?;
            for (seq, timestamp_ms, body) in rows {
                insert
                    .execute(params![chat_id, Int(seq), Int(timestamp_ms), body])
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn output(
        &self,
        chat_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<OutputRecord>> {
        let chat_id = chat_id.to_owned();
        let after = after_bound(after);
        self.read(move |conn| {
            let rows: Vec<(u64, u64, String)> = conn
                .prepare_cached(sql::OUTPUT_AFTER)
                .and_then(|mut stmt| {
                    stmt.query_map(params![chat_id, after, limit_bound(limit)], |row| {
                        Ok((u64_at(row, 0)?, u64_at(row, 1)?, row.get(2)?))
                    })?
                    .collect()
                })
                .map_err(backend)?;
            rows.into_iter()
                .map(|(seq, timestamp_ms, body)| {
                    Ok(OutputRecord {
                        seq,
                        timestamp_ms,
                        body: json_column(&body)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn last_output_seq(&self, chat_id: &str) -> StoreResult<Option<u64>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| max_output_seq(conn, &chat_id)).await
    }

    async fn acquire_lease(
        &self,
        chat_id: &str,
        lease: TurnLease,
        now_ms: u64,
    ) -> StoreResult<LeaseAcquire> {
        let chat_id = chat_id.to_owned();
        self.write(move |tx| {
            require_session(tx, &chat_id)?;
            let current = select_lease(tx, &chat_id)?;
            if let Some(current) = current.as_ref().filter(|l| !l.is_expired(now_ms)) {
                return Ok(LeaseAcquire::Held(current.clone()));
            }
            put_lease(tx, &chat_id, &lease)?;
            Ok(LeaseAcquire::Acquired {
                lease,
                expired: current,
            })
        })
        .await
    }

    async fn renew_lease(
        &self,
        chat_id: &str,
        holder: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<()> {
        let (chat_id, holder) = (chat_id.to_owned(), holder.to_owned());
        // One conditional UPDATE is atomic on its own.
        let renewed = self
            .write(move |conn| {
                conn.prepare_cached(sql::RENEW_LEASE)
                    .and_then(|mut stmt| {
                        stmt.execute(params![chat_id, holder, Int(expires_at_ms), Int(now_ms)])
                    })
                    .map_err(backend)
            })
            .await?;
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
        let (chat_id, holder) = (chat_id.to_owned(), holder.to_owned());
        self.write(move |tx| {
            let released = tx
                .prepare_cached(sql::DELETE_LEASE)
                .and_then(|mut stmt| stmt.execute([&chat_id, &holder]))
                .map_err(backend)?;
            if released == 0 {
                return Err(StoreError::LeaseLost);
            }
            if let Some(consumed) = consumed_input {
                // Never moves back: it is the highest input a finished turn consumed.
                tx.prepare_cached(sql::RECORD_CONSUMED)
                    .and_then(|mut stmt| stmt.execute(params![chat_id, Int(consumed)]))
                    .map_err(backend)?;
            }
            tx.prepare_cached(sql::RECORD_ACTIVITY)
                .and_then(|mut stmt| stmt.execute(params![chat_id, Int(crate::clock::now_ms())]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn lease(&self, chat_id: &str) -> StoreResult<Option<TurnLease>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| select_lease(conn, &chat_id)).await
    }

    async fn messages(&self, chat_id: &str) -> StoreResult<Vec<UIMessage>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| select_messages(conn, &chat_id)).await
    }

    async fn put_message(&self, chat_id: &str, message: &UIMessage) -> StoreResult<()> {
        let chat_id = chat_id.to_owned();
        let id = message.id.clone();
        let json = to_json(message)?;
        self.write(move |tx| {
            require_session(tx, &chat_id)?;
            let replaced = tx
                .prepare_cached(sql::REPLACE_MESSAGE)
                .and_then(|mut stmt| stmt.execute([&chat_id, &id, &json]))
                .map_err(backend)?;
            if replaced == 0 {
                tx.prepare_cached(sql::APPEND_MESSAGE)
                    .and_then(|mut stmt| stmt.execute([&chat_id, &id, &json]))
                    .map_err(backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn truncate_messages(&self, chat_id: &str, from_id: &str) -> StoreResult<()> {
        let (chat_id, from_id) = (chat_id.to_owned(), from_id.to_owned());
        self.write(move |tx| {
            require_session(tx, &chat_id)?;
            // An unknown id makes the subquery NULL, and `position >= NULL` deletes nothing.
            tx.prepare_cached(sql::TRUNCATE_MESSAGES)
                .and_then(|mut stmt| stmt.execute([&chat_id, &from_id]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn state(&self, chat_id: &str) -> StoreResult<Option<Value>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| select_state(conn, &chat_id)).await
    }

    async fn put_state(&self, chat_id: &str, state: &Value) -> StoreResult<()> {
        let chat_id = chat_id.to_owned();
        let json = to_json(state)?;
        self.write(move |tx| {
            require_session(tx, &chat_id)?;
            tx.prepare_cached(sql::PUT_STATE)
                .and_then(|mut stmt| stmt.execute([&chat_id, &json]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn put_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        let event = event.clone();
        self.write(move |tx| {
            tx.prepare_cached(sql::INSERT_EVENT)
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        event.chat_id,
                        event.id,
                        event.body,
                        event.attempts,
                        Int(event.next_attempt_ms)
                    ])
                })
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn due_events(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<OutboxEvent>> {
        // A time past SQLite's range is past every stored one.
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        self.read(move |conn| {
            conn.prepare_cached(sql::DUE_EVENTS)
                .and_then(|mut stmt| {
                    stmt.query_map(params![now, limit_bound(limit)], read_event)?
                        .collect()
                })
                .map_err(backend)
        })
        .await
    }

    async fn reschedule_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        let (chat_id, id) = (chat_id.to_owned(), id.to_owned());
        self.write(move |tx| {
            tx.prepare_cached(sql::RESCHEDULE_EVENT)
                .and_then(|mut stmt| {
                    stmt.execute(params![chat_id, id, attempts, Int(next_attempt_ms)])
                })
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn remove_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        let (chat_id, id) = (chat_id.to_owned(), id.to_owned());
        self.write(move |tx| {
            tx.prepare_cached(sql::REMOVE_EVENT)
                .and_then(|mut stmt| stmt.execute(params![chat_id, id]))
                .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn list_sessions(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        listing::collect_page(query, |from: Option<ListKey>, limit| {
            let query = query.clone();
            self.read(move |conn| scan_sessions(conn, &query, from.as_ref(), limit))
        })
        .await
    }

    async fn listed_session(&self, chat_id: &str) -> StoreResult<Option<ListedSession>> {
        let chat_id = chat_id.to_owned();
        self.read(move |conn| {
            let Some(session) = select_session(conn, sql::SESSION_BY_CHAT, &chat_id)? else {
                return Ok(None);
            };
            let last_activity_ms = conn
                .prepare_cached("SELECT last_activity_ms FROM sessions WHERE chat_id = ?1")
                .and_then(|mut stmt| stmt.query_row([&chat_id], |row| opt_u64_at(row, 0)))
                .map_err(backend)?;
            Ok(Some(ListedSession {
                session,
                last_activity_ms,
                message_title: None,
            }))
        })
        .await
    }

    async fn update_session(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now_ms: u64,
    ) -> StoreResult<Session> {
        let (chat_id, update) = (chat_id.to_owned(), update.clone());
        self.write(move |tx| {
            let mut session = select_session(tx, sql::SESSION_BY_CHAT, &chat_id)?
                .ok_or_else(|| no_session(&chat_id))?;
            update.apply(&mut session, now_ms);
            let metadata = session.metadata.as_ref().map(to_json).transpose()?;
            let tags = to_json(&session.tags)?;
            tx.prepare_cached(sql::UPDATE_SESSION)
                .and_then(|mut stmt| {
                    stmt.execute(params![chat_id, tags, metadata, Int(session.updated_at_ms)])
                })
                .map_err(backend)?;
            Ok(session)
        })
        .await
    }

    async fn delete_chat(&self, chat_id: &str) -> StoreResult<bool> {
        let chat_id = chat_id.to_owned();
        self.write(move |tx| {
            let mut erased = 0;
            for statement in sql::DELETE_CHAT {
                erased = tx
                    .prepare_cached(statement)
                    .and_then(|mut stmt| stmt.execute([&chat_id]))
                    .map_err(backend)?;
            }
            // The last statement removes the session: whether it did is whether the chat was.
            Ok(erased > 0)
        })
        .await
    }

    async fn add_to_counter(
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
        let key = key.to_owned();
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let limit = limit.map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        self.write(move |tx| {
            tx.prepare_cached(sql::ADD_TO_COUNTER)
                .and_then(|mut stmt| {
                    stmt.query_row(
                        params![key, Int(amount), Int(expires_at_ms), limit, now],
                        |row| row.get::<_, Int>(0),
                    )
                    .optional()
                })
                .map(|count| count.map(|Int(count)| count))
                .map_err(backend)
        })
        .await
    }

    async fn counter(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        let key = key.to_owned();
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        self.read(move |conn| {
            conn.prepare_cached(sql::COUNTER)
                .and_then(|mut stmt| {
                    stmt.query_row(params![key, now], |row| row.get::<_, Int>(0))
                        .optional()
                })
                .map(|count| count.map_or(0, |Int(count)| count))
                .map_err(backend)
        })
        .await
    }
}

/// The statement scanning sessions (of one owner: `?1`, or all) strictly past the key
/// (`?2` created at, `?3` chat id) in `direction`, at most `?4`.
fn scan_statement(by_owner: bool, direction: Direction) -> String {
    let (past, order) = match direction {
        Direction::Older => ("<", "DESC"),
        Direction::Newer => (">", "ASC"),
    };
    let owner = if by_owner { "owner = ?1" } else { "?1 IS NULL" };
    format!(
        "SELECT {}, last_activity_ms FROM sessions WHERE {owner} \
         AND (created_at_ms, chat_id) {past} (?2, ?3) \
         ORDER BY created_at_ms {order}, chat_id {order} LIMIT ?4",
        sql::SESSION_COLUMNS
    )
}

fn scan_sessions(
    conn: &Connection,
    query: &SessionQuery,
    from: Option<&ListKey>,
    limit: usize,
) -> StoreResult<Vec<ListedSession>> {
    // Without a cursor, start past every key there can be.
    let (created, chat_id) = match (from, query.direction) {
        (Some(key), _) => (
            i64::try_from(key.created_at_ms).unwrap_or(i64::MAX),
            key.chat_id.as_str(),
        ),
        (None, Direction::Older) => (i64::MAX, ""),
        (None, Direction::Newer) => (-1, ""),
    };
    let statement = scan_statement(query.owner.is_some(), query.direction);
    let mut stmt = conn.prepare_cached(&statement).map_err(backend)?;
    let rows = stmt
        .query_map(
            params![query.owner, created, chat_id, limit_bound(limit)],
            |row| Ok((read_session_row(row)?, opt_u64_at(row, 13)?)),
        )
        .map_err(backend)?;
    let mut found = Vec::new();
    for row in rows {
        let (row, last_activity_ms) = row.map_err(backend)?;
        found.push(ListedSession {
            session: row.into_session()?,
            last_activity_ms,
            message_title: None,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn the_file_its_wal_and_its_folders_are_the_users_only() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("chatfn-private-{}", uuid::Uuid::new_v4()));
        let path = root.join("data").join("chatfn.sqlite3");
        let store = SqliteStore::open(&path).expect("open");
        store
            .create_session(Session::new("chat-1", 1))
            .await
            .expect("a write, so the WAL exists");
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("data")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.join("data").join("chatfn.sqlite3-wal")), 0o600);
        drop(store);
        // A file an earlier version left readable by all is made private when opened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        drop(SqliteStore::open(&path).expect("reopen"));
        assert_eq!(mode(&path), 0o600);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn a_write_waits_for_another_process_holding_the_file() {
        let path = std::env::temp_dir().join(format!("chatfn-held-{}.db", uuid::Uuid::new_v4()));
        let store = SqliteStore::open(&path).expect("open");
        let other = Connection::open(&path).expect("another connection");
        other
            .execute_batch("BEGIN IMMEDIATE")
            .expect("hold the lock");
        let write = tokio::spawn({
            let store = store.clone();
            async move { store.create_session(Session::new("held", 1)).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!write.is_finished(), "the write must wait for the lock");
        other.execute_batch("COMMIT").expect("let go");
        let created = write.await.expect("joined").expect("written once free");
        assert!(matches!(created, SessionCreate::Created(_)));
        assert!(store.session("held").await.expect("read").is_some());
        drop(store);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn refuses_a_newer_schema() {
        let path = std::env::temp_dir().join(format!("chatfn-newer-{}.db", uuid::Uuid::new_v4()));
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("set version");
        drop(conn);
        let error = SqliteStore::open(&path).expect_err("a newer schema must be refused");
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_version_1_file_gains_the_outbox() {
        let path = std::env::temp_dir().join(format!("chatfn-v1-{}.db", uuid::Uuid::new_v4()));
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(sql::SCHEMA_V1).expect("version 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("set version");
        drop(conn);
        let store = SqliteStore::open(&path).expect("migrated");
        let event = OutboxEvent {
            id: "evt_1".into(),
            chat_id: "chat".into(),
            body: "{}".into(),
            attempts: 0,
            next_attempt_ms: 5,
        };
        store.put_event(&event).await.expect("put");
        assert_eq!(store.due_events(5, 10).await.expect("due"), vec![event]);
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn corrupt_rows_are_backend_errors() {
        let store = SqliteStore::in_memory().expect("open");
        store
            .write(|conn| {
                conn.execute_batch(
                    "INSERT INTO sessions (session_id, chat_id, kind, task_identifier, \
                     trigger_config, tags, created_at_ms, updated_at_ms) \
                     VALUES ('session_x', 'chat', 'k', 't', '{', 'not json', -5, 0);
                     INSERT INTO outputs VALUES ('chat', 0, 0, '{\"kind\":\"nope\"}');
                     INSERT INTO state VALUES ('chat', 'nope');",
                )
                .map_err(backend)
            })
            .await
            .expect("seed corrupt rows");
        assert!(matches!(
            store.session("chat").await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            store.output("chat", None, 10).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            store.state("chat").await,
            Err(StoreError::Backend(_))
        ));
    }
}
