//! The demo ticker, as in the guide this project teaches from: every tick, a default
//! `message` with the server time, a `greeting`, and an `update` carrying JSON.
//!
//! Each of the three gets its own id from the hub. The guide's original sends all three
//! under one id, which loses the second and third on resume; here they are three events.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use crate::event::{Draft, EventName};
use crate::service::Service;
use crate::topic::Topic;

/// The topic the ticker publishes on.
pub const TICKER_TOPIC: &str = "ticker";

/// Starts the ticker on the current runtime, if `--tick-ms` is not 0. It stops at shutdown.
pub fn spawn(service: Arc<Service>) -> Option<JoinHandle<()>> {
    let period = service.config.tick()?;
    Some(tokio::spawn(async move {
        let mut ticks = interval_at(Instant::now() + period, period);
        // A server that was too busy to tick should not then burst to catch up.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        for n in 1u64.. {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = service.shutdown.cancelled() => break,
            }
            for draft in tick_events(service.server, n) {
                if let Err(error) = service.hub.publish(draft).await {
                    tracing::warn!(%error, "ticker could not publish");
                }
            }
        }
    }))
}

/// The three events of tick `n`.
pub fn tick_events(server: &str, n: u64) -> [Draft; 3] {
    let now = SystemTime::now();
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let update = json!({ "timestamp": millis, "value": fastrand::u8(0..=100), "status": "ok" });
    let topic = Topic::server(TICKER_TOPIC);
    [
        Draft::new(None, &humantime::format_rfc3339_millis(now).to_string()),
        Draft::new(
            Some(EventName::server("greeting")),
            &format!("Hello from {server} (tick {n})"),
        ),
        Draft::new(Some(EventName::server("update")), &update.to_string()),
    ]
    .map(|draft| draft.on(topic.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_message_greeting_update() {
        let [message, greeting, update] = tick_events("x", 1);
        assert_eq!(message.name, None);
        assert_eq!(message.topic.as_str(), TICKER_TOPIC);
        assert_eq!(
            greeting.name.map(|n| n.as_str().to_owned()).as_deref(),
            Some("greeting")
        );
        let value: serde_json::Value = serde_json::from_str(&update.data).expect("JSON");
        assert_eq!(value["status"], "ok");
        assert!(value["value"].as_u64().is_some_and(|v| v <= 100));
        assert!(value["timestamp"].as_u64().is_some());
    }
}
