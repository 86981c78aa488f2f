//! Turn events out, the Standard Webhooks way: after a turn ends (and when a chat is created or
//! closed), an event is written to the store's outbox with the turn's last writes, then POSTed,
//! signed, to `CHATFN_WEBHOOK_URL`. Delivered at least once: the turn's own process tries once
//! after its stream has ended, and a sweeper the platform runs (a timer locally, a scheduled
//! function on AWS, the chat object's alarm on the Worker) retries with backoff until the
//! receiver takes it. An event's id is derived from what it is about, so a repeat carries the
//! same `webhook-id`.
//!
//! The envelope, the signature, the ids and the retry policy are sans IO; `delivery` does the
//! sending.

mod delivery;
mod envelope;
mod id;
pub mod retry;
mod signature;

pub use delivery::{EventDelivery, SweepReport, Webhook};
pub use envelope::{ChatChanged, MAX_BODY_BYTES, TokenCounts, TurnCompleted, chat_body, turn_body};
pub use id::{event_id, turn_event_id};
pub use signature::{SecretError, WebhookSecrets};

use crate::store::{OutboxEvent, Session};

/// The event sent when a turn ends, however it ended.
pub const TURN_COMPLETED: &str = "turn.completed";
/// The event sent when a chat's session is created.
pub const CHAT_CREATED: &str = "chat.created";
/// The event sent when a chat's session is closed.
pub const CHAT_CLOSED: &str = "chat.closed";
/// The event sent when a chat is erased.
pub const CHAT_DELETED: &str = "chat.deleted";

/// How long the sweeper leaves a new event to the process that wrote it, which tries it as soon
/// as its turn's stream has ended: sooner, both would send it.
pub const SWEEPER_GRACE_MS: u64 = 10_000;

/// The outbox entry of a turn's `turn.completed` event, for the turn answering `input_seq`.
pub fn turn_completed(input_seq: Option<u64>, data: TurnCompleted, now_ms: u64) -> OutboxEvent {
    OutboxEvent {
        id: turn_event_id(&data.session_id, input_seq),
        chat_id: data.chat_id.clone(),
        body: turn_body(now_ms, data),
        attempts: 0,
        next_attempt_ms: now_ms + SWEEPER_GRACE_MS,
    }
}

/// The outbox entry of a `chat.created`, `chat.closed` or `chat.deleted` event of `session`.
pub fn chat_changed(kind: &str, session: &Session, now_ms: u64) -> OutboxEvent {
    OutboxEvent {
        id: event_id(kind, &session.id, &session.chat_id),
        chat_id: session.chat_id.clone(),
        body: chat_body(kind, now_ms, &ChatChanged::of(session)),
        attempts: 0,
        next_attempt_ms: now_ms + SWEEPER_GRACE_MS,
    }
}
