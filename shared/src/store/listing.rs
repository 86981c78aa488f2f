//! Listing sessions, sans IO: the order, the filters, the cursors and the paging that every store
//! shares. A store only scans its sessions in [`ListKey`] order from a cursor, in batches; what
//! is left out by a filter and when a page is full is decided here, so every store pages alike.
//!
//! Sessions are listed newest first by creation time (ties by chat id), an order that never
//! changes for a chat: a cursor is the key of the last (or first) item a page showed, and the
//! next page starts strictly past it, so nothing is skipped or repeated while nothing changes.
//! How a cursor travels on the wire is the HTTP layer's business.

use std::future::Future;

use super::{Session, StoreResult};

/// A session's place in the listing: newest first by creation, then by chat id (descending).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    /// When the session was created, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The chat id, which breaks ties between sessions created in the same millisecond.
    pub chat_id: String,
}

impl ListKey {
    /// The key of `session`.
    pub fn of(session: &Session) -> ListKey {
        ListKey {
            created_at_ms: session.created_at_ms,
            chat_id: session.chat_id.clone(),
        }
    }

    /// The tuple whose ascending order is the listing's *reverse* (oldest first).
    fn ascending(&self) -> (u64, &str) {
        (self.created_at_ms, self.chat_id.as_str())
    }

    /// Whether `self` comes after `other` when listing in `direction`.
    pub fn is_past(&self, other: &ListKey, direction: Direction) -> bool {
        match direction {
            Direction::Older => self.ascending() < other.ascending(),
            Direction::Newer => self.ascending() > other.ascending(),
        }
    }
}

/// Which way a page reads from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Newest first, towards older sessions: the first page and `page[after]`.
    Older,
    /// Towards newer sessions: `page[before]`. The page is still shown newest first.
    Newer,
}

/// A session's status as the Trigger SDK names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Neither closed nor expired.
    Active,
    /// Closed.
    Closed,
    /// Past its expiry and not closed.
    Expired,
}

impl SessionStatus {
    /// `ACTIVE`, `CLOSED` or `EXPIRED`, as the wire spells them.
    pub fn parse(text: &str) -> Option<SessionStatus> {
        match text {
            "ACTIVE" => Some(SessionStatus::Active),
            "CLOSED" => Some(SessionStatus::Closed),
            "EXPIRED" => Some(SessionStatus::Expired),
            _ => None,
        }
    }

    /// The status of `session` at `now_ms`.
    pub fn of(session: &Session, now_ms: u64) -> SessionStatus {
        if session.is_closed() {
            SessionStatus::Closed
        } else if session.is_expired(now_ms) {
            SessionStatus::Expired
        } else {
            SessionStatus::Active
        }
    }
}

/// Which sessions a listing keeps. An empty list keeps every value; several values keep a
/// session matching any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only the session of this chat id.
    pub external_id: Option<String>,
    /// Sessions with any of these statuses.
    pub statuses: Vec<SessionStatus>,
    /// Sessions carrying any of these tags.
    pub tags: Vec<String>,
    /// Sessions of any of these types.
    pub kinds: Vec<String>,
    /// Sessions of any of these tasks.
    pub task_identifiers: Vec<String>,
    /// Sessions created at or after this time (ms since the Unix epoch).
    pub created_from_ms: Option<u64>,
    /// Sessions created at or before this time (ms since the Unix epoch).
    pub created_to_ms: Option<u64>,
}

impl SessionFilter {
    /// Whether `session` passes, at `now_ms` (for the status).
    pub fn matches(&self, session: &Session, now_ms: u64) -> bool {
        let any =
            |wanted: &[String], value: &str| wanted.is_empty() || wanted.iter().any(|w| w == value);
        self.external_id
            .as_ref()
            .is_none_or(|id| *id == session.chat_id)
            && (self.statuses.is_empty()
                || self.statuses.contains(&SessionStatus::of(session, now_ms)))
            && (self.tags.is_empty() || self.tags.iter().any(|tag| session.tags.contains(tag)))
            && any(&self.kinds, &session.kind)
            && any(&self.task_identifiers, &session.task_identifier)
            && self
                .created_from_ms
                .is_none_or(|from| session.created_at_ms >= from)
            && self
                .created_to_ms
                .is_none_or(|to| session.created_at_ms <= to)
    }
}

/// One page to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    /// Only this end user's sessions; `None` lists every session.
    pub owner: Option<String>,
    /// Which sessions to keep.
    pub filter: SessionFilter,
    /// The key the page starts past, `None` for the first page.
    pub cursor: Option<ListKey>,
    /// Which way the page reads from the cursor.
    pub direction: Direction,
    /// At most this many sessions (1 to 100 on the wire).
    pub size: usize,
    /// The time statuses are judged at, in ms since the Unix epoch.
    pub now_ms: u64,
}

/// A session as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSession {
    /// The session.
    pub session: Session,
    /// When the chat's last turn ended, if one has (ms since the Unix epoch).
    pub last_activity_ms: Option<u64>,
    /// The title the chat's first user message gives, when the store keeps it beside the
    /// session (a directory of chats whose messages live elsewhere); `None` has the listing read
    /// the chat's messages for it.
    pub message_title: Option<String>,
}

impl ListedSession {
    /// When the chat last changed: its last turn's end, or the session's own last change.
    pub fn updated_at_ms(&self) -> u64 {
        self.last_activity_ms
            .map_or(self.session.updated_at_ms, |at| {
                at.max(self.session.updated_at_ms)
            })
    }
}

/// One page of sessions, newest first, with the cursors to the pages beside it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPage {
    /// The sessions, newest first.
    pub sessions: Vec<ListedSession>,
    /// Where the next (older) page starts, when there may be one.
    pub next: Option<ListKey>,
    /// Where the previous (newer) page starts, when there may be one.
    pub previous: Option<ListKey>,
}

/// Fills one page of `query` from `scan`, which returns up to `limit` sessions of the query's
/// owner (all, without one) strictly past `from` in the query's direction, in that order. Pages
/// are filled past sessions the filter leaves out.
pub async fn collect_page<F, Fut>(query: &SessionQuery, mut scan: F) -> StoreResult<SessionPage>
where
    F: FnMut(Option<ListKey>, usize) -> Fut,
    Fut: Future<Output = StoreResult<Vec<ListedSession>>>,
{
    let wanted = query.size.max(1) + 1;
    let batch = (wanted * 2).clamp(16, 200);
    let mut found = Vec::new();
    let mut from = query.cursor.clone();
    loop {
        let sessions = scan(from.clone(), batch).await?;
        let exhausted = sessions.len() < batch;
        if let Some(last) = sessions.last() {
            from = Some(ListKey::of(&last.session));
        }
        found.extend(
            sessions
                .into_iter()
                .filter(|listed| query.filter.matches(&listed.session, query.now_ms)),
        );
        if found.len() >= wanted || exhausted {
            break;
        }
    }
    Ok(page_of(query, found))
}

/// The page `query` shows of `found`: matching sessions past its cursor, in its direction.
pub fn page_of(query: &SessionQuery, mut found: Vec<ListedSession>) -> SessionPage {
    let size = query.size.max(1);
    let more = found.len() > size;
    found.truncate(size);
    let key = |listed: Option<&ListedSession>| listed.map(|l| ListKey::of(&l.session));
    match query.direction {
        Direction::Older => SessionPage {
            next: if more { key(found.last()) } else { None },
            previous: query
                .cursor
                .as_ref()
                .map(|cursor| key(found.first()).unwrap_or_else(|| cursor.clone())),
            sessions: found,
        },
        Direction::Newer => {
            found.reverse();
            SessionPage {
                previous: if more { key(found.first()) } else { None },
                next: query
                    .cursor
                    .as_ref()
                    .map(|cursor| key(found.last()).unwrap_or_else(|| cursor.clone())),
                sessions: found,
            }
        }
    }
}

/// The page `query` shows when it names one chat (`filter.external_id`) and `found` is that
/// chat's session: a store can look it up instead of scanning for it.
pub fn page_of_one(query: &SessionQuery, found: Option<ListedSession>) -> SessionPage {
    let kept = found.filter(|listed| {
        let session = &listed.session;
        (query.owner.is_none() || session.owner == query.owner)
            && query.filter.matches(session, query.now_ms)
            && query
                .cursor
                .as_ref()
                .is_none_or(|cursor| ListKey::of(session).is_past(cursor, query.direction))
    });
    page_of(query, kept.into_iter().collect())
}

/// Sorts `sessions` into `direction`'s order and keeps those strictly past `from`, at most
/// `limit`: the scan of a store that holds its sessions in memory.
pub fn scan_sorted(
    mut sessions: Vec<ListedSession>,
    direction: Direction,
    from: Option<&ListKey>,
    limit: usize,
) -> Vec<ListedSession> {
    sessions.sort_by(|a, b| {
        let (a, b) = (ListKey::of(&a.session), ListKey::of(&b.session));
        match direction {
            Direction::Older => b.ascending().cmp(&a.ascending()),
            Direction::Newer => a.ascending().cmp(&b.ascending()),
        }
    });
    sessions
        .into_iter()
        .filter(|listed| {
            from.is_none_or(|from| ListKey::of(&listed.session).is_past(from, direction))
        })
        .take(limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(chat_id: &str, created: u64) -> ListedSession {
        ListedSession {
            session: Session::new(chat_id, created),
            last_activity_ms: None,
            message_title: None,
        }
    }

    fn all() -> Vec<ListedSession> {
        (0..7)
            .map(|i| listed(&format!("chat-{i}"), 1_000 + (i / 2) * 10))
            .collect()
    }

    fn query(cursor: Option<ListKey>, direction: Direction, size: usize) -> SessionQuery {
        SessionQuery {
            owner: None,
            filter: SessionFilter::default(),
            cursor,
            direction,
            size,
            now_ms: 5_000,
        }
    }

    async fn page(query: &SessionQuery) -> SessionPage {
        collect_page(query, |from, limit| {
            let found = scan_sorted(all(), query.direction, from.as_ref(), limit);
            async move { Ok(found) }
        })
        .await
        .expect("a page")
    }

    fn ids(page: &SessionPage) -> Vec<String> {
        page.sessions
            .iter()
            .map(|l| l.session.chat_id.clone())
            .collect()
    }

    #[tokio::test]
    async fn pages_forward_and_back_neither_skip_nor_repeat() {
        let mut seen = Vec::new();
        let mut pages = Vec::new();
        let mut cursor = None;
        loop {
            let page = page(&query(cursor, Direction::Older, 3)).await;
            seen.extend(ids(&page));
            cursor = page.next.clone();
            pages.push(page);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(
            seen,
            [
                "chat-6", "chat-5", "chat-4", "chat-3", "chat-2", "chat-1", "chat-0"
            ]
        );
        assert_eq!(pages.len(), 3);
        assert!(pages[0].previous.is_none());
        // Back from the last page: the page before it, again newest first.
        let back = page(&query(pages[2].previous.clone(), Direction::Newer, 3)).await;
        assert_eq!(ids(&back), ids(&pages[1]));
        let first = page(&query(back.previous.clone(), Direction::Newer, 3)).await;
        assert_eq!(ids(&first), ids(&pages[0]));
        assert!(first.previous.is_none());
        assert!(first.next.is_some());
    }

    #[tokio::test]
    async fn filtered_pages_are_filled_past_what_the_filter_leaves_out() {
        let mut q = query(None, Direction::Older, 2);
        q.filter.external_id = Some("chat-1".into());
        let page = page(&q).await;
        assert_eq!(ids(&page), ["chat-1"]);
        assert!(page.next.is_none());
    }

    #[test]
    fn filters_match_as_the_sdk_names_them() {
        let mut session = Session::new("c", 100);
        session.tags = vec!["a".into(), "b".into()];
        session.expires_at_ms = Some(200);
        let filter = |f: SessionFilter, now| f.matches(&session, now);
        assert!(filter(
            SessionFilter {
                tags: vec!["x".into(), "b".into()],
                ..Default::default()
            },
            0
        ));
        assert!(!filter(
            SessionFilter {
                tags: vec!["x".into()],
                ..Default::default()
            },
            0
        ));
        let status = |s| SessionFilter {
            statuses: vec![s],
            ..Default::default()
        };
        assert!(filter(status(SessionStatus::Active), 150));
        assert!(filter(status(SessionStatus::Expired), 250));
        assert!(!filter(status(SessionStatus::Closed), 250));
        assert!(filter(
            SessionFilter {
                created_from_ms: Some(100),
                created_to_ms: Some(100),
                ..Default::default()
            },
            0
        ));
        assert!(!filter(
            SessionFilter {
                kinds: vec!["task".into()],
                ..Default::default()
            },
            0
        ));
    }
}
