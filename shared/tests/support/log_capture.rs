//! Everything the process logs through `tracing`, at every level, as text: a test can then assert
//! that a string (a secret) never reached a log. Built on `tracing`'s own `Subscriber` trait so it
//! needs no feature of chatfn: the hosts install `tracing-subscriber`, which prints the same
//! messages and fields this records.
//!
//! The subscriber is the process's global default, so it also sees what spawned tasks log on
//! other threads. Every test of the binary adds to the one buffer.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static TEXT: Mutex<String> = Mutex::new(String::new());
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Installs the capture (once per process). `false` if another global subscriber was there first,
/// in which case nothing is captured and a test must not trust an absence.
pub fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        tracing::subscriber::set_global_default(Capture {
            next_span: AtomicU64::new(1),
        })
        .is_ok()
    })
}

/// The text logged so far.
pub fn captured() -> String {
    TEXT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

struct Capture {
    next_span: AtomicU64,
}

/// Writes `name=value` for every field, with `Debug` for values that are not strings, as the
/// `fmt` layer does.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole chain: a secret may hide in a source's message.
        let _ = write!(self.0, " {}={value}", field.name());
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(self.0, ": {cause}");
            source = cause.source();
        }
    }
}

fn append(line: impl FnOnce(&mut String)) {
    let mut text = TEXT.lock().unwrap_or_else(|p| p.into_inner());
    line(&mut text);
    text.push('\n');
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        append(|text| {
            let _ = write!(text, "span {}:", span.metadata().name());
            span.record(&mut Fields(text));
        });
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        append(|text| {
            text.push_str("span record:");
            values.record(&mut Fields(text));
        });
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        append(|text| {
            let metadata = event.metadata();
            let _ = write!(text, "{} {}:", metadata.level(), metadata.target());
            event.record(&mut Fields(text));
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
