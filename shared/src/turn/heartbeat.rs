//! Keeps a running turn's lease alive on a timer, whether or not the turn writes anything.
//!
//! A turn may go quiet for longer than its lease: a model that thinks for a minute before its
//! first token, a slow tool, a starved process. Renewing only when a chunk is written would let
//! the lease expire under such a turn, and the next reader would recover (close) a turn that is
//! still running. The heartbeat renews every third of the lease until it is dropped.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::store::write_units::WriteUnits;
use crate::store::{Store, StoreError};

/// Renews the lease while alive; dropping it stops the renewals.
pub struct LeaseHeartbeat {
    stop: tokio::sync::watch::Sender<bool>,
}

impl LeaseHeartbeat {
    pub fn start(store: Arc<dyn Store>, chat_id: String, holder: String, ttl_ms: u64) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let interval = Duration::from_millis((ttl_ms / 3).max(1));
        // The renewals are the turn's writes.
        let units = WriteUnits::current().unwrap_or_default();
        crate::runtime::spawn_detached(crate::runtime::sendable(units.count(async move {
            loop {
                let tick = std::pin::pin!(crate::runtime::sleep(interval));
                let stop = std::pin::pin!(stopped.changed());
                if let futures::future::Either::Right(_) = futures::future::select(tick, stop).await
                {
                    return;
                }
                let now = now_ms();
                match store
                    .renew_lease(&chat_id, &holder, now + ttl_ms, now)
                    .await
                {
                    Ok(()) => {}
                    // Taken over or released: the writer finds out on its next write.
                    Err(StoreError::LeaseLost) => return,
                    // Tried again on the next tick; the lease has two thirds of its time left.
                    Err(error) => tracing::warn!(chat = %chat_id, "lease renewal failed: {error}"),
                }
            }
        })));
        LeaseHeartbeat { stop }
    }
}

impl Drop for LeaseHeartbeat {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
