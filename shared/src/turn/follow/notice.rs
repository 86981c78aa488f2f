//! A follower's marks on the log it follows, so that a store which has turns write while
//! followed ([`OutputCadence::WhileFollowed`]) gets the turn's output in short batches for it.

use std::sync::Arc;

use crate::clock::now_ms;
use crate::store::{OutputCadence, Store};

/// How far ahead a mark reaches: past the next renewal, with room for clocks that differ.
const AHEAD_MS: u64 = 4_000;
/// A mark is renewed when less than this is left of it: one write every two seconds of
/// following.
const RENEW_WITHIN_MS: u64 = 2_000;

/// One reader's marks on one chat's log.
pub(super) struct FollowNotice {
    store: Arc<dyn Store>,
    chat_id: String,
    marked_until_ms: u64,
}

impl FollowNotice {
    pub(super) fn new(store: Arc<dyn Store>, chat_id: &str) -> Self {
        FollowNotice {
            store,
            chat_id: chat_id.to_owned(),
            marked_until_ms: 0,
        }
    }

    /// Marks the log followed for the next few seconds, unless the last mark has long to run.
    /// A failed mark costs the reader only longer batches, so it is not retried before the
    /// next renewal.
    pub(super) async fn renew(&mut self) {
        if self.store.output_cadence() == OutputCadence::Steady {
            return;
        }
        let now = now_ms();
        if self.marked_until_ms > now.saturating_add(RENEW_WITHIN_MS) {
            return;
        }
        let until = now.saturating_add(AHEAD_MS);
        if let Err(error) = self.store.follow_output(&self.chat_id, until).await {
            tracing::warn!(chat = %self.chat_id, "could not mark the log followed: {error}");
        }
        self.marked_until_ms = until;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Session;
    use crate::store::memory::MemoryStore;

    async fn store_with_chat(cadence: OutputCadence) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::with_output_cadence(cadence));
        store
            .create_session(Session::new("followed", now_ms()))
            .await
            .expect("session");
        store
    }

    #[tokio::test]
    async fn marks_reach_ahead_and_are_renewed_only_when_running_out() {
        let store = store_with_chat(OutputCadence::WhileFollowed).await;
        let mut notice = FollowNotice::new(store.clone(), "followed");
        let before = now_ms();
        notice.renew().await;
        let first = store
            .output_followed_until("followed")
            .await
            .expect("read")
            .expect("a mark");
        assert!(first >= before + AHEAD_MS, "{first} from {before}");
        notice.renew().await;
        assert_eq!(
            store.output_followed_until("followed").await.expect("read"),
            Some(first),
            "a mark with long to run is not written again"
        );
        notice.marked_until_ms = now_ms() + RENEW_WITHIN_MS / 2;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        notice.renew().await;
        let renewed = store.output_followed_until("followed").await.expect("read");
        assert!(renewed > Some(first), "{renewed:?} after {first}");
    }

    #[tokio::test]
    async fn stores_with_the_steady_cadence_get_no_marks() {
        let store = store_with_chat(OutputCadence::Steady).await;
        FollowNotice::new(store.clone(), "followed").renew().await;
        assert_eq!(
            store.output_followed_until("followed").await.expect("read"),
            None
        );
    }

    #[tokio::test]
    async fn a_mark_on_a_missing_chat_is_not_an_error_for_the_reader() {
        let store = Arc::new(MemoryStore::with_output_cadence(
            OutputCadence::WhileFollowed,
        ));
        let mut notice = FollowNotice::new(store.clone(), "gone");
        notice.renew().await;
        assert_eq!(
            store.output_followed_until("gone").await.expect("read"),
            None
        );
    }
}
