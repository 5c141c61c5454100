//! The three idiom files, as the demo was built from them, and the regions of each that the
//! compare page highlights: where a client joins, where a lagging one is cut, where a client's
//! place is freed, and the shutdown path.
//!
//! The files are embedded at build time, so the page shows the code that runs. A region is
//! found by two stable lines of the file itself (a line naming an item or a branch, and the
//! line it ends at), not by line numbers, so an edit above it moves it along; the tests below
//! fail if an edit removes a marker line or makes it ambiguous. Each region also names the
//! paragraph of docs/IDIOMS.md that explains it, as a text fragment of that paragraph.

use serde_json::{Value, json};

/// The guide the regions link to, served by the demo beside the page.
pub const IDIOMS_MD: &str = include_str!("../../../docs/IDIOMS.md");

/// What a region shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// A client connects: the replay/live splice.
    Join,
    /// A subscriber falls `--queue` behind and is cut.
    Lag,
    /// A client goes away and its place is freed.
    Disconnect,
    /// The server stops: how every stream ends.
    Shutdown,
}

impl Moment {
    /// Every moment, in the order the page lists them.
    pub const ALL: [Moment; 4] = [
        Moment::Join,
        Moment::Lag,
        Moment::Disconnect,
        Moment::Shutdown,
    ];

    /// Its name in the API and the page.
    pub fn name(self) -> &'static str {
        match self {
            Moment::Join => "join",
            Moment::Lag => "lag",
            Moment::Disconnect => "disconnect",
            Moment::Shutdown => "shutdown",
        }
    }

    /// What the highlighted lines are, in a few words.
    fn title(self) -> &'static str {
        match self {
            Moment::Join => "a client joins: replay, then live, with no gap",
            Moment::Lag => "the lag branch: a subscriber --queue behind is cut",
            Moment::Disconnect => "a client leaves: where its place is freed",
            Moment::Shutdown => "the shutdown path: how every stream ends",
        }
    }

    /// The bullet of docs/IDIOMS.md's idiom sections that explains it.
    fn bullet(self) -> &'static str {
        match self {
            Moment::Join => "Joining and the splice",
            Moment::Lag => "Slow client",
            Moment::Disconnect => "Disconnect",
            Moment::Shutdown => "Shutdown",
        }
    }
}

/// One highlighted region: from the line containing `from` through the first line at or
/// after it containing `to`; `docs` is text found once in its IDIOMS.md paragraph.
#[derive(Debug)]
struct Region {
    /// What it shows.
    moment: Moment,
    /// A line unique in the file: where the region starts.
    from: &'static str,
    /// Where it ends.
    to: &'static str,
    /// Words of its paragraph in IDIOMS.md, unique there: the link's text fragment.
    docs: &'static str,
}

/// One idiom file and its regions.
#[derive(Debug)]
pub struct IdiomFile {
    /// The variant it is the idiom of.
    pub variant: &'static str,
    /// Its path in the repository.
    path: &'static str,
    /// Its text, as built.
    source: &'static str,
    /// What the page can highlight in it.
    regions: [Region; 4],
}

/// Every idiom file, in the page's column order.
pub static FILES: [IdiomFile; 3] = [
    IdiomFile {
        variant: "axum-stream-map",
        path: "crates/axum-stream-map/src/stream.rs",
        source: include_str!("../../axum-stream-map/src/stream.rs"),
        regions: [
            Region {
                moment: Moment::Join,
                from: "// retry, welcome, reset?, replay..., live...",
                to: ".map(|event| event.frame());",
                docs: "`service.open_stream` returns the replay",
            },
            Region {
                moment: Moment::Lag,
                from: "let live = tokio_stream::StreamExt::map_while",
                to: "None",
                docs: "a receiver further behind",
            },
            Region {
                moment: Moment::Disconnect,
                from: "// The client's places in the connected-clients gauge",
                to: "let _connected = &guards;",
                docs: "hyper notices when a write fails and drops the body",
            },
            Region {
                moment: Moment::Shutdown,
                from: ".take_until(opening.end)",
                to: ".take_until(opening.end)",
                docs: "`take_until(shutdown)` ends every stream",
            },
        ],
    },
    IdiomFile {
        variant: "actix-push-loop",
        path: "crates/actix-push-loop/src/broadcaster.rs",
        source: include_str!("../../actix-push-loop/src/broadcaster.rs"),
        regions: [
            Region {
                moment: Moment::Join,
                from: "// The splice. The hub's replay",
                to: "replay.events.retain(",
                docs: "the care this idiom needs that the others do not",
            },
            Region {
                moment: Moment::Lag,
                from: "// The slow-consumer policy.",
                to: "false",
                docs: "a full queue (`--queue` behind)",
            },
            Region {
                moment: Moment::Disconnect,
                from: "/// Drops the clients that left",
                to: "!closed && !client.tx.is_closed()",
                docs: "actix reads a client's close (a FIN) but goes on streaming",
            },
            Region {
                moment: Moment::Shutdown,
                from: "clients.closed = true;",
                to: "clients.list.clear();",
                docs: "the broadcaster clears the list, which drops every sender",
            },
        ],
    },
    IdiomFile {
        variant: "warp-generator",
        path: "crates/warp-generator/src/generator.rs",
        source: include_str!("../../warp-generator/src/generator.rs"),
        regions: [
            Region {
                moment: Moment::Join,
                from: "yield frame::retry(retry);",
                to: "yield event.frame();",
                docs: "`open_stream` hands over replay and",
            },
            Region {
                moment: Moment::Lag,
                from: "Err(RecvError::Lagged(missed))",
                to: "return;",
                docs: "`Lagged` from the receiver is counted and the generator",
            },
            Region {
                moment: Moment::Disconnect,
                from: "// Owned by the generator, so the gauges",
                to: "let _connected = (guard, running);",
                docs: "hyper drops the response, which drops the generator",
            },
            Region {
                moment: Moment::Shutdown,
                from: "let received = tokio::select! {",
                to: "() = &mut end => return,",
                docs: "the live wait is a `biased` `select!`",
            },
        ],
    },
];

impl IdiomFile {
    /// The idiom file of `variant`, if it is one of the three.
    pub fn of(variant: &str) -> Option<&'static IdiomFile> {
        FILES.iter().find(|file| file.variant == variant)
    }

    /// The 1-based first and last lines of the region for `moment`; `None` if a marker is
    /// missing (which the tests rule out for the files as built).
    pub fn lines(&self, moment: Moment) -> Option<(usize, usize)> {
        let region = self.regions.iter().find(|r| r.moment == moment)?;
        let lines: Vec<&str> = self.source.lines().collect();
        let first = lines.iter().position(|line| line.contains(region.from))?;
        let last = first
            + lines[first..]
                .iter()
                .position(|line| line.contains(region.to))?;
        Some((first + 1, last + 1))
    }

    /// `GET /code/{variant}`: the file, and each region's lines, title and guide link.
    pub fn to_json(&self) -> Value {
        let regions: serde_json::Map<String, Value> = self
            .regions
            .iter()
            .filter_map(|region| {
                let (first, last) = self.lines(region.moment)?;
                let entry = json!({
                    "first": first,
                    "last": last,
                    "title": region.moment.title(),
                    "docs": format!("/docs/IDIOMS.md#:~:text={}", fragment(region.docs)),
                    "docs_title": format!("docs/IDIOMS.md, {}: {}", section(self.variant), region.moment.bullet()),
                });
                Some((region.moment.name().to_owned(), entry))
            })
            .collect();
        json!({
            "variant": self.variant,
            "path": self.path,
            "source": self.source,
            "regions": regions,
        })
    }
}

/// The heading of a variant's section in docs/IDIOMS.md.
fn section(variant: &str) -> &'static str {
    match variant {
        "axum-stream-map" => "Stream map",
        "actix-push-loop" => "Push loop",
        _ => "Generator",
    }
}

/// Text as a URL text fragment: every byte but letters and digits percent-encoded (the
/// fragment syntax gives `-`, `,` and `&` meanings of their own).
fn fragment(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_region_is_found_once_and_is_short() {
        for file in &FILES {
            let lines: Vec<&str> = file.source.lines().collect();
            for region in &file.regions {
                let starts = lines.iter().filter(|l| l.contains(region.from)).count();
                assert_eq!(
                    starts, 1,
                    "{}: `{}` must be on exactly one line",
                    file.path, region.from
                );
                let (first, last) = file
                    .lines(region.moment)
                    .unwrap_or_else(|| panic!("{}: no end `{}`", file.path, region.to));
                assert!(
                    last >= first && last - first < 16,
                    "{}: {:?} spans {first}-{last}",
                    file.path,
                    region.moment
                );
            }
            let moments: Vec<Moment> = file.regions.iter().map(|r| r.moment).collect();
            assert_eq!(moments, Moment::ALL, "{}", file.path);
        }
    }

    #[test]
    fn every_region_links_to_one_paragraph_of_its_own_section() {
        for file in &FILES {
            let heading = format!("## {}", section(file.variant));
            let start = IDIOMS_MD.find(&heading).expect("the idiom's section");
            let end = IDIOMS_MD[start + 3..]
                .find("\n## ")
                .map_or(IDIOMS_MD.len(), |at| start + 3 + at);
            let own = &IDIOMS_MD[start..end];
            for region in &file.regions {
                assert_eq!(
                    IDIOMS_MD.matches(region.docs).count(),
                    1,
                    "`{}` must occur once in IDIOMS.md",
                    region.docs
                );
                let paragraph = own
                    .split("\n- ")
                    .find(|p| p.contains(region.docs))
                    .unwrap_or_else(|| panic!("`{}` in {heading}", region.docs));
                assert!(
                    paragraph.starts_with(&format!("**{}**", region.moment.bullet())),
                    "`{}` is not in {heading}'s {} bullet",
                    region.docs,
                    region.moment.bullet()
                );
            }
        }
    }

    #[test]
    fn the_json_names_the_lines_and_the_link() {
        let file = IdiomFile::of("warp-generator").expect("the generator");
        let json = file.to_json();
        let lag = &json["regions"]["lag"];
        let first = lag["first"].as_u64().expect("a line") as usize;
        let line = file.source.lines().nth(first - 1).expect("in the file");
        assert!(line.contains("Lagged"), "{line}");
        assert!(
            lag["docs"]
                .as_str()
                .is_some_and(|d| d.starts_with("/docs/IDIOMS.md#:~:text=%60Lagged%60")),
            "{lag}"
        );
        assert!(IdiomFile::of("nope").is_none());
    }
}
