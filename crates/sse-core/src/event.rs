//! The event model: what a hub stores and every variant writes to the wire.
//!
//! Everything that could break SSE framing is settled here, when the event is made: names
//! are validated, line breaks in data (CRLF, CR, LF) are normalised to LF, and the frame is
//! encoded once ([`crate::frame::encode`], one `data:` line per LF), so no field can be
//! injected and every subscriber of every variant is handed the same bytes.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::topic::Topic;

/// Longest event name accepted from a publisher, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 64;

/// Event names the server itself uses; a publisher may not forge them.
pub const RESERVED_EVENT_NAMES: [&str; 2] = ["welcome", "reset"];

/// One server-sent event, as every variant writes it.
///
/// The fields are public to read; an event is made only by [`Event::unsequenced`] and
/// [`Draft::into_event`], so its [`Event::frame`] always matches them. `id` is `None` for the connection's own frames (`welcome`, `reset`): an event without an
/// `id:` field leaves the browser's last event id alone, so those frames never move a
/// client's resume point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Where this event stands in the hub's sequence, if it came from the hub.
    pub id: Option<EventId>,
    /// The `event:` field; `None` is the browser's default `message`.
    pub name: Option<EventName>,
    /// The payload, line breaks already normalised to LF.
    pub data: String,
    /// What the event is about; subscribers choose topics with selectors. It is not on the
    /// wire (SSE has no field for it): the server filters by it.
    pub topic: Topic,
    /// The frame on the wire, encoded once from the fields above (see [`crate::frame`]).
    frame: Bytes,
}

impl Event {
    /// An event with these fields, its frame encoded from them.
    fn new(id: Option<EventId>, name: Option<EventName>, data: String, topic: Topic) -> Self {
        let frame = crate::frame::encode(
            id.as_ref().map(EventId::as_str),
            name.as_ref().map(EventName::as_str),
            &data,
        );
        Event {
            id,
            name,
            data,
            topic,
            frame,
        }
    }

    /// The event as it goes on the wire, shared: every subscriber writes these same bytes.
    pub fn frame(&self) -> Bytes {
        self.frame.clone()
    }

    /// An event without an id, for the connection's own frames (every subscriber gets
    /// them, whatever its topics).
    pub fn unsequenced(name: EventName, data: impl Into<String>) -> Self {
        Event::new(
            None,
            Some(name),
            normalise_line_breaks(&data.into()),
            Topic::default_topic(),
        )
    }

    /// Where the event stands in the hub's sequence; 0 for the unsequenced frames, which
    /// sort before every hub event.
    pub fn seq(&self) -> u64 {
        self.id.as_ref().map_or(0, |id| id.seq)
    }

    /// The id as it goes on the wire, if the event has one.
    pub fn id_str(&self) -> Option<&str> {
        self.id.as_ref().map(EventId::as_str)
    }

    /// The event name as it goes on the wire, if the event has one.
    pub fn name_str(&self) -> Option<&str> {
        self.name.as_ref().map(EventName::as_str)
    }
}

/// An event id: an opaque string for clients, ordered by `seq` inside the hub.
///
/// The text carries the hub's per-run epoch (see [`crate::memory`]), so an id from an
/// earlier run is recognised as foreign rather than misread as a position in this one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// Position in the hub's sequence: strictly increasing, never reused within a run.
    pub seq: u64,
    /// The wire form, shared so that fan-out to many clients copies a pointer, not text.
    text: Arc<str>,
}

impl EventId {
    /// An id at `seq` whose wire form is `text`. `text` must not contain line breaks.
    pub fn new(seq: u64, text: impl Into<Arc<str>>) -> Self {
        let text = text.into();
        debug_assert!(!text.contains(['\r', '\n']), "ids go on one SSE line");
        EventId { seq, text }
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A validated event name: 1 to 64 bytes of `A-Za-z0-9_.:-`.
///
/// The charset keeps names on one SSE line and easy to `addEventListener` for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventName(Arc<str>);

impl EventName {
    /// Checks `name` against the contract's rule for publishers (reserved names refused).
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::parse_any(name).and_then(|parsed| {
            if RESERVED_EVENT_NAMES.contains(&name) {
                Err(format!("event name {name:?} is reserved for the server"))
            } else {
                Ok(parsed)
            }
        })
    }

    /// A name the server itself uses (`welcome`, `reset`, the ticker's names).
    pub fn server(name: &'static str) -> Self {
        debug_assert!(
            Self::parse_any(name).is_ok(),
            "server names follow the rule"
        );
        EventName(name.into())
    }

    fn parse_any(name: &str) -> Result<Self, String> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_.:-".contains(c);
        if name.is_empty() || name.len() > MAX_EVENT_NAME_LEN {
            Err(format!(
                "event name must be 1 to {MAX_EVENT_NAME_LEN} characters, got {}",
                name.len()
            ))
        } else if !name.chars().all(allowed) {
            Err("event name may only contain A-Z, a-z, 0-9 and _ . : -".to_owned())
        } else {
            Ok(EventName(name.into()))
        }
    }

    /// The wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event a publisher asked for, before the hub gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The `event:` field; `None` publishes a default `message`.
    pub name: Option<EventName>,
    /// The payload, line breaks normalised to LF.
    pub data: String,
    /// The topic, `default` unless given.
    pub topic: Topic,
}

impl Draft {
    /// A draft on the default topic with `data` normalised, so that it can never inject an
    /// SSE field.
    pub fn new(name: Option<EventName>, data: &str) -> Self {
        Draft {
            name,
            data: normalise_line_breaks(data),
            topic: Topic::default_topic(),
        }
    }

    /// The same draft on `topic`.
    pub fn on(mut self, topic: Topic) -> Self {
        self.topic = topic;
        self
    }

    /// The stored event this draft becomes once the hub numbers it.
    pub fn into_event(self, id: EventId) -> Event {
        Event::new(Some(id), self.name, self.data, self.topic)
    }
}

/// Rewrites CRLF and lone CR as LF.
///
/// SSE ends a line at CR, LF or CRLF, so every one of them in data must become a new
/// `data:` line. Normalising to LF lets each framework split on LF alone and still put
/// every line behind its own `data:` prefix, which is what makes injection impossible.
pub fn normalise_line_breaks(data: &str) -> String {
    if data.contains('\r') {
        data.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        data.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_become_lf() {
        assert_eq!(normalise_line_breaks("a\r\nb\rc\nd"), "a\nb\nc\nd");
        assert_eq!(normalise_line_breaks("\r\r\n"), "\n\n");
        assert_eq!(normalise_line_breaks("plain"), "plain");
    }

    #[test]
    fn names_follow_the_charset_and_length() {
        assert!(EventName::parse("chat.message:v1_x-y").is_ok());
        assert!(EventName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a b", "a\nb", "ü", "x;y", &"a".repeat(65)] {
            assert!(EventName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publishers_cannot_forge_server_frames() {
        assert!(EventName::parse("reset").is_err());
        assert!(EventName::parse("welcome").is_err());
        assert_eq!(EventName::server("welcome").as_str(), "welcome");
    }
}
