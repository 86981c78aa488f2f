//! A layer that writes the metric line of every turn as its span closes, from the figures the
//! core records on the turn's span (see `docs/observability.md`); and one that counts the turn
//! spans still open, so a host can wait for them to close before it exports.

use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Subscriber, span};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::emf::{self, Dimensions, TurnFigures};

/// The name of the core's turn span.
const TURN_SPAN: &str = "turn";

/// Writes one EMF line per turn span that closes.
pub struct TurnMetricsLayer {
    dimensions: Dimensions,
    write: Box<dyn Fn(&str) + Send + Sync>,
}

impl TurnMetricsLayer {
    /// A layer giving each turn's line to `write`.
    pub fn new(dimensions: Dimensions, write: impl Fn(&str) + Send + Sync + 'static) -> Self {
        TurnMetricsLayer {
            dimensions,
            write: Box::new(write),
        }
    }
}

/// A turn's figures while its span is open.
struct OpenTurn {
    started_ms: u64,
    figures: TurnFigures,
}

fn is_turn(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.name() == TURN_SPAN && metadata.target().starts_with("chatfn")
}

impl<S> tracing_subscriber::Layer<S> for TurnMetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        if !is_turn(attributes.metadata()) {
            return;
        }
        let Some(span) = context.span(id) else {
            return;
        };
        let mut turn = OpenTurn {
            started_ms: chatfn::clock::now_ms(),
            figures: TurnFigures::default(),
        };
        attributes.record(&mut FigureFields(&mut turn.figures));
        span.extensions_mut().insert(turn);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, context: Context<'_, S>) {
        let Some(span) = context.span(id) else {
            return;
        };
        if let Some(turn) = span.extensions_mut().get_mut::<OpenTurn>() {
            values.record(&mut FigureFields(&mut turn.figures));
        }
    }

    fn on_close(&self, id: span::Id, context: Context<'_, S>) {
        let Some(span) = context.span(&id) else {
            return;
        };
        let Some(mut turn) = span.extensions_mut().remove::<OpenTurn>() else {
            return;
        };
        let now = chatfn::clock::now_ms();
        turn.figures.duration_ms = now.saturating_sub(turn.started_ms) as f64;
        (self.write)(&emf::encode(&self.dimensions, now, &turn.figures));
    }
}

/// Turn spans open in the process.
static OPEN_TURNS: AtomicUsize = AtomicUsize::new(0);

/// How many turn spans are open in the process. A turn's span closes when its task returns, a
/// moment after the turn has let its readers go.
pub fn open_turn_spans() -> usize {
    OPEN_TURNS.load(Ordering::Acquire)
}

/// Counts the open turn spans (see [`open_turn_spans`]).
pub(crate) struct OpenTurnsLayer;

impl<S> tracing_subscriber::Layer<S> for OpenTurnsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, _id: &Id, _context: Context<'_, S>) {
        if is_turn(attributes.metadata()) {
            OPEN_TURNS.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn on_close(&self, id: span::Id, context: Context<'_, S>) {
        if context.metadata(&id).is_some_and(is_turn) {
            OPEN_TURNS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Reads the figures among a turn span's fields.
struct FigureFields<'a>(&'a mut TurnFigures);

impl Visit for FigureFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "gen_ai.conversation.id" => self.0.chat_id = Some(value.to_owned()),
            "gen_ai.request.model" => self.0.model = Some(value.to_owned()),
            "error.type" => self.0.errors = 1,
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "gen_ai.usage.input_tokens" => self.0.input_tokens = value,
            "gen_ai.usage.output_tokens" => self.0.output_tokens = value,
            "chatfn.turn.tool_calls" => self.0.tool_calls = value,
            "chatfn.turn.time_to_first_token_ms" => {
                self.0.time_to_first_token_ms = Some(value as f64)
            }
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "chatfn.turn.store_write_units" {
            self.0.store_write_units = Some(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, u64::try_from(value).unwrap_or(0));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}
