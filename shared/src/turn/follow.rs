//! Following a chat's output log from outside the process that writes it: the reader polls the
//! store for the records after its cursor and, while it waits for a turn that holds the chat,
//! marks the log followed ([`notice`]) so that the turn writes short batches for it.
//! [`LogFollower::next`] is that polling loop, for every reader of the log; what a reader makes of
//! a quiet log (wait, end, follow a turn of its own process) is its [`FollowWatch`]. Where this
//! process is the store's only writer, a reader with a [`ChatWake`] waits for its wake-ups and
//! looks at a quiet log ever less often, up to [`IDLE_LOOK_INTERVAL`]. Where other processes
//! write too (DynamoDB, shared by Lambda instances), nothing wakes a reader, and every look is a
//! billed read: while no turn runs, a reader looks ever less often, up to
//! [`SHARED_IDLE_LOOK_INTERVAL`], and back at the poll interval once a look finds a turn running.

mod notice;
mod turn_log;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_ms;
use crate::store::{OutputRecord, Store, StoreError};
use crate::turn::ChatWake;
use notice::FollowNotice;

pub(crate) use turn_log::follow_turn_log;

/// How long a follower waits before it looks at a quiet log again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Records per read of the log.
const PAGE: usize = 512;
/// The longest wait between two looks of a woken reader at a quiet log: the wake-ups tell it of
/// this process's changes, and these looks catch what another process did after all (a SQLite
/// file opened by two servers).
const IDLE_LOOK_INTERVAL: Duration = Duration::from_millis(3200);
/// The longest wait between two looks at a quiet log of a reader that nothing wakes: the longest
/// a turn started elsewhere waits before such a reader notices it. At four calls a look (the log,
/// the lease, the consumed mark, the inputs after it), half a read unit each on DynamoDB, an idle
/// reader costs about 15 read units a minute, and under 30 in its first minute, whose looks come
/// closer together.
pub(crate) const SHARED_IDLE_LOOK_INTERVAL: Duration = Duration::from_secs(8);

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
    /// This process's wake-ups for the chat, where it is the store's only writer.
    wake: Option<ChatWake>,
    /// Looks in a row that found the chat quiet, with no turn running.
    quiet_looks: u32,
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
            wake: None,
            quiet_looks: 0,
        }
    }

    /// Waits for `wake` between looks at a quiet log, and looks less often.
    pub(crate) fn woken_by(mut self, wake: Option<ChatWake>) -> Self {
        self.wake = wake;
        self
    }

    /// Whether the last look found the chat quiet with no turn running: a reader that has waited
    /// a while and may look more cheaply.
    pub(crate) fn idle(&self) -> bool {
        self.quiet_looks > 0
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
            if let Some(wake) = &mut self.wake {
                wake.seen();
            }
            if !skip_read {
                match self.read_new().await {
                    Ok(records) if !records.is_empty() => {
                        self.read_to_end = true;
                        self.quiet_looks = 0;
                        return Some(records);
                    }
                    Ok(_) if last_look => return None,
                    Ok(_) => {}
                    Err(error) => {
                        let next = watch.failed(error).await;
                        if !self.carry_on(next, watch, &mut last_look).await {
                            return None;
                        }
                        continue;
                    }
                }
            }
            skip_read = false;
            let turn_running = self.turn_running().await;
            let held = matches!(turn_running, Ok(true));
            // A lease that could not be read says nothing either way: the pace stays.
            let quiet_looks = match turn_running {
                Ok(true) => 0,
                Ok(false) => self.quiet_looks.saturating_add(1),
                Err(_) => self.quiet_looks,
            };
            let next = watch.quiet(self, turn_running).await;
            // Waiting for a turn that another process runs (a turn of the reader's own process is
            // followed from memory): ask it for short batches.
            if held && matches!(next, FollowOn::Later) {
                self.notice.renew().await;
            }
            self.quiet_looks = quiet_looks;
            if !self.carry_on(next, watch, &mut last_look).await {
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

impl LogFollower {
    /// Whether to look at the log again, waiting first if `next` says so.
    async fn carry_on(
        &mut self,
        next: FollowOn,
        watch: &impl FollowWatch,
        last_look: &mut bool,
    ) -> bool {
        match next {
            FollowOn::Later => self.wait(watch).await,
            other => decide(other, last_look),
        }
    }

    /// Waits before the next look: the poll interval, or (for a reader of a quiet chat) a wait
    /// that doubles with each quiet look up to [`IDLE_LOOK_INTERVAL`] and ends at a wake-up, or
    /// up to [`SHARED_IDLE_LOOK_INTERVAL`] for a reader that nothing wakes. False when the
    /// reader was abandoned meanwhile.
    async fn wait(&mut self, watch: &impl FollowWatch) -> bool {
        if self.quiet_looks == 0 {
            return crate::runtime::timeout(POLL_INTERVAL, watch.abandoned())
                .await
                .is_err();
        }
        let doubled = POLL_INTERVAL.saturating_mul(1 << self.quiet_looks.min(8));
        let Some(wake) = self.wake.as_mut() else {
            return crate::runtime::timeout(
                doubled.min(SHARED_IDLE_LOOK_INTERVAL),
                watch.abandoned(),
            )
            .await
            .is_err();
        };
        let interval = doubled.min(IDLE_LOOK_INTERVAL);
        let abandoned = std::pin::pin!(watch.abandoned());
        let woken = std::pin::pin!(wake.woken());
        match crate::runtime::timeout(interval, futures::future::select(abandoned, woken)).await {
            Ok(futures::future::Either::Left(_)) => false,
            Ok(futures::future::Either::Right(_)) => {
                self.quiet_looks = 0;
                true
            }
            Err(_) => true,
        }
    }
}

/// Whether to look at the log again after `next`, which asks for no wait.
fn decide(next: FollowOn, last_look: &mut bool) -> bool {
    match next {
        FollowOn::Later => true,
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
