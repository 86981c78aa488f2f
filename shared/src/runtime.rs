//! The few things a host's async runtime must provide to the core.

use crate::turn::TurnTask;

/// Runs a turn to completion, detached from the request that started it.
#[cfg(feature = "native")]
pub fn spawn_turn(task: TurnTask) {
    tokio::spawn(task);
}
