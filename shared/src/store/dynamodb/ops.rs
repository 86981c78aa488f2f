//! The store's DynamoDB calls: each retries what is worth retrying (throttling, conflicts with
//! other transactions) and counts the capacity it used; and the reads and writes of payloads that
//! span several items.

use std::future::Future;

use aws_sdk_dynamodb::types::{
    DeleteRequest, Put, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, WriteRequest,
};

use super::billing::{put_units, transaction_units};
use super::call::{Backoff, Failure, Kind, classify, failed_at, item_at};
use super::item::*;
use super::{BATCH_WRITE, DynamoStore, Expiry, TORN_READS, build_error};
use crate::clock::now_ms;
use crate::store::{StoreError, StoreResult};

impl DynamoStore {
    pub(super) async fn retrying<T, F, Fut>(&self, mut call: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = Backoff::new();
        loop {
            match call().await {
                Err(Failure::Retry(message)) => {
                    if let Err(error) = backoff.wait(|| message).await {
                        return Err(Failure::Fatal(error.to_string()));
                    }
                }
                other => return other,
            }
        }
    }

    /// The item at the key (strongly consistent), unless absent or expired.
    pub(super) async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        let item = self.get_raw(pk, sk).await?;
        Ok(item.filter(|item| !expired(item, now_ms())))
    }

    pub(super) async fn get_raw(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        self.get_item(pk, sk, true).await
    }

    /// The item at the key as a replica has it (half the read units; it may lag writes by a
    /// moment), unless absent or expired: for what only hints.
    pub(super) async fn get_eventually(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        let item = self.get_item(pk, sk, false).await?;
        Ok(item.filter(|item| !expired(item, now_ms())))
    }

    async fn get_item(&self, pk: &str, sk: &str, consistent: bool) -> StoreResult<Option<Item>> {
        self.retrying(|| async {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key(pk, sk)))
                .consistent_read(consistent)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("GetItem", e))?;
            self.meter.record(Kind::Read, output.consumed_capacity());
            Ok(output.item)
        })
        .await
        .map_err(Failure::into_store_error)
    }

    /// One page of the items of `pk` with `lo <= sk <= hi`, strongly consistent.
    pub(super) async fn query_page(
        &self,
        pk: &str,
        range: (&str, &str),
        limit: Option<i32>,
        projection: Option<&str>,
        start: Option<Item>,
    ) -> StoreResult<(Vec<Item>, Option<Item>)> {
        self.query_page_in(pk, range, limit, projection, start, true)
            .await
    }

    /// A page of a Query, in sort-key order when `forward`, else from the end of the range.
    pub(super) async fn query_page_in(
        &self,
        pk: &str,
        range: (&str, &str),
        limit: Option<i32>,
        projection: Option<&str>,
        start: Option<Item>,
        forward: bool,
    ) -> StoreResult<(Vec<Item>, Option<Item>)> {
        let condition = Expr::new("#pk = :pk AND #sk BETWEEN :lo AND :hi")
            .value(":pk", s(pk))
            .value(":lo", s(range.0))
            .value(":hi", s(range.1));
        let names = match projection {
            Some(projection) => condition.names_with(&Expr::new(projection)),
            None => condition.names(),
        };
        self.retrying(|| async {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition.text)
                .set_expression_attribute_names(names.clone())
                .set_expression_attribute_values(condition.values())
                .set_projection_expression(projection.map(str::to_owned))
                .set_limit(limit)
                .set_exclusive_start_key(start.clone())
                .scan_index_forward(forward)
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("Query", e))?;
            self.meter.record(Kind::Read, output.consumed_capacity());
            Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
        })
        .await
        .map_err(Failure::into_store_error)
    }

    /// Every item of `pk` with `lo <= sk <= hi`, page after page (a page stops at 1 MB read).
    pub(super) async fn query_all(
        &self,
        pk: &str,
        range: (&str, &str),
        projection: Option<&str>,
    ) -> StoreResult<Vec<Item>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.query_page(pk, range, None, projection, start).await?;
            items.extend(page);
            match next {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    /// The logical items of `pk` in the sort-key range, put back together from their pieces,
    /// expired ones left out. Pages are read until `enough` says so (or the range ends).
    pub(super) async fn query_logical(
        &self,
        pk: &str,
        range: (&str, &str),
        page: Option<i32>,
        enough: impl Fn(&[Logical]) -> bool,
    ) -> StoreResult<Vec<Logical>> {
        let mut backoff = Backoff::new();
        for _ in 0..TORN_READS {
            let mut assembler = Assembler::new(now_ms());
            let mut start = None;
            loop {
                let (items, next) = self.query_page(pk, range, page, None, start).await?;
                for item in items {
                    assembler.push(item)?;
                }
                if assembler.torn
                    || next.is_none()
                    || (!assembler.is_open() && enough(assembler.done()))
                {
                    break;
                }
                start = next;
            }
            if let Some(logical) = assembler.finish() {
                return Ok(logical);
            }
            // A write of a payload in pieces was under way: read again.
            backoff.wait(|| "torn read".to_owned()).await?;
        }
        Err(StoreError::Backend(format!(
            "DynamoDB: the items of {pk} from {} kept changing while read",
            range.0
        )))
    }

    /// A PutItem. With `old`, the item it replaced (or that failed the condition).
    pub(super) async fn put(
        &self,
        item: Item,
        condition: Option<&Expr>,
        old: bool,
    ) -> Result<Option<Item>, Failure> {
        self.retrying(|| async {
            let output = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .set_condition_expression(condition.map(|c| c.text.clone()))
                .set_expression_attribute_names(condition.and_then(Expr::names))
                .set_expression_attribute_values(condition.and_then(Expr::values))
                .return_values(if old {
                    ReturnValue::AllOld
                } else {
                    ReturnValue::None
                })
                .return_values_on_condition_check_failure(on_failure(old))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("PutItem", e))?;
            self.meter.record(Kind::Write, output.consumed_capacity());
            self.meter.bill(put_units(&item));
            Ok(output.attributes)
        })
        .await
    }

    pub(super) async fn update(
        &self,
        key: Item,
        update: &Expr,
        condition: &Expr,
        returns: ReturnValue,
    ) -> Result<Option<Item>, Failure> {
        self.retrying(|| async {
            let output = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .update_expression(&update.text)
                .condition_expression(&condition.text)
                .set_expression_attribute_names(update.names_with(condition))
                .set_expression_attribute_values(update.values_with(condition))
                .return_values(returns.clone())
                .return_values_on_condition_check_failure(on_failure(true))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("UpdateItem", e))?;
            self.meter.record(Kind::Write, output.consumed_capacity());
            // Billed on the stored item: only small ones are updated (see `billing.rs`).
            self.meter.bill(1);
            Ok(output.attributes)
        })
        .await
    }

    pub(super) async fn delete(&self, key: Item, condition: &Expr) -> Result<(), Failure> {
        self.retrying(|| async {
            let output = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .condition_expression(&condition.text)
                .set_expression_attribute_names(condition.names())
                .set_expression_attribute_values(condition.values())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("DeleteItem", e))?;
            self.meter.record(Kind::Write, output.consumed_capacity());
            self.meter.bill(1);
            Ok(())
        })
        .await
    }

    /// A TransactWriteItems; retried while it conflicts with other transactions or is
    /// throttled. `Failure::Canceled` when one of its conditions failed.
    pub(super) async fn transact(&self, actions: Vec<TransactWriteItem>) -> Result<(), Failure> {
        self.retrying(|| async {
            let output = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| classify("TransactWriteItems", e))?;
            self.meter.record(Kind::Write, output.consumed_capacity());
            self.meter.bill(transaction_units(&actions));
            Ok(())
        })
        .await
    }

    /// Deletes the items, 25 to a BatchWriteItem, in the order given, until none is left.
    pub(super) async fn delete_all(&self, keys: Vec<Item>) -> StoreResult<()> {
        for chunk in keys.chunks(BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|delete| WriteRequest::builder().delete_request(delete).build())
                        .map_err(build_error)
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let mut backoff = Backoff::new();
            while !requests.is_empty() {
                let output = self
                    .retrying(|| async {
                        self.client
                            .batch_write_item()
                            .request_items(&self.table, requests.clone())
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                            .await
                            .map_err(|e| classify("BatchWriteItem", e))
                    })
                    .await
                    .map_err(Failure::into_store_error)?;
                self.meter.record(Kind::Write, output.consumed_capacity());
                let sent = requests.len();
                requests = output
                    .unprocessed_items
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                    .unwrap_or_default();
                // One unit per deleted item: deletes are billed on the stored item's size,
                // which is not known here (see `billing.rs`).
                self.meter.bill(sent.saturating_sub(requests.len()) as u64);
                if !requests.is_empty() {
                    backoff
                        .wait(|| "BatchWriteItem left items unprocessed".to_owned())
                        .await?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn tx_put(
        &self,
        item: Item,
        condition: Option<&Expr>,
    ) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(|c| c.text.clone()))
            .set_expression_attribute_names(condition.and_then(Expr::names))
            .set_expression_attribute_values(condition.and_then(Expr::values))
            .return_values_on_condition_check_failure(on_failure(condition.is_some()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Writes a logical item in place of the one at `sk`, under `condition` (checked on the
    /// main item), and deletes the pieces the old one had beyond the new one's.
    /// `Failure::Condition` when the condition failed.
    pub(super) async fn replace_logical(
        &self,
        pk: &str,
        sk: &str,
        attrs: Item,
        data: &[u8],
        condition: Option<&Expr>,
        expiry: Expiry,
    ) -> StoreResult<Result<(), Failure>> {
        let mut items = split_payload(pk, sk, attrs, data, expiry.map(ttl_seconds));
        let new_parts = items.len() as u64;
        let old = if items.len() == 1 {
            let main = items.remove(0);
            match self.put(main, condition, true).await {
                Ok(old) => old,
                Err(failure @ Failure::Condition(_)) => return Ok(Err(failure)),
                Err(failure) => return Err(failure.into_store_error()),
            }
        } else {
            let old = self.get_raw(pk, sk).await?;
            let mut actions = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                actions.push(self.tx_put(item, condition.filter(|_| index == 0))?);
            }
            match self.transact(actions).await {
                Ok(()) => old,
                Err(Failure::Canceled(reasons)) if failed_at(&reasons, 0) => {
                    return Ok(Err(Failure::Condition(item_at(&reasons, 0))));
                }
                Err(failure) => return Err(failure.into_store_error()),
            }
        };
        if let Some(old) = old {
            let (old_parts, version) = parts_of(&old)?;
            if let Some(version) = version {
                // Only pieces of that old version: never those of a newer write.
                let same = Expr::new("#v = :v").value(":v", s(version));
                for key in part_keys(pk, sk, new_parts, old_parts) {
                    match self.delete(key, &same).await {
                        Ok(()) | Err(Failure::Condition(_)) => {}
                        Err(failure) => return Err(failure.into_store_error()),
                    }
                }
            }
        }
        Ok(Ok(()))
    }
}

fn on_failure(old: bool) -> ReturnValuesOnConditionCheckFailure {
    if old {
        ReturnValuesOnConditionCheckFailure::AllOld
    } else {
        ReturnValuesOnConditionCheckFailure::None
    }
}
