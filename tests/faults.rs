//! The fault suite: generated nodes run as separate processes while the
//! test injects faults (SIGKILL, a broker that stops, a broker down through
//! a shutdown, a reducer killed mid-window, failing handlers); then a
//! checker reads every outcome that reached the broker with Python
//! confluent-kafka (a client this project did not write) and counts what
//! was lost, duplicated and reordered against the commands the test sent.
//! Each scenario prints one line:
//!
//! ```text
//! faults: sigkill x5: sent 1200, lost 0, duplicated 3, out of order 0 (...)
//! ```
//!
//! The nodes are generated from `tests/faults/*.yaml` with the handlers of
//! `tests/faults/` (the probe's faults come from `FAULT_*` variables) and
//! built in the target folder the node crates of the tests share.
//!
//! Scenarios on the shared broker need `ONEX_TEST_BOOTSTRAP_SERVERS` (set by
//! `scripts/test`); without it every scenario says so and passes, like the
//! other end-to-end tests. With it set, a broker that does not answer fails
//! them. The broker-outage scenarios run on rdkafka's mock cluster, hosted
//! in this process (its brokers listen on loopback TCP, which the node
//! processes and Python reach), since a stopped Tansu with memory storage
//! forgets every topic; Python confluent-kafka reads the mock cluster like
//! any broker.

#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/faults.rs"]
mod faults;
#[path = "support/node_build.rs"]
mod node_build;

use std::{collections::BTreeSet, time::Duration};

use e2e::bootstrap;
use faults::{
    FaultNode, Ledger, NodeRun, Outgoing, await_outcomes, dead_letter_topic, envelope_of,
    final_verdict, fresh_environment, log_tail, probe_output_topics, random_between, read_topics,
    send_all, sigkill, sigterm, topic,
};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use serde_json::{Value, json};

/// The scenarios' broker, or `None` (the scenario then passes with a note).
fn broker(scenario: &str) -> Option<String> {
    let found = bootstrap();
    if found.is_none() {
        println!("ONEX_TEST_BOOTSTRAP_SERVERS is not set: skipping the fault scenario {scenario}");
    }
    found
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// The commit interval of scenario (a), `KAFKA_COMMIT_INTERVAL_MS`.
const KILL_COMMIT_INTERVAL_MS: usize = 200;
/// The handler's time per command in scenario (a), `FAULT_DELAY_MS`.
const KILL_DELAY_MS: usize = 5;

/// (a) A consumer killed with SIGKILL at random moments, five times over
/// 1,200 queued commands, and restarted in the same group each time:
/// nothing lost, order per key kept, duplicates within the bound.
#[test]
fn sigkill_repeatedly_loses_nothing_and_keeps_order_per_key() {
    sigkill_repeatedly(1, KILL_DELAY_MS);
}

/// (a') The same with eight commands in hand at once
/// (`KAFKA_MAX_IN_FLIGHT=8`): commands of one key in order, offsets
/// committed only up to the first command not done. Each command takes
/// longer, so that the kills still land mid-stream.
#[test]
fn sigkill_with_commands_in_flight_loses_nothing_and_keeps_order_per_key() {
    sigkill_repeatedly(8, 60);
}

fn sigkill_repeatedly(max_in_flight: usize, delay_ms: usize) {
    const KILLS: usize = 5;
    let Some(bootstrap) = broker("sigkill") else {
        return;
    };
    // Duplicates allowed per SIGKILL, from the runtime's promise
    // (docs/runtime.md, "Consuming"): a handled offset is committed at the
    // latest one commit interval after its handler, so a kill replays the
    // commands in hand plus at most those handled within one commit
    // interval (200 ms / 5 ms = 40 one at a time), each up to
    // `max_in_flight` at once.
    let duplicates_per_kill = max_in_flight * (1 + KILL_COMMIT_INTERVAL_MS / delay_ms);
    let environment = fresh_environment("kill");
    let (ledger, records) = Ledger::probe_commands(&environment, 8, 150);
    send_all(&bootstrap, &records);
    let mut run = NodeRun::new(FaultNode::Probe, &bootstrap, &environment)
        .set("FAULT_DELAY_MS", delay_ms)
        .set("KAFKA_COMMIT_INTERVAL_MS", KILL_COMMIT_INTERVAL_MS)
        .set("KAFKA_ENABLE_AUTO_COMMIT", "false")
        .set("KAFKA_SESSION_TIMEOUT_MS", 3000)
        .set("KAFKA_MAX_IN_FLIGHT", max_in_flight);
    for _ in 0..KILLS {
        let (child, _) = run.start();
        std::thread::sleep(random_between(secs(0.3), secs(2.0)));
        sigkill(child);
    }
    // The kills must have landed mid-stream, or they proved nothing.
    let before_last_restart = final_verdict(&bootstrap, &environment, &ledger);
    assert!(
        before_last_restart.completed > 0 && before_last_restart.completed < ledger.commands.len(),
        "the kills did not land mid-stream (completed {} of {} before the last restart): \
         change FAULT_DELAY_MS",
        before_last_restart.completed,
        ledger.commands.len()
    );
    let (child, log) = run.start();
    await_outcomes(&bootstrap, &environment, &ledger, secs(120.0));
    let status = sigterm(child, secs(40.0), &log);
    assert!(status.success(), "{status}:\n{}", log_tail(&log, 30));
    let verdict = final_verdict(&bootstrap, &environment, &ledger);
    eprintln!(
        "{} [completed before the last restart: {}]",
        verdict.line(&format!("sigkill x{KILLS}, {max_in_flight} in flight")),
        before_last_restart.completed
    );
    assert_eq!(verdict.lost, 0, "{verdict:?}");
    assert_eq!(verdict.out_of_order, 0, "{verdict:?}");
    assert_eq!(verdict.unknown, 0, "{verdict:?}");
    assert_eq!(verdict.completed, verdict.sent, "{verdict:?}");
    assert!(
        verdict.duplicated <= KILLS * duplicates_per_kill,
        "more duplicates than {KILLS} kills x {duplicates_per_kill}: {verdict:?}"
    );
}

/// Creates the topics of a probe node on a mock cluster: command and
/// dead-letter topics led by `command_broker`, the topics the node
/// publishes to led by `output_broker`.
fn mock_topics(
    mock: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    environment: &str,
    command_broker: i32,
    output_broker: i32,
) {
    const PARTITIONS: i32 = 4;
    let command = [
        topic(environment, faults::COMMAND_TOPIC),
        dead_letter_topic(environment),
    ];
    let outputs = probe_output_topics(environment);
    for (topics, leader) in [
        (&command[..], command_broker),
        (&outputs[..], output_broker),
    ] {
        for t in topics {
            mock.create_topic(t, PARTITIONS, 1).expect("create a topic");
            for partition in 0..PARTITIONS {
                mock.partition_leader(t, partition, Some(leader))
                    .expect("set the leader");
            }
        }
    }
}

/// How long the broker stays down in scenario (b): longer than the whole
/// budget of one publish (`KAFKA_TIMEOUT_SECONDS` = 3 s per attempt, three
/// attempts with `KAFKA_MAX_RETRY_ATTEMPTS` = 2, about 10 s with the
/// backoff), so that an event published when the broker went away cannot
/// simply wait for it inside librdkafka; and shorter than the consumer's
/// session (`KAFKA_SESSION_TIMEOUT_MS` = 20 s, as in production, where
/// Kafka's default is 45 s), so that the node keeps its partitions and
/// goes on committing after the outage: a command whose outcome was
/// dropped would not be read again.
const OUTAGE_SECONDS: f64 = 12.0;

/// Duplicates allowed in scenario (b). The node keeps its partitions
/// through the outage (see [`OUTAGE_SECONDS`]) and commits each handled
/// command right after its handler, so it reads nothing twice; a
/// duplicate can only come from a publish re-sent after the broker stored
/// it without acknowledging it. Each handler awaits its publishes one at a
/// time, so when the broker goes away one outcome at most is on the wire.
const DUPLICATES_PER_OUTAGE: usize = 1;

/// (b) The broker stops during a run for longer than a publish's retry
/// budget (not the consumer's session) and comes back with its data: every
/// command gets its outcome, in order per key, and the node stops cleanly
/// (with nothing it accepted left undelivered).
#[test]
fn broker_stopped_and_restarted_during_a_run_loses_nothing() {
    if broker("broker restart").is_none() {
        return;
    }
    let mock = MockCluster::new(1).expect("mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let environment = fresh_environment("outage");
    mock_topics(&mock, &environment, 1, 1);
    let (ledger, records) = Ledger::probe_commands(&environment, 4, 100);
    send_all(&bootstrap, &records);
    let mut run = NodeRun::new(FaultNode::Probe, &bootstrap, &environment)
        .set("FAULT_DELAY_MS", 10)
        .set("KAFKA_TIMEOUT_SECONDS", 3)
        .set("KAFKA_SESSION_TIMEOUT_MS", 20_000)
        .set("KAFKA_CIRCUIT_BREAKER_RESET_TIMEOUT", 2)
        .set("KAFKA_ENABLE_AUTO_COMMIT", "false");
    let (child, log) = run.start();
    std::thread::sleep(secs(1.5));
    mock.broker_down(1).expect("broker down");
    std::thread::sleep(secs(OUTAGE_SECONDS));
    mock.broker_up(1).expect("broker up");
    let verdict = await_outcomes(&bootstrap, &environment, &ledger, secs(60.0));
    let status = sigterm(child, secs(40.0), &log);
    let verdict = if verdict.lost == 0 {
        final_verdict(&bootstrap, &environment, &ledger)
    } else {
        verdict
    };
    eprintln!(
        "{}",
        verdict.line(&format!("broker stopped {OUTAGE_SECONDS} s and restarted"))
    );
    assert_eq!(verdict.lost, 0, "{verdict:?}\n{}", log_tail(&log, 30));
    assert_eq!(verdict.out_of_order, 0, "{verdict:?}");
    assert_eq!(verdict.unknown, 0, "{verdict:?}");
    assert!(
        verdict.duplicated <= DUPLICATES_PER_OUTAGE,
        "more duplicates than {DUPLICATES_PER_OUTAGE}: {verdict:?}"
    );
    assert!(status.success(), "{status}:\n{}", log_tail(&log, 30));
}

/// Duplicates allowed in scenario (c): the one outcome on the wire when
/// its broker went away (stored, not acknowledged, then re-sent from the
/// spool), and the command in hand at SIGTERM if its outcome was spooled
/// but its offset not committed.
const DUPLICATES_THROUGH_SHUTDOWN: usize = 2;

/// (c) The broker that leads the topics the node publishes to goes down
/// while the node runs; the node keeps taking commands (their topic and
/// the group coordinator are on the other broker, so their offsets are
/// committed), its outcomes wait in its buffer; it gets SIGTERM while that
/// broker is still down; the broker comes back; the node restarts in the
/// same working folder. Nothing the node acknowledged (committed) is lost:
/// the outcomes it could not deliver were kept in its spool
/// (`KAFKA_SPOOL_DIR`, default `.onex/spool` in its working folder) and
/// delivered at the next start.
#[test]
fn outcomes_undelivered_at_shutdown_are_delivered_after_restart() {
    outcomes_survive_a_stop_while_their_broker_is_down(Stop::Term);
}

/// Duplicates allowed in scenario (c'), killed: those of (c), plus the
/// commands handled since the last commit (at most one commit interval,
/// 1 s, of 20 ms commands: 50), which are delivered and run again.
const DUPLICATES_THROUGH_KILL: usize = DUPLICATES_THROUGH_SHUTDOWN + 50;

/// (c') As (c), but the node is killed with SIGKILL while the broker is
/// down: what it was told was spooled had been synced to disk, so nothing
/// it acknowledged (committed) is lost either.
#[test]
fn outcomes_spooled_before_a_sigkill_are_delivered_after_restart() {
    outcomes_survive_a_stop_while_their_broker_is_down(Stop::Kill);
}

/// How the first node of scenario (c) stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Kill,
}

fn outcomes_survive_a_stop_while_their_broker_is_down(stop: Stop) {
    if broker("broker down through shutdown").is_none() {
        return;
    }
    const COMMAND_BROKER: i32 = 2;
    const OUTPUT_BROKER: i32 = 1;
    let mock = MockCluster::new(2).expect("mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let environment = fresh_environment("spool");
    mock_topics(&mock, &environment, COMMAND_BROKER, OUTPUT_BROKER);
    mock.coordinator(
        MockCoordinator::Group(format!("{environment}-group")),
        COMMAND_BROKER,
    )
    .expect("coordinator");
    let (ledger, records) = Ledger::probe_commands(&environment, 4, 50);
    send_all(&bootstrap, &records);
    let mut run = NodeRun::new(FaultNode::Probe, &bootstrap, &environment)
        .set("FAULT_DELAY_MS", 20)
        .set("KAFKA_TIMEOUT_SECONDS", 2)
        .set("KAFKA_CIRCUIT_BREAKER_THRESHOLD", 1)
        .set("KAFKA_ENABLE_AUTO_COMMIT", "false");
    let (child, log) = run.start();
    std::thread::sleep(secs(1.0));
    mock.broker_down(OUTPUT_BROKER).expect("broker down");
    std::thread::sleep(secs(3.0));
    let first_exit = match stop {
        Stop::Term => sigterm(child, secs(40.0), &log).to_string(),
        Stop::Kill => {
            sigkill(child);
            "SIGKILL".to_owned()
        }
    };
    let spooled = spool_files(&run.workdir);
    mock.broker_up(OUTPUT_BROKER).expect("broker up");
    let (child, log) = run.start();
    let verdict = await_outcomes(&bootstrap, &environment, &ledger, secs(30.0));
    let status = sigterm(child, secs(40.0), &log);
    let verdict = if verdict.lost == 0 {
        final_verdict(&bootstrap, &environment, &ledger)
    } else {
        verdict
    };
    eprintln!(
        "{} [first node exited with {first_exit}; spool files at the restart: {spooled}]",
        verdict.line(match stop {
            Stop::Term => "output broker down through shutdown",
            Stop::Kill => "output broker down, node killed",
        })
    );
    assert_eq!(
        verdict.lost,
        0,
        "{verdict:?}\nfirst node:\n{}",
        log_tail(&run.log(1), 30)
    );
    assert_eq!(verdict.out_of_order, 0, "{verdict:?}");
    assert_eq!(verdict.unknown, 0, "{verdict:?}");
    let bound = match stop {
        Stop::Term => DUPLICATES_THROUGH_SHUTDOWN,
        Stop::Kill => DUPLICATES_THROUGH_KILL,
    };
    assert!(
        verdict.duplicated <= bound,
        "more duplicates than {bound}: {verdict:?}"
    );
    assert!(status.success(), "{status}:\n{}", log_tail(&log, 30));
}

/// Files under the node's spool folder (default `.onex/spool`).
fn spool_files(workdir: &std::path::Path) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() { count(&path) } else { 1 }
                })
                .sum()
        })
    }
    count(&workdir.join(".onex/spool"))
}

/// Samples for the reducer: `seq` in the payload, one key.
fn samples(environment: &str, seqs: std::ops::Range<u64>) -> Vec<Outgoing> {
    seqs.map(|seq| {
        let envelope = e2e::command_envelope(
            faults::SAMPLE_TYPE,
            environment,
            &e2e::uuid_string(),
            json!({"seq": seq}),
        );
        Outgoing {
            topic: topic(environment, faults::SAMPLE_TOPIC),
            key: "feed".to_owned(),
            value: envelope.to_string(),
            event_type: Some(faults::SAMPLE_TYPE.to_owned()),
        }
    })
    .collect()
}

/// (d) The reducer (4 s windows) killed with SIGKILL mid-window, twice,
/// and restarted: every input is reflected in some `state_updated` event
/// (its seq is in a published window's state), and the windows' event
/// counts add up to at least the inputs. The third batch, sent to the last
/// run, which stops cleanly, is the control: it shows the reducer and the
/// checker work when no kill intervenes.
#[test]
fn reducer_killed_mid_window_reflects_every_input() {
    const BATCHES: [std::ops::Range<u64>; 3] = [0..100, 100..200, 200..300];
    let Some(bootstrap) = broker("reducer kill") else {
        return;
    };
    let environment = fresh_environment("window");
    let mut run = NodeRun::new(FaultNode::Window, &bootstrap, &environment)
        .set("KAFKA_ENABLE_AUTO_COMMIT", "false")
        .set("KAFKA_SESSION_TIMEOUT_MS", 3000);
    // Before the first start, so that the topic exists when it subscribes.
    send_all(&bootstrap, &samples(&environment, BATCHES[0].clone()));
    let (child, _) = run.start();
    // Well inside the first 4 s window: the samples are in the reducer's
    // buffer, no window has closed.
    std::thread::sleep(secs(1.5));
    sigkill(child);
    let (child, _) = run.start();
    send_all(&bootstrap, &samples(&environment, BATCHES[1].clone()));
    std::thread::sleep(secs(1.5));
    sigkill(child);
    let (child, log) = run.start();
    send_all(&bootstrap, &samples(&environment, BATCHES[2].clone()));
    // More than one window, then a clean stop, which closes the last one.
    std::thread::sleep(secs(5.0));
    let status = sigterm(child, secs(40.0), &log);
    assert!(status.success(), "{status}:\n{}", log_tail(&log, 30));

    let updates = read_topics(
        &bootstrap,
        &[topic(&environment, faults::STATE_UPDATED_TOPIC)],
    );
    let mut reflected: Vec<u64> = Vec::new();
    let mut event_count = 0u64;
    for record in &updates {
        let payload = &envelope_of(record)["payload"];
        event_count += payload["event_count"].as_u64().expect("an event_count");
        reflected.extend(
            payload["state"]["window_seqs"]
                .as_array()
                .expect("window_seqs")
                .iter()
                .map(|s| s.as_u64().expect("a seq")),
        );
    }
    let distinct: BTreeSet<u64> = reflected.iter().copied().collect();
    let missing: Vec<Vec<u64>> = BATCHES
        .iter()
        .map(|batch| batch.clone().filter(|s| !distinct.contains(s)).collect())
        .collect();
    let inputs = BATCHES.iter().map(|b| b.end - b.start).sum::<u64>();
    eprintln!(
        "faults: reducer sigkill x2 mid-window: inputs {inputs}, state_updated events {}, \
         event_count total {event_count}, reflected {}, missing {} (killed runs {} and {}, \
         clean run {}), reflected twice {}",
        updates.len(),
        distinct.len(),
        missing.iter().map(Vec::len).sum::<usize>(),
        missing[0].len(),
        missing[1].len(),
        missing[2].len(),
        reflected.len() - distinct.len()
    );
    assert!(
        missing.iter().all(Vec::is_empty),
        "inputs in no state_updated event, by batch: {missing:?}"
    );
    assert!(
        event_count >= inputs,
        "event_count total {event_count} < {inputs}"
    );
}

/// (e) Failing handlers. Every command's handler panics on its first
/// attempt (transient: retried, then completed once, no dead letter); seq 3
/// of each key panics on every attempt (dead-lettered, `error_type=panic`);
/// seq 5 fails in its business logic (the node publishes the operation's
/// failed event, no dead letter); a command whose payload is not the
/// operation's input is refused (`undecodable`) and a record that is not an
/// envelope at all is dead-lettered at once (`decode_error`). The
/// dead-letter headers name the reason, the type, the retries and where
/// the record came from.
#[test]
fn failing_handlers_are_retried_or_dead_lettered() {
    const RETRIES: u64 = 2;
    let Some(bootstrap) = broker("failing handlers") else {
        return;
    };
    let environment = fresh_environment("fail");
    let command_topic = topic(&environment, faults::COMMAND_TOPIC);
    let (ledger, mut records) = Ledger::probe_commands(&environment, 2, 8);
    let bad_id = e2e::uuid_string();
    records.push(Outgoing {
        topic: command_topic.clone(),
        key: "bad".to_owned(),
        value: e2e::command_envelope(
            faults::COMMAND_TYPE,
            &environment,
            &bad_id,
            json!({"probe": {"key": "bad"}}),
        )
        .to_string(),
        event_type: Some(faults::COMMAND_TYPE.to_owned()),
    });
    records.push(Outgoing {
        topic: command_topic.clone(),
        key: "junk".to_owned(),
        value: "this is not an envelope".to_owned(),
        event_type: None,
    });
    send_all(&bootstrap, &records);
    let mut run = NodeRun::new(FaultNode::Probe, &bootstrap, &environment)
        .set("KAFKA_MAX_RETRY_ATTEMPTS", RETRIES)
        .set("FAULT_PANIC_FIRST", 1)
        .set("FAULT_PANIC_SEQS", 3)
        .set("FAULT_FAIL_SEQS", 5);
    let (child, log) = run.start();
    await_outcomes(&bootstrap, &environment, &ledger, secs(60.0));
    let dead = e2e::read_raw(&bootstrap, &dead_letter_topic(&environment), Some(4));
    let status = sigterm(child, secs(40.0), &log);
    assert!(status.success(), "{status}:\n{}", log_tail(&log, 30));

    let verdict = final_verdict(&bootstrap, &environment, &ledger);
    eprintln!("{}", verdict.line("failing handlers"));
    assert_eq!(verdict.lost, 0, "{verdict:?}");
    assert_eq!(verdict.duplicated, 0, "{verdict:?}");
    assert_eq!(verdict.out_of_order, 0, "{verdict:?}");
    assert_eq!(verdict.completed, 12, "{verdict:?}");
    assert_eq!(verdict.failed, 2, "{verdict:?}");
    assert_eq!(verdict.dead_lettered, 2, "{verdict:?}");
    // The dead letters of the two records that are not commands.
    assert_eq!(verdict.unknown, 2, "{verdict:?}");

    // The transient fault happened: each completed command started twice
    // (the panicking attempt, then the one that completed).
    let started = read_topics(&bootstrap, &[topic(&environment, faults::STARTED_TOPIC)]);
    for sent in ledger.commands.iter().filter(|s| s.seq != 3) {
        let attempts = started
            .iter()
            .filter(|r| envelope_of(r)["correlation_id"] == sent.correlation_id.as_str())
            .count();
        assert_eq!(attempts, 2, "{sent:?} started {attempts} times");
    }

    // Business failures are failed events with the handler's error.
    let failed = read_topics(&bootstrap, &[topic(&environment, faults::FAILED_TOPIC)]);
    for record in &failed {
        let text = envelope_of(record)["payload"].to_string();
        assert!(text.contains("fails in its business logic"), "{text}");
        assert!(text.contains("injected"), "{text}");
    }

    // Where each command record lies, to check `original_offset`.
    let commands = read_topics(&bootstrap, std::slice::from_ref(&command_topic));
    let position_of = |key: &str, correlation_id: Option<&str>| -> (String, String) {
        let record = commands
            .iter()
            .find(|r| {
                r["key"] == key
                    && correlation_id.is_none_or(|id| {
                        serde_json::from_str::<Value>(r["value"].as_str().unwrap_or_default())
                            .is_ok_and(|e| e["correlation_id"] == id)
                    })
            })
            .unwrap_or_else(|| panic!("no command record for {key}"));
        (
            record["partition"].to_string(),
            record["offset"].to_string(),
        )
    };
    let letter_for = |correlation_id: Option<&str>, key: &str| -> &Value {
        dead.iter()
            .find(|d| {
                d["key"] == key
                    && correlation_id.is_none_or(|id| d["headers"]["correlation_id"] == id)
            })
            .unwrap_or_else(|| panic!("no dead letter for {key}: {dead:#?}"))
    };
    let check = |letter: &Value, position: (String, String), error_type: &str, retries: u64| {
        let h = &letter["headers"];
        assert_eq!(h["error_type"], error_type, "{letter:#}");
        assert_eq!(h["retry_count"], retries.to_string().as_str(), "{letter:#}");
        assert_eq!(h["original_topic"], command_topic.as_str(), "{letter:#}");
        assert_eq!(h["original_partition"], position.0.as_str(), "{letter:#}");
        assert_eq!(h["original_offset"], position.1.as_str(), "{letter:#}");
        assert!(
            h["failure_reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{letter:#}"
        );
    };
    for sent in ledger.commands.iter().filter(|s| s.seq == 3) {
        let letter = letter_for(Some(&sent.correlation_id), &sent.key);
        check(
            letter,
            position_of(&sent.key, Some(&sent.correlation_id)),
            "panic",
            RETRIES,
        );
        let reason = letter["headers"]["failure_reason"].as_str().unwrap_or("");
        assert!(reason.contains("seq 3 always panics"), "{letter:#}");
    }
    let bad = letter_for(Some(&bad_id), "bad");
    check(
        bad,
        position_of("bad", Some(&bad_id)),
        "undecodable",
        RETRIES,
    );
    let reason = bad["headers"]["failure_reason"].as_str().unwrap_or("");
    assert!(reason.contains(faults::COMMAND_TYPE), "{bad:#}");
    let junk = letter_for(None, "junk");
    check(junk, position_of("junk", None), "decode_error", 0);
    assert_eq!(junk["value"], "this is not an envelope", "{junk:#}");
}

/// The checker itself, on records made up for it: it counts a command
/// without outcome as lost, a second outcome as a duplicate, a command
/// finished before an earlier one of its key as out of order, and an
/// outcome of a command nobody sent as unknown; a replay of an earlier
/// command after later ones is a duplicate, not reordering.
#[test]
fn the_checker_counts_lost_duplicated_and_reordered_commands() {
    let environment = "checker";
    let sent = |key: &str, seq: u64| faults::Sent {
        key: key.to_owned(),
        seq,
        correlation_id: format!("{key}-{seq}"),
    };
    let ledger = Ledger {
        commands: vec![
            sent("a", 0),
            sent("a", 1),
            sent("a", 2),
            sent("b", 0),
            sent("b", 1),
            sent("b", 2),
        ],
    };
    let completed = |correlation_id: &str, second: u32| {
        json!({
            "topic": topic(environment, faults::COMPLETED_TOPIC),
            "value": json!({
                "correlation_id": correlation_id,
                "event_timestamp": format!("2026-01-01T00:00:{second:02}.5Z"),
            }).to_string(),
        })
    };
    let records = vec![
        // Key a: in order; a-0 replayed after a-2 (a duplicate).
        completed("a-0", 1),
        completed("a-1", 2),
        completed("a-2", 3),
        completed("a-0", 4),
        // Key b: b-2 finished before b-1 (out of order); b-0 never.
        completed("b-2", 5),
        completed("b-1", 6),
        completed("nobody", 7),
        json!({
            "topic": dead_letter_topic(environment),
            "headers": {"correlation_id": "a-1", "failure_timestamp": "2026-01-01T00:00:08Z"},
            "value": "{}",
        }),
    ];
    let verdict = faults::judge(&ledger, environment, &records);
    assert_eq!(
        verdict,
        faults::Verdict {
            sent: 6,
            lost: 1,
            duplicated: 2,
            out_of_order: 1,
            completed: 5,
            failed: 0,
            dead_lettered: 1,
            unknown: 1,
        }
    );
}
