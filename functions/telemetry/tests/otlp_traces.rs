//! The spans of a turn with a tool call reach an OTLP/HTTP receiver as `http/json`, with their
//! names, attributes and parentage, and no message contents by default.

#[path = "support/otlp_turn.rs"]
mod otlp_turn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_with_a_tool_call_is_exported_as_one_trace_in_json() {
    otlp_turn::a_turn_with_a_tool_call_is_exported_as_one_trace(otlp_turn::Setup {
        protocol: "http/json",
        capture_content: false,
    })
    .await;
}
