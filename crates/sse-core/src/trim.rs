//! Gives the heap that a crowd of departed streams leaves behind back to the operating system.
//!
//! glibc's malloc keeps freed memory in its arenas for reuse, and returns only the top of a
//! heap on its own. After tens of thousands of connections come and go, the pages their
//! buffers used stay resident though nothing uses them (docs/BENCH.md, "Churn": 19-27 MiB
//! above the start with no client left, where `malloc_trim(0)` by hand brought axum from
//! 28.5 MiB back to 9.7). So once a second this looks at how many streams are open, and when
//! a crowd has left since the last look ([`crowd_left`]) it calls `malloc_trim(0)`, which
//! releases the free pages of every arena, then once more at the next look. That walks the
//! arenas under their locks, so it runs on a blocking thread, and only after a crowd, not at
//! every ordinary departure. Other allocators and platforms need none of this, and there it
//! does nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the number of open streams is looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The fewest departures, since the last look, that count as a crowd: fewer streams than
/// this hold too little heap to be worth a walk of every arena.
pub const CROWD: usize = 1_000;

/// Whether the streams that left since the last look were a crowd: at least [`CROWD`] of
/// them, and at least half of the most that were open. A service that keeps its thousands of
/// clients while some come and go every second never trims; one that empties does.
pub fn crowd_left(peak: usize, open: usize) -> bool {
    let left = peak.saturating_sub(open);
    left >= CROWD && open <= peak / 2
}

/// Starts the looking on the current runtime, where the allocator can give memory back
/// (glibc on Linux). It stops at shutdown.
pub fn spawn(metrics: Arc<Metrics>, shutdown: CancellationToken) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    tokio::spawn(async move {
        let mut looks = tokio::time::interval(LOOK_EVERY);
        let mut again = false;
        loop {
            tokio::select! {
                _ = looks.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let (peak, open) = metrics.take_peak();
            let crowd = crowd_left(peak, open);
            if crowd || again {
                // A trim that panicked (it cannot) would only mean memory stays resident.
                let _ = tokio::task::spawn_blocking(release).await;
                tracing::debug!(peak, open, "gave freed heap back after a crowd left");
            }
            // What the crowd held can be freed a moment after the count fell (the push loop
            // lets go of a gone client's queue at its next sweep), so trim once more then.
            again = crowd;
        }
    });
}

/// Returns every arena's free pages to the operating system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release() {
    // SAFETY: malloc_trim takes no pointers and may be called from any thread at any time;
    // it takes each arena's lock itself. Its result only says whether anything was freed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Elsewhere there is nothing to return: [`spawn`] never calls it.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_that_empties_trims() {
        assert!(crowd_left(40_000, 0));
        assert!(crowd_left(2_000, 1_000));
        assert!(crowd_left(CROWD, 0));
    }

    #[test]
    fn ordinary_coming_and_going_does_not() {
        // A thousand leave a crowd of ten thousand: most are still here.
        assert!(!crowd_left(10_000, 9_000));
        // Half left, but too few to be worth a walk of every arena.
        assert!(!crowd_left(1_500, 600));
        assert!(!crowd_left(CROWD - 1, 0));
        // More open than at the last look.
        assert!(!crowd_left(100, 5_000));
    }
}
