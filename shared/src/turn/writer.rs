//! The executor's side of the output log: numbers each chunk, shows it to live readers at once,
//! and writes it to the store in batches. While writing it also keeps the lease alive and looks
//! for stop requests sent to other processes.

use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::live::LiveTurn;
use super::{CONTROL_HEADER, ChatInput, TURN_COMPLETE};
use crate::agent::{ChunkSink, SinkClosed};
use crate::clock::now_ms;
use crate::store::{OutputBody, OutputRecord, Store, StoreError};
use crate::ui::UIMessageChunk;

/// How the writer batches and how often it does its chores.
#[derive(Debug, Clone, Copy)]
pub struct WriterSettings {
    /// Write at least this often while deltas stream. Live readers get every chunk from memory
    /// at once; this bounds how far a reader in another process (which polls the log every
    /// 100 ms) lags behind: under a second. Each write costs the store a request (on DynamoDB a
    /// put, a write unit per KB), so fewer, larger batches are much cheaper.
    pub flush_interval_ms: u64,
    /// Write when this many records wait.
    pub max_batch: usize,
    pub lease_ttl_ms: u64,
    /// How often to look in the input log for a stop sent to another process.
    pub stop_poll_interval_ms: u64,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            flush_interval_ms: 800,
            max_batch: 256,
            lease_ttl_ms: 30_000,
            stop_poll_interval_ms: 500,
        }
    }
}

pub struct OutputWriter {
    store: Arc<dyn Store>,
    chat_id: String,
    live: Arc<LiveTurn>,
    settings: WriterSettings,
    next_seq: u64,
    pending: Vec<OutputRecord>,
    last_flush_ms: u64,
    last_stop_poll_ms: u64,
    /// Stops in the input log after this sequence number are meant for this turn.
    stop_after_input: Option<u64>,
    lease_lost: bool,
}

impl OutputWriter {
    pub fn new(
        store: Arc<dyn Store>,
        live: Arc<LiveTurn>,
        settings: WriterSettings,
        stop_after_input: Option<u64>,
    ) -> Self {
        let now = now_ms();
        OutputWriter {
            store,
            chat_id: live.chat_id().to_owned(),
            next_seq: live.first_seq(),
            live,
            settings,
            pending: Vec::new(),
            last_flush_ms: now,
            last_stop_poll_ms: now,
            stop_after_input,
            lease_lost: false,
        }
    }

    /// True once another executor took the chat over: nothing more may be written.
    pub fn lease_lost(&self) -> bool {
        self.lease_lost
    }

    fn push(&mut self, body: OutputBody) {
        let record = OutputRecord {
            seq: self.next_seq,
            timestamp_ms: now_ms(),
            body,
        };
        self.next_seq += 1;
        self.live.push(record.clone());
        self.pending.push(record);
    }

    /// Writes what is pending.
    pub async fn flush(&mut self) -> Result<(), SinkClosed> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.store.append_output(&self.chat_id, &self.pending).await {
            Ok(()) => {
                self.pending.clear();
                self.last_flush_ms = now_ms();
                Ok(())
            }
            Err(StoreError::SequenceTaken(seq)) => {
                self.lease_lost = true;
                Err(SinkClosed(format!(
                    "output sequence {seq} was written by another executor"
                )))
            }
            Err(error) => Err(SinkClosed(error.to_string())),
        }
    }

    /// Appends the turn-complete control record and writes everything. Live readers do not get
    /// the record yet: it ends their streams, so it waits for [`announce`](Self::announce),
    /// which the runner calls once the chat's lease is released. A client that sends its next
    /// message the moment its stream ends then finds the chat free.
    pub async fn complete(&mut self, input_seq: Option<u64>) -> Result<OutputRecord, SinkClosed> {
        let mut headers = vec![(CONTROL_HEADER.to_owned(), TURN_COMPLETE.to_owned())];
        if let Some(seq) = input_seq {
            headers.push((super::ANSWERED_INPUT_HEADER.to_owned(), seq.to_string()));
        }
        let record = OutputRecord {
            seq: self.next_seq,
            timestamp_ms: now_ms(),
            body: OutputBody::Control { headers },
        };
        self.next_seq += 1;
        self.pending.push(record.clone());
        self.flush().await?;
        Ok(record)
    }

    /// Gives live readers a record written without them (the turn-complete).
    pub fn announce(&self, record: OutputRecord) {
        self.live.push(record);
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
        if self.lease_lost {
            return Err(SinkClosed("the turn lease was taken over".into()));
        }
        let json = serde_json::to_string(chunk).map_err(|e| SinkClosed(e.to_string()))?;
        let record_id = format!("{}:{}", self.live.first_seq(), self.next_seq);
        self.push(OutputBody::Chunk {
            record_id: record_id.into(),
            chunk: json.into(),
        });
        let due = now_ms().saturating_sub(self.last_flush_ms) >= self.settings.flush_interval_ms;
        if forces_flush(chunk) || due || self.pending.len() >= self.settings.max_batch {
            self.flush().await?;
        }
        let stop = self.live.stop_signal().clone();
        self.chores(&stop).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Session;
    use crate::store::memory::MemoryStore;
    use serde_json::json;

    fn chunk(value: serde_json::Value) -> UIMessageChunk {
        serde_json::from_value(value).expect("a chunk")
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
