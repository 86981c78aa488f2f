//! Listing and editing chats on DynamoDB (erasing them: `erasure.rs`).
//!
//! Session items carry the keys of two global secondary indexes (projecting every attribute, so
//! a listing reads no item twice): `listed` (`lpk`, one of [`LISTED_SHARDS`] partitions chosen by
//! the chat id, so creates spread out; a listing of every chat queries each shard and merges)
//! and `by_owner` (`opk` = `owner#{sub}`, only on sessions an end user created). Both sort on `lk`
//! = creation time then chat id, the listing's order. The last activity is on the head item
//! (`active_ms`, written by the lease release every turn already makes), read for a page's
//! chats with one BatchGetItem. The index queries leave out in the table what a listing would
//! drop anyway: sessions past their expiry (reads treat them as gone) and, when the listing names
//! tags, sessions without any of them (tags are a list of strings, which `contains` matches
//! exactly); they read on past what is left out, so pages stay full.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnConsumedCapacity, ReturnValue};
use futures::future::try_join_all;

use super::call::{Backoff, Failure, Kind, classify};
use super::codec::{json_text, parse_session, tags_value};
use super::item::*;
use super::{DynamoStore, build_error, no_session};
use crate::store::listing::{self, Direction, ListKey, ListedSession, SessionPage, SessionQuery};
use crate::store::{Session, SessionUpdate, StoreResult};

/// Keys in one BatchGetItem.
const BATCH_GET: usize = 100;

/// What the table leaves out of a listing's index queries itself: sessions past their expiry,
/// which reads already treat as gone (TTL deletes them eventually), and, when the query names
/// tags, sessions carrying none of them. The listing's own filter still judges what passes.
fn index_filter(query: &SessionQuery) -> Expr {
    let mut text = "(attribute_not_exists(#exp_ms) OR #exp_ms > :now_ms)".to_owned();
    let mut values = vec![(":now_ms".to_owned(), n(query.now_ms))];
    if !query.filter.tags.is_empty() {
        let tags: Vec<String> = (0..query.filter.tags.len())
            .map(|i| format!("contains(#tags, :tag{i})"))
            .collect();
        text.push_str(&format!(" AND ({})", tags.join(" OR ")));
        for (i, tag) in query.filter.tags.iter().enumerate() {
            values.push((format!(":tag{i}"), s(tag)));
        }
    }
    values
        .into_iter()
        .fold(Expr::new(text), |expr, (placeholder, value)| {
            expr.value(&placeholder, value)
        })
}

impl DynamoStore {
    /// One page of sessions, from the owner index or from every shard of the all-chats index.
    pub(super) async fn list_page(&self, query: &SessionQuery) -> StoreResult<SessionPage> {
        if let Some(chat_id) = &query.filter.external_id {
            let found = crate::store::Store::listed_session(self, chat_id).await?;
            return Ok(listing::page_of_one(query, found));
        }
        let filter = index_filter(query);
        let filter = &filter;
        let mut page = listing::collect_page(query, |from: Option<ListKey>, limit| async move {
            let from = from.map(|key| list_key(key.created_at_ms, &key.chat_id));
            let items = match &query.owner {
                Some(owner) => {
                    self.query_index(
                        OWNER_INDEX,
                        OWNER_PK,
                        &owner_pk(owner),
                        from.as_deref(),
                        query.direction,
                        limit,
                        filter,
                    )
                    .await?
                }
                None => {
                    let shards = (0..LISTED_SHARDS).map(|shard| {
                        let pk = listed_shard_pk(shard);
                        let from = from.clone();
                        async move {
                            self.query_index(
                                LISTED_INDEX,
                                LISTED_PK,
                                &pk,
                                from.as_deref(),
                                query.direction,
                                limit,
                                filter,
                            )
                            .await
                        }
                    });
                    let mut items: Vec<Item> =
                        try_join_all(shards).await?.into_iter().flatten().collect();
                    let list_key_of = |item: &Item| {
                        opt_str(item, LIST_KEY)
                            .ok()
                            .flatten()
                            .unwrap_or_default()
                            .to_owned()
                    };
                    items.sort_by_key(list_key_of);
                    if query.direction == Direction::Older {
                        items.reverse();
                    }
                    items.truncate(limit);
                    items
                }
            };
            items
                .iter()
                .map(|item| {
                    Ok(ListedSession {
                        session: parse_session(item)?,
                        last_activity_ms: None,
                        message_title: None,
                    })
                })
                .collect()
        })
        .await?;
        let chats: Vec<&str> = page
            .sessions
            .iter()
            .map(|listed| listed.session.chat_id.as_str())
            .collect();
        let activity = self.last_activities(&chats).await?;
        for listed in &mut page.sessions {
            listed.last_activity_ms = activity.get(&listed.session.chat_id).copied();
        }
        Ok(page)
    }

    /// Up to `limit` items of an index partition strictly past the list key `from`, in
    /// `direction`'s order, that pass `filter` (read on past the ones it leaves out).
    #[allow(clippy::too_many_arguments)]
    async fn query_index(
        &self,
        index: &str,
        partition: &str,
        pk: &str,
        from: Option<&str>,
        direction: Direction,
        limit: usize,
        filter: &Expr,
    ) -> StoreResult<Vec<Item>> {
        let past = match direction {
            Direction::Older => "<",
            Direction::Newer => ">",
        };
        let mut condition = Expr::new(match from {
            Some(_) => format!("#{partition} = :pk AND #{LIST_KEY} {past} :from"),
            None => format!("#{partition} = :pk"),
        })
        .value(":pk", s(pk));
        if let Some(from) = from {
            condition = condition.value(":from", s(from));
        }
        let names = condition.names_with(filter);
        let values = condition.values_with(filter);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let want = i32::try_from(limit - items.len()).unwrap_or(i32::MAX);
            let (page, next) = self
                .retrying(|| async {
                    let output = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(index)
                        .key_condition_expression(&condition.text)
                        .filter_expression(&filter.text)
                        .set_expression_attribute_names(names.clone())
                        .set_expression_attribute_values(values.clone())
                        .set_limit(Some(want))
                        .set_exclusive_start_key(start.clone())
                        .scan_index_forward(direction == Direction::Newer)
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await
                        .map_err(|e| classify("Query", e))?;
                    self.meter.record(Kind::Read, output.consumed_capacity());
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                })
                .await
                .map_err(Failure::into_store_error)?;
            items.extend(page);
            match next {
                Some(key) if items.len() < limit => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    /// When each chat's last turn ended, for the chats that had one.
    pub(super) async fn last_activities(
        &self,
        chats: &[&str],
    ) -> StoreResult<HashMap<String, u64>> {
        let mut found = HashMap::new();
        for chunk in chats.chunks(BATCH_GET) {
            let projection = Expr::new("#pk, #active_ms");
            let mut keys = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(
                        chunk.iter().map(|chat| key(&chat_pk(chat), HEAD)).collect(),
                    ))
                    .projection_expression(&projection.text)
                    .set_expression_attribute_names(projection.names())
                    .build()
                    .map_err(build_error)?,
            );
            let mut backoff = Backoff::new();
            while let Some(request) = keys.take() {
                let output = self
                    .retrying(|| async {
                        self.client
                            .batch_get_item()
                            .request_items(&self.table, request.clone())
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                            .await
                            .map_err(|e| classify("BatchGetItem", e))
                    })
                    .await
                    .map_err(Failure::into_store_error)?;
                self.meter.record(Kind::Read, output.consumed_capacity());
                for item in output
                    .responses
                    .and_then(|mut responses| responses.remove(&self.table))
                    .unwrap_or_default()
                {
                    let chat = get_str(&item, PK)?.trim_start_matches("chat#").to_owned();
                    if let Some(at) = opt_num(&item, ACTIVE_MS)? {
                        found.insert(chat, at);
                    }
                }
                keys = output
                    .unprocessed_keys
                    .and_then(|mut unprocessed| unprocessed.remove(&self.table))
                    .filter(|rest| !rest.keys().is_empty());
                if keys.is_some() {
                    backoff
                        .wait(|| "BatchGetItem left keys unprocessed".to_owned())
                        .await?;
                }
            }
        }
        Ok(found)
    }

    /// Replaces the session's tags and metadata, as `update` says.
    pub(super) async fn update_session_item(
        &self,
        chat_id: &str,
        update: &SessionUpdate,
        now: u64,
    ) -> StoreResult<Session> {
        let mut set = vec!["#updated_ms = :at"];
        let mut remove = Vec::new();
        let mut expr_values = Vec::new();
        if let Some(tags) = &update.tags {
            set.push("#tags = :tags");
            expr_values.push((":tags", tags_value(tags)));
        }
        match &update.metadata {
            None => {}
            Some(None) => remove.push("#metadata"),
            Some(Some(metadata)) => {
                set.push("#metadata = :metadata");
                expr_values.push((":metadata", s(json_text(metadata)?)));
            }
        }
        let mut text = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            text.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let mut expression = Expr::new(text).value(":at", n(now));
        for (placeholder, value) in expr_values {
            expression = expression.value(placeholder, value);
        }
        let condition = Expr::new(
            "attribute_exists(#pk) AND (attribute_not_exists(#exp_ms) OR #exp_ms > :now_ms)",
        )
        .value(":now_ms", n(crate::clock::now_ms()));
        match self
            .update(
                key(&chat_pk(chat_id), SESSION),
                &expression,
                &condition,
                ReturnValue::AllNew,
            )
            .await
        {
            Ok(Some(item)) => parse_session(&item),
            Ok(None) => Err(crate::store::StoreError::Backend(
                "DynamoDB UpdateItem returned no attributes".into(),
            )),
            Err(Failure::Condition(_)) => Err(no_session(chat_id)),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    /// Gives the session items of a table written before the listing existed the keys of its
    /// indexes, so their chats are listed too; answers how many it updated. One Scan of the
    /// table (the only one chatfn makes), to run once after the indexes are added: the local
    /// server runs it at start-up.
    pub async fn backfill_listing(&self) -> StoreResult<u64> {
        let filter =
            Expr::new("#sk = :session AND begins_with(#pk, :chat) AND attribute_not_exists(#lk)")
                .value(":session", s(SESSION))
                .value(":chat", s("chat#"));
        let mut updated = 0;
        let mut start = None;
        loop {
            let (items, next) = self
                .retrying(|| async {
                    let output = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        .filter_expression(&filter.text)
                        .set_expression_attribute_names(filter.names())
                        .set_expression_attribute_values(filter.values())
                        .set_exclusive_start_key(start.clone())
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await
                        .map_err(|e| classify("Scan", e))?;
                    self.meter.record(Kind::Read, output.consumed_capacity());
                    Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
                })
                .await
                .map_err(Failure::into_store_error)?;
            for item in &items {
                // A session item that cannot be read is no reason to leave the others unlisted.
                let session = match parse_session(item) {
                    Ok(session) => session,
                    Err(error) => {
                        tracing::warn!("backfill: a session item it cannot read: {error}");
                        continue;
                    }
                };
                let mut update = Expr::new(match &session.owner {
                    Some(_) => "SET #lpk = :lpk, #lk = :lk, #opk = :opk",
                    None => "SET #lpk = :lpk, #lk = :lk",
                })
                .value(":lpk", s(listed_pk(&session.chat_id)))
                .value(":lk", s(list_key(session.created_at_ms, &session.chat_id)));
                if let Some(owner) = &session.owner {
                    update = update.value(":opk", s(owner_pk(owner)));
                }
                let exists = Expr::new("attribute_exists(#pk)");
                match self
                    .update(
                        key(&chat_pk(&session.chat_id), SESSION),
                        &update,
                        &exists,
                        ReturnValue::None,
                    )
                    .await
                {
                    Ok(_) => updated += 1,
                    // Erased meanwhile: nothing to list.
                    Err(Failure::Condition(_)) => {}
                    Err(failure) => return Err(failure.into_store_error()),
                }
            }
            match next {
                Some(key) => start = Some(key),
                None => return Ok(updated),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionFilter;

    fn query(tags: &[&str]) -> SessionQuery {
        SessionQuery {
            owner: None,
            filter: SessionFilter {
                tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
                ..Default::default()
            },
            cursor: None,
            direction: Direction::Older,
            size: 20,
            now_ms: 5_000,
        }
    }

    #[test]
    fn the_table_leaves_out_expired_sessions_and_those_without_the_tags() {
        let plain = index_filter(&query(&[]));
        assert_eq!(
            plain.text,
            "(attribute_not_exists(#exp_ms) OR #exp_ms > :now_ms)"
        );
        assert_eq!(plain.values.get(":now_ms"), Some(&n(5_000)));
        let tagged = index_filter(&query(&["work", "home"]));
        assert!(
            tagged
                .text
                .ends_with(" AND (contains(#tags, :tag0) OR contains(#tags, :tag1))"),
            "{}",
            tagged.text
        );
        assert_eq!(tagged.values.get(":tag1"), Some(&s("home")));
    }
}
