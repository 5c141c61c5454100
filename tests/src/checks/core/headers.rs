//! The core profile's response headers: what makes a browser open the stream at all, and
//! what keeps caches, compressors and proxies from holding it back.

use crate::client::{self, Raw, StreamRequest};
use crate::{Res, Target, ensure};

/// WHATWG §9.2.3: a browser fails the connection (and never reconnects) unless the answer
/// is `200` with the MIME type `text/event-stream` (parameters such as a charset allowed).
pub async fn stream_answers_200_with_text_event_stream(target: Target) -> Res {
    let mut raw = Raw::open(&target, &StreamRequest::default()).await?;
    let content_type = client::header(&raw.headers, "content-type").to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if raw.status == 200 && essence == "text/event-stream" {
        return Ok(());
    }
    Err(crate::Problem::fail(
        format!("200 text/event-stream for GET {}", target.stream_path),
        raw.summary().await,
    ))
}

/// Practice: `Cache-Control: no-cache` (or `no-store`), so that no cache between the server
/// and the browser answers a reconnect with a stale copy of the stream.
pub async fn stream_is_marked_no_cache(target: Target) -> Res {
    let raw = Raw::open(&target, &StreamRequest::default()).await?;
    let cache_control = client::header(&raw.headers, "cache-control").to_ascii_lowercase();
    let directives: Vec<&str> = cache_control.split(',').map(str::trim).collect();
    ensure!(
        directives.contains(&"no-cache") || directives.contains(&"no-store"),
        "Cache-Control: no-cache",
        shown(&cache_control)
    );
    Ok(())
}

/// Practice (§9.2.7 warns of layers "unaware of the timing requirements"): a client that
/// accepts gzip still gets the stream uncompressed, since a compressor holds events back
/// until its block fills.
pub async fn stream_is_sent_uncompressed_to_gzip_clients(target: Target) -> Res {
    let options = StreamRequest {
        accept_encoding: Some("gzip, deflate, br, zstd".into()),
        ..Default::default()
    };
    let raw = Raw::open(&target, &options).await?;
    uncompressed(&raw)
}

/// The stream's `Content-Encoding` is absent or `identity`.
pub fn uncompressed(raw: &Raw) -> Res {
    let encoding = client::header(&raw.headers, "content-encoding");
    ensure!(
        encoding.is_empty() || encoding.eq_ignore_ascii_case("identity"),
        "no Content-Encoding",
        format!("Content-Encoding: {encoding}")
    );
    Ok(())
}

/// Practice: `X-Accel-Buffering: no`, the header nginx (and proxies that copied it) reads
/// to pass a response on as it comes rather than buffer it whole.
pub async fn stream_tells_proxies_not_to_buffer(target: Target) -> Res {
    let raw = Raw::open(&target, &StreamRequest::default()).await?;
    let hint = client::header(&raw.headers, "x-accel-buffering");
    ensure!(
        hint.eq_ignore_ascii_case("no"),
        "X-Accel-Buffering: no",
        shown(hint)
    );
    Ok(())
}

/// A header value as a failure shows it: absent headers say so.
fn shown(value: &str) -> String {
    if value.is_empty() {
        "no such header".to_owned()
    } else {
        value.to_owned()
    }
}
