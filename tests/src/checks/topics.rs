//! Contract point 16: topics. Every event has one; a stream asks for the ones it wants with
//! `?topic=` selectors (a topic, `PREFIX/*`, or `*`; repeatable, the union) and gets only
//! those, live and in replay.

use std::time::Duration;

use serde_json::json;

use crate::client::{self, Events, Publisher, StreamRequest, Welcome, describe};
use crate::{Problem, Res, Target, ensure};

/// How long a published event may take to arrive.
const WITHIN: Duration = Duration::from_secs(10);

/// A stream request for `selectors` (none: no `topic=` at all).
pub fn on_topics(selectors: &[&str]) -> StreamRequest {
    StreamRequest {
        params: selectors
            .iter()
            .map(|s| ("topic".to_owned(), (*s).to_owned()))
            .collect(),
        ..Default::default()
    }
}

/// Publishes `data` on `topic` (none: no `"topic"` field) and returns the id.
pub async fn publish_on(publisher: &mut Publisher, topic: Option<&str>, data: &str) -> Res<String> {
    let mut body = json!({ "event": "topical", "data": data });
    if let Some(topic) = topic {
        body["topic"] = topic.into();
    }
    let receipt = publisher.send("application/json", body.to_string()).await?;
    let json: serde_json::Value = serde_json::from_str(&receipt.body).unwrap_or_default();
    match (receipt.status, json["id"].as_str()) {
        (202, Some(id)) => Ok(id.to_owned()),
        (status, _) => Err(Problem::fail(
            format!("202 for a publish on {topic:?}"),
            format!("{status} {}", client::tail(&receipt.body)),
        )),
    }
}

/// Publishes one event per topic of `topics`, then an end marker on `end_topic`; the ids,
/// and the marker's.
async fn publish_each(
    target: &Target,
    topics: &[&str],
    end_topic: &str,
) -> Res<(Vec<(String, String)>, String)> {
    let mut publisher = Publisher::connect(target).await?;
    let mut ids = Vec::new();
    for topic in topics {
        ids.push((
            (*topic).to_owned(),
            publish_on(&mut publisher, Some(topic), topic).await?,
        ));
    }
    let end = publish_on(&mut publisher, Some(end_topic), "end").await?;
    Ok((ids, end))
}

/// The data of the `topical` events a stream delivers until `end`.
async fn topical_until(events: &mut Events, end: &str) -> Res<Vec<String>> {
    let seen = events.until(WITHIN, |e| e.id == end).await?;
    Ok(seen
        .into_iter()
        .filter(|e| e.event == "topical" && e.id != end)
        .map(|e| e.data)
        .collect())
}

/// Point 16: a stream on `?topic=a` gets only `a`'s events, live and, resuming, in replay.
pub async fn topics_filter_live_and_replay(target: Target) -> Res {
    let mut live = Events::open(&target, &on_topics(&["t-a"])).await?;
    live.welcome().await?;
    let (ids, end) = publish_each(&target, &["t-a", "t-b", "t-a", "t-c"], "t-a").await?;
    let got = topical_until(&mut live, &end).await?;
    ensure!(
        got == ["t-a", "t-a"],
        "only the two t-a events, live",
        format!("{got:?}")
    );
    // Resuming after the first event: the replay is filtered the same way.
    let mut resumed = Events::open(
        &target,
        &StreamRequest {
            last_event_id: Some(ids[0].1.clone()),
            ..on_topics(&["t-a"])
        },
    )
    .await?;
    let opening = resumed.opening().await?;
    ensure!(
        opening.reset().is_none(),
        "no reset resuming a filtered stream after a retained id",
        format!("{:?}", opening.first)
    );
    let mut replay: Vec<String> = opening
        .first
        .iter()
        .filter(|e| e.event == "topical" && e.id != end)
        .map(|e| e.data.clone())
        .collect();
    if opening.first.as_ref().is_none_or(|e| e.id != end) {
        replay.extend(topical_until(&mut resumed, &end).await?);
    }
    ensure!(
        replay == ["t-a"],
        "the replay after the first t-a event: only the second",
        format!("{replay:?}")
    );
    Ok(())
}

/// Point 16: selectors are a union; `PREFIX/*` matches below the prefix at any depth but
/// not the prefix itself; `*` matches everything. A prefix alone is checked too: a server may
/// serve one selector from a feed of its own (sse-idioms does), and a union from another.
pub async fn selectors_are_a_union_of_topics_prefixes_and_star(target: Target) -> Res {
    let mut union = Events::open(&target, &on_topics(&["u-a", "u-n/*"])).await?;
    union.welcome().await?;
    let mut prefix = Events::open(&target, &on_topics(&["u-n/*"])).await?;
    prefix.welcome().await?;
    let mut star = Events::open(&target, &on_topics(&["*"])).await?;
    star.welcome().await?;
    let topics = ["u-a", "u-n", "u-n/x", "u-n/x/y", "u-b", "u-nx/y"];
    let (_, end) = publish_each(&target, &topics, "u-n/end").await?;
    let got = topical_until(&mut union, &end).await?;
    ensure!(
        got == ["u-a", "u-n/x", "u-n/x/y"],
        "u-a and everything under u-n/, not u-n itself, u-b or u-nx/y",
        format!("{got:?}")
    );
    let under = topical_until(&mut prefix, &end).await?;
    ensure!(
        under == ["u-n/x", "u-n/x/y"],
        "u-n/* alone: everything under u-n/, not u-n itself or u-nx/y",
        format!("{under:?}")
    );
    let all = topical_until(&mut star, &end).await?;
    ensure!(all == topics, "every topic for *", format!("{all:?}"));
    Ok(())
}

/// Point 16: an empty or malformed selector, or a bad topic on publish, is 400 with a JSON
/// error, never taken as "absent".
pub async fn bad_selectors_and_topics_are_400(target: Target) -> Res {
    for bad in ["", "a b", "a/*/b", "*/a", "ü"] {
        let path = format!(
            "/stream?topic={}",
            url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
        );
        client::get(&target, &path)
            .await?
            .expect_json_error(400)
            .map_err(|p| p.concerning(format_args!("selector {bad:?}")))?;
    }
    let mut publisher = Publisher::connect(&target).await?;
    for bad in ["", "a b", "news/*", &"t".repeat(129)] {
        let body = json!({ "data": "x", "topic": bad }).to_string();
        publisher
            .send("application/json", body)
            .await?
            .expect_json_error(400)
            .map_err(|p| p.concerning(format_args!("publish topic {bad:?}")))?;
    }
    Ok(())
}

/// Point 16: an event published without a topic is on `default`; the ticker publishes on
/// `ticker`.
pub async fn events_without_a_topic_are_on_default(target: Target) -> Res {
    let mut default = Events::open(&target, &on_topics(&["default"])).await?;
    let welcome = default.welcome().await?;
    let mut publisher = Publisher::connect(&target).await?;
    let untopical = publish_on(&mut publisher, None, "no topic given").await?;
    let end = publish_on(&mut publisher, Some("default"), "end").await?;
    let seen = default.until(WITHIN, |e| e.id == end).await?;
    ensure!(
        seen.iter().any(|e| e.id == untopical),
        "the event without a topic on default",
        describe(&seen)
    );
    ensure!(
        !seen
            .iter()
            .any(|e| ["message", "greeting", "update"].contains(&e.event.as_str())),
        "no ticker event on default",
        describe(&seen)
    );
    if welcome.tick_ms == 0 {
        return Ok(());
    }
    let mut ticker = Events::open(&target, &on_topics(&["ticker"])).await?;
    ticker.welcome().await?;
    let within = Duration::from_millis(welcome.tick_ms * 3) + Duration::from_secs(2);
    let ticks = ticker.until(within, |e| e.event == "update").await?;
    ensure!(
        ticks.iter().all(|e| e.event != "topical"),
        "only ticker events on ticker",
        describe(&ticks)
    );
    Ok(())
}

/// Point 16: `welcome` names the stream's effective selectors: `["*"]` without `topic=`,
/// else the ones asked for.
pub async fn welcome_names_the_effective_topics(target: Target) -> Res {
    let plain = Welcome::fetch(&target).await?;
    if plain.auth == Some(true) {
        return Err(Problem::Skip(
            "the server requires tokens; the token checks cover its welcome".into(),
        ));
    }
    ensure!(
        plain.topics.as_deref() == Some(&["*".to_owned()][..]),
        r#""topics": ["*"] without topic="#,
        format!("{:?}", plain.topics)
    );
    let mut asked = Events::open(&target, &on_topics(&["w-a", "w-n/*", "w-a"])).await?;
    let welcome = asked.welcome().await?;
    ensure!(
        welcome.topics.as_deref() == Some(&["w-a".to_owned(), "w-n/*".to_owned()][..]),
        r#""topics": ["w-a", "w-n/*"] (repeats dropped)"#,
        format!("{:?}", welcome.topics)
    );
    Ok(())
}
