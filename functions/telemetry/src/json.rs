//! JSON log lines: one object per event, with the fields a log query needs at fixed places.
//!
//! A line holds `time` (RFC 3339, milliseconds), `level`, `target`, `message`, the event's own
//! fields, and from the spans the event happened in (outermost first) the few that say which
//! request it belongs to, under short names: `chat_id` (`gen_ai.conversation.id`), `turn`
//! (`chatfn.turn.input_seq`), `model` (`gen_ai.request.model`), `tool` (`gen_ai.tool.name`). An
//! event field `chat` is written as `chat_id` too. Fields named like secrets (`authorization`,
//! `api_key`, `token`, …) are redacted, and so are bearer credentials and JWTs inside any text.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Span fields carried into log lines, and their names there.
const SPAN_FIELDS: [(&str, &str); 5] = [
    ("gen_ai.conversation.id", "chat_id"),
    ("chatfn.turn.input_seq", "turn"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.tool.name", "tool"),
    ("http.request.method", "method"),
];

/// Keys of the line itself, which event fields never overwrite.
const RESERVED: [&str; 4] = ["time", "level", "target", "message"];

/// The event formatter of JSON mode (span fields recorded with `JsonFields`).
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("time".into(), now().into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        if let Some(scope) = context.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) else {
                    continue;
                };
                for (name, short) in SPAN_FIELDS {
                    if let Some(value) = fields.get(name) {
                        line.insert(short.to_owned(), value.clone());
                    }
                }
            }
        }
        event.record(&mut EventFields(&mut line));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// A start-up line written to stdout in JSON mode.
pub fn announcement(message: &str) -> Value {
    serde_json::json!({
        "time": now(),
        "level": "INFO",
        "target": "chatfn",
        "message": redact_text(message),
    })
}

fn now() -> String {
    chatfn::clock::iso8601(chatfn::clock::now_ms())
}

/// Collects an event's fields into the line, redacted.
struct EventFields<'a>(&'a mut Map<String, Value>);

impl EventFields<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "chat" => "chat_id".to_owned(),
            "message" => "message".to_owned(),
            name if RESERVED.contains(&name) => format!("field.{name}"),
            name => name.to_owned(),
        };
        let value = if is_secret_name(&name) {
            Value::String(REDACTED.to_owned())
        } else {
            match value {
                Value::String(text) => Value::String(redact_text(&text)),
                other => other,
            }
        };
        self.0.insert(name, value);
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, format!("{value:?}").into());
    }
}

/// Whether a field's name says its value is a credential.
pub fn is_secret_name(name: &str) -> bool {
    let last = name
        .rsplit(['.', '/'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase()
        .replace('-', "_");
    matches!(
        last.as_str(),
        "authorization"
            | "proxy_authorization"
            | "cookie"
            | "set_cookie"
            | "password"
            | "secret"
            | "secret_key"
            | "api_key"
            | "apikey"
            | "x_api_key"
            | "token"
            | "access_token"
            | "id_token"
            | "refresh_token"
            | "session_token"
    )
}

const BEARER: &str = "bearer ";

/// `text` with bearer credentials and JWTs replaced by [`REDACTED`].
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((start, keep, end)) = next_secret(rest) {
        out.push_str(&rest[..start + keep]);
        out.push_str(REDACTED);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The next credential in `text`: where it starts, how much of it is a kept prefix (`Bearer `),
/// and where it ends.
fn next_secret(text: &str) -> Option<(usize, usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let token_end = |from: usize| {
        text[from..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-._~+/=".contains(c)))
            .map_or(text.len(), |end| from + end)
    };
    let scheme = lower.find(BEARER).and_then(|at| {
        let from = at + BEARER.len();
        let end = token_end(from);
        (end > from).then_some((at, BEARER.len(), end))
    });
    // A JWT: three base64url parts, the header starting `{"` (`eyJ`).
    let jwt = lower.find("eyj").and_then(|at| {
        let end = token_end(at);
        (text[at..end].matches('.').count() >= 2).then_some((at, 0, end))
    });
    match (scheme, jwt) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_text_are_redacted() {
        assert_eq!(
            redact_text("sent Authorization: Bearer sk-abc.def to the model"),
            "sent Authorization: Bearer [redacted] to the model"
        );
        assert_eq!(
            redact_text("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln is bad"),
            "token [redacted] is bad"
        );
        assert_eq!(redact_text("a bearer. of news"), "a bearer. of news");
        assert_eq!(redact_text("input_tokens=3"), "input_tokens=3");
    }

    #[test]
    fn fields_named_like_credentials_are_secret() {
        for name in [
            "authorization",
            "http.request.header.authorization",
            "api_key",
            "x-api-key",
            "token",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["gen_ai.usage.input_tokens", "chat_id", "model"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
