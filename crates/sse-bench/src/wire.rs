//! The lean HTTP/1.1 and SSE parsing the load generator runs on every byte it reads.
//!
//! A general HTTP client would cost more per connection and per event than the servers it
//! measures, so this module does the least that is correct: find the response head, decode
//! chunked transfer encoding in place, and cut the body into SSE frames, keeping only a short
//! prefix of each field (the benchmark needs the id, the event name and the timestamp that
//! leads the data). Memory per connection is a few hundred bytes beyond the read buffer.

/// What the load generator needs from a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// `Content-Length`, when given.
    pub content_length: Option<usize>,
}

/// Finds and parses a complete response head at the start of `buf`.
///
/// Returns the head and its length in bytes (including the blank line), `Ok(None)` when
/// the head is not complete yet, or an error message when it is not HTTP/1.x.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, String> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut head = ResponseHead {
        status,
        chunked: false,
        content_length: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        }
    }
    Ok(Some((head, end + 4)))
}

/// The position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Where a [`ChunkedDecoder`] is within the chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hexadecimal size.
    Size,
    /// Skipping a chunk extension or the CR up to the LF that ends the size line.
    SizeLineEnd,
    /// Inside chunk data, with this many bytes left.
    Data(usize),
    /// Expecting the CR (or directly the LF) after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// In the trailer section after the last chunk; `true` while the current line is empty.
    Trailer(bool),
    /// The body is complete.
    Done,
}

/// An incremental decoder of `Transfer-Encoding: chunked` that never buffers data.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    /// Where the decoder is.
    state: ChunkState,
    /// The size being read in [`ChunkState::Size`].
    size: usize,
    /// Whether at least one hex digit was read for the current size.
    digits: bool,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size,
            size: 0,
            digits: false,
        }
    }

    /// Whether the terminating zero-size chunk and trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, passing every run of body bytes to `out` as it is found.
    ///
    /// Bytes after the end of the body are ignored. Errors on malformed framing.
    pub fn decode(&mut self, input: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), String> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                ChunkState::Size => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            let digit = (b as char).to_digit(16).unwrap_or(0) as usize;
                            self.size = self
                                .size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(digit))
                                .ok_or("chunk size overflows")?;
                            self.digits = true;
                        }
                        b'\n' => self.end_size_line()?,
                        b'\r' | b';' | b' ' | b'\t' if self.digits => {
                            self.state = ChunkState::SizeLineEnd;
                        }
                        _ => return Err(format!("bad byte {b:#04x} in chunk size")),
                    }
                }
                ChunkState::SizeLineEnd => {
                    // Extensions are allowed and meaningless here: skip to the LF.
                    match memchr::memchr(b'\n', &input[i..]) {
                        Some(p) => {
                            i += p + 1;
                            self.end_size_line()?;
                        }
                        None => i = input.len(),
                    }
                }
                ChunkState::Data(left) => {
                    let take = left.min(input.len() - i);
                    out(&input[i..i + take]);
                    i += take;
                    self.state = if take == left {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataCr => {
                    let b = input[i];
                    i += 1;
                    self.state = match b {
                        b'\r' => ChunkState::DataLf,
                        b'\n' => ChunkState::Size,
                        _ => return Err(format!("bad byte {b:#04x} after chunk data")),
                    };
                }
                ChunkState::DataLf => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        return Err(format!("bad byte {b:#04x} after chunk data CR"));
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer(empty_line) => {
                    let b = input[i];
                    i += 1;
                    self.state = match b {
                        b'\n' if empty_line => ChunkState::Done,
                        b'\n' => ChunkState::Trailer(true),
                        b'\r' => ChunkState::Trailer(empty_line),
                        _ => ChunkState::Trailer(false),
                    };
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// Moves on after a complete size line: data, or the trailer after the last chunk.
    fn end_size_line(&mut self) -> Result<(), String> {
        if !self.digits {
            return Err("empty chunk size".into());
        }
        self.state = if self.size == 0 {
            ChunkState::Trailer(true)
        } else {
            ChunkState::Data(self.size)
        };
        self.size = 0;
        self.digits = false;
        Ok(())
    }
}

/// How much of each line a [`Scanner`] keeps; the rest of a longer line is skipped.
const LINE_PREFIX: usize = 256;

/// One SSE frame (anything between blank lines that carried a field), borrowed from the
/// scanner. Each field holds at most a short prefix of what the server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The `id:` field, if any.
    pub id: Option<&'a [u8]>,
    /// The `event:` field, empty for the default `message`.
    pub event: &'a [u8],
    /// The start of the `data:` field(s) (lines joined with LF).
    pub data: &'a [u8],
    /// The frame's `retry:` value in milliseconds, if it had one made only of digits
    /// (EventSource ignores any other).
    pub retry: Option<u64>,
}

/// An incremental SSE frame scanner over a decoded body.
#[derive(Debug, Default, Clone)]
pub struct Scanner {
    /// The current line when it spans reads (at most [`LINE_PREFIX`] bytes kept).
    line: Vec<u8>,
    /// Whether the current line has been cut at [`LINE_PREFIX`].
    line_cut: bool,
    /// The current frame's id.
    id: Vec<u8>,
    /// Whether the current frame has an id.
    has_id: bool,
    /// The current frame's event name.
    event: Vec<u8>,
    /// The start of the current frame's data.
    data: Vec<u8>,
    /// Whether the current frame has data.
    has_data: bool,
    /// The current frame's `retry:` value.
    retry: Option<u64>,
    /// Comment lines seen (keep-alives).
    pub comments: u64,
}

impl Scanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scans `bytes`, calling `on_frame` for every frame completed by them.
    pub fn feed(&mut self, mut bytes: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        while !bytes.is_empty() {
            // memchr scans a word or a vector at a time: with kilobyte payloads this search
            // is most of the load generator's work per event.
            match memchr::memchr(b'\n', bytes) {
                Some(p) => {
                    let (line, rest) = bytes.split_at(p);
                    bytes = &rest[1..];
                    if self.line.is_empty() && !self.line_cut {
                        let line = &line[..line.len().min(LINE_PREFIX)];
                        self.line(line, on_frame);
                    } else {
                        self.keep(line);
                        let line = std::mem::take(&mut self.line);
                        self.line(&line, on_frame);
                        self.line = line;
                        self.line.clear();
                        self.line_cut = false;
                    }
                }
                None => {
                    self.keep(bytes);
                    bytes = &[];
                }
            }
        }
    }

    /// Appends to the pending line, up to [`LINE_PREFIX`] bytes.
    fn keep(&mut self, bytes: &[u8]) {
        let room = LINE_PREFIX.saturating_sub(self.line.len());
        if bytes.len() > room {
            self.line_cut = true;
        }
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Handles one complete line (without its LF).
    fn line(&mut self, line: &[u8], on_frame: &mut impl FnMut(Frame<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_id || self.has_data || !self.event.is_empty() || self.retry.is_some() {
                on_frame(Frame {
                    id: self.has_id.then_some(self.id.as_slice()),
                    event: &self.event,
                    data: &self.data,
                    retry: self.retry,
                });
            }
            self.id.clear();
            self.has_id = false;
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            self.retry = None;
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(p) => {
                let value = &line[p + 1..];
                (&line[..p], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"id" => {
                self.id.clear();
                self.id.extend_from_slice(value);
                self.has_id = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                let room = LINE_PREFIX.saturating_sub(self.data.len());
                self.data.extend_from_slice(&value[..value.len().min(room)]);
                self.has_data = true;
            }
            // A later valid `retry:` wins; an invalid one leaves the frame as it was.
            b"retry" => self.retry = parse_u64(value).or(self.retry),
            _ => {}
        }
    }
}

/// The sequence number of an `<epoch>-<seq>` id.
pub fn id_seq(id: &[u8]) -> Option<u64> {
    let p = id.iter().rposition(|&b| b == b'-')?;
    parse_u64(&id[p + 1..])
}

/// Parses all of `digits` as a decimal `u64`.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// The benchmark payload: `<send time in µs since the epoch> <event index> <padding>`.
///
/// Returns `(sent_us, index)`.
pub fn parse_payload(data: &[u8]) -> Option<(u64, u64)> {
    let mut parts = data.split(|&b| b == b' ');
    let sent = parse_u64(parts.next()?)?;
    let index = parse_u64(parts.next()?)?;
    Some((sent, index))
}

/// Builds a payload of `size` bytes (at least the two numbers) for [`parse_payload`].
pub fn make_payload(sent_us: u64, index: u64, size: usize) -> String {
    let mut s = format!("{sent_us} {index} ");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned copy of a frame, for assertions.
    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        id: Option<String>,
        event: String,
        data: String,
        retry: Option<u64>,
    }

    fn scan_all(chunks: &[&[u8]]) -> (Vec<Owned>, u64) {
        let mut scanner = Scanner::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, &mut |f: Frame<'_>| {
                frames.push(Owned {
                    id: f.id.map(|i| String::from_utf8_lossy(i).into_owned()),
                    event: String::from_utf8_lossy(f.event).into_owned(),
                    data: String::from_utf8_lossy(f.data).into_owned(),
                    retry: f.retry,
                });
            });
        }
        (frames, scanner.comments)
    }

    #[test]
    fn parses_a_response_head() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nabc";
        let (head, len) = parse_response_head(raw).expect("valid").expect("complete");
        assert_eq!(head.status, 200);
        assert!(head.chunked);
        assert_eq!(head.content_length, None);
        assert_eq!(&raw[len..], b"abc");
        let raw = b"HTTP/1.1 202 Accepted\r\ncontent-length: 12\r\n\r\n";
        let (head, _) = parse_response_head(raw).expect("valid").expect("complete");
        assert_eq!(
            (head.status, head.chunked, head.content_length),
            (202, false, Some(12))
        );
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert!(parse_response_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let body = b"5\r\nhello\r\n1a;ext=1\r\n, and a longer chunk here!\r\n0\r\nTrailer: x\r\n\r\nGARBAGE";
        let expected = b"hello, and a longer chunk here!".to_vec();
        for split in 0..body.len() {
            for step in [1, 2, 3, 7, body.len()] {
                let mut dec = ChunkedDecoder::new();
                let mut out = Vec::new();
                dec.decode(&body[..split], |b| out.extend_from_slice(b))
                    .expect("valid");
                for piece in body[split..].chunks(step) {
                    dec.decode(piece, |b| out.extend_from_slice(b))
                        .expect("valid");
                }
                assert_eq!(out, expected, "split {split} step {step}");
                assert!(dec.is_done());
            }
        }
    }

    #[test]
    fn rejects_bad_chunk_framing() {
        let mut dec = ChunkedDecoder::new();
        assert!(dec.decode(b"zz\r\n", |_| {}).is_err());
        let mut dec = ChunkedDecoder::new();
        assert!(dec.decode(b"2\r\nabX", |_| {}).is_err());
        let mut dec = ChunkedDecoder::new();
        assert!(dec.decode(b"\r\n", |_| {}).is_err());
    }

    #[test]
    fn scans_frames_fields_and_comments() {
        let stream = b"retry: 3000\n\nevent: welcome\ndata: {\"server\":\"x\"}\n\n: keep-alive\n\nid: ab-1\nevent: bench\ndata: 17 0 xx\n\nid: ab-2\ndata: a\ndata: b\n\n";
        let (frames, comments) = scan_all(&[stream]);
        assert_eq!(comments, 1);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0].retry, Some(3000));
        assert_eq!(frames[1].retry, None);
        assert_eq!(frames[1].event, "welcome");
        assert_eq!(frames[1].id, None);
        assert_eq!(frames[2].id.as_deref(), Some("ab-1"));
        assert_eq!(frames[2].event, "bench");
        assert_eq!(frames[2].data, "17 0 xx");
        assert_eq!(frames[3].event, "");
        assert_eq!(frames[3].data, "a\nb");
    }

    #[test]
    fn retry_keeps_the_last_value_made_of_digits_only() {
        let (frames, _) =
            scan_all(&[b"retry: 2400\nretry: 3x\n\nretry: -1\n\nretry: 7\ndata: d\n\n"]);
        assert_eq!(
            frames.len(),
            2,
            "a frame of only an invalid retry is nothing"
        );
        assert_eq!(frames[0].retry, Some(2400));
        assert_eq!((frames[1].retry, frames[1].data.as_str()), (Some(7), "d"));
    }

    #[test]
    fn scanning_is_independent_of_read_boundaries() {
        let stream: &[u8] =
            b"id: e-1\r\nevent: bench\r\ndata: 1 2 pad\r\n\r\nid: e-2\nevent: bench\ndata: 3 4\n\n";
        let (whole, _) = scan_all(&[stream]);
        for split in 0..stream.len() {
            let (parts, _) = scan_all(&[&stream[..split], &stream[split..]]);
            assert_eq!(parts, whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(scan_all(&bytes).0, whole);
        assert_eq!(whole[0].data, "1 2 pad");
    }

    #[test]
    fn long_lines_keep_only_a_prefix() {
        let mut stream = b"id: e-9\nevent: bench\ndata: 123 9 ".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 100_000));
        stream.extend_from_slice(b"\n\n");
        let pieces: Vec<&[u8]> = stream.chunks(4096).collect();
        let (frames, _) = scan_all(&pieces);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].data.len() <= LINE_PREFIX);
        assert_eq!(parse_payload(frames[0].data.as_bytes()), Some((123, 9)));
    }

    #[test]
    fn extracts_ids_and_timestamps() {
        assert_eq!(id_seq(b"3fa2c91b07de-41"), Some(41));
        assert_eq!(id_seq(b"no-dash-x"), None);
        assert_eq!(id_seq(b"41"), None);
        assert_eq!(
            parse_payload(b"1732222222123456 7 xxxx"),
            Some((1_732_222_222_123_456, 7))
        );
        assert_eq!(parse_payload(b"1732 7"), Some((1732, 7)));
        assert_eq!(parse_payload(b"{\"json\":1}"), None);
        let p = make_payload(1_700_000_000_000_000, 12, 64);
        assert_eq!(p.len(), 64);
        assert_eq!(
            parse_payload(p.as_bytes()),
            Some((1_700_000_000_000_000, 12))
        );
        assert_eq!(parse_u64(b"99999999999999999999"), None);
    }
}
