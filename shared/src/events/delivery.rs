//! Sending events: one signed POST per attempt, and the outbox told what came of it (removed
//! once delivered or refused, else rescheduled by the retry policy, or given up).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;

use super::retry::{AttemptResult, Verdict, random_jitter, retry_delay, verdict};
use super::signature::WebhookSecrets;
use crate::clock::now_ms;
use crate::store::{OutboxEvent, Store, StoreResult};

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many events a sweep sends at once.
const SWEEP_CONCURRENCY: usize = 8;

/// The receiver of the events: its URL and the secrets that sign for it.
pub struct Webhook {
    url: String,
    secrets: WebhookSecrets,
    #[cfg(any(feature = "native", target_arch = "wasm32"))]
    client: std::sync::OnceLock<reqwest::Client>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Events POSTed to `url`, signed with `secrets`.
    pub fn new(url: impl Into<String>, secrets: WebhookSecrets) -> Self {
        Webhook {
            url: url.into(),
            secrets,
            #[cfg(any(feature = "native", target_arch = "wasm32"))]
            client: std::sync::OnceLock::new(),
        }
    }

    /// One attempt at `event`: signed now, so its `webhook-timestamp` is the attempt's.
    #[cfg(any(feature = "native", target_arch = "wasm32"))]
    pub async fn post(&self, event: &OutboxEvent) -> AttemptResult {
        let client = self.client.get_or_init(reqwest::Client::new).clone();
        let timestamp = now_ms() / 1000;
        let request = client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                self.secrets.sign(&event.id, timestamp, &event.body),
            )
            .body(event.body.clone());
        let sent = crate::runtime::sendable(async move {
            request
                .send()
                .await
                .map(|response| response.status().as_u16())
        });
        match crate::runtime::timeout(ATTEMPT_TIMEOUT, sent).await {
            Ok(Ok(status)) => AttemptResult::Status(status),
            Ok(Err(error)) => {
                tracing::warn!(event = %event.id, "webhook unreachable: {error}");
                AttemptResult::NetworkError
            }
            Err(_) => {
                tracing::warn!(event = %event.id, "webhook timed out");
                AttemptResult::NetworkError
            }
        }
    }

    /// A build with no HTTP client (a native check of the Worker) cannot send.
    #[cfg(not(any(feature = "native", target_arch = "wasm32")))]
    pub async fn post(&self, event: &OutboxEvent) -> AttemptResult {
        let _ = (&self.url, &self.secrets, event, ATTEMPT_TIMEOUT);
        AttemptResult::NetworkError
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Events attempted.
    pub attempted: usize,
    /// Of those, delivered.
    pub delivered: usize,
}

/// Delivers the events of one store's outbox to one webhook. Cheap to clone.
#[derive(Clone)]
pub struct EventDelivery {
    store: Arc<dyn Store>,
    webhook: Arc<Webhook>,
}

impl std::fmt::Debug for EventDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDelivery")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl EventDelivery {
    /// Delivery of `store`'s outbox to `webhook`.
    pub fn new(store: Arc<dyn Store>, webhook: Arc<Webhook>) -> Self {
        EventDelivery { store, webhook }
    }

    /// The store whose outbox this delivers.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Writes `event` to the outbox (kept as it is if its id is there already).
    pub async fn enqueue(&self, event: &OutboxEvent) -> StoreResult<()> {
        self.store.put_event(event).await
    }

    /// One attempt at `event`, then the outbox updated: removed when delivered or refused (a 4xx
    /// other than 429, logged), rescheduled after a retryable failure, removed and logged once
    /// the attempts are used up.
    pub async fn attempt(&self, event: &OutboxEvent) -> StoreResult<Verdict> {
        let result = self.webhook.post(event).await;
        let verdict = verdict(result);
        match verdict {
            Verdict::Delivered => {
                tracing::debug!(event = %event.id, chat = %event.chat_id, "event delivered");
                self.store.remove_event(&event.chat_id, &event.id).await?;
            }
            Verdict::Refused => {
                tracing::warn!(
                    event = %event.id,
                    chat = %event.chat_id,
                    ?result,
                    "the webhook refused the event; it is dropped"
                );
                self.store.remove_event(&event.chat_id, &event.id).await?;
            }
            Verdict::Retry => {
                let attempts = event.attempts.saturating_add(1);
                match retry_delay(attempts, random_jitter()) {
                    Some(delay) => {
                        let next = now_ms() + delay.as_millis() as u64;
                        tracing::info!(
                            event = %event.id,
                            chat = %event.chat_id,
                            attempts,
                            ?result,
                            retry_in_ms = delay.as_millis() as u64,
                            "event not delivered; it will be tried again"
                        );
                        self.store
                            .reschedule_event(&event.chat_id, &event.id, attempts, next)
                            .await?;
                    }
                    None => {
                        tracing::error!(
                            event = %event.id,
                            chat = %event.chat_id,
                            attempts,
                            ?result,
                            "event given up after its last attempt"
                        );
                        self.store.remove_event(&event.chat_id, &event.id).await?;
                    }
                }
            }
        }
        Ok(verdict)
    }

    /// Attempts the events due now, at most `limit`, a few at a time.
    pub async fn sweep(&self, limit: usize) -> StoreResult<SweepReport> {
        let due = self.store.due_events(now_ms(), limit).await?;
        let attempted = due.len();
        let verdicts: Vec<StoreResult<Verdict>> = futures::stream::iter(due)
            .map(|event| async move { self.attempt(&event).await })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .collect()
            .await;
        let mut delivered = 0;
        for verdict in verdicts {
            if verdict? == Verdict::Delivered {
                delivered += 1;
            }
        }
        Ok(SweepReport {
            attempted,
            delivered,
        })
    }

    /// When the earliest event of the outbox is due, if it holds any.
    pub async fn next_due_ms(&self) -> StoreResult<Option<u64>> {
        Ok(self
            .store
            .due_events(u64::MAX, 1)
            .await?
            .first()
            .map(|event| event.next_attempt_ms))
    }
}
