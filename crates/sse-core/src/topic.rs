//! Topics, and the selectors subscribers and tokens choose them with.
//!
//! One server carries many streams of events (a user's notifications, a news channel, the
//! demo ticker): every event has one [`Topic`], and a subscriber asks for the ones it wants
//! with [`Selector`]s: a topic exactly, `PREFIX/*` for every topic under `PREFIX/` at any
//! depth (`a/*` does not match `a` itself), or `*` for all. A token's claims are selectors
//! too, and [`Selector::covers`] decides whether a claim grants what a subscriber asks for.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 128;

/// The topic of an event published without one.
pub const DEFAULT_TOPIC: &str = "default";

/// A validated topic: 1 to 128 bytes of `A-Za-z0-9` and `_ . : / @ ~ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    /// Checks `text` against the rule; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_TOPIC_LEN {
            return Err(format!(
                "a topic is 1 to {MAX_TOPIC_LEN} characters, got {}",
                text.len()
            ));
        }
        if !text.chars().all(topic_char) {
            return Err(format!(
                "topic {:?} may only contain A-Z, a-z, 0-9 and _ . : / @ ~ -",
                shorten(text)
            ));
        }
        Ok(Topic(text.into()))
    }

    /// A topic the server itself uses (`default`, `ticker`).
    pub fn server(text: &'static str) -> Self {
        debug_assert!(Self::parse(text).is_ok(), "server topics follow the rule");
        Topic(text.into())
    }

    /// The topic of events published without one.
    pub fn default_topic() -> Self {
        Topic::server(DEFAULT_TOPIC)
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may appear in a topic.
fn topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.:/@~-".contains(c)
}

/// The first 40 characters of `text`, for error messages about untrusted input.
fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

/// What a subscriber asks for, or a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// Every topic.
    All,
    /// Every topic that starts with this prefix followed by `/` (written `prefix/*`).
    Under(Arc<str>),
    /// One topic.
    Exactly(Topic),
}

impl Selector {
    /// Parses `*`, `PREFIX/*` or a topic.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(Selector::All);
        }
        if let Some(prefix) = text.strip_suffix("/*") {
            // The prefix must itself be a valid topic, so `a/*` is under the topic `a`.
            return Topic::parse(prefix)
                .map(|_| Selector::Under(prefix.into()))
                .map_err(|_| {
                    format!("selector {:?} is not a topic, PREFIX/* or *", shorten(text))
                });
        }
        Topic::parse(text)
            .map(Selector::Exactly)
            .map_err(|error| format!("selector {:?}: {error}", shorten(text)))
    }

    /// Whether an event on `topic` is selected.
    pub fn matches(&self, topic: &Topic) -> bool {
        match self {
            Selector::All => true,
            Selector::Under(prefix) => under(topic.as_str(), prefix),
            Selector::Exactly(exact) => exact == topic,
        }
    }

    /// Whether this selector, held as a claim, grants what `asked` selects: everything
    /// `asked` can ever match must match this one too.
    pub fn covers(&self, asked: &Selector) -> bool {
        match (self, asked) {
            (Selector::All, _) => true,
            (_, Selector::All) => false,
            (Selector::Under(granted), Selector::Under(prefix)) => {
                prefix.as_ref() == granted.as_ref() || under(prefix, granted)
            }
            (Selector::Under(granted), Selector::Exactly(topic)) => under(topic.as_str(), granted),
            (Selector::Exactly(granted), Selector::Exactly(topic)) => granted == topic,
            (Selector::Exactly(_), Selector::Under(_)) => false,
        }
    }
}

/// Whether `text` is `prefix/` followed by at least one more character.
fn under(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty())
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::All => f.write_str("*"),
            Selector::Under(prefix) => write!(f, "{prefix}/*"),
            Selector::Exactly(topic) => f.write_str(topic.as_str()),
        }
    }
}

impl Serialize for Selector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The selectors of one subscription: an event is delivered when any of them matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Selectors(Vec<Selector>);

impl Selectors {
    /// Every topic: what a stream gets when it asks for none and no token limits it.
    pub fn everything() -> Self {
        Selectors(vec![Selector::All])
    }

    /// Exactly these selectors, in the order given, without repeats.
    pub fn new(selectors: Vec<Selector>) -> Self {
        let mut unique: Vec<Selector> = Vec::with_capacity(selectors.len());
        for selector in selectors {
            if !unique.contains(&selector) {
                unique.push(selector);
            }
        }
        Selectors(unique)
    }

    /// Whether an event on `topic` is delivered.
    pub fn matches(&self, topic: &Topic) -> bool {
        self.0.iter().any(|selector| selector.matches(topic))
    }

    /// Whether every topic is delivered (filtering can be skipped).
    pub fn is_everything(&self) -> bool {
        self.0.contains(&Selector::All)
    }

    /// The selectors.
    pub fn iter(&self) -> impl Iterator<Item = &Selector> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(text: &str) -> Topic {
        Topic::parse(text).expect("a valid topic")
    }

    fn selector(text: &str) -> Selector {
        Selector::parse(text).expect("a valid selector")
    }

    #[test]
    fn topics_follow_the_charset_and_length() {
        for good in [
            "a",
            "news/eu",
            "users/42@example.org/inbox",
            "x_.:/@~-y",
            &"a".repeat(128),
        ] {
            assert!(Topic::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "a\nb", "ü", "a*", "a?b", "a,b", &"a".repeat(129)] {
            assert!(Topic::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn selectors_are_a_topic_a_prefix_or_everything() {
        assert_eq!(selector("*"), Selector::All);
        assert_eq!(selector("news/*"), Selector::Under("news".into()));
        assert_eq!(selector("news"), Selector::Exactly(topic("news")));
        for bad in ["", "/*", "news/*/x", "*/news", "a b/*", "**"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(selector("news/*").to_string(), "news/*");
    }

    #[test]
    fn a_prefix_matches_every_depth_below_it_but_not_itself() {
        let news = selector("news/*");
        assert!(news.matches(&topic("news/eu")));
        assert!(news.matches(&topic("news/eu/fr")));
        assert!(!news.matches(&topic("news")));
        assert!(!news.matches(&topic("newsroom/eu")));
        assert!(selector("*").matches(&topic("anything")));
        assert!(selector("news").matches(&topic("news")));
        assert!(!selector("news").matches(&topic("news/eu")));
    }

    #[test]
    fn claims_cover_what_they_contain() {
        let covers = |claim: &str, asked: &str| selector(claim).covers(&selector(asked));
        assert!(covers("*", "*") && covers("*", "a") && covers("*", "a/*"));
        assert!(covers("a/*", "a/*") && covers("a/*", "a/x") && covers("a/*", "a/x/*"));
        assert!(covers("a/x", "a/x"));
        assert!(!covers("a/*", "a"), "a/* does not match a itself");
        assert!(!covers("a/*", "*") && !covers("a", "*"));
        assert!(!covers("a/*", "ab/x") && !covers("a/*", "b/*"));
        assert!(!covers("a/x", "a/*") && !covers("a/x", "a/y"));
        assert!(
            !covers("a/x/*", "a/*"),
            "a narrower claim does not cover a wider ask"
        );
    }

    #[test]
    fn a_union_delivers_what_any_selector_matches() {
        let selectors = Selectors::new(vec![selector("a"), selector("b/*"), selector("a")]);
        assert_eq!(selectors.iter().count(), 2, "repeats dropped");
        assert!(selectors.matches(&topic("a")) && selectors.matches(&topic("b/c")));
        assert!(!selectors.matches(&topic("c")) && !selectors.is_everything());
        assert_eq!(
            serde_json::to_string(&selectors).expect("serialisable"),
            r#"["a","b/*"]"#
        );
    }
}
