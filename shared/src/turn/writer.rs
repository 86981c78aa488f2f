//! The executor's side of the output log: numbers each chunk, shows it to live readers at once,
//! and writes it to the store in batches. While writing it also keeps the lease alive and looks
//! for stop requests sent to other processes.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::ChatInput;
use super::live::LiveTurn;
use crate::agent::{ChunkSink, SinkClosed};
use crate::clock::now_ms;
use crate::store::{
    CONTROL_HEADER, OutputBody, OutputCadence, OutputRecord, Store, StoreError, TURN_COMPLETE,
};
use crate::ui::{UIMessage, UIMessageChunk};

/// How the writer batches and how often it does its chores.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Write at least this often while deltas stream and a reader in another process follows
    /// the log (on a store with the steady cadence, always). Live readers get every chunk from
    /// memory at once; this bounds how far a reader in another process (which polls the log
    /// every 100 ms) lags behind: under a second.
    pub flush_interval_ms: u64,
    /// Write at least this often while nobody in another process follows the log, on a store
    /// that bills each write ([`OutputCadence::WhileFollowed`]: on DynamoDB a put, a write unit
    /// per KB, so fewer, larger batches are much cheaper). It bounds what a crash of the turn's
    /// process loses of the reply's deltas (recovery closes the reply where the log ends; tool
    /// calls, errors and the turn's end are written at once). A reader that starts following
    /// asks for short batches and gets them within `flush_interval_ms` or two.
    pub unfollowed_flush_interval_ms: u64,
    /// Write when this many records wait. High enough that the long window's batches are cut
    /// by time, not count: a store bills by the KB, so one 2 KB batch costs less than two of 1.1.
    pub max_batch: usize,
    /// How long a turn's lease lasts between renewals; a turn whose process died is recovered
    /// after it.
    pub lease_ttl_ms: u64,
    /// How often to look in the input log for a stop sent to another process.
    pub stop_poll_interval_ms: u64,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            flush_interval_ms: 800,
            unfollowed_flush_interval_ms: 10_000,
            max_batch: 1024,
            lease_ttl_ms: 30_000,
            stop_poll_interval_ms: 500,
        }
    }
}

/// A turn's [`ChunkSink`](crate::agent::ChunkSink): each chunk goes to the live turn at once and
/// to the store's output log in batches, under the turn's lease, and a stop sent to another
/// process is noticed in the input log.
pub struct OutputWriter {
    store: Arc<dyn Store>,
    chat_id: String,
    live: Arc<LiveTurn>,
    settings: WriterSettings,
    next_seq: u64,
    last_flush_ms: u64,
    /// On a store with the `WhileFollowed` cadence: until when the log is known to be followed,
    /// and when the writer last looked.
    followed_until_ms: u64,
    last_follow_check_ms: u64,
    last_stop_poll_ms: u64,
    /// Stops in the input log after this sequence number are meant for this turn.
    stop_after_input: Option<u64>,
}

impl OutputWriter {
    /// A writer of `live`'s records to `store`, from the live turn's first seq; stops in the input
    /// log after `stop_after_input` are meant for this turn.
    pub fn new(
        store: Arc<dyn Store>,
        live: Arc<LiveTurn>,
        settings: WriterSettings,
        stop_after_input: Option<u64>,
    ) -> Self {
        let now = now_ms();
        live.writes_to(&store);
        OutputWriter {
            store,
            chat_id: live.chat_id().to_owned(),
            next_seq: live.first_seq(),
            live,
            settings,
            last_flush_ms: now,
            followed_until_ms: 0,
            last_follow_check_ms: 0,
            last_stop_poll_ms: now,
            stop_after_input,
        }
    }

    /// True once another executor took the chat over: nothing more may be written.
    pub fn lease_lost(&self) -> bool {
        self.live.lease_lost()
    }

    fn push(&mut self, body: OutputBody) {
        let record = OutputRecord {
            seq: self.next_seq,
            timestamp_ms: now_ms(),
            body,
        };
        self.next_seq += 1;
        self.live.push(record);
    }

    /// Writes what is pending: the live turn's records the store does not hold yet.
    pub async fn flush(&mut self) -> Result<(), SinkClosed> {
        self.write(self.live.unwritten()).await
    }

    async fn write(&mut self, batch: Vec<OutputRecord>) -> Result<(), SinkClosed> {
        let Some(last) = batch.last().map(|record| record.seq) else {
            return Ok(());
        };
        if self.live.lease_lost() {
            return Err(SinkClosed("the turn lease was lost".into()));
        }
        match self.store.append_output(&self.chat_id, &batch).await {
            Ok(()) => {
                self.live.written_through(last);
                self.last_flush_ms = now_ms();
                Ok(())
            }
            Err(StoreError::SequenceTaken(seq)) => {
                self.live.refuse_writes();
                Err(SinkClosed(format!(
                    "output sequence {seq} was written by another executor"
                )))
            }
            Err(error) => Err(SinkClosed(error.to_string())),
        }
    }

    /// Appends the turn-complete control record and writes everything, in one batch. Live
    /// readers do not get the record yet: it ends their streams, so it waits for
    /// [`announce`](Self::announce), which the runner calls once the chat's lease is released. A
    /// client that sends its next message the moment its stream ends then finds the chat free.
    /// `reply` is the message the turn stores next ([`REPLY_HEADER`]).
    pub async fn complete(
        &mut self,
        input_seq: Option<u64>,
        reply: Option<&UIMessage>,
    ) -> Result<OutputRecord, SinkClosed> {
        let mut headers = vec![(CONTROL_HEADER.to_owned(), TURN_COMPLETE.to_owned())];
        if let Some(seq) = input_seq {
            headers.push((super::ANSWERED_INPUT_HEADER.to_owned(), seq.to_string()));
        }
        if let Some(reply) = reply {
            headers.push((REPLY_HEADER.to_owned(), reply_header(reply)));
        }
        let record = OutputRecord {
            seq: self.next_seq,
            timestamp_ms: now_ms(),
            body: OutputBody::Control { headers },
        };
        self.next_seq += 1;
        let mut batch = self.live.unwritten();
        batch.push(record.clone());
        self.write(batch).await?;
        Ok(record)
    }

    /// Gives live readers a record written without them (the turn-complete).
    pub fn announce(&self, record: OutputRecord) {
        self.live.push(record);
    }

    /// Whether the pending records have waited long enough: `flush_interval_ms` where writes
    /// are cheap or while the log is followed, else `unfollowed_flush_interval_ms`.
    async fn batch_due(&mut self, now: u64) -> bool {
        let waited = now.saturating_sub(self.last_flush_ms);
        if waited < self.settings.flush_interval_ms {
            return false;
        }
        self.store.output_cadence() == OutputCadence::Steady
            || waited >= self.settings.unfollowed_flush_interval_ms
            || self.followed(now).await
    }

    /// Whether a reader in another process follows the log, looked up at most once per
    /// `flush_interval_ms` (a read, where each batch saved is a write).
    async fn followed(&mut self, now: u64) -> bool {
        if self.followed_until_ms > now {
            return true;
        }
        if now.saturating_sub(self.last_follow_check_ms) < self.settings.flush_interval_ms {
            return false;
        }
        self.last_follow_check_ms = now;
        match self.store.output_followed_until(&self.chat_id).await {
            Ok(until) => {
                self.followed_until_ms = until.unwrap_or(0);
                self.followed_until_ms > now
            }
            Err(error) => {
                // Unknown: write, as a reader may be waiting.
                tracing::warn!(chat = %self.chat_id, "could not look for readers of the log: {error}");
                true
            }
        }
    }

    async fn chores(&mut self, stop: &CancellationToken) -> Result<(), SinkClosed> {
        // The lease is renewed by the turn's heartbeat (`LeaseHeartbeat`), on a timer.
        let now = now_ms();
        if !stop.is_cancelled()
            && now.saturating_sub(self.last_stop_poll_ms) >= self.settings.stop_poll_interval_ms
        {
            self.last_stop_poll_ms = now;
            if self.stop_requested().await {
                stop.cancel();
            }
        }
        Ok(())
    }

    async fn stop_requested(&mut self) -> bool {
        let inputs = match self
            .store
            .inputs(&self.chat_id, self.stop_after_input, 64)
            .await
        {
            Ok(inputs) => inputs,
            Err(error) => {
                tracing::warn!(chat = %self.chat_id, "could not look for stops: {error}");
                return false;
            }
        };
        let mut stop = false;
        for input in &inputs {
            self.stop_after_input = Some(input.seq);
            if matches!(
                serde_json::from_str::<ChatInput>(&input.body),
                Ok(ChatInput::Stop { .. })
            ) {
                stop = true;
            }
        }
        stop
    }
}

/// The turn-complete header that names the reply its turn stores right after writing it:
/// `{parts} {message id}`, the parts the stored message has. A recovery that finds the
/// turn-complete of a turn that died before the reply was stored (a stored message with that id
/// and fewer parts is the one the reply continues) stores it from the log.
pub const REPLY_HEADER: &str = "chatfn-reply";

fn reply_header(reply: &UIMessage) -> String {
    format!("{} {}", reply.parts.len(), reply.id)
}

/// The parts and message id of a [`REPLY_HEADER`].
pub fn parse_reply_header(value: &str) -> Option<(usize, &str)> {
    let (parts, id) = value.split_once(' ')?;
    let parts = parts.parse().ok()?;
    (!id.is_empty()).then_some((parts, id))
}

/// Whether a chunk is made durable at once rather than with the next batch. Deltas are the bulk
/// of a reply and cheap to lose in a crash (recovery closes the open part); so are the markers
/// that open and close parts and steps, which come right before or after deltas (and the turn's
/// end writes whatever is pending). Tool calls and their results, approvals, errors and the
/// rest are written at once: they are what a crash must not lose.
fn forces_flush(chunk: &UIMessageChunk) -> bool {
    !matches!(
        chunk,
        UIMessageChunk::TextDelta { .. }
            | UIMessageChunk::ReasoningDelta { .. }
            | UIMessageChunk::ToolInputDelta { .. }
            | UIMessageChunk::Start { .. }
            | UIMessageChunk::StartStep
            | UIMessageChunk::FinishStep
            | UIMessageChunk::TextStart { .. }
            | UIMessageChunk::TextEnd { .. }
            | UIMessageChunk::ReasoningStart { .. }
            | UIMessageChunk::ReasoningEnd { .. }
            | UIMessageChunk::Finish { .. }
    )
}

#[async_trait]
impl ChunkSink for OutputWriter {
    async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed> {
        if self.lease_lost() {
            return Err(SinkClosed("the turn lease was taken over".into()));
        }
        let json = serde_json::to_string(chunk).map_err(|e| SinkClosed(e.to_string()))?;
        let record_id = format!("{}:{}", self.live.first_seq(), self.next_seq);
        self.push(OutputBody::Chunk {
            record_id: record_id.into(),
            chunk: json.into(),
        });
        if forces_flush(chunk)
            || self.live.unwritten_len() >= self.settings.max_batch
            || self.batch_due(now_ms()).await
        {
            self.flush().await?;
        }
        let stop = self.live.stop_signal().clone();
        self.chores(&stop).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_headers_round_trip_and_bad_ones_are_none() {
        let mut reply = UIMessage::new("msg 1: with spaces", crate::ui::Role::Assistant);
        reply.parts.push(crate::ui::UIPart::text("hi"));
        let value = reply_header(&reply);
        assert_eq!(parse_reply_header(&value), Some((1, "msg 1: with spaces")));
        for bad in ["", "3", "x id", "-1 id", "2 "] {
            assert_eq!(parse_reply_header(bad), None, "{bad:?}");
        }
    }
    use crate::store::Session;
    use crate::store::memory::MemoryStore;
    use serde_json::json;

    fn chunk(value: serde_json::Value) -> UIMessageChunk {
        serde_json::from_value(value).expect("a chunk")
    }

    /// On a store that bills each write, deltas wait for the long window while nobody follows
    /// the log elsewhere, and go out in short batches once a reader marks it followed.
    #[tokio::test]
    async fn deltas_wait_longer_until_a_reader_elsewhere_follows() {
        use crate::store::OutputCadence;
        let store = Arc::new(MemoryStore::with_output_cadence(
            OutputCadence::WhileFollowed,
        ));
        store
            .create_session(Session::new("f", now_ms()))
            .await
            .expect("session");
        let live = Arc::new(LiveTurn::new("f", 0));
        let settings = WriterSettings {
            flush_interval_ms: 20,
            unfollowed_flush_interval_ms: 60_000,
            ..WriterSettings::default()
        };
        let mut writer = OutputWriter::new(store.clone(), live, settings, None);
        let delta = chunk(json!({"type": "text-delta", "id": "t", "delta": "a"}));
        let written = || async { store.output("f", None, 100).await.expect("output").len() };
        for _ in 0..3 {
            writer.emit(&delta).await.expect("emit");
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        writer.emit(&delta).await.expect("emit");
        assert_eq!(written().await, 0, "unfollowed, the batch waits");

        store
            .follow_output("f", now_ms() + 10_000)
            .await
            .expect("mark");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        writer.emit(&delta).await.expect("emit");
        assert_eq!(written().await, 5, "followed, the batch goes out");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        writer.emit(&delta).await.expect("emit");
        assert_eq!(written().await, 6, "and so does the next");
    }

    #[tokio::test]
    async fn deltas_and_part_markers_wait_for_the_batch_and_tool_calls_do_not() {
        let store = Arc::new(MemoryStore::new());
        let now = now_ms();
        store
            .create_session(Session::new("w", now))
            .await
            .expect("session");
        let live = Arc::new(LiveTurn::new("w", 0));
        let settings = WriterSettings {
            flush_interval_ms: 60_000,
            ..WriterSettings::default()
        };
        let mut writer = OutputWriter::new(store.clone(), live, settings, None);
        let written = |store: Arc<MemoryStore>| async move {
            store.output("w", None, 100).await.expect("output").len()
        };
        for value in [
            json!({"type": "start"}),
            json!({"type": "start-step"}),
            json!({"type": "text-start", "id": "t"}),
            json!({"type": "text-delta", "id": "t", "delta": "a"}),
            json!({"type": "text-end", "id": "t"}),
        ] {
            writer.emit(&chunk(value)).await.expect("emit");
        }
        assert_eq!(
            written(store.clone()).await,
            0,
            "all of it waits for the batch"
        );
        let call = json!({"type": "tool-input-available", "toolCallId": "c", "toolName": "x", "input": {}});
        writer.emit(&chunk(call)).await.expect("emit");
        assert_eq!(
            written(store.clone()).await,
            6,
            "a tool call is written at once, with what waited"
        );
        writer
            .emit(&chunk(json!({"type": "finish-step"})))
            .await
            .expect("emit");
        assert_eq!(written(store.clone()).await, 6);
        writer
            .emit(&chunk(json!({"type": "error", "errorText": "boom"})))
            .await
            .expect("emit");
        assert_eq!(
            written(store.clone()).await,
            8,
            "an error is written at once"
        );
    }
}
