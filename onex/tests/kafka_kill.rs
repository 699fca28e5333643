//! At-least-once under SIGKILL: a consumer in a separate process is killed
//! mid-stream at several points and restarted in the same group; in the
//! end every published event was processed (duplicates allowed).
//!
//! The consumer process is this test binary run again with
//! `ONEX_KILL_PROBE_OUT` set: `probe_consumer` then consumes the topic and
//! appends each processed event id to that file after its handler ran,
//! until it is killed.

// Without the Kafka bus these tests must fail, not pass vacuously.
#[cfg(not(feature = "kafka"))]
compile_error!("the Kafka tests need the `kafka` feature of onex (on by default)");

#[path = "support/kafka.rs"]
mod support;

use std::{
    collections::HashSet,
    io::Write,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use onex::{
    BusMessage, EventBus, HandlerError,
    bus::{Handler, Subscription},
    kafka::KafkaBus,
};
use support::*;
use uuid::Uuid;

const PROBE_OUT: &str = "ONEX_KILL_PROBE_OUT";
const PROBE_TOPIC: &str = "ONEX_KILL_PROBE_TOPIC";
const PROBE_GROUP: &str = "ONEX_KILL_PROBE_GROUP";

/// Appends the event id of each message to a file, then lets the bus
/// commit it.
struct AppendIds(Mutex<std::fs::File>);

#[async_trait::async_trait]
impl Handler for AppendIds {
    async fn handle(&self, message: &BusMessage) -> Result<(), HandlerError> {
        // Slow enough that a kill lands mid-stream.
        tokio::time::sleep(Duration::from_micros(500)).await;
        let mut file = self.0.lock().expect("lock");
        writeln!(file, "{}", message.envelope.event_id)
            .map_err(|e| HandlerError::new("io", e.to_string()))?;
        Ok(())
    }
}

/// The consumer process. A no-op in a normal test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_consumer() {
    let Ok(out) = std::env::var(PROBE_OUT) else {
        return;
    };
    let bootstrap = std::env::var(BOOTSTRAP_VAR).expect("bootstrap");
    let topic = std::env::var(PROBE_TOPIC).expect("topic");
    let group = std::env::var(PROBE_GROUP).expect("group");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("output file");
    let mut config = test_config(&bootstrap, "probe");
    // Commit after every handled message, so that kills land among commits
    // (with background commits every 5 s, a short run commits nothing).
    config.enable_auto_commit = false;
    let bus = KafkaBus::connect(config).await.expect("connect");
    let _handle = bus
        .subscribe(
            Subscription {
                topics: vec![topic],
                group,
            },
            Arc::new(AppendIds(Mutex::new(file))),
        )
        .await
        .expect("subscribe");
    // Consume until killed.
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn spawn_probe(bootstrap: &str, topic: &str, group: &str, out: &Path) -> Child {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args([
            "--exact",
            "probe_consumer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BOOTSTRAP_VAR, bootstrap)
        .env(PROBE_OUT, out)
        .env(PROBE_TOPIC, topic)
        .env(PROBE_GROUP, group)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the consumer process")
}

fn processed(out: &Path) -> Vec<Uuid> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        // A line cut by the kill is not a full id: skip it.
        .filter_map(|l| Uuid::parse_str(l.trim()).ok())
        .collect()
}

fn wait_until(out: &Path, what: &str, timeout: Duration, done: impl Fn(&[Uuid]) -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let ids = processed(out);
        if done(&ids) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {} lines processed",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_killed_with_sigkill_and_restarted_loses_nothing() {
    let Some(bootstrap) = bootstrap("consumer_killed_with_sigkill_and_restarted_loses_nothing")
    else {
        return;
    };
    const N: u64 = 3_000;
    let env = unique("kill");
    let bus = kafka_bus(test_config(&bootstrap, &env)).await;
    let publisher = publisher(bus.clone(), &env);
    let topic = publisher.topic_of::<OrderPlaced>();
    let mut tasks = tokio::task::JoinSet::new();
    let mut sent = HashSet::new();
    for n in 0..N {
        let m = message(&publisher, &topic, n);
        sent.insert(m.envelope.event_id);
        let bus = bus.clone();
        tasks.spawn(async move { bus.publish(m).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task").expect("publish");
    }
    bus.shutdown().await.expect("shutdown");

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("processed.txt");
    let group = unique("kill-group");
    let mut kills = 0;
    // Kill points: lines processed so far, over all runs.
    let started = Instant::now();
    for kill_at in [300, 1_200, 2_100] {
        let mut child = spawn_probe(&bootstrap, &topic, &group, &out);
        let waited = std::panic::catch_unwind(|| {
            wait_until(&out, "the kill point", Duration::from_secs(60), |ids| {
                ids.len() >= kill_at
            })
        });
        // Child::kill sends SIGKILL.
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        if let Err(panic) = waited {
            std::panic::resume_unwind(panic);
        }
        kills += 1;
        println!("killed at {kill_at} lines after {:?}", started.elapsed());
    }
    assert_eq!(kills, 3);

    // A last run consumes the rest.
    let mut child = spawn_probe(&bootstrap, &topic, &group, &out);
    let waited = std::panic::catch_unwind(|| {
        wait_until(&out, "every event", Duration::from_secs(60), |ids| {
            ids.iter()
                .copied()
                .collect::<HashSet<_>>()
                .is_superset(&sent)
        })
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    if let Err(panic) = waited {
        std::panic::resume_unwind(panic);
    }

    let ids = processed(&out);
    let (distinct, duplicates) = distinct_ids(ids.iter().copied());
    assert!(distinct.is_superset(&sent), "no event lost");
    assert!(distinct.is_subset(&sent), "nothing else processed");
    println!(
        "{} processed, {} distinct, {duplicates} redelivered after kills",
        ids.len(),
        distinct.len()
    );
}
