//! Contract point 8: `POST /publish`, its errors, and what data can and cannot do.

use std::time::Duration;

use serde_json::json;

use crate::client::{self, Events, Publisher, StreamRequest, describe};
use crate::{Problem, Res, Target, ensure};

/// How long a published event may take to arrive.
const WITHIN: Duration = Duration::from_secs(10);
/// How soon a published event must be on an open stream: each event is flushed as it is
/// produced (point 1).
const FLUSHED_WITHIN: Duration = Duration::from_secs(3);
/// What a late event most likely means when the server is behind a proxy.
const HELD_BACK: &str = "the published event (if the server answers directly but not through a      proxy or CDN, something in between buffers or compresses the stream; see docs/DEPLOY.md)";

/// A subscriber that has read its opening frames.
async fn subscriber(target: &Target) -> Res<Events> {
    let mut events = Events::open(target, &StreamRequest::default()).await?;
    events.welcome().await?;
    Ok(events)
}

/// Publishes each `(input, expected)` under `name` and checks that exactly those events
/// arrive, in order, with the expected data.
async fn round_trip(target: &Target, name: &str, cases: &[(&str, &str)]) -> Res {
    let mut events = subscriber(target).await?;
    let mut publisher = Publisher::connect(target).await?;
    let mut ids = Vec::new();
    for (input, _) in cases {
        ids.push(publisher.publish(Some(name), *input).await?);
    }
    let last = ids.last().cloned().unwrap_or_default();
    let seen = events.until(WITHIN, |e| e.id == last).await?;
    let ours: Vec<_> = seen
        .iter()
        .filter(|e| ids.contains(&e.id) || e.event == name)
        .collect();
    ensure!(
        ours.len() == cases.len(),
        format!("exactly {} events named {name}", cases.len()),
        describe(&seen)
    );
    for ((input, expected), event) in cases.iter().zip(&ours) {
        ensure!(
            event.event == name,
            format!("event name {name:?} for input {input:?}"),
            format!("{:?}", event.event)
        );
        ensure!(
            event.data == *expected,
            format!("data {expected:?} for input {input:?}"),
            format!("{:?}", event.data)
        );
        ensure!(
            ids.contains(&event.id),
            "the server's own id on each event",
            format!("{:?}", event.id)
        );
    }
    let strays: Vec<_> = seen
        .iter()
        .filter(|e| !["message", "greeting", "update", name].contains(&e.event.as_str()))
        .collect();
    ensure!(
        strays.is_empty(),
        "no events but the published ones and the ticker's",
        format!("{strays:?}")
    );
    Ok(())
}

/// Point 8: a valid publish answers 202 `{"id"}` and every subscriber gets the event under
/// that id, promptly (each event is flushed when produced).
pub async fn publish_answers_202_with_the_id_it_delivers(target: Target) -> Res {
    let mut first = subscriber(&target).await?;
    let mut second = subscriber(&target).await?;
    let id = client::publish(&target, Some("hello"), "world").await?;
    for events in [&mut first, &mut second] {
        let seen = events
            .until(FLUSHED_WITHIN, |e| e.event == "hello")
            .await
            .map_err(|problem| problem.concerning(HELD_BACK))?;
        let event = seen
            .last()
            .ok_or_else(|| Problem::fail("the event", "nothing"))?;
        ensure!(
            event.id == id && event.data == "world",
            format!("hello#{id}: \"world\""),
            describe(&seen)
        );
    }
    let default = client::publish(&target, None, "plain").await?;
    let seen = first.until(WITHIN, |e| e.id == default).await?;
    ensure!(
        seen.last().is_some_and(|e| e.event == "message"),
        "an event without a name to arrive as `message`",
        describe(&seen)
    );
    Ok(())
}

/// Point 8: data that is not a string is sent as compact JSON.
pub async fn publish_sends_json_data_compact(target: Target) -> Res {
    let mut events = subscriber(&target).await?;
    let id = client::publish(
        &target,
        Some("json"),
        json!({ "a": [1, 2], "b": { "c": null } }),
    )
    .await?;
    let seen = events.until(WITHIN, |e| e.id == id).await?;
    let data = seen.last().map(|e| e.data.clone()).unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
    ensure!(
        parsed == json!({ "a": [1, 2], "b": { "c": null } }) && !data.contains(['\n', ' ']),
        r#"compact JSON {"a":[1,2],"b":{"c":null}}"#,
        format!("{data:?}")
    );
    Ok(())
}

/// Point 8: LF, CR and CRLF in data become separate `data:` lines and arrive as LF; leading
/// spaces, trailing and blank lines, and non-ASCII text arrive intact.
pub async fn line_breaks_in_data_arrive_intact(target: Target) -> Res {
    round_trip(
        &target,
        "lines",
        &[
            ("one\ntwo", "one\ntwo"),
            ("one\r\ntwo", "one\ntwo"),
            ("one\rtwo", "one\ntwo"),
            ("a\n\nb\r\n\r\nc", "a\n\nb\n\nc"),
            ("trailing\n", "trailing\n"),
            ("\nleading", "\nleading"),
            ("  two leading spaces", "  two leading spaces"),
            ("x\n:not a comment", "x\n:not a comment"),
            ("ünïcødé ✓ \u{2028} 😀", "ünïcødé ✓ \u{2028} 😀"),
        ],
    )
    .await
}

/// Point 8: data shaped like SSE fields stays data: no second event, no forged id, name or
/// retry.
pub async fn data_cannot_inject_fields_or_events(target: Target) -> Res {
    round_trip(
        &target,
        "inject",
        &[
            (
                "x\n\nevent: evil\nid: forged\nretry: 1\ndata: injected",
                "x\n\nevent: evil\nid: forged\nretry: 1\ndata: injected",
            ),
            ("x\r\rid: forged\r\r", "x\n\nid: forged\n\n"),
            ("data: y\n\n", "data: y\n\n"),
        ],
    )
    .await
}

/// Point 8: an event name outside 1 to 64 of `A-Za-z0-9_.:-` is 400 with a JSON error.
pub async fn bad_event_names_are_400(target: Target) -> Res {
    let mut publisher = Publisher::connect(&target).await?;
    let long = "a".repeat(65);
    for name in ["", "a b", "a\nb", "a\rb", "ü", "semi;colon", long.as_str()] {
        let body = json!({ "event": name, "data": "x" }).to_string();
        publisher
            .send("application/json", body)
            .await?
            .expect_json_error(400)
            .map_err(|problem| problem.concerning(format_args!("event name {name:?}")))?;
    }
    publisher
        .publish(Some(&"a".repeat(64)), "64 is fine")
        .await?;
    publisher
        .publish(Some("Az09_.:-"), "every allowed character")
        .await
        .map(drop)
}

/// Point 8: a body that is not JSON, or lacks `data`, is 400 with a JSON error.
pub async fn malformed_json_is_400(target: Target) -> Res {
    let mut publisher = Publisher::connect(&target).await?;
    for body in ["{not json", "", r#"{"event":"x"}"#, r#"["data"]"#] {
        publisher
            .send("application/json", body)
            .await?
            .expect_json_error(400)
            .map_err(|problem| problem.concerning(format_args!("body {body:?}")))?;
    }
    Ok(())
}

/// Point 8: a body over 64 KiB is 413 with a JSON error; one just under is accepted.
pub async fn bodies_over_64_kib_are_413(target: Target) -> Res {
    let mut publisher = Publisher::connect(&target).await?;
    let over = json!({ "data": "x".repeat(64 * 1024) }).to_string();
    publisher
        .send("application/json", over)
        .await?
        .expect_json_error(413)?;
    let mut publisher = Publisher::connect(&target).await?;
    publisher
        .publish(Some("big"), "x".repeat(60 * 1024))
        .await
        .map(drop)
}

/// Point 8: a content type other than JSON is 415 with a JSON error.
pub async fn content_types_other_than_json_are_415(target: Target) -> Res {
    let mut publisher = Publisher::connect(&target).await?;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        publisher
            .send(content_type, r#"{"data":"x"}"#)
            .await?
            .expect_json_error(415)?;
    }
    Ok(())
}

/// Point 8: with a publish token configured, a missing or wrong bearer token is 401.
pub async fn publish_requires_the_token_when_configured(target: Target) -> Res {
    let Some(token) = target.token.clone() else {
        return Err(Problem::Skip(
            "needs --token (the server's --publish-token)".into(),
        ));
    };
    let body = r#"{"data":"x"}"#;
    let wrong = format!("Bearer {token}x");
    let cases = [
        vec![],
        vec![("authorization", wrong.as_str())],
        vec![("authorization", token.as_str())],
    ];
    for extra in cases {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(extra);
        let reply = client::fetch(&target, http::Method::POST, "/publish", &headers, body).await?;
        reply.expect_json_error(401)?;
    }
    client::publish(&target, Some("authorised"), "x")
        .await
        .map(drop)
}
