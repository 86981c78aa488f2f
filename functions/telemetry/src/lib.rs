//! chatfn's telemetry for its hosts: logs, traces and metrics, set up once at start-up.
//!
//! - Logs: `CHATFN_LOG_FORMAT=json|text` ([`LogFormat`]). In JSON mode every line is one JSON
//!   object with `time`, `level`, `target`, `message`, the event's fields and the request's span
//!   fields flattened at the root (`chat_id`, `turn`, `model`, `tool`), secrets redacted
//!   ([`json`]). `RUST_LOG` filters as usual.
//! - Traces: with the `otlp` feature, the spans of the core go to an OTLP/HTTP endpoint when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and nowhere,
//!   at no cost, when it is not ([`otlp`]). [`RequestSpans`] opens the request's span, the
//!   parent of the turns it starts, continuing the caller's W3C `traceparent`.
//! - Metrics: CloudWatch Embedded Metric Format lines, one per turn, when the host asks for them
//!   (Lambda) ([`emf`]).

pub mod emf;
pub mod json;
#[cfg(feature = "otlp")]
pub mod otlp;
mod request;
mod turn_metrics;

use std::io::IsTerminal;

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

pub use request::{RequestSpans, RequestSpansLayer};
pub use turn_metrics::{TurnMetricsLayer, open_turn_spans};

/// The environment variable choosing the log format.
pub const LOG_FORMAT_VAR: &str = "CHATFN_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log stores that query fields (CloudWatch, Workers Logs).
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

impl LogFormat {
    /// The format `CHATFN_LOG_FORMAT` names (`json` or `text`, any case), else `default`.
    pub fn from_env(default: LogFormat) -> LogFormat {
        Self::parse(std::env::var(LOG_FORMAT_VAR).ok().as_deref()).unwrap_or(default)
    }

    /// The format `value` names, if it names one.
    pub fn parse(value: Option<&str>) -> Option<LogFormat> {
        match value?.trim().to_ascii_lowercase().as_str() {
            "json" => Some(LogFormat::Json),
            "text" => Some(LogFormat::Text),
            _ => None,
        }
    }
}

/// What a host wants from [`init`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The log format when `CHATFN_LOG_FORMAT` does not name one.
    pub default_format: LogFormat,
    /// Write one Embedded Metric Format line per turn to stdout (Lambda).
    pub emf: Option<emf::Dimensions>,
}

/// The telemetry of the process, as [`init`] set it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Telemetry {
    /// The log format in use.
    pub format: LogFormat,
    /// Whether spans are exported over OTLP.
    pub exporting: bool,
}

impl Telemetry {
    /// Writes a start-up line meant for people and scripts (an address, where a key is kept) to
    /// stdout: as it is in text mode, as a JSON log line in JSON mode.
    pub fn announce(&self, message: &str) {
        match self.format {
            LogFormat::Text => println!("{message}"),
            LogFormat::Json => println!("{}", json::announcement(message)),
        }
    }
}

/// The `RUST_LOG` filter, or everything at `INFO` and above.
fn env_filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// The log layer of `format`, writing to `writer`.
pub fn log_layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json::FlatJson)
            .with_writer(writer)
            .boxed(),
    }
}

/// Sets up the process's logs, traces and metrics as `settings` and the environment say, once,
/// before anything logs. In JSON mode a panic is logged as a JSON line too.
pub fn init(settings: Settings) -> Telemetry {
    let format = LogFormat::from_env(settings.default_format);
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let logs = log_layer(format, std::io::stderr, ansi).with_filter(env_filter());
    let metrics = settings
        .emf
        .map(|dimensions| TurnMetricsLayer::new(dimensions, |line: &str| println!("{line}")));
    #[cfg(feature = "otlp")]
    let (traces, exporting) = match otlp::layer() {
        Ok(Some(layer)) => (Some(layer), true),
        Ok(None) => (None, false),
        Err(error) => {
            eprintln!("chatfn: OpenTelemetry traces are off: {error}");
            (None, false)
        }
    };
    #[cfg(not(feature = "otlp"))]
    let (traces, exporting) = (None::<tracing_subscriber::layer::Identity>, false);
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(metrics)
        .with(turn_metrics::OpenTurnsLayer)
        .with(traces)
        .try_init();
    if installed.is_ok() && format == LogFormat::Json {
        std::panic::set_hook(Box::new(|panic| {
            tracing::error!(target: "panic", "{panic}");
        }));
    }
    Telemetry { format, exporting }
}

/// Sets up JSON logs, each line handed to `write` (a host with no stderr: the Worker's
/// console), once; later calls do nothing. `RUST_LOG` does not reach such hosts: `INFO` and up.
pub fn init_json_lines(write: fn(&str)) {
    let layer = log_layer(LogFormat::Json, move || LineWriter::new(write), false)
        .with_filter(Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Collects one formatted line and hands it over when dropped.
struct LineWriter {
    line: Vec<u8>,
    write: fn(&str),
}

impl LineWriter {
    fn new(write: fn(&str)) -> Self {
        LineWriter {
            line: Vec::new(),
            write,
        }
    }
}

impl std::io::Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        let line = line.trim_end();
        if !line.is_empty() {
            (self.write)(line);
        }
    }
}

/// Whether spans are exported (an OTLP endpoint is configured and the exporter was built).
pub fn exporting() -> bool {
    #[cfg(feature = "otlp")]
    return otlp::exporting();
    #[cfg(not(feature = "otlp"))]
    false
}

/// Exports the spans ended so far and waits for the export: on Lambda before an invocation ends,
/// since a frozen function exports nothing. Blocking; nothing to do when nothing is exported.
pub fn flush() {
    #[cfg(feature = "otlp")]
    otlp::flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_json_or_text_whatever_the_case() {
        assert_eq!(LogFormat::parse(Some("JSON")), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some(" text ")), Some(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("yaml")), None);
        assert_eq!(LogFormat::parse(None), None);
    }

    /// Captures what a layer writes, line by line.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().map(|bytes| bytes.clone()).unwrap_or_default();
            String::from_utf8(bytes)
                .expect("UTF-8 logs")
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    #[test]
    fn json_lines_carry_the_request_fields_flat_and_no_secrets() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(log_layer(
            LogFormat::Json,
            move || writer.clone(),
            false,
        ));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("starting");
            let request = tracing::info_span!("request", http.request.method = "POST");
            let _request = request.enter();
            let turn = tracing::info_span!(
                target: "chatfn::turn",
                "turn",
                gen_ai.conversation.id = "chat-7",
                chatfn.turn.input_seq = 3u64,
                gen_ai.request.model = "openai:gpt-4o",
                gen_ai.usage.input_tokens = tracing::field::Empty,
            );
            let _turn = turn.enter();
            turn.record("gen_ai.usage.input_tokens", 12u64);
            tracing::warn!(
                authorization = "Bearer sk-live-123",
                steps = 2,
                "model said: Bearer sk-live-456"
            );
        });
        let lines = captured.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "starting");
        assert_eq!(lines[0]["level"], "INFO");
        assert!(lines[0].get("chat_id").is_none());
        let line = &lines[1];
        assert!(
            line["time"]
                .as_str()
                .is_some_and(|time| time.ends_with('Z'))
        );
        assert_eq!(line["level"], "WARN");
        assert!(line["target"].is_string());
        assert_eq!(line["chat_id"], "chat-7");
        assert_eq!(line["turn"], 3);
        assert_eq!(line["model"], "openai:gpt-4o");
        assert_eq!(line["method"], "POST");
        assert_eq!(line["steps"], 2);
        assert_eq!(line["authorization"], json::REDACTED);
        assert_eq!(line["message"], "model said: Bearer [redacted]");
        assert!(!line.to_string().contains("sk-live"));
    }

    #[test]
    fn a_closed_turn_span_writes_one_emf_line() {
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = written.clone();
        let dimensions = emf::Dimensions {
            namespace: "chatfn".into(),
            function: "agent-turn".into(),
        };
        let subscriber = tracing_subscriber::registry().with(TurnMetricsLayer::new(
            dimensions,
            move |line: &str| {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line.to_owned());
                }
            },
        ));
        tracing::subscriber::with_default(subscriber, || {
            let turn = tracing::info_span!(
                target: "chatfn::turn",
                "turn",
                gen_ai.conversation.id = "chat-7",
                gen_ai.request.model = "scripted:test",
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
                chatfn.turn.tool_calls = tracing::field::Empty,
                chatfn.turn.time_to_first_token_ms = tracing::field::Empty,
                chatfn.turn.store_write_units = tracing::field::Empty,
            );
            turn.record("gen_ai.usage.input_tokens", 10u64);
            turn.record("gen_ai.usage.output_tokens", 4u64);
            turn.record("chatfn.turn.tool_calls", 1u64);
            turn.record("chatfn.turn.time_to_first_token_ms", 5u64);
            turn.record("chatfn.turn.store_write_units", 9.0f64);
            drop(turn);
            let _other = tracing::info_span!("request").entered();
        });
        let lines = written
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("JSON");
        emf::tests::assert_emf(&line);
        assert_eq!(line["model"], "scripted:test");
        assert_eq!(line["function"], "agent-turn");
        assert_eq!(line["InputTokens"], 10);
        assert_eq!(line["OutputTokens"], 4);
        assert_eq!(line["ToolCalls"], 1);
        assert_eq!(line["TimeToFirstToken"], 5.0);
        assert_eq!(line["TurnErrors"], 0);
        assert_eq!(line["StoreWriteUnits"], 9.0);
    }
}
