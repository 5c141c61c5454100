//! `POST /publish`: the request rules, checked the same way for every variant.
//!
//! The frameworks each have a JSON extractor with its own error bodies and status codes, so
//! the variants hand over the raw headers and body instead, and the contract's rules live
//! here: 401 without the token (compared in constant time), 415 for anything but JSON,
//! 413 over 64 KiB, 400 for bad JSON, a bad event name or topic, or empty data. Who may
//! publish on which topic, with tokens, is [`crate::Service::publish`]'s, with
//! [`crate::auth`].

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::event::{Draft, EventName};
use crate::reply::Reply;
use crate::topic::Topic;

/// Largest publish body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The JSON a publisher sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// The event name; absent means a default `message`.
    #[serde(default)]
    event: Option<String>,
    /// The topic; absent means `default`.
    #[serde(default)]
    topic: Option<String>,
    /// A string is sent as is; any other JSON value is sent as compact JSON.
    data: serde_json::Value,
}

/// Whether `authorization` carries the static `--publish-token`. The comparison takes the
/// same time whatever the presented token's content, so it cannot be guessed a byte at a
/// time.
pub fn is_publish_token(token: &str, authorization: Option<&str>) -> bool {
    let presented = authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// Checks the static token, if one is configured and no JWTs are (the 401 otherwise).
pub fn authorize(token: Option<&str>, authorization: Option<&str>) -> Result<(), Reply> {
    match token {
        Some(token) if !is_publish_token(token, authorization) => {
            Err(crate::auth::unauthorized("missing or wrong bearer token"))
        }
        _ => Ok(()),
    }
}

/// Turns a publish request into a [`Draft`], or the contract's error for it.
///
/// `body` is `Err` when the variant stopped reading at [`MAX_BODY_BYTES`].
pub fn parse(content_type: Option<&str>, body: Result<&[u8], Reply>) -> Result<Draft, Reply> {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/json") {
        return Err(Reply::error(415, "content type must be application/json"));
    }
    let body: PublishBody = serde_json::from_slice(body?)
        .map_err(|error| Reply::error(400, format!("invalid JSON body: {error}")))?;
    let name = body
        .event
        .map(|name| EventName::parse(&name))
        .transpose()
        .map_err(|error| Reply::error(400, error))?;
    let topic = body
        .topic
        .map(|topic| Topic::parse(&topic))
        .transpose()
        .map_err(|error| Reply::error(400, error))?
        .unwrap_or_else(Topic::default_topic);
    let data = match body.data {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    };
    if data.is_empty() {
        // An event with empty data has no `data:` line in some frameworks (axum), and a
        // browser drops such an event unseen; refusing it beats losing it silently.
        return Err(Reply::error(400, "data must not be empty"));
    }
    Ok(Draft::new(name, &data).on(topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(result: Result<Draft, Reply>) -> u16 {
        result.map_or_else(|reply| reply.status, |_| 202)
    }

    #[test]
    fn strings_pass_through_and_values_go_compact() {
        let draft = parse(
            Some("application/json; charset=utf-8"),
            Ok(br#"{"event":"chat","data":"a\r\nb"}"#),
        )
        .expect("valid");
        assert_eq!(
            (draft.name.map(|n| n.as_str().to_owned()), draft.data),
            (Some("chat".into()), "a\nb".into())
        );
        let value =
            parse(Some("application/json"), Ok(br#"{"data":{"x": [1, 2]}}"#)).expect("valid");
        assert_eq!((value.name, value.data.as_str()), (None, r#"{"x":[1,2]}"#));
        assert_eq!(value.topic.as_str(), "default");
        let news = parse(
            Some("application/json"),
            Ok(br#"{"data":"x","topic":"news/eu"}"#),
        )
        .expect("valid");
        assert_eq!(news.topic.as_str(), "news/eu");
    }

    #[test]
    fn each_bad_request_gets_its_status() {
        let json = Some("application/json");
        assert_eq!(status(parse(Some("text/plain"), Ok(b"{}"))), 415);
        assert_eq!(status(parse(None, Ok(b"{}"))), 415);
        assert_eq!(status(parse(json, Ok(b"{nope"))), 400);
        assert_eq!(
            status(parse(json, Ok(br#"{"event":"x"}"#))),
            400,
            "data is required"
        );
        assert_eq!(status(parse(json, Ok(br#"{"event":"a b","data":1}"#))), 400);
        assert_eq!(
            status(parse(json, Ok(br#"{"event":"reset","data":1}"#))),
            400
        );
        assert_eq!(status(parse(json, Ok(br#"{"data":""}"#))), 400);
        assert_eq!(status(parse(json, Ok(br#"{"data":"x","topic":""}"#))), 400);
        assert_eq!(
            status(parse(json, Ok(br#"{"data":"x","topic":"a b"}"#))),
            400
        );
        assert_eq!(
            status(parse(json, Ok(br#"{"data":"x","topic":"news/*"}"#))),
            400
        );
        assert_eq!(
            status(parse(json, Err(Reply::too_large(MAX_BODY_BYTES)))),
            413
        );
    }

    #[test]
    fn the_token_is_required_when_configured() {
        assert!(authorize(None, None).is_ok());
        assert!(authorize(Some("s3cret"), Some("Bearer s3cret")).is_ok());
        for wrong in [
            None,
            Some("Bearer nope"),
            Some("s3cret"),
            Some("Bearer s3cret2"),
            Some("Basic s3cret"),
        ] {
            assert_eq!(
                authorize(Some("s3cret"), wrong).map_err(|r| r.status),
                Err(401),
                "{wrong:?}"
            );
        }
    }
}
