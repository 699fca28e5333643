//! `cargo onex generate --via-bus`: the command line as an adapter of the
//! bus (seed 004). It sends each contract to a generator service
//! (`cargo onex serve`) as the pipeline's `prompt_submitted` command, shows
//! the stage events of its run as they arrive, and waits for the correlated
//! completed or failed event. When no generator shows a sign of life in
//! time, it says so and the caller generates locally instead.

use std::{
    collections::BTreeMap,
    io::IsTerminal as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use onex::{
    BusMessage, EventBus, KafkaConfig, Publisher,
    bus::{Subscription, handler_fn},
    request::{RequestError, Requester},
    tokio::{self, sync::mpsc},
    uuid::Uuid,
};

use crate::{
    bus,
    events::pipeline::{
        self as events, GenerationRequest, PipelineCompleted, PipelineFailed, PromptSubmitted,
    },
    progress,
};

/// How the client waits.
#[derive(Debug, Clone)]
pub struct Waits {
    /// No sign of life (a stage event or the outcome) within this: no
    /// generator runs, generate locally.
    pub answer: Duration,
    /// The whole run of one contract.
    pub outcome: Duration,
}

/// What the generator service said about one contract.
#[derive(Debug)]
pub enum Outcome {
    /// The node crate was generated.
    Completed(PipelineCompleted),
    /// The pipeline failed, or the request was refused.
    Failed(PipelineFailed),
}

/// Every contract's outcome, or `None` when no generator answered the first
/// one in time (nothing was generated; generate locally).
pub fn generate(
    mut config: KafkaConfig,
    contracts: &[PathBuf],
    out_dir: &Path,
    compile_check: bool,
    waits: &Waits,
) -> anyhow::Result<Option<Vec<(PathBuf, Outcome)>>> {
    // A person waits for the answer: fetch as soon as anything arrived,
    // unless told otherwise.
    if std::env::var_os("KAFKA_FETCH_WAIT_MAX_MS").is_none() {
        config.fetch_wait_max_ms = 10;
    }
    let runtime = bus::runtime()?;
    runtime.block_on(async {
        let publisher = bus::join(config, "generation_cli").await?;
        let bus = publisher.bus().clone();
        let result = run(&publisher, contracts, out_dir, compile_check, waits).await;
        let _ = bus.shutdown().await;
        result
    })
}

async fn run(
    publisher: &Publisher,
    contracts: &[PathBuf],
    out_dir: &Path,
    compile_check: bool,
    waits: &Waits,
) -> anyhow::Result<Option<Vec<(PathBuf, Outcome)>>> {
    // Both subscriptions start at once: on Kafka each asks the broker where
    // its topics end.
    let (requester, progress) = tokio::join!(
        Requester::<PipelineCompleted, PipelineFailed>::start(publisher.clone(), "generation_cli"),
        Progress::subscribe(publisher.bus()),
    );
    let requester = match requester {
        Ok(requester) => requester,
        // No broker: nobody can answer.
        Err(onex::BusError::Unavailable(reason)) => {
            eprintln!("warning: the bus is not available ({reason})");
            return Ok(None);
        }
        Err(e) => return Err(e).context("cannot wait for the generator's answers"),
    };
    let mut progress = progress?;
    let mut outcomes = Vec::new();
    for (index, contract) in contracts.iter().enumerate() {
        let correlation_id = Uuid::new_v4();
        let command = PromptSubmitted {
            request: GenerationRequest {
                contract_path: Some(contract.display().to_string()),
                contract_text: None,
                output_directory: out_dir.display().to_string(),
                requested_by: "cargo onex generate --via-bus".to_owned(),
                compile_check,
            },
        };
        let pending = requester
            .send(&command, correlation_id)
            .await
            .map_err(|e| anyhow::anyhow!("cannot send the generation request: {e}"))?;
        let mut display = Display::new(contract, compile_check);
        // The first contract decides whether a generator runs at all.
        let answer_by = (index == 0).then(|| tokio::time::Instant::now() + waits.answer);
        let wait = pending.wait(waits.outcome);
        tokio::pin!(wait);
        let mut alive = false;
        let outcome = loop {
            tokio::select! {
                reply = &mut wait => break reply,
                Some(step) = progress.rx.recv() => {
                    if step.correlation_id == correlation_id {
                        alive = true;
                        display.step(step);
                    }
                }
                () = sleep_until(answer_by), if !alive => {
                    display.clear();
                    requester.stop().await;
                    progress.stop().await;
                    return Ok(None);
                }
            }
        };
        // Stage events still on their way (they travel on other topics than
        // the outcome) are shown before it: every stage's two events after
        // a success, whatever comes within a moment after a failure.
        let expected = if outcome.is_ok() {
            2 * display.steps
        } else {
            usize::MAX
        };
        let patience = if outcome.is_ok() { 2000 } else { 300 };
        let until = tokio::time::Instant::now() + Duration::from_millis(patience);
        while display.received < expected {
            match tokio::time::timeout_at(until, progress.rx.recv()).await {
                Ok(Some(step)) if step.correlation_id == correlation_id => display.step(step),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        display.finish();
        let outcome = match outcome {
            Ok(completed) => Outcome::Completed(completed),
            Err(RequestError::Failed { failure, .. }) => Outcome::Failed(failure),
            Err(RequestError::Timeout { after, .. }) => anyhow::bail!(
                "the generator did not finish `{}` within {} s\n\
                 help: raise --bus-timeout, or check the generator's log",
                contract.display(),
                after.as_secs()
            ),
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        };
        outcomes.push((contract.clone(), outcome));
    }
    requester.stop().await;
    progress.stop().await;
    Ok(Some(outcomes))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A stage event of some run.
struct Step {
    correlation_id: Uuid,
    /// `parse`, `pre_validate`, ...
    step: String,
    /// `started`, `completed` or `failed`.
    kind: String,
}

/// The subscription to every stage event, from now on.
struct Progress {
    rx: mpsc::UnboundedReceiver<Step>,
    handle: Option<onex::SubscriptionHandle>,
}

impl Progress {
    async fn subscribe(bus: &Arc<dyn EventBus>) -> anyhow::Result<Self> {
        let environment = bus.environment().to_owned();
        let topics: Vec<String> = progress::step_topics()
            .into_iter()
            .map(|t| onex::topic::qualified(&environment, t))
            .collect();
        // From now on, under a name of its own: this run's events only.
        let group = format!("generation_cli.progress.{}", Uuid::new_v4());
        let (tx, rx) = mpsc::unbounded_channel();
        let handler = handler_fn(move |message: BusMessage| {
            let tx = tx.clone();
            async move {
                let envelope = &message.envelope;
                let payload = envelope.payload_value();
                let step = payload.get("step").and_then(|s| s.as_str());
                let kind = envelope.event_type.rsplit('.').next();
                if let (Some(correlation_id), Some(step), Some(kind)) =
                    (envelope.correlation_id, step, kind)
                {
                    let _ = tx.send(Step {
                        correlation_id,
                        step: step.to_owned(),
                        kind: kind.to_owned(),
                    });
                }
                Ok(())
            }
        });
        let handle = bus
            .subscribe_from_now(Subscription { topics, group }, handler)
            .await
            .context("cannot subscribe to the generator's progress")?;
        Ok(Progress {
            rx,
            handle: Some(handle),
        })
    }

    async fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop().await;
        }
    }
}

/// Shows a run's stages: a bar redrawn in place on a terminal, one line
/// per event otherwise. The events come from one topic per step and kind,
/// so they may arrive out of order: they are shown in the pipeline's order,
/// each once every event before it was shown.
struct Display {
    name: String,
    steps: usize,
    terminal: bool,
    /// Events received and not shown yet, by position: (step, 0 started /
    /// 1 completed or failed).
    pending: BTreeMap<(usize, u8), Step>,
    /// The position of the next event to show.
    next: (usize, u8),
    /// Events received.
    received: usize,
}

impl Display {
    fn new(contract: &Path, compile_check: bool) -> Self {
        let name = contract.file_name().map_or_else(
            || contract.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Display {
            name,
            // Stage 7 runs only when asked for.
            steps: events::WORKFLOW_STEPS.len() - usize::from(!compile_check),
            terminal: std::io::stderr().is_terminal(),
            pending: BTreeMap::new(),
            next: (0, 0),
            received: 0,
        }
    }

    fn step(&mut self, step: Step) {
        let index = progress::step_index(&step.step).unwrap_or(0);
        let position = (index, u8::from(step.kind != "started"));
        self.received += 1;
        self.pending.insert(position, step);
        self.show(false);
    }

    /// Shows the pending events that are next in order; with `all`, every
    /// pending event (the outcome came: nothing else will).
    fn show(&mut self, all: bool) {
        loop {
            let position = match self.pending.keys().next() {
                Some(first) if all => *first,
                _ => self.next,
            };
            let Some(step) = self.pending.remove(&position) else {
                return;
            };
            let (index, end) = position;
            self.next = if end == 0 { (index, 1) } else { (index + 1, 0) };
            self.draw(index + usize::from(end), &step);
        }
    }

    fn draw(&self, done: usize, step: &Step) {
        if self.terminal {
            let width = 20;
            let filled = (done * width / self.steps.max(1)).min(width);
            eprint!(
                "\r\x1b[2K  Generating {} [{}{}] {done}/{} {} {}",
                self.name,
                "#".repeat(filled),
                "-".repeat(width - filled),
                self.steps,
                step.step,
                step.kind
            );
        } else {
            eprintln!("    Progress {}: {} {}", self.name, step.step, step.kind);
        }
    }

    /// The outcome came: shows what is left and clears the bar.
    fn finish(&mut self) {
        self.show(true);
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }

    /// No generator answered: clears the bar.
    fn clear(&self) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}
