//! Following a chat's output log from outside the process that writes it: the reader polls the
//! store for the records after its cursor and, while it waits for a turn that holds the chat,
//! marks the log followed ([`notice`]) so that the turn writes short batches for it.
//! [`LogFollower::next`] is that polling loop, for every reader of the log; what a reader makes of
//! a quiet log (wait, end, follow a turn of its own process) is its [`FollowWatch`].

mod notice;
mod turn_log;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::store::{OutputRecord, Store, StoreError};
use notice::FollowNotice;

pub(crate) use turn_log::follow_turn_log;

/// How long a follower waits before it looks at a quiet log again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Records per read of the log.
const PAGE: usize = 512;

/// What a follower does after a look found nothing new in the log, or could not read it.
pub(crate) enum FollowOn {
    /// Looks again after the poll interval.
    Later,
    /// Looks again at once.
    Now,
    /// Looks once more at once, and ends if the log still has nothing new: the turn has freed the
    /// chat, and what it wrote before that is in the log by now.
    LastLook,
    /// Ends the follow.
    End,
}

/// A reader's side of following the log: its answers to a quiet log and to failed reads.
pub(crate) trait FollowWatch {
    /// The log has nothing after the cursor. `turn_running` says whether a live turn holds the
    /// chat (it is an error when the lease could not be read).
    async fn quiet(
        &mut self,
        log: &mut LogFollower,
        turn_running: Result<bool, StoreError>,
    ) -> FollowOn;

    /// A read of the log failed.
    async fn failed(&mut self, error: StoreError) -> FollowOn;

    /// Resolves once nobody wants the records any more (the client left): it cuts the wait
    /// between two looks short, and ends the follow.
    fn abandoned(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
}

/// One reader's place in one chat's output log.
pub(crate) struct LogFollower {
    store: Arc<dyn Store>,
    chat_id: String,
    cursor: Option<u64>,
    notice: FollowNotice,
    /// The last read found records and went on to the log's end: the next look need not read
    /// again before it asks whether a turn still runs.
    read_to_end: bool,
}

impl LogFollower {
    /// A follower of `chat_id`'s log from after `after`.
    pub(crate) fn new(store: Arc<dyn Store>, chat_id: &str, after: Option<u64>) -> Self {
        LogFollower {
            notice: FollowNotice::new(store.clone(), chat_id),
            store,
            chat_id: chat_id.to_owned(),
            cursor: after,
            read_to_end: false,
        }
    }

    /// The last record the reader has.
    pub(crate) fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// Moves the cursor to `seq`: the reader got the records up to it elsewhere (from a turn
    /// running in its own process).
    pub(crate) fn advance_to(&mut self, seq: u64) {
        self.cursor = Some(seq);
    }

    /// Every record after the cursor, which moves past them.
    pub(crate) async fn read_new(&mut self) -> Result<Vec<OutputRecord>, StoreError> {
        let records = read_after(self.store.as_ref(), &self.chat_id, self.cursor).await?;
        if let Some(last) = records.last() {
            self.cursor = Some(last.seq);
        }
        Ok(records)
    }

    /// The next records after the cursor, polling the log until there are some; `None` once
    /// `watch` ends the follow.
    pub(crate) async fn next(&mut self, watch: &mut impl FollowWatch) -> Option<Vec<OutputRecord>> {
        let mut skip_read = std::mem::take(&mut self.read_to_end);
        let mut last_look = false;
        loop {
            if !skip_read {
                match self.read_new().await {
                    Ok(records) if !records.is_empty() => {
                        self.read_to_end = true;
                        return Some(records);
                    }
                    Ok(_) if last_look => return None,
                    Ok(_) => {}
                    Err(error) => {
                        let next = watch.failed(error).await;
                        if !carry_on(next, watch, &mut last_look).await {
                            return None;
                        }
                        continue;
                    }
                }
            }
            skip_read = false;
            let turn_running = self.turn_running().await;
            let held = matches!(turn_running, Ok(true));
            let next = watch.quiet(self, turn_running).await;
            // Waiting for a turn that another process runs (a turn of the reader's own process is
            // followed from memory): ask it for short batches.
            if held && matches!(next, FollowOn::Later) {
                self.notice.renew().await;
            }
            if !carry_on(next, watch, &mut last_look).await {
                return None;
            }
        }
    }

    /// Whether a live (unexpired) turn holds the chat.
    async fn turn_running(&self) -> Result<bool, StoreError> {
        Ok(self
            .store
            .lease(&self.chat_id)
            .await?
            .is_some_and(|lease| !lease.is_expired(now_ms())))
    }
}

/// Whether to look at the log again, waiting first if `next` says so.
async fn carry_on(next: FollowOn, watch: &impl FollowWatch, last_look: &mut bool) -> bool {
    match next {
        FollowOn::Later => crate::runtime::timeout(POLL_INTERVAL, watch.abandoned())
            .await
            .is_err(),
        FollowOn::Now => true,
        FollowOn::LastLook => {
            *last_look = true;
            true
        }
        FollowOn::End => false,
    }
}

/// Every output record of `chat_id` after `after`, page by page.
pub(crate) async fn read_after(
    store: &dyn Store,
    chat_id: &str,
    after: Option<u64>,
) -> Result<Vec<OutputRecord>, StoreError> {
    let mut records: Vec<OutputRecord> = Vec::new();
    let mut cursor = after;
    loop {
        let page = store.output(chat_id, cursor, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(records);
        };
        cursor = Some(last.seq);
        records.extend(page);
    }
}
