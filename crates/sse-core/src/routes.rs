//! The contract's paths, the methods each answers, and what a request no route took gets.
//!
//! Each framework routes the contract's endpoints in its own words, but they disagree on
//! everything else: a wrong method gets an empty 405 from actix, warp's rejections are text,
//! and axum's 405 has no body. So every variant sends whatever its router did not take to
//! [`unrouted`], and the answer is the same JSON everywhere.

use crate::assets;
use crate::reply::Reply;

/// The methods `path` answers, as an `Allow` header lists them; `None` for a path the
/// contract does not define.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/publish" => Some("POST, OPTIONS"),
        "/stream" | "/metrics" | "/healthz" => Some("GET, OPTIONS"),
        _ if assets::is_asset(path) => Some("GET, HEAD, OPTIONS"),
        _ => None,
    }
}

/// The answer to a request no route took: the client's file for `GET` and `HEAD` of one of
/// its paths, the contract's JSON 405 with `Allow` for a known path asked with another
/// method, and JSON 404 for any other path.
pub fn unrouted(method: &str, path: &str) -> Reply {
    if (method == "GET" || method == "HEAD")
        && let Some(asset) = assets::get(path)
    {
        return asset;
    }
    match allowed_methods(path) {
        Some(allow) => Reply::method_not_allowed(allow),
        None => Reply::not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_only_and_everything_else_is_json() {
        assert_eq!(unrouted("HEAD", "/app.js").status, 200);
        assert_eq!(unrouted("GET", "/index.html").status, 200);
        let post = unrouted("POST", "/app.js");
        assert_eq!(post.status, 405);
        assert!(
            post.headers
                .contains(&("allow", "GET, HEAD, OPTIONS".into()))
        );
        assert_eq!(unrouted("GET", "/nope").status, 404);
        assert_eq!(unrouted("DELETE", "/nope").status, 404);
    }

    #[test]
    fn known_paths_name_their_methods() {
        let publish = unrouted("GET", "/publish");
        assert_eq!(publish.status, 405);
        assert!(publish.headers.contains(&("allow", "POST, OPTIONS".into())));
        for path in ["/stream", "/metrics", "/healthz"] {
            assert_eq!(allowed_methods(path), Some("GET, OPTIONS"), "{path}");
            assert_eq!(unrouted("POST", path).status, 405, "{path}");
        }
    }
}
