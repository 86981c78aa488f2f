//! The few things a host's async runtime must provide to the core.

use crate::turn::TurnTask;

/// Runs a turn to completion, detached from the request that started it.
#[cfg(feature = "native")]
pub fn spawn_turn(task: TurnTask) {
    tokio::spawn(task);
}

/// Runs a background task (a stream producer, a headless turn) to completion.
#[cfg(feature = "native")]
pub fn spawn_detached(task: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(task);
}

/// Waits, on hosts with a timer; elsewhere returns at once.
pub async fn sleep(duration: std::time::Duration) {
    #[cfg(feature = "native")]
    tokio::time::sleep(duration).await;
    #[cfg(not(feature = "native"))]
    let _ = duration;
}
