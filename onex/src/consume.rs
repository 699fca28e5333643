//! How both buses handle a consumed message, so that a node behaves the
//! same on either: the handler is called with panics caught, retried per
//! the [`RetryPolicy`], and abandoned (left uncommitted, so it is delivered
//! again) when the subscription stops during a retry delay, or before a
//! last failed attempt would dead-letter it. A
//! [`SubscriberBreaker`] pauses a subscriber whose messages keep failing.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    bus::{
        BatchHandler, BatchOptions, BusMessage, Handler, HandlerError,
        handle_batch_catching_panics, handle_catching_panics,
    },
    retry::RetryPolicy,
};

/// What a subscription does with its messages.
#[derive(Clone)]
pub(crate) enum Handling {
    /// Hands them to a handler one at a time.
    One(Arc<dyn Handler>),
    /// Gathers them into batches for a batch handler.
    Batches(Arc<dyn BatchHandler>, BatchOptions),
}

/// What became of a consumed message (or batch).
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The handler succeeded: commit it.
    Handled,
    /// The retries are spent: dead-letter it with this error, then commit.
    DeadLetter {
        /// The last attempt's error.
        error: HandlerError,
        /// Retries made after the first attempt.
        retries: u32,
    },
    /// Stop was requested during a retry delay: do not commit, so that it
    /// is delivered again.
    Abandoned,
}

/// Calls `handler` on `message` until it succeeds or the retries are
/// spent; gives up early when `stop` resolves during a retry delay. The
/// attempt in progress is never cut short.
pub(crate) async fn handle_message(
    handler: &dyn Handler,
    message: &BusMessage,
    policy: &RetryPolicy,
    stop: impl Future<Output = ()>,
) -> Verdict {
    run_attempts(policy, stop, || handle_catching_panics(handler, message)).await
}

/// Like [`handle_message`], for a batch: retried and given up as a whole.
pub(crate) async fn handle_batch(
    handler: &dyn BatchHandler,
    messages: &[BusMessage],
    policy: &RetryPolicy,
    stop: impl Future<Output = ()>,
) -> Verdict {
    run_attempts(policy, stop, || {
        handle_batch_catching_panics(handler, messages)
    })
    .await
}

/// Runs `attempt` per the retry policy: see [`handle_message`].
pub(crate) async fn run_attempts<F, Fut>(
    policy: &RetryPolicy,
    stop: impl Future<Output = ()>,
    mut attempt: F,
) -> Verdict
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    tokio::pin!(stop);
    let mut retries = 0u32;
    loop {
        match attempt().await {
            Ok(()) => return Verdict::Handled,
            Err(error) if retries >= policy.max_retries => {
                // A failure once stop was requested may be the stop's own
                // doing (a run that gave up as its node shuts down): the
                // message is delivered again rather than dead-lettered.
                tokio::select! {
                    biased;
                    () = &mut stop => return Verdict::Abandoned,
                    () = std::future::ready(()) => {}
                }
                return Verdict::DeadLetter { error, retries };
            }
            Err(error) => {
                tracing::warn!(retry = retries + 1, "handler failed, retrying: {error}");
                // Boxed, as the retry is the rare path: keeps the future of
                // every message small.
                let pause = Box::pin(tokio::time::sleep(policy.delay(retries)));
                tokio::select! {
                    () = &mut stop => return Verdict::Abandoned,
                    () = pause => {}
                }
                retries += 1;
            }
        }
    }
}

tokio::task_local! {
    /// The key of the message whose handler runs in the current future,
    /// when its consumer keeps several keys in hand at once.
    static KEY_IN_HAND: KeyInHand;
}

/// What lets a handler hand its key back before it is done: the consumer
/// that gave it the message learns it through `to_consumer`, and from then
/// on it may start that key's next message while this one still awaits
/// what it sent (the broker's acknowledgements). The message itself stays
/// open: its offset is stored only once its handler is done.
#[derive(Debug, Clone)]
pub(crate) struct KeyInHand {
    /// The message's lane in its consumer.
    lane: u64,
    state: Arc<KeyState>,
    /// The consumer's own queue of handed-back lanes.
    to_consumer: tokio::sync::mpsc::UnboundedSender<u64>,
}

#[derive(Debug, Default)]
struct KeyState {
    /// Set by the code that handles the message as one operation, and
    /// taken by that operation's run: only that run hands the key back,
    /// not a run nested in it or in a workflow.
    armed: AtomicBool,
    /// Set once the key is handed back, so that the consumer does not free
    /// the lane twice.
    released: AtomicBool,
}

impl KeyInHand {
    pub(crate) fn new(lane: u64, to_consumer: tokio::sync::mpsc::UnboundedSender<u64>) -> Self {
        KeyInHand {
            lane,
            state: Arc::default(),
            to_consumer,
        }
    }

    /// Runs `handling` with this key in hand, so that the functions below
    /// reach it from within.
    pub(crate) async fn scope<F: Future>(&self, handling: F) -> F::Output {
        KEY_IN_HAND.scope(self.clone(), handling).await
    }

    /// Whether the handler handed the key back.
    pub(crate) fn was_released(&self) -> bool {
        self.state.released.load(AtomicOrdering::Acquire)
    }
}

/// Marks the message in hand as handled by the one operation run that
/// starts next ([`take_key_release`]).
pub(crate) fn arm_key_release() {
    let _ = KEY_IN_HAND.try_with(|key| key.state.armed.store(true, AtomicOrdering::Release));
}

/// Whether the calling run is the one that may hand the message's key back
/// ([`arm_key_release`]); only the first asking is.
pub(crate) fn take_key_release() -> bool {
    KEY_IN_HAND
        .try_with(|key| key.state.armed.swap(false, AtomicOrdering::AcqRel))
        .unwrap_or(false)
}

/// Tells the consumer that handed the current message over that the next
/// message of its key may start now: everything the handler publishes for
/// this message is already handed to the bus, in order, and what remains is
/// waiting for it to be acknowledged. Outside a consumer that keeps several
/// keys in hand (one message at a time, the in-memory bus) it does nothing.
pub(crate) fn release_key() {
    let _ = KEY_IN_HAND.try_with(|key| {
        if !key.state.released.swap(true, AtomicOrdering::AcqRel) {
            // The receiver is gone only when the consumer stopped: nothing
            // to free then.
            let _ = key.to_consumer.send(key.lane);
        }
    });
}

/// A subscriber's circuit breaker. After `threshold` consecutive messages
/// that were dead-lettered (their retries spent) the subscriber pauses for
/// the reset timeout: it consumes nothing, and nothing is dead-lettered
/// because of the pause. The next message after the pause is the trial:
/// handled, it closes the breaker; dead-lettered, it opens it again.
#[derive(Debug)]
pub(crate) struct SubscriberBreaker {
    threshold: u32,
    reset_timeout: Duration,
    /// Dead-lettered messages since the last handled one.
    failures: u32,
    /// When the breaker last opened, while it is open.
    opened_at: Option<Instant>,
    group: String,
}

impl SubscriberBreaker {
    /// A closed breaker for a subscriber of `group`.
    pub(crate) fn new(threshold: u32, reset_timeout: Duration, group: &str) -> Self {
        SubscriberBreaker {
            threshold: threshold.max(1),
            reset_timeout,
            failures: 0,
            opened_at: None,
            group: group.to_owned(),
        }
    }

    /// How long the subscriber must still pause before its next message;
    /// `None` when it may go on.
    pub(crate) fn pause_left(&self) -> Option<Duration> {
        let opened = self.opened_at?;
        let left = self.reset_timeout.saturating_sub(opened.elapsed());
        (!left.is_zero()).then_some(left)
    }

    /// Counts a message's verdict (after it was dead-lettered, if it was).
    pub(crate) fn record(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Handled => {
                if self.failures > 0 {
                    if self.opened_at.take().is_some() {
                        tracing::info!(group = %self.group, "subscriber recovered; circuit closed");
                    }
                    self.failures = 0;
                }
            }
            Verdict::DeadLetter { .. } => {
                self.failures = self.failures.saturating_add(1);
                if self.failures >= self.threshold {
                    self.opened_at = Some(Instant::now());
                    tracing::warn!(
                        group = %self.group,
                        failures = self.failures,
                        pause_ms = u64::try_from(self.reset_timeout.as_millis()).unwrap_or(u64::MAX),
                        "subscriber keeps failing; circuit open, pausing it"
                    );
                }
            }
            Verdict::Abandoned => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead() -> Verdict {
        Verdict::DeadLetter {
            error: HandlerError::new("x", "y"),
            retries: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_pauses_at_the_threshold_and_the_trial_decides() {
        let reset = Duration::from_secs(10);
        let mut b = SubscriberBreaker::new(2, reset, "g");
        b.record(&dead());
        assert_eq!(b.pause_left(), None);
        b.record(&dead());
        assert_eq!(b.pause_left(), Some(reset));
        tokio::time::advance(reset).await;
        assert_eq!(b.pause_left(), None, "the pause is over: a trial");
        b.record(&dead());
        assert_eq!(b.pause_left(), Some(reset), "a failed trial opens again");
        tokio::time::advance(reset).await;
        b.record(&Verdict::Handled);
        b.record(&dead());
        assert_eq!(b.pause_left(), None, "a handled trial closes it");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_retry_then_dead_letter_or_abandon_on_stop() {
        let policy = RetryPolicy::new(2, Duration::from_millis(10));
        let mut calls = 0;
        let verdict = run_attempts(&policy, std::future::pending(), || {
            calls += 1;
            async { Err(HandlerError::new("k", "m")) }
        })
        .await;
        assert!(matches!(verdict, Verdict::DeadLetter { retries: 2, .. }));
        assert_eq!(calls, 3);
        let verdict = run_attempts(&policy, async {}, || async {
            Err(HandlerError::new("k", "m"))
        })
        .await;
        assert!(matches!(verdict, Verdict::Abandoned));
        let verdict = run_attempts(&policy, async {}, || async { Ok(()) }).await;
        assert!(matches!(verdict, Verdict::Handled));
        // Without retries left, a failure once stop was requested is
        // abandoned too, not dead-lettered.
        let no_retries = RetryPolicy::new(0, Duration::from_millis(10));
        let verdict = run_attempts(&no_retries, async {}, || async {
            Err(HandlerError::new("interrupted", "stopping"))
        })
        .await;
        assert!(matches!(verdict, Verdict::Abandoned));
    }
}
