//! What the demo reads in the bytes it relays to the page, so that a fault can say what the
//! page received: which requests were streams, how each was answered, and every event id.
//!
//! Three small parsers, fed whatever chunks the sockets give: [`Requests`] finds request
//! heads in the browser's bytes, [`Responses`] splits the server's bytes into responses and
//! undoes their chunked framing, and [`EventScanner`] reads an event stream the way a browser
//! does (WHATWG 9.2.6, the fields the demo needs: `event` and `id`). None of them allocates
//! more than [`MAX_LINE`] for one head or line, whatever the peer sends.

use std::collections::VecDeque;
use std::time::Instant;

/// The longest request head, response head or event-stream line kept; a longer one is cut
/// there (the demo's own variants never send one).
pub const MAX_LINE: usize = 128 * 1024;
/// How many of the page's stream requests are remembered.
const STREAMS_KEPT: usize = 256;
/// How many of the ids delivered to the page are remembered (a flood's worth).
const IDS_KEPT: usize = 50_000;

/// One request the browser sent, as far as the demo cares.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET /stream...`: an `EventSource` (or the pane's own probe) asking for the stream.
    pub is_stream: bool,
    /// The id it resumes from: the `Last-Event-ID` header, else the `lastEventId` query
    /// parameter the pane sends when it reconnects by itself.
    pub resume_from: Option<String>,
    /// The `Last-Event-ID` header alone: what the browser's own reconnect sends.
    pub last_event_id: Option<String>,
}

/// One of the page's stream requests and what came back.
#[derive(Debug, Clone)]
pub struct StreamSeen {
    /// When its answer's head came through.
    pub at: Instant,
    /// Where it resumed from.
    pub resume_from: Option<String>,
    /// Its `Last-Event-ID` header, if it had one.
    pub last_event_id: Option<String>,
    /// The answer's status.
    pub status: u16,
    /// When the first event with an id came through.
    pub first_event: Option<Instant>,
    /// The `reset` event's data, if the server sent one.
    pub reset: Option<String>,
    /// Events with an id delivered on it.
    pub events: u64,
}

/// Everything the relay saw go to the page.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The page's answered stream requests, oldest first, numbered from `first_stream`.
    pub streams: VecDeque<StreamSeen>,
    /// The number of the oldest stream still in `streams`.
    pub first_stream: u64,
    /// The ids delivered to the page, oldest first, with when.
    pub ids: VecDeque<(Instant, String)>,
    /// Events with an id delivered to the page, ever.
    pub delivered: u64,
}

impl Seen {
    /// Notes a stream request answered with `status`; returns its number.
    pub fn open(&mut self, request: &Request, status: u16) -> u64 {
        if self.streams.len() == STREAMS_KEPT {
            self.streams.pop_front();
            self.first_stream += 1;
        }
        self.streams.push_back(StreamSeen {
            at: Instant::now(),
            resume_from: request.resume_from.clone(),
            last_event_id: request.last_event_id.clone(),
            status,
            first_event: None,
            reset: None,
            events: 0,
        });
        self.first_stream + self.streams.len() as u64 - 1
    }

    /// The stream numbered `number`, if it is still remembered.
    pub fn stream(&mut self, number: u64) -> Option<&mut StreamSeen> {
        let index = number.checked_sub(self.first_stream)?;
        self.streams.get_mut(usize::try_from(index).ok()?)
    }

    /// Notes an event delivered on stream `number`.
    pub fn event(&mut self, number: u64, event: &Scanned) {
        let now = Instant::now();
        if let Some(id) = &event.id {
            self.delivered += 1;
            if self.ids.len() == IDS_KEPT {
                self.ids.pop_front();
            }
            self.ids.push_back((now, id.clone()));
        }
        let Some(stream) = self.stream(number) else {
            return;
        };
        if event.name == "reset" {
            stream.reset = Some(event.data.clone());
        }
        if event.id.is_some() {
            stream.events += 1;
            stream.first_event.get_or_insert(now);
        }
    }

    /// The last id delivered to the page, if any.
    pub fn last_id(&self) -> Option<&str> {
        self.ids.back().map(|(_, id)| id.as_str())
    }

    /// The ids delivered since `since`, oldest first.
    pub fn ids_since(&self, since: Instant) -> Vec<String> {
        self.ids
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The stream requests that came after `since`, oldest first.
    pub fn streams_since(&self, since: Instant) -> impl Iterator<Item = &StreamSeen> {
        self.streams.iter().filter(move |s| s.at >= since)
    }
}

/// Finds request heads in the browser's bytes, skipping bodies by `Content-Length`.
#[derive(Debug, Default)]
pub struct Requests {
    /// Bytes of a head not yet complete.
    pending: Vec<u8>,
    /// Body bytes still to skip.
    skip: usize,
}

impl Requests {
    /// Takes the next bytes; returns the requests whose heads they complete.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Request> {
        let mut found = Vec::new();
        while !bytes.is_empty() {
            if self.skip > 0 {
                let skipped = self.skip.min(bytes.len());
                self.skip -= skipped;
                bytes = &bytes[skipped..];
                continue;
            }
            let (complete, rest) = take_line_through(&mut self.pending, bytes, b"\r\n\r\n");
            bytes = rest;
            if complete {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                self.skip = header(&text, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                found.push(request(&text));
            }
        }
        found
    }
}

/// What the demo wants to know of one request head.
fn request(head: &str) -> Request {
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next());
    let Some(target) = target else {
        return Request::default();
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let from_query = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "lastEventId")
        .map(|(_, value)| value.into_owned());
    let last_event_id = header(head, "last-event-id").map(str::to_owned);
    Request {
        is_stream: path == "/stream",
        resume_from: last_event_id.clone().or(from_query),
        last_event_id,
    }
}

/// The value of header `name` in a head (request or response), if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
}

/// A piece of what [`Responses::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A response head: its status and whether it is an event stream.
    Head {
        /// The status code.
        status: u16,
        /// `Content-Type: text/event-stream`.
        event_stream: bool,
    },
    /// Body bytes, unchunked.
    Body(Vec<u8>),
}

/// Where [`Responses`] is within the server's bytes.
#[derive(Debug)]
enum Framing {
    /// Reading a response head.
    Head(Vec<u8>),
    /// A body of this many bytes more.
    Fixed(usize),
    /// A chunk-size line (`1a\r\n`), so far.
    ChunkSize(Vec<u8>),
    /// This many bytes of chunk data more, then its CRLF.
    ChunkData(usize),
    /// The CRLF after a chunk's data: this many bytes more.
    ChunkEnd(usize),
    /// The trailer after the last chunk, up to its blank line.
    Trailer(Vec<u8>),
    /// A body that runs until the connection closes.
    UntilClose,
}

/// Splits the server's bytes into response heads and (unchunked) bodies.
#[derive(Debug)]
pub struct Responses {
    /// Where in the framing the next byte falls.
    framing: Framing,
}

impl Default for Responses {
    fn default() -> Self {
        Responses {
            framing: Framing::Head(Vec::new()),
        }
    }
}

impl Responses {
    /// Takes the next bytes; returns the heads and body bytes in them, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        while !bytes.is_empty() {
            bytes = self.step(bytes, &mut pieces);
        }
        pieces
    }

    /// Consumes what it can of `bytes` in the current framing; returns the rest.
    fn step<'a>(&mut self, bytes: &'a [u8], pieces: &mut Vec<Piece>) -> &'a [u8] {
        match &mut self.framing {
            Framing::Head(head) => {
                let (taken, rest) = take_line_through(head, bytes, b"\r\n\r\n");
                if taken {
                    let text = String::from_utf8_lossy(head).into_owned();
                    self.framing = body_framing(&text);
                    pieces.push(head_piece(&text));
                }
                rest
            }
            Framing::Fixed(left) | Framing::ChunkData(left) => {
                let n = (*left).min(bytes.len());
                pieces.push(Piece::Body(bytes[..n].to_vec()));
                *left -= n;
                if *left == 0 {
                    self.framing = match self.framing {
                        Framing::ChunkData(_) => Framing::ChunkEnd(2),
                        _ => Framing::Head(Vec::new()),
                    };
                }
                &bytes[n..]
            }
            Framing::ChunkEnd(left) => {
                let n = (*left).min(bytes.len());
                *left -= n;
                if *left == 0 {
                    self.framing = Framing::ChunkSize(Vec::new());
                }
                &bytes[n..]
            }
            Framing::ChunkSize(line) => {
                let (taken, rest) = take_line_through(line, bytes, b"\r\n");
                if taken {
                    let text = String::from_utf8_lossy(line);
                    let digits = text.trim().split(';').next().unwrap_or("");
                    self.framing = match usize::from_str_radix(digits.trim(), 16) {
                        Ok(0) => Framing::Trailer(Vec::new()),
                        Ok(size) => Framing::ChunkData(size),
                        // Not chunked after all: pass the rest on as it comes.
                        Err(_) => Framing::UntilClose,
                    };
                }
                rest
            }
            Framing::Trailer(trailer) => {
                // An empty trailer is just its CRLF; one with fields ends at a blank line.
                let (taken, rest) = take_line_through(trailer, bytes, b"\r\n");
                if taken {
                    self.framing = if trailer.len() <= 2 {
                        Framing::Head(Vec::new())
                    } else {
                        Framing::Trailer(Vec::new())
                    };
                }
                rest
            }
            Framing::UntilClose => {
                pieces.push(Piece::Body(bytes.to_vec()));
                &[]
            }
        }
    }
}

/// Appends `bytes` to `line` up to and including the first `end` (which may straddle the
/// two); returns whether `end` was found, and the bytes after it. `line` never grows past
/// [`MAX_LINE`]: the excess is dropped.
fn take_line_through<'a>(line: &mut Vec<u8>, bytes: &'a [u8], end: &[u8]) -> (bool, &'a [u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        if line.len() < MAX_LINE {
            line.push(*byte);
        }
        if line.ends_with(end) {
            return (true, &bytes[i + 1..]);
        }
    }
    (false, &[])
}

/// The framing of the body that follows a response head.
fn body_framing(head: &str) -> Framing {
    let status = status_of(head);
    // 1xx, 204 and 304 have no body.
    if status < 200 || status == 204 || status == 304 {
        return Framing::Head(Vec::new());
    }
    let chunked = header(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return Framing::ChunkSize(Vec::new());
    }
    match header(head, "content-length").and_then(|v| v.parse().ok()) {
        Some(0) => Framing::Head(Vec::new()),
        Some(length) => Framing::Fixed(length),
        None => Framing::UntilClose,
    }
}

/// The status code of a response head (0 if it has none).
fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The [`Piece::Head`] for a response head.
fn head_piece(head: &str) -> Piece {
    Piece::Head {
        status: status_of(head),
        event_stream: header(head, "content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream")),
    }
}

/// An event as the page's `EventSource` dispatches it, with the fields the demo reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scanned {
    /// Its type (`message` when the frame names none).
    pub name: String,
    /// Its own id, when the frame had an `id` field.
    pub id: Option<String>,
    /// Its data, lines joined with LF.
    pub data: String,
}

/// Reads an event stream's body into events, as the browser does.
#[derive(Debug, Default)]
pub struct EventScanner {
    /// The line read so far.
    line: Vec<u8>,
    /// The previous byte was a CR (so an LF right after it ends no second line).
    after_cr: bool,
    /// The event being built.
    event: Scanned,
    /// Whether the event being built has a data field (one without is not dispatched).
    has_data: bool,
}

impl EventScanner {
    /// Takes the next body bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Scanned> {
        let mut events = Vec::new();
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    let line = std::mem::take(&mut self.line);
                    events.extend(self.line_done(&String::from_utf8_lossy(&line)));
                }
                _ if self.line.len() < MAX_LINE => self.line.push(byte),
                _ => {}
            }
        }
        events
    }

    /// Applies one complete line; returns the event a blank line dispatches.
    fn line_done(&mut self, line: &str) -> Option<Scanned> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let dispatch = std::mem::replace(&mut self.has_data, false);
            return dispatch.then(|| Scanned {
                name: if event.name.is_empty() {
                    "message".to_owned()
                } else {
                    event.name
                },
                ..event
            });
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut self.event.name),
            "id" if !value.contains('\0') => self.event.id = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.event.data.push('\n');
                }
                self.event.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_found_across_chunks_and_bodies_skipped() {
        let mut requests = Requests::default();
        let bytes = b"POST /publish HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /stream?lastEventId=a-7 HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nLast-Event-ID: b-9\r\n\r\n";
        let mut found = Vec::new();
        for chunk in bytes.chunks(3) {
            found.extend(requests.feed(chunk));
        }
        let seen: Vec<(bool, Option<&str>)> = found
            .iter()
            .map(|r| (r.is_stream, r.resume_from.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [(false, None), (true, Some("a-7")), (true, Some("b-9"))]
        );
    }

    #[test]
    fn chunked_event_streams_are_unframed_and_read_as_a_browser_reads_them() {
        let mut wire = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for frame in [
            "retry: 300\n",
            "event: welcome\ndata: {}\n\n",
            "id: e-1\ndata: one\n\n",
            "event: reset\r\ndata: x\r\ndata: y\r\n\r\n",
            "",
        ] {
            wire.extend(format!("{:x}\r\n{frame}\r\n", frame.len()).bytes());
        }
        let mut responses = Responses::default();
        let mut scanner = EventScanner::default();
        let mut heads = Vec::new();
        let mut events = Vec::new();
        for chunk in wire.chunks(5) {
            for piece in responses.feed(chunk) {
                match piece {
                    Piece::Head { .. } => heads.push(piece),
                    Piece::Body(body) => events.extend(scanner.feed(&body)),
                }
            }
        }
        assert_eq!(
            heads,
            [Piece::Head {
                status: 200,
                event_stream: true
            }]
        );
        let named: Vec<(&str, Option<&str>, &str)> = events
            .iter()
            .map(|e| (e.name.as_str(), e.id.as_deref(), e.data.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("welcome", None, "{}"),
                ("message", Some("e-1"), "one"),
                ("reset", None, "x\ny")
            ]
        );
    }

    #[test]
    fn fixed_length_responses_follow_one_another() {
        let wire = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 204 No Content\r\n\r\n";
        let pieces = Responses::default().feed(wire);
        assert_eq!(
            pieces,
            [
                Piece::Head {
                    status: 503,
                    event_stream: false
                },
                Piece::Body(b"{}".to_vec()),
                Piece::Head {
                    status: 204,
                    event_stream: false
                },
            ]
        );
    }

    #[test]
    fn seen_keeps_the_ids_and_what_each_stream_got() {
        let mut seen = Seen::default();
        let request = Request {
            is_stream: true,
            resume_from: Some("a-1".into()),
            last_event_id: None,
        };
        let number = seen.open(&request, 200);
        let event = |name: &str, id: Option<&str>| Scanned {
            name: name.into(),
            id: id.map(str::to_owned),
            data: "{\"reason\":\"foreign\"}".into(),
        };
        seen.event(number, &event("reset", None));
        seen.event(number, &event("message", Some("b-1")));
        let stream = seen.stream(number).expect("remembered");
        assert_eq!(stream.events, 1);
        assert!(
            stream
                .reset
                .as_deref()
                .is_some_and(|r| r.contains("foreign"))
        );
        assert_eq!(seen.last_id(), Some("b-1"));
        assert_eq!(seen.delivered, 1);
    }
}
