//! Turns running in this process, readable from memory while they stream. The executor pushes
//! each record here before (and independently of) its batched write to the store, so every
//! reader in the process follows the turn with no polling and no added latency.
//!
//! The feed holds each record once. Until the store holds a record, the feed is the only place
//! that has it (and the writer's batch is the feed's unwritten tail). On a store whose reads cost
//! nothing ([`OutputCadence::Steady`]: memory, SQLite, a Durable Object) the feed lets go of
//! what the store wrote, and a reader that falls behind reads those records back from the store:
//! the reply is not kept twice. On a store that bills reads (DynamoDB) the feed keeps the whole
//! turn, so no reader in the process ever queries it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{OutputCadence, OutputRecord, Store};

/// How many records a reader that fell behind reads back from the store at once.
const READ_BACK_PAGE: u64 = 512;

/// One running turn's output so far.
pub struct LiveTurn {
    chat_id: String,
    first_seq: u64,
    state: Mutex<LiveState>,
    /// Bumped on every change; readers wait on it.
    version: watch::Sender<u64>,
    stop: CancellationToken,
    /// Set once the turn's lease is known to be another's (taken over, or the chat erased): the
    /// turn may write nothing more.
    lease_lost: AtomicBool,
    /// Where records the feed let go of are read back from; set once the writer knows its store
    /// reads cheaply.
    written_to: OnceLock<Arc<dyn Store>>,
}

struct LiveState {
    /// The records readers may still need from memory, in seq order: every record not yet
    /// written, and (unless the store reads them back cheaply) the written ones too.
    records: VecDeque<OutputRecord>,
    /// The seq after the last record readers may see.
    visible_end: u64,
    /// The highest seq the store holds.
    written_through: Option<u64>,
    done: bool,
}

/// What a reader does next, decided under the lock and done outside it.
enum ReadStep {
    Serve(Vec<OutputRecord>),
    ReadBack {
        store: Arc<dyn Store>,
        from: u64,
        below: u64,
    },
    Wait,
    End,
}

impl LiveTurn {
    /// A turn of `chat_id` whose first output record will be `first_seq`.
    pub fn new(chat_id: impl Into<String>, first_seq: u64) -> Self {
        LiveTurn {
            chat_id: chat_id.into(),
            first_seq,
            state: Mutex::new(LiveState {
                records: VecDeque::new(),
                visible_end: first_seq,
                written_through: None,
                done: false,
            }),
            version: watch::Sender::new(0),
            stop: CancellationToken::new(),
            lease_lost: AtomicBool::new(false),
            written_to: OnceLock::new(),
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

    /// The lease is gone: the turn's writer refuses every later write, and the turn is asked
    /// to stop, so that a model stream or tool that heeds the stop ends it early.
    pub(super) fn lose_lease(&self) {
        self.refuse_writes();
        self.stop.cancel();
    }

    /// Another executor writes the chat's log now: the turn's writer refuses every later write.
    pub(super) fn refuse_writes(&self) {
        self.lease_lost.store(true, Ordering::Release);
    }

    /// Whether the writer refuses writes ([`lose_lease`](Self::lose_lease),
    /// [`refuse_writes`](Self::refuse_writes)).
    pub(super) fn lease_lost(&self) -> bool {
        self.lease_lost.load(Ordering::Acquire)
    }

    fn state(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding this lock cannot leave the queue half-pushed; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store the turn's records are written to. Where it reads cheaply, the feed lets go of
    /// each record once it is written and readers that fall behind read it back from there.
    pub(super) fn writes_to(&self, store: &Arc<dyn Store>) {
        if store.output_cadence() == OutputCadence::Steady {
            // Only the turn's one writer calls this; a second call changes nothing.
            let _ = self.written_to.set(store.clone());
        }
    }

    /// Adds the next record and wakes the readers.
    pub fn push(&self, record: OutputRecord) {
        {
            let mut state = self.state();
            state.visible_end = state.visible_end.max(record.seq + 1);
            state.records.push_back(record);
        }
        self.version.send_modify(|version| *version += 1);
    }

    /// The pushed records the store does not hold yet: the writer's next batch.
    pub(super) fn unwritten(&self) -> Vec<OutputRecord> {
        let state = self.state();
        let from = state.unwritten_from();
        state.records.range(from..).cloned().collect()
    }

    /// How many pushed records the store does not hold yet.
    pub(super) fn unwritten_len(&self) -> usize {
        let state = self.state();
        state.records.len() - state.unwritten_from()
    }

    /// The store now holds every record up to `seq`: where it reads them back cheaply, the feed
    /// lets go of them.
    pub(super) fn written_through(&self, seq: u64) {
        let mut state = self.state();
        state.written_through = Some(state.written_through.map_or(seq, |at| at.max(seq)));
        if self.written_to.get().is_some() {
            let released = state.unwritten_from();
            state.records.drain(..released);
        }
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

    /// What a reader whose next record is `from` does next.
    fn read_step(&self, from: u64) -> ReadStep {
        let state = self.state();
        if from >= state.visible_end {
            return if state.done {
                ReadStep::End
            } else {
                ReadStep::Wait
            };
        }
        match state.records.front() {
            Some(front) if front.seq <= from => {
                let start = state.records.partition_point(|record| record.seq < from);
                ReadStep::Serve(state.records.range(start..).cloned().collect())
            }
            front => match self.written_to.get() {
                Some(store) => ReadStep::ReadBack {
                    store: store.clone(),
                    from,
                    below: front.map_or(state.visible_end, |record| record.seq),
                },
                // Nothing is let go of without a store to read it back from.
                None => ReadStep::End,
            },
        }
    }

    /// Follows the turn from after `after`: every record once, in order, ending when the turn is
    /// finished and drained.
    pub fn follow(self: Arc<Self>, after: Option<u64>) -> impl Stream<Item = OutputRecord> + Send {
        let receiver = self.version.subscribe();
        let from = after.map_or(self.first_seq, |after| (after + 1).max(self.first_seq));
        futures::stream::unfold(
            (self, receiver, from, Vec::<OutputRecord>::new().into_iter()),
            |(turn, mut receiver, mut from, mut buffered)| async move {
                loop {
                    if let Some(record) = buffered.next() {
                        from = record.seq + 1;
                        return Some((record, (turn, receiver, from, buffered)));
                    }
                    // Mark the current version seen before reading, so a push that lands after
                    // the read wakes us.
                    receiver.borrow_and_update();
                    match turn.read_step(from) {
                        ReadStep::Serve(records) => buffered = records.into_iter(),
                        ReadStep::ReadBack { store, from, below } => {
                            buffered = turn.read_back(store.as_ref(), from, below).await?;
                        }
                        ReadStep::Wait => {
                            // The reader holds the turn, so its sender outlives the wait.
                            receiver.changed().await.ok()?;
                        }
                        ReadStep::End => return None,
                    }
                }
            },
        )
    }

    /// Records `from..below` from the store, which holds them: none means the log lost them
    /// (the chat was erased), and the reader ends.
    async fn read_back(
        &self,
        store: &dyn Store,
        from: u64,
        below: u64,
    ) -> Option<std::vec::IntoIter<OutputRecord>> {
        let limit = below.saturating_sub(from).min(READ_BACK_PAGE) as usize;
        match store
            .output(&self.chat_id, from.checked_sub(1), limit)
            .await
        {
            Ok(mut records) => {
                records.retain(|record| record.seq < below);
                (!records.is_empty()).then(|| records.into_iter())
            }
            Err(error) => {
                tracing::warn!(chat = %self.chat_id, "could not read the turn back from the store: {error}");
                None
            }
        }
    }
}

impl LiveState {
    /// The index of the first record the store does not hold.
    fn unwritten_from(&self) -> usize {
        match self.written_through {
            None => 0,
            Some(through) => self.records.partition_point(|record| record.seq <= through),
        }
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

    async fn store_with_chat(cadence: OutputCadence) -> Arc<dyn Store> {
        let store = crate::store::memory::MemoryStore::with_output_cadence(cadence);
        store
            .create_session(crate::store::Session::new("c", 0))
            .await
            .expect("session");
        Arc::new(store)
    }

    /// Writes what the feed has not written yet, as the turn's writer does.
    async fn write(turn: &LiveTurn, store: &Arc<dyn Store>) {
        let batch = turn.unwritten();
        let last = batch.last().expect("a batch").seq;
        store.append_output("c", &batch).await.expect("append");
        turn.written_through(last);
    }

    #[tokio::test]
    async fn written_records_are_let_go_and_read_back_from_a_steady_store() {
        let store = store_with_chat(OutputCadence::Steady).await;
        let turn = Arc::new(LiveTurn::new("c", 3));
        turn.writes_to(&store);
        let early = turn.clone().follow(None);
        for seq in 3..8 {
            turn.push(record(seq));
        }
        write(&turn, &store).await;
        assert_eq!(turn.state().records.len(), 0, "the store holds them now");
        turn.push(record(8));
        assert_eq!(turn.unwritten_len(), 1);
        let mid = turn.clone().follow(Some(5));
        turn.finish();
        let early: Vec<OutputRecord> = early.collect().await;
        let mid: Vec<u64> = mid.map(|r| r.seq).collect().await;
        assert_eq!(
            early.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7, 8]
        );
        assert_eq!(mid, vec![6, 7, 8]);
        let mut stored = store.output("c", Some(2), 100).await.expect("output");
        stored.push(record(8));
        assert_eq!(
            format!("{early:?}"),
            format!("{stored:?}"),
            "what was read back is what was written"
        );
    }

    #[tokio::test]
    async fn a_store_that_bills_reads_leaves_the_whole_turn_in_memory() {
        let store = store_with_chat(OutputCadence::WhileFollowed).await;
        let turn = Arc::new(LiveTurn::new("c", 0));
        turn.writes_to(&store);
        turn.push(record(0));
        turn.push(record(1));
        write(&turn, &store).await;
        assert_eq!(turn.state().records.len(), 2);
        assert_eq!(turn.unwritten_len(), 0);
        turn.push(record(2));
        assert_eq!(
            turn.unwritten().iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[tokio::test]
    async fn a_record_written_before_it_is_pushed_stays_hidden_until_then() {
        let store = store_with_chat(OutputCadence::Steady).await;
        let turn = Arc::new(LiveTurn::new("c", 0));
        turn.writes_to(&store);
        turn.push(record(0));
        // The turn-complete: written with the last batch, shown to readers later.
        let mut batch = turn.unwritten();
        batch.push(record(1));
        store.append_output("c", &batch).await.expect("append");
        turn.written_through(1);
        let reader = tokio::spawn(turn.clone().follow(None).map(|r| r.seq).collect::<Vec<_>>());
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());
        turn.push(record(1));
        turn.finish();
        assert_eq!(reader.await.expect("joins"), vec![0, 1]);
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
