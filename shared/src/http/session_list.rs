//! `GET /api/v1/sessions`: a page of chats as `sessions.list(...)` of `@trigger.dev/sdk` asks for
//! them (`page[size]`, `page[after]`/`page[before]`, `filter[…]`), and how a chat shows in a
//! listing: `updatedAt` is its last activity, and `title` and `lastActivityAt` are added for
//! clients that read the body raw (the SDK's schema keeps only its own keys).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::App;
use super::error::ApiError;
use super::extract::{Caller, authenticate_caller};
use super::sessions::session_json;
use crate::clock::{iso8601, now_ms};
use crate::store::listing::{Direction, ListKey, SessionStatus};
use crate::store::{ListedSession, SessionFilter, SessionQuery};
use crate::ui::{Role, UIMessage};

/// The page size when the client names none (the SDK's server default).
const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page a client may ask for.
const MAX_PAGE_SIZE: usize = 100;
/// How many characters of the first user message a title keeps.
const TITLE_CHARS: usize = 80;

/// `GET /api/v1/sessions`: newest first; the secret key lists every chat, an end user's ID token
/// only that user's.
pub async fn list(
    State(app): State<App>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate_caller(&app, &headers).await?;
    let params = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map_err(|error| ApiError::bad_request(format!("the query string is not valid: {error}")))?
        .0;
    let (mut query, hop) = parse_query(&params, now_ms())?;
    if let Caller::EndUser(sub) = caller {
        query.owner = Some(sub);
    }
    let page = app.runner().store().list_sessions(&query).await?;
    let mut data = Vec::with_capacity(page.sessions.len());
    for listed in &page.sessions {
        data.push(listed_json(&app, listed).await?);
    }
    let mut pagination = serde_json::Map::new();
    if let Some(next) = page.next {
        let cursor = Cursor {
            hop: hop + 1,
            key: next,
        };
        pagination.insert("next".into(), json!(cursor.encode()));
    }
    if let Some(previous) = page.previous {
        let cursor = Cursor {
            hop: hop + 1,
            key: previous,
        };
        pagination.insert("previous".into(), json!(cursor.encode()));
    }
    Ok(Json(json!({"data": data, "pagination": pagination})))
}

/// A session as listings and retrieval show it: its last activity as `updatedAt` and
/// `lastActivityAt`, and its `title`.
pub async fn listed_json(app: &App, listed: &ListedSession) -> Result<Value, ApiError> {
    let session = &listed.session;
    let title = match (
        metadata_title(session.metadata.as_ref()),
        &listed.message_title,
    ) {
        (Some(title), _) => Some(title),
        (None, Some(title)) => Some(title.clone()),
        (None, None) => message_title(&app.runner().store().messages(&session.chat_id).await?),
    };
    let mut body = session_json(session);
    if let Value::Object(fields) = &mut body {
        let updated = iso8601(listed.updated_at_ms());
        fields.insert("updatedAt".into(), json!(updated));
        fields.insert(
            "lastActivityAt".into(),
            json!(iso8601(
                listed.last_activity_ms.unwrap_or(session.created_at_ms)
            )),
        );
        fields.insert("title".into(), json!(title));
    }
    Ok(body)
}

fn metadata_title(metadata: Option<&Value>) -> Option<String> {
    let title = metadata?.get("title")?.as_str()?.trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// The title a chat's messages give it: the first user message's text, on one line and
/// shortened.
pub fn message_title(messages: &[UIMessage]) -> Option<String> {
    let text = messages
        .iter()
        .find(|message| message.role == Role::User)?
        .text();
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return None;
    }
    if line.chars().count() <= TITLE_CHARS {
        return Some(line);
    }
    let cut: String = line.chars().take(TITLE_CHARS - 1).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// A page's place on the wire: the key a page starts past, and how many pages from the first
/// it was reached.
///
/// The SDK's `getPreviousPage()` and `getNextPage()` send the new cursor *with* the one the page
/// itself was fetched with (`page[after]` and `page[before]` both), so the count says which
/// is newer: the one to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    hop: u64,
    key: ListKey,
}

impl Cursor {
    /// Opaque and URL-safe.
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            self.hop, self.key.created_at_ms, self.key.chat_id
        ))
    }

    /// A cursor [`encode`](Self::encode) made; `None` for anything else.
    fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut fields = text.splitn(3, ':');
        let hop = fields.next()?.parse().ok()?;
        let created_at_ms = fields.next()?.parse().ok()?;
        let chat_id = fields.next().filter(|id| !id.is_empty())?.to_owned();
        Some(Cursor {
            hop,
            key: ListKey {
                created_at_ms,
                chat_id,
            },
        })
    }
}

/// The page a query string asks for, and the hop of its cursor (0 for the first page).
/// Repeated keys and comma-separated values both give lists, as the SDK sends them joined by
/// commas.
fn parse_query(params: &[(String, String)], now_ms: u64) -> Result<(SessionQuery, u64), ApiError> {
    let mut query = SessionQuery {
        owner: None,
        filter: SessionFilter::default(),
        cursor: None,
        direction: Direction::Older,
        size: DEFAULT_PAGE_SIZE,
        now_ms,
    };
    let mut after = None;
    let mut before = None;
    let mut period = None;
    let list = |value: &str| -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let time = |key: &str, value: &str| -> Result<u64, ApiError> {
        value
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::invalid(format!("`{key}` must be epoch milliseconds")))
    };
    for (key, value) in params {
        match key.as_str() {
            "page[size]" => {
                query.size = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|size| (1..=MAX_PAGE_SIZE).contains(size))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "`page[size]` must be a whole number from 1 to {MAX_PAGE_SIZE}"
                        ))
                    })?;
            }
            "page[after]" => after = Some(cursor(key, value)?),
            "page[before]" => before = Some(cursor(key, value)?),
            "filter[externalId]" => query.filter.external_id = Some(value.clone()),
            "filter[type]" => query.filter.kinds.extend(list(value)),
            "filter[taskIdentifier]" => query.filter.task_identifiers.extend(list(value)),
            "filter[tags]" => query.filter.tags.extend(list(value)),
            "filter[status]" => {
                for status in list(value) {
                    query
                        .filter
                        .statuses
                        .push(SessionStatus::parse(&status).ok_or_else(|| {
                            ApiError::invalid(format!(
                                "`filter[status]` takes ACTIVE, CLOSED or EXPIRED (got `{status}`)"
                            ))
                        })?);
                }
            }
            "filter[createdAt][period]" => {
                period = Some(humantime::parse_duration(value.trim()).map_err(|_| {
                    ApiError::invalid(
                        "`filter[createdAt][period]` must be a duration like `1h`, `7d` or `30m`",
                    )
                })?);
            }
            "filter[createdAt][from]" => query.filter.created_from_ms = Some(time(key, value)?),
            "filter[createdAt][to]" => query.filter.created_to_ms = Some(time(key, value)?),
            // Unknown parameters are ignored, as other list routes of the wire do.
            _ => {}
        }
    }
    if let Some(period) = period {
        let from = now_ms.saturating_sub(u64::try_from(period.as_millis()).unwrap_or(u64::MAX));
        query.filter.created_from_ms =
            Some(query.filter.created_from_ms.map_or(from, |f| f.max(from)));
    }
    let follow = match (after, before) {
        (Some(after), Some(before)) if after.hop == before.hop => {
            return Err(ApiError::invalid(
                "send `page[after]` or `page[before]`, not both",
            ));
        }
        (Some(after), Some(before)) if after.hop > before.hop => Some((after, Direction::Older)),
        (Some(_), Some(before)) => Some((before, Direction::Newer)),
        (Some(after), None) => Some((after, Direction::Older)),
        (None, Some(before)) => Some((before, Direction::Newer)),
        (None, None) => None,
    };
    let hop = match follow {
        Some((cursor, direction)) => {
            query.cursor = Some(cursor.key);
            query.direction = direction;
            cursor.hop
        }
        None => 0,
    };
    Ok((query, hop))
}

fn cursor(key: &str, value: &str) -> Result<Cursor, ApiError> {
    Cursor::decode(value).ok_or_else(|| {
        ApiError::invalid(format!(
            "`{key}` must be a cursor from a listing's `pagination`"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_sdks_query_is_read() {
        let key = ListKey {
            created_at_ms: 7,
            chat_id: "c".into(),
        };
        let before = Cursor {
            hop: 2,
            key: key.clone(),
        };
        let after = Cursor {
            hop: 1,
            key: ListKey {
                created_at_ms: 9,
                chat_id: "d".into(),
            },
        };
        let (query, hop) = parse_query(
            &params(&[
                ("page[size]", "5"),
                ("page[after]", &after.encode()),
                ("page[before]", &before.encode()),
                ("filter[status]", "ACTIVE,CLOSED"),
                ("filter[tags]", "a,b"),
                ("filter[type]", "chat.agent"),
                ("filter[taskIdentifier]", "chat"),
                ("filter[externalId]", "c"),
                ("filter[createdAt][period]", "1h"),
                ("filter[createdAt][from]", "10"),
            ]),
            7_200_000,
        )
        .expect("valid");
        assert_eq!(hop, 2, "the newer cursor is followed");
        assert_eq!(query.size, 5);
        assert_eq!(query.cursor, Some(key));
        assert_eq!(query.direction, Direction::Newer);
        assert_eq!(
            query.filter.statuses,
            [SessionStatus::Active, SessionStatus::Closed]
        );
        assert_eq!(query.filter.tags, ["a", "b"]);
        assert_eq!(query.filter.created_from_ms, Some(3_600_000));
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        for (pairs, needle) in [
            (vec![("page[size]", "0")], "page[size]"),
            (vec![("page[size]", "101")], "page[size]"),
            (vec![("page[after]", "nope")], "page[after]"),
            (vec![("filter[status]", "DONE")], "filter[status]"),
            (vec![("filter[createdAt][period]", "soon")], "period"),
            (vec![("filter[createdAt][to]", "x")], "createdAt"),
            (
                vec![("page[after]", "MToxOng"), ("page[before]", "MToxOng")],
                "not both",
            ),
        ] {
            let error = parse_query(&params(&pairs), 0).expect_err("invalid");
            assert!(
                error.message.contains(needle),
                "{pairs:?}: {}",
                error.message
            );
        }
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = Cursor {
            hop: 3,
            key: ListKey {
                created_at_ms: 42,
                chat_id: "a:b@c".into(),
            },
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("1:2:")), None);
    }

    #[test]
    fn titles_come_from_the_metadata_or_the_first_user_message() {
        assert_eq!(
            metadata_title(Some(&json!({"title": " Trip "}))),
            Some("Trip".into())
        );
        assert_eq!(metadata_title(Some(&json!({"title": 3}))), None);
        let mut assistant = UIMessage::new("a", Role::Assistant);
        assistant.parts.push(crate::ui::UIPart::text("hello"));
        let long = "word ".repeat(40);
        let messages = [assistant, UIMessage::user_text("u", format!("  {long}\n"))];
        let title = message_title(&messages).expect("a title");
        assert!(title.ends_with('…'));
        assert_eq!(title.chars().count(), TITLE_CHARS);
        assert_eq!(
            message_title(&[UIMessage::user_text("u", "Plan a\ntrip")]),
            Some("Plan a trip".into())
        );
    }
}
