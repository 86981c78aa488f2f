//! Keeps a running turn's lease alive on a timer, whether or not the turn writes anything.
//!
//! A turn may go quiet for longer than its lease: a model that thinks for a minute before its
//! first token, a slow tool, a starved process. Renewing only when a chunk is written would let
//! the lease expire under such a turn, and the next reader would recover (close) a turn that is
//! still running. The heartbeat renews every third of the lease until it is dropped.
//!
//! A renewal refused means the lease is another's: a recovery took the chat over while this
//! process stalled, or the chat was erased. Output writes do not check the lease (they collide
//! on their keys instead), so the heartbeat tells the turn at once: its writer refuses what
//! comes next, and the turn is asked to stop. An erased chat created again under its id is then
//! written to for a third of a lease at most, and only by a turn that ignored the erase's stop.

use std::sync::Arc;
use std::time::Duration;

use super::live::LiveTurn;
use crate::clock::now_ms;
use crate::store::write_units::WriteUnits;
use crate::store::{Store, StoreError};

/// Renews the lease while alive; dropping it stops the renewals.
pub struct LeaseHeartbeat {
    stop: tokio::sync::watch::Sender<bool>,
}

impl LeaseHeartbeat {
    /// Renews `live`'s lease, held as `holder`, every third of `ttl_ms`.
    pub fn start(store: Arc<dyn Store>, live: Arc<LiveTurn>, holder: String, ttl_ms: u64) -> Self {
        let chat_id = live.chat_id().to_owned();
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
                    Err(StoreError::LeaseLost) => {
                        tracing::warn!(chat = %chat_id, "the turn's lease is lost: it stops writing");
                        live.lose_lease();
                        return;
                    }
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
