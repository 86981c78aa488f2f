//! Turns: one at a time per chat, run inside the request that streams them, recorded in the
//! output log so any reader can replay and follow them.

mod action;
mod events;
mod execute;
mod follow;
mod heartbeat;
mod input;
mod limits;
pub mod live;
mod moved_past;
mod prepare;
mod record;
mod recovery;
mod runner;
mod settle;
mod span;
mod wake;
mod writer;

pub(crate) use follow::{FollowOn, FollowWatch, LogFollower};
pub use input::{ChatInput, ChatTrigger, MessagePayload};
pub use limits::{LimitKind, LimitReached, shared_counter_scope};
pub use live::{LiveTurn, LiveTurns};
pub use moved_past::{SKIPPED_APPROVAL_CHUNK, SKIPPED_APPROVAL_REASON};
pub use record::ChatRecord;
pub use runner::{StartedTurn, TurnError, TurnRunner, TurnSource, TurnTask};
pub use wake::{ChatWake, ChatWakes};
pub use writer::{OutputWriter, REPLY_HEADER, WriterSettings};

/// The turn-complete header naming the input seq the turn answered.
pub const ANSWERED_INPUT_HEADER: &str = "session-in-event-id";
