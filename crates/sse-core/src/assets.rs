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

/// Whether `path` is one of the client's files.
pub fn is_asset(path: &str) -> bool {
    path == "/index.html" || FILES.iter().any(|(file, _, _)| *file == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_modules_are_served() {
        for path in FILES
            .iter()
            .map(|(path, _, _)| *path)
            .chain(["/index.html"])
        {
            assert!(is_asset(path), "{path}");
            let reply = get(path).expect("served");
            assert!(!reply.body.is_empty(), "{path}");
        }
        assert!(get("/").expect("page").body.contains("app.js"));
        assert!(get("/nope").is_none() && !is_asset("/nope"));
    }
}
