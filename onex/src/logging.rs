//! Logging set-up for nodes: `tracing` events to stderr, filtered by
//! `RUST_LOG` (default `info`).

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is unset or invalid.
pub const DEFAULT_FILTER: &str = "info";

static INIT: Once = Once::new();

/// Installs a global `tracing` subscriber that writes to stderr, filtered by
/// `RUST_LOG` (e.g. `RUST_LOG=onex=debug,info`), `info` by default.
///
/// Idempotent: later calls do nothing, and when the program already
/// installed a subscriber of its own, that one is kept. An invalid
/// `RUST_LOG` falls back to `info` with a warning.
pub fn init() {
    INIT.call_once(|| {
        let (filter, invalid) = match std::env::var("RUST_LOG") {
            Ok(value) if !value.trim().is_empty() => match EnvFilter::try_new(&value) {
                Ok(filter) => (filter, None),
                Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some((value, e.to_string()))),
            },
            _ => (EnvFilter::new(DEFAULT_FILTER), None),
        };
        let installed = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .is_ok();
        if let (true, Some((value, error))) = (installed, invalid) {
            tracing::warn!(rust_log = %value, %error, "invalid RUST_LOG; logging at info");
        }
    });
}

/// Whether [`init`] has run.
pub fn is_initialized() -> bool {
    INIT.is_completed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_idempotent() {
        init();
        assert!(is_initialized());
        init();
        tracing::info!("logging works after two calls");
        assert!(
            tracing::dispatcher::has_been_set(),
            "a global subscriber is installed"
        );
    }
}
