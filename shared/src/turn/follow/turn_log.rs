//! One turn read from the log as it is written, to its turn-complete: how a reader follows a turn
//! that runs in another process (or was recovered just now).

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;

use super::{FollowOn, FollowWatch, LogFollower};
use crate::clock::now_ms;
use crate::store::{OutputRecord, Store, StoreError};

/// A store read can fail after its own retries (throttling, a reset connection): the turn goes on
/// regardless, so the follower tries again rather than end a reply half-read.
const READ_ATTEMPTS: u32 = 20;

/// The records of the turn whose log starts after `after`, until its turn-complete (held back
/// until the turn has freed the chat), or until no live turn is left to write more.
pub(crate) fn follow_turn_log(
    store: Arc<dyn Store>,
    chat_id: &str,
    after: Option<u64>,
) -> impl Stream<Item = OutputRecord> + Send + 'static {
    let follow = TurnFollow {
        log: LogFollower::new(store.clone(), chat_id, after),
        watch: TurnWatch {
            store,
            chat_id: chat_id.to_owned(),
            failures: 0,
        },
        buffered: Vec::new().into_iter(),
        done: false,
    };
    futures::stream::unfold(follow, |mut follow| async move {
        loop {
            if let Some(record) = follow.buffered.next() {
                if record.body.is_turn_complete() {
                    follow.done = true;
                    follow.watch.wait_until_free(record.seq).await;
                }
                return Some((record, follow));
            }
            if follow.done {
                return None;
            }
            let records = follow.log.next(&mut follow.watch).await?;
            follow.watch.failures = 0;
            follow.buffered = records.into_iter();
        }
    })
}

/// Where [`follow_turn_log`] is in the turn's log.
struct TurnFollow {
    log: LogFollower,
    watch: TurnWatch,
    buffered: std::vec::IntoIter<OutputRecord>,
    /// The turn-complete was passed on.
    done: bool,
}

/// Follows while the turn runs, and once more after it freed the chat; retries failed reads.
struct TurnWatch {
    store: Arc<dyn Store>,
    chat_id: String,
    /// Failed reads since the last good one.
    failures: u32,
}

impl FollowWatch for TurnWatch {
    async fn quiet(
        &mut self,
        _log: &mut LogFollower,
        turn_running: Result<bool, StoreError>,
    ) -> FollowOn {
        match turn_running {
            Ok(true) => {
                self.failures = 0;
                FollowOn::Later
            }
            // No live turn is left to write more. A turn writes its last records, then frees the
            // chat: what it wrote between the last read and this look is there now.
            Ok(false) => FollowOn::LastLook,
            Err(error) => self.failed(error).await,
        }
    }

    async fn failed(&mut self, error: StoreError) -> FollowOn {
        self.failures += 1;
        if self.failures >= READ_ATTEMPTS {
            tracing::warn!(chat = %self.chat_id, "log follow failed: {error}");
            return FollowOn::End;
        }
        FollowOn::Later
    }
}

impl TurnWatch {
    /// Holds a turn's end back until the turn has freed the chat (or a later turn holds it), as
    /// a live turn's readers are held: a client that sees the end and sends its next message at
    /// once must find the chat free. Bounded: a turn whose release fails leaves the lease to
    /// expire, and its readers are not held that long.
    async fn wait_until_free(&self, complete_seq: u64) {
        const WAIT: Duration = Duration::from_millis(20);
        const ATTEMPTS: u32 = 150;
        for _ in 0..ATTEMPTS {
            match self.store.lease(&self.chat_id).await {
                Ok(Some(lease)) if lease.is_expired(now_ms()) => return,
                Ok(Some(lease)) if lease.first_seq > complete_seq => return,
                Ok(None) => return,
                // Still held by the ending turn, or unreadable for now.
                Ok(Some(_)) | Err(_) => crate::runtime::sleep(WAIT).await,
            }
        }
    }
}
