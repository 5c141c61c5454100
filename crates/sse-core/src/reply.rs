//! Framework-neutral HTTP answers: status, headers and body decided once, here.
//!
//! Every non-stream response of the contract (errors, publish receipts, metrics, assets,
//! preflights) is built as a [`Reply`], and each variant has one small function turning a
//! `Reply` into its framework's response. That is how three frameworks give byte-identical
//! error bodies without three copies of the rules.

use std::borrow::Cow;

/// `Content-Type` of every JSON body.
pub const JSON: &str = "application/json";

/// An HTTP response, before a framework writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// Further headers (`Retry-After`, `WWW-Authenticate`, CORS, `Allow`).
    pub headers: Vec<(&'static str, String)>,
    /// The body: borrowed for the client's files compiled into the binary, owned otherwise.
    pub body: Cow<'static, str>,
}

impl Reply {
    /// A JSON body with `status`.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: Cow::Owned(value.to_string()),
        }
    }

    /// The contract's error shape: `{"error": "<what is wrong>"}`.
    pub fn error(status: u16, message: impl AsRef<str>) -> Self {
        Reply::json(status, &serde_json::json!({ "error": message.as_ref() }))
    }

    /// A text body.
    pub fn text(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, str>>,
    ) -> Self {
        Reply {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// 404 for a path the contract does not define.
    pub fn not_found() -> Self {
        Reply::error(404, "not found")
    }

    /// 405 for a known path asked with another method; `allow` lists the ones it answers.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Reply::error(405, format!("method not allowed; use {allow}")).with_header("allow", allow)
    }

    /// 400 for a request body the connection failed to deliver (a reset mid-body, say).
    pub fn unreadable_body(error: impl std::fmt::Display) -> Self {
        Reply::error(400, format!("could not read the body: {error}"))
    }

    /// 413 for a publish body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Reply::error(413, format!("body is larger than {limit} bytes"))
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// Headers every `GET /stream` response carries besides `Content-Type`, which each
/// framework's SSE type sets itself.
///
/// `X-Accel-Buffering: no` stops nginx-style proxies from buffering the stream; `no-cache`
/// stops caches from replaying a stale one.
pub const STREAM_HEADERS: [(&str, &str); 2] =
    [("cache-control", "no-cache"), ("x-accel-buffering", "no")];

/// A reply in the `http` crate's types, which axum and warp share (actix has its own and
/// converts in its `lib.rs`). The body is `Bytes`, so the client's `'static` files are
/// served without a copy.
impl From<Reply> for http::Response<bytes::Bytes> {
    fn from(reply: Reply) -> Self {
        let body = match reply.body {
            Cow::Borrowed(text) => bytes::Bytes::from_static(text.as_bytes()),
            Cow::Owned(text) => bytes::Bytes::from(text),
        };
        let mut response = http::Response::new(body);
        *response.status_mut() = http::StatusCode::from_u16(reply.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(reply.content_type),
        );
        append_headers(headers, reply.headers);
        response
    }
}

/// Appends `headers` (CORS, `Retry-After`, `Allow`, ...) to an `http` header map.
pub fn append_headers(map: &mut http::HeaderMap, headers: Vec<(&'static str, String)>) {
    for (name, value) in headers {
        // Values come from validated config and our own formatting; skip rather than panic
        // if one ever is not a valid header value.
        if let Ok(value) = http::HeaderValue::try_from(value) {
            map.append(http::HeaderName::from_static(name), value);
        }
    }
}

/// Sets [`STREAM_HEADERS`] on a stream response's `http` header map.
pub fn insert_stream_headers(map: &mut http::HeaderMap) {
    for (name, value) in STREAM_HEADERS {
        map.insert(name, http::HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_http_responses_with_every_header() {
        let reply = Reply::error(503, "busy").with_header("retry-after", "3");
        let response = http::Response::<bytes::Bytes>::from(reply);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["content-type"], JSON);
        assert_eq!(response.headers()["retry-after"], "3");
        assert_eq!(&response.body()[..], br#"{"error":"busy"}"#);
    }

    #[test]
    fn a_header_value_that_cannot_be_sent_is_left_out() {
        let mut map = http::HeaderMap::new();
        append_headers(
            &mut map,
            vec![("x-ok", "1".into()), ("x-bad", "a\nb".into())],
        );
        assert_eq!(map.len(), 1);
    }
}
