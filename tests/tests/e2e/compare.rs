//! The demo's compare page (`shared-client/compare.html`), read and driven through its DOM
//! hooks only: `.compare-column[data-variant]` with `dd[data-figure]` internals, a
//! `[data-code-view]` with `data-moment`/`data-first`/`data-last` and `li.hl` lines, the
//! pane; and the faults' `button[data-fault]` and `table[data-fault-result]` with one
//! `tr[data-variant]` per variant, each figure's value in `data-value`.
//!
//! A [`CompareView`] is one snapshot taken by one script, so that its parts agree.

use std::collections::BTreeMap;

use fantoccini::Locator;
use serde_json::Value;

use super::chrome::Browser;
use super::{Context, Outcome, Snapshot};

/// Reads the whole page in one go.
const SNAPSHOT: &str = r#"
const text = (node) => node?.textContent ?? "";
const columns = [...document.querySelectorAll(".compare-column[data-variant]")].map((column) => {
  const code = column.querySelector("[data-code-view]");
  const scroll = code?.querySelector(".code-scroll");
  const lit = [...(code?.querySelectorAll("li.hl") ?? [])];
  const first = lit[0];
  const visible = Boolean(first && scroll
    && first.offsetTop >= scroll.scrollTop
    && first.offsetTop + first.offsetHeight <= scroll.scrollTop + scroll.clientHeight);
  const figures = {};
  for (const dd of column.querySelectorAll("dd[data-figure]")) figures[dd.dataset.figure] = text(dd);
  const pane = column.querySelector(".pane");
  return {
    variant: column.dataset.variant,
    figures,
    moment: code?.dataset.moment ?? "",
    first: Number(code?.dataset.first ?? 0),
    last: Number(code?.dataset.last ?? 0),
    lit: lit.map((li) => Number(li.dataset.line)),
    litText: lit.map((li) => li.textContent).join("\n"),
    litVisible: visible,
    docs: code?.querySelector(".code-docs")?.getAttribute("href") ?? "",
    paneState: text(pane?.querySelector('[data-role="state"]')),
    paneWaiting: text(pane?.querySelector('[data-role="waiting"]')),
    paneNotice: text(pane?.querySelector('[data-role="notice"]')),
  };
});
const tables = {};
for (const table of document.querySelectorAll("table[data-fault-result]")) {
  const rows = {};
  for (const tr of table.querySelectorAll("tr[data-variant]")) {
    const figures = {};
    for (const f of tr.querySelectorAll("[data-key]")) figures[f.dataset.key] = JSON.parse(f.dataset.value);
    rows[tr.dataset.variant] = {
      state: tr.dataset.state,
      ok: tr.dataset.ok === "true",
      figures,
      note: text(tr.querySelector(".row-note")),
    };
  }
  tables[table.dataset.faultResult] = { state: table.dataset.state, rows };
}
return { columns, tables, status: text(document.querySelector('[data-role="fault-status"]')) };
"#;

/// One column of the page.
#[derive(Debug, Clone)]
pub struct Column {
    /// The variant.
    pub variant: String,
    /// Each `dd[data-figure]`'s text, by key.
    pub figures: BTreeMap<String, String>,
    /// The code view's moment.
    pub moment: String,
    /// The highlighted region's first and last lines, as the view says.
    pub first: u64,
    /// See `first`.
    pub last: u64,
    /// The highlighted lines' numbers.
    pub lit: Vec<u64>,
    /// Their text.
    pub lit_text: String,
    /// Whether the first highlighted line is scrolled into the code view.
    pub lit_visible: bool,
    /// The guide link of the region.
    pub docs: String,
    /// The pane's state, waiting line and notice.
    pub pane: (String, String, String),
}

/// One variant's row in a fault's result table.
#[derive(Debug, Clone)]
pub struct ResultRow {
    /// `running` or `done`.
    pub state: String,
    /// The fault's verdict.
    pub ok: bool,
    /// Each figure's value, by key.
    pub figures: BTreeMap<String, Value>,
    /// The row's sentence.
    pub note: String,
}

impl ResultRow {
    /// The figure `key` as a number, if it is one.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.figures.get(key).and_then(Value::as_f64)
    }
}

/// The page at one moment.
#[derive(Debug, Clone)]
pub struct CompareView {
    /// The columns, in page order.
    pub columns: Vec<Column>,
    /// Each fault's table: its state and rows by variant.
    pub tables: BTreeMap<String, (String, BTreeMap<String, ResultRow>)>,
    /// The faults' status line.
    pub status: String,
}

impl Snapshot for CompareView {
    async fn take(browser: &Browser) -> Outcome<CompareView> {
        let json = browser.run(SNAPSHOT, vec![]).await?;
        let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
        let columns = json["columns"]
            .as_array()
            .map(|columns| {
                columns
                    .iter()
                    .map(|c| Column {
                        variant: text(c, "variant"),
                        figures: strings(&c["figures"]),
                        moment: text(c, "moment"),
                        first: c["first"].as_u64().unwrap_or(0),
                        last: c["last"].as_u64().unwrap_or(0),
                        lit: numbers(&c["lit"]),
                        lit_text: text(c, "litText"),
                        lit_visible: c["litVisible"].as_bool().unwrap_or(false),
                        docs: text(c, "docs"),
                        pane: (
                            text(c, "paneState"),
                            text(c, "paneWaiting"),
                            text(c, "paneNotice"),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut tables = BTreeMap::new();
        for (fault, table) in json["tables"].as_object().into_iter().flatten() {
            let rows = table["rows"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(variant, row)| {
                    let figures = row["figures"]
                        .as_object()
                        .map(|f| f.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default();
                    let result = ResultRow {
                        state: text(row, "state"),
                        ok: row["ok"].as_bool().unwrap_or(false),
                        figures,
                        note: text(row, "note"),
                    };
                    (variant.clone(), result)
                })
                .collect();
            tables.insert(fault.clone(), (text(table, "state"), rows));
        }
        Ok(CompareView {
            columns,
            tables,
            status: text(&json, "status"),
        })
    }

    fn summary(&self) -> String {
        self.describe()
    }
}

impl CompareView {
    /// The rows of `fault`'s table, once it is done.
    pub fn done(&self, fault: &str) -> Option<&BTreeMap<String, ResultRow>> {
        self.tables
            .get(fault)
            .filter(|(state, _)| state == "done")
            .map(|(_, rows)| rows)
    }

    /// A summary for failure messages.
    pub fn describe(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{}: code {}@{}-{} lit {:?}, pane {:?}, figures {:?}",
                    c.variant, c.moment, c.first, c.last, c.lit, c.pane, c.figures
                )
            })
            .collect();
        let tables: Vec<String> = self
            .tables
            .iter()
            .map(|(fault, (state, rows))| {
                let rows: Vec<String> = rows
                    .iter()
                    .map(|(v, r)| {
                        format!("{v} {} ok={} {:?} {:?}", r.state, r.ok, r.figures, r.note)
                    })
                    .collect();
                format!("{fault} ({state}): {}", rows.join("; "))
            })
            .collect();
        format!(
            "status {:?}\n  {}\n  {}",
            self.status,
            columns.join("\n  "),
            tables.join("\n  ")
        )
    }
}

/// A JSON object of strings as a map.
fn strings(json: &Value) -> BTreeMap<String, String> {
    json.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON array of numbers as a list.
fn numbers(json: &Value) -> Vec<u64> {
    json.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Presses a fault's button from the keyboard, as a person without a mouse would: focus
/// it, then Enter.
pub async fn press(browser: &Browser, fault: &str) -> Outcome {
    let button = browser
        .client
        .find(Locator::Css(&format!("button[data-fault=\"{fault}\"]")))
        .await
        .context(&format!("finding the {fault} button"))?;
    // WebDriver's Enter key; typing into a button focuses it first.
    button
        .send_keys("\u{E007}")
        .await
        .context(&format!("pressing Enter on the {fault} button"))
}
