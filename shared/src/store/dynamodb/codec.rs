//! Sessions, leases and input records as DynamoDB items, and back.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

use super::item::*;
use crate::store::{InputRecord, Session, StoreError, StoreResult, TurnLease};

pub(super) fn insert(item: &mut Item, name: &str, value: AttributeValue) {
    item.insert(name.to_owned(), value);
}

pub(super) fn insert_opt(item: &mut Item, name: &str, value: Option<AttributeValue>) {
    if let Some(value) = value {
        item.insert(name.to_owned(), value);
    }
}

pub(super) fn json_text(value: &impl serde::Serialize) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("cannot encode JSON: {e}")))
}

pub(super) fn session_item(session: &Session) -> StoreResult<Item> {
    let mut item = key(&chat_pk(&session.chat_id), SESSION);
    insert(&mut item, ID, s(&session.id));
    insert(&mut item, CHAT_ID, s(&session.chat_id));
    insert(&mut item, KIND, s(&session.kind));
    insert(&mut item, TASK, s(&session.task_identifier));
    insert(
        &mut item,
        TRIGGER_CONFIG,
        s(json_text(&session.trigger_config)?),
    );
    insert(&mut item, TAGS, tags_value(&session.tags));
    let metadata = session.metadata.as_ref().map(json_text).transpose()?;
    insert_opt(&mut item, METADATA, metadata.map(s));
    insert_opt(&mut item, OWNER, session.owner.as_deref().map(s));
    insert(&mut item, LISTED_PK, s(listed_pk(&session.chat_id)));
    insert(
        &mut item,
        LIST_KEY,
        s(list_key(session.created_at_ms, &session.chat_id)),
    );
    insert_opt(
        &mut item,
        OWNER_PK,
        session.owner.as_deref().map(|owner| s(owner_pk(owner))),
    );
    insert(&mut item, CREATED_MS, n(session.created_at_ms));
    insert(&mut item, UPDATED_MS, n(session.updated_at_ms));
    insert_opt(&mut item, EXP_MS, session.expires_at_ms.map(n));
    insert_opt(
        &mut item,
        EXPIRES_AT,
        session.expires_at_ms.map(|at| n(ttl_seconds(at))),
    );
    insert_opt(&mut item, CLOSED_MS, session.closed_at_ms.map(n));
    insert_opt(
        &mut item,
        CLOSED_REASON,
        session.closed_reason.as_deref().map(s),
    );
    Ok(item)
}

/// Tags as a list of strings, which a filter's `contains` matches exactly.
pub(super) fn tags_value(tags: &[String]) -> AttributeValue {
    AttributeValue::L(tags.iter().map(s).collect())
}

/// The tags of a session item: a list of strings, or the JSON text of items written before
/// tags were stored as a list.
fn parse_tags(item: &Item) -> StoreResult<Vec<String>> {
    match item.get(TAGS) {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|value| {
                value.as_s().cloned().map_err(|_| {
                    StoreError::Backend(format!(
                        "malformed DynamoDB item: `{TAGS}` holds a non-string"
                    ))
                })
            })
            .collect(),
        Some(AttributeValue::S(text)) => json(item, TAGS, text.as_bytes()),
        None => Ok(Vec::new()),
        Some(_) => Err(StoreError::Backend(format!(
            "malformed DynamoDB item: `{TAGS}` is neither a list nor text"
        ))),
    }
}

pub(super) fn parse_session(item: &Item) -> StoreResult<Session> {
    let json_attr =
        |name: &str| -> StoreResult<Value> { json(item, name, get_str(item, name)?.as_bytes()) };
    Ok(Session {
        id: get_str(item, ID)?.to_owned(),
        chat_id: get_str(item, CHAT_ID)?.to_owned(),
        kind: get_str(item, KIND)?.to_owned(),
        task_identifier: get_str(item, TASK)?.to_owned(),
        trigger_config: json_attr(TRIGGER_CONFIG)?,
        tags: parse_tags(item)?,
        metadata: opt_str(item, METADATA)?
            .map(|text| json(item, METADATA, text.as_bytes()))
            .transpose()?,
        owner: opt_str(item, OWNER)?.map(str::to_owned),
        created_at_ms: get_num(item, CREATED_MS)?,
        updated_at_ms: get_num(item, UPDATED_MS)?,
        expires_at_ms: opt_num(item, EXP_MS)?,
        closed_at_ms: opt_num(item, CLOSED_MS)?,
        closed_reason: opt_str(item, CLOSED_REASON)?.map(str::to_owned),
    })
}

/// The lease's attributes on the head item.
const LEASE_ATTRIBUTES: &str = "#holder, #acquired_ms, #lease_ms, #first_seq, #input_seq";

/// The chat's state kept on the head item (`st`) when its JSON is this small: the head item is
/// updated by every turn, and billed by its size, a unit per KB.
pub(super) const STATE_ON_HEAD_MAX: usize = 512;

/// The state's JSON, when it is small enough for the head item.
pub(super) fn on_head(data: &[u8]) -> Option<&str> {
    (data.len() <= STATE_ON_HEAD_MAX)
        .then(|| std::str::from_utf8(data).ok())
        .flatten()
}

/// What a release does with the state on the head item.
#[derive(Debug, Clone, Copy)]
pub(super) enum HeadState<'a> {
    Keep,
    /// Saves this JSON there.
    Set(&'a str),
    /// Removes it, and marks the head item `st_item`: the state is in its own item.
    Drop,
}

/// The update of the head item that drops the lease, raises the consumed mark to `consumed`
/// (when given), and does `state`.
pub(super) fn release_update(consumed: Option<u64>, state: HeadState<'_>) -> Expr {
    let mut remove = LEASE_ATTRIBUTES.to_owned();
    // The turn's end is the chat's last activity: it rides on this write, at no extra unit.
    let mut set = vec!["#active_ms = :active_ms"];
    if consumed.is_some() {
        set.push("#consumed = :consumed");
    }
    match state {
        HeadState::Keep => {}
        HeadState::Set(_) => {
            set.push("#st = :st");
            remove.push_str(", #st_item");
        }
        HeadState::Drop => {
            remove.push_str(", #st");
            set.push("#st_item = :true");
        }
    }
    let mut text = format!("REMOVE {remove}");
    if !set.is_empty() {
        text.push_str(" SET ");
        text.push_str(&set.join(", "));
    }
    let mut update = Expr::new(text).value(":active_ms", n(crate::clock::now_ms()));
    if let Some(consumed) = consumed {
        update = update.value(":consumed", n(consumed));
    }
    match state {
        HeadState::Keep => {}
        HeadState::Set(json) => update = update.value(":st", s(json)),
        HeadState::Drop => update = update.value(":true", AttributeValue::Bool(true)),
    }
    update
}

/// The head item's update that keeps the state as `state` says (not `Keep`), as `put_state`
/// does without a release.
pub(super) fn state_update(state: HeadState<'_>) -> Expr {
    match state {
        HeadState::Set(json) => Expr::new("SET #st = :st REMOVE #st_item").value(":st", s(json)),
        HeadState::Drop | HeadState::Keep => {
            Expr::new("SET #st_item = :true REMOVE #st").value(":true", AttributeValue::Bool(true))
        }
    }
}

/// Puts `lease` on the head item, in place of any it held.
pub(super) fn lease_update(lease: &TurnLease) -> Expr {
    let set = "SET #holder = :holder, #acquired_ms = :acquired, #lease_ms = :until, \
               #first_seq = :first";
    let update = match lease.input_seq {
        Some(input) => Expr::new(format!("{set}, #input_seq = :input")).value(":input", n(input)),
        None => Expr::new(format!("{set} REMOVE #input_seq")),
    };
    update
        .value(":holder", s(&lease.holder))
        .value(":acquired", n(lease.acquired_at_ms))
        .value(":until", n(lease.expires_at_ms))
        .value(":first", n(lease.first_seq))
}

pub(super) fn parse_lease(item: &Item) -> StoreResult<TurnLease> {
    Ok(TurnLease {
        holder: get_str(item, HOLDER)?.to_owned(),
        acquired_at_ms: get_num(item, ACQUIRED_MS)?,
        expires_at_ms: get_num(item, LEASE_MS)?,
        first_seq: get_num(item, FIRST_SEQ)?,
        input_seq: opt_num(item, INPUT_SEQ)?,
    })
}

pub(super) fn parse_input(logical: Logical) -> StoreResult<InputRecord> {
    let item = &logical.item;
    Ok(InputRecord {
        seq: get_num(item, SEQ)?,
        part_id: get_str(item, PART_ID)?.to_owned(),
        timestamp_ms: get_num(item, TIMESTAMP_MS)?,
        body: String::from_utf8(logical.data).map_err(|_| {
            StoreError::Backend("malformed DynamoDB input record: body is not UTF-8".into())
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_a_list_and_the_json_text_of_older_items_still_reads() {
        let mut session = Session::new("c", 1);
        session.tags = vec!["work".into(), "starred".into()];
        let mut item = session_item(&session).expect("an item");
        assert_eq!(
            item.get(TAGS),
            Some(&AttributeValue::L(vec![s("work"), s("starred")]))
        );
        assert_eq!(parse_session(&item).expect("a session").tags, session.tags);
        insert(&mut item, TAGS, s(r#"["old","tags"]"#));
        assert_eq!(
            parse_session(&item).expect("a session").tags,
            ["old", "tags"]
        );
    }

    #[test]
    fn a_release_drops_the_lease_and_does_what_it_is_asked_to_the_state() {
        let keep = release_update(None, HeadState::Keep);
        assert_eq!(
            keep.text,
            format!("REMOVE {LEASE_ATTRIBUTES} SET #active_ms = :active_ms")
        );
        assert!(keep.values.contains_key(":active_ms"));

        let set = release_update(Some(4), HeadState::Set("{\"n\":1}"));
        assert_eq!(
            set.text,
            format!(
                "REMOVE {LEASE_ATTRIBUTES}, #st_item SET #active_ms = :active_ms, \
                 #consumed = :consumed, #st = :st"
            )
        );
        assert_eq!(set.values.get(":consumed"), Some(&n(4)));
        assert_eq!(set.values.get(":st"), Some(&s("{\"n\":1}")));

        let drop = release_update(Some(4), HeadState::Drop);
        assert_eq!(
            drop.text,
            format!(
                "REMOVE {LEASE_ATTRIBUTES}, #st SET #active_ms = :active_ms, \
                 #consumed = :consumed, #st_item = :true"
            )
        );
        assert!(!drop.values.contains_key(":st"));
    }

    #[test]
    fn only_small_states_go_on_the_head_item() {
        assert_eq!(on_head(b"{\"usage\":1}"), Some("{\"usage\":1}"));
        assert_eq!(
            on_head(&vec![b'1'; STATE_ON_HEAD_MAX]).map(str::len),
            Some(512)
        );
        assert_eq!(on_head(&vec![b'1'; STATE_ON_HEAD_MAX + 1]), None);
    }
}
