//! Contract point 17: tokens. With `--jwt-secret` (or `--jwt-public-key`), a stream needs a
//! valid token (from `Authorization: Bearer`, the `sse_token` cookie, or `?access_token=`)
//! whose `sse.subscribe` claim covers what it asks for, and ends when the token expires;
//! publishing needs a token whose `sse.publish` claim covers the event's topic, or the static
//! `--publish-token`.
//!
//! The checks mint their own tokens with the server's secret (`sse-check --jwt-secret`).

use std::time::{Duration, Instant};

use serde_json::json;
use sse_core::auth::{SigningKey, now_secs};

use crate::checks::topics::on_topics;
use crate::client::{self, Events, Fetched, StreamRequest, Welcome, describe};
use crate::{Problem, Res, Target, ensure};

/// How long a token the checks mint lives, unless a check needs it shorter.
const TTL: u64 = 300;

/// The server's signing secret, or why the check cannot run.
fn signer(target: &Target) -> Res<SigningKey> {
    target
        .jwt_secret
        .clone()
        .map(SigningKey::Secret)
        .ok_or_else(|| {
            Problem::Skip("needs --jwt-secret (the server's, to mint tokens with)".into())
        })
}

/// A list of selectors as a claim.
fn claim(selectors: &[&str]) -> Option<Vec<String>> {
    Some(selectors.iter().map(|s| (*s).to_owned()).collect())
}

/// A token from `key` with these claims, valid for `ttl` seconds.
fn mint(key: &SigningKey, subscribe: &[&str], publish: Option<&[&str]>, ttl: u64) -> Res<String> {
    key.mint(claim(subscribe), publish.and_then(claim), now_secs() + ttl)
        .map_err(|e| Problem::fail("a token to sign", e))
}

/// A stream request that sends `token` as a bearer header, asking for `selectors`.
fn bearer(token: &str, selectors: &[&str]) -> StreamRequest {
    StreamRequest {
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        ..on_topics(selectors)
    }
}

/// `GET /stream` with `request`, read whole if it is refused (a stream is dropped once its
/// status is in).
async fn stream_status(target: &Target, request: &StreamRequest) -> Res<(u16, Fetched)> {
    let response = client::open(target, request).await?;
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let body = if status == 200 {
        String::new()
    } else {
        use http_body_util::BodyExt as _;
        let bytes = tokio::time::timeout(Duration::from_secs(5), body.collect())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok((
        status,
        Fetched {
            status,
            headers: parts.headers,
            body,
        },
    ))
}

/// Expects the contract's 401 for `request`: JSON and `WWW-Authenticate: Bearer`.
async fn expect_401(target: &Target, request: &StreamRequest, what: &str) -> Res {
    let (_, refused) = stream_status(target, request).await?;
    refused
        .expect_json_error(401)
        .map_err(|p| p.concerning(what))?;
    ensure!(
        refused.header("www-authenticate").starts_with("Bearer"),
        format!("WWW-Authenticate: Bearer on the 401 for {what}"),
        format!("{:?}", refused.header("www-authenticate"))
    );
    Ok(())
}

/// Point 17: no token, a bad signature, an expired token, one without `exp`, or junk:
/// 401 JSON with `WWW-Authenticate: Bearer`.
pub async fn streams_need_a_valid_token(target: Target) -> Res {
    let key = signer(&target)?;
    expect_401(&target, &on_topics(&[]), "a stream without a token").await?;
    let stranger = SigningKey::Secret("a-secret-the-server-never-saw".into());
    let forged = mint(&stranger, &["*"], None, TTL)?;
    expect_401(
        &target,
        &bearer(&forged, &[]),
        "a token signed with another key",
    )
    .await?;
    let expired = key
        .mint(claim(&["*"]), None, now_secs() - 5)
        .map_err(|e| Problem::fail("a token to sign", e))?;
    expect_401(&target, &bearer(&expired, &[]), "an expired token").await?;
    let secret = target.jwt_secret.clone().unwrap_or_default();
    let no_exp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sse": { "subscribe": ["*"] } }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| Problem::fail("a token to sign", e.to_string()))?;
    expect_401(&target, &bearer(&no_exp, &[]), "a token without exp").await?;
    expect_401(&target, &bearer("not-a-jwt", &[]), "junk for a token").await
}

/// Point 17: the token is read from `Authorization: Bearer`, the `sse_token` cookie, or
/// `?access_token=`.
pub async fn each_token_source_is_read(target: Target) -> Res {
    let key = signer(&target)?;
    let token = mint(&key, &["*"], None, TTL)?;
    let cookie = StreamRequest {
        headers: vec![(
            "cookie".to_owned(),
            format!("theme=dark; sse_token={token}"),
        )],
        ..Default::default()
    };
    let query = StreamRequest {
        params: vec![("access_token".to_owned(), token.clone())],
        ..Default::default()
    };
    for (source, request) in [
        ("the Authorization header", bearer(&token, &[])),
        ("the sse_token cookie", cookie),
        ("?access_token=", query),
    ] {
        let mut events = Events::open(&target, &request)
            .await
            .map_err(|p| p.concerning(format_args!("a token in {source}")))?;
        events.welcome().await?;
    }
    Ok(())
}

/// Point 17: a token covers what its `subscribe` claim grants, by the coverage rules, and
/// nothing else (403 naming the selector); without `topic=` a stream gets the token's list,
/// and only those events.
pub async fn a_token_covers_only_what_it_grants(target: Target) -> Res {
    let key = signer(&target)?;
    let token = mint(&key, &["c-a/*", "c-x"], None, TTL)?;
    for covered in [
        &["c-a/*"][..],
        &["c-a/b"],
        &["c-a/b/*"],
        &["c-x"],
        &["c-x", "c-a/q"],
    ] {
        let (status, refused) = stream_status(&target, &bearer(&token, covered)).await?;
        ensure!(
            status == 200,
            format!("200 for {covered:?} under a token for c-a/* and c-x"),
            format!("{status} {}", client::tail(&refused.body))
        );
    }
    for denied in ["c-a", "*", "c-b", "c-x/*"] {
        let (_, refused) = stream_status(&target, &bearer(&token, &[denied])).await?;
        refused
            .expect_json_error(403)
            .map_err(|p| p.concerning(format_args!("{denied} under a token for c-a/* and c-x")))?;
        ensure!(
            refused.body.contains(denied),
            format!("the 403 naming {denied}"),
            client::tail(&refused.body).to_owned()
        );
    }
    let nothing = token_without_subscribe(&key)?;
    let (_, refused) = stream_status(&target, &bearer(&nothing, &[])).await?;
    refused
        .expect_json_error(403)
        .map_err(|p| p.concerning("a token with no subscribe list"))?;

    // No topic=: the token's own list, and only its events.
    let mut events = Events::open(&target, &bearer(&token, &[])).await?;
    let welcome = events.welcome().await?;
    ensure!(
        welcome.topics.as_deref() == Some(&["c-a/*".to_owned(), "c-x".to_owned()][..]),
        r#""topics": the token's list, without topic="#,
        format!("{:?}", welcome.topics)
    );
    let publisher = mint(&key, &[], Some(&["*"]), TTL)?;
    let mut ids = Vec::new();
    for topic in ["c-b", "c-a/b", "c-x", "c-y"] {
        ids.push((topic, publish_with(&target, &publisher, topic).await?));
    }
    let last = ids[2].1.clone();
    let seen = events
        .until(Duration::from_secs(10), |e| e.id == last)
        .await?;
    let got: Vec<&str> = ids
        .iter()
        .filter(|(_, id)| seen.iter().any(|e| e.id == *id))
        .map(|(topic, _)| *topic)
        .collect();
    ensure!(
        got == ["c-a/b", "c-x"],
        "only the granted topics' events",
        describe(&seen)
    );
    Ok(())
}

/// A token with rights but no `subscribe` list.
fn token_without_subscribe(key: &SigningKey) -> Res<String> {
    key.mint(None, claim(&["*"]), now_secs() + TTL)
        .map_err(|e| Problem::fail("a token to sign", e))
}

/// `POST /publish` on `topic` with a bearer token; the id from the 202.
async fn publish_with(target: &Target, bearer: &str, topic: &str) -> Res<String> {
    let answer = publish_as(target, Some(bearer), topic).await?;
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap_or_default();
    match (answer.status, json["id"].as_str()) {
        (202, Some(id)) => Ok(id.to_owned()),
        (status, _) => Err(Problem::fail(
            format!("202 for a publish on {topic}"),
            format!("{status} {}", client::tail(&answer.body)),
        )),
    }
}

/// `POST /publish` on `topic`, with `bearer` if given.
async fn publish_as(target: &Target, bearer: Option<&str>, topic: &str) -> Res<Fetched> {
    let body = json!({ "event": "claimed", "data": "x", "topic": topic }).to_string();
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization.as_str()));
    }
    client::fetch(target, http::Method::POST, "/publish", &headers, body).await
}

/// Point 17: a stream ends within 2 s of its token's `exp`, by a timer, however quiet it is.
pub async fn a_stream_ends_when_its_token_expires(target: Target) -> Res {
    let key = signer(&target)?;
    let ttl = 2;
    let token = mint(&key, &["quiet"], None, ttl)?;
    let expires = Instant::now() + Duration::from_secs(ttl);
    let mut events = Events::open(&target, &bearer(&token, &[])).await?;
    events.welcome().await?;
    // `exp` is in whole seconds, so the token may expire up to a second early.
    let bound = Duration::from_secs(ttl + 2 + 1);
    events
        .drain_to_end(bound)
        .await
        .map_err(|p| p.concerning("a stream whose token expires"))?;
    ensure!(
        Instant::now() + Duration::from_secs(1) >= expires,
        "the stream to last until its token expires",
        format!("it ended {:?} early", expires - Instant::now())
    );
    Ok(())
}

/// Point 17: publishing needs a token whose `publish` claim covers the event's topic (403
/// otherwise, also with no `publish` list), or the static `--publish-token`; neither is 401
/// with `WWW-Authenticate: Bearer`.
pub async fn publishing_needs_a_publish_claim_or_the_static_token(target: Target) -> Res {
    let key = signer(&target)?;
    let news = mint(&key, &["*"], Some(&["p-news/*"]), TTL)?;
    publish_with(&target, &news, "p-news/eu").await?;
    publish_as(&target, Some(&news), "p-sport")
        .await?
        .expect_json_error(403)
        .map_err(|p| p.concerning("a topic the publish claim does not cover"))?;
    let reader = mint(&key, &["*"], None, TTL)?;
    publish_as(&target, Some(&reader), "p-news/eu")
        .await?
        .expect_json_error(403)
        .map_err(|p| p.concerning("a token with no publish list"))?;
    let none = publish_as(&target, None, "p-news/eu").await?;
    none.expect_json_error(401)
        .map_err(|p| p.concerning("a publish without a token"))?;
    ensure!(
        none.header("www-authenticate").starts_with("Bearer"),
        "WWW-Authenticate: Bearer on the 401",
        format!("{:?}", none.header("www-authenticate"))
    );
    if let Some(static_token) = target.token.clone() {
        publish_with(&target, &static_token, "p-anything/at/all").await?;
    }
    Ok(())
}

/// Point 17: with tokens required, `welcome` says so, and a stream without `topic=` carries
/// exactly the token's selectors (sse-check uses this to tell a secured server).
pub async fn welcome_says_tokens_are_required(target: Target) -> Res {
    let key = signer(&target)?;
    let token = mint(&key, &["w-x"], None, TTL)?;
    let mut events = Events::open(&target, &bearer(&token, &[])).await?;
    let welcome: Welcome = events.welcome().await?;
    ensure!(
        welcome.auth == Some(true),
        r#""auth": true in welcome"#,
        format!("{:?}", welcome.auth)
    );
    Ok(())
}
