//! The business logic of the `fault_probe` node of the fault suite: it
//! applies a command after an optional delay and injects the faults the
//! scenario asks for through the environment.
//!
//! | variable | effect |
//! |---|---|
//! | `FAULT_DELAY_MS` | sleep this long in every command (so that a kill lands mid-stream) |
//! | `FAULT_PANIC_FIRST` | panic on the first N attempts of every command, then succeed: the bus retries a panicking handler, so the command completes once after N retries |
//! | `FAULT_PANIC_SEQS` | comma-separated seqs whose commands panic on every attempt: retried, then dead-lettered with `error_type=panic` |
//! | `FAULT_FAIL_SEQS` | comma-separated seqs whose business logic returns an error: the node publishes the operation's failed event and the command counts as handled |
//!
//! Attempts are counted per `(key, seq)` in this process.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::Duration,
};

use crate::{
    OperationError,
    events::{ProbeInput, ProbeOutput},
};

/// The fault-injecting handler.
#[derive(Debug)]
pub struct FaultProbeHandler {
    delay: Duration,
    panic_first: u64,
    panic_seqs: BTreeSet<u64>,
    fail_seqs: BTreeSet<u64>,
    attempts: Mutex<HashMap<(String, u64), u64>>,
}

fn number(name: &str) -> Result<u64, OperationError> {
    match std::env::var(name) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse()
            .map_err(|e| OperationError::new("config", format!("{name}={text:?}: {e}"))),
        _ => Ok(0),
    }
}

fn seqs(name: &str) -> Result<BTreeSet<u64>, OperationError> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e| OperationError::new("config", format!("{name}: {s:?}: {e}")))
        })
        .collect()
}

impl FaultProbeHandler {
    /// Reads the faults to inject from the environment.
    pub async fn new() -> Result<Self, OperationError> {
        Ok(FaultProbeHandler {
            delay: Duration::from_millis(number("FAULT_DELAY_MS")?),
            panic_first: number("FAULT_PANIC_FIRST")?,
            panic_seqs: seqs("FAULT_PANIC_SEQS")?,
            fail_seqs: seqs("FAULT_FAIL_SEQS")?,
            attempts: Mutex::new(HashMap::new()),
        })
    }

    /// Counts this attempt of the command; returns how many came before.
    fn earlier_attempts(&self, input: &ProbeInput) -> u64 {
        let mut attempts = self
            .attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = attempts.entry((input.key.clone(), input.seq)).or_insert(0);
        let earlier = *count;
        *count += 1;
        earlier
    }
}

impl crate::Handler for FaultProbeHandler {
    /// Applies one command, or fails as the environment says.
    async fn apply(
        &self,
        input: ProbeInput,
        _context: crate::Context<'_>,
    ) -> Result<ProbeOutput, OperationError> {
        let earlier = self.earlier_attempts(&input);
        if !self.delay.is_zero() {
            onex::tokio::time::sleep(self.delay).await;
        }
        if self.panic_seqs.contains(&input.seq) {
            panic!("injected fault: seq {} always panics", input.seq);
        }
        if earlier < self.panic_first {
            panic!(
                "injected fault: attempt {} of {}/{} panics",
                earlier + 1,
                input.key,
                input.seq
            );
        }
        if self.fail_seqs.contains(&input.seq) {
            return Err(OperationError::new(
                "injected",
                format!("seq {} fails in its business logic", input.seq),
            ));
        }
        Ok(ProbeOutput {
            key: input.key,
            seq: input.seq,
        })
    }
}
