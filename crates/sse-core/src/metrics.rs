//! Counters every variant keeps the same way, and their Prometheus text form.
//!
//! The connected-clients gauge is driven by [`ClientGuard`]: a variant holds one for as long
//! as it serves a stream and drops it with the stream, so the gauge cannot drift whatever the
//! idiom does on disconnect.
//!
//! Each variant may also declare one [`IdiomGauge`] of its own (an sse-idioms extension to
//! `/metrics`): the state its idiom keeps per stream, which the compare page shows beside the
//! contract's figures.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::connection::Connection;
use crate::hub::HubStatus;

/// Counters for `GET /metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Streams open now.
    connected: AtomicUsize,
    /// The most streams open at once since [`Metrics::take_peak`] last looked.
    peak: AtomicUsize,
    /// Streams ever opened.
    connections: AtomicU64,
    /// Streams refused because `--max-clients` were open.
    refused: AtomicU64,
    /// Events sent from history to resuming clients.
    replayed: AtomicU64,
    /// Resumes that could not be exact (a `reset` was sent).
    resets: AtomicU64,
    /// Subscribers disconnected for falling behind their queue, or for holding bytes their
    /// peer did not acknowledge past the write timeout.
    lagged: AtomicU64,
    /// The idiom's own gauge, once the variant has declared it.
    idiom: OnceLock<Arc<IdiomGauge>>,
}

impl Metrics {
    /// Admits one more stream unless `max` are open; `connection` is the socket it arrived
    /// on, if the transport watches it (see [`crate::connection`]).
    ///
    /// The check and the increment are one atomic step, so concurrent connects can never
    /// push the count past `max`.
    pub fn admit(
        self: &Arc<Self>,
        max: usize,
        connection: Option<Arc<Connection>>,
    ) -> Option<ClientGuard> {
        let admitted = self
            .connected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match admitted {
            Ok(before) => {
                self.peak.fetch_max(before + 1, Ordering::Relaxed);
                self.connections.fetch_add(1, Ordering::Relaxed);
                tracing::info!(clients = before + 1, "client connected");
                Some(ClientGuard {
                    metrics: Arc::clone(self),
                    connection,
                })
            }
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(max, "client refused: --max-clients reached");
                None
            }
        }
    }

    /// Streams open now.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Acquire)
    }

    /// The most streams open at once since the last call, and how many are open now; the
    /// next call's peak starts from now. [`crate::trim`] reads it to see a crowd leave.
    pub fn take_peak(&self) -> (usize, usize) {
        let open = self.connected();
        (self.peak.swap(open, Ordering::Relaxed).max(open), open)
    }

    /// Counts events sent from history.
    pub fn add_replayed(&self, events: usize) {
        self.replayed.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Counts a resume that needed a `reset`.
    pub fn add_reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a subscriber disconnected by the slow-consumer policy.
    pub fn add_lagged(&self, missed: u64) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(missed, "slow client disconnected: it fell behind its queue");
    }

    /// This server's idiom gauge, declared by the first call (later calls get the same one,
    /// whatever `spec` they pass): one per server, rendered after the contract's metrics.
    pub fn idiom_gauge(&self, spec: &'static GaugeSpec) -> Arc<IdiomGauge> {
        let gauge = self.idiom.get_or_init(|| {
            Arc::new(IdiomGauge {
                spec,
                value: AtomicUsize::new(0),
            })
        });
        Arc::clone(gauge)
    }

    /// The Prometheus text exposition (format 0.0.4) of these counters and `hub`.
    pub fn render(&self, server: &str, hub: &HubStatus) -> String {
        let mut out = String::with_capacity(1024);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{server=\"{server}\"}} {value}\n"
            );
        };
        metric(
            "sse_connected_clients",
            "gauge",
            "Streams open now.",
            self.connected() as u64,
        );
        metric(
            "sse_connections_total",
            "counter",
            "Streams ever opened.",
            load(&self.connections),
        );
        metric(
            "sse_refused_total",
            "counter",
            "Streams refused at --max-clients.",
            load(&self.refused),
        );
        metric(
            "sse_events_published_total",
            "counter",
            "Events published.",
            hub.published,
        );
        metric(
            "sse_events_replayed_total",
            "counter",
            "Events sent from history on resume.",
            load(&self.replayed),
        );
        metric(
            "sse_resets_total",
            "counter",
            "Resumes answered with a reset event.",
            load(&self.resets),
        );
        metric(
            "sse_lagged_disconnects_total",
            "counter",
            "Slow subscribers disconnected: past --queue, or stalled past --write-timeout-secs.",
            load(&self.lagged),
        );
        metric(
            "sse_history_len",
            "gauge",
            "Events retained for replay.",
            hub.history_len as u64,
        );
        metric(
            "sse_hub_up",
            "gauge",
            "Whether the hub's backend answers (1) or not (0).",
            u64::from(hub.up),
        );
        metric(
            "sse_hub_behind_events",
            "gauge",
            "Events the shared log is ahead of this instance's view of it.",
            hub.behind,
        );
        if let Some(rss) = resident_memory_bytes() {
            metric(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of this process.",
                rss,
            );
        }
        if let Some(idiom) = self.idiom.get() {
            metric(
                idiom.spec.name,
                "gauge",
                idiom.spec.help,
                idiom.value.load(Ordering::Relaxed) as u64,
            );
        }
        out
    }
}

/// The name and help text of an idiom's own gauge.
#[derive(Debug)]
pub struct GaugeSpec {
    /// The metric's name, e.g. `sse_client_list_len`.
    pub name: &'static str,
    /// Its `# HELP` line: what the figure counts, in the idiom's terms.
    pub help: &'static str,
}

/// A gauge of what one idiom holds: the push loop sets it to its list's length, the pull
/// idioms [`hold`](IdiomGauge::hold) a place in it for as long as a pipeline or generator
/// lives.
#[derive(Debug)]
pub struct IdiomGauge {
    /// What it is called on `/metrics`.
    spec: &'static GaugeSpec,
    /// The figure now.
    value: AtomicUsize,
}

impl IdiomGauge {
    /// Sets the figure, for an idiom that can count its state outright.
    pub fn set(&self, value: usize) {
        self.value.store(value, Ordering::Relaxed);
    }

    /// Counts one more until the returned guard drops: move it into what it counts.
    pub fn hold(self: &Arc<Self>) -> IdiomGuard {
        self.value.fetch_add(1, Ordering::Relaxed);
        IdiomGuard(Arc::clone(self))
    }

    /// The figure now.
    pub fn get(&self) -> usize {
        self.value.load(Ordering::Relaxed)
    }
}

/// One place in an [`IdiomGauge`]; dropping it gives the place back.
#[derive(Debug)]
pub struct IdiomGuard(Arc<IdiomGauge>);

impl Drop for IdiomGuard {
    fn drop(&mut self) {
        self.0.value.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Proof that a stream was admitted; dropping it is the disconnect.
#[derive(Debug)]
pub struct ClientGuard {
    /// The counters it holds a place in.
    metrics: Arc<Metrics>,
    /// The connection the stream runs on, to learn at the end whether the kernel cut it.
    connection: Option<Arc<Connection>>,
}

impl ClientGuard {
    /// The connection the stream runs on, when the transport watches it.
    pub fn connection(&self) -> Option<&Arc<Connection>> {
        self.connection.as_ref()
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        // The transport saw the kernel's ETIMEDOUT before the framework dropped the stream,
        // so by now the connection says whether that is why the stream ends.
        if self.connection.as_ref().is_some_and(|c| c.timed_out()) {
            self.metrics.lagged.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "stalled client disconnected: its peer acknowledged nothing for --write-timeout-secs"
            );
        }
        let before = self.metrics.connected.fetch_sub(1, Ordering::AcqRel);
        tracing::info!(clients = before - 1, "client disconnected");
    }
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Every Linux this project targets uses 4 KiB pages on x86-64 and aarch64 defaults.
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_clients_and_stop_at_max() {
        let metrics = Arc::new(Metrics::default());
        let first = metrics.admit(2, None).expect("room");
        let second = metrics.admit(2, None).expect("room");
        assert!(metrics.admit(2, None).is_none(), "third refused");
        assert_eq!(metrics.connected(), 2);
        drop(first);
        assert_eq!(metrics.connected(), 1);
        drop(second);
        assert_eq!(metrics.connected(), 0);
    }

    #[test]
    fn the_peak_is_the_most_open_since_the_last_look() {
        let metrics = Arc::new(Metrics::default());
        let guards: Vec<_> = (0..3).filter_map(|_| metrics.admit(10, None)).collect();
        drop(guards);
        let kept = metrics.admit(10, None).expect("room");
        assert_eq!(
            metrics.take_peak(),
            (3, 1),
            "three were open at once, one is now"
        );
        assert_eq!(metrics.take_peak(), (1, 1), "the next look starts from now");
        drop(kept);
        assert_eq!(metrics.take_peak(), (1, 0));
    }

    #[test]
    fn render_names_every_contract_metric() {
        let metrics = Arc::new(Metrics::default());
        let _guard = metrics.admit(5, None);
        metrics.add_lagged(3);
        let text = metrics.render(
            "x",
            &HubStatus {
                published: 7,
                history_len: 4,
                ..Default::default()
            },
        );
        for line in [
            "sse_connected_clients{server=\"x\"} 1",
            "sse_events_published_total{server=\"x\"} 7",
            "sse_events_replayed_total{server=\"x\"} 0",
            "sse_lagged_disconnects_total{server=\"x\"} 1",
            "sse_history_len{server=\"x\"} 4",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert!(!text.contains("sse_test_things"), "no idiom gauge declared");
    }

    #[test]
    fn an_idiom_gauge_is_declared_once_and_counts_what_holds_it() {
        static THINGS: GaugeSpec = GaugeSpec {
            name: "sse_test_things",
            help: "Things alive now.",
        };
        let metrics = Metrics::default();
        let gauge = metrics.idiom_gauge(&THINGS);
        let held = gauge.hold();
        let again = metrics.idiom_gauge(&THINGS).hold();
        let text = metrics.render("x", &HubStatus::default());
        assert!(
            text.contains("# HELP sse_test_things Things alive now.\n"),
            "{text}"
        );
        assert!(text.contains("sse_test_things{server=\"x\"} 2\n"), "{text}");
        drop((held, again));
        assert_eq!(gauge.get(), 0);
        gauge.set(5);
        assert!(
            metrics
                .render("x", &HubStatus::default())
                .contains("sse_test_things{server=\"x\"} 5\n")
        );
    }
}
