//! Workflows through generated nodes, over the in-memory bus and over
//! Kafka. Writes JSON results.
//!
//! ```text
//! onex-bench-workflow [--brokers 127.0.0.1:19092] --workflows 1000 \
//!     --warmup 100 --in-flight 64 [--node-max-in-flight 64] \
//!     [--fetch-wait-max-ms 100] --out workflow.json
//! ```
//!
//! Three nodes of `examples/`, each on its own `NodeRuntime` with its own
//! source, built and initialized as their `main` builds them (but for
//! consumer groups of the run's own):
//!
//! - `order_cli` (its own `OrderCliHandler`) places an order through its
//!   generated `requests().place_order(..)`, which sends `place_order` and
//!   awaits the workflow's completed or failed event;
//! - `order_workflow` (its own `OrderWorkflowHandler`) runs the workflow:
//!   the step `validate_order` in process, then `persist_order`, which sends
//!   the writer's `write_requested` and waits for `write_record_completed`;
//!   then it publishes `workflow_completed`;
//! - `postgres_writer`, with this benchmark's handler [`BenchWriter`]: it
//!   does no database work and publishes no `record_written`, so that the
//!   figures measure the messaging and the nodes' generated code, not
//!   PostgreSQL.
//!
//! Each workflow is timed from the call of `place_order` to its
//! `WorkflowCompleted`, which must carry the writer's answer for the
//! order. Two measurements per bus:
//!
//! - sequential: one workflow at a time (after `--warmup` not counted);
//!   workflows per second are the counted ones over their wall time;
//! - concurrent: `--in-flight` tasks share the adapter node, each placing
//!   one order after another until `--workflows` are done.
//!
//! In memory, the three nodes share one `InMemoryBus`, and the benchmark
//! also lists the messages one workflow publishes (from the bus's
//! history). With `--brokers`, each node connects its own `KafkaBus`, on an
//! environment new to each run so that every topic is new;
//! `--fetch-wait-max-ms` sets the nodes' `KafkaConfig::fetch_wait_max_ms`
//! (default: the bus's default). `--node-max-in-flight` (default 64) is
//! how many messages each node's subscriptions handle at once
//! (`KAFKA_MAX_IN_FLIGHT`, on both buses): with 1, the orchestrator runs
//! one workflow at a time, each holding its command while the writer
//! answers.

// What a generated node installs (see its main.rs); the peers measured
// beside it share this process, so both sides run on the same allocator.
#[global_allocator]
static ALLOCATOR: onex::Allocator = onex::Allocator;

use std::{
    error::Error,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use onex::{
    Event, EventBus, InMemoryBus, KafkaConfig, SourceInfo, chrono::Utc, config::AutoOffsetReset,
    lifecycle::NodeRuntime, request::create_missing_topics, uuid::Uuid,
};
use onex_bench::stats;
use order_cli::{
    NodeOrderCliEffect,
    consumed::order_workflow::{Order, OrderLine, PlaceOrder},
    handler::OrderCliHandler,
};
use order_workflow::{
    NodeOrderWorkflowOrchestrator,
    consumed::postgres_writer::{RecordWritten, WriteRequested},
    handler::{CATALOGUE, OrderWorkflowHandler},
};
use postgres_writer::{
    NodePostgresWriterEffect,
    events::{WriteRecordInput, WriteRecordOutput, WriteStatus},
};
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;

type Adapter = NodeOrderCliEffect<OrderCliHandler>;
type Orchestrator = NodeOrderWorkflowOrchestrator<OrderWorkflowHandler>;
type Writer = NodePostgresWriterEffect<BenchWriter>;

/// What the benchmark's writer does, in the report's words.
const WRITER: &str = "a benchmark handler that does no database work: every record is \
                      reported inserted (one row) and no `record_written` is published";

/// The writer's business logic for the benchmark: no database, so that a
/// workflow costs only its messages and the nodes' code.
struct BenchWriter;

impl postgres_writer::Handler for BenchWriter {
    async fn write_record(
        &self,
        input: WriteRecordInput,
        _context: postgres_writer::Context<'_>,
    ) -> Result<WriteRecordOutput, postgres_writer::OperationError> {
        Ok(WriteRecordOutput {
            record_id: input.record_id,
            rows_affected: 1,
            status: WriteStatus::Inserted,
        })
    }
}

struct Args {
    brokers: Option<String>,
    workflows: usize,
    warmup: usize,
    in_flight: usize,
    node_max_in_flight: usize,
    fetch_wait_max_ms: u64,
    out: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        brokers: None,
        workflows: 1_000,
        warmup: 100,
        in_flight: 64,
        node_max_in_flight: 64,
        fetch_wait_max_ms: KafkaConfig::default().fetch_wait_max_ms,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = Some(value()?),
            "--workflows" => args.workflows = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--in-flight" => args.in_flight = value()?.parse()?,
            "--node-max-in-flight" => args.node_max_in_flight = value()?.parse()?,
            "--fetch-wait-max-ms" => args.fetch_wait_max_ms = value()?.parse()?,
            "--out" => args.out = Some(value()?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if args.workflows == 0 || args.in_flight == 0 || args.node_max_in_flight == 0 {
        return Err("--workflows, --in-flight and --node-max-in-flight must be at least 1".into());
    }
    Ok(args)
}

/// The bus each node joins.
struct Buses {
    adapter: Arc<dyn EventBus>,
    orchestrator: Arc<dyn EventBus>,
    writer: Arc<dyn EventBus>,
}

/// The three nodes of a run.
struct Nodes {
    adapter: Arc<Adapter>,
    orchestrator: Arc<Orchestrator>,
    writer: Arc<Writer>,
}

/// A consumer group of the run's own, so that no run meets another's
/// group on the broker.
fn group_of(environment: &str, group: &str) -> String {
    format!("{environment}.{group}")
}

impl Nodes {
    /// Starts the writer, then the orchestrator, then the adapter, so that
    /// every command has its consumer before anyone sends it.
    async fn start(buses: Buses, environment: &str) -> Result<Nodes, BoxError> {
        let mut settings = postgres_writer::Settings::default();
        settings.consumer_group = group_of(environment, &settings.consumer_group);
        let source = SourceInfo::new(
            settings.service.clone(),
            postgres_writer::events::VERSION,
            environment,
        );
        let writer = Arc::new(Writer::new(
            NodeRuntime::new(buses.writer, source),
            BenchWriter,
        ));
        writer.initialize(&settings).await?;

        let mut settings = order_workflow::Settings::default();
        settings.consumer_group = group_of(environment, &settings.consumer_group);
        let source = SourceInfo::new(
            settings.service.clone(),
            order_workflow::events::VERSION,
            environment,
        );
        let orchestrator = Arc::new(Orchestrator::new(
            NodeRuntime::new(buses.orchestrator, source),
            OrderWorkflowHandler::new()
                .await
                .map_err(|e| e.to_string())?,
        ));
        orchestrator.initialize(&settings).await?;

        let mut settings = order_cli::Settings::default();
        settings.consumer_group = group_of(environment, &settings.consumer_group);
        let source = SourceInfo::new(
            settings.service.clone(),
            order_cli::events::VERSION,
            environment,
        );
        let adapter = Arc::new(Adapter::new(
            NodeRuntime::new(buses.adapter, source),
            OrderCliHandler::new().await.map_err(|e| e.to_string())?,
        ));
        adapter.initialize(&settings).await?;
        Ok(Nodes {
            adapter,
            orchestrator,
            writer,
        })
    }

    /// Fails when a node refused or dead-lettered a message: every
    /// workflow must have gone through as the contracts say.
    fn check_clean(&self) -> Result<(), BoxError> {
        let runtimes = [
            ("order_cli", self.adapter.runtime()),
            ("order_workflow", self.orchestrator.runtime()),
            ("postgres_writer", self.writer.runtime()),
        ];
        for (node, runtime) in runtimes {
            let refused = runtime.rejected_messages();
            let dead = runtime.dead_lettered().unwrap_or(0);
            if refused + dead != 0 {
                return Err(format!(
                    "{node} refused {refused} and dead-lettered {dead} message(s)"
                )
                .into());
            }
        }
        Ok(())
    }

    /// Stops the adapter first, so that nothing waits for the others when
    /// they stop.
    async fn shutdown(&self) -> Result<(), BoxError> {
        self.adapter.shutdown().await?;
        self.orchestrator.shutdown().await?;
        self.writer.shutdown().await?;
        Ok(())
    }
}

/// A valid order of one catalogue line.
fn order(n: usize) -> Order {
    Order {
        order_id: Uuid::new_v4(),
        customer_id: format!("customer-{n}"),
        lines: vec![OrderLine {
            sku: CATALOGUE[n % CATALOGUE.len()].to_owned(),
            quantity: 1 + (n % 5) as u32,
            unit_price_cents: 1_250,
        }],
        placed_at: Utc::now(),
        notes: None,
    }
}

/// Places one order and checks that its workflow completed with the
/// writer's answer for that order; returns the run's correlation id.
async fn place_order(adapter: &Adapter, n: usize) -> Result<Uuid, BoxError> {
    let order = order(n);
    let order_id = order.order_id.to_string();
    let correlation_id = Uuid::new_v4();
    let completed = adapter
        .requests()
        .place_order(&PlaceOrder { order }, correlation_id)
        .await
        .map_err(|error| format!("workflow {n} did not complete: {error}"))?;
    let stored = completed
        .result
        .as_ref()
        .and_then(|results| results.get("persist_order"))
        // The step's result is the writer's `write_record_completed`.
        .and_then(|completed| completed.get("result"))
        .and_then(|written| written.get("record_id"))
        .and_then(Value::as_str);
    if completed.correlation_id != correlation_id || stored != Some(order_id.as_str()) {
        return Err(format!(
            "workflow {n} completed without the writer's answer for its order: {:?}",
            completed.result
        )
        .into());
    }
    Ok(correlation_id)
}

/// Workflows and the wall time they took.
struct Measured {
    /// Each workflow's latency, µs.
    latencies: Vec<f64>,
    elapsed: Duration,
}

/// One workflow at a time; the first `warmup` are not counted.
async fn sequential(adapter: &Adapter, args: &Args) -> Result<Measured, BoxError> {
    for n in 0..args.warmup {
        place_order(adapter, n).await?;
    }
    let mut latencies = Vec::with_capacity(args.workflows);
    let started = Instant::now();
    for n in 0..args.workflows {
        let clock = Instant::now();
        place_order(adapter, n).await?;
        latencies.push(clock.elapsed().as_secs_f64() * 1e6);
    }
    Ok(Measured {
        latencies,
        elapsed: started.elapsed(),
    })
}

/// `in_flight` tasks sharing the adapter, each placing one order after
/// another until `workflows` are done.
async fn concurrent(adapter: &Arc<Adapter>, args: &Args) -> Result<Measured, BoxError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.in_flight)
        .map(|_| {
            let adapter = Arc::clone(adapter);
            let next = Arc::clone(&next);
            let workflows = args.workflows;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= workflows {
                        return Ok::<_, BoxError>(latencies);
                    }
                    let clock = Instant::now();
                    place_order(&adapter, n).await?;
                    latencies.push(clock.elapsed().as_secs_f64() * 1e6);
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.workflows);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Measured {
        latencies,
        elapsed: started.elapsed(),
    })
}

fn summary(measured: &Measured) -> Value {
    let mut sorted = measured.latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    let seconds = measured.elapsed.as_secs_f64();
    json!({
        "workflows": count,
        "seconds": seconds,
        "workflows_per_s": count as f64 / seconds,
        "p50_us": stats::percentile_sorted(&sorted, 50.0),
        "p90_us": stats::percentile_sorted(&sorted, 90.0),
        "p99_us": stats::percentile_sorted(&sorted, 99.0),
        "min_us": sorted.first().copied().unwrap_or(f64::NAN),
        "max_us": sorted.last().copied().unwrap_or(f64::NAN),
        "mean_us": sorted.iter().sum::<f64>() / count.max(1) as f64,
    })
}

fn report(bus: &str, how: &str, measured: &Measured) {
    let latencies = &measured.latencies;
    eprintln!(
        "{bus:<8} {how:<10} {} workflows: {:.0} workflows/s  p50 {:.1} µs  p99 {:.1} µs",
        latencies.len(),
        latencies.len() as f64 / measured.elapsed.as_secs_f64(),
        stats::percentile(latencies, 50.0),
        stats::percentile(latencies, 99.0)
    );
}

/// Runs both measurements on started nodes, then stops them.
async fn measure(nodes: Nodes, bus: &str, args: &Args) -> Result<Value, BoxError> {
    let one_by_one = sequential(&nodes.adapter, args).await?;
    report(bus, "sequential", &one_by_one);
    let in_flight = concurrent(&nodes.adapter, args).await?;
    report(bus, "concurrent", &in_flight);
    nodes.check_clean()?;
    nodes.shutdown().await?;
    let mut concurrent = summary(&in_flight);
    concurrent["in_flight"] = json!(args.in_flight);
    Ok(json!({
        "sequential": summary(&one_by_one),
        "concurrent": concurrent,
    }))
}

/// The messages one workflow publishes, in order: the event types that
/// carry its correlation id in the bus's history.
async fn messages_of_one_workflow(
    bus: &InMemoryBus,
    adapter: &Adapter,
) -> Result<Vec<String>, BoxError> {
    bus.clear_history();
    let correlation_id = place_order(adapter, 0).await?;
    bus.wait_until_idle().await;
    Ok(bus
        .history()
        .iter()
        .filter(|message| message.envelope.correlation_id == Some(correlation_id))
        .map(|message| message.envelope.event_type.to_string())
        .collect())
}

async fn in_memory(args: &Args) -> Result<Value, BoxError> {
    let environment = "bench";
    let options = onex::memory::MemoryBusOptions {
        max_in_flight: args.node_max_in_flight,
        ..Default::default()
    };
    let bus = Arc::new(InMemoryBus::with_options(environment, options));
    let shared: Arc<dyn EventBus> = bus.clone();
    let buses = Buses {
        adapter: shared.clone(),
        orchestrator: shared.clone(),
        writer: shared,
    };
    let nodes = Nodes::start(buses, environment).await?;
    let messages = messages_of_one_workflow(&bus, &nodes.adapter).await?;
    let mut result = measure(nodes, "memory", args).await?;
    result["messages_per_workflow"] = json!(messages.len());
    result["message_types"] = json!(messages);
    Ok(result)
}

/// A node's Kafka configuration: the defaults a node runs with (`acks=all`,
/// idempotence, `linger.ms=1`) but for the fetch wait `--fetch-wait-max-ms`
/// gives, its dead-letter topic and spool name as its `main` sets them, on
/// the run's environment.
fn kafka_config(
    args: &Args,
    brokers: &str,
    environment: &str,
    service: &str,
    dead_letter_topic: &str,
) -> Result<KafkaConfig, BoxError> {
    let config = KafkaConfig {
        bootstrap_servers: brokers.to_owned(),
        bootstrap_configured: true,
        environment: environment.to_owned(),
        dead_letter_topic: dead_letter_topic.to_owned(),
        // Every topic is new to the run, so reading from the start reads
        // only this run's messages; `latest` could skip a command sent
        // before the consumer looked up the end of its new partition.
        auto_offset_reset: AutoOffsetReset::Earliest,
        // The benchmark measures workflows, not a spool left behind.
        spool_dir: "off".to_owned(),
        spool_name: Some(service.to_owned()),
        fetch_wait_max_ms: args.fetch_wait_max_ms,
        max_in_flight: args.node_max_in_flight,
        ..KafkaConfig::default()
    };
    config.validate()?;
    Ok(config)
}

async fn connect(config: KafkaConfig) -> Result<Arc<dyn EventBus>, BoxError> {
    Ok(onex::connect(config).await?)
}

async fn over_kafka(args: &Args, brokers: &str) -> Result<Value, BoxError> {
    let environment = format!("bench-wf-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let writer = kafka_config(
        args,
        brokers,
        &environment,
        postgres_writer::events::SERVICE,
        postgres_writer::events::DEAD_LETTER_TOPIC,
    )?;
    let orchestrator = kafka_config(
        args,
        brokers,
        &environment,
        order_workflow::events::SERVICE,
        order_workflow::events::DEAD_LETTER_TOPIC,
    )?;
    let adapter = kafka_config(
        args,
        brokers,
        &environment,
        order_cli::events::SERVICE,
        order_cli::events::DEAD_LETTER_TOPIC,
    )?;
    // The topics the nodes consume their commands and events from: a
    // consumer subscribed to a missing topic learns of it only at its next
    // metadata refresh. (The requesters create their reply topics.)
    let topics = [
        <PlaceOrder as Event>::TOPIC,
        <WriteRequested as Event>::TOPIC,
        <RecordWritten as Event>::TOPIC,
    ]
    .map(|topic| onex::topic::qualified(&environment, topic));
    create_missing_topics(&writer, &topics).await?;
    let buses = Buses {
        writer: connect(writer).await?,
        orchestrator: connect(orchestrator).await?,
        adapter: connect(adapter).await?,
    };
    let nodes = Nodes::start(buses, &environment).await?;
    measure(nodes, "kafka", args).await
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // As a generated node's main does; the peers share the process.
    onex::allocator::init();
    let args = parse_args()?;
    let memory = in_memory(&args).await?;
    let kafka = match &args.brokers {
        Some(brokers) => Some(over_kafka(&args, brokers).await?),
        None => None,
    };
    let defaults = KafkaConfig::default();
    let result = json!({
        "settings": {
            "workflows": args.workflows,
            "warmup": args.warmup,
            "in_flight": args.in_flight,
            "node_max_in_flight": args.node_max_in_flight,
            "brokers": args.brokers.as_ref().map(|_| "Tansu on loopback"),
            "acks": defaults.acks.as_str(),
            "linger_ms": defaults.linger_ms,
            "fetch_wait_max_ms": args.fetch_wait_max_ms,
            "runtime": "tokio multi-thread",
            "writer": WRITER,
        },
        "memory": memory,
        "kafka": kafka,
    });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => println!("{text}"),
    }
    Ok(())
}
