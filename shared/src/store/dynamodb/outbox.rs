//! The outbox on DynamoDB: every chat's undelivered events in one partition, `outbox`, so a
//! sweeper lists them with one Query and the table needs no index. Only undelivered events live
//! there (an event is removed once delivered, normally a second after its turn), so the
//! partition stays small; its writes are the events' own (one put and one delete each).
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `outbox` | `evt#{chatId}#{eventId}` | `chat_id`, `id`, `body`, `attempts`, `next_ms` |

use super::DynamoStore;
use super::call::Failure;
use super::codec::insert;
use super::item::*;
use crate::store::{OutboxEvent, StoreResult};

const OUTBOX_PK: &str = "outbox";
const BODY: &str = "body";
const ATTEMPTS: &str = "attempts";
const NEXT_MS: &str = "next_ms";

fn event_sk(chat_id: &str, id: &str) -> String {
    format!("evt#{chat_id}#{id}")
}

fn read_event(item: &Item) -> StoreResult<OutboxEvent> {
    Ok(OutboxEvent {
        id: get_str(item, ID)?.to_owned(),
        chat_id: get_str(item, CHAT_ID)?.to_owned(),
        body: get_str(item, BODY)?.to_owned(),
        attempts: u32::try_from(get_num(item, ATTEMPTS)?).unwrap_or(u32::MAX),
        next_attempt_ms: get_num(item, NEXT_MS)?,
    })
}

/// The item is there: a write to one that is gone does nothing.
fn present() -> Expr {
    Expr::new("attribute_exists(#pk)")
}

impl DynamoStore {
    pub(super) async fn put_outbox_event(&self, event: &OutboxEvent) -> StoreResult<()> {
        let mut item = key(OUTBOX_PK, &event_sk(&event.chat_id, &event.id));
        insert(&mut item, ID, s(&event.id));
        insert(&mut item, CHAT_ID, s(&event.chat_id));
        insert(&mut item, BODY, s(&event.body));
        insert(&mut item, ATTEMPTS, n(u64::from(event.attempts)));
        insert(&mut item, NEXT_MS, n(event.next_attempt_ms));
        let absent = Expr::new("attribute_not_exists(#pk)");
        match self.put(item, Some(&absent), false).await {
            Ok(_) | Err(Failure::Condition(_)) => Ok(()),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    pub(super) async fn due_outbox_events(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> StoreResult<Vec<OutboxEvent>> {
        let hi = format!("evt#{RANGE_END}");
        let items = self.query_all(OUTBOX_PK, ("evt#", &hi), None).await?;
        let mut due = Vec::new();
        for item in &items {
            let event = read_event(item)?;
            if event.next_attempt_ms <= now_ms {
                due.push(event);
            }
        }
        due.sort_by(|a, b| (a.next_attempt_ms, &a.id).cmp(&(b.next_attempt_ms, &b.id)));
        due.truncate(limit);
        Ok(due)
    }

    pub(super) async fn reschedule_outbox_event(
        &self,
        chat_id: &str,
        id: &str,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> StoreResult<()> {
        let update = Expr::new("SET #attempts = :attempts, #next_ms = :next_ms")
            .value(":attempts", n(u64::from(attempts)))
            .value(":next_ms", n(next_attempt_ms));
        let returns = aws_sdk_dynamodb::types::ReturnValue::None;
        match self
            .update(
                key(OUTBOX_PK, &event_sk(chat_id, id)),
                &update,
                &present(),
                returns,
            )
            .await
        {
            Ok(_) | Err(Failure::Condition(_)) => Ok(()),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    pub(super) async fn remove_outbox_event(&self, chat_id: &str, id: &str) -> StoreResult<()> {
        match self
            .delete(key(OUTBOX_PK, &event_sk(chat_id, id)), &present())
            .await
        {
            Ok(()) | Err(Failure::Condition(_)) => Ok(()),
            Err(failure) => Err(failure.into_store_error()),
        }
    }
}
