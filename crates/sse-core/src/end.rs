//! [`StreamEnd`]: the future a stream polls to learn that it must end (at shutdown, or when
//! its token expires), made cheap to poll at every frame.
//!
//! A stream map's `take_until` and a generator's `select!` poll the end future each time they
//! produce a frame, and a `CancellationToken`'s future takes its lock and re-polls its
//! `Notify` at every such poll: with 1,000 subscribers and a few thousand events a second
//! that was about 7.5 % of axum's CPU (`perf record` under `sse-bench --scenarios fanout`).
//! `StreamEnd` polls the inner future only when the inner future has woken it (or on the
//! first poll); every other poll is one atomic swap.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use futures_util::task::{ArcWake, AtomicWaker};

/// Resolves when a stream must end. `Send + Sync`, so that every idiom can hold it (warp's
/// generator must be `Sync`), and `Unpin`, so that `&mut end` is a future too.
pub struct StreamEnd {
    /// What ends the stream, polled only after it asked to be.
    inner: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// Set by the inner future's wake-ups; holds the task to wake in turn.
    woken: Arc<Woken>,
    /// The waker the inner future is polled with: it sets `woken`.
    waker: Waker,
}

/// The flag between the inner future's wake-ups and the stream's polls.
struct Woken {
    /// The inner future may have made progress since it was last polled.
    flag: AtomicBool,
    /// The task polling the stream now.
    task: AtomicWaker,
}

impl ArcWake for Woken {
    fn wake_by_ref(woken: &Arc<Self>) {
        woken.flag.store(true, Ordering::Release);
        woken.task.wake();
    }
}

impl StreamEnd {
    /// The end that `inner` says.
    pub fn new(inner: impl Future<Output = ()> + Send + Sync + 'static) -> Self {
        let woken = Arc::new(Woken {
            // The first poll must reach the inner future, which registers then.
            flag: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        StreamEnd {
            inner: Box::pin(inner),
            waker: futures_util::task::waker(Arc::clone(&woken)),
            woken,
        }
    }
}

impl Future for StreamEnd {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let end = &mut *self;
        // Registered before the flag is read, so a wake-up after the read reaches this task.
        end.woken.task.register(cx.waker());
        if !end.woken.flag.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        end.inner
            .as_mut()
            .poll(&mut Context::from_waker(&end.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;

    #[tokio::test]
    async fn ends_when_its_token_is_cancelled_after_many_idle_polls() {
        let token = CancellationToken::new();
        let mut end = StreamEnd::new(token.clone().cancelled_owned());
        for _ in 0..3 {
            assert!(futures_util::poll!(&mut end).is_pending());
        }
        let cancel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            token.cancel();
        });
        tokio::time::timeout(Duration::from_secs(5), &mut end)
            .await
            .expect("the cancel wakes the waiting stream");
        cancel.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn ends_at_a_deadline_too() {
        let started = tokio::time::Instant::now();
        let end = StreamEnd::new(tokio::time::sleep(Duration::from_secs(30)));
        tokio::time::timeout(Duration::from_secs(60), end)
            .await
            .expect("the deadline wakes the waiting stream");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
