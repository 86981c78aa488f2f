//! A turn's start in one read and one write. The view of the chat is read in one snapshot, and
//! the new input is recorded with the chat's lease in one transaction: the start queues once at
//! the writer, where an append and a lease taken apart queued twice behind every other chat's
//! writes, and the turn runs on the view's history and state without reading them again.

use rusqlite::Connection;

use super::{
    insert_input, max_output_seq, put_lease, require_session, select_consumed, select_inputs,
    select_lease, select_messages, select_session, select_state,
};
use crate::store::sql;
use crate::store::{LeasedAppend, StoreResult, TurnLease, TurnView};

/// Inputs after the consumed mark read with the view; a chat with more has them read apart.
const PENDING_READ: usize = 64;

/// Reads what a turn's start needs of the chat. Run it in one snapshot
/// ([`in_snapshot`](super::workers::in_snapshot)): a lease taken as viewed relies on the history
/// being as old as the consumed mark.
pub(super) fn view(conn: &Connection, chat_id: &str) -> StoreResult<TurnView> {
    let session = select_session(conn, sql::SESSION_BY_CHAT, chat_id)?;
    let lease = select_lease(conn, chat_id)?;
    let consumed = select_consumed(conn, chat_id)?;
    let next_output = max_output_seq(conn, chat_id)?.map_or(0, |seq| seq + 1);
    let history = select_messages(conn, chat_id)?;
    let state = select_state(conn, chat_id)?;
    let pending = select_inputs(conn, chat_id, consumed, PENDING_READ)?;
    Ok(TurnView {
        session,
        lease,
        consumed,
        next_input: None,
        next_output,
        history,
        state,
        pending: (pending.len() < PENDING_READ).then_some(pending),
    })
}

/// What a take as viewed compares with the chat as it is now.
pub(super) struct Seen {
    session: bool,
    lease: bool,
    consumed: Option<u64>,
    next_output: u64,
}

impl Seen {
    pub(super) fn of(view: &TurnView) -> Self {
        Seen {
            session: view.session.is_some(),
            lease: view.lease.is_some(),
            consumed: view.consumed,
            next_output: view.next_output,
        }
    }
}

/// Whether the chat is as `seen` saw it, with no lease on it: no turn started since (it would
/// hold the lease), none ended (it raises the consumed mark), nothing was written to the log.
fn unchanged(tx: &Connection, chat_id: &str, seen: &Seen) -> StoreResult<bool> {
    Ok(seen.session
        && !seen.lease
        && select_lease(tx, chat_id)?.is_none()
        && select_consumed(tx, chat_id)? == seen.consumed
        && max_output_seq(tx, chat_id)?.map_or(0, |seq| seq + 1) == seen.next_output)
}

/// Records an input under a part id chatfn minted (no client can send it again, so there is no
/// claim to look for) and, when the chat is as `seen`, takes `lease` for it.
pub(super) fn append_leased(
    tx: &Connection,
    chat_id: &str,
    part_id: &str,
    body: &str,
    now_ms: u64,
    lease: TurnLease,
    seen: &Seen,
) -> StoreResult<LeasedAppend> {
    require_session(tx, chat_id)?;
    let seq = insert_input(tx, chat_id, part_id, body, now_ms)?;
    if !unchanged(tx, chat_id, seen)? {
        return Ok(LeasedAppend::Recorded(seq));
    }
    let lease = TurnLease {
        input_seq: Some(seq),
        first_seq: seen.next_output,
        ..lease
    };
    put_lease(tx, chat_id, &lease)?;
    Ok(LeasedAppend::Leased(lease))
}

/// Takes `lease` when the chat is as `seen`; `None` otherwise, and the caller takes it as usual.
pub(super) fn lease_as_viewed(
    tx: &Connection,
    chat_id: &str,
    lease: TurnLease,
    seen: &Seen,
) -> StoreResult<Option<TurnLease>> {
    if !unchanged(tx, chat_id, seen)? {
        return Ok(None);
    }
    put_lease(tx, chat_id, &lease)?;
    Ok(Some(lease))
}
