//! The in-memory hub: a [`Log`] that this process numbers itself.
//!
//! Its epoch is 12 random hex digits drawn once per run, so an id from an earlier run of the
//! server is recognised as foreign rather than misread as a position in this one. History
//! and subscribers are lost on restart; the Redis hub ([`crate::redis_hub`]) is the one whose
//! log outlives the process.

use std::sync::Arc;

use crate::event::{Draft, Event};
use crate::hub::{Hub, HubStatus, PublishFuture, Subscription};
use crate::log::{EPOCH_DIGITS, Log, id_of};
use crate::topic::Selectors;

/// A hub that lives in this process.
pub struct MemoryHub {
    /// History, numbering and the live feed.
    log: Log,
}

impl MemoryHub {
    /// A hub that retains `history` events and lets a subscriber fall `queue` events behind.
    pub fn new(history: usize, queue: usize) -> Self {
        let epoch = format!("{:0width$x}", fastrand::u64(..) >> 16, width = EPOCH_DIGITS);
        Self::with_epoch(epoch, history, queue)
    }

    /// Like [`MemoryHub::new`] with a chosen epoch (12 lowercase hex digits), for tests.
    pub fn with_epoch(epoch: String, history: usize, queue: usize) -> Self {
        MemoryHub {
            log: Log::new(Some(epoch), history, queue),
        }
    }

    /// Publishes synchronously; [`Hub::publish`] wraps this.
    pub fn publish_now(&self, draft: Draft) -> Arc<Event> {
        self.log
            .append_next(|seq, epoch| draft.into_event(id_of(epoch, seq)))
    }
}

impl Hub for MemoryHub {
    fn publish(&self, draft: Draft) -> PublishFuture<'_> {
        let event = self.publish_now(draft);
        Box::pin(async move { Ok(event) })
    }

    fn subscribe(&self, last_event_id: Option<&str>, topics: &Selectors) -> Subscription {
        self.log.subscribe(last_event_id, topics)
    }

    fn status(&self) -> HubStatus {
        HubStatus {
            up: true,
            ..self.log.status()
        }
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_run_draws_its_own_epoch() {
        let (a, b) = (MemoryHub::new(4, 4), MemoryHub::new(4, 4));
        let (a, b) = (
            a.publish_now(Draft::new(None, "x")),
            b.publish_now(Draft::new(None, "x")),
        );
        assert_ne!(a.id, b.id, "two runs never share an id");
        let id = a.id_str().expect("an id");
        assert!(
            crate::log::parse(id).is_ok(),
            "{id} has the contract's form"
        );
    }
}
