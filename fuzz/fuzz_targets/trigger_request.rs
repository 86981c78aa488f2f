//! The Trigger wire's request bodies (session start, close, public tokens, the `in/append` input
//! and stop records) and its read headers (`Last-Event-ID`, `Timeout-Seconds`): any input gets a
//! success or a client error in the API's error shape, never a panic or a 5xx.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use chatfn::auth::SessionToken;
use chatfn::trigger::{parse_last_event_id, parse_timeout_seconds};
use chatfn_fuzz::{SECRET_KEY, Server};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

/// Every field name these bodies (and the messages inside them) know.
const FIELDS: &[&str] = &[
    "type",
    "externalId",
    "taskIdentifier",
    "triggerConfig",
    "tags",
    "metadata",
    "expiresAt",
    "reason",
    "scopes",
    "expirationTime",
    "kind",
    "payload",
    "chatId",
    "trigger",
    "message",
    "messageId",
    "maxAttempts",
    "idleTimeoutInSeconds",
    "basePayload",
    "id",
    "role",
    "parts",
    "text",
];

/// A plausible value: the strings these bodies expect, times, or any JSON.
fn value(u: &mut Unstructured<'_>, depth: u8) -> Result<Value> {
    Ok(match u.int_in_range(0..=5)? {
        0 => json!(*u.choose(&[
            "chat.agent",
            "chat-1",
            "session_x",
            "message",
            "stop",
            "submit-message",
            "regenerate-message",
            "user",
            "read:sessions:chat-1",
            "write:sessions:chat-1",
            "1h",
            "2030-01-01T00:00:00Z",
        ])?),
        1 => json!(u.arbitrary::<u64>()?),
        2 if depth > 0 => Value::Object(fields(u, depth - 1)?),
        3 if depth > 0 => {
            let len = u.int_in_range(0..=3)?;
            let mut items = Vec::new();
            for _ in 0..len {
                items.push(value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => chatfn_fuzz::json_value(u, depth.min(2))?,
    })
}

fn fields(u: &mut Unstructured<'_>, depth: u8) -> Result<Map<String, Value>> {
    let len = u.int_in_range(0..=6)?;
    let mut map = Map::new();
    for _ in 0..len {
        let name = *u.choose(FIELDS)?;
        map.insert(name.to_owned(), value(u, depth)?);
    }
    Ok(map)
}

#[derive(Debug)]
enum Body {
    Raw(Vec<u8>),
    Fields(Map<String, Value>),
}

impl<'a> Arbitrary<'a> for Body {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(if u.arbitrary()? {
            Body::Raw(u.arbitrary()?)
        } else {
            Body::Fields(fields(u, 3)?)
        })
    }
}

impl Body {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Raw(bytes) => bytes.clone(),
            Body::Fields(map) => Value::Object(map.clone()).to_string().into_bytes(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Route {
    StartSession,
    Close,
    PublicToken,
    Append { part_id: Option<Vec<u8>> },
}

#[derive(Debug, Arbitrary)]
struct Input {
    route: Route,
    body: Body,
    last_event_id: String,
    timeout_seconds: String,
}

const START: &str = r#"{"type":"chat.agent","externalId":"chat-1","taskIdentifier":"chat"}"#;

fn headers(last_event_id: &str, timeout_seconds: &str) {
    match parse_last_event_id(Some(last_event_id)) {
        Some(cursor) => assert_eq!(last_event_id.trim().parse::<u64>(), Ok(cursor)),
        None => assert!(last_event_id.trim().parse::<u64>().is_err()),
    }
    let timeout = parse_timeout_seconds(Some(timeout_seconds));
    assert!((1..=600).contains(&timeout), "timeout {timeout}");
}

fn request(route: Route, body: Vec<u8>) {
    // A fresh app each time: what one input stored must not change how the next is judged.
    let server = Server::new();
    match route {
        Route::StartSession => {
            let reply = server.call("POST", "/api/v1/sessions", Some(SECRET_KEY), &[], body);
            if reply.status.is_success() {
                assert!(
                    reply.body["publicAccessToken"].is_string(),
                    "{}",
                    reply.body
                );
                assert!(reply.body["externalId"].is_string(), "{}", reply.body);
            } else {
                reply.assert_client_error(&[400, 409, 413, 422], "POST /api/v1/sessions");
            }
        }
        Route::Close => {
            let start = server.call(
                "POST",
                "/api/v1/sessions",
                Some(SECRET_KEY),
                &[],
                START.into(),
            );
            assert_eq!(start.status, 201, "{}", start.body);
            let path = "/api/v1/sessions/chat-1/close";
            let reply = server.call("POST", path, Some(SECRET_KEY), &[], body);
            if reply.status.is_success() {
                assert!(reply.body["closedAt"].is_string(), "{}", reply.body);
            } else {
                reply.assert_client_error(&[400, 413, 422], path);
            }
        }
        Route::PublicToken => {
            let path = "/api/v1/auth/public-tokens";
            let reply = server.call("POST", path, Some(SECRET_KEY), &[], body);
            if reply.status.is_success() {
                assert!(reply.body["token"].is_string(), "{}", reply.body);
            } else {
                reply.assert_client_error(&[400, 413, 422], path);
            }
        }
        Route::Append { part_id } => {
            let start = server.call(
                "POST",
                "/api/v1/sessions",
                Some(SECRET_KEY),
                &[],
                START.into(),
            );
            assert_eq!(start.status, 201, "{}", start.body);
            let now = chatfn::clock::now_ms() / 1000;
            let token = SessionToken::mint(
                &server.app.settings().secret_keys,
                "chatfn",
                "chat-1",
                now,
                3600,
            );
            let headers: Vec<(&str, &[u8])> = part_id
                .as_deref()
                .map(|part| ("x-part-id", part))
                .into_iter()
                .collect();
            let path = "/realtime/v1/sessions/chat-1/in/append";
            let reply = server.call("POST", path, Some(&token), &headers, body);
            if reply.status.is_success() {
                assert_eq!(reply.body["ok"], true, "{}", reply.body);
                assert!(reply.body["seq"].is_u64(), "{}", reply.body);
            } else {
                reply.assert_client_error(&[400, 413, 422], path);
            }
        }
    }
}

// The first byte picks the route (bits 1-2); even, the rest is the raw body (the seeds are real
// bodies); odd, the fuzzer's bytes build a body from the fields these routes know.
fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        headers(&text, &text);
        let route = match (mode >> 1) % 4 {
            0 => Route::StartSession,
            1 => Route::Close,
            2 => Route::PublicToken,
            _ => Route::Append { part_id: None },
        };
        request(route, rest.to_vec());
    } else if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        headers(&input.last_event_id, &input.timeout_seconds);
        request(input.route, input.body.bytes());
    }
});
