//! The in-memory bus: publish-to-delivery throughput with one subscriber and
//! with four (four consumer groups, each receiving every event), publishing
//! from a task of a multi-thread tokio runtime (two workers here).
//!
//! One iteration is one event: criterion's time per iteration is the time
//! from publishing a batch to the last delivery, divided by the batch. Two
//! ways to publish:
//! - `publish`: `EventBus::publish` of a prebuilt, shared message (the bus
//!   alone: the trait takes an `Arc<BusMessage>`);
//! - `publisher`: `onex::Publisher::publish` of a typed event (envelope,
//!   headers and key built per event: what a node does).
//!
//! `memory_bus_parts` times, on one thread, what an event costs before the
//! bus sees it: cloning (and dropping) a built message, and building one.

// What a generated node installs (see its main.rs); the peers measured
// beside it share this process, so both sides run on the same allocator.
#[global_allocator]
static ALLOCATOR: onex::Allocator = onex::Allocator;

use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use onex::{
    BusMessage, EventBus, InMemoryBus, Publisher, SourceInfo,
    bus::{Handler, HandlerError, Subscription},
};
use onex_bench::event::RecordWritten;

struct Count(AtomicU64);

#[async_trait]
impl Handler for Count {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        black_box(message);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Publish,
    Publisher,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Publish => "publish",
            Mode::Publisher => "publisher",
        }
    }
}

fn memory_bus(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("memory_bus");
    group.throughput(Throughput::Elements(1));
    for subscribers in [1usize, 4] {
        for mode in [Mode::Publish, Mode::Publisher] {
            group.bench_function(BenchmarkId::new(mode.name(), subscribers), |b| {
                // The publisher is a task on the runtime, as in a node.
                b.iter_custom(|iters| {
                    runtime
                        .block_on(runtime.spawn(run(mode, subscribers, iters)))
                        .expect("the benchmark task")
                });
            });
        }
    }
    group.finish();

    // What one event costs before the bus sees it, on one thread.
    let publisher = Publisher::new(
        Arc::new(InMemoryBus::new("bench")),
        SourceInfo::new("postgres_writer", "1.0.0", "bench"),
    );
    let event = RecordWritten::sample();
    let message = publisher
        .message(&event, None, Default::default())
        .expect("a message");
    let mut parts = c.benchmark_group("memory_bus_parts");
    parts.bench_function("clone_and_drop_message", |b| {
        b.iter(|| black_box(message.clone()))
    });
    parts.bench_function("build_message", |b| {
        b.iter(|| black_box(publisher.message(&event, None, Default::default())))
    });
    parts.finish();
}

/// Publishes `iters` events to a fresh bus with `subscribers` groups and
/// waits for every delivery; the time from the first publish to the last
/// delivery.
async fn run(mode: Mode, subscribers: usize, iters: u64) -> Duration {
    let bus = InMemoryBus::builder("bench").history_capacity(0).build();
    let publisher = Publisher::new(
        Arc::new(bus.clone()),
        SourceInfo::new("postgres_writer", "1.0.0", "bench"),
    );
    let event = RecordWritten::sample();
    let message = publisher
        .message(&event, None, Default::default())
        .expect("a message");
    let counter = Arc::new(Count(AtomicU64::new(0)));
    let mut handles = Vec::new();
    for g in 0..subscribers {
        let handle = bus
            .subscribe(
                Subscription {
                    topics: vec![publisher.topic_of::<RecordWritten>()],
                    group: format!("group-{g}"),
                },
                counter.clone(),
            )
            .await
            .expect("a subscription");
        handles.push(handle);
    }
    let shared = Arc::new(message);
    let started = Instant::now();
    for _ in 0..iters {
        match mode {
            Mode::Publish => bus.publish(Arc::clone(&shared)).await.map(|_| ()),
            Mode::Publisher => publisher.publish(&event, None).await.map(|_| ()),
        }
        .expect("published");
    }
    bus.wait_until_idle().await;
    let elapsed = started.elapsed();
    assert_eq!(
        counter.0.load(Ordering::Relaxed),
        iters * subscribers as u64,
        "every event delivered to every subscriber"
    );
    for handle in handles {
        handle.stop().await;
    }
    bus.shutdown().await.expect("shutdown");
    elapsed
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = memory_bus
}
criterion_main!(benches);
