//! A generated node against a hand-written rdkafka consumer doing the same
//! work, side by side on one broker. Writes JSON results.
//!
//! ```text
//! onex-bench-node-throughput --brokers 127.0.0.1:19092 \
//!     --writer NODES/postgres-writer --noop-writer NODES/noop-writer \
//!     --commands 3000 --runs 3 [--work postgres|noop] --out node_throughput.json
//! ```
//!
//! Every measurement has an environment of its own (fresh topics and
//! consumer groups), and its `--commands` commands are all on the command
//! topic before the consumer starts: `write_requested` envelopes as
//! `onex::Publisher` builds them, keyed by `--keys` correlation ids.
//!
//! - PostgreSQL: the release binary of `examples/postgres-writer` (its
//!   handler inserts the row, then publishes `record_written`; the node
//!   publishes started and completed around it) against a hand-written
//!   rdkafka `StreamConsumer` (`enable.auto.offset.store=false`,
//!   auto-commit) that decodes the envelope with `onex` as the node does,
//!   runs the same insert with the same client (tokio-postgres), then
//!   stores the offset, one message at a time.
//! - No-op: the node generated from the same contract with a handler that
//!   returns at once (`bench/node_throughput/handler.rs`), against the
//!   hand-written consumer decoding and storing offsets only.
//!
//! Commands per second are timed from the first command done to the last,
//! `(N - 1) / (last - first)`, so that neither start-up nor the group join
//! counts. With PostgreSQL, both sides by the rows' `written_at` (the
//! server's `now()` at each insert); with the no-op handler, the node by the
//! timestamps of its `write_record.completed` events (set when its producer
//! takes them), the hand-written consumer when it stores each offset. The
//! node's start-up (process start to its first command done) is reported
//! beside. The node runs with the runtime's defaults: no `KAFKA_*` setting
//! of the caller reaches it; the benchmark sets only the broker, the
//! environment, the group, and `KAFKA_AUTO_OFFSET_RESET=earliest` (its
//! commands were waiting before it joined).

// What a generated node installs (see its main.rs); the peers measured
// beside it share this process, so both sides run on the same allocator.
#[global_allocator]
static ALLOCATOR: onex::Allocator = onex::Allocator;

use std::{
    error::Error,
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use onex::{
    Event, InMemoryBus, KafkaConfig, OnexEnvelopeV1, Publisher, SourceInfo,
    request::create_missing_topics, uuid::Uuid,
};
use onex_bench::{
    event::{WriteRecordInput, WriteRequested},
    stats,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer as _},
};
use serde_json::{Value, json};
use tokio_postgres::{Client, NoTls};

type BoxError = Box<dyn Error + Send + Sync>;

/// The statement of `examples/postgres-writer/src/handler.rs`.
const INSERT: &str = "insert into records (record_id, table_name, payload, tags) \
                      values ($1, $2, $3, $4) on conflict (record_id) do nothing";

/// Longest wait for one measurement's commands.
const DEADLINE: Duration = Duration::from_secs(300);

struct Args {
    brokers: String,
    writer: PathBuf,
    noop_writer: PathBuf,
    database_url: String,
    commands: usize,
    keys: usize,
    runs: usize,
    /// The handlers measured (both unless `--work` names one).
    works: Vec<Work>,
    out: Option<PathBuf>,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        brokers: "127.0.0.1:19092".to_owned(),
        writer: PathBuf::new(),
        noop_writer: PathBuf::new(),
        database_url: "host=127.0.0.1 user=postgres dbname=test".to_owned(),
        commands: 3000,
        keys: 64,
        runs: 3,
        works: vec![Work::Postgres, Work::Noop],
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = value()?,
            "--writer" => args.writer = value()?.into(),
            "--noop-writer" => args.noop_writer = value()?.into(),
            "--database-url" => args.database_url = value()?,
            "--commands" => args.commands = value()?.parse()?,
            "--keys" => args.keys = value()?.parse()?,
            "--runs" => args.runs = value()?.parse()?,
            "--work" => {
                args.works = match value()?.as_str() {
                    "postgres" => vec![Work::Postgres],
                    "noop" => vec![Work::Noop],
                    other => {
                        return Err(format!("--work takes postgres or noop, not `{other}`").into());
                    }
                }
            }
            "--out" => args.out = Some(value()?.into()),
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    if args.writer.as_os_str().is_empty() || args.noop_writer.as_os_str().is_empty() {
        return Err("--writer and --noop-writer are required".into());
    }
    // Absolute, as the nodes run in folders of their own.
    args.writer = std::fs::canonicalize(&args.writer)?;
    args.noop_writer = std::fs::canonicalize(&args.noop_writer)?;
    if args.commands < 2 || args.keys == 0 {
        return Err("--commands must be at least 2 and --keys at least 1".into());
    }
    Ok(args)
}

/// What each command costs besides its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Postgres,
    Noop,
}

/// Who consumes the commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Node,
    HandWritten,
}

/// When the first and the last command were done, in seconds since the
/// Unix epoch.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: f64,
    last: f64,
}

impl Span {
    fn rate(self, commands: usize) -> f64 {
        (commands - 1) as f64 / (self.last - self.first)
    }
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn bus_config(args: &Args, environment: &str) -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: args.brokers.clone(),
        bootstrap_configured: true,
        environment: environment.to_owned(),
        ..KafkaConfig::default()
    }
}

/// Puts the measurement's commands on its command topic and waits until the
/// broker has them all; returns the topic and its partition count.
async fn produce_commands(args: &Args, environment: &str) -> Result<(String, usize), BoxError> {
    let publisher = Publisher::new(
        Arc::new(InMemoryBus::new(environment)),
        SourceInfo::new("onex_bench", "0.1.0", environment),
    );
    let topic = publisher.topic_of::<WriteRequested>();
    // Created with the broker's defaults, as the first publish would.
    create_missing_topics(&bus_config(args, environment), std::slice::from_ref(&topic)).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("acks", "all")
        .create()?;
    let keys: Vec<Uuid> = (0..args.keys).map(|_| Uuid::new_v4()).collect();
    let mut deliveries = Vec::with_capacity(args.commands);
    for i in 0..args.commands {
        let command = WriteRequested {
            record: WriteRecordInput {
                record_id: Uuid::new_v4(),
                // The rows of a measurement are those of its table.
                table: environment.to_owned(),
                payload: json!({"sku": format!("SKU-{i}"), "quantity": 1 + i % 5}),
                tags: vec!["bench".to_owned()],
            },
        };
        let message =
            publisher.message(&command, Some(keys[i % keys.len()]), Default::default())?;
        let value = message.envelope.to_json();
        let pairs = message.headers.to_pairs();
        let headers = pairs.iter().fold(OwnedHeaders::new(), |headers, (k, v)| {
            headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        let record = FutureRecord::to(&topic)
            .key(message.key.as_bytes())
            .payload(&value)
            .headers(headers);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e)?);
    }
    for delivery in deliveries {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let metadata = producer
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    Ok((topic, partitions))
}

/// The first and last `written_at` of the measurement's rows, once all are
/// in.
async fn rows(db: &Client, table: &str) -> Result<(usize, Option<Span>), BoxError> {
    let row = db
        .query_one(
            "select count(*), extract(epoch from min(written_at))::float8, \
             extract(epoch from max(written_at))::float8 from records where table_name = $1",
            &[&table],
        )
        .await?;
    let count: i64 = row.get(0);
    let span = row
        .get::<_, Option<f64>>(1)
        .zip(row.get::<_, Option<f64>>(2))
        .map(|(first, last)| Span { first, last });
    Ok((count as usize, span))
}

/// A node process; killed if dropped before [`Node::stop`].
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(args: &Args, binary: &Path, environment: &str, dir: &Path) -> Result<Self, BoxError> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("node.log");
        let mut command = Command::new(binary);
        // The runtime's defaults are what is measured: none of the caller's
        // KAFKA_* settings (nor its RUST_LOG) reaches the node.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KAFKA_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let child = command
            // Its spool (default `.onex/spool`) lands in the run's folder.
            .current_dir(dir)
            .env("KAFKA_BOOTSTRAP_SERVERS", &args.brokers)
            .env("KAFKA_ENVIRONMENT", environment)
            .env("KAFKA_GROUP", format!("{environment}-node"))
            .env("KAFKA_AUTO_OFFSET_RESET", "earliest")
            .env("DATABASE_URL", &args.database_url)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()?;
        Ok(Node { child, log })
    }

    /// An error if the node has exited.
    fn check_running(&mut self) -> Result<(), BoxError> {
        match self.child.try_wait()? {
            Some(status) => {
                Err(format!("the node exited with {status}:\n{}", self.log_text()).into())
            }
            None => Ok(()),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> Result<(), BoxError> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(format!("the node exited with {status}:\n{}", self.log_text()).into())
                };
            }
            if Instant::now() > deadline {
                return Err("the node did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a node binary until it has done every command; the span of its
/// commands and its start-up in seconds.
async fn run_node(
    args: &Args,
    work: Work,
    environment: &str,
    dir: &Path,
    db: &Client,
) -> Result<(Span, f64), BoxError> {
    let binary = match work {
        Work::Postgres => &args.writer,
        Work::Noop => &args.noop_writer,
    };
    // The completed events of the no-op node are read from the start of
    // their topic, which must exist before the reader subscribes.
    let completed = format!("{environment}.postgres_writer.effect.write_record.completed.v1");
    let watcher = match work {
        Work::Postgres => None,
        Work::Noop => {
            create_missing_topics(
                &bus_config(args, environment),
                std::slice::from_ref(&completed),
            )
            .await?;
            Some(consumer(args, &format!("{environment}-watch"), &completed)?)
        }
    };
    let started = epoch_now();
    let mut node = Node::start(args, binary, environment, dir)?;
    let deadline = Instant::now() + DEADLINE;
    let span = match &watcher {
        // Polls the table: the node writes the rows.
        None => loop {
            node.check_running()?;
            if let (n, Some(span)) = rows(db, environment).await?
                && n >= args.commands
            {
                break span;
            }
            if Instant::now() > deadline {
                return Err(
                    format!("the node did not write every row:\n{}", node.log_text()).into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        },
        // Counts the completed events, by their producer's timestamps.
        Some(watcher) => {
            let mut stamps = Vec::with_capacity(args.commands);
            while stamps.len() < args.commands {
                node.check_running()?;
                if Instant::now() > deadline {
                    return Err(format!(
                        "the node did not complete every command:\n{}",
                        node.log_text()
                    )
                    .into());
                }
                let Ok(message) =
                    tokio::time::timeout(Duration::from_secs(1), watcher.recv()).await
                else {
                    continue;
                };
                let stamp = message?
                    .timestamp()
                    .to_millis()
                    .ok_or("a completed event without a timestamp")?;
                stamps.push(stamp as f64 / 1000.0);
            }
            Span {
                first: stamps.iter().copied().fold(f64::INFINITY, f64::min),
                last: stamps.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            }
        }
    };
    node.stop()?;
    Ok((span, span.first - started))
}

/// A consumer of `topic` from its earliest offset that stores offsets only
/// when told, and commits them automatically.
fn consumer(args: &Args, group: &str, topic: &str) -> Result<StreamConsumer, BoxError> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// The hand-written consumer: decode, do the work, store the offset, one
/// message after the other; the span of its commands.
async fn run_hand_written(
    args: &Args,
    work: Work,
    environment: &str,
    topic: &str,
    db: &Client,
) -> Result<Span, BoxError> {
    let consumer = consumer(args, &format!("{environment}-raw"), topic)?;
    let deadline = Instant::now() + DEADLINE;
    let (mut first, mut last) = (None, 0.0);
    for _ in 0..args.commands {
        let message = tokio::time::timeout_at(deadline.into(), consumer.recv())
            .await
            .map_err(|_| "the hand-written consumer timed out")??;
        let envelope = OnexEnvelopeV1::from_json(message.payload().unwrap_or_default())?;
        let command = WriteRequested::from_envelope(&envelope)?;
        if work == Work::Postgres {
            let r = &command.record;
            db.execute(INSERT, &[&r.record_id, &r.table, &r.payload, &r.tags])
                .await?;
        }
        consumer.store_offset_from_message(&message)?;
        last = epoch_now();
        first.get_or_insert(last);
    }
    match work {
        Work::Postgres => rows(db, environment)
            .await?
            .1
            .ok_or_else(|| "no rows written".into()),
        Work::Noop => Ok(Span {
            first: first.unwrap_or(last),
            last,
        }),
    }
}

fn summary(values: &[f64]) -> Value {
    json!({
        "median": stats::median(values),
        "min": values.iter().copied().fold(f64::INFINITY, f64::min),
        "max": values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "runs": values,
    })
}

#[derive(Default)]
struct Samples {
    node: Vec<f64>,
    hand_written: Vec<f64>,
    node_startup_ms: Vec<f64>,
}

impl Samples {
    fn json(&self) -> Value {
        json!({
            "node": summary(&self.node),
            "hand_written": summary(&self.hand_written),
            "ratio": stats::median(&self.node) / stats::median(&self.hand_written),
            "node_startup_ms": summary(&self.node_startup_ms),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // As a generated node's main does; the peers share the process.
    onex::allocator::init();
    let args = parse_args()?;
    let (db, connection) = tokio_postgres::connect(&args.database_url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("the PostgreSQL connection ended: {error}");
        }
    });
    db.execute("select 1 from records limit 0", &[])
        .await
        .map_err(|e| format!("no `records` table (run `bash scripts/postgres.sh ensure`): {e}"))?;
    let work_dir = tempfile::tempdir()?;
    let tag = format!("nt{}", std::process::id());
    let (mut postgres, mut noop) = (Samples::default(), Samples::default());
    let mut partitions = 0;
    for run in 0..args.runs {
        for &work in &args.works {
            // Alternate who goes first, so that neither always meets a
            // broker busy with the other's leftovers.
            let mut order = [Side::Node, Side::HandWritten];
            if run % 2 == 1 {
                order.reverse();
            }
            for who in order {
                let environment = format!("{tag}-{run}-{work:?}-{who:?}").to_lowercase();
                let (topic, p) = produce_commands(&args, &environment).await?;
                partitions = p;
                let samples = match work {
                    Work::Postgres => &mut postgres,
                    Work::Noop => &mut noop,
                };
                let rate = match who {
                    Side::Node => {
                        let dir = work_dir.path().join(&environment);
                        let (span, startup) =
                            run_node(&args, work, &environment, &dir, &db).await?;
                        samples.node_startup_ms.push(startup * 1000.0);
                        samples.node.push(span.rate(args.commands));
                        span.rate(args.commands)
                    }
                    Side::HandWritten => {
                        let span = run_hand_written(&args, work, &environment, &topic, &db).await?;
                        samples.hand_written.push(span.rate(args.commands));
                        span.rate(args.commands)
                    }
                };
                db.execute("delete from records where table_name = $1", &[&environment])
                    .await?;
                eprintln!("run {run} {work:?} {who:?}: {rate:>9.0} commands/s");
            }
        }
    }
    let result = json!({
        "settings": {
            "brokers": "Tansu on loopback",
            "commands": args.commands,
            "keys": args.keys,
            "runs": args.runs,
            "partitions": partitions,
            // What the node gets with `KAFKA_MAX_IN_FLIGHT` unset: its
            // contract's `event_bus.max_in_flight`, as its generated
            // `.env.template` spells it out.
            "node_max_in_flight_default": contract_max_in_flight(),
        },
        "postgres": postgres.json(),
        "noop": noop.json(),
    });
    let text = serde_json::to_string_pretty(&result)?;
    match &args.out {
        Some(path) => std::fs::write(path, text)?,
        None => println!("{text}"),
    }
    Ok(())
}

/// The postgres-writer node's own bound on commands in hand
/// (`KAFKA_MAX_IN_FLIGHT` in its generated `.env.template`, the contract's
/// `event_bus.max_in_flight`); `None` when the file does not say.
fn contract_max_in_flight() -> Option<usize> {
    let template =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/postgres-writer/.env.template");
    std::fs::read_to_string(template)
        .ok()?
        .lines()
        .find_map(|line| {
            line.strip_prefix("KAFKA_MAX_IN_FLIGHT=")?
                .trim()
                .parse()
                .ok()
        })
}
