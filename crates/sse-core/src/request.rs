//! A request as the contract reads it, borrowed from whichever framework received it.
//!
//! Each framework has its own request type (actix's header map is not the `http` crate's
//! one that axum and warp share), but every rule of the contract reads the same few things:
//! the query string and a handful of headers. [`RequestHead`] is that view. Each variant
//! builds one per request from its own types and hands it to [`crate::Service`], so a rule
//! that needs one more header is written once, here and in sse-core, not in three `lib.rs`.

use std::sync::Arc;

use crate::connection::Connection;

/// Header lookup over any framework's header map (`Sync`, so that a publish handler holding a
/// [`RequestHead`] across an `.await` stays `Send`, as axum and warp require).
pub trait Headers: Sync {
    /// The raw value of the first header called `name` (given in lowercase), if present.
    fn raw(&self, name: &str) -> Option<&[u8]>;
}

impl Headers for http::HeaderMap {
    fn raw(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(http::HeaderValue::as_bytes)
    }
}

/// The parts of a request the contract reads: its headers, its query string, and the
/// connection it came on.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    /// The request's headers.
    headers: &'a dyn Headers,
    /// The query string, without the `?`; `None` when the URL has none.
    query: Option<&'a str>,
    /// The connection, when the transport watches it (see [`crate::connection`]).
    connection: Option<&'a Arc<Connection>>,
}

impl<'a> RequestHead<'a> {
    /// A view of a request with `headers` and `query`.
    pub fn new(headers: &'a dyn Headers, query: Option<&'a str>) -> Self {
        RequestHead {
            headers,
            query,
            connection: None,
        }
    }

    /// The same view, with the connection the request arrived on.
    pub fn with_connection(mut self, connection: Option<&'a Arc<Connection>>) -> Self {
        self.connection = connection;
        self
    }

    /// The connection the request arrived on, if the transport watches it.
    pub fn connection(&self) -> Option<&'a Arc<Connection>> {
        self.connection
    }

    /// A header as text, if present and visible ASCII (as `http`'s `to_str` accepts).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        let raw = self.headers.raw(name)?;
        let visible = raw
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
        visible.then(|| std::str::from_utf8(raw).ok()).flatten()
    }

    /// The `Origin` header, for the CORS policy.
    pub fn origin(&self) -> Option<&'a str> {
        self.header("origin")
    }

    /// Where the client wants to resume: the `Last-Event-ID` header, else `?lastEventId=`.
    ///
    /// The header wins because a browser updates it on every automatic reconnect, while a
    /// query parameter stays whatever the page put in the URL when it created the
    /// `EventSource`. Header bytes that are not UTF-8 are kept (lossily) so that the hub can
    /// call them malformed rather than have them silently ignored. An empty id is no id.
    pub fn last_event_id(&self) -> Option<String> {
        let from_header = self
            .headers
            .raw("last-event-id")
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .filter(|id| !id.is_empty());
        from_header.or_else(|| self.query_param("lastEventId").filter(|id| !id.is_empty()))
    }

    /// Every value of query parameter `name`, percent-decoded, in order (empty values too).
    pub fn query_params(&self, name: &str) -> Vec<String> {
        self.query
            .map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .filter(|(key, _)| key == name)
                    .map(|(_, value)| value.into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query?.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header list for tests.
    struct List(Vec<(&'static str, &'static [u8])>);

    impl Headers for List {
        fn raw(&self, name: &str) -> Option<&[u8]> {
            self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        }
    }

    fn resume(header: Option<&'static [u8]>, query: Option<&str>) -> Option<String> {
        let headers = List(header.map(|h| ("last-event-id", h)).into_iter().collect());
        RequestHead::new(&headers, query).last_event_id()
    }

    #[test]
    fn the_header_wins_over_the_query() {
        assert_eq!(
            resume(Some(b"h-1"), Some("lastEventId=q-1")).as_deref(),
            Some("h-1")
        );
        assert_eq!(
            resume(None, Some("x=1&lastEventId=q%2D1")).as_deref(),
            Some("q-1")
        );
        assert_eq!(
            resume(Some(b""), Some("lastEventId=q-1")).as_deref(),
            Some("q-1")
        );
        assert_eq!(resume(None, Some("other=1")), None);
        assert_eq!(resume(None, Some("lastEventId=")), None);
        assert_eq!(resume(Some(b"\xff"), None).as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn headers_that_are_not_visible_text_read_as_absent() {
        let headers = List(vec![("origin", b"http://a.test"), ("x", b"caf\xc3\xa9")]);
        let head = RequestHead::new(&headers, None);
        assert_eq!(head.origin(), Some("http://a.test"));
        assert_eq!(head.header("x"), None);
        assert_eq!(head.header("absent"), None);
    }
}
