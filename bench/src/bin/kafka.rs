//! Publishing and consuming through `onex::kafka::KafkaBus` against raw
//! rdkafka with the same producer settings, on the same broker, in the same
//! run. Writes JSON results.
//!
//! ```text
//! onex-bench-kafka --brokers 127.0.0.1:9092 --messages 50000 --runs 5 \
//!     --in-flight 1000 --latency-messages 1000 --out kafka.json
//! ```
//!
//! Producers (each run, in rotating order):
//! - `raw_future`: rdkafka's `FutureProducer`, `send(..).await` per message;
//! - `raw_threaded`: rdkafka's `ThreadedProducer` whose delivery callback
//!   completes a oneshot per message;
//! - `raw_threaded_serializing`: the same, serializing the message's
//!   envelope and headers for every send, as the bus does;
//! - `bus_publisher`: `onex::Publisher::publish` of a typed event on the
//!   Kafka bus (envelope, headers, key, delivery report awaited);
//! - `bus_prebuilt`: `EventBus::publish` of already built messages (one
//!   per send, built before the clock starts);
//! - `bus_publisher_plain`: `bus_publisher` without the CloudEvents headers
//!   (`KAFKA_CLOUDEVENTS=false`): what those headers cost.
//!
//! Raw producers send the bytes, key and headers (ONEX and CloudEvents) of
//! an envelope the bus would send, with `acks=all`, idempotence and the
//! bus's `linger.ms`, `compression.type` and `message.timeout.ms`.
//! Throughput runs keep `--in-flight` sends outstanding; latency runs send
//! one at a time.
//!
//! Consumers read the messages the bus published, from the earliest
//! offset, in a fresh group: raw rdkafka `StreamConsumer` storing each
//! offset after counting it (the bus's at-least-once settings), the same
//! parsing each envelope and its headers (`raw_decoding`), and a bus
//! subscription whose handler counts. Timed from the first message to the
//! last, so the group join is not counted.
//!
//! The CloudEvents headers are measured again in pairs: two buses, with
//! and without them, in alternating rounds (`--ce-rounds`, `--ce-messages`;
//! `--ce-rounds 0` skips it).
//!
//! `--producers a,b` and `--consumers a,b` run only the named ones (for
//! profiling one of them); `--no-consume` skips consuming; `--compression
//! CODEC` sets every producer's codec (default: the bus's, lz4).

// What a generated node installs (see its main.rs); the peers measured
// beside it share this process, so both sides run on the same allocator.
#[global_allocator]
static ALLOCATOR: onex::Allocator = onex::Allocator;

use std::{
    error::Error,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use onex::{
    BusMessage, EventBus, EventHeaders, KafkaConfig, OnexEnvelopeV1, Publisher, SourceInfo,
    bus::{Handler, HandlerError, Subscription},
    config::AutoOffsetReset,
    kafka::KafkaBus,
};
use onex_bench::{event::RecordWritten, stats};
use rdkafka::{
    ClientConfig, ClientContext, Message,
    consumer::{Consumer, StreamConsumer},
    message::{Header, Headers as _, OwnedHeaders},
    producer::{
        BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer as _, ProducerContext,
        ThreadedProducer,
    },
    util::Timeout,
};
use serde_json::{Value, json};
use tokio::{
    sync::{Notify, oneshot},
    task::JoinSet,
};

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Args {
    brokers: String,
    messages: usize,
    runs: usize,
    in_flight: usize,
    latency_messages: usize,
    consume: bool,
    /// Producers to measure (all by default).
    producers: Vec<Producer>,
    /// Consumers to measure: `raw`, `raw_decoding`, `bus` (all by default).
    consumers: Vec<String>,
    /// The producers' codec (`--compression`; the bus's default otherwise).
    compression: onex::config::Compression,
    /// Rounds of the paired measurement of the CloudEvents headers (0: not
    /// measured), and typed publishes on each side of a round.
    ce_rounds: usize,
    ce_messages: usize,
    /// The broker's process (`--broker-pid-file`), whose CPU time the
    /// paired rounds read.
    broker_pid: Option<u32>,
    out: Option<String>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        brokers: "127.0.0.1:9092".to_owned(),
        messages: 50_000,
        runs: 5,
        in_flight: 1_000,
        latency_messages: 1_000,
        consume: true,
        producers: Producer::ALL.to_vec(),
        consumers: vec![
            "raw".to_owned(),
            "raw_decoding".to_owned(),
            "bus".to_owned(),
        ],
        compression: KafkaConfig::default().compression,
        ce_rounds: 20,
        ce_messages: 20_000,
        broker_pid: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = value()?,
            "--messages" => args.messages = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--in-flight" => args.in_flight = value()?.parse()?,
            "--latency-messages" => args.latency_messages = value()?.parse()?,
            "--no-consume" => args.consume = false,
            "--consumers" => args.consumers = value()?.split(',').map(str::to_owned).collect(),
            "--producers" => {
                args.producers = value()?
                    .split(',')
                    .map(|name| {
                        Producer::ALL
                            .into_iter()
                            .find(|p| p.name() == name)
                            .ok_or_else(|| format!("unknown producer `{name}`"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--compression" => {
                let codec = value()?;
                args.compression = codec
                    .parse()
                    .map_err(|()| format!("unknown codec `{codec}`"))?;
            }
            "--ce-rounds" => args.ce_rounds = value()?.parse()?,
            "--ce-messages" => args.ce_messages = value()?.parse()?,
            "--broker-pid-file" => args.broker_pid = onex_bench::cpu::pid_from_file(&value()?)?,
            "--out" => args.out = Some(value()?),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    Ok(args)
}

/// The bus's configuration for a run: the defaults, the broker, an
/// environment of its own (so every run has fresh topics).
fn bus_config(args: &Args, environment: &str) -> KafkaConfig {
    let mut config = KafkaConfig {
        bootstrap_servers: args.brokers.clone(),
        bootstrap_configured: true,
        environment: environment.to_owned(),
        auto_offset_reset: AutoOffsetReset::Earliest,
        // The benchmark measures delivery, not a spool left behind.
        spool_dir: "off".to_owned(),
        compression: args.compression,
        ..KafkaConfig::default()
    };
    config.group = format!("{environment}-group");
    config
}

/// The raw producer's settings: what the bus promises (idempotent,
/// acks=all) with the bus's linger, compression and message timeout.
fn raw_producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", config.linger_ms.to_string())
        .set("compression.type", config.compression.as_str())
        .set(
            "message.timeout.ms",
            (config.timeout_seconds * 1000).to_string(),
        );
    c
}

/// The bytes a raw producer sends: those of a message the bus would send.
#[derive(Clone)]
struct Payload {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Payload {
    fn of(message: &BusMessage) -> Self {
        Payload {
            key: message.key.as_bytes().to_vec(),
            value: message.envelope.to_json(),
            headers: message
                .headers
                .to_pairs()
                .into_iter()
                .chain(onex::cloudevents::headers(&message.envelope))
                .map(|(k, v)| (k.to_string(), v.into_bytes()))
                .collect(),
        }
    }

    fn owned_headers(&self) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(self.headers.len());
        for (k, v) in &self.headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        h
    }
}

/// Runs `n` sends with at most `window` outstanding; returns the elapsed
/// time and each send's latency in microseconds.
async fn drive<F, Fut>(n: usize, window: usize, send: F) -> Result<(Duration, Vec<f64>), BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let mut set = JoinSet::new();
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        if set.len() >= window.max(1)
            && let Some(done) = set.join_next().await
        {
            latencies.push(done??);
        }
        let fut = send(i);
        set.spawn(async move {
            let t = Instant::now();
            fut.await?;
            Ok::<f64, BoxError>(t.elapsed().as_secs_f64() * 1e6)
        });
    }
    while let Some(done) = set.join_next().await {
        latencies.push(done??);
    }
    Ok((started.elapsed(), latencies))
}

/// A `ThreadedProducer` whose delivery callback completes a oneshot.
struct OneshotContext;

impl ClientContext for OneshotContext {}

impl ProducerContext for OneshotContext {
    type DeliveryOpaque = Box<oneshot::Sender<Result<(), String>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let _ = tx.send(result.as_ref().map(|_| ()).map_err(|(e, _)| e.to_string()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    RawFuture,
    RawThreaded,
    /// Raw, serializing the envelope and headers of each message, as the
    /// bus does (and as an application sending these events with rdkafka
    /// would have to).
    RawThreadedSerializing,
    BusPublisher,
    BusPrebuilt,
    /// `BusPublisher` without the CloudEvents headers.
    BusPublisherPlain,
}

impl Producer {
    const ALL: [Producer; 6] = [
        Producer::RawFuture,
        Producer::RawThreaded,
        Producer::RawThreadedSerializing,
        Producer::BusPublisher,
        Producer::BusPrebuilt,
        Producer::BusPublisherPlain,
    ];

    fn name(self) -> &'static str {
        match self {
            Producer::RawFuture => "raw_future",
            Producer::RawThreaded => "raw_threaded",
            Producer::RawThreadedSerializing => "raw_threaded_serializing",
            Producer::BusPublisher => "bus_publisher",
            Producer::BusPrebuilt => "bus_prebuilt",
            Producer::BusPublisherPlain => "bus_publisher_plain",
        }
    }
}

/// One measurement of a producer: `n` messages with `window` outstanding.
/// Returns (messages/s, latencies in µs) and, for the bus, the topic it
/// wrote.
async fn produce(
    args: &Args,
    producer: Producer,
    environment: &str,
    n: usize,
    window: usize,
) -> Result<(f64, Vec<f64>, String), BoxError> {
    let config = bus_config(args, environment);
    let source = SourceInfo::new("postgres_writer", "1.0.0", environment);
    let event = RecordWritten::sample();
    let template = Publisher::new(
        Arc::new(onex::InMemoryBus::new(environment)),
        source.clone(),
    )
    .message(&event, None, Default::default())?;
    let topic = template.topic.clone();
    let payload = Arc::new(Payload::of(&template));

    // Warm up: connection, producer id, topic metadata.
    let warmup = 200.min(n);
    let (elapsed, latencies) = match producer {
        Producer::RawFuture => {
            let p: FutureProducer = raw_producer_config(&config).create()?;
            let send = |_| {
                let p = p.clone();
                let payload = Arc::clone(&payload);
                let topic = topic.clone();
                async move {
                    let record = FutureRecord::to(&topic)
                        .key(&payload.key)
                        .payload(&payload.value)
                        .headers(payload.owned_headers());
                    p.send(record, Timeout::Never)
                        .await
                        .map(|_| ())
                        .map_err(|(e, _)| BoxError::from(e.to_string()))
                }
            };
            drive(warmup, window, send).await?;
            let r = drive(n, window, send).await?;
            p.flush(Timeout::After(Duration::from_secs(30)))?;
            r
        }
        Producer::RawThreaded | Producer::RawThreadedSerializing => {
            let p: Arc<ThreadedProducer<OneshotContext>> =
                Arc::new(raw_producer_config(&config).create_with_context(OneshotContext)?);
            let template = Arc::new(template.clone());
            let serializing = producer == Producer::RawThreadedSerializing;
            let send = |_| {
                let p = Arc::clone(&p);
                let payload = if serializing {
                    Arc::new(Payload::of(&template))
                } else {
                    Arc::clone(&payload)
                };
                let topic = topic.clone();
                async move {
                    let (tx, rx) = oneshot::channel();
                    let mut record = BaseRecord::with_opaque_to(&topic, Box::new(tx))
                        .key(&payload.key)
                        .payload(&payload.value)
                        .headers(payload.owned_headers());
                    loop {
                        match p.send(record) {
                            Ok(()) => break,
                            Err((
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                                ),
                                back,
                            )) => {
                                record = back;
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            Err((e, _)) => return Err(BoxError::from(e.to_string())),
                        }
                    }
                    rx.await
                        .map_err(|e| BoxError::from(e.to_string()))?
                        .map_err(BoxError::from)
                }
            };
            drive(warmup, window, send).await?;
            let r = drive(n, window, send).await?;
            p.flush(Timeout::After(Duration::from_secs(30)))?;
            r
        }
        Producer::BusPublisher | Producer::BusPrebuilt | Producer::BusPublisherPlain => {
            let mut config = config;
            config.cloudevents = producer != Producer::BusPublisherPlain;
            let bus: Arc<dyn EventBus> = Arc::new(KafkaBus::connect(config).await?);
            let publisher = Publisher::new(Arc::clone(&bus), source);
            // Built before the clock starts, one per send: distinct
            // messages (ids, timestamps), as an application publishes
            // them. The same message sent again and again would
            // flatter this row, as lz4 compresses identical records to
            // almost nothing.
            let built: Vec<Arc<BusMessage>> = if producer == Producer::BusPrebuilt {
                (0..warmup.max(n))
                    .map(|_| {
                        publisher
                            .message(&event, None, Default::default())
                            .map(Arc::new)
                    })
                    .collect::<Result<_, _>>()?
            } else {
                Vec::new()
            };
            let send = |i: usize| {
                let publisher = publisher.clone();
                let message = built.get(i).cloned();
                let event = event.clone();
                async move {
                    match message {
                        Some(m) => {
                            publisher.bus().publish(m).await?;
                        }
                        None => {
                            publisher.publish(&event, None).await?;
                        }
                    }
                    Ok(())
                }
            };
            drive(warmup, window, send).await?;
            let r = drive(n, window, send).await?;
            bus.shutdown().await?;
            r
        }
    };
    let rate = n as f64 / elapsed.as_secs_f64();
    Ok((rate, latencies, topic))
}

/// What the CloudEvents headers cost the typed publish, paired: two Kafka
/// buses connected side by side, one writing the headers and one not
/// (`KAFKA_CLOUDEVENTS=false`); `--ce-rounds` rounds of `--ce-messages`
/// typed publishes on each, the order within a round alternating. A drift
/// of the machine or of the broker (whose memory grows with every message
/// it keeps) reaches both sides of a round alike, where the rotating runs
/// above put minutes between the two rows.
async fn cloudevents_paired(args: &Args, tag: &str) -> Result<Value, BoxError> {
    let event = RecordWritten::sample();
    let mut publishers = Vec::new();
    for cloudevents in [true, false] {
        let environment = format!("{tag}-ce-{cloudevents}");
        let mut config = bus_config(args, &environment);
        config.cloudevents = cloudevents;
        let bus: Arc<dyn EventBus> = Arc::new(KafkaBus::connect(config).await?);
        let source = SourceInfo::new("postgres_writer", "1.0.0", environment.as_str());
        publishers.push(Publisher::new(bus, source));
    }
    let sends = |publisher: &Publisher| {
        let publisher = publisher.clone();
        let event = event.clone();
        move |_: usize| {
            let publisher = publisher.clone();
            let event = event.clone();
            async move {
                publisher.publish(&event, None).await?;
                Ok(())
            }
        }
    };
    for publisher in &publishers {
        drive(1000, args.in_flight, sends(publisher)).await?;
    }
    let n = args.ce_messages;
    let (mut with, mut without, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    // CPU of this process and of the broker, each side, over all rounds:
    // /proc counts in 10 ms ticks, too coarse for one round.
    let mut own_ms = [Some(0.0); 2];
    let mut broker_ms = [Some(0.0); 2];
    let broker_now = || args.broker_pid.and_then(onex_bench::cpu::process_ms);
    let add = |sum: &mut Option<f64>, before: Option<f64>, after: Option<f64>| {
        *sum = sum.zip(after.zip(before)).map(|(s, (a, b))| s + a - b);
    };
    for round in 0..args.ce_rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rates = [0.0; 2];
        for side in order {
            let (own, broker) = (onex_bench::cpu::own_ms(), broker_now());
            let (elapsed, _) = drive(n, args.in_flight, sends(&publishers[side])).await?;
            rates[side] = n as f64 / elapsed.as_secs_f64();
            add(&mut own_ms[side], own, onex_bench::cpu::own_ms());
            add(&mut broker_ms[side], broker, broker_now());
        }
        eprintln!(
            "CloudEvents round {round}: with {:>9.0} msg/s, without {:>9.0} msg/s ({:.2}x)",
            rates[0],
            rates[1],
            rates[0] / rates[1]
        );
        with.push(rates[0]);
        without.push(rates[1]);
        ratios.push(rates[0] / rates[1]);
    }
    for publisher in publishers {
        publisher.bus().shutdown().await?;
    }
    let messages = (args.ce_rounds * n) as f64;
    let per_message = |ms: Option<f64>| {
        ms.filter(|_| messages > 0.0)
            .map(|ms| ms * 1000.0 / messages)
    };
    Ok(json!({
        "rounds": args.ce_rounds,
        "messages_per_round": n,
        "with_rate": summary(&with),
        "without_rate": summary(&without),
        "ratio": summary(&ratios),
        // CPU µs per message (user and system) over all rounds; null where
        // not measured.
        "with_cpu_us": per_message(own_ms[0]),
        "without_cpu_us": per_message(own_ms[1]),
        "with_broker_cpu_us": per_message(broker_ms[0]),
        "without_broker_cpu_us": per_message(broker_ms[1]),
    }))
}

struct Counter {
    seen: AtomicUsize,
    target: usize,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
    done: Notify,
}

impl Counter {
    fn new(target: usize) -> Arc<Self> {
        Arc::new(Counter {
            seen: AtomicUsize::new(0),
            target,
            first: Mutex::new(None),
            last: Mutex::new(None),
            done: Notify::new(),
        })
    }

    fn count(&self) {
        let seen = self.seen.fetch_add(1, Ordering::AcqRel) + 1;
        if seen == 1 {
            *self.first.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        if seen == self.target {
            *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            self.done.notify_one();
        }
    }

    /// Messages per second from the first message to the last.
    fn rate(&self) -> f64 {
        let first = *self.first.lock().unwrap_or_else(|e| e.into_inner());
        let last = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        match (first, last) {
            (Some(f), Some(l)) if l > f => (self.target - 1) as f64 / (l - f).as_secs_f64(),
            _ => f64::NAN,
        }
    }
}

#[async_trait]
impl Handler for Counter {
    async fn handle(&self, _message: &BusMessage) -> Result<(), HandlerError> {
        self.count();
        Ok(())
    }
}

/// Reads `n` messages of `topic` with a raw consumer; messages/s.
/// With `decode`, each message's envelope and headers are parsed, as the bus
/// does for its handlers.
async fn consume_raw(
    args: &Args,
    topic: &str,
    group: &str,
    n: usize,
    decode: bool,
) -> Result<f64, BoxError> {
    let config = bus_config(args, group);
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", group)
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let counter = Counter::new(n);
    let deadline = Instant::now() + Duration::from_secs(120);
    while counter.seen.load(Ordering::Acquire) < n {
        let message = tokio::time::timeout_at(deadline.into(), consumer.recv())
            .await
            .map_err(|_| "raw consumer: timed out")??;
        if decode {
            // What the bus hands a handler: the envelope and the headers.
            let envelope = OnexEnvelopeV1::from_json(message.payload().unwrap_or_default())?;
            let headers = message.headers().and_then(|hs| {
                EventHeaders::from_pairs(
                    hs.iter()
                        .filter_map(|h| Some((h.key, std::str::from_utf8(h.value?).ok()?))),
                )
            });
            std::hint::black_box((envelope, headers));
        }
        consumer.store_offset_from_message(&message)?;
        counter.count();
        let _ = message.payload();
    }
    Ok(counter.rate())
}

/// Reads `n` messages of `topic` through a bus subscription; messages/s.
async fn consume_bus(args: &Args, topic: &str, group: &str, n: usize) -> Result<f64, BoxError> {
    let bus = KafkaBus::connect(bus_config(args, group)).await?;
    let counter = Counter::new(n);
    let done = counter.done.notified();
    tokio::pin!(done);
    done.as_mut().enable();
    let handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic.to_owned()],
                group: group.to_owned(),
            },
            Arc::clone(&counter) as Arc<dyn Handler>,
        )
        .await?;
    tokio::time::timeout(Duration::from_secs(120), done)
        .await
        .map_err(|_| "bus consumer: timed out")?;
    handle.stop().await;
    bus.shutdown().await?;
    Ok(counter.rate())
}

fn summary(values: &[f64]) -> Value {
    json!({
        "median": stats::median(values),
        "min": values.iter().copied().fold(f64::INFINITY, f64::min),
        "max": values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "runs": values,
    })
}

/// Per producer: the throughput samples of each run's three measurements.
type ThroughputSamples = (Producer, Vec<f64>, Vec<f64>, Vec<f64>);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // As a generated node's main does; the peers share the process.
    onex::allocator::init();
    let args = parse_args()?;
    let tag = format!("bench{}", std::process::id());
    let defaults = KafkaConfig::default();

    let mut produce_results = serde_json::Map::new();
    let mut latency_results = serde_json::Map::new();
    let mut throughput: Vec<ThroughputSamples> = Producer::ALL
        .iter()
        .map(|p| (*p, Vec::new(), Vec::new(), Vec::new()))
        .collect();
    let mut lone: Vec<(Producer, Vec<f64>, Vec<f64>)> = Producer::ALL
        .iter()
        .map(|p| (*p, Vec::new(), Vec::new()))
        .collect();
    let mut bus_topics = Vec::new();
    for run in 0..args.runs {
        for k in 0..Producer::ALL.len() {
            let i = (k + run) % Producer::ALL.len();
            let producer = Producer::ALL[i];
            if !args.producers.contains(&producer) {
                continue;
            }
            let env = format!("{tag}-{}-t{run}", producer.name());
            let (rate, lat, topic) =
                produce(&args, producer, &env, args.messages, args.in_flight).await?;
            eprintln!(
                "run {run} {:<14} {:>10.0} msg/s  p50 {:>8.0} µs  p99 {:>8.0} µs",
                producer.name(),
                rate,
                stats::percentile(&lat, 50.0),
                stats::percentile(&lat, 99.0)
            );
            throughput[i].1.push(rate);
            throughput[i].2.push(stats::percentile(&lat, 50.0));
            throughput[i].3.push(stats::percentile(&lat, 99.0));
            if producer == Producer::BusPublisher {
                bus_topics.push(topic);
            }
            let env = format!("{tag}-{}-l{run}", producer.name());
            let (_, lat, _) = produce(&args, producer, &env, args.latency_messages, 1).await?;
            eprintln!(
                "run {run} {:<14} one at a time: p50 {:>6.0} µs  p99 {:>6.0} µs",
                producer.name(),
                stats::percentile(&lat, 50.0),
                stats::percentile(&lat, 99.0)
            );
            lone[i].1.push(stats::percentile(&lat, 50.0));
            lone[i].2.push(stats::percentile(&lat, 99.0));
        }
    }
    for (p, rate, p50, p99) in &throughput {
        produce_results.insert(
            p.name().to_owned(),
            json!({ "rate": summary(rate), "p50_us": summary(p50), "p99_us": summary(p99) }),
        );
    }
    for (p, p50, p99) in &lone {
        latency_results.insert(
            p.name().to_owned(),
            json!({ "p50_us": summary(p50), "p99_us": summary(p99) }),
        );
    }

    let cloudevents = if args.ce_rounds > 0
        && args.producers.contains(&Producer::BusPublisher)
        && args.producers.contains(&Producer::BusPublisherPlain)
    {
        Some(cloudevents_paired(&args, &tag).await?)
    } else {
        None
    };

    let mut consume_results = serde_json::Map::new();
    if args.consume {
        const CONSUMERS: [&str; 3] = ["raw", "raw_decoding", "bus"];
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); CONSUMERS.len()];
        for (run, topic) in bus_topics.iter().enumerate() {
            // Rotate which consumer goes first.
            for k in 0..CONSUMERS.len() {
                let i = (k + run) % CONSUMERS.len();
                let kind = CONSUMERS[i];
                if !args.consumers.iter().any(|c| c == kind) {
                    continue;
                }
                let group = format!("{tag}-c{run}-{kind}");
                let r = match kind {
                    "bus" => consume_bus(&args, topic, &group, args.messages).await?,
                    _ => {
                        let decode = kind == "raw_decoding";
                        consume_raw(&args, topic, &group, args.messages, decode).await?
                    }
                };
                eprintln!("run {run} consume {kind:<12} {r:>10.0} msg/s");
                rates[i].push(r);
            }
        }
        let keys = ["raw_stream", "raw_stream_decoding", "bus_subscribe"];
        for (key, rate) in keys.iter().zip(&rates) {
            consume_results.insert((*key).to_owned(), json!({ "rate": summary(rate) }));
        }
    }

    let sample = Payload::of(
        &Publisher::new(
            Arc::new(onex::InMemoryBus::new("local")),
            SourceInfo::new("postgres_writer", "1.0.0", "local"),
        )
        .message(&RecordWritten::sample(), None, Default::default())?,
    );
    let result = json!({
        "settings": {
            "brokers": "Tansu on loopback",
            "messages": args.messages,
            "runs": args.runs,
            "in_flight": args.in_flight,
            "latency_messages": args.latency_messages,
            "acks": "all",
            "enable_idempotence": true,
            "linger_ms": defaults.linger_ms,
            "compression": args.compression.as_str(),
            "message_bytes": sample.value.len(),
            "header_count": sample.headers.len(),
        },
        "produce": produce_results,
        "cloudevents_paired": cloudevents,
        "latency_one_at_a_time": latency_results,
        "consume": consume_results,
    });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => println!("{text}"),
    }
    Ok(())
}
