//! The CORS policy, decided once for every variant.
//!
//! The frameworks' own CORS middlewares disagree on what a disallowed origin gets (warp's
//! answers 403, actix-cors answers 400 with a text body, tower-http leaves the headers out),
//! and the contract needs one behaviour: an allowed origin gets its own origin echoed with
//! credentials allowed, any other origin gets no CORS headers at all. So the policy is this
//! small pure module, and each variant applies its headers to every response.

use crate::reply::Reply;

/// Methods a preflight may ask for.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Request headers a preflight may ask for (`Last-Event-ID` for polyfills that set it).
const ALLOWED_HEADERS: &str = "content-type, authorization, last-event-id";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// The allowed origins, as given by `--allowed-origins`.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    /// Lowercase `scheme://host[:port]` strings.
    allowed: Vec<String>,
}

impl Cors {
    /// A policy allowing exactly `allowed` (already normalised by [`crate::Config`]).
    pub fn new(allowed: Vec<String>) -> Self {
        Cors { allowed }
    }

    /// The headers to add to a response for a request from `origin`.
    ///
    /// `Vary: Origin` goes on every response once any origin is configured, because the
    /// answer then depends on the request's origin and a shared cache must know that.
    pub fn headers(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if self.allowed.is_empty() {
            return headers;
        }
        headers.push(("vary", "Origin".to_owned()));
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            headers.push(("access-control-allow-origin", origin.to_owned()));
            headers.push(("access-control-allow-credentials", "true".to_owned()));
        }
        headers
    }

    /// The answer to an `OPTIONS` preflight from `origin`.
    pub fn preflight(&self, origin: Option<&str>) -> Reply {
        match origin.filter(|o| self.allows(o)) {
            Some(_) => {
                let mut reply = Reply::text(204, "text/plain", "");
                reply.headers = self.headers(origin);
                reply
                    .with_header("access-control-allow-methods", ALLOWED_METHODS)
                    .with_header("access-control-allow-headers", ALLOWED_HEADERS)
                    .with_header("access-control-max-age", PREFLIGHT_MAX_AGE)
            }
            None => {
                let mut reply = Reply::error(403, "origin not allowed by --allowed-origins");
                reply.headers = self.headers(origin);
                reply
            }
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.allowed
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(headers: &[(&'static str, String)]) -> Vec<&'static str> {
        headers.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn allowed_origin_is_echoed_with_credentials() {
        let cors = Cors::new(vec!["http://a.test".into()]);
        let headers = cors.headers(Some("http://a.test"));
        assert!(headers.contains(&("access-control-allow-origin", "http://a.test".into())));
        assert!(headers.contains(&("access-control-allow-credentials", "true".into())));
        assert!(headers.contains(&("vary", "Origin".into())));
    }

    #[test]
    fn other_origins_get_no_cors_headers() {
        let cors = Cors::new(vec!["http://a.test".into()]);
        for origin in [Some("http://b.test"), Some("null"), None] {
            assert_eq!(names(&cors.headers(origin)), ["vary"], "{origin:?}");
        }
        assert!(Cors::default().headers(Some("http://a.test")).is_empty());
    }

    #[test]
    fn preflight_answers_allowed_origins_only() {
        let cors = Cors::new(vec!["http://a.test".into()]);
        let ok = cors.preflight(Some("http://a.test"));
        assert_eq!(ok.status, 204);
        assert!(names(&ok.headers).contains(&"access-control-allow-methods"));
        let refused = cors.preflight(Some("http://b.test"));
        assert_eq!(refused.status, 403);
        assert!(
            !names(&refused.headers)
                .iter()
                .any(|n| n.starts_with("access-control"))
        );
    }
}
