//! The spans of a turn with a tool call reach an OTLP/HTTP receiver as `http/protobuf` (the
//! default protocol), decoded with the OTLP protobuf messages, with their names, attributes and
//! parentage; with content capture on, the model calls carry their input and output messages in
//! the GenAI semantic conventions' shape.

#[path = "support/otlp_turn.rs"]
mod otlp_turn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_with_a_tool_call_is_exported_as_one_trace_in_protobuf() {
    otlp_turn::a_turn_with_a_tool_call_is_exported_as_one_trace(otlp_turn::Setup {
        protocol: "http/protobuf",
        capture_content: true,
    })
    .await;
}
