//! Recovering a turn whose executor died (its lease expired): the reply it left in the log is
//! closed, marked interrupted and kept, so that the chat's readers get a clean end and the next
//! turn can start.

use std::sync::Arc;

use super::events::TurnEnd;
use super::live::LiveTurn;
use super::runner::{TurnError, TurnRunner};
use super::settle::has_content;
use super::writer::{OutputWriter, REPLY_HEADER, parse_reply_header};
use super::{ChatInput, ChatTrigger};
use crate::model::{FinishReason, Usage};
use crate::store::{OutputBody, OutputRecord, StoreError, TurnLease};
use crate::ui::{MessageFold, Role, UIMessage, UIMessageChunk};

impl TurnRunner {
    /// Closes a turn whose executor died: folds what it wrote, ends the open parts, marks it
    /// aborted, writes its turn-complete and keeps the partial reply. A turn that died after
    /// writing its turn-complete only misses its reply, if that: it is stored from the log.
    pub(super) async fn recover(
        &self,
        chat_id: &str,
        expired: &TurnLease,
    ) -> Result<(), TurnError> {
        tracing::warn!(chat = %chat_id, first_seq = expired.first_seq, "recovering an interrupted turn");
        let records = self
            .read_log(chat_id, expired.first_seq.checked_sub(1))
            .await?;
        let mut history = self.store.messages(chat_id).await?;
        let ended = records.iter().any(|r| r.body.is_turn_complete());
        // A turn that wrote its end had stored its new message; one that wrote nothing had
        // maybe not checked it yet.
        if !ended && !records.is_empty() {
            self.restore_message(chat_id, expired, &mut history).await?;
        }
        if let Some(end) = records.iter().position(|r| r.body.is_turn_complete()) {
            let named = records[end]
                .body
                .control_header(REPLY_HEADER)
                .and_then(parse_reply_header);
            if let Some((parts, id)) = named {
                // A stored message with the reply's id and fewer parts is the one it continues.
                let stored = history.iter().find(|m| m.id == id);
                if stored.is_none_or(|m| m.parts.len() < parts)
                    && let Some(fold) = fold_reply(&records[..end], &history)
                    && has_content(fold.message())
                {
                    self.store.put_message(chat_id, fold.message()).await?;
                }
            }
            // It ended but may have died before its event was written: the same id again.
            let fold = fold_reply(&records[..end], &history);
            self.recovered_event(chat_id, expired, fold.as_ref()).await;
            return Ok(());
        }
        let mut fold = fold_reply(&records, &history);
        let live = Arc::new(LiveTurn::new(chat_id, self.next_output_seq(chat_id).await?));
        let mut writer = OutputWriter::new(self.store.clone(), live, self.settings, None);
        if let Some(fold) = fold.as_mut() {
            let mut closing = fold.closing_chunks();
            if !fold.is_aborted() && fold.finish_reason().is_none() {
                closing.push(UIMessageChunk::Error {
                    error_text: "the reply was interrupted before it finished".to_owned(),
                });
                closing.push(UIMessageChunk::Abort {
                    reason: Some("interrupted".to_owned()),
                });
            }
            for chunk in closing {
                let _ = fold.apply(&chunk);
                crate::agent::ChunkSink::emit(&mut writer, &chunk)
                    .await
                    .map_err(|e| StoreError::Backend(e.0))?;
            }
        }
        // As a turn settles: its end in the log naming the reply, then the reply.
        let reply = fold
            .as_ref()
            .map(MessageFold::message)
            .filter(|message| has_content(message));
        writer
            .complete(expired.input_seq, reply)
            .await
            .map_err(|e| StoreError::Backend(e.0))?;
        if let Some(reply) = reply {
            self.store.put_message(chat_id, reply).await?;
        }
        self.recovered_event(chat_id, expired, fold.as_ref()).await;
        Ok(())
    }

    /// Stores the new message the turn answered, when the turn died before storing it (it is
    /// written beside the model request, after the message was checked): it comes before the
    /// reply in the history.
    async fn restore_message(
        &self,
        chat_id: &str,
        expired: &TurnLease,
        history: &mut Vec<UIMessage>,
    ) -> Result<(), TurnError> {
        let Some(input_seq) = expired.input_seq else {
            return Ok(());
        };
        let inputs = self
            .store
            .inputs(chat_id, input_seq.checked_sub(1), 1)
            .await?;
        let Some(input) = inputs.into_iter().find(|input| input.seq == input_seq) else {
            return Ok(());
        };
        let Ok(ChatInput::Message { payload }) = serde_json::from_str::<ChatInput>(&input.body)
        else {
            return Ok(());
        };
        let Some(message) = payload.message.filter(|message| {
            payload.trigger == ChatTrigger::SubmitMessage && message.role == Role::User
        }) else {
            return Ok(());
        };
        if history.iter().any(|stored| stored.id == message.id) {
            return Ok(());
        }
        self.store.put_message(chat_id, &message).await?;
        history.push(message);
        Ok(())
    }

    /// Writes the event of a recovered turn (when events are on), with what its log holds of
    /// the reply.
    async fn recovered_event(
        &self,
        chat_id: &str,
        expired: &TurnLease,
        fold: Option<&MessageFold>,
    ) {
        let empty = UIMessage::new(String::new(), Role::Assistant);
        let message = fold.map_or(&empty, MessageFold::message);
        let end = TurnEnd {
            input_seq: expired.input_seq,
            message,
            usage: Usage::default(),
            total_usage: None,
            finish_reason: fold
                .and_then(MessageFold::finish_reason)
                .unwrap_or(FinishReason::Error),
            stopped: false,
            recovered: true,
            // A turn that died after its end was written had finished its reply.
            error: (!fold.is_some_and(|fold| fold.finish_reason().is_some() && !fold.is_aborted()))
                .then(|| "the reply was interrupted before it finished".to_owned()),
        };
        if let Some(event) = self.turn_event(chat_id, end).await {
            self.record_event(&event).await;
        }
    }
}

/// The reply a turn's records build, from the `start` that names it on; a continued reply
/// builds on the stored message with its id.
fn fold_reply(records: &[OutputRecord], history: &[UIMessage]) -> Option<MessageFold> {
    let mut fold: Option<MessageFold> = None;
    for record in records {
        let OutputBody::Chunk { chunk, .. } = &record.body else {
            continue;
        };
        let Ok(chunk) = serde_json::from_str::<UIMessageChunk>(chunk) else {
            continue;
        };
        if let UIMessageChunk::Start {
            message_id: Some(id),
            ..
        } = &chunk
        {
            let base = history
                .iter()
                .find(|m| &m.id == id)
                .cloned()
                .unwrap_or_else(|| UIMessage::new(id.clone(), Role::Assistant));
            fold = Some(MessageFold::continuing(base));
        }
        if let Some(fold) = fold.as_mut() {
            let _ = fold.apply(&chunk);
        }
    }
    fold
}
