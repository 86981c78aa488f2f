//! Turns: one at a time per chat, run inside the request that streams them.

/// The header that marks an output record as a control record.
pub const CONTROL_HEADER: &str = "trigger-control";
/// The control subtype that closes a turn.
pub const TURN_COMPLETE: &str = "turn-complete";
