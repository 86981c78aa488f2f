//! The engine's spans, after the OpenTelemetry GenAI semantic conventions: `chat {model}` per
//! model call and `execute_tool {name}` per tool call, and the turn's figures the engine alone
//! knows (tool calls, time to first token, the model that answered), recorded on the turn's
//! span. Message contents, tool arguments and results are recorded only when
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`.

mod messages;

use std::sync::OnceLock;

use tracing::field::Empty;

use crate::clock::now_ms;
use crate::model::{FinishReason, ModelEvent, ModelMessage, Usage};

/// The environment variable that lets spans carry message contents.
pub const CAPTURE_CONTENT_VAR: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// Whether spans may carry message contents (read once).
fn capture_content() -> bool {
    static CAPTURE: OnceLock<bool> = OnceLock::new();
    *CAPTURE.get_or_init(|| {
        std::env::var(CAPTURE_CONTENT_VAR)
            .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"))
    })
}

/// A count as a span attribute. OpenTelemetry's integers are `i64`, and the tracing bridge
/// writes a `u64` as text: a backend could not add up token counts written so.
pub(crate) fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What the engine measures of a turn for its span.
#[derive(Debug, Clone)]
pub(super) struct TurnFigures {
    started_ms: u64,
    call_started_ms: u64,
    call_answered: bool,
    first_token_ms: Option<u64>,
    tool_calls: u64,
    /// The model the provider said answered the latest call.
    response_model: Option<String>,
}

impl Default for TurnFigures {
    fn default() -> Self {
        let now = now_ms();
        TurnFigures {
            started_ms: now,
            call_started_ms: now,
            call_answered: false,
            first_token_ms: None,
            tool_calls: 0,
            response_model: None,
        }
    }
}

impl TurnFigures {
    /// A model call starts.
    pub(super) fn call_started(&mut self) {
        self.call_started_ms = now_ms();
        self.call_answered = false;
    }

    /// The model streamed something: the first time in a call, its time to first token goes on
    /// the call's span (the current one).
    pub(super) fn token(&mut self) {
        if self.call_answered {
            return;
        }
        self.call_answered = true;
        let now = now_ms();
        tracing::Span::current().record(
            "chatfn.time_to_first_token_ms",
            count(now.saturating_sub(self.call_started_ms)),
        );
        self.first_token_ms
            .get_or_insert(now.saturating_sub(self.started_ms));
    }

    /// The provider says `model` answered the call: on the call's span (the current one) and,
    /// when the turn ends, on the turn's.
    pub(super) fn response_model(&mut self, model: String) {
        tracing::Span::current().record("gen_ai.response.model", model.as_str());
        self.response_model = Some(model);
    }

    /// `count` tool calls run.
    pub(super) fn tools_run(&mut self, count: usize) {
        self.tool_calls += count as u64;
    }

    /// Records the figures on the turn's span (the current one when the turn ends).
    pub(super) fn record(&self) {
        let span = tracing::Span::current();
        span.record("chatfn.turn.tool_calls", count(self.tool_calls));
        if let Some(first_token) = self.first_token_ms {
            span.record("chatfn.turn.time_to_first_token_ms", count(first_token));
        }
        if let Some(model) = &self.response_model {
            span.record("gen_ai.response.model", model.as_str());
        }
    }
}

/// The span of one model call of `model_id` (`provider:model`) with `messages`.
pub(super) fn chat(model_id: &str, messages: &[ModelMessage]) -> tracing::Span {
    let (provider, model) = model_id.split_once(':').unwrap_or((model_id, model_id));
    let span = tracing::info_span!(
        target: "chatfn::model",
        "chat",
        otel.name = format_args!("chat {model}"),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        chatfn.time_to_first_token_ms = Empty,
        error.type = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
    );
    if capture_content() {
        let messages = messages::input(messages).to_string();
        span.record("gen_ai.input.messages", messages.as_str());
    }
    span
}

/// What a model call answers, for its span's `gen_ai.output.messages`: gathered only when
/// message contents are captured.
#[derive(Debug)]
pub(super) struct CallOutput(Option<messages::Output>);

impl CallOutput {
    /// Nothing answered yet.
    pub(super) fn new() -> Self {
        CallOutput(capture_content().then(messages::Output::default))
    }

    /// Takes in one event of the call.
    pub(super) fn observe(&mut self, event: &ModelEvent) {
        if let Some(output) = &mut self.0 {
            output.observe(event);
        }
    }
}

/// Records the end of a model call on its span (the current one), with what it answered.
pub(super) fn call_finished(reason: FinishReason, usage: Usage, output: &mut CallOutput) {
    let span = tracing::Span::current();
    if let Some(output) = &mut output.0 {
        let messages = output.finish(reason).to_string();
        span.record("gen_ai.output.messages", messages.as_str());
    }
    let reason = serde_json::to_value(reason)
        .ok()
        .and_then(|reason| reason.as_str().map(str::to_owned))
        .unwrap_or_default();
    span.record("gen_ai.response.finish_reasons", reason.as_str());
    span.record("gen_ai.usage.input_tokens", count(usage.input_tokens));
    span.record("gen_ai.usage.output_tokens", count(usage.output_tokens));
}

/// Records on `span` that it failed, with `kind` as its error type.
pub(super) fn failed(span: &tracing::Span, kind: &'static str) {
    span.record("error.type", kind);
}

/// The span of the tool call `call_id` of tool `name` with `input`.
pub(super) fn execute_tool(name: &str, call_id: &str, input: &serde_json::Value) -> tracing::Span {
    let span = tracing::info_span!(
        target: "chatfn::tool",
        "execute_tool",
        otel.name = format_args!("execute_tool {name}"),
        otel.kind = "internal",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        gen_ai.tool.call.id = call_id,
        gen_ai.tool.call.arguments = Empty,
        gen_ai.tool.call.result = Empty,
        error.type = Empty,
    );
    if capture_content() {
        span.record("gen_ai.tool.call.arguments", input.to_string().as_str());
    }
    span
}

/// Records a tool's result on its span (the current one): its output when contents are
/// captured, the error type when it failed.
pub(super) fn tool_finished(output: Result<&serde_json::Value, &str>) {
    let span = tracing::Span::current();
    match output {
        Ok(output) if capture_content() => {
            span.record("gen_ai.tool.call.result", output.to_string().as_str());
        }
        Ok(_) => {}
        Err(error) => {
            span.record("error.type", "tool_error");
            if capture_content() {
                span.record("gen_ai.tool.call.result", error);
            }
        }
    }
}
