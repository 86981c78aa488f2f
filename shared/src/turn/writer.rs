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
    /// Write at least this often while deltas stream.
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
            flush_interval_ms: 100,
            max_batch: 64,
            lease_ttl_ms: 30_000,
            stop_poll_interval_ms: 500,
        }
    }
}

pub struct OutputWriter {
    store: Arc<dyn Store>,
    chat_id: String,
    holder: String,
    live: Arc<LiveTurn>,
    settings: WriterSettings,
    next_seq: u64,
    pending: Vec<OutputRecord>,
    last_flush_ms: u64,
    last_renew_ms: u64,
    last_stop_poll_ms: u64,
    /// Stops in the input log after this sequence number are meant for this turn.
    stop_after_input: Option<u64>,
    lease_lost: bool,
}

impl OutputWriter {
    pub fn new(
        store: Arc<dyn Store>,
        holder: String,
        live: Arc<LiveTurn>,
        settings: WriterSettings,
        stop_after_input: Option<u64>,
    ) -> Self {
        let now = now_ms();
        OutputWriter {
            store,
            chat_id: live.chat_id().to_owned(),
            holder,
            next_seq: live.first_seq(),
            live,
            settings,
            pending: Vec::new(),
            last_flush_ms: now,
            last_renew_ms: now,
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

    /// Appends the turn-complete control record and writes everything.
    pub async fn complete(&mut self, input_seq: Option<u64>) -> Result<(), SinkClosed> {
        let mut headers = vec![(CONTROL_HEADER.to_owned(), TURN_COMPLETE.to_owned())];
        if let Some(seq) = input_seq {
            headers.push(("session-in-event-id".to_owned(), seq.to_string()));
        }
        self.push(OutputBody::Control { headers });
        self.flush().await
    }

    async fn chores(&mut self, stop: &CancellationToken) -> Result<(), SinkClosed> {
        let now = now_ms();
        if now.saturating_sub(self.last_renew_ms) >= self.settings.lease_ttl_ms / 3 {
            let expires = now + self.settings.lease_ttl_ms;
            match self
                .store
                .renew_lease(&self.chat_id, &self.holder, expires, now)
                .await
            {
                Ok(()) => self.last_renew_ms = now,
                Err(StoreError::LeaseLost) => {
                    self.lease_lost = true;
                    return Err(SinkClosed("the turn lease was taken over".into()));
                }
                // A failed renewal is retried on the next chunk; the lease has time left.
                Err(error) => tracing::warn!(chat = %self.chat_id, "lease renewal failed: {error}"),
            }
        }
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

#[async_trait]
impl ChunkSink for OutputWriter {
    async fn emit(&mut self, chunk: &UIMessageChunk) -> Result<(), SinkClosed> {
        if self.lease_lost {
            return Err(SinkClosed("the turn lease was taken over".into()));
        }
        let json = serde_json::to_string(chunk).map_err(|e| SinkClosed(e.to_string()))?;
        let record_id = format!("{}:{}", self.live.first_seq(), self.next_seq);
        self.push(OutputBody::Chunk {
            record_id,
            chunk: json,
        });
        let is_delta = matches!(
            chunk,
            UIMessageChunk::TextDelta { .. }
                | UIMessageChunk::ReasoningDelta { .. }
                | UIMessageChunk::ToolInputDelta { .. }
        );
        let due = now_ms().saturating_sub(self.last_flush_ms) >= self.settings.flush_interval_ms;
        // Deltas are the bulk of a reply and cheap to lose in a crash (recovery closes the part);
        // everything else marks a boundary worth making durable at once.
        if !is_delta || due || self.pending.len() >= self.settings.max_batch {
            self.flush().await?;
        }
        let stop = self.live.stop_signal().clone();
        self.chores(&stop).await
    }
}
