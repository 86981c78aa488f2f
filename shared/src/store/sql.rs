//! The SQL schema and statements of the stores built on SQLite: the local server's file
//! (`store::sqlite`, through rusqlite) and the Worker's Durable Object storage (SQLite behind
//! workerd's `ctx.storage.sql`). One text for both, so the two cannot drift; each store only
//! binds parameters (`?1`, `?2`, … in the order the comments give) and reads rows.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{Session, StoreError, StoreResult};

/// Version 1 of the schema. Durable Objects hold one chat each, but keep `chat_id` columns so the
/// statements stay the same as in a file shared by every chat.
pub const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    chat_id         TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    task_identifier TEXT NOT NULL,
    trigger_config  TEXT NOT NULL,  -- JSON
    tags            TEXT NOT NULL,  -- JSON array of strings
    metadata        TEXT,           -- JSON
    owner           TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER,
    closed_at_ms    INTEGER,
    closed_reason   TEXT,
    -- The highest input seq a finished turn consumed. It lives with the session because
    -- release_lease needs a lease, a lease needs a session, and the value outlives the lease.
    consumed_input  INTEGER
);
CREATE TABLE IF NOT EXISTS inputs (
    chat_id      TEXT NOT NULL REFERENCES sessions(chat_id),
    seq          INTEGER NOT NULL,
    part_id      TEXT NOT NULL,
    body         TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (chat_id, seq),
    UNIQUE (chat_id, part_id)
);
CREATE TABLE IF NOT EXISTS outputs (
    chat_id      TEXT NOT NULL REFERENCES sessions(chat_id),
    seq          INTEGER NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    body         TEXT NOT NULL,  -- JSON of OutputBody
    PRIMARY KEY (chat_id, seq)
);
CREATE TABLE IF NOT EXISTS leases (
    chat_id        TEXT PRIMARY KEY REFERENCES sessions(chat_id),
    holder         TEXT NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    first_seq      INTEGER NOT NULL,
    input_seq      INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    chat_id  TEXT NOT NULL REFERENCES sessions(chat_id),
    position INTEGER NOT NULL,
    id       TEXT NOT NULL,
    json     TEXT NOT NULL,  -- JSON of UIMessage
    PRIMARY KEY (chat_id, position),
    UNIQUE (chat_id, id)
);
CREATE TABLE IF NOT EXISTS state (
    chat_id TEXT PRIMARY KEY REFERENCES sessions(chat_id),
    json    TEXT NOT NULL
);
";

/// What version 2 of the schema adds: the outbox of events to deliver (`crate::events`), listed
/// across chats by when their next attempt is due.
pub const SCHEMA_V2_OUTBOX: &str = "
CREATE TABLE IF NOT EXISTS outbox (
    chat_id         TEXT NOT NULL,
    id              TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    PRIMARY KEY (chat_id, id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_ms);
";

/// What version 3 of the schema adds: the usage counters of the usage limits, by key.
pub const SCHEMA_V3_COUNTERS: &str = "
CREATE TABLE IF NOT EXISTS counters (
    key           TEXT PRIMARY KEY,
    count         INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
";

/// What version 4 of the schema adds: when each chat's last turn ended, and the indexes that
/// list sessions newest first, of everyone or of one owner (`store::listing`).
pub const SCHEMA_V4_LISTING: &str = "
ALTER TABLE sessions ADD COLUMN last_activity_ms INTEGER;
CREATE INDEX IF NOT EXISTS sessions_listed ON sessions (created_at_ms, chat_id);
CREATE INDEX IF NOT EXISTS sessions_by_owner ON sessions (owner, created_at_ms, chat_id);
";

macro_rules! session_columns {
    () => {
        "session_id, chat_id, kind, task_identifier, trigger_config, tags, metadata, owner, \
         created_at_ms, updated_at_ms, expires_at_ms, closed_at_ms, closed_reason"
    };
}

/// The columns of a session row, in the order the session statements read and write them.
pub const SESSION_COLUMNS: &str = session_columns!();

/// ?1 chat id.
pub const SESSION_BY_CHAT: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE chat_id = ?1"
);
/// ?1 session id.
pub const SESSION_BY_ID: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions WHERE session_id = ?1"
);
/// ?1–?13 the session's columns in [`SESSION_COLUMNS`] order.
pub const INSERT_SESSION: &str = concat!(
    "INSERT INTO sessions (",
    session_columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
);
/// ?1 chat id. Any row means the session exists.
pub const SESSION_EXISTS: &str = "SELECT 1 FROM sessions WHERE chat_id = ?1";
/// ?1 chat id, ?2 now, ?3 reason. Only the first close sets the time and reason.
pub const CLOSE_SESSION: &str = "UPDATE sessions SET closed_at_ms = ?2, closed_reason = ?3, \
     updated_at_ms = ?2 WHERE chat_id = ?1 AND closed_at_ms IS NULL";

/// ?1 chat id, ?2 part id.
pub const INPUT_SEQ_OF_PART: &str = "SELECT seq FROM inputs WHERE chat_id = ?1 AND part_id = ?2";
/// ?1 chat id, ?2 part id, ?3 body, ?4 timestamp. Returns the new seq.
pub const INSERT_INPUT: &str = "INSERT INTO inputs (chat_id, seq, part_id, body, timestamp_ms) \
     SELECT ?1, COALESCE(MAX(seq) + 1, 0), ?2, ?3, ?4 FROM inputs WHERE chat_id = ?1 \
     RETURNING seq";
/// ?1 chat id, ?2 after (-1 for all), ?3 limit.
pub const INPUTS_AFTER: &str = "SELECT seq, part_id, body, timestamp_ms FROM inputs \
     WHERE chat_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
/// ?1 chat id.
pub const CONSUMED_INPUT: &str = "SELECT consumed_input FROM sessions WHERE chat_id = ?1";

/// ?1 chat id.
pub const MAX_OUTPUT_SEQ: &str = "SELECT MAX(seq) AS seq FROM outputs WHERE chat_id = ?1";
/// ?1 chat id, ?2 seq, ?3 timestamp, ?4 body.
pub const INSERT_OUTPUT: &str =
    "INSERT INTO outputs (chat_id, seq, timestamp_ms, body) VALUES (?1, ?2, ?3, ?4)";
/// ?1 chat id, ?2 a JSON array of `{"seq", "timestampMs", "body"}`: a whole batch in one
/// statement, so it is written all or nothing.
pub const INSERT_OUTPUT_BATCH: &str = "INSERT INTO outputs (chat_id, seq, timestamp_ms, body) \
     SELECT ?1, json_extract(value, '$.seq'), json_extract(value, '$.timestampMs'), \
     json_extract(value, '$.body') FROM json_each(?2)";
/// ?1 chat id, ?2 after (-1 for all), ?3 limit.
pub const OUTPUT_AFTER: &str = "SELECT seq, timestamp_ms, body FROM outputs \
     WHERE chat_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";

/// ?1 chat id.
pub const LEASE: &str = "SELECT holder, acquired_at_ms, expires_at_ms, first_seq, input_seq \
     FROM leases WHERE chat_id = ?1";
/// ?1 chat id, ?2 holder, ?3 acquired at, ?4 expires at, ?5 first seq, ?6 input seq.
pub const PUT_LEASE: &str = "INSERT OR REPLACE INTO leases \
     (chat_id, holder, acquired_at_ms, expires_at_ms, first_seq, input_seq) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// ?1 chat id, ?2 holder, ?3 new expiry, ?4 now. One conditional update: atomic on its own.
pub const RENEW_LEASE: &str = "UPDATE leases SET expires_at_ms = ?3 \
     WHERE chat_id = ?1 AND holder = ?2 AND expires_at_ms > ?4";
/// ?1 chat id, ?2 holder.
pub const DELETE_LEASE: &str = "DELETE FROM leases WHERE chat_id = ?1 AND holder = ?2";
/// ?1 chat id, ?2 consumed input. Never moves back.
pub const RECORD_CONSUMED: &str = "UPDATE sessions SET consumed_input = ?2 \
     WHERE chat_id = ?1 AND (consumed_input IS NULL OR consumed_input < ?2)";

/// ?1 chat id, ?2 now.
pub const RECORD_ACTIVITY: &str = "UPDATE sessions SET last_activity_ms = ?2 WHERE chat_id = ?1";

/// ?1 chat id, ?2 tags (JSON), ?3 metadata (JSON or NULL), ?4 updated at.
pub const UPDATE_SESSION: &str = "UPDATE sessions SET tags = ?2, metadata = ?3, \
     updated_at_ms = ?4 WHERE chat_id = ?1";

/// ?1 chat id, each: everything of a chat, its session last (the others refer to it). The
/// outbox is left alone: events about the chat are still delivered.
pub const DELETE_CHAT: [&str; 6] = [
    "DELETE FROM inputs WHERE chat_id = ?1",
    "DELETE FROM outputs WHERE chat_id = ?1",
    "DELETE FROM leases WHERE chat_id = ?1",
    "DELETE FROM messages WHERE chat_id = ?1",
    "DELETE FROM state WHERE chat_id = ?1",
    "DELETE FROM sessions WHERE chat_id = ?1",
];

/// ?1 chat id.
pub const MESSAGES: &str = "SELECT json FROM messages WHERE chat_id = ?1 ORDER BY position";
/// ?1 chat id, ?2 message id, ?3 JSON.
pub const REPLACE_MESSAGE: &str = "UPDATE messages SET json = ?3 WHERE chat_id = ?1 AND id = ?2";
/// ?1 chat id, ?2 message id, ?3 JSON.
pub const APPEND_MESSAGE: &str = "INSERT INTO messages (chat_id, position, id, json) \
     SELECT ?1, COALESCE(MAX(position) + 1, 0), ?2, ?3 FROM messages WHERE chat_id = ?1";
/// ?1 chat id, ?2 message id. An unknown id makes the subquery NULL, and `position >= NULL`
/// deletes nothing.
pub const TRUNCATE_MESSAGES: &str = "DELETE FROM messages WHERE chat_id = ?1 AND position >= \
     (SELECT position FROM messages WHERE chat_id = ?1 AND id = ?2)";

/// ?1 chat_id, ?2 id, ?3 body, ?4 attempts, ?5 next_attempt_ms. An id already there is kept.
pub const INSERT_EVENT: &str = "INSERT OR IGNORE INTO outbox \
    (chat_id, id, body, attempts, next_attempt_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
/// ?1 now_ms, ?2 limit.
pub const DUE_EVENTS: &str = "SELECT chat_id, id, body, attempts, next_attempt_ms FROM outbox \
    WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2";
/// ?1 chat_id, ?2 id, ?3 attempts, ?4 next_attempt_ms.
pub const RESCHEDULE_EVENT: &str = "UPDATE outbox SET attempts = ?3, next_attempt_ms = ?4 \
    WHERE chat_id = ?1 AND id = ?2";
/// ?1 chat_id, ?2 id.
pub const REMOVE_EVENT: &str = "DELETE FROM outbox WHERE chat_id = ?1 AND id = ?2";

/// ?1 key, ?2 amount, ?3 expiry, ?4 limit (NULL for none, else at least 1), ?5 now: adds to
/// the counter (from zero when it has expired) unless it holds the limit already; returns the
/// new count, or no row when refused.
pub const ADD_TO_COUNTER: &str = "INSERT INTO counters (key, count, expires_at_ms) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (key) DO UPDATE SET \
     count = CASE WHEN counters.expires_at_ms <= ?5 THEN ?2 ELSE counters.count + ?2 END, \
     expires_at_ms = CASE WHEN counters.expires_at_ms <= ?5 THEN ?3 \
     ELSE counters.expires_at_ms END \
     WHERE counters.expires_at_ms <= ?5 OR ?4 IS NULL OR counters.count < ?4 \
     RETURNING count";
/// ?1 key, ?2 now.
pub const COUNTER: &str = "SELECT count FROM counters WHERE key = ?1 AND expires_at_ms > ?2";

/// ?1 chat id.
pub const STATE: &str = "SELECT json FROM state WHERE chat_id = ?1";
/// ?1 chat id, ?2 JSON.
pub const PUT_STATE: &str = "INSERT INTO state (chat_id, json) VALUES (?1, ?2) \
     ON CONFLICT (chat_id) DO UPDATE SET json = excluded.json";

/// A session row as both stores read it: the JSON columns are still text. The field names are
/// the column names, so a store that reads rows as objects deserialises it directly.
#[derive(Debug, Deserialize)]
pub struct SessionRow {
    /// [`Session::id`].
    pub session_id: String,
    /// [`Session::chat_id`].
    pub chat_id: String,
    /// [`Session::kind`].
    pub kind: String,
    /// [`Session::task_identifier`].
    pub task_identifier: String,
    /// [`Session::trigger_config`], as JSON text.
    pub trigger_config: String,
    /// [`Session::tags`], as a JSON array.
    pub tags: String,
    /// [`Session::metadata`], as JSON text.
    pub metadata: Option<String>,
    /// [`Session::owner`].
    pub owner: Option<String>,
    /// [`Session::created_at_ms`].
    pub created_at_ms: u64,
    /// [`Session::updated_at_ms`].
    pub updated_at_ms: u64,
    /// [`Session::expires_at_ms`].
    pub expires_at_ms: Option<u64>,
    /// [`Session::closed_at_ms`].
    pub closed_at_ms: Option<u64>,
    /// [`Session::closed_reason`].
    pub closed_reason: Option<String>,
}

impl SessionRow {
    /// The session, with its JSON columns parsed; a corrupt row is a backend error.
    pub fn into_session(self) -> StoreResult<Session> {
        Ok(Session {
            id: self.session_id,
            chat_id: self.chat_id,
            kind: self.kind,
            task_identifier: self.task_identifier,
            trigger_config: json_column(&self.trigger_config)?,
            tags: json_column(&self.tags)?,
            metadata: self.metadata.as_deref().map(json_column).transpose()?,
            owner: self.owner,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            expires_at_ms: self.expires_at_ms,
            closed_at_ms: self.closed_at_ms,
            closed_reason: self.closed_reason,
        })
    }
}

/// Parses a JSON column; a corrupt row is a backend error, never a panic.
pub fn json_column<T: DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Backend(format!("corrupt JSON row: {e}")))
}
