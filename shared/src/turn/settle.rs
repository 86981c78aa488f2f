//! Settling a turn that has run: its end in the log, its reply in the history, the chat freed
//! with the chat's record, in that order, and only then the end shown to its readers.

use serde_json::Value;

use super::execute::RunningTurn;
use super::runner::TurnRunner;
use crate::agent::SinkClosed;
use crate::store::{OutboxEvent, OutputRecord, StoreError};
use crate::ui::{UIMessage, UIPart};

/// Why a turn could not be settled.
#[derive(Debug, thiserror::Error)]
pub(super) enum SettleError {
    /// Its end could not be written to the log.
    #[error(transparent)]
    Log(#[from] SinkClosed),
    /// Its reply could not be stored, or the chat not freed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TurnRunner {
    /// Closes the turn in the log (what is pending and the turn-complete, one batch), persists
    /// the reply and frees the chat, in that order. Readers are given the turn's end only once
    /// the chat is free, so they also find the reply in the history. The turn-complete names
    /// the reply ([`REPLY_HEADER`](super::REPLY_HEADER)): a turn that dies before storing it is
    /// recovered with it. `record`, when the turn changed it, is saved with the release, or
    /// alone when the turn cannot free the chat. The turn's `event` goes to the outbox just
    /// before the chat is freed: a turn that dies before is recovered, and its recovery writes
    /// the event under the same id.
    pub(super) async fn settle(
        &self,
        turn: &mut RunningTurn,
        message: &UIMessage,
        record: Option<&Value>,
        event: Option<&OutboxEvent>,
    ) -> Result<(), SettleError> {
        let (closing, released) = match self.end_and_store(turn, message).await {
            Ok(closing) => {
                if let Some(event) = event {
                    self.record_event(event).await;
                }
                (Some(closing), self.free_chat(turn, record).await)
            }
            Err(error) => (None, Err(error)),
        };
        if released.is_err()
            && let Some(record) = record
        {
            self.save_state(turn.live.chat_id(), record).await;
        }
        if let Some(closing) = closing {
            turn.writer.announce(closing);
        }
        released
    }

    /// The turn's end in the log, then its reply and the messages it injected in the history.
    async fn end_and_store(
        &self,
        turn: &mut RunningTurn,
        message: &UIMessage,
    ) -> Result<OutputRecord, SettleError> {
        let chat_id = turn.live.chat_id();
        // The message the reply answers lands first: a turn that cannot store it ends here,
        // its lease left to expire, and its recovery stores both.
        if let Some(unstored) = &turn.unstored {
            self.store.put_message(chat_id, unstored).await?;
        }
        turn.unstored = None;
        let reply = has_content(message).then_some(message);
        let closing = turn.writer.complete(turn.lease.input_seq, reply).await?;
        if let Some(reply) = reply {
            self.store.put_message(chat_id, reply).await?;
        }
        for injected in &turn.info.controls.injected() {
            self.store.put_message(chat_id, injected).await?;
        }
        Ok(closing)
    }

    /// Releases the turn's lease, with the chat's record when the turn changed it.
    async fn free_chat(
        &self,
        turn: &RunningTurn,
        record: Option<&Value>,
    ) -> Result<(), SettleError> {
        let (chat_id, lease) = (turn.live.chat_id(), &turn.lease);
        let released = match record {
            Some(record) => {
                self.store
                    .release_lease_with_state(chat_id, &lease.holder, lease.input_seq, record)
                    .await
            }
            None => {
                self.store
                    .release_lease(chat_id, &lease.holder, lease.input_seq)
                    .await
            }
        };
        match released {
            // The turn-complete is written, so nobody took the turn over: an earlier attempt
            // of this release landed and its answer was lost (the store retried it).
            Err(StoreError::LeaseLost) => Ok(()),
            released => Ok(released?),
        }
    }

    /// Saves the chat's record on its own; a failure is logged (the turn goes on ending).
    pub(super) async fn save_state(&self, chat_id: &str, record: &Value) {
        if let Err(error) = self.store.put_state(chat_id, record).await {
            tracing::error!(chat = %chat_id, "could not save the chat state: {error}");
        }
    }
}

/// Whether a reply has anything to keep (more than step boundaries).
pub(super) fn has_content(message: &UIMessage) -> bool {
    message
        .parts
        .iter()
        .any(|part| !matches!(part, UIPart::StepStart))
}
