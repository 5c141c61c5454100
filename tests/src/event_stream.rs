//! The event-stream format exactly as the WHATWG HTML standard defines it: the parser every
//! check reads a stream with.
//!
//! The rules are those of §9.2.5 "Parsing an event stream" and §9.2.6 "Interpreting an event
//! stream" (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>).
//! They are written out here rather than taken from a crate because they are the spec under
//! test: a check that reads a stream more leniently than a browser passes a server that
//! browsers misread. `eventsource-stream` 0.2, which the suite used before, takes `retry: +5`
//! for 5 ms (a browser ignores it), ends a line at a lone CR only once the next chunk arrives
//! (so a CR-only server's events look late), and gives up on the whole stream at the first
//! byte that is not UTF-8 (a browser reads U+FFFD and goes on).
//!
//! [`Lines`] splits bytes into lines as they arrive, [`Parser`] interprets those lines into
//! the events a browser dispatches, and records each line a browser ignores or misreads
//! ([`Flaw`]): what the framing check reports.

use std::time::Duration;

/// The byte order mark a stream may start with (U+FEFF in UTF-8), skipped once at the start.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line of an event stream, classified as §9.2.6 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// An empty line: dispatch the event.
    Blank,
    /// A line starting with `:`, with the text after the colon.
    Comment(String),
    /// `name: value` (one space after the colon dropped), or a whole line without a colon as
    /// a name with an empty value.
    Field {
        /// The text before the first colon.
        name: String,
        /// The text after it, less one leading space.
        value: String,
        /// The line held bytes that are not UTF-8, read as U+FFFD.
        lossy: bool,
    },
}

impl Line {
    /// Classifies one line (without its line end).
    fn parse(bytes: &[u8]) -> Line {
        let text = String::from_utf8_lossy(bytes);
        let lossy = matches!(text, std::borrow::Cow::Owned(_));
        if text.is_empty() {
            return Line::Blank;
        }
        if let Some(comment) = text.strip_prefix(':') {
            return Line::Comment(comment.to_owned());
        }
        let (name, value) = text.split_once(':').unwrap_or((&*text, ""));
        Line::Field {
            name: name.to_owned(),
            value: value.strip_prefix(' ').unwrap_or(value).to_owned(),
            lossy,
        }
    }
}

/// Splits a stream into lines as chunks arrive: CRLF, a lone LF and a lone CR each end a
/// line, also when a chunk ends between the CR and the LF of a CRLF; one BOM at the very
/// start is skipped.
#[derive(Debug, Default)]
pub struct Lines {
    /// Bytes of the line not yet ended (and, at the start, of a BOM not yet complete).
    pending: Vec<u8>,
    /// The last line ended with a CR, so an LF that comes next belongs to that line end.
    after_cr: bool,
    /// The start of the stream (and so whether it opens with a BOM) is behind us.
    started: bool,
}

impl Lines {
    /// The lines that `chunk` completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Line> {
        self.pending.extend_from_slice(chunk);
        if !self.started {
            if self.pending.len() < BOM.len() && BOM.starts_with(&self.pending) {
                return Vec::new();
            }
            if self.pending.starts_with(BOM) {
                self.pending.drain(..BOM.len());
            }
            self.started = true;
        }
        let mut lines = Vec::new();
        let mut start = 0;
        if self.after_cr && self.pending.first() == Some(&b'\n') {
            start = 1;
        }
        self.after_cr = false;
        while let Some(offset) = self.pending[start..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
        {
            let end = start + offset;
            lines.push(Line::parse(&self.pending[start..end]));
            start = end + 1;
            if self.pending[end] == b'\r' {
                if self.pending.get(start) == Some(&b'\n') {
                    start += 1;
                } else if start == self.pending.len() {
                    // The chunk ended on the CR: the next chunk may start with its LF.
                    self.after_cr = true;
                }
            }
        }
        self.pending.drain(..start);
        lines
    }
}

/// An event as a browser's `EventSource` dispatches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type: the `event` field, or `message` without one.
    pub event: String,
    /// The `data` lines joined with LF.
    pub data: String,
    /// The event's `lastEventId`: the last `id` the stream set, on this event or before it
    /// (a browser keeps it across events, and sends it back as `Last-Event-ID`).
    pub id: String,
    /// Whether this event's own block set the id, so that `id` names this event and not an
    /// earlier one.
    pub carries_id: bool,
}

/// A line a browser ignores or reads other than it looks, and why: a sign that the server
/// meant something its stream does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flaw {
    /// The line, as text.
    pub line: String,
    /// Which rule of §9.2.6 makes a browser read it so.
    pub why: &'static str,
}

/// Interprets lines into events, per §9.2.6, keeping the stream's state between chunks.
#[derive(Debug, Default)]
pub struct Parser {
    /// The line splitter in front of the interpreter.
    lines: Lines,
    /// The data buffer: each `data` value followed by LF.
    data: String,
    /// The event type buffer.
    event_type: String,
    /// The last event ID buffer, which survives dispatch.
    last_event_id: String,
    /// The reconnection time from the last valid `retry` field, in milliseconds.
    retry: Option<u64>,
    /// The current block has set the id.
    block_sets_id: bool,
    /// Lines a browser ignores or misreads, in stream order.
    flaws: Vec<Flaw>,
}

impl Parser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Parser::default()
    }

    /// Feeds the next chunk of the stream and returns the events it dispatches.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let lines = self.lines.feed(chunk);
        lines
            .into_iter()
            .filter_map(|line| self.interpret(line))
            .collect()
    }

    /// The stream's reconnection time, if a valid `retry` field set one.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.retry.map(Duration::from_millis)
    }

    /// The last event ID buffer: what a browser would send as `Last-Event-ID` now.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The lines read so far that a browser ignores or misreads.
    pub fn flaws(&self) -> &[Flaw] {
        &self.flaws
    }

    /// Processes one line; a blank line may dispatch an event.
    fn interpret(&mut self, line: Line) -> Option<Event> {
        match line {
            Line::Blank => self.dispatch(),
            Line::Comment(_) => None,
            Line::Field { name, value, lossy } => {
                if lossy {
                    self.flaw(&name, &value, "bytes that are not UTF-8 (read as U+FFFD)");
                }
                self.field(name, value);
                None
            }
        }
    }

    /// "Process the field", §9.2.6.
    fn field(&mut self, name: String, value: String) {
        match name.as_str() {
            "event" => self.event_type = value,
            "data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            "id" if value.contains('\0') => {
                self.flaw(&name, &value, "an id containing NUL is ignored");
            }
            "id" => {
                self.last_event_id = value;
                self.block_sets_id = true;
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Only digits, so only overflow can fail: a delay past u64 milliseconds is
                // as good as never, and a browser would not wait it out either.
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            "retry" => self.flaw(&name, &value, "retry must be only ASCII digits"),
            _ => self.flaw(&name, &value, "a field name a browser does not know"),
        }
    }

    /// "Dispatch the event", §9.2.6, at a blank line.
    fn dispatch(&mut self) -> Option<Event> {
        let carries_id = std::mem::take(&mut self.block_sets_id);
        let event_type = std::mem::take(&mut self.event_type);
        let mut data = std::mem::take(&mut self.data);
        if data.is_empty() {
            if !event_type.is_empty() {
                self.flaw(
                    "event",
                    &event_type,
                    "an event without data is not dispatched",
                );
            }
            return None;
        }
        if data.ends_with('\n') {
            data.pop();
        }
        Some(Event {
            event: if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            },
            data,
            id: self.last_event_id.clone(),
            carries_id,
        })
    }

    /// Records a line a browser ignores or misreads.
    fn flaw(&mut self, name: &str, value: &str, why: &'static str) {
        self.flaws.push(Flaw {
            line: format!("{name}: {value}"),
            why,
        });
    }
}

/// Parses a whole stream at once; the parser is returned for its state.
pub fn parse(stream: &[u8]) -> (Vec<Event>, Parser) {
    let mut parser = Parser::new();
    let events = parser.feed(stream);
    (events, parser)
}

#[cfg(test)]
mod tests {
    //! The spec's own examples (§9.2.6), and the edge cases it defines in prose.

    use super::*;

    /// The events of `chunks`, fed one after another.
    fn events(chunks: &[&[u8]]) -> Vec<Event> {
        let mut parser = Parser::new();
        chunks.iter().flat_map(|c| parser.feed(c)).collect()
    }

    /// Each event as `type:data#id`.
    fn short(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{}:{}#{}", e.event, e.data, e.id))
            .collect()
    }

    /// A rule it shows, a stream (fed chunk by chunk), and the events a browser reads from
    /// it, as `type:data#id`.
    type Case = (
        &'static str,
        &'static [&'static [u8]],
        &'static [&'static str],
    );

    /// Streams and what a browser reads from them.
    const CASES: &[Case] = &[
        (
            "a data field without a space reads the same as with one",
            &[b"data:test\n\ndata: test\n\n"],
            &["message:test#", "message:test#"],
        ),
        (
            "only one space after the colon is dropped",
            &[b"data:  third event\n\n"],
            &["message: third event#"],
        ),
        (
            "data lines join with LF",
            &[b"data: YHOO\ndata: +2\ndata: 10\n\n"],
            &["message:YHOO\n+2\n10#"],
        ),
        (
            "empty data fires an empty event; a block not ended by a blank line is dropped",
            &[b"data\n\ndata\ndata\n\ndata:"],
            &["message:#", "message:\n#"],
        ),
        (
            "CR, LF and CRLF each end a line",
            &[b"data: a\rdata: b\ndata: c\r\n\r\ndata: d\r\r"],
            &["message:a\nb\nc#", "message:d#"],
        ),
        (
            "the event type applies to one event only",
            &[b"event: add\ndata: 1\n\ndata: 2\n\n"],
            &["add:1#", "message:2#"],
        ),
        (
            "a line split across chunks is one line",
            &[b"da", b"ta: he", b"llo\n", b"\n"],
            &["message:hello#"],
        ),
        (
            "a leading BOM is skipped",
            &[b"\xEF\xBB\xBFdata: x\n\n"],
            &["message:x#"],
        ),
        (
            "a leading BOM split across chunks is skipped",
            &[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"],
            &["message:x#"],
        ),
    ];

    #[test]
    fn streams_read_as_the_spec_says() {
        for (rule, chunks, expected) in CASES {
            assert_eq!(short(&events(chunks)), *expected, "{rule}");
        }
    }

    #[test]
    fn the_spec_example_with_a_comment_and_ids() {
        let stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
        let got = events(&[stream]);
        assert_eq!(
            short(&got),
            [
                "message:first event#1",
                "message:second event#",
                "message: third event#"
            ]
        );
        assert!(got[0].carries_id && got[1].carries_id && !got[2].carries_id);
    }

    #[test]
    fn a_trailing_cr_ends_its_line_at_once_and_a_following_lf_joins_it() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: a\r").is_empty());
        // The LF completes the CRLF: it is not a second, blank line.
        assert!(parser.feed(b"\ndata: b\r").is_empty());
        // A CR after a CR is a blank line, dispatched without waiting for more bytes.
        assert_eq!(short(&parser.feed(b"\r")), ["message:a\nb#"]);
    }

    #[test]
    fn only_the_first_bom_is_skipped() {
        let (got, parser) = parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n");
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(
            parser.flaws()[0].why,
            "a field name a browser does not know"
        );
    }

    #[test]
    fn retry_with_anything_but_ascii_digits_is_ignored() {
        let (_, parser) = parse(b"retry: 1000\n\n");
        assert_eq!(
            parser.reconnection_time(),
            Some(Duration::from_millis(1000))
        );
        for bad in ["+5", "5s", "1e3", " 5", "-1", "", "５"] {
            let stream = format!("retry: 1000\nretry: {bad}\n\n");
            let (_, parser) = parse(stream.as_bytes());
            assert_eq!(
                parser.reconnection_time(),
                Some(Duration::from_millis(1000)),
                "retry: {bad:?}"
            );
            assert_eq!(parser.flaws().len(), 1, "retry: {bad:?}");
        }
    }

    #[test]
    fn an_id_containing_nul_is_ignored() {
        let (got, parser) = parse(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n");
        assert_eq!(short(&got), ["message:a#1", "message:b#1"]);
        assert!(!got[1].carries_id);
        assert_eq!(parser.flaws()[0].why, "an id containing NUL is ignored");
    }

    #[test]
    fn the_last_event_id_survives_events_without_an_id() {
        let (got, parser) = parse(b"id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n");
        assert_eq!(short(&got), ["message:a#7", "message:b#7", "message:c#"]);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_is_reported() {
        let (got, parser) = parse(b"event: lonely\n\nid: 3\n\n");
        assert!(got.is_empty());
        assert_eq!(parser.last_event_id(), "3");
        assert_eq!(parser.flaws().len(), 1);
    }

    #[test]
    fn unknown_fields_are_ignored_and_reported() {
        let (got, parser) = parse(b"Data: shouting\ndata: x\n\n");
        assert_eq!(short(&got), ["message:x#"]);
        assert_eq!(parser.flaws()[0].line, "Data: shouting");
    }

    #[test]
    fn bytes_that_are_not_utf8_read_as_replacement_and_the_stream_goes_on() {
        let (got, parser) = parse(b"data: a\xFFb\n\ndata: c\n\n");
        assert_eq!(short(&got), ["message:a\u{FFFD}b#", "message:c#"]);
        assert_eq!(parser.flaws().len(), 1);
    }
}
