//! Publishing throughput of the Kafka bus next to raw rdkafka with the same
//! settings (idempotent, `acks=all`, every delivery report awaited).
//!
//! ```sh
//! bash scripts/tansu.sh start
//! cargo run --release -p onex --example kafka_throughput -- 127.0.0.1:9092 100000 5000
//! ```
//!
//! Arguments: bootstrap servers, message count, publishes in flight,
//! rounds (the best round of each side counts).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use onex::{
    BusMessage, EventBus, KafkaConfig, Publisher, SourceInfo, kafka::KafkaBus, serde_json::json,
};
use rdkafka::{
    ClientConfig,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
};
use tokio::{sync::Semaphore, task::JoinSet};

#[derive(serde::Serialize, serde::Deserialize)]
struct Reading {
    sensor: String,
    value: f64,
    tags: Vec<String>,
}

impl onex::Event for Reading {
    const EVENT_TYPE: &'static str = "telemetry.reading.recorded";
    const EVENT_VERSION: &'static str = "1.0";
    const CATEGORY: onex::MessageCategory = onex::MessageCategory::Event;
    const TOPIC: &'static str = "telemetry.reading.recorded.v1";
}

fn messages(publisher: &Publisher, topic: &str, n: usize) -> Vec<BusMessage> {
    (0..n)
        .map(|i| {
            let event = Reading {
                sensor: format!("sensor-{}", i % 64),
                value: i as f64 * 0.5,
                tags: vec!["bench".to_owned(), "loopback".to_owned()],
            };
            let mut metadata = std::collections::BTreeMap::new();
            metadata.insert("run".to_owned(), json!("throughput"));
            let mut m = publisher
                .message(&event, Some(onex::uuid::Uuid::new_v4()), metadata)
                .expect("message");
            m.topic = topic.to_owned();
            m
        })
        .collect()
}

/// Key, value and headers of one message, serialized ahead.
type RawRecord = (String, Vec<u8>, Vec<(&'static str, String)>);

async fn drive<F, Fut>(count: usize, in_flight: usize, mut start: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight));
    let mut tasks = JoinSet::new();
    let began = Instant::now();
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let fut = start(i);
        tasks.spawn(async move {
            fut.await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    began.elapsed()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let in_flight: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(3);

    let mut config = KafkaConfig::from_env_pairs([("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str())])
        .expect("config");
    config.environment = format!("bench{}", onex::uuid::Uuid::new_v4().simple());
    let bus = Arc::new(KafkaBus::connect(config.clone()).await.expect("bus"));
    let publisher = Publisher::new(
        bus.clone(),
        SourceInfo::new("telemetry", "1.0.0", &config.environment),
    );
    let raw_topic = format!("{}.raw.v1", config.environment);
    let bus_topic = format!("{}.bus.v1", config.environment);

    // Raw rdkafka: same settings, pre-serialized values and headers.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", config.linger_ms.to_string())
        .create()
        .expect("producer");
    let raw: Vec<RawRecord> = messages(&publisher, &raw_topic, count)
        .into_iter()
        .map(|m| {
            (
                m.key.to_string(),
                m.envelope.to_json(),
                m.headers.to_pairs(),
            )
        })
        .collect();
    let raw = Arc::new(raw);
    let bytes = raw.first().map_or(0, |r| r.1.len());
    // Warm up both (topic creation, connections).
    let warm = messages(&publisher, &bus_topic, 1).remove(0);
    bus.publish(warm.into()).await.expect("warm up bus");
    {
        let (k, v, _) = &raw[0];
        producer
            .send(
                FutureRecord::to(&raw_topic).key(k).payload(v),
                Duration::from_secs(10),
            )
            .await
            .expect("warm up raw");
    }

    let mut raw_rates = Vec::new();
    let mut ser_rates = Vec::new();
    let mut bus_rates = Vec::new();
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    // Alternate, so that neither side always runs on a fuller broker.
    for round in 1..=rounds {
        let raw_time = {
            let producer = producer.clone();
            let topic = raw_topic.clone();
            let raw = raw.clone();
            drive(count, in_flight, move |i| {
                let producer = producer.clone();
                let raw = raw.clone();
                let topic = topic.clone();
                async move {
                    let (k, v, h) = &raw[i];
                    let mut headers = OwnedHeaders::new_with_capacity(h.len());
                    for (name, value) in h {
                        headers = headers.insert(Header {
                            key: name,
                            value: Some(value.as_bytes()),
                        });
                    }
                    producer
                        .send(
                            FutureRecord::to(&topic).key(k).payload(v).headers(headers),
                            Duration::from_secs(30),
                        )
                        .await
                        .expect("raw delivery");
                }
            })
            .await
        };
        let ser_time = {
            let producer = producer.clone();
            let topic = raw_topic.clone();
            let batch = Arc::new(std::sync::Mutex::new(
                messages(&publisher, &raw_topic, count)
                    .into_iter()
                    .map(Some)
                    .collect::<Vec<_>>(),
            ));
            drive(count, in_flight, move |i| {
                let producer = producer.clone();
                let topic = topic.clone();
                let m = batch.lock().expect("lock")[i].take().expect("message");
                async move {
                    let value = m.envelope.to_json();
                    let pairs = m.headers.to_pairs();
                    let mut headers = OwnedHeaders::new_with_capacity(pairs.len());
                    for (name, value) in &pairs {
                        headers = headers.insert(Header {
                            key: name,
                            value: Some(value.as_bytes()),
                        });
                    }
                    producer
                        .send(
                            FutureRecord::to(&topic)
                                .key(m.key.as_bytes())
                                .payload(&value)
                                .headers(headers),
                            Duration::from_secs(30),
                        )
                        .await
                        .expect("raw delivery");
                }
            })
            .await
        };
        let batch = Arc::new(std::sync::Mutex::new(
            messages(&publisher, &bus_topic, count)
                .into_iter()
                .map(Some)
                .collect::<Vec<_>>(),
        ));
        let bus_time = {
            let bus = bus.clone();
            drive(count, in_flight, move |i| {
                let bus = bus.clone();
                let m = batch.lock().expect("lock")[i].take().expect("message");
                async move {
                    bus.publish(m.into()).await.expect("bus delivery");
                }
            })
            .await
        };
        println!(
            "round {round}: raw {:>8.0} msg/s, raw+serialize {:>8.0} msg/s, bus {:>8.0} msg/s",
            rate(raw_time),
            rate(ser_time),
            rate(bus_time)
        );
        raw_rates.push(rate(raw_time));
        ser_rates.push(rate(ser_time));
        bus_rates.push(rate(bus_time));
    }
    bus.shutdown().await.expect("shutdown");

    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (raw_rate, ser_rate, bus_rate) = (best(&raw_rates), best(&ser_rates), best(&bus_rates));
    println!("{count} messages of {bytes} bytes, {in_flight} in flight, best of {rounds}");
    println!("raw rdkafka FutureProducer, bytes ready:     {raw_rate:>10.0} msg/s");
    println!("raw rdkafka FutureProducer, serializing:     {ser_rate:>10.0} msg/s");
    println!("onex KafkaBus::publish (serializes):         {bus_rate:>10.0} msg/s");
    println!(
        "bus / raw serializing the same envelope: {:.0}%; bus / raw with bytes ready: {:.0}%",
        100.0 * bus_rate / ser_rate,
        100.0 * bus_rate / raw_rate
    );
}
