//! A static page on an origin of its own, for the cross-origin scenario.
//!
//! [`StaticPage`] answers every request on its own 127.0.0.1 port with one HTML page, so
//! its origin (`http://127.0.0.1:<port>`) differs from the server's. [`CROSS_ORIGIN_PAGE`]
//! opens `new EventSource(url, {withCredentials: true})` to the stream named in its query
//! and records what happens in `window.crossOrigin` (and on screen, for screenshots).

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::chrome::Browser;
use super::{Context, Outcome};

/// The page: `?stream=<URL of GET /stream>`.
pub const CROSS_ORIGIN_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <!-- No favicon request: its 404 would be a console error. -->
  <link rel="icon" href="data:,">
  <title>sse-idioms cross-origin check</title>
</head>
<body>
  <h1>Cross-origin EventSource with credentials</h1>
  <p>page <code id="origin"></code>, stream <code id="url"></code></p>
  <p>state: <strong id="state">connecting</strong></p>
  <ol id="events"></ol>
  <script>
    const url = new URLSearchParams(location.search).get("stream");
    const report = { url, state: "connecting", opened: false, errors: 0, events: [] };
    window.crossOrigin = report;
    document.getElementById("origin").textContent = location.origin;
    document.getElementById("url").textContent = url;
    const source = new EventSource(url, { withCredentials: true });
    report.withCredentials = source.withCredentials;
    function show(state) {
      report.state = state;
      document.getElementById("state").textContent = state;
    }
    source.onopen = () => {
      report.opened = true;
      show("open");
    };
    // CLOSED means the browser gave up for good (as it must on a CORS failure); CONNECTING
    // means it will retry.
    source.onerror = () => {
      report.errors += 1;
      show(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
    };
    function record(event) {
      report.events.push({ type: event.type, id: event.lastEventId, data: event.data });
      const item = document.createElement("li");
      item.textContent = `${event.type} ${event.lastEventId} ${event.data}`;
      document.getElementById("events").append(item);
    }
    source.onmessage = record;
    for (const type of ["welcome", "reset", "greeting", "update"]) source.addEventListener(type, record);
  </script>
</body>
</html>
"#;

/// A server answering every request with one page; it stops when dropped.
pub struct StaticPage {
    /// Where it listens.
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl StaticPage {
    /// Serves `html` on a free 127.0.0.1 port.
    pub async fn serve(html: &'static str) -> Outcome<StaticPage> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the static page server")?;
        let addr = listener.local_addr().context("the page server's address")?;
        let accept = tokio::spawn(async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, html));
                }
            }
        });
        Ok(StaticPage { addr, accept })
    }

    /// The page's origin, as the browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StaticPage {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads one request head and answers with the page, closing the connection after it.
async fn answer(mut stream: TcpStream, html: &'static str) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    // A head bigger than 64 KiB is not a browser's; stop reading and answer anyway.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What [`CROSS_ORIGIN_PAGE`] recorded.
#[derive(Debug, Clone)]
pub struct CrossOriginReport {
    /// `connecting`, `open` or `closed`.
    pub state: String,
    /// Whether `onopen` ever fired.
    pub opened: bool,
    /// How many `error` events fired.
    pub errors: u64,
    /// The `EventSource`'s own `withCredentials`.
    pub with_credentials: bool,
    /// `(type, lastEventId, data)` of every event received.
    pub events: Vec<(String, String, String)>,
}

impl CrossOriginReport {
    /// Reads `window.crossOrigin` from the current page.
    pub async fn read(browser: &Browser) -> Outcome<CrossOriginReport> {
        let json = browser
            .run("return window.crossOrigin ?? null;", vec![])
            .await?;
        if json.is_null() {
            return Err(
                "expected the cross-origin page's window.crossOrigin; there is none".into(),
            );
        }
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
        Ok(CrossOriginReport {
            state: text(&json, "state"),
            opened: json["opened"].as_bool().unwrap_or(false),
            errors: json["errors"].as_u64().unwrap_or(0),
            with_credentials: json["withCredentials"].as_bool().unwrap_or(false),
            events: json["events"]
                .as_array()
                .map(|events| {
                    events
                        .iter()
                        .map(|e| (text(e, "type"), text(e, "id"), text(e, "data")))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// A one-line summary for failure messages.
    pub fn describe(&self) -> String {
        let kinds: Vec<String> = self
            .events
            .iter()
            .take(8)
            .map(|(kind, id, _)| format!("{kind}#{id}"))
            .collect();
        format!(
            "state={:?} opened={} errors={} withCredentials={} {} events: [{}]",
            self.state,
            self.opened,
            self.errors,
            self.with_credentials,
            self.events.len(),
            kinds.join(", ")
        )
    }
}
