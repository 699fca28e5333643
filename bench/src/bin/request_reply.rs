//! Request and reply round trips (`onex::request::Requester`) over the
//! in-memory bus and over Kafka. Writes JSON results.
//!
//! ```text
//! onex-bench-request-reply [--brokers 127.0.0.1:19092] --requests 1000 \
//!     --warmup 100 --out request_reply.json
//! ```
//!
//! A responder subscribed to the command topic answers every command with
//! the completed event under the command's correlation id. The requester
//! sends one command at a time and awaits its reply; each round trip is
//! timed from the call of `request` to its result: the command published
//! (on Kafka: acknowledged with `acks=all`), consumed by the responder, the
//! reply published and consumed by the requester, and handed to the
//! caller. The first `--warmup` round trips are not counted. Without
//! `--brokers` only the in-memory bus is measured.

// What a generated node installs (see its main.rs); the peers measured
// beside it share this process, so both sides run on the same allocator.
#[global_allocator]
static ALLOCATOR: onex::Allocator = onex::Allocator;

use std::{
    error::Error,
    sync::Arc,
    time::{Duration, Instant},
};

use onex::{
    Event, EventBus, HandlerError, InMemoryBus, KafkaConfig, MessageCategory, Publisher,
    SourceInfo,
    bus::{Subscription, SubscriptionHandle, handler_fn},
    kafka::KafkaBus,
    request::{Requester, create_missing_topics},
    serde::{Deserialize, Serialize},
};
use onex_bench::stats;
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;

/// The command: write a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "onex::serde")]
struct WriteRecord {
    table: String,
    n: u64,
}

impl Event for WriteRecord {
    const EVENT_TYPE: &'static str = "effect.write_record";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Command;
    const TOPIC: &'static str = "postgres_writer.effect.write_record.v1";
}

/// The completed event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "onex::serde")]
struct WriteRecordCompleted {
    n: u64,
    rows: u64,
}

impl Event for WriteRecordCompleted {
    const EVENT_TYPE: &'static str = "effect.write_record.completed";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "postgres_writer.effect.write_record.completed.v1";
}

/// The failed event (never sent here).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(crate = "onex::serde")]
struct WriteRecordFailed {
    n: u64,
    error_message: String,
}

impl Event for WriteRecordFailed {
    const EVENT_TYPE: &'static str = "effect.write_record.failed";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: MessageCategory = MessageCategory::Event;
    const TOPIC: &'static str = "postgres_writer.effect.write_record.failed.v1";
}

type Writer = Requester<WriteRecordCompleted, WriteRecordFailed>;

struct Args {
    brokers: Option<String>,
    requests: usize,
    warmup: usize,
    out: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        brokers: None,
        requests: 1_000,
        warmup: 100,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = Some(value()?),
            "--requests" => args.requests = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--out" => args.out = Some(value()?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if args.requests == 0 {
        return Err("--requests must be at least 1".into());
    }
    Ok(args)
}

/// Subscribes the responder: every command is answered with its
/// completed event, under the command's correlation id.
async fn responder(
    bus: Arc<dyn EventBus>,
    environment: &str,
) -> Result<SubscriptionHandle, BoxError> {
    let publisher = Publisher::new(
        bus.clone(),
        SourceInfo::new("postgres_writer", "1.0.0", environment),
    );
    let topic = publisher.topic_of::<WriteRecord>();
    let handler = handler_fn(move |msg| {
        let publisher = publisher.clone();
        async move {
            let command: WriteRecord = msg
                .envelope
                .decode()
                .map_err(|e| HandlerError::new("decode", e.to_string()))?;
            let done = WriteRecordCompleted {
                n: command.n,
                rows: 1,
            };
            publisher
                .publish(&done, Some(msg.correlation_id()))
                .await
                .map_err(|e| HandlerError::new("publish", e.to_string()))?;
            Ok(())
        }
    });
    let subscription = Subscription {
        topics: vec![topic],
        group: format!("{environment}.postgres_writer"),
    };
    Ok(bus.subscribe(subscription, handler).await?)
}

/// Round trips one after another; returns each counted one in µs.
async fn round_trips(requester: &Writer, args: &Args) -> Result<Vec<f64>, BoxError> {
    let mut latencies = Vec::with_capacity(args.requests);
    for n in 0..(args.warmup + args.requests) as u64 {
        let command = WriteRecord {
            table: "orders".to_owned(),
            n,
        };
        let started = Instant::now();
        let done = requester.request(&command, Duration::from_secs(30)).await?;
        let took = started.elapsed();
        if done.n != n {
            return Err(format!("request {n} got the reply to {}", done.n).into());
        }
        if n as usize >= args.warmup {
            latencies.push(took.as_secs_f64() * 1e6);
        }
    }
    let stats = requester.stats();
    if requester.pending() != 0 || stats.late_replies + stats.duplicate_replies != 0 {
        return Err(format!("unexpected requester state: {stats:?}").into());
    }
    Ok(latencies)
}

fn summary(latencies: &[f64]) -> Value {
    let mut sorted = latencies.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
    json!({
        "requests": sorted.len(),
        "p50_us": stats::percentile_sorted(&sorted, 50.0),
        "p90_us": stats::percentile_sorted(&sorted, 90.0),
        "p99_us": stats::percentile_sorted(&sorted, 99.0),
        "min_us": sorted.first().copied().unwrap_or(f64::NAN),
        "max_us": sorted.last().copied().unwrap_or(f64::NAN),
        "mean_us": mean,
    })
}

fn report(bus: &str, latencies: &[f64]) {
    eprintln!(
        "{bus:<8} {} round trips: p50 {:.1} µs  p99 {:.1} µs",
        latencies.len(),
        stats::percentile(latencies, 50.0),
        stats::percentile(latencies, 99.0)
    );
}

async fn in_memory(args: &Args) -> Result<Vec<f64>, BoxError> {
    let bus: Arc<dyn EventBus> = Arc::new(InMemoryBus::new("bench"));
    let _responder = responder(bus.clone(), "bench").await?;
    let requester = Writer::start(
        Publisher::new(bus.clone(), SourceInfo::new("cli", "1.0.0", "bench")),
        "cli",
    )
    .await?;
    let latencies = round_trips(&requester, args).await?;
    requester.stop().await;
    bus.shutdown().await?;
    Ok(latencies)
}

/// Tansu answers a fetch only once `fetch.wait.max.ms` runs out, so the
/// Kafka round trip is measured twice: with the bus's default wait, and
/// with this one, which a node that needs low latency sets
/// (`KAFKA_FETCH_WAIT_MAX_MS`) at the cost of more fetch requests while it
/// is idle.
const LOW_LATENCY_FETCH_WAIT_MS: u64 = 1;

async fn over_kafka(
    args: &Args,
    brokers: &str,
    fetch_wait_max_ms: u64,
) -> Result<Vec<f64>, BoxError> {
    let environment = format!("bench-rr-{}-{fetch_wait_max_ms}", std::process::id());
    // The defaults a node runs with (acks=all, idempotence, linger.ms=1,
    // auto_offset_reset=latest), on a fresh environment.
    let config = KafkaConfig {
        bootstrap_servers: brokers.to_owned(),
        bootstrap_configured: true,
        environment: environment.clone(),
        // The benchmark measures round trips, not a spool left behind.
        spool_dir: "off".to_owned(),
        fetch_wait_max_ms,
        ..KafkaConfig::default()
    };
    config.validate()?;
    let bus = Arc::new(KafkaBus::connect(config.clone()).await?);
    let command_topic = onex::topic::qualified(&environment, WriteRecord::TOPIC);
    create_missing_topics(&config, &[command_topic]).await?;
    let _responder = responder(bus.clone(), &environment).await?;
    let requester = Writer::start_on_kafka(
        bus.clone(),
        SourceInfo::new("cli", "1.0.0", &environment),
        "cli",
    )
    .await?;
    let latencies = round_trips(&requester, args).await?;
    requester.stop().await;
    bus.shutdown().await?;
    Ok(latencies)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // As a generated node's main does; the peers share the process.
    onex::allocator::init();
    let args = parse_args()?;
    let memory = in_memory(&args).await?;
    report("memory", &memory);
    let defaults = KafkaConfig::default();
    let (kafka, low_latency) = match &args.brokers {
        Some(brokers) => {
            let kafka = over_kafka(&args, brokers, defaults.fetch_wait_max_ms).await?;
            report("kafka", &kafka);
            let low = over_kafka(&args, brokers, LOW_LATENCY_FETCH_WAIT_MS).await?;
            report("kafka, fetch wait 1 ms", &low);
            (Some(kafka), Some(low))
        }
        None => (None, None),
    };
    let result = json!({
        "settings": {
            "requests": args.requests,
            "warmup": args.warmup,
            "brokers": args.brokers.as_ref().map(|_| "Tansu on loopback"),
            "acks": defaults.acks.as_str(),
            "linger_ms": defaults.linger_ms,
            "fetch_wait_max_ms": defaults.fetch_wait_max_ms,
            "low_latency_fetch_wait_max_ms": LOW_LATENCY_FETCH_WAIT_MS,
            "runtime": "tokio multi-thread",
        },
        "memory": summary(&memory),
        "kafka": kafka.as_deref().map(summary),
        "kafka_low_latency": low_latency.as_deref().map(summary),
    });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => println!("{text}"),
    }
    Ok(())
}
