//! A three-state circuit breaker: closed, open, half-open.
//!
//! Closed counts consecutive failures; at the threshold it opens and
//! refuses calls. After the reset timeout it lets one trial through
//! (half-open): success closes it, failure opens it again.

use std::{
    sync::Mutex,
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
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` consecutive failures
    /// and tries again after `reset_timeout`.
    pub fn new(threshold: u32, reset_timeout: Duration) -> Self {
        CircuitBreaker {
            threshold: threshold.max(1),
            reset_timeout,
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

    /// Asks to make a call. `true`: go ahead (and report the outcome);
    /// `false`: the breaker is open.
    pub fn allow(&self) -> bool {
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
        let mut inner = self.lock();
        inner.state = CircuitState::Closed;
        inner.failures = 0;
        inner.opened_at = None;
    }

    /// Reports a failed call: at the threshold, or on a failed trial, the
    /// breaker opens.
    pub fn record_failure(&self) {
        let mut inner = self.lock();
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
