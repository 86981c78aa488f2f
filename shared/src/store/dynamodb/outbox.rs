//! The outbox on DynamoDB: every chat's undelivered events in a few partitions of their own,
//! `outbox#00` to `outbox#15` (the chat id's hash picks one), so a sweeper lists them with one
//! Query each and the table needs no index. Only undelivered events live there (an event is
//! removed once delivered, normally a second after its turn), so the partitions stay small;
//! their writes are the events' own (one put and one delete each). Sixteen partitions spread
//! those writes: one partition takes at most 1,000 write units a second.
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `outbox#{nn}` | `evt#{chatId}#{eventId}` | `chat_id`, `id`, `body`, `attempts`, `next_ms` |

use super::DynamoStore;
use super::call::Failure;
use super::codec::insert;
use super::item::*;
use crate::store::{OutboxEvent, StoreResult};

/// How many partitions the outbox is spread over.
const OUTBOX_SHARDS: u8 = 16;
const BODY: &str = "body";
const ATTEMPTS: &str = "attempts";
const NEXT_MS: &str = "next_ms";

/// The outbox partition of `chat_id`'s events: stable across processes and releases.
fn outbox_pk(chat_id: &str) -> String {
    use sha2::Digest as _;
    let shard = sha2::Sha256::digest(chat_id.as_bytes())[0] % OUTBOX_SHARDS;
    shard_pk(shard)
}

fn shard_pk(shard: u8) -> String {
    format!("outbox#{shard:02}")
}

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
        let mut item = key(
            &outbox_pk(&event.chat_id),
            &event_sk(&event.chat_id, &event.id),
        );
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
        let shards = (0..OUTBOX_SHARDS).map(|shard| {
            let hi = hi.clone();
            async move { self.query_all(&shard_pk(shard), ("evt#", &hi), None).await }
        });
        let mut items = Vec::new();
        for shard in futures::future::join_all(shards).await {
            items.extend(shard?);
        }
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
                key(&outbox_pk(chat_id), &event_sk(chat_id, id)),
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
            .delete(key(&outbox_pk(chat_id), &event_sk(chat_id, id)), &present())
            .await
        {
            Ok(()) | Err(Failure::Condition(_)) => Ok(()),
            Err(failure) => Err(failure.into_store_error()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_keeps_its_partition_and_chats_spread_over_all() {
        assert_eq!(outbox_pk("chat-1"), outbox_pk("chat-1"));
        let used: std::collections::BTreeSet<String> =
            (0..400).map(|n| outbox_pk(&format!("chat-{n}"))).collect();
        assert_eq!(used.len(), usize::from(OUTBOX_SHARDS));
        assert!(used.contains("outbox#00") && used.contains("outbox#15"));
    }
}
