//! A turn's event (`turn.completed`) and a chat's (`chat.created`, `chat.closed`): written to
//! the outbox with the turn's last writes, then tried once here after the turn's stream has
//! ended; what fails is left to the sweeper (`crate::events`).

use std::sync::Arc;

use super::record::ChatRecord;
use super::runner::TurnRunner;
use crate::clock::now_ms;
use crate::events::{EventDelivery, TurnCompleted, Webhook};
use crate::model::{FinishReason, Usage};
use crate::store::{OutboxEvent, Session};
use crate::ui::UIMessage;

/// How a turn ended, as its event tells it.
pub(super) struct TurnEnd<'a> {
    pub(super) input_seq: Option<u64>,
    pub(super) message: &'a UIMessage,
    pub(super) usage: Usage,
    /// The chat's usage so far, this turn's included; `None` to read it from the chat's record.
    pub(super) total_usage: Option<Usage>,
    pub(super) finish_reason: FinishReason,
    pub(super) stopped: bool,
    pub(super) recovered: bool,
    pub(super) error: Option<String>,
}

impl TurnRunner {
    /// Sends events of this runner's chats to `webhook`, through the outbox of its store.
    pub fn with_webhook(mut self, webhook: Arc<Webhook>) -> Self {
        self.events = Some(EventDelivery::new(self.store.clone(), webhook));
        self
    }

    /// Sends events to the configuration's webhook, when it names one (`CHATFN_WEBHOOK_URL`).
    pub fn with_configured_webhook(self, config: &crate::config::Config) -> Self {
        match &config.webhook {
            Some(webhook) => self.with_webhook(Arc::new(Webhook::new(
                webhook.url.clone(),
                webhook.secrets.clone(),
            ))),
            None => self,
        }
    }

    /// The delivery of this runner's events, when a webhook is configured.
    pub fn events(&self) -> Option<&EventDelivery> {
        self.events.as_ref()
    }

    /// The outbox entry of a turn's event, when events are on; `None` (logged) when the chat's
    /// session cannot be read.
    pub(super) async fn turn_event(&self, chat_id: &str, end: TurnEnd<'_>) -> Option<OutboxEvent> {
        self.events.as_ref()?;
        let session = match self.store.session(chat_id).await {
            Ok(Some(session)) => session,
            Ok(None) => return None,
            Err(error) => {
                tracing::error!(chat = %chat_id, "no turn event: the session could not be read: {error}");
                return None;
            }
        };
        let total_usage = match end.total_usage {
            Some(usage) => usage,
            None => match self.store.state(chat_id).await {
                Ok(state) => ChatRecord::decode(state).usage,
                Err(_) => end.usage,
            },
        };
        let data = TurnCompleted {
            chat_id: chat_id.to_owned(),
            session_id: session.id,
            owner: session.owner,
            message: end.message.clone(),
            usage: end.usage.into(),
            total_usage: total_usage.into(),
            finish_reason: end.finish_reason,
            stopped: end.stopped,
            recovered: end.recovered,
            error: end.error,
            truncated: false,
        };
        Some(crate::events::turn_completed(end.input_seq, data, now_ms()))
    }

    /// Writes `event` to the outbox; a failure is logged (the turn goes on ending).
    pub(super) async fn record_event(&self, event: &OutboxEvent) {
        if let Some(events) = &self.events
            && let Err(error) = events.enqueue(event).await
        {
            tracing::error!(chat = %event.chat_id, event = %event.id, "could not write the event to the outbox: {error}");
        }
    }

    /// One attempt at `event` now; a failure leaves it to the sweeper.
    pub(super) async fn deliver_now(&self, event: &OutboxEvent) {
        if let Some(events) = &self.events
            && let Err(error) = events.attempt(event).await
        {
            tracing::warn!(chat = %event.chat_id, event = %event.id, "could not update the outbox: {error}");
        }
    }

    /// Records the `kind` event of `session` (`chat.created`, `chat.closed`) and tries it in
    /// the background, when events are on.
    pub async fn chat_changed(&self, kind: &str, session: &Session) {
        let Some(events) = self.events.clone() else {
            return;
        };
        let event = crate::events::chat_changed(kind, session, now_ms());
        if let Err(error) = events.enqueue(&event).await {
            tracing::error!(chat = %session.chat_id, "could not write the {kind} event to the outbox: {error}");
            return;
        }
        crate::runtime::spawn_detached(async move {
            if let Err(error) = events.attempt(&event).await {
                tracing::warn!(event = %event.id, "could not update the outbox: {error}");
            }
        });
    }
}
