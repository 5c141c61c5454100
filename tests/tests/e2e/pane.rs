//! The shared client's stream pane (`shared-client/stream-pane.js`), read and driven
//! through its DOM hooks only: `.pane[data-pane]` with `[data-role=...]` elements, and one
//! `li[data-type][data-id]` per event.
//!
//! A [`PaneView`] is one snapshot taken by a single script, so that its fields agree with
//! each other (several WebDriver round trips could straddle an event). The publish form is
//! driven through WebDriver like a person would: typing into the fields, clicking Publish.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use super::chrome::Browser;
use super::{Context, Outcome, Snapshot, wait_until_shown};

/// Reads the pane in one go; the events come oldest first (the pane prepends new ones).
const SNAPSHOT: &str = r#"
const pane = document.querySelector(".pane[data-pane]");
if (!pane) return null;
const text = (role) => pane.querySelector(`[data-role="${role}"]`)?.textContent ?? "";
const rows = [...pane.querySelectorAll('[data-role="events"] > li')].reverse();
return {
  state: text("state"),
  reconnects: text("reconnects"),
  lastId: text("last-id"),
  server: text("server"),
  notice: text("notice"),
  waiting: text("waiting"),
  topics: text("topics"),
  publishStatus: text("publish-status"),
  rows: rows.map((li) => ({
    type: li.dataset.type ?? "",
    id: li.dataset.id ?? "",
    data: li.querySelector(".event-data")?.textContent ?? li.textContent,
    unparsed: li.dataset.unparsed === "true",
    bar: li.querySelector(".bar-fill")?.style.width ?? null,
  })),
};
"#;

/// One event as the pane lists it.
#[derive(Debug, Clone)]
pub struct Row {
    /// `data-type`: the event's name (`message` for unnamed events).
    pub kind: String,
    /// `data-id`: the event's own id, "" when it carries none (welcome, reset) or repeats
    /// the previous one.
    pub id: String,
    /// The rendered data.
    pub data: String,
    /// The pane could not render an `update` from its JSON.
    pub unparsed: bool,
    /// The width of an `update`'s value bar, when it drew one.
    pub bar: Option<String>,
}

/// The pane at one moment.
#[derive(Debug, Clone)]
pub struct PaneView {
    /// `connecting`, `open`, `waiting` (refused; the pane will try again) or `closed`.
    pub state: String,
    /// How often the stream reopened.
    pub reconnects: u32,
    /// The last event id seen.
    pub last_id: String,
    /// The server named by `welcome`.
    pub server: String,
    /// The reset notice ("" when none).
    pub notice: String,
    /// Why the stream is down and when the pane tries again ("" while open).
    pub waiting: String,
    /// The topics the stream carries, as its welcome named them.
    pub topics: String,
    /// The publish form's status line.
    pub publish_status: String,
    /// Every listed event, oldest first.
    pub rows: Vec<Row>,
}

impl PaneView {
    /// Takes a snapshot of the pane on the current page.
    pub async fn read(browser: &Browser) -> Outcome<PaneView> {
        let json = browser.run(SNAPSHOT, vec![]).await?;
        if json.is_null() {
            return Err("expected a `.pane[data-pane]` on the page; there is none".into());
        }
        let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
        let rows = json["rows"]
            .as_array()
            .map(|rows| rows.iter().map(row).collect())
            .unwrap_or_default();
        Ok(PaneView {
            state: text("state"),
            reconnects: text("reconnects").trim().parse().unwrap_or(0),
            last_id: text("lastId"),
            server: text("server"),
            notice: text("notice"),
            waiting: text("waiting"),
            topics: text("topics"),
            publish_status: text("publishStatus"),
            rows,
        })
    }

    /// The ids of the listed events, oldest first, leaving out rows without one.
    pub fn ids(&self) -> Vec<&str> {
        self.rows
            .iter()
            .filter(|r| !r.id.is_empty())
            .map(|r| r.id.as_str())
            .collect()
    }

    /// The first row of type `kind` with an id, if any.
    pub fn first_of(&self, kind: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.kind == kind && !r.id.is_empty())
    }

    /// A one-line summary for failure messages: status and the last few rows.
    pub fn describe(&self) -> String {
        let recent: Vec<String> = self
            .rows
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|r| format!("{}#{}", r.kind, r.id))
            .collect();
        format!(
            "state={:?} reconnects={} server={:?} last-id={:?} notice={:?} waiting={:?} \
             publish-status={:?}, {} rows, last: [{}]",
            self.state,
            self.reconnects,
            self.server,
            self.last_id,
            self.notice,
            self.waiting,
            self.publish_status,
            self.rows.len(),
            recent.join(", ")
        )
    }
}

/// One row of the snapshot's JSON.
fn row(json: &Value) -> Row {
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
    Row {
        kind: text("type"),
        id: text("id"),
        data: text("data"),
        unparsed: json["unparsed"].as_bool().unwrap_or(false),
        bar: json["bar"].as_str().map(str::to_owned),
    }
}

impl Snapshot for PaneView {
    async fn take(browser: &Browser) -> Outcome<Self> {
        PaneView::read(browser).await
    }

    fn summary(&self) -> String {
        self.describe()
    }
}

/// Waits until the pane satisfies `condition`, at most `bound`; returns that snapshot.
pub async fn wait_until(
    browser: &Browser,
    what: &str,
    bound: Duration,
    condition: impl Fn(&PaneView) -> bool,
) -> Outcome<PaneView> {
    wait_until_shown(browser, what, bound, condition).await
}

/// Fills in the pane's publish form and clicks Publish.
pub async fn publish_with_form(browser: &Browser, event: &str, data: &str, token: &str) -> Outcome {
    let form = browser
        .client
        .find(Locator::Css(".pane[data-pane] form[data-role=publish]"))
        .await
        .context("finding the publish form")?;
    for (field, value) in [
        ("input[name=event]", event),
        ("textarea[name=data]", data),
        ("input[name=token]", token),
    ] {
        form.find(Locator::Css(field))
            .await
            .context(&format!("finding {field} in the form"))?
            .send_keys(value)
            .await
            .context(&format!("typing into {field}"))?;
    }
    form.find(Locator::Css("button[type=submit]"))
        .await
        .context("finding the Publish button")?
        .click()
        .await
        .context("clicking Publish")
}
