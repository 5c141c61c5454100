//! What `sse-check` prints: one line per check (and one for what it wanted and one for what
//! came back, when it did not pass), all within [`WIDTH`] columns; then what to fix first;
//! or the same as JSON for CI. It lives in the library so that the tests read the report a
//! person reads.
//!
//! Nothing the caller gave as a secret (`--header` values, `--token`) appears in a report:
//! a server may echo a request's headers in an error page, and a report ends up in CI logs.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Check, Problem, Profile, Res};

/// The widest line a report prints: an 100-column terminal.
pub const WIDTH: usize = 100;
/// The longest a JSON report quotes an expectation or an answer.
const JSON_QUOTE: usize = 400;
/// What a secret is replaced with.
const REDACTED: &str = "<redacted>";
/// Parts of a secret at least this long are redacted on their own too (the token of a
/// `Bearer` value, the value of one cookie).
const SECRET_PART: usize = 6;

/// How one check went.
pub struct Outcome {
    /// The check that ran.
    pub check: Check,
    /// What it found.
    pub result: Res,
    /// How long it took.
    pub took: Duration,
}

impl Outcome {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn verdict(&self) -> &'static str {
        match self.result {
            Ok(()) => "PASS",
            Err(Problem::Fail { .. }) => "FAIL",
            Err(Problem::Skip(_)) => "SKIP",
        }
    }

    /// Whether the check failed.
    fn failed(&self) -> bool {
        matches!(self.result, Err(Problem::Fail { .. }))
    }
}

/// A failure to fix first, with the failures that may only follow from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The failed check none of whose prerequisites failed.
    pub name: &'static str,
    /// Failed checks that come after it: fix it, then look at them again.
    pub then: Vec<&'static str>,
}

/// The whole run: which server, which profile and why, and each check's outcome.
pub struct Report {
    /// The URL checked.
    pub url: String,
    /// The profile the checks came from.
    pub profile: Profile,
    /// Why that profile: detected from the stream, or chosen.
    pub why: String,
    /// Every check's outcome, in the order they ran.
    pub outcomes: Vec<Outcome>,
    /// What must not be printed.
    secrets: Vec<String>,
}

impl Report {
    /// An empty report; `secrets` are redacted from everything it prints.
    pub fn new(url: String, profile: Profile, why: String, secrets: Vec<String>) -> Self {
        Report {
            url,
            profile,
            why,
            outcomes: Vec::new(),
            secrets,
        }
    }

    /// How many checks passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |verdict| {
            self.outcomes
                .iter()
                .filter(|o| o.verdict() == verdict)
                .count()
        };
        (count("PASS"), count("FAIL"), count("SKIP"))
    }

    /// The names of the checks that failed, in run order.
    pub fn failed(&self) -> Vec<&'static str> {
        self.outcomes
            .iter()
            .filter(|o| o.failed())
            .map(|o| o.check.name)
            .collect()
    }

    /// The checks `name` comes after, directly or through others, among those that ran.
    fn prerequisites(&self, name: &str) -> BTreeSet<&'static str> {
        let mut found = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(next) = todo.pop() {
            let Some(outcome) = self.outcomes.iter().find(|o| o.check.name == next) else {
                continue;
            };
            for &before in outcome.check.after {
                if found.insert(before) {
                    todo.push(before.to_owned());
                }
            }
        }
        found
    }

    /// The failures to fix first: those none of whose prerequisites failed, the one most
    /// others follow from first (then in run order), each with the failures after it.
    pub fn fix_first(&self) -> Vec<Root> {
        let failed: BTreeSet<&str> = self.failed().into_iter().collect();
        let mut roots: Vec<Root> = self
            .failed()
            .into_iter()
            .filter(|name| self.prerequisites(name).is_disjoint(&failed))
            .map(|name| Root {
                name,
                then: self
                    .failed()
                    .into_iter()
                    .filter(|other| self.prerequisites(other).contains(name))
                    .collect(),
            })
            .collect();
        // A stable sort keeps run order among roots with as many followers.
        roots.sort_by_key(|root| std::cmp::Reverse(root.then.len()));
        roots
    }

    /// 0 when nothing failed, 1 otherwise (2, for a server that cannot be reached or bad
    /// flags, is the command's own).
    pub fn exit_code(&self) -> u8 {
        u8::from(self.counts().1 > 0)
    }

    /// `text` with every secret replaced.
    fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }

    /// The report for a terminal: every line at most [`WIDTH`] columns.
    pub fn text(&self) -> String {
        let width = self.outcomes.iter().map(|o| o.check.name.len()).max();
        let width = width.unwrap_or_default();
        let mut text = self.header();
        for (n, outcome) in self.outcomes.iter().enumerate() {
            let previous = n.checked_sub(1).map(|p| &self.outcomes[p]);
            text.push_str(&self.lines_after(previous, outcome, width));
        }
        text.push_str(&self.footer());
        text
    }

    /// `lines`, each redacted and cut to [`WIDTH`], with line ends.
    fn fitted(&self, lines: impl IntoIterator<Item = String>) -> String {
        lines
            .into_iter()
            .map(|line| one_line(&self.redact(&line), WIDTH) + "\n")
            .collect()
    }

    /// What is checked, against which profile and why, then a blank line.
    pub fn header(&self) -> String {
        self.fitted([
            format!("sse-check {}", self.url),
            format!("profile {}: {}", self.profile.name(), self.why),
            String::new(),
        ])
    }

    /// One check's lines ([`Report::lines_after`]) as the next after those already in the
    /// report.
    pub fn lines(&self, outcome: &Outcome, width: usize) -> String {
        self.lines_after(self.outcomes.last(), outcome, width)
    }

    /// One check's line, names padded to `width`, and what it wanted and got (or why it
    /// was skipped) when it did not pass; headed by its profile when `previous` was of
    /// another (or there was none), so that each check says which profile it is of.
    fn lines_after(&self, previous: Option<&Outcome>, outcome: &Outcome, width: usize) -> String {
        let check = &outcome.check;
        let mut lines = Vec::new();
        if previous.is_none_or(|p| p.check.profile != check.profile) {
            lines.push(match check.profile {
                Profile::Core => "core profile, what any SSE server must do:".to_owned(),
                Profile::SseIdioms => "sse-idioms profile, docs/CONTRACT.md:".to_owned(),
            });
        }
        let verdict = outcome.verdict();
        lines.push(format!("{verdict} {:<width$}  {}", check.name, check.rule));
        match &outcome.result {
            Ok(()) => {}
            Err(Problem::Fail { expected, got }) => {
                lines.push(format!("     want: {expected}"));
                lines.push(format!("     got:  {got}"));
            }
            Err(Problem::Skip(reason)) => lines.push(format!("     why:  {reason}")),
        }
        self.fitted(lines)
    }

    /// The counts, then what to fix first, each root with the failures after it.
    pub fn footer(&self) -> String {
        let (passed, failed, skipped) = self.counts();
        let mut lines = vec![
            String::new(),
            format!("{passed} passed, {failed} failed, {skipped} skipped"),
        ];
        let roots = self.fix_first();
        if !roots.is_empty() {
            lines.extend([String::new(), "Fix first:".to_owned()]);
        }
        for (n, root) in roots.iter().enumerate() {
            let got = self.got(root.name).unwrap_or_default();
            lines.push(format!("{:>3}. {}: {got}", n + 1, root.name));
            let then = root
                .then
                .iter()
                .map(|then| format!("     then again: {then}"));
            lines.extend(then);
        }
        self.fitted(lines)
    }

    /// What came back for the failed check `name`.
    fn got(&self, name: &str) -> Option<&str> {
        self.outcomes
            .iter()
            .find(|o| o.check.name == name)
            .and_then(|o| match &o.result {
                Err(Problem::Fail { got, .. }) => Some(got.as_str()),
                _ => None,
            })
    }

    /// The report for machines: every check with its outcome, the roots, the counts.
    pub fn json(&self) -> Value {
        let quote = |text: &str| one_line(&self.redact(text), JSON_QUOTE);
        let checks: Vec<Value> = self
            .outcomes
            .iter()
            .map(|outcome| {
                let check = &outcome.check;
                let mut entry = json!({
                    "name": check.name,
                    "profile": check.profile.name(),
                    "rule": check.rule,
                    "after": check.after,
                    "outcome": outcome.verdict().to_ascii_lowercase(),
                    "ms": outcome.took.as_millis() as u64,
                });
                match &outcome.result {
                    Ok(()) => {}
                    Err(Problem::Fail { expected, got }) => {
                        entry["expected"] = quote(expected).into();
                        entry["got"] = quote(got).into();
                    }
                    Err(Problem::Skip(reason)) => entry["reason"] = quote(reason).into(),
                }
                entry
            })
            .collect();
        let roots: Vec<Value> = self
            .fix_first()
            .into_iter()
            .map(|root| json!({ "check": root.name, "then": root.then }))
            .collect();
        let (passed, failed, skipped) = self.counts();
        json!({
            "url": self.redact(&self.url),
            "profile": self.profile.name(),
            "profile_reason": self.redact(&self.why),
            "checks": checks,
            "fix_first": roots,
            "passed": passed,
            "failed": failed,
            "skipped": skipped,
        })
    }
}

/// `text` on one line of at most `max` characters: line breaks and other control
/// characters escaped, the rest cut with `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let mut line = String::new();
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` with each secret, and each long enough part of one, replaced by `<redacted>`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let parts = secrets.iter().flat_map(|secret| {
        secret
            .split(|c: char| c.is_whitespace() || ";,=".contains(c))
            .filter(|part| part.len() >= SECRET_PART)
            .chain(std::iter::once(secret.as_str()))
    });
    // Longest first, so that a whole secret goes before the parts it contains.
    let mut parts: Vec<&str> = parts.filter(|part| !part.is_empty()).collect();
    parts.sort_by_key(|part| std::cmp::Reverse(part.len()));
    parts
        .into_iter()
        .fold(text.to_owned(), |text, part| text.replace(part, REDACTED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    /// An outcome of the check `name` (which must exist).
    fn outcome(name: &str, result: Res) -> Outcome {
        Outcome {
            check: checks::named(name).expect("a real check"),
            result,
            took: Duration::from_millis(5),
        }
    }

    /// A report on the core checks where `failing` fail and the rest pass.
    fn report(failing: &[&str], secrets: Vec<String>) -> Report {
        let mut report = Report::new(
            "http://127.0.0.1:1".into(),
            Profile::Core,
            "chosen".into(),
            secrets,
        );
        for check in checks::core::all() {
            let result = if failing.contains(&check.name) {
                Err(Problem::fail("x", format!("{} went wrong", check.name)))
            } else {
                Ok(())
            };
            report.outcomes.push(outcome(check.name, result));
        }
        report
    }

    #[test]
    fn the_failure_others_follow_from_comes_first() {
        let report = report(
            &[
                "stream_tells_proxies_not_to_buffer",
                "ids_are_unique_and_never_reused",
                "resume_after_last_event_id_continues_without_repeat",
            ],
            vec![],
        );
        assert_eq!(
            report.fix_first(),
            [
                Root {
                    name: "ids_are_unique_and_never_reused",
                    then: vec!["resume_after_last_event_id_continues_without_repeat"],
                },
                Root {
                    name: "stream_tells_proxies_not_to_buffer",
                    then: vec![],
                },
            ]
        );
        assert_eq!(report.exit_code(), 1);
    }

    #[test]
    fn a_stream_that_does_not_open_is_the_one_thing_to_fix() {
        let all: Vec<&str> = checks::core::all().iter().map(|c| c.name).collect();
        let roots = report(&all, vec![]).fix_first();
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].name, checks::core::STREAM);
        assert_eq!(roots[0].then.len(), all.len() - 1);
    }

    #[test]
    fn every_line_fits_the_width_and_html_stays_on_one_line() {
        let mut report = report(&[], vec![]);
        report.outcomes[0].result = Err(Problem::fail(
            "200 text/event-stream",
            format!(
                "404 text/html \"<!DOCTYPE html>\n<html>{}\"",
                "x".repeat(300)
            ),
        ));
        let text = report.text();
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.contains("<!DOCTYPE html>\\n<html>"), "{text}");
    }

    #[test]
    fn secrets_are_never_printed() {
        let secret = "Bearer s3cr3t-token-value".to_owned();
        let mut report = report(&[], vec![secret]);
        report.outcomes[0].result =
            Err(Problem::fail("x", "401: token s3cr3t-token-value is wrong"));
        let printed = format!("{}{}", report.text(), report.json());
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains(REDACTED));
    }

    #[test]
    fn one_line_escapes_breaks_and_cuts() {
        assert_eq!(one_line("a\r\nb", 10), "a\\r\\nb");
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
