//! Retry with exponential backoff and jitter:
//! `delay = base * 2^attempt * jitter`, jitter drawn from 0.5..=1.5.

use std::{future::Future, time::Duration};

use rand::Rng;

/// When and how often to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0..=10; default 3).
    pub max_retries: u32,
    /// The base delay (default 1 s).
    pub base: Duration,
    /// Upper bound on one delay (default 60 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_retries` retries and a `base` delay.
    pub fn new(max_retries: u32, base: Duration) -> Self {
        RetryPolicy {
            max_retries,
            base,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `attempt` (0-based) with a given
    /// jitter factor, capped at `max_delay`.
    pub fn delay_with_jitter(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2f64.powi(attempt.min(30) as i32) * jitter;
        let delay = self.base.as_secs_f64() * factor;
        Duration::from_secs_f64(delay.min(self.max_delay.as_secs_f64()).max(0.0))
    }

    /// The delay before retry number `attempt` (0-based), with random
    /// jitter in 0.5..=1.5 so that many clients do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let jitter = rand::rng().random_range(0.5..=1.5);
        self.delay_with_jitter(attempt, jitter)
    }

    /// Runs `op` until it succeeds or the retries are spent. `op` receives
    /// the attempt number (0 for the first try). Returns the last error and
    /// the number of attempts made.
    pub async fn run<T, E, F, Fut>(&self, mut op: F) -> Result<T, (E, u32)>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt >= self.max_retries => return Err((e, attempt + 1)),
                Err(_) => {
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_per_attempt_and_scales_with_jitter() {
        let p = RetryPolicy::new(3, Duration::from_millis(100));
        assert_eq!(p.delay_with_jitter(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay_with_jitter(1, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay_with_jitter(3, 0.5), Duration::from_millis(400));
        assert_eq!(p.delay_with_jitter(2, 1.5), Duration::from_millis(600));
    }

    #[test]
    fn delay_is_capped() {
        let p = RetryPolicy {
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::new(10, Duration::from_secs(1))
        };
        assert_eq!(p.delay_with_jitter(9, 1.5), Duration::from_secs(2));
    }

    #[test]
    fn random_jitter_stays_in_range() {
        let p = RetryPolicy::new(3, Duration::from_millis(100));
        for _ in 0..1000 {
            let d = p.delay(1);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(300),
                "{d:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_then_gives_up_with_attempt_count() {
        let p = RetryPolicy::new(2, Duration::from_millis(10));
        let mut calls = 0;
        let r: Result<(), (&str, u32)> = p
            .run(|_| {
                calls += 1;
                async { Err("boom") }
            })
            .await;
        assert_eq!(r, Err(("boom", 3)));
        assert_eq!(calls, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn run_stops_at_first_success() {
        let p = RetryPolicy::new(5, Duration::from_millis(10));
        let r: Result<u32, (&str, u32)> = p
            .run(|attempt| async move { if attempt == 2 { Ok(attempt) } else { Err("no") } })
            .await;
        assert_eq!(r, Ok(2));
    }
}
