//! A generic Server-Sent Events parser for provider streams (sans-IO).
//!
//! Follows the WHATWG "event stream interpretation" algorithm: lines end at `\n`, `\r\n` or `\r`;
//! `data` lines are joined with `\n`; comment lines (leading `:`) are ignored; one space after
//! the field colon is stripped; a blank line dispatches the event; a leading byte order mark is
//! dropped. Bytes may be pushed in pieces of any size, split anywhere — inside a `\r\n` pair or
//! inside a multi-byte UTF-8 character — and the events come out the same.
//!
//! One deliberate departure from a browser: [`SseParser::finish`] dispatches an event whose
//! final blank line never came. A browser discards it because it will reconnect; a provider
//! stream that ended is over, and some servers omit the last blank line after their final event.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event ID in effect when this event was dispatched (it persists across events, as
    /// in the spec); `None` when it is empty.
    pub id: Option<String>,
}

/// Incremental parser: feed it bytes as they arrive, take the events it completes.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being received. Kept as bytes, not text, so a UTF-8 character split
    /// across pushes is decoded only once whole (line terminators are ASCII, so a complete line
    /// never ends inside a character).
    line: Vec<u8>,
    /// The previous push ended with `\r`; a `\n` starting the next push belongs to it.
    after_cr: bool,
    /// No line has been processed yet, so a byte order mark may still be at the front.
    at_stream_start: bool,
    data: String,
    /// Whether a `data` field was seen: an event with `data:` (empty) still dispatches.
    has_data: bool,
    event: Option<String>,
    last_event_id: String,
    retry: Option<u64>,
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseParser {
    /// A parser at the start of a stream, where a byte order mark may come first.
    pub fn new() -> Self {
        SseParser {
            at_stream_start: true,
            ..SseParser::default()
        }
    }

    /// Feeds the next bytes of the stream; returns the events they complete, in order.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<SseEvent> {
        let mut events = Vec::new();
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&bytes[..end]);
            let terminator = bytes[end];
            bytes = &bytes[end + 1..];
            if terminator == b'\r' {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    // The matching `\n`, if any, is in the next push.
                    None => self.after_cr = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.process_line(&line) {
                events.push(event);
            }
            // Reuse the allocation for the next line.
            self.line = line;
            self.line.clear();
        }
        self.line.extend_from_slice(bytes);
        events
    }

    /// Ends the stream: processes an unterminated last line and dispatches a pending event.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.after_cr = false;
        let line = std::mem::take(&mut self.line);
        let from_line = if line.is_empty() {
            None
        } else {
            self.process_line(&line)
        };
        from_line.or_else(|| self.dispatch())
    }

    /// The reconnection time the server asked for with `retry:`, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    fn process_line(&mut self, mut line: &[u8]) -> Option<SseEvent> {
        if self.at_stream_start {
            self.at_stream_start = false;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = Some(value.into_owned()),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            // An id with NUL is ignored, as the spec says.
            b"id" if !value.contains('\0') => self.last_event_id = value.into_owned(),
            b"retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Digits only, so the only failure is overflow: ignore it like a bad value.
                self.retry = value.parse().ok().or(self.retry);
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take().filter(|name| !name.is_empty());
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let id = (!self.last_event_id.is_empty()).then(|| self.last_event_id.clone());
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        }
    }

    fn parse_whole(input: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = parser.push(input);
        events.extend(parser.finish());
        events
    }

    /// Parses `input` pushed whole, byte by byte, and split at every pair of offsets, and checks
    /// every way gives `expected`.
    fn assert_parses(input: &[u8], expected: &[SseEvent]) {
        assert_eq!(parse_whole(input), expected, "pushed whole");

        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for byte in input {
            events.extend(parser.push(std::slice::from_ref(byte)));
        }
        events.extend(parser.finish());
        assert_eq!(events, expected, "pushed byte by byte");

        for first in 0..=input.len() {
            for second in first..=input.len() {
                let mut parser = SseParser::new();
                let mut events = parser.push(&input[..first]);
                events.extend(parser.push(&input[first..second]));
                events.extend(parser.push(&input[second..]));
                events.extend(parser.finish());
                assert_eq!(events, expected, "split at {first} and {second}");
            }
        }
    }

    #[test]
    fn single_event() {
        assert_parses(b"data: hello\n\n", &[data("hello")]);
    }

    #[test]
    fn several_events_with_every_line_ending() {
        assert_parses(
            b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\n",
            &[data("a"), data("b"), data("c"), data("d")],
        );
    }

    #[test]
    fn crlf_split_across_pushes_is_one_line_ending() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: a\r"), vec![]);
        // If this `\n` started a new (blank) line, it would dispatch `a` here.
        assert_eq!(parser.push(b"\ndata: b\r"), vec![]);
        assert_eq!(parser.push(b"\n\r"), vec![data("a\nb")]);
        assert_eq!(parser.push(b"\n"), vec![]);
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn lone_cr_then_cr_is_a_blank_line() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: a\r"), vec![]);
        assert_eq!(parser.push(b"\r"), vec![data("a")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_parses(
            b"data: first\ndata:second\ndata:  third\n\n",
            &[data("first\nsecond\n third")],
        );
    }

    #[test]
    fn empty_data_lines_count() {
        assert_parses(b"data\n\ndata:\ndata:\n\n", &[data(""), data("\n")]);
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_parses(
            b": OPENROUTER PROCESSING\n\n:keep-alive\ndata: x\nfoo: bar\n: mid\n\n",
            &[data("x")],
        );
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        assert_parses(b"\n\n\r\n", &[]);
        // An event type alone is reset, not carried into the next event.
        assert_parses(b"event: ping\n\ndata: x\n\n", &[data("x")]);
    }

    #[test]
    fn event_type_and_id() {
        let expected = [
            SseEvent {
                event: Some("error".into()),
                data: "{\"a\":1}".into(),
                id: Some("7".into()),
            },
            // The last event ID persists; the event type does not.
            SseEvent {
                event: None,
                data: "next".into(),
                id: Some("7".into()),
            },
            // An empty id resets it.
            data("last"),
        ];
        assert_parses(
            b"event: error\nid: 7\ndata: {\"a\":1}\n\ndata: next\n\nid\ndata: last\n\n",
            &expected,
        );
    }

    #[test]
    fn id_with_nul_is_ignored() {
        assert_parses(
            b"id: 1\n\nid: a\0b\ndata: x\n\n",
            &[SseEvent {
                id: Some("1".into()),
                ..data("x")
            }],
        );
    }

    #[test]
    fn only_one_space_after_the_colon_is_stripped() {
        assert_parses(
            b"data:no space\n\ndata:  two spaces\n\ndata:\ttab\n\n",
            &[data("no space"), data(" two spaces"), data("\ttab")],
        );
    }

    #[test]
    fn field_names_are_case_sensitive_and_exact() {
        assert_parses(b"Data: x\ndata : y\ndata: z\n\n", &[data("z")]);
    }

    #[test]
    fn colons_in_the_value_are_kept() {
        assert_parses(b"data: a: b:c\n\n", &[data("a: b:c")]);
    }

    #[test]
    fn byte_order_mark_at_stream_start_is_stripped() {
        let mut input = BOM.to_vec();
        input.extend_from_slice(b"data: x\n\n");
        assert_parses(&input, &[data("x")]);

        // Only the first one: a second BOM makes the field name unknown.
        let mut input = BOM.to_vec();
        input.extend_from_slice(BOM);
        input.extend_from_slice(b"data: x\n\ndata: y\n\n");
        assert_parses(&input, &[data("y")]);
    }

    #[test]
    fn byte_order_mark_later_in_the_stream_is_kept() {
        let mut input = b"data: a\n\ndata: ".to_vec();
        input.extend_from_slice(BOM);
        input.extend_from_slice(b"b\n\n");
        assert_parses(&input, &[data("a"), data("\u{feff}b")]);
    }

    #[test]
    fn multi_byte_utf8_split_anywhere() {
        assert_parses(
            "data: héllo → 世界 🦀\n\n".as_bytes(),
            &[data("héllo → 世界 🦀")],
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_parses(
            b"data: a\xffb\n\ndata: ok\n\n",
            &[data("a\u{fffd}b"), data("ok")],
        );
    }

    #[test]
    fn retry_is_recorded_when_numeric() {
        let mut parser = SseParser::new();
        parser.push(b"retry: 1500\n\n");
        assert_eq!(parser.retry(), Some(1500));
        parser.push(b"retry: soon\n\nretry: 99999999999999999999999\n\n");
        assert_eq!(parser.retry(), Some(1500));
    }

    #[test]
    fn finish_dispatches_an_unterminated_event() {
        assert_parses(b"data: a\n\ndata: [DONE]", &[data("a"), data("[DONE]")]);
        assert_parses(b"data: a\n\ndata: [DONE]\n", &[data("a"), data("[DONE]")]);
        assert_parses(b"data: a\n\ndata: [DONE]\r", &[data("a"), data("[DONE]")]);
    }

    #[test]
    fn finish_after_complete_stream_yields_nothing() {
        let mut parser = SseParser::new();
        assert_eq!(parser.push(b"data: a\n\n"), vec![data("a")]);
        assert_eq!(parser.finish(), None);
        assert_eq!(parser.finish(), None);
    }

    #[test]
    fn openai_style_stream() {
        let input = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                      : keep-alive\n\n\
                      data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
                      data: [DONE]\n\n";
        assert_parses(
            input,
            &[
                data("{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}"),
                data("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}"),
                data("[DONE]"),
            ],
        );
    }
}
