//! The spans of a turn, named and attributed after the OpenTelemetry GenAI semantic
//! conventions: `invoke_agent` for the turn (span name `turn`, target `chatfn::turn`), and
//! `recover_turn` for the closing of a turn whose executor died. The figures recorded on the
//! turn's span (tokens, tool calls, time to first token, error) are also what a host's metrics
//! read from it (`docs/observability.md`).

use tracing::field::Empty;

use crate::agent::TurnOutcome;
use crate::agent::span_count as count;
use crate::store::write_units::WriteUnits;

/// The provider and the model of a model id (`provider:model`; an id without a provider is
/// both).
pub(crate) fn provider_and_model(id: &str) -> (&str, &str) {
    id.split_once(':').unwrap_or((id, id))
}

/// The span of the turn answering input `input_seq` of `chat_id` with `model_id`.
pub(super) fn turn(chat_id: &str, input_seq: u64, model_id: &str) -> tracing::Span {
    let (provider, model) = provider_and_model(model_id);
    tracing::info_span!(
        target: "chatfn::turn",
        "turn",
        otel.name = "invoke_agent",
        otel.kind = "internal",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.response.model = Empty,
        gen_ai.conversation.id = chat_id,
        chatfn.turn.input_seq = count(input_seq),
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        chatfn.turn.steps = Empty,
        chatfn.turn.stopped = Empty,
        chatfn.turn.tool_calls = Empty,
        chatfn.turn.time_to_first_token_ms = Empty,
        chatfn.turn.store_write_units = Empty,
        error.type = Empty,
    )
}

/// Records the store's write units for the turn on its span, when the store counts them.
pub(super) fn record_write_units(span: &tracing::Span, units: &WriteUnits) {
    if let Some(total) = units.total() {
        span.record("chatfn.turn.store_write_units", total);
    }
}

/// Records how the turn ended on its span.
pub(super) fn record_outcome(span: &tracing::Span, outcome: &TurnOutcome) {
    let reason = serde_json::to_value(outcome.finish_reason)
        .ok()
        .and_then(|reason| reason.as_str().map(str::to_owned))
        .unwrap_or_default();
    span.record("gen_ai.response.finish_reasons", reason.as_str());
    span.record(
        "gen_ai.usage.input_tokens",
        count(outcome.usage.input_tokens),
    );
    span.record(
        "gen_ai.usage.output_tokens",
        count(outcome.usage.output_tokens),
    );
    span.record("chatfn.turn.steps", count(outcome.steps as u64));
    span.record("chatfn.turn.stopped", outcome.stopped);
    if outcome.error.is_some() {
        span.record("error.type", "turn_error");
    }
}

/// The span of recovering the turn of `chat_id` whose lease expired.
pub(super) fn recovery(chat_id: &str, input_seq: Option<u64>) -> tracing::Span {
    tracing::info_span!(
        target: "chatfn::turn",
        "recover_turn",
        otel.kind = "internal",
        gen_ai.conversation.id = chat_id,
        chatfn.turn.input_seq = input_seq.map(count),
        chatfn.turn.recovered = true,
    )
}
