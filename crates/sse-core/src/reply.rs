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
    /// The body.
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

    /// 405 for a known path with the wrong method; 404 for any other path.
    pub fn method_not_allowed(path: &str) -> Self {
        let allow = match path {
            "/publish" => "POST, OPTIONS",
            "/stream" | "/metrics" | "/healthz" => "GET, OPTIONS",
            _ => return Reply::not_found(),
        };
        Reply::error(405, format!("method not allowed; use {allow}")).with_header("allow", allow)
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

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
