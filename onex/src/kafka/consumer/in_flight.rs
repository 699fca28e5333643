//! Several messages in hand at once (`KAFKA_MAX_IN_FLIGHT` above 1), without
//! giving up order per key or at-least-once:
//!
//! - messages of one key (in one partition) are handled one after the
//!   other, in order; messages of different keys side by side; messages
//!   without a key have no order to keep. A handler may hand its key back
//!   before it is done (`release_key`: a node's operation does once its
//!   outcome event is handed to the bus), and the key's next message
//!   starts while the first awaits its acknowledgements;
//! - a message's offset is stored only once every message before it in its
//!   partition is done, so a crash replays whatever was not finished (and
//!   perhaps some that were), never skips one;
//! - at most `limit` messages are in hand; with those that handed their
//!   key back and only await acknowledgements, at most 16 × `limit`; and
//!   at most 16 × `limit` wait for their turn; when that many wait, the
//!   consumer stops taking messages (librdkafka keeps what it fetched, and
//!   stops fetching once its own queue is full). Should that last a poll
//!   tick (handlers stuck on something), it pauses its partitions and goes
//!   on polling, so that it stays in its group, and resumes them once no
//!   more than 4 × `limit` wait; likewise while the subscriber's breaker
//!   pauses it.
//!
//! The messages are futures of the subscription's own task, so a handler
//! that awaits I/O (a database, another node's answer) lets the others
//! run.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    sync::Mutex,
};

use futures_util::{StreamExt, stream::FuturesUnordered};
use rdkafka::{Message, TopicPartitionList, consumer::Consumer, message::BorrowedMessage};

use super::{ConsumerTask, Outcome, stopped};
use crate::{
    bus::{Handler, StopSignal},
    consume::{KeyInHand, SubscriberBreaker},
};

/// The lane a keyed message keeps its order in: a hash of its topic,
/// partition and key. Two lanes that share a hash are handled as one,
/// which keeps the order of both (it only waits more).
type Lane = u64;

fn lane_of(topic: &str, partition: i32, key: Option<&[u8]>) -> Option<Lane> {
    use std::hash::{Hash, Hasher};
    let key = key?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (topic, partition, key).hash(&mut hasher);
    Some(hasher.finish())
}

/// Where a message in hand came from, to settle it when it is done.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Slot {
    topic: String,
    partition: i32,
    offset: i64,
    /// `None` for a message without a key, which has no order to keep.
    lane: Option<Lane>,
}

impl Slot {
    fn of(record: &BorrowedMessage<'_>) -> Self {
        Slot {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            lane: lane_of(record.topic(), record.partition(), record.key()),
        }
    }
}

/// A partition's messages taken and not yet done, and how far it is done.
#[derive(Debug, Default)]
struct Progress {
    /// Offsets taken (in hand or waiting) and not done.
    open: BTreeSet<i64>,
    /// The lowest offset taken: nothing below it is this consumer's to
    /// store.
    first_taken: Option<i64>,
    /// The highest offset done.
    highest_done: Option<i64>,
    /// The highest offset whose successor was stored.
    stored: Option<i64>,
}

/// The order the messages in hand must keep: a queue per lane, and the
/// lanes whose next message may go now.
#[derive(Default)]
pub(super) struct Lanes<'c> {
    /// Lanes with a message in hand.
    busy: HashSet<Lane>,
    /// Taken messages not in hand yet, per lane, in arrival order.
    queues: HashMap<Lane, VecDeque<BorrowedMessage<'c>>>,
    /// Lanes with waiting messages and none in hand, in the order they
    /// became so.
    ready: VecDeque<Lane>,
    /// Waiting messages without a key.
    unkeyed: VecDeque<BorrowedMessage<'c>>,
    /// How many messages wait, in all.
    waiting: usize,
    /// How many messages in hand handed their key back.
    released_in_hand: usize,
    partitions: HashMap<(String, i32), Progress>,
}

impl<'c> Lanes<'c> {
    /// A message from the consumer, to be handled in its turn.
    fn take(&mut self, record: BorrowedMessage<'c>) {
        let progress = self
            .partitions
            .entry((record.topic().to_owned(), record.partition()))
            .or_default();
        progress.open.insert(record.offset());
        progress.first_taken = Some(
            progress
                .first_taken
                .map_or(record.offset(), |first| first.min(record.offset())),
        );
        self.waiting += 1;
        match lane_of(record.topic(), record.partition(), record.key()) {
            None => self.unkeyed.push_back(record),
            Some(lane) => {
                let queue = self.queues.entry(lane).or_default();
                if queue.is_empty() && !self.busy.contains(&lane) {
                    self.ready.push_back(lane);
                }
                queue.push_back(record);
            }
        }
    }

    /// The next message whose lane has none in hand; its lane is then in
    /// hand. A lane's messages leave in the order they came, so the order
    /// of a key holds.
    fn next_ready(&mut self) -> Option<BorrowedMessage<'c>> {
        let record = match self.unkeyed.pop_front() {
            Some(record) => record,
            None => {
                let lane = self.ready.pop_front()?;
                let queue = self.queues.get_mut(&lane)?;
                let record = queue.pop_front()?;
                if queue.is_empty() {
                    self.queues.remove(&lane);
                }
                self.busy.insert(lane);
                record
            }
        };
        self.waiting -= 1;
        Some(record)
    }

    /// Frees a lane: its next message, if any, may go.
    fn free(&mut self, lane: Option<Lane>) {
        if let Some(lane) = lane
            && self.busy.remove(&lane)
            && self.queues.contains_key(&lane)
        {
            self.ready.push_back(lane);
        }
    }

    /// A message in hand handed its key back: the key's next message may
    /// go, though this one is not done.
    fn released(&mut self, lane: Lane) {
        self.released_in_hand += 1;
        self.free(Some(lane));
    }

    /// Frees the lane of a message in hand that left it: unless it handed
    /// its key back before, which freed the lane then.
    fn leave(&mut self, slot: &Slot, released: bool) {
        if released {
            self.released_in_hand -= 1;
        } else {
            self.free(slot.lane);
        }
    }

    /// Settles a message that is done (`released`: it handed its key back
    /// before); returns the offset of its partition up to which every
    /// message is done, when that moved.
    fn done(&mut self, slot: &Slot, released: bool) -> Option<i64> {
        self.leave(slot, released);
        let progress = self
            .partitions
            .get_mut(&(slot.topic.clone(), slot.partition))?;
        progress.open.remove(&slot.offset);
        progress.highest_done = progress.highest_done.max(Some(slot.offset));
        let done_up_to = match progress.open.first() {
            Some(first_open) => first_open - 1,
            None => progress.highest_done?,
        };
        let ours = progress
            .first_taken
            .is_some_and(|first| done_up_to >= first);
        (ours && progress.stored < Some(done_up_to)).then(|| {
            progress.stored = Some(done_up_to);
            done_up_to
        })
    }

    /// Frees the lane of a message given up (stop was requested): it stays
    /// open, so that nothing after it in its partition is stored.
    fn abandoned(&mut self, slot: &Slot, released: bool) {
        self.leave(slot, released);
    }

    fn waiting(&self) -> usize {
        self.waiting
    }
}

/// How many received messages may wait for their turn, per message that
/// may be in hand, before the consumer pauses its partitions. Pausing
/// drops what librdkafka fetched ahead, and resuming fetches it again,
/// which costs the broker's fetch wait each time: a consumer that paused
/// as soon as its hands were full spent most of its time there.
const WAITING_PER_IN_HAND: usize = 16;

/// How few may wait, per message that may be in hand, before paused
/// partitions resume. Well below [`WAITING_PER_IN_HAND`], so that a
/// consumer that had to pause does not pause again at the next message.
const RESUME_PER_IN_HAND: usize = 4;

/// Whether the partitions should be held (paused): once `high` messages
/// have waited for a while (`full_for_long`), and, once held, until no
/// more than `low` wait.
///
/// Not as soon as `high` wait: pausing throws away what librdkafka
/// fetched ahead, and a resumed partition is fetched again only after
/// librdkafka's fetch back-off (about half a second here). A node that
/// paused at `high` and resumed below it did that for every few hundred
/// messages of a long backlog: fed 20,000 waiting commands it handled a
/// tenth of what it handled fed 3,000.
fn should_hold(waiting: usize, held: bool, full_for_long: bool, low: usize) -> bool {
    if held { waiting > low } else { full_for_long }
}

impl ConsumerTask {
    /// Like [`ConsumerTask::consume`], with up to `limit` messages in hand
    /// at once: see the [module documentation](self).
    pub(super) async fn consume_concurrently(
        &self,
        handler: &dyn Handler,
        stop: &mut StopSignal,
        limit: usize,
    ) {
        let mut bus_stop = self.inner.shutdown.subscribe();
        let breaker = Mutex::new(self.subscriber_breaker());
        let mut commits = super::Commits::new(self.inner.config.commit_interval());
        let mut lanes = Lanes::default();
        // Before `running`, whose futures borrow the sender.
        let (to_consumer, mut released) = tokio::sync::mpsc::unbounded_channel();
        let mut running = FuturesUnordered::new();
        let mut paused = TopicPartitionList::new();
        let mut stopping = false;
        let high = limit.saturating_mul(WAITING_PER_IN_HAND);
        // Since when `high` messages wait.
        let mut full_since: Option<tokio::time::Instant> = None;
        loop {
            // An open breaker takes nothing new until its pause is over.
            let pause = super::lock(&breaker).pause_left();
            if !stopping && pause.is_none() {
                // Those that handed their key back only await the broker:
                // not in hand, though bounded too.
                while running.len() - lanes.released_in_hand < limit && running.len() < high {
                    let Some(record) = lanes.next_ready() else {
                        break;
                    };
                    let (stop, bus_stop) = (stop.clone(), bus_stop.clone());
                    running.push(self.settle_one(
                        handler,
                        record,
                        &breaker,
                        &to_consumer,
                        stop,
                        bus_stop,
                    ));
                }
            }
            if stopping && running.is_empty() {
                break;
            }
            let full = lanes.waiting() >= high;
            if !full {
                full_since = None;
            } else if full_since.is_none() {
                full_since = Some(tokio::time::Instant::now());
            }
            let full_for_long = full_since.is_some_and(|t| t.elapsed() >= self.poll_tick);
            let hold = should_hold(
                lanes.waiting(),
                paused.count() > 0,
                full_for_long,
                limit.saturating_mul(RESUME_PER_IN_HAND),
            ) || pause.is_some();
            self.hold_partitions(hold, &mut paused);
            // Full and not paused: take nothing more for now. Paused, the
            // consumer polls (only a partition assigned meanwhile delivers).
            let receive = !stopping && (!full || paused.count() > 0);
            tokio::select! {
                biased;
                Some(lane) = released.recv() => lanes.released(lane),
                Some((slot, outcome, was_released)) = running.next(), if !running.is_empty() => {
                    // A key handed back is in the channel before its
                    // message is done (both happen on this task): counted
                    // first.
                    while let Ok(lane) = released.try_recv() {
                        lanes.released(lane);
                    }
                    match outcome {
                        Outcome::Done => {
                            if let Some(offset) = lanes.done(&slot, was_released) {
                                self.mark_processed_up_to(&slot.topic, slot.partition, offset);
                                commits.stored(&self.consumer);
                            }
                        }
                        // Not stored: delivered again, and nothing after it
                        // in its partition is stored either.
                        Outcome::Abandoned => {
                            lanes.abandoned(&slot, was_released);
                            stopping = true;
                        }
                    }
                }
                () = stopped(stop, &mut bus_stop), if !stopping => stopping = true,
                received = self.consumer.recv(), if receive => match received {
                    // While holding, only a partition assigned meanwhile
                    // delivers: it is held too.
                    Ok(record) => {
                        if hold {
                            let mut partition = TopicPartitionList::new();
                            partition.add_partition(record.topic(), record.partition());
                            self.pause(&partition);
                            paused.add_partition(record.topic(), record.partition());
                        }
                        lanes.take(record);
                    }
                    Err(e) => self.consumer.context().report(&e, "receiving a message"),
                },
                () = tokio::time::sleep(pause.unwrap_or(self.poll_tick)) => {
                    commits.commit(&self.consumer);
                }
            }
            if running.is_empty() && lanes.waiting() == 0 {
                commits.commit(&self.consumer);
            }
        }
        // Waiting messages were never handed over: not stored, delivered
        // again.
        self.hold_partitions(false, &mut paused);
    }

    /// Hands one message to the handler; returns where it came from and
    /// what became of it.
    async fn settle_one<'c>(
        &'c self,
        handler: &'c dyn Handler,
        record: BorrowedMessage<'c>,
        breaker: &'c Mutex<SubscriberBreaker>,
        to_consumer: &tokio::sync::mpsc::UnboundedSender<Lane>,
        mut stop: StopSignal,
        mut bus_stop: tokio::sync::watch::Receiver<bool>,
    ) -> (Slot, Outcome, bool) {
        let slot = Slot::of(&record);
        // A keyed message's handler may hand its key back.
        let key = slot
            .lane
            .map(|lane| KeyInHand::new(lane, to_consumer.clone()));
        let handling = self.handle_record(handler, &record, &mut stop, &mut bus_stop);
        let (outcome, verdict) = match &key {
            Some(key) => key.scope(handling).await,
            None => handling.await,
        };
        if let (Outcome::Done, Some(verdict)) = (&outcome, &verdict) {
            super::lock(breaker).record(verdict);
        }
        (slot, outcome, key.is_some_and(|key| key.was_released()))
    }

    /// Pauses the assigned partitions (`hold`) or resumes those paused.
    fn hold_partitions(&self, hold: bool, paused: &mut TopicPartitionList) {
        if hold && paused.count() == 0 {
            match self.consumer.assignment() {
                Ok(assignment) => {
                    self.pause(&assignment);
                    *paused = assignment;
                }
                Err(e) => tracing::debug!(group = %self.group, "cannot read the assignment: {e}"),
            }
        } else if !hold && paused.count() > 0 {
            if let Err(e) = self.consumer.resume(paused) {
                tracing::debug!(group = %self.group, "cannot resume partitions: {e}");
            }
            *paused = TopicPartitionList::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(partition: i32, offset: i64, key: Option<&str>) -> Slot {
        Slot {
            topic: "t".to_owned(),
            partition,
            offset,
            lane: lane_of("t", partition, key.map(str::as_bytes)),
        }
    }

    /// `Lanes::take` needs a record from a consumer; the progress it
    /// records is the same as this, with the message then in hand.
    fn open(lanes: &mut Lanes<'_>, slot: &Slot) {
        let progress = lanes
            .partitions
            .entry((slot.topic.clone(), slot.partition))
            .or_default();
        progress.open.insert(slot.offset);
        progress.first_taken = Some(
            progress
                .first_taken
                .map_or(slot.offset, |f| f.min(slot.offset)),
        );
        if let Some(lane) = slot.lane {
            lanes.busy.insert(lane);
        }
    }

    #[test]
    fn partitions_are_held_once_full_for_long_until_the_low_mark() {
        let (high, low) = (64 * WAITING_PER_IN_HAND, 64 * RESUME_PER_IN_HAND);
        // Full only for a moment: not held.
        assert!(!should_hold(high, false, false, low));
        assert!(should_hold(high, false, true, low));
        // Held: one message fewer is not enough to resume.
        assert!(should_hold(high - 1, true, false, low));
        assert!(should_hold(low + 1, true, false, low));
        assert!(!should_hold(low, true, false, low));
    }

    #[test]
    fn offsets_are_stored_only_up_to_the_first_open_message() {
        let mut lanes = Lanes::default();
        let (a, b, c) = (
            slot(0, 10, Some("a")),
            slot(0, 11, Some("b")),
            slot(0, 12, None),
        );
        for s in [&a, &b, &c] {
            open(&mut lanes, s);
        }
        assert_eq!(lanes.done(&b, false), None, "10 is still open");
        assert_eq!(lanes.done(&c, false), None, "10 is still open");
        assert_eq!(lanes.done(&a, false), Some(12), "10 to 12 are done");
        let d = slot(0, 13, Some("a"));
        open(&mut lanes, &d);
        assert_eq!(lanes.done(&d, false), Some(13));
    }

    #[test]
    fn an_abandoned_message_holds_its_partition_but_frees_its_key() {
        let mut lanes = Lanes::default();
        let (a, b) = (slot(1, 5, Some("a")), slot(1, 6, Some("b")));
        open(&mut lanes, &a);
        open(&mut lanes, &b);
        lanes.abandoned(&a, false);
        assert!(!lanes.busy.contains(&a.lane.unwrap()));
        assert_eq!(
            lanes.done(&b, false),
            None,
            "5 was not done: nothing is stored"
        );
        let other = slot(2, 0, Some("a"));
        open(&mut lanes, &other);
        assert_eq!(
            lanes.done(&other, false),
            Some(0),
            "partitions are independent"
        );
    }

    #[test]
    fn a_key_handed_back_lets_its_next_message_go_and_keeps_the_first_open() {
        let mut lanes = Lanes::default();
        let (first, second) = (slot(0, 20, Some("a")), slot(0, 21, Some("a")));
        open(&mut lanes, &first);
        let lane = first.lane.unwrap();
        lanes.released(lane);
        assert!(!lanes.busy.contains(&lane), "the key is free");
        assert_eq!(lanes.released_in_hand, 1);
        // The key's next message is in hand while the first is not done.
        open(&mut lanes, &second);
        assert_eq!(lanes.done(&second, false), None, "20 is still open");
        assert!(!lanes.busy.contains(&lane));
        // The first one's end must not free the lane a second time.
        let third = slot(0, 22, Some("a"));
        open(&mut lanes, &third);
        assert_eq!(lanes.done(&first, true), Some(21));
        assert!(lanes.busy.contains(&lane), "22 still holds the key");
        assert_eq!(lanes.released_in_hand, 0);
    }
}
