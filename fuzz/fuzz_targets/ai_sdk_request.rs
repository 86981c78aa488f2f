//! The body `POST /api/chat` parses (what `DefaultChatTransport` sends): any bytes get a client
//! error in the API's error shape, never a panic or a 5xx; and any `UIMessage` it accepts
//! survives the store's JSON round trip and converts for a model.
#![no_main]

use chatfn::http::validate_chat_id;
use chatfn::ui::{ConvertOptions, UIMessage, to_model_messages};
use chatfn_fuzz::Server;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

thread_local! {
    // The requests stop at the token check, so one app serves every input.
    static SERVER: Server = Server::new();
}

fuzz_target!(|body: &[u8]| {
    let reply = SERVER.with(|server| {
        server.call(
            "POST",
            "/api/chat",
            Some("not-a-session-token"),
            &[],
            body.to_vec(),
        )
    });
    reply.assert_client_error(&[400, 401, 413, 422], "POST /api/chat");
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match reply.status.as_u16() {
        // The token is checked last: a 401 means the body passed every check before it.
        401 => {
            let id = parsed.as_ref().and_then(|b| b["id"].as_str());
            assert!(
                id.is_some_and(|id| validate_chat_id(id).is_ok()),
                "a body with no valid chat id got as far as the token check"
            );
        }
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
