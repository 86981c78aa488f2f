//! Turns running in this process, readable from memory while they stream. The executor pushes
//! each record here before (and independently of) its batched write to the store, so every
//! reader in the process follows the turn with no polling and no added latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::OutputRecord;

/// One running turn's output so far.
pub struct LiveTurn {
    chat_id: String,
    first_seq: u64,
    state: Mutex<LiveState>,
    /// Bumped on every change; readers wait on it.
    version: watch::Sender<u64>,
    stop: CancellationToken,
}

#[derive(Default)]
struct LiveState {
    records: Vec<OutputRecord>,
    done: bool,
}

impl LiveTurn {
    /// A turn of `chat_id` whose first output record will be `first_seq`.
    pub fn new(chat_id: impl Into<String>, first_seq: u64) -> Self {
        LiveTurn {
            chat_id: chat_id.into(),
            first_seq,
            state: Mutex::new(LiveState::default()),
            version: watch::Sender::new(0),
            stop: CancellationToken::new(),
        }
    }

    /// The chat the turn belongs to.
    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }

    /// The sequence number of the turn's first record.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Fires when someone asks the turn to stop.
    pub fn stop_signal(&self) -> &CancellationToken {
        &self.stop
    }

    fn state(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding this lock cannot leave the Vec half-pushed; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds the next record and wakes the readers.
    pub fn push(&self, record: OutputRecord) {
        self.state().records.push(record);
        self.version.send_modify(|version| *version += 1);
    }

    /// Marks the turn finished: readers drain what is left and end.
    pub fn finish(&self) {
        self.state().done = true;
        self.version.send_modify(|version| *version += 1);
    }

    /// Whether the turn is finished.
    pub fn is_done(&self) -> bool {
        self.state().done
    }

    /// Resolves once the turn is finished.
    pub async fn finished(&self) {
        let mut receiver = self.version.subscribe();
        while !self.is_done() {
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }

    /// Records with `seq > after` (all with `None`), and whether the turn is finished.
    pub fn records_after(&self, after: Option<u64>) -> (Vec<OutputRecord>, bool) {
        let state = self.state();
        let start = match after {
            None => 0,
            Some(after) => state.records.partition_point(|record| record.seq <= after),
        };
        (state.records[start..].to_vec(), state.done)
    }

    /// Follows the turn from after `after`: every record once, in order, ending when the turn is
    /// finished and drained.
    pub fn follow(self: Arc<Self>, after: Option<u64>) -> impl Stream<Item = OutputRecord> + Send {
        let receiver = self.version.subscribe();
        futures::stream::unfold(
            (
                self,
                receiver,
                after,
                Vec::<OutputRecord>::new().into_iter(),
                false,
            ),
            |(turn, mut receiver, mut cursor, mut buffered, mut finished)| async move {
                loop {
                    if let Some(record) = buffered.next() {
                        cursor = Some(record.seq);
                        return Some((record, (turn, receiver, cursor, buffered, finished)));
                    }
                    if finished {
                        return None;
                    }
                    // Mark the current version seen before reading, so a push that lands after
                    // the read wakes us.
                    receiver.borrow_and_update();
                    let (records, done) = turn.records_after(cursor);
                    if records.is_empty() {
                        if done {
                            return None;
                        }
                        if receiver.changed().await.is_err() {
                            finished = true;
                        }
                        continue;
                    }
                    finished = done;
                    buffered = records.into_iter();
                }
            },
        )
    }
}

/// The turns running in this process, by chat, and the wake-ups of the readers that wait on the
/// chats here: a turn that starts or ends wakes them.
#[derive(Default)]
pub struct LiveTurns {
    turns: Mutex<HashMap<String, Arc<LiveTurn>>>,
    wakes: Arc<super::ChatWakes>,
}

impl LiveTurns {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<LiveTurn>>> {
        self.turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a running turn, replacing the chat's previous one.
    pub fn insert(&self, turn: Arc<LiveTurn>) {
        let chat_id = turn.chat_id().to_owned();
        self.map().insert(chat_id.clone(), turn);
        self.wakes.wake(&chat_id);
    }

    /// The wake-ups of the readers waiting on this process's chats.
    pub fn wakes(&self) -> &Arc<super::ChatWakes> {
        &self.wakes
    }

    /// The turn running for `chat_id` in this process, if any.
    pub fn get(&self, chat_id: &str) -> Option<Arc<LiveTurn>> {
        self.map().get(chat_id).cloned()
    }

    /// Forgets the turn, unless a newer one for the chat replaced it already.
    pub fn remove(&self, turn: &Arc<LiveTurn>) {
        let mut map = self.map();
        if map
            .get(turn.chat_id())
            .is_some_and(|current| Arc::ptr_eq(current, turn))
        {
            map.remove(turn.chat_id());
            drop(map);
            self.wakes.wake(turn.chat_id());
        }
    }

    /// Every turn running in this process (the Lambda host stops them near its deadline).
    pub fn all(&self) -> Vec<Arc<LiveTurn>> {
        self.map().values().cloned().collect()
    }

    /// How many turns are running in this process.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no turn is running in this process.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutputBody;
    use futures::StreamExt;

    fn record(seq: u64) -> OutputRecord {
        OutputRecord {
            seq,
            timestamp_ms: 0,
            body: OutputBody::Chunk {
                record_id: format!("r{seq}").into(),
                chunk: "{}".into(),
            },
        }
    }

    #[tokio::test]
    async fn readers_see_every_record_once_then_end() {
        let turn = Arc::new(LiveTurn::new("c", 5));
        turn.push(record(5));
        let reader = tokio::spawn(turn.clone().follow(None).map(|r| r.seq).collect::<Vec<_>>());
        let late = tokio::spawn(
            turn.clone()
                .follow(Some(6))
                .map(|r| r.seq)
                .collect::<Vec<_>>(),
        );
        for seq in 6..10 {
            tokio::task::yield_now().await;
            turn.push(record(seq));
        }
        turn.finish();
        assert_eq!(reader.await.expect("joins"), vec![5, 6, 7, 8, 9]);
        assert_eq!(late.await.expect("joins"), vec![7, 8, 9]);
    }

    #[tokio::test]
    async fn a_finished_turn_still_replays() {
        let turn = Arc::new(LiveTurn::new("c", 0));
        turn.push(record(0));
        turn.push(record(1));
        turn.finish();
        let seqs: Vec<u64> = turn.follow(Some(0)).map(|r| r.seq).collect().await;
        assert_eq!(seqs, vec![1]);
    }

    #[test]
    fn removing_an_old_turn_keeps_the_new_one() {
        let turns = LiveTurns::default();
        let old = Arc::new(LiveTurn::new("c", 0));
        let new = Arc::new(LiveTurn::new("c", 10));
        turns.insert(old.clone());
        turns.insert(new.clone());
        turns.remove(&old);
        assert!(turns.get("c").is_some_and(|t| Arc::ptr_eq(&t, &new)));
        turns.remove(&new);
        assert!(turns.is_empty());
    }
}
