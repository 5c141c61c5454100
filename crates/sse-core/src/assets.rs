//! The shared browser client (`shared-client/`), compiled into every variant.
//!
//! Embedding the files keeps a release binary self-contained: it serves its page from
//! anywhere, with no path to the repository at run time.

use crate::reply::Reply;

/// `(path, content type, body)` for every file of the client.
const FILES: [(&str, &str, &str); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../../shared-client/index.html"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../../shared-client/style.css"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../shared-client/app.js"),
    ),
    (
        "/stream-pane.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../shared-client/stream-pane.js"),
    ),
];

/// The client file at `path` (`/index.html` is `/`), or `None`.
pub fn get(path: &str) -> Option<Reply> {
    let path = if path == "/index.html" { "/" } else { path };
    FILES
        .iter()
        .find(|(file, _, _)| *file == path)
        .map(|(_, content_type, body)| Reply::text(200, content_type, *body))
}

/// The answer to a request no route of the contract took: the client's file for `GET` and
/// `HEAD`, the contract's JSON 405 for a known path with another method (a file is
/// read-only like `/stream`, so it shares its `Allow`), and JSON 404 for anything else.
pub fn fallback(method: &str, path: &str) -> Reply {
    match get(path) {
        Some(asset) if method == "GET" || method == "HEAD" => asset,
        Some(_) => Reply::method_not_allowed("/stream"),
        None => Reply::method_not_allowed(path),
    }
}

/// Every path the client is served at, for routers that want them listed.
pub fn paths() -> impl Iterator<Item = &'static str> {
    FILES
        .iter()
        .map(|(path, _, _)| *path)
        .chain(["/index.html"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_modules_are_served() {
        for path in paths() {
            let reply = get(path).expect("served");
            assert!(!reply.body.is_empty(), "{path}");
        }
        assert!(get("/").expect("page").body.contains("app.js"));
        assert!(get("/nope").is_none());
    }

    #[test]
    fn the_fallback_serves_reads_and_answers_the_rest_in_json() {
        assert_eq!(fallback("HEAD", "/app.js").status, 200);
        assert_eq!(fallback("POST", "/app.js").status, 405);
        assert_eq!(fallback("GET", "/publish").status, 405);
        assert_eq!(fallback("GET", "/nope").status, 404);
    }
}
