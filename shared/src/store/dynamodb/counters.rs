//! The usage counters on DynamoDB: one small item per counter key, in a partition of its own,
//! counted with an atomic `ADD`-style update under a condition (the limit), and deleted by TTL
//! after its window.
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `counter#{key}` | `counter` | `count`; `exp_ms`, the end of its window; `expires_at` (TTL) |
//!
//! Each count is one UpdateItem of an item well under 1 KB: one write unit. A counter whose
//! window has passed but that TTL has not deleted yet is replaced by a conditional put.

use aws_sdk_dynamodb::types::ReturnValue;

use super::DynamoStore;
use super::call::Failure;
use super::codec::insert;
use super::item::*;
use crate::store::StoreResult;

const COUNT: &str = "count";
const SORT_KEY: &str = "counter";

fn counter_pk(key: &str) -> String {
    format!("counter#{key}")
}

/// The counter's window has not passed at `now_ms`.
fn live(item: &Item, now_ms: u64) -> bool {
    matches!(opt_num(item, EXP_MS), Ok(Some(at)) if at > now_ms)
}

impl DynamoStore {
    pub(super) async fn add_to_counter_item(
        &self,
        key: &str,
        amount: u64,
        limit: Option<u64>,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Option<u64>> {
        if limit == Some(0) {
            return Ok(None);
        }
        // Each round either counts, refuses, or finds a passed window that another writer
        // replaced meanwhile.
        for _ in 0..4 {
            let update = Expr::new(
                "SET #count = if_not_exists(#count, :zero) + :amount, \
                 #exp_ms = if_not_exists(#exp_ms, :exp_ms), \
                 #expires_at = if_not_exists(#expires_at, :ttl)",
            )
            .value(":zero", n(0))
            .value(":amount", n(amount))
            .value(":exp_ms", n(expires_at_ms))
            .value(":ttl", n(ttl_seconds(expires_at_ms)));
            let condition = match limit {
                Some(limit) => {
                    Expr::new("attribute_not_exists(#pk) OR (#exp_ms > :now AND #count < :limit)")
                        .value(":limit", n(limit))
                }
                None => Expr::new("attribute_not_exists(#pk) OR #exp_ms > :now"),
            }
            .value(":now", n(now_ms));
            let counted = self
                .update(key_of(key), &update, &condition, ReturnValue::UpdatedNew)
                .await;
            match counted {
                Ok(Some(item)) => return get_num(&item, COUNT).map(Some),
                Ok(None) => {
                    return Err(crate::store::StoreError::Backend(
                        "DynamoDB: a counter update returned no count".into(),
                    ));
                }
                Err(Failure::Condition(Some(old))) if live(&old, now_ms) => return Ok(None),
                Err(Failure::Condition(_)) => {
                    if self
                        .restart_counter(key, amount, expires_at_ms, now_ms)
                        .await?
                    {
                        return Ok(Some(amount));
                    }
                }
                Err(failure) => return Err(failure.into_store_error()),
            }
        }
        Err(crate::store::StoreError::Backend(
            "DynamoDB: a counter kept changing under its update".into(),
        ))
    }

    /// Replaces a counter whose window has passed with one holding `amount`; false when it
    /// is not (or no longer) passed.
    async fn restart_counter(
        &self,
        key: &str,
        amount: u64,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> StoreResult<bool> {
        let mut item = key_of(key);
        insert(&mut item, COUNT, n(amount));
        insert(&mut item, EXP_MS, n(expires_at_ms));
        insert(&mut item, EXPIRES_AT, n(ttl_seconds(expires_at_ms)));
        let passed =
            Expr::new("attribute_exists(#pk) AND #exp_ms <= :now").value(":now", n(now_ms));
        match self.put(item, Some(&passed), false).await {
            Ok(_) => Ok(true),
            Err(Failure::Condition(_)) => Ok(false),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    pub(super) async fn counter_item(&self, key: &str, now_ms: u64) -> StoreResult<u64> {
        match self.get_raw(&counter_pk(key), SORT_KEY).await? {
            Some(item) if live(&item, now_ms) => get_num(&item, COUNT),
            _ => Ok(0),
        }
    }
}

fn key_of(counter: &str) -> Item {
    key(&counter_pk(counter), SORT_KEY)
}
