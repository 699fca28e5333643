//! The pipeline's progress on the bus, as the generator's own typed events
//! (`contracts/generation_pipeline.yaml`): for each contract, with one
//! correlation id, every stage's started and completed (or failed) event,
//! then the pipeline's completed or failed event.
//!
//! The pipeline calls [`BusProgress::note`] from its threads; a note is
//! only a channel send, so the pipeline never waits for the bus. One task
//! turns the notes into events in the order they came (a contract's notes
//! come from one thread at a time, in stage order) and publishes them,
//! several in flight at once; [`BusProgress::finish`] ends each contract's
//! run with its outcome and waits until every event is delivered or the
//! bus gave up on it.
//!
//! The task takes the notes in batches: after a batch it pauses a few
//! milliseconds, so that the notes sent meanwhile do not each wake it (a
//! large run sends tens of thousands, and on a machine with few cores every
//! wake-up is taken from the pipeline's threads). A batch's events are
//! published together ([`onex::EventBus::publish_many`]): one future per
//! batch, polled by the task itself, not one spawned task per event, for
//! the same reason.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures_util::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use onex::{
    BusError, BusMessage, Delivery, Publisher,
    chrono::{DateTime, Utc},
    tokio::{
        self,
        sync::{Notify, mpsc},
        task::JoinHandle,
    },
    uuid::Uuid,
};
use onex_build::pipeline::{
    ContractReport, NodeOutcome, PipelineError, Progress, Stage, StageError,
};

use crate::events::pipeline::{
    self as events, GenerationResult, PipelineCompleted, PipelineFailed,
};

/// Runs `$body` with `$started`, `$completed` and `$failed` naming the step
/// events of `$stage`: one generated type per step and kind.
macro_rules! with_step_events {
    ($stage:expr, $started:ident, $completed:ident, $failed:ident => $body:expr) => {{
        use crate::events::pipeline as e;
        match $stage {
            Stage::Parse => {
                type $started = e::ParseStepStarted;
                type $completed = e::ParseStepCompleted;
                type $failed = e::ParseStepFailed;
                $body
            }
            Stage::PreValidate => {
                type $started = e::PreValidateStepStarted;
                type $completed = e::PreValidateStepCompleted;
                type $failed = e::PreValidateStepFailed;
                $body
            }
            Stage::BuildContract => {
                type $started = e::BuildContractStepStarted;
                type $completed = e::BuildContractStepCompleted;
                type $failed = e::BuildContractStepFailed;
                $body
            }
            Stage::Generate => {
                type $started = e::GenerateStepStarted;
                type $completed = e::GenerateStepCompleted;
                type $failed = e::GenerateStepFailed;
                $body
            }
            Stage::EventBus => {
                type $started = e::EventBusIntegrationStepStarted;
                type $completed = e::EventBusIntegrationStepCompleted;
                type $failed = e::EventBusIntegrationStepFailed;
                $body
            }
            Stage::PostValidate => {
                type $started = e::PostValidateStepStarted;
                type $completed = e::PostValidateStepCompleted;
                type $failed = e::PostValidateStepFailed;
                $body
            }
            Stage::Refine => {
                type $started = e::RefineStepStarted;
                type $completed = e::RefineStepCompleted;
                type $failed = e::RefineStepFailed;
                $body
            }
            Stage::Write => {
                type $started = e::WriteStepStarted;
                type $completed = e::WriteStepCompleted;
                type $failed = e::WriteStepFailed;
                $body
            }
            Stage::CompileCheck => {
                type $started = e::CompileCheckStepStarted;
                type $completed = e::CompileCheckStepCompleted;
                type $failed = e::CompileCheckStepFailed;
                $body
            }
        }
    }};
}

/// How many events may wait for the broker's acknowledgement before the
/// task takes more notes (a batch may go past it): more than a second's
/// worth, so that a long linger (see `generate`'s batching of many
/// contracts' events) never holds the publishing back.
const IN_FLIGHT: usize = 32_768;

/// How long the task lets notes gather after a batch before it takes the
/// next: short beside the producer's linger, long beside a stage.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// The most notes the task takes in one batch.
const BATCH: usize = 1024;

/// The workflow step of a stage, as the contract names it.
pub fn step_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Parse => "parse",
        Stage::PreValidate => "pre_validate",
        Stage::BuildContract => "build_contract",
        Stage::Generate => "generate",
        Stage::EventBus => "event_bus_integration",
        Stage::PostValidate => "post_validate",
        Stage::Refine => "refine",
        Stage::Write => "write",
        Stage::CompileCheck => "compile_check",
    }
}

/// A step's 0-based position in the contract's workflow (`step_index` of
/// its events); `None` for a name that is no step.
pub fn step_index(step: &str) -> Option<usize> {
    events::WORKFLOW_STEPS.iter().position(|s| *s == step)
}

/// The topic of every stage's started, completed and failed event, in
/// stage order.
pub fn step_topics() -> Vec<&'static str> {
    Stage::ALL
        .into_iter()
        .flat_map(|stage| {
            with_step_events!(stage, Started, Completed, Failed => [
                <Started as onex::Event>::TOPIC,
                <Completed as onex::Event>::TOPIC,
                <Failed as onex::Event>::TOPIC,
            ])
        })
        .collect()
}

/// Flushes `bus` after `pause`; a failed flush is no failed event (each
/// event's own publish reports that).
async fn flush_after(bus: Arc<dyn onex::EventBus>, pause: Duration) {
    tokio::time::sleep(pause).await;
    let _ = bus.flush().await;
}

/// What went wrong in a stage, as the failed events carry it.
#[derive(Debug, Clone)]
struct Failure {
    stage: Stage,
    code: String,
    message: String,
    location: Option<String>,
    suggestions: Vec<String>,
}

impl Failure {
    fn of(stage: Stage, error: &StageError) -> Self {
        Failure {
            stage,
            code: error.code().to_owned(),
            message: error.summary(),
            location: error.location(),
            suggestions: error.suggestions(),
        }
    }
}

/// One thing the pipeline told us, owned so that it can cross to the task.
enum Note {
    Started {
        contract: PathBuf,
        stage: Stage,
        at: DateTime<Utc>,
    },
    Finished {
        contract: PathBuf,
        stage: Stage,
        elapsed: Duration,
        at: DateTime<Utc>,
        failure: Option<Failure>,
    },
    Done {
        contract: PathBuf,
        report: Box<ContractReport>,
        compile_checked: bool,
    },
    /// The run is over: every contract with events but no outcome gets its
    /// failed event.
    End {
        error: Option<Failure>,
        failed_contract: Option<PathBuf>,
    },
}

/// A contract's run, as the task follows it.
struct Run {
    correlation_id: Uuid,
    workflow_id: Uuid,
    /// Stages 1 to 5.5 ran: a `write` stage after this is the write, not
    /// the check that the node crate is unchanged.
    rendered: bool,
    stage_ms: BTreeMap<String, f64>,
    failure: Option<Failure>,
    /// Some event of the run was published.
    begun: bool,
    /// Its completed or failed pipeline event was published.
    ended: bool,
}

/// What [`BusProgress::finish`] reports.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Events published.
    pub published: u64,
    /// Events the bus refused or could not deliver, and the first reason.
    pub failed: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Why the bus could not be joined ([`BusProgress::start_joining`]):
    /// then nothing was published.
    pub join_error: Option<String>,
}

/// Publishes a pipeline run's progress; see the [module documentation](self).
pub struct BusProgress {
    notes: mpsc::UnboundedSender<Note>,
    /// Ends the task's pause at once when the run is over.
    ending: Arc<Notify>,
    task: JoinHandle<Delivered>,
}

impl BusProgress {
    /// Starts the task that publishes on `publisher`'s bus, on `runtime`.
    /// Each contract's events carry the correlation id `correlation` gives
    /// it (a fresh one for a contract it does not name).
    pub fn start(
        runtime: &tokio::runtime::Handle,
        publisher: Publisher,
        correlation: HashMap<PathBuf, Uuid>,
    ) -> Self {
        Self::spawn(runtime, |inbox| {
            Task::new(publisher, correlation).run(inbox)
        })
    }

    /// Like [`BusProgress::start`], joining the bus meanwhile: the
    /// pipeline starts at once and its notes wait in the channel until
    /// `joining` gives the publisher (joining takes from 40 ms to half a
    /// second, which a run need not wait for). The bus joined is shut down
    /// once every event is delivered. If joining fails, nothing is
    /// published and [`Delivered::join_error`] says why.
    pub fn start_joining<J>(
        runtime: &tokio::runtime::Handle,
        joining: J,
        correlation: HashMap<PathBuf, Uuid>,
    ) -> Self
    where
        J: std::future::Future<Output = anyhow::Result<Publisher>> + Send + 'static,
    {
        Self::spawn(runtime, |inbox| async move {
            match joining.await {
                Ok(publisher) => {
                    let delivered = Task::new(publisher.clone(), correlation).run(inbox).await;
                    let _ = publisher.bus().shutdown().await;
                    delivered
                }
                Err(e) => Delivered {
                    join_error: Some(format!("{e:#}")),
                    ..Delivered::default()
                },
            }
        })
    }

    /// Spawns the task `task` makes of the inbox, on `runtime`.
    fn spawn<F>(runtime: &tokio::runtime::Handle, task: impl FnOnce(Inbox) -> F) -> Self
    where
        F: std::future::Future<Output = Delivered> + Send + 'static,
    {
        let (notes, rx) = mpsc::unbounded_channel();
        let ending = Arc::new(Notify::new());
        let task = runtime.spawn(task(Inbox {
            notes: rx,
            ending: Arc::clone(&ending),
        }));
        BusProgress {
            notes,
            ending,
            task,
        }
    }

    /// Hands one progress report of the pipeline to the task; never waits.
    pub fn note(&self, progress: Progress<'_>) {
        let note = match progress {
            Progress::Started { contract, stage } => Note::Started {
                contract: contract.to_path_buf(),
                stage,
                at: Utc::now(),
            },
            Progress::Finished {
                contract,
                stage,
                elapsed,
                error,
            } => Note::Finished {
                contract: contract.to_path_buf(),
                stage,
                elapsed,
                at: Utc::now(),
                failure: error.map(|e| Failure::of(stage, e)),
            },
            Progress::Done {
                contract,
                report,
                compile_checked,
            } => Note::Done {
                contract: contract.to_path_buf(),
                report: Box::new(report.clone()),
                compile_checked,
            },
        };
        // The task ends only after `finish`, which consumes `self`.
        let _ = self.notes.send(note);
    }

    /// Ends the run (its outcome: the pipeline's result) and waits until
    /// every event is delivered.
    pub async fn finish(self, result: Result<(), &PipelineError>) -> Delivered {
        let (error, failed_contract) = match result {
            Ok(()) => (None, None),
            Err(e) => (
                Some(Failure::of(e.stage, &e.error)),
                Some(e.contract.clone()),
            ),
        };
        let _ = self.notes.send(Note::End {
            error,
            failed_contract,
        });
        drop(self.notes);
        self.ending.notify_one();
        self.task.await.unwrap_or_default()
    }
}

/// What the task reads: the pipeline's notes, and the signal that the run
/// is over.
struct Inbox {
    notes: mpsc::UnboundedReceiver<Note>,
    ending: Arc<Notify>,
}

/// The publishing task.
struct Task {
    publisher: Publisher,
    correlation: HashMap<PathBuf, Uuid>,
    /// Runs, in the order they began.
    runs: Vec<Run>,
    /// The position of each contract's run in `runs`, by the path's bytes
    /// (hashing a `Path` walks its components, for every note).
    run_index: HashMap<OsString, usize>,
    /// The events of the batch being taken, published together after it.
    outbox: Vec<Arc<BusMessage>>,
    /// The batches being published.
    in_flight: FuturesUnordered<BoxFuture<'static, Vec<Result<Delivery, BusError>>>>,
    /// The events in `in_flight`.
    in_flight_events: usize,
    delivered: Delivered,
}

impl Task {
    fn new(publisher: Publisher, correlation: HashMap<PathBuf, Uuid>) -> Self {
        Task {
            publisher,
            correlation,
            runs: Vec::new(),
            run_index: HashMap::new(),
            outbox: Vec::new(),
            in_flight: FuturesUnordered::new(),
            in_flight_events: 0,
            delivered: Delivered::default(),
        }
    }

    async fn run(mut self, inbox: Inbox) -> Delivered {
        let Inbox {
            notes: mut rx,
            ending,
        } = inbox;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            // Waits for the next note while the deliveries come in.
            tokio::select! {
                taken = rx.recv_many(&mut batch, BATCH) => if taken == 0 { break },
                Some(result) = self.in_flight.next() => {
                    self.count(result);
                    continue;
                }
            }
            for note in batch.drain(..) {
                self.take(note);
            }
            self.publish_outbox();
            self.poll_in_flight();
            self.make_room().await;
            // Lets the next notes gather (the run's end cuts the pause).
            tokio::select! {
                () = tokio::time::sleep(BATCH_PAUSE) => {}
                () = ending.notified() => {}
            }
        }
        self.drain().await;
        self.delivered
    }

    fn take(&mut self, note: Note) {
        match note {
            Note::Started {
                contract,
                stage,
                at,
            } => self.started(&contract, stage, at),
            Note::Finished {
                contract,
                stage,
                elapsed,
                at,
                failure,
            } => self.finished(&contract, stage, elapsed, at, failure),
            Note::Done {
                contract,
                report,
                compile_checked,
            } => self.done(&contract, &report, compile_checked),
            Note::End {
                error,
                failed_contract,
            } => self.end(error, failed_contract),
        }
    }

    /// Waits for every event in flight. Nothing more comes, so the bus is
    /// flushed meanwhile: the last events go out at once instead of after
    /// the linger (a second on a large run). A flush that ends while
    /// events remain (their publish had not reached the producer yet) is
    /// started again.
    async fn drain(&mut self) {
        self.publish_outbox();
        let bus = self.publisher.bus().clone();
        let mut flush = Box::pin(flush_after(bus.clone(), Duration::ZERO));
        while !self.in_flight.is_empty() {
            tokio::select! {
                result = self.in_flight.next() => {
                    if let Some(result) = result {
                        self.count(result);
                    }
                }
                _ = &mut flush => {
                    flush = Box::pin(flush_after(bus.clone(), Duration::from_millis(1)));
                }
            }
        }
    }

    fn run_of(&mut self, contract: &Path) -> &mut Run {
        let index = match self.run_index.get(contract.as_os_str()) {
            Some(index) => *index,
            None => {
                let correlation_id = self
                    .correlation
                    .get(contract)
                    .copied()
                    .unwrap_or_else(Uuid::new_v4);
                self.runs.push(Run {
                    correlation_id,
                    workflow_id: Uuid::new_v4(),
                    rendered: false,
                    stage_ms: BTreeMap::new(),
                    failure: None,
                    begun: false,
                    ended: false,
                });
                self.run_index
                    .insert(contract.as_os_str().to_owned(), self.runs.len() - 1);
                self.runs.len() - 1
            }
        };
        &mut self.runs[index]
    }

    /// The ids of a step event, or `None` for the unchanged check (a
    /// `write` stage before the contract was rendered), which is no step.
    fn step(&mut self, contract: &Path, stage: Stage) -> Option<(Uuid, Uuid, Uuid, String, u32)> {
        let node_id = self.publisher.source().node_id;
        let run = self.run_of(contract);
        if stage == Stage::Write && !run.rendered {
            return None;
        }
        run.begun = true;
        let name = step_name(stage);
        let index = step_index(name).unwrap_or(usize::MAX);
        Some((
            run.workflow_id,
            run.correlation_id,
            node_id,
            name.to_owned(),
            u32::try_from(index).unwrap_or(u32::MAX),
        ))
    }

    fn started(&mut self, contract: &Path, stage: Stage, at: DateTime<Utc>) {
        let Some((workflow_id, correlation_id, node_id, step, step_index)) =
            self.step(contract, stage)
        else {
            return;
        };
        let message = with_step_events!(stage, Started, _Completed, _Failed => {
            self.publisher.message(
                &Started { workflow_id, correlation_id, node_id, step, step_index, started_at: at },
                Some(correlation_id),
                BTreeMap::new(),
            )
        });
        self.send(message);
    }

    fn finished(
        &mut self,
        contract: &Path,
        stage: Stage,
        elapsed: Duration,
        at: DateTime<Utc>,
        failure: Option<Failure>,
    ) {
        let Some((workflow_id, correlation_id, node_id, step, step_index)) =
            self.step(contract, stage)
        else {
            return;
        };
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let run = self.run_of(contract);
        run.rendered |= stage == Stage::Refine;
        *run.stage_ms.entry(step.clone()).or_default() += duration_ms;
        let message = match &failure {
            None => with_step_events!(stage, _Started, Completed, _Failed => {
                self.publisher.message(
                    &Completed {
                        workflow_id, correlation_id, node_id, step, step_index,
                        completed_at: at, duration_ms, result: None,
                    },
                    Some(correlation_id),
                    BTreeMap::new(),
                )
            }),
            Some(failure) => with_step_events!(stage, _Started, _Completed, Failed => {
                self.publisher.message(
                    &Failed {
                        workflow_id, correlation_id, node_id, step, step_index,
                        failed_at: at, duration_ms,
                        error_message: failure.message.clone(),
                        error_type: failure.code.clone(),
                        recovery_suggestions: failure.suggestions.clone(),
                    },
                    Some(correlation_id),
                    BTreeMap::new(),
                )
            }),
        };
        if failure.is_some() {
            self.run_of(contract).failure = failure;
        }
        self.send(message);
    }

    fn done(&mut self, contract: &Path, report: &ContractReport, compile_checked: bool) {
        let run = self.run_of(contract);
        run.begun = true;
        run.ended = true;
        let correlation_id = run.correlation_id;
        // `--check` writes nothing: its stale files are in its report, not
        // among the files written.
        let files_written = match &report.outcome {
            NodeOutcome::Written { files } => files.clone(),
            _ => Vec::new(),
        };
        let result = GenerationResult {
            node_name: report.node_name.clone(),
            node_type: report.node_type.clone(),
            output_path: report.node_dir.display().to_string(),
            files_written,
            total_duration_ms: run.stage_ms.values().sum(),
            stage_durations_ms: std::mem::take(&mut run.stage_ms),
            validation_passed: report.gates.iter().all(|g| g.passed),
            compilation_passed: compile_checked.then_some(true),
        };
        let message = self.publisher.message(
            &PipelineCompleted { result },
            Some(correlation_id),
            BTreeMap::new(),
        );
        self.send(message);
    }

    fn end(&mut self, error: Option<Failure>, failed_contract: Option<PathBuf>) {
        // The failing contract gets the pipeline's error even if no stage
        // event said so (it failed before its first stage).
        if let (Some(error), Some(contract)) = (&error, &failed_contract) {
            let run = self.run_of(contract);
            run.begun = true;
            run.failure.get_or_insert_with(|| error.clone());
        }
        let mut messages = Vec::new();
        for run in &mut self.runs {
            if !run.begun || run.ended {
                continue;
            }
            run.ended = true;
            let failure = run.failure.clone().unwrap_or_else(|| Failure {
                stage: Stage::Write,
                code: "ABORTED".to_owned(),
                message: "not written: an earlier contract of the same run failed".to_owned(),
                location: None,
                suggestions: vec![
                    "fix the contract whose pipeline failed, then run again".to_owned(),
                ],
            });
            let event = PipelineFailed {
                failed_stage: step_name(failure.stage).to_owned(),
                error_code: failure.code,
                error_message: failure.message,
                location: failure.location,
                recovery_suggestions: failure.suggestions,
                total_duration_ms: run.stage_ms.values().sum(),
            };
            messages.push(self.publisher.message(
                &event,
                Some(run.correlation_id),
                BTreeMap::new(),
            ));
        }
        for message in messages {
            self.send(message);
        }
    }

    /// Adds a built message to the batch's events.
    fn send(&mut self, message: Result<BusMessage, BusError>) {
        match message {
            Ok(message) => self.outbox.push(Arc::new(message)),
            Err(e) => self.failed(e.to_string()),
        }
    }

    /// Publishes the batch's events together, in the order they were
    /// built; the events of a run travel on different topics anyway, so
    /// readers order them by their timestamps. Polled with the task's
    /// other batches (see [`Task::poll_in_flight`]).
    fn publish_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let messages = std::mem::take(&mut self.outbox);
        self.in_flight_events += messages.len();
        let bus = self.publisher.bus().clone();
        self.in_flight
            .push(async move { bus.publish_many(messages).await }.boxed());
    }

    /// Polls the publishes once, which hands the new ones to the bus, and
    /// counts those that ended.
    fn poll_in_flight(&mut self) {
        while let Some(Some(result)) = self.in_flight.next().now_or_never() {
            self.count(result);
        }
    }

    /// Waits while more than [`IN_FLIGHT`] events wait for delivery.
    async fn make_room(&mut self) {
        while self.in_flight_events > IN_FLIGHT {
            if let Some(result) = self.in_flight.next().await {
                self.count(result);
            }
        }
    }

    /// Counts a batch's deliveries.
    fn count(&mut self, results: Vec<Result<Delivery, BusError>>) {
        self.in_flight_events -= results.len();
        for result in results {
            match result {
                Ok(_) => self.delivered.published += 1,
                Err(e) => self.failed(e.to_string()),
            }
        }
    }

    fn failed(&mut self, error: String) {
        self.delivered.failed += 1;
        self.delivered.first_error.get_or_insert(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_a_step_with_three_topics() {
        let topics = step_topics();
        assert_eq!(topics.len(), 3 * Stage::ALL.len());
        for (stage, three) in Stage::ALL.iter().zip(topics.chunks(3)) {
            let step = step_name(*stage);
            assert!(step_index(step).is_some(), "{step} is no workflow step");
            for (topic, kind) in three.iter().zip(["started", "completed", "failed"]) {
                assert_eq!(
                    *topic,
                    format!("generation.orchestrator.workflow.{step}.{kind}.v1")
                );
            }
        }
        assert_eq!(step_index("write"), Some(7));
        assert_eq!(step_index("nothing"), None);
    }
}
