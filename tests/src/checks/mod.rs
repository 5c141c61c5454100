//! The checks, one `async fn` each, grouped by the part of the contract they cover.
//!
//! [`all`] is the list the harness runs against every variant: the [`core`] profile first
//! (what any SSE server must do), then the [`sse_idioms`] contract, in contract order.
//! `sse-check` runs [`profile`]'s, after [`detect`] has told which one a server speaks.

pub mod auth;
pub mod core;
pub mod http2;
pub mod publish;
pub mod resume;
pub mod retry;
pub mod service;
pub mod stall;
pub mod stream;
pub mod topics;

use std::time::Duration;

use crate::client::{Events, StreamRequest};
use crate::{Check, Profile, Res, Target};

/// The welcome check needs a stream to read.
const AFTER_STREAM: &[&str] = &[core::STREAM];
/// Every other sse-idioms check reads the `welcome` first, so it means nothing while that
/// fails.
const AFTER_WELCOME: &[&str] = &[core::STREAM, "stream_opens_with_retry_then_welcome"];

/// Declares an sse-idioms [`Check`] from an `async fn(Target) -> Res`, with the server
/// flags it needs and the checks it comes after ([`AFTER_WELCOME`] unless told).
macro_rules! check {
    ($point:literal, $module:ident :: $name:ident) => {
        check!($point, $module::$name, [])
    };
    ($point:literal, $module:ident :: $name:ident, [$($flag:literal),*]) => {
        check!($point, $module::$name, [$($flag),*], AFTER_WELCOME)
    };
    ($point:literal, $module:ident :: $name:ident, [$($flag:literal),*], $after:expr) => {
        Check {
            name: stringify!($name),
            profile: Profile::SseIdioms,
            point: $point,
            rule: concat!("contract ", $point),
            after: $after,
            run: |target| Box::pin($module::$name(target)),
            flags: &[$($flag),*],
        }
    };
}

/// Every check of both profiles: what the harness runs against every variant.
pub fn all() -> Vec<Check> {
    let mut all = core::all();
    all.extend(sse_idioms());
    all
}

/// The checks a server is held to under `profile`: an sse-idioms server is an SSE server
/// too, so its profile is the core and then the contract.
pub fn profile(profile: Profile) -> Vec<Check> {
    match profile {
        Profile::Core => core::all(),
        Profile::SseIdioms => all(),
    }
}

/// Which profile a server speaks, and why: an sse-idioms server opens every stream with a
/// `welcome` event naming itself; any other first event (or none within `within`) means the
/// core profile. Errs when the stream cannot be reached at all, or is not a stream.
pub async fn detect(target: &Target, within: Duration) -> Res<(Profile, String)> {
    let mut events = Events::open(target, &StreamRequest::default()).await?;
    let first = match events.next(within).await {
        Ok(Some(event)) => event,
        Ok(None) => return Ok((Profile::Core, "the stream ended before any event".into())),
        Err(_) => {
            return Ok((
                Profile::Core,
                format!("no event within {within:?}, so no sse-idioms `welcome`"),
            ));
        }
    };
    if first.event == "welcome" && crate::client::Welcome::parse(&first.data).is_ok() {
        return Ok((
            Profile::SseIdioms,
            "the stream opens with an sse-idioms `welcome`".into(),
        ));
    }
    Ok((
        Profile::Core,
        format!(
            "the first event is `{}`, not an sse-idioms `welcome`",
            crate::report::one_line(&first.event, 24)
        ),
    ))
}

/// How long [`detect`] waits for a stream's first event.
pub const DETECT_WITHIN: Duration = Duration::from_secs(5);

/// Looks a check up by name.
pub fn named(name: &str) -> Option<Check> {
    all().into_iter().find(|check| check.name == name)
}

/// This project's contract (docs/CONTRACT.md), in contract order.
pub fn sse_idioms() -> Vec<Check> {
    vec![
        check!(1, stream::stream_has_the_contract_headers),
        check!(1, stream::stream_is_never_compressed),
        check!(
            2,
            stream::stream_opens_with_retry_then_welcome,
            [],
            AFTER_STREAM
        ),
        check!(2, retry::retry_is_drawn_per_connection_within_the_jitter),
        check!(
            2,
            retry::retry_is_exact_without_jitter,
            ["--retry-jitter", "0"]
        ),
        check!(3, stream::ticker_sends_message_greeting_and_update),
        check!(3, stream::every_event_has_its_own_id),
        check!(4, stream::keep_alive_comment_when_idle),
        check!(5, resume::resume_after_last_event_id_header),
        check!(5, resume::resume_after_last_event_id_query),
        check!(
            5,
            resume::resume_splice_has_no_gap_or_duplicate_under_concurrent_publish
        ),
        check!(6, resume::reset_when_id_is_older_than_history),
        check!(6, resume::reset_when_id_is_malformed),
        check!(6, resume::reset_when_id_is_over_128_bytes_and_not_echoed),
        check!(6, resume::reset_when_id_was_never_issued),
        check!(6, resume::reset_when_id_is_from_an_earlier_run),
        check!(
            7,
            service::slow_consumer_is_disconnected_and_resumes_from_history
        ),
        check!(
            7,
            stall::a_stalled_subscriber_is_cut_within_the_write_timeout
        ),
        check!(
            7,
            stall::a_stalled_subscriber_without_events_is_cut_on_keep_alives,
            ["--tick-ms", "0", "--keepalive-secs", "0.01"]
        ),
        check!(8, publish::publish_answers_202_with_the_id_it_delivers),
        check!(8, publish::publish_sends_json_data_compact),
        check!(8, publish::line_breaks_in_data_arrive_intact),
        check!(8, publish::data_cannot_inject_fields_or_events),
        check!(8, publish::bad_event_names_are_400),
        check!(8, publish::malformed_json_is_400),
        check!(8, publish::bodies_over_64_kib_are_413),
        check!(8, publish::content_types_other_than_json_are_415),
        check!(8, publish::publish_requires_the_token_when_configured),
        check!(9, service::metrics_expose_the_contract_counters),
        check!(9, service::healthz_answers_200),
        check!(9, service::connected_gauge_drops_when_clients_leave),
        check!(10, service::cors_allows_configured_origins_with_credentials),
        check!(10, service::cors_gives_other_origins_no_headers),
        check!(11, service::max_clients_answers_503_with_retry_after),
        check!(
            11,
            retry::retry_after_is_spread_like_retry,
            ["--retry-ms", "10000", "--max-clients", "1"]
        ),
        check!(14, service::page_and_assets_are_served),
        check!(14, service::unknown_paths_and_methods_get_json_errors),
        check!(16, topics::topics_filter_live_and_replay),
        check!(
            16,
            topics::selectors_are_a_union_of_topics_prefixes_and_star
        ),
        check!(16, topics::bad_selectors_and_topics_are_400),
        check!(16, topics::events_without_a_topic_are_on_default),
        check!(16, topics::welcome_names_the_effective_topics),
        check!(
            17,
            auth::streams_need_a_valid_token,
            ["--jwt-secret", "conformance-jwt-secret-0123456789"]
        ),
        check!(
            17,
            auth::each_token_source_is_read,
            ["--jwt-secret", "conformance-jwt-secret-0123456789"]
        ),
        check!(
            17,
            auth::a_token_covers_only_what_it_grants,
            ["--jwt-secret", "conformance-jwt-secret-0123456789"]
        ),
        check!(
            17,
            auth::a_stream_ends_when_its_token_expires,
            ["--jwt-secret", "conformance-jwt-secret-0123456789"]
        ),
        check!(
            17,
            auth::publishing_needs_a_publish_claim_or_the_static_token,
            ["--jwt-secret", "conformance-jwt-secret-0123456789"]
        ),
        check!(
            17,
            auth::welcome_says_tokens_are_required,
            ["--jwt-secret", "conformance-jwt-secret-0123456789"]
        ),
        check!(18, http2::ten_streams_share_one_http2_connection),
        check!(
            18,
            http2::a_stalled_http2_stream_holds_up_no_other_on_its_connection,
            ["--tick-ms", "0"]
        ),
    ]
}
