//! The one scheduler of onex-build: contracts prepared on several threads,
//! taken in the order they were given.
//!
//! Contracts are independent until they are written, and differ a lot in
//! size, so scoped worker threads take the next contract as they finish
//! one, at most [`WINDOW`] ahead of the calling thread. The calling thread
//! takes each result in input order and hands it on (the pipeline writes
//! it, the build script's [`crate::Builder`] collects it), so the outcome
//! is that of a sequential run. [`crate::pipeline::run`] and the `Builder`
//! both schedule their contracts here.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
};

/// How many prepared items may wait for the calling thread: bounds memory
/// when it is slower than the workers (the disk slower than the CPU).
const WINDOW: usize = 64;

/// How many worker threads prepare `count` items: none for one item (the
/// calling thread prepares it, a second thread gains nothing), else up to
/// [`std::thread::available_parallelism`].
pub(crate) fn workers_for(count: usize) -> usize {
    if count < 2 {
        0
    } else {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(count)
    }
}

/// Prepares the items `0..count` on `workers` scoped threads and hands each
/// to `consume` on the calling thread, in index order. An item for which
/// `last` holds is the last one the workers prepare (nothing after it is
/// consumed when `consume` then fails); `consume` failing stops the run
/// with its error. An item no worker took, the calling thread prepares.
pub(crate) fn in_order<T: Send, E>(
    count: usize,
    workers: usize,
    prepare: impl Fn(usize) -> T + Sync,
    last: impl Fn(&T) -> bool + Sync,
    mut consume: impl FnMut(usize, T) -> Result<(), E>,
) -> Result<(), E> {
    let queue = Queue::new(count, workers);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let spawned = std::thread::Builder::new()
                .name("onex-pipeline".to_owned())
                .spawn_scoped(scope, || queue.work(&prepare, &last));
            if spawned.is_err() {
                // The calling thread prepares what no worker takes.
                queue.leave();
            }
        }
        // Whatever happens to the calling thread, the workers stop.
        let _stop = StopOnDrop(&queue);
        for index in 0..count {
            let item = match queue.take(index) {
                Some(item) => item,
                None => prepare(index),
            };
            consume(index, item)?;
        }
        Ok(())
    })
}

/// `f` applied to every item, in the order of `items`, on the threads of
/// [`in_order`].
pub(crate) fn map_in_order<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    let done: Result<(), std::convert::Infallible> = in_order(
        items.len(),
        workers_for(items.len()),
        |index| f(&items[index]),
        |_| false,
        |_, item| {
            out.push(item);
            Ok(())
        },
    );
    match done {
        Ok(()) => out,
        Err(never) => match never {},
    }
}

/// Hands out indices to the workers and their results to the calling
/// thread.
struct Queue<T> {
    state: Mutex<State<T>>,
    /// Workers wait here for room in the window.
    room: Condvar,
    /// The calling thread waits here for a result.
    ready: Condvar,
}

struct State<T> {
    /// The next index no worker has taken.
    next: usize,
    /// Workers take only indices below this: the number of items, or one
    /// past the first that `last` marked.
    limit: usize,
    /// The index the calling thread waits for.
    taking: usize,
    /// Workers still running.
    workers: usize,
    /// The calling thread is done (or gave up).
    stop: bool,
    /// Indices a worker took and dropped when it panicked: the calling
    /// thread prepares them again.
    lost: BTreeSet<usize>,
    results: BTreeMap<usize, T>,
}

impl<T> Queue<T> {
    fn new(count: usize, workers: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                next: 0,
                limit: count,
                taking: 0,
                workers,
                stop: false,
                lost: BTreeSet::new(),
                results: BTreeMap::new(),
            }),
            room: Condvar::new(),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code panics while holding the lock; a poisoned state is still
        // consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker (counted in [`Queue::new`]): prepares items until none are
    /// left.
    fn work(&self, prepare: &impl Fn(usize) -> T, last: &impl Fn(&T) -> bool) {
        let _leaving = LeaveOnDrop(self);
        loop {
            let index = {
                let mut state = self.lock();
                loop {
                    if state.stop || state.next >= state.limit {
                        return;
                    }
                    if state.next < state.taking + WINDOW {
                        break;
                    }
                    state = self
                        .room
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.next += 1;
                state.next - 1
            };
            let claim = Claim {
                queue: self,
                index: Some(index),
            };
            let item = prepare(index);
            claim.deliver(item, last);
        }
    }

    /// The calling thread: the result for `index`, waiting for a worker;
    /// `None` when no worker will prepare it (the caller then does).
    fn take(&self, index: usize) -> Option<T> {
        let mut state = self.lock();
        state.taking = index;
        self.room.notify_all();
        loop {
            if let Some(item) = state.results.remove(&index) {
                return Some(item);
            }
            if state.lost.remove(&index) {
                return None;
            }
            let unclaimed = index >= state.next;
            if unclaimed && (index >= state.limit || state.workers == 0) {
                state.next = index + 1;
                return None;
            }
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// A worker is gone (or never started).
    fn leave(&self) {
        let mut state = self.lock();
        state.workers = state.workers.saturating_sub(1);
        self.ready.notify_all();
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.room.notify_all();
    }
}

/// An index a worker took: delivered with its result, or, when the worker
/// panics on it, given back as lost so that the calling thread never waits
/// for it.
struct Claim<'a, T> {
    queue: &'a Queue<T>,
    index: Option<usize>,
}

impl<T> Claim<'_, T> {
    fn deliver(mut self, item: T, last: &impl Fn(&T) -> bool) {
        let Some(index) = self.index.take() else {
            return;
        };
        let stops = last(&item);
        let mut state = self.queue.lock();
        if stops {
            state.limit = state.limit.min(index + 1);
        }
        state.results.insert(index, item);
        self.queue.ready.notify_one();
    }
}

impl<T> Drop for Claim<'_, T> {
    fn drop(&mut self) {
        if let Some(index) = self.index.take() {
            self.queue.lock().lost.insert(index);
            self.queue.ready.notify_all();
        }
    }
}

/// Stops the workers when the calling thread returns (or panics).
struct StopOnDrop<'a, T>(&'a Queue<T>);

impl<T> Drop for StopOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Counts a worker out when it returns (or panics), so the calling thread
/// never waits for a result nobody will make.
struct LeaveOnDrop<'a, T>(&'a Queue<T>);

impl<T> Drop for LeaveOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_input_order() {
        let items: Vec<usize> = (0..100).rev().collect();
        let out = map_in_order(&items, |n| {
            // Uneven work, so that workers finish out of order.
            std::thread::sleep(std::time::Duration::from_micros((*n as u64 % 7) * 50));
            n * 2
        });
        assert_eq!(out, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(map_in_order(&[3], |n| n + 1), [4]);
        assert!(map_in_order(&[] as &[u8], |n| *n).is_empty());
    }

    #[test]
    fn nothing_after_the_last_is_consumed_when_consuming_fails() {
        let mut seen = Vec::new();
        let result = in_order(
            30,
            4,
            |index| index,
            |&index| index == 12,
            |index, item| {
                assert_eq!(index, item);
                seen.push(index);
                if index == 12 { Err(index) } else { Ok(()) }
            },
        );
        assert_eq!(result, Err(12));
        assert_eq!(seen, (0..=12).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_worker_does_not_hang_the_run() {
        let run = std::panic::catch_unwind(|| {
            map_in_order(&(0..8).collect::<Vec<u32>>(), |&n| {
                assert_ne!(n, 5, "a bug");
                n
            })
        });
        assert!(run.is_err());
    }
}
