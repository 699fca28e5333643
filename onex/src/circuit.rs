//! A three-state circuit breaker: closed, open, half-open.
//!
//! Closed counts consecutive failures; at the threshold it opens and
//! refuses calls. After the reset timeout it lets one trial through
//! (half-open): success closes it, failure opens it again.
//!
//! [`CircuitBreaker::permit`] hands out a [`Permit`] that must report the
//! call's outcome; a permit dropped without a report (its call was
//! cancelled, say) frees the trial slot, so that a half-open breaker never
//! waits for a report that cannot come.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused until the reset timeout has passed.
    Open,
    /// One trial call is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    failures: u32,
    opened_at: Option<Instant>,
}

/// A circuit breaker, safe to share between tasks.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    reset_timeout: Duration,
    /// Closed without failures: the common case, answered without the lock.
    clean: AtomicBool,
    inner: Mutex<Inner>,
}

/// The right to make one call through a [`CircuitBreaker`]. Report the
/// outcome with [`Permit::success`] or [`Permit::failure`]; dropping it
/// unreported releases it (a half-open breaker lets the next call try).
#[derive(Debug)]
#[must_use = "report the call's outcome with success() or failure()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    reported: bool,
}

impl Permit<'_> {
    /// The call succeeded: the breaker closes.
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record_success();
    }

    /// The call failed: counted; at the threshold, or for a trial, the
    /// breaker opens.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record_failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.release();
        }
    }
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` consecutive failures
    /// and tries again after `reset_timeout`.
    pub fn new(threshold: u32, reset_timeout: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            reset_timeout,
            clean: AtomicBool::new(true),
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                failures: 0,
                opened_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters
        // inconsistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state (an open breaker past its timeout reports open
    /// until a call is attempted).
    pub fn state(&self) -> CircuitState {
        self.lock().state
    }

    /// Asks to make a call: a [`Permit`] that reports its outcome, or `None`
    /// while the breaker is open (or half-open with its trial in flight).
    pub fn permit(&self) -> Option<Permit<'_>> {
        self.allow().then_some(Permit {
            breaker: self,
            reported: false,
        })
    }

    /// Whether the reset timeout of an open breaker has passed, so that the
    /// next call would be its trial.
    pub fn trial_due(&self) -> bool {
        let inner = self.lock();
        inner.state == CircuitState::Open
            && inner
                .opened_at
                .is_none_or(|t| t.elapsed() >= self.reset_timeout)
    }

    /// Time until an open breaker lets a trial through (zero when it is
    /// due, or not open).
    pub fn until_trial(&self) -> Duration {
        let inner = self.lock();
        match (inner.state, inner.opened_at) {
            (CircuitState::Open, Some(t)) => self.reset_timeout.saturating_sub(t.elapsed()),
            _ => Duration::ZERO,
        }
    }

    /// Asks to make a call. `true`: go ahead, and report the outcome with
    /// [`CircuitBreaker::record_success`] or
    /// [`CircuitBreaker::record_failure`] (or [`CircuitBreaker::release`]
    /// when there is none); `false`: the breaker is open. Prefer
    /// [`CircuitBreaker::permit`], which cannot forget to report.
    pub fn allow(&self) -> bool {
        if self.clean.load(Ordering::Acquire) {
            return true;
        }
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => true,
            CircuitState::HalfOpen => false,
            CircuitState::Open => {
                let due = inner
                    .opened_at
                    .is_none_or(|t| t.elapsed() >= self.reset_timeout);
                if due {
                    inner.state = CircuitState::HalfOpen;
                }
                due
            }
        }
    }

    /// Reports a successful call: the breaker closes.
    pub fn record_success(&self) {
        if self.clean.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        inner.state = CircuitState::Closed;
        inner.failures = 0;
        inner.opened_at = None;
        self.clean.store(true, Ordering::Release);
    }

    /// Reports a call that ended without an outcome (cancelled): a
    /// half-open breaker's trial slot is freed, so that the next call is
    /// the trial; otherwise nothing changes.
    pub fn release(&self) {
        if self.clean.load(Ordering::Acquire) {
            return;
        }
        let mut inner = self.lock();
        if inner.state == CircuitState::HalfOpen {
            inner.state = CircuitState::Open;
            // Due at once: the trial did not happen.
            inner.opened_at = Instant::now().checked_sub(self.reset_timeout);
        }
    }

    /// Reports a failed call: at the threshold, or on a failed trial, the
    /// breaker opens.
    pub fn record_failure(&self) {
        let mut inner = self.lock();
        self.clean.store(false, Ordering::Release);
        inner.failures = inner.failures.saturating_add(1);
        if inner.state == CircuitState::HalfOpen || inner.failures >= self.threshold {
            inner.state = CircuitState::Open;
            inner.opened_at = Some(Instant::now());
        }
    }

    /// Consecutive failures counted since the last success.
    pub fn failures(&self) -> u32 {
        self.lock().failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_at_threshold_and_refuses() {
        let cb = CircuitBreaker::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            assert!(cb.allow());
            cb.record_failure();
        }
        assert_eq!(cb.state(), CircuitState::Closed);
        cb.record_failure();
        assert_eq!(cb.state(), CircuitState::Open);
        assert!(!cb.allow());
    }

    #[test]
    fn success_resets_the_count() {
        let cb = CircuitBreaker::new(2, Duration::from_secs(60));
        cb.record_failure();
        cb.record_success();
        cb.record_failure();
        assert_eq!(cb.state(), CircuitState::Closed);
    }

    #[test]
    fn a_dropped_trial_permit_lets_the_next_call_try() {
        let cb = CircuitBreaker::new(1, Duration::from_millis(20));
        cb.permit().expect("closed").failure();
        assert!(cb.permit().is_none(), "open");
        std::thread::sleep(Duration::from_millis(30));
        let trial = cb.permit().expect("the trial");
        assert!(cb.permit().is_none(), "one trial at a time");
        drop(trial);
        assert_eq!(cb.state(), CircuitState::Open);
        assert!(cb.trial_due(), "the dropped trial did not count");
        cb.permit().expect("the next trial").success();
        assert_eq!(cb.state(), CircuitState::Closed);
    }

    #[test]
    fn a_clean_breaker_ignores_releases_and_successes() {
        let cb = CircuitBreaker::new(2, Duration::from_secs(60));
        cb.permit().expect("closed").success();
        drop(cb.permit().expect("closed"));
        cb.record_failure();
        assert_eq!(cb.failures(), 1);
        assert_eq!(cb.until_trial(), Duration::ZERO, "not open");
        cb.record_failure();
        assert!(cb.until_trial() > Duration::from_secs(59));
    }

    #[test]
    fn half_open_trial_after_timeout() {
        let cb = CircuitBreaker::new(1, Duration::from_millis(20));
        cb.record_failure();
        assert!(!cb.allow());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cb.allow(), "a trial goes through after the reset timeout");
        assert_eq!(cb.state(), CircuitState::HalfOpen);
        assert!(!cb.allow(), "only one trial at a time");
        cb.record_failure();
        assert_eq!(cb.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(30));
        assert!(cb.allow());
        cb.record_success();
        assert_eq!(cb.state(), CircuitState::Closed);
        assert!(cb.allow());
    }
}
