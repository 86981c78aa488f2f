//! Erasing chats on DynamoDB, and the tombstone that keeps an erased chat from being written
//! back.
//!
//! A handle checks a chat's session once and then writes without asking again (see the store's
//! module docs), so a request that passed its checks just before an erase may still write after
//! it. Erasing therefore replaces the chat's head item with a tombstone (`erased_ms`, and
//! `expires_at` an hour on, so TTL deletes it) before it deletes the session, its alias and then
//! every other item of the partition. The tombstone costs nothing on a turn's path, as the writes
//! that must not outlive an erase already go through the head item:
//!
//! - the lease's update refuses a tombstoned head, so no turn starts on an erased chat (a handle
//!   that finds one also sweeps what a late writer left, and forgets the chat); before the erase
//!   stops a running turn, it marks the head (`erasing_ms`), which the lease refuses too, so no
//!   turn takes the chat between that wait and the tombstone;
//! - a running turn's renewals and release need its holder on the head, which the tombstone
//!   does not carry, and `put_state` and `follow_output` refuse it;
//! - a handle that has not seen the chat reads the head to check it, and a tombstone is no
//!   session.
//!
//! What a late writer can still put (an input and its claim; the output of a turn that took the
//! chat in the moment between the erase's wait for it and the tombstone) is swept when the chat
//! is created again under its id: the creation finds the tombstone and deletes everything of the
//! partition before it writes the new chat; once the tombstone is gone, the creation's read of
//! what lies under the id ([`DynamoStore::leftovers`], beside its transaction) finds the rest. Clients never see the tombstone: session reads and
//! the listing read session items, and the head's other readers find none of their attributes on
//! it.

use super::DynamoStore;
use aws_sdk_dynamodb::types::ReturnValue;

use super::call::Failure;
use super::codec::*;
use super::item::*;
use crate::clock::now_ms;
use crate::store::{ChatErasure, StoreResult};

/// How long a tombstone lasts: longer than any request that checked the chat before its erase
/// can still write (a Lambda invocation runs 15 minutes at most).
pub(super) const TOMBSTONE_TTL_MS: u64 = 60 * 60 * 1000;

/// Items a sweep deletes per Query page.
const SWEEP_PAGE: usize = 500;

/// The tombstone of the chat whose partition is `pk`, erased at `now_ms`.
pub(super) fn tombstone(pk: &str, now_ms: u64) -> Item {
    let mut item = key(pk, HEAD);
    insert(&mut item, ERASED_MS, n(now_ms));
    insert(
        &mut item,
        EXPIRES_AT,
        n(ttl_seconds(now_ms + TOMBSTONE_TTL_MS)),
    );
    item
}

/// When the chat whose head item this is was erased, if it is a tombstone.
pub(super) fn erased_at(head: &Item) -> Option<u64> {
    opt_num(head, ERASED_MS).ok().flatten()
}

/// A condition clause: the head item is no tombstone.
pub(super) const NOT_ERASED: &str = "attribute_not_exists(#erased_ms)";

/// A condition clause: a turn may start on the chat, which is neither erased nor being erased.
pub(super) const TURNS_ALLOWED: &str =
    "attribute_not_exists(#erased_ms) AND attribute_not_exists(#erasing_ms)";

/// The condition under which a new chat's head replaces the tombstone erased at `erased_ms`
/// (or takes its place, TTL having deleted it).
pub(super) fn over_tombstone(erased_ms: u64) -> Expr {
    Expr::new("attribute_not_exists(#pk) OR #erased_ms = :erased_ms")
        .value(":erased_ms", n(erased_ms))
}

impl DynamoStore {
    /// Marks the chat's head as being erased, so that no turn starts on it while the erase
    /// stops the running one and waits for it (a turn that took the chat after that wait would
    /// lose its lease to the tombstone, but not learn of it before its reply was written).
    pub(super) async fn mark_erasing(&self, chat_id: &str) -> StoreResult<()> {
        let update = Expr::new("SET #erasing_ms = :now").value(":now", n(now_ms()));
        let condition = Expr::new(format!("attribute_exists(#pk) AND {NOT_ERASED}"));
        let head = key(&chat_pk(chat_id), HEAD);
        match self
            .update(head, &update, &condition, ReturnValue::None)
            .await
        {
            // No head (no chat) or a tombstone already: nothing starts a turn on it either.
            Ok(_) | Err(Failure::Condition(_)) => Ok(()),
            Err(failure) => Err(failure.into_store_error()),
        }
    }

    /// Deletes every item of the chat but its tombstone: the session first, then its partition
    /// and its alias.
    pub(super) async fn erase_chat(&self, chat_id: &str) -> StoreResult<bool> {
        let existed = self.erase_session(chat_id).await?;
        let pk = chat_pk(chat_id);
        while !self.sweep_step(&pk, SWEEP_PAGE, None).await? {}
        Ok(existed)
    }

    /// One step of erasing the chat: its session and alias (when still there), then at most
    /// `max_items` of the other items of its partition.
    pub(super) async fn erase_chat_step(
        &self,
        chat_id: &str,
        max_items: usize,
    ) -> StoreResult<ChatErasure> {
        let existed = self.erase_session(chat_id).await?;
        let finished = self.sweep_step(&chat_pk(chat_id), max_items, None).await?;
        Ok(ChatErasure { existed, finished })
    }

    /// Tombstones the chat's head, then deletes its session and alias, which makes the chat
    /// unreachable; forgets what this handle knew of it. Whether there was a session.
    async fn erase_session(&self, chat_id: &str) -> StoreResult<bool> {
        let pk = chat_pk(chat_id);
        let session = self.get_raw(&pk, SESSION).await?;
        self.forget(chat_id);
        let Some(session) = session else {
            return Ok(false);
        };
        // Before the session goes: from here on no lease is taken, and a handle that has yet to
        // check the chat finds no session, though the session item is still there.
        self.put(tombstone(&pk, now_ms()), None, false)
            .await
            .map_err(Failure::into_store_error)?;
        let mut keys = vec![key(&pk, SESSION)];
        if let Ok(id) = get_str(&session, ID) {
            keys.push(key(&alias_pk(id), SESSION));
        }
        self.delete_all(keys).await?;
        Ok(true)
    }

    /// Deletes what late writers left in the partition of the chat erased at `erased_ms`, as
    /// long as its tombstone is there: once the chat is created again (or TTL took the
    /// tombstone), what is there is the new chat's.
    pub(super) async fn sweep_erased(&self, chat_id: &str, erased_ms: u64) -> StoreResult<()> {
        let pk = chat_pk(chat_id);
        while !self.sweep_step(&pk, SWEEP_PAGE, Some(erased_ms)).await? {}
        Ok(())
    }

    /// Deletes at most `max_items` items of the partition `pk`, its tombstone aside; whether
    /// none is left. The head sorts before every other key of a chat, so a page reads the
    /// tombstone first and one item more than it deletes: each page makes progress. With
    /// `erased_ms`, only while the page begins with that tombstone, and never a session item.
    async fn sweep_step(
        &self,
        pk: &str,
        max_items: usize,
        erased_ms: Option<u64>,
    ) -> StoreResult<bool> {
        let limit = i32::try_from(max_items.max(1).saturating_add(1)).unwrap_or(i32::MAX);
        let (items, more) = self
            .query_page(
                pk,
                ("!", RANGE_END),
                Some(limit),
                Some("#pk, #sk, #erased_ms"),
                None,
            )
            .await?;
        if let Some(erased_ms) = erased_ms
            && items.first().and_then(erased_at) != Some(erased_ms)
        {
            return Ok(true);
        }
        let mut keys = Vec::with_capacity(items.len());
        for item in items.iter().filter(|item| erased_at(item).is_none()) {
            let sk = get_str(item, SK)?;
            if erased_ms.is_none() || sk != SESSION {
                keys.push(key(get_str(item, PK)?, sk));
            }
        }
        self.delete_all(keys).await?;
        Ok(more.is_none())
    }
}

/// Keys a chat's creation reads, beside its transaction, of what lies under the chat's id.
const LEFTOVER_PAGE: i32 = 100;

/// What lies under a chat's id before the chat is created there, its session and head aside.
pub(super) struct Leftovers {
    /// The keys of the live items (not expired) found.
    keys: Vec<Item>,
    /// Where the Query stopped, when there is more.
    more: Option<Item>,
}

impl DynamoStore {
    /// The live items under `pk` but its session and head: read as a chat is created there, for
    /// what a late writer of an erased chat put after the erase's sweep and is still there once
    /// the tombstone has gone (the sweep on a tombstone covers the hour before). Expired items
    /// are skipped: no read sees them, and TTL deletes them.
    pub(super) async fn leftovers(&self, pk: &str) -> StoreResult<Leftovers> {
        let (items, more) = self
            .query_page(
                pk,
                ("!", RANGE_END),
                Some(LEFTOVER_PAGE),
                Some("#pk, #sk, #exp_ms, #expires_at"),
                None,
            )
            .await?;
        Ok(Leftovers {
            keys: leftover_keys(&items, now_ms())?,
            more,
        })
    }

    /// Deletes what [`leftovers`](Self::leftovers) found under `pk` before the chat was created
    /// there, and, past its page, every live item but the session and head.
    pub(super) async fn sweep_leftovers(&self, pk: &str, found: Leftovers) -> StoreResult<()> {
        if !found.keys.is_empty() || found.more.is_some() {
            tracing::warn!(
                items = found.keys.len(),
                more = found.more.is_some(),
                "a new chat's id held items of an erased one: deleting them"
            );
        }
        self.delete_all(found.keys).await?;
        let mut start = found.more;
        while let Some(from) = start {
            let (items, more) = self
                .query_page(
                    pk,
                    ("!", RANGE_END),
                    Some(LEFTOVER_PAGE),
                    Some("#pk, #sk, #exp_ms, #expires_at"),
                    Some(from),
                )
                .await?;
            self.delete_all(leftover_keys(&items, now_ms())?).await?;
            start = more;
        }
        Ok(())
    }
}

fn leftover_keys(items: &[Item], now_ms: u64) -> StoreResult<Vec<Item>> {
    let mut keys = Vec::new();
    for item in items.iter().filter(|item| !expired(item, now_ms)) {
        let sk = get_str(item, SK)?;
        if sk != SESSION && sk != HEAD {
            keys.push(key(get_str(item, PK)?, sk));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tombstone_is_the_head_item_with_its_erasure_and_a_ttl() {
        let item = tombstone("chat#c", 1_000_500);
        assert_eq!(get_str(&item, PK).ok(), Some("chat#c"));
        assert_eq!(get_str(&item, SK).ok(), Some(HEAD));
        assert_eq!(erased_at(&item), Some(1_000_500));
        assert_eq!(
            opt_num(&item, EXPIRES_AT).ok().flatten(),
            Some((1_000_500 + TOMBSTONE_TTL_MS).div_ceil(1000))
        );
        assert_eq!(item.len(), 4, "nothing else of the chat: {item:?}");
    }

    #[test]
    fn a_tombstone_expires_like_any_item_and_a_live_head_is_none() {
        let item = tombstone("chat#c", 1_000_000);
        assert!(!expired(&item, 1_000_000 + TOMBSTONE_TTL_MS - 1000));
        assert!(expired(&item, 1_000_000 + TOMBSTONE_TTL_MS));
        let mut head = key("chat#c", HEAD);
        insert(&mut head, CONSUMED, n(3));
        assert_eq!(erased_at(&head), None);
    }

    #[test]
    fn the_conditions_name_the_tombstone_mark() {
        let names = Expr::new(NOT_ERASED).names().unwrap_or_default();
        assert_eq!(names.get("#erased_ms").map(String::as_str), Some(ERASED_MS));
        let names = Expr::new(TURNS_ALLOWED).names().unwrap_or_default();
        assert_eq!(names.get("#erased_ms").map(String::as_str), Some(ERASED_MS));
        assert_eq!(
            names.get("#erasing_ms").map(String::as_str),
            Some(ERASING_MS)
        );
        let over = over_tombstone(7);
        assert_eq!(over.values.get(":erased_ms"), Some(&n(7)));
    }
}
