//! The body `POST /api/chat` parses (what `DefaultChatTransport` sends): any bytes get a client
//! error in the API's error shape, never a panic or a 5xx; and any `UIMessage` it accepts
//! survives the store's JSON round trip and converts for a model.
#![no_main]

use chatfn::auth::SessionToken;
use chatfn::http::validate_chat_id;
use chatfn::ui::{ConvertOptions, UIMessage, to_model_messages};
use chatfn_fuzz::Server;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The chat the fuzzer's token opens; no session is ever started for it, so no turn runs.
const CHAT: &str = "chat-1";

thread_local! {
    // The requests stop before a turn starts, so one app serves every input.
    static SERVER: Server = Server::new();
    // The credential is checked before the body: a valid token lets every body reach the parser.
    static TOKEN: String = SERVER.with(|server| {
        let now = chatfn::clock::now_ms() / 1000;
        SessionToken::mint(&server.app.settings().secret_keys, "fuzz", CHAT, now, 86_400)
    });
}

fuzz_target!(|body: &[u8]| {
    let token = TOKEN.with(Clone::clone);
    let reply =
        SERVER.with(|server| server.call("POST", "/api/chat", Some(&token), &[], body.to_vec()));
    reply.assert_client_error(&[400, 403, 404, 413, 422], "POST /api/chat");
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let id = parsed.as_ref().and_then(|b| b["id"].as_str());
    match reply.status.as_u16() {
        // Past the body's checks, the token's scope (another chat: 403) and the session (this
        // chat, never started: 404) are what is left: the body had a valid chat id.
        403 => assert!(
            id.is_some_and(|id| validate_chat_id(id).is_ok() && id != CHAT),
            "a body with no valid chat id got as far as the token's scope"
        ),
        404 => assert_eq!(id, Some(CHAT), "a 404 for a chat the token does not name"),
        400 => assert!(parsed.is_none(), "valid JSON answered as a syntax error"),
        _ => {}
    }

    let Some(Value::Array(items)) = parsed.as_ref().map(|b| b["messages"].clone()) else {
        return;
    };
    let messages: Vec<UIMessage> = items
        .into_iter()
        .filter_map(|item| serde_json::from_value(item).ok())
        .collect();
    for message in &messages {
        chatfn_fuzz::assert_round_trips(message);
    }
    for ignore in [true, false] {
        let _ = to_model_messages(
            &messages,
            ConvertOptions {
                ignore_incomplete_tool_calls: ignore,
            },
        );
    }
});
