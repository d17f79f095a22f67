//! Point reads of many concurrent requests answered by one PostgreSQL statement.
//!
//! Under load, a GET's own work in Almanac is small next to what one statement costs on
//! PostgreSQL: a round trip, a backend's executor start-up and tear-down, sqlx's message
//! handling, two context switches. When requests wait for a free lookup, the lookups queued
//! meanwhile go out together as one statement over arrays of keys, and each request gets its
//! own row back. Every lookup still reads the database after its request arrived, so a write
//! committed before (by any process sharing the database) is seen: nothing is cached.
//!
//! At most `MAX_RUNNERS` batches run at once. A request that finds a runner free starts one
//! at once and so waits for no one: with little load every batch holds one key and the cost
//! is a spawned task. Runners are spawned tasks, not the requests themselves, so a client
//! that goes away mid-request (its future dropped) cannot strand the lookups of others.

use super::{Result, StoreError};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Batches running at once, each on a connection of its own. Two keep one statement in flight
/// while the next batch gathers; more made smaller batches for no more throughput (measured at
/// 1 to 4 under 16 concurrent GETs).
const MAX_RUNNERS: usize = 2;
/// Keys per statement at most; more wait for the next batch.
const MAX_BATCH: usize = 64;

/// What one statement answers for a whole batch of keys.
pub trait BatchLookup: Send + Sync + 'static {
    type Key: Send + 'static;
    type Found: Send + 'static;
    /// The answer for each of `keys`, in the same order (`None`: nothing under that key).
    fn lookup(
        &self,
        keys: Vec<Self::Key>,
    ) -> impl Future<Output = Result<Vec<Option<Self::Found>>>> + Send;
}

type Reply<L> = oneshot::Sender<Result<Option<<L as BatchLookup>::Found>>>;

struct Queue<L: BatchLookup> {
    /// Lookups not yet taken by a runner, oldest first.
    waiting: Vec<(L::Key, Reply<L>)>,
    runners: usize,
}

pub struct Batched<L: BatchLookup> {
    lookup: L,
    queue: Mutex<Queue<L>>,
}

impl<L: BatchLookup> Batched<L> {
    pub fn new(lookup: L) -> Arc<Self> {
        Arc::new(Batched {
            lookup,
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                runners: 0,
            }),
        })
    }

    /// Looks `key` up, in a batch with whatever other lookups are waiting.
    pub async fn get(self: &Arc<Self>, key: L::Key) -> Result<Option<L::Found>> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.lock();
            q.waiting.push((key, tx));
            let start = q.runners < MAX_RUNNERS;
            if start {
                q.runners += 1;
            }
            start
        };
        if start {
            tokio::spawn(Arc::clone(self).run());
        }
        rx.await.map_err(|_| {
            // The runner ended without answering: it panicked.
            StoreError::Internal("a batched lookup ended without an answer".into())
        })?
    }

    /// Runs batches until no lookup is waiting.
    async fn run(self: Arc<Self>) {
        // Should a batch panic, its lookups are failed (their replies dropped) and the place
        // is handed to a new runner if others are waiting, so none is left unanswered.
        struct Leave<L: BatchLookup>(Arc<Batched<L>>, bool);
        impl<L: BatchLookup> Drop for Leave<L> {
            fn drop(&mut self) {
                if self.1 {
                    return;
                }
                let mut q = self.0.lock();
                if q.waiting.is_empty() {
                    q.runners -= 1;
                } else {
                    let me = Arc::clone(&self.0);
                    tokio::spawn(me.run());
                }
            }
        }
        let mut leave = Leave(Arc::clone(&self), false);
        loop {
            let (keys, replies) = {
                let mut q = self.lock();
                if q.waiting.is_empty() {
                    // Leaves with the lock held, so no lookup can be queued unseen.
                    q.runners -= 1;
                    leave.1 = true;
                    return;
                }
                let n = q.waiting.len().min(MAX_BATCH);
                q.waiting.drain(..n).unzip::<_, _, Vec<_>, Vec<_>>()
            };
            let n = keys.len();
            let answered = match self.lookup.lookup(keys).await {
                Ok(found) if found.len() == n => Ok(found),
                Ok(found) => Err(StoreError::Internal(format!(
                    "a batched lookup answered {} of {n} keys",
                    found.len()
                ))),
                Err(e) => Err(e),
            };
            // A requester that went away no longer listens: its send fails, nothing to do.
            match answered {
                Ok(found) => {
                    for (reply, f) in replies.into_iter().zip(found) {
                        let _ = reply.send(Ok(f));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Batched(Arc::clone(&e))));
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<L>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Doubles even keys, finds nothing under odd ones; fails a batch holding 13 and panics on
    /// one holding 7. Records each batch's size.
    #[derive(Default)]
    struct Doubling {
        batches: Mutex<Vec<usize>>,
    }

    impl BatchLookup for Arc<Doubling> {
        type Key = u64;
        type Found = u64;
        async fn lookup(&self, keys: Vec<u64>) -> Result<Vec<Option<u64>>> {
            self.batches.lock().unwrap().push(keys.len());
            // A statement takes a while: lookups arriving meanwhile queue up.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if keys.contains(&7) {
                panic!("lookup of 7");
            }
            if keys.contains(&13) {
                return Err(StoreError::Internal("no 13".into()));
            }
            Ok(keys.iter().map(|k| (k % 2 == 0).then_some(k * 2)).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lookups_share_statements_and_get_their_own_answers() {
        let d = Arc::new(Doubling::default());
        let b = Batched::new(Arc::clone(&d));
        let gets = (20..120u64).map(|k| {
            let b = Arc::clone(&b);
            tokio::spawn(async move { (k, b.get(k).await) })
        });
        for g in futures_util::future::join_all(gets).await {
            let (k, found) = g.unwrap();
            assert_eq!(found.unwrap(), (k % 2 == 0).then_some(k * 2), "key {k}");
        }
        let batches = d.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 100);
        assert!(
            batches.len() < 20,
            "100 lookups took {} statements",
            batches.len()
        );
        assert!(batches.iter().all(|&n| n <= MAX_BATCH));
        // Alone, a lookup is one statement of one key, started at once.
        d.batches.lock().unwrap().clear();
        assert_eq!(b.get(4).await.unwrap(), Some(8));
        assert_eq!(*d.batches.lock().unwrap(), vec![1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_or_panicking_batch_fails_its_own_lookups_only() {
        let d = Arc::new(Doubling::default());
        let b = Batched::new(Arc::clone(&d));
        let e = b.get(13).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Batched(ref inner) if matches!(**inner, StoreError::Internal(_)))
        );
        assert!(b.get(7).await.is_err());
        // The runner that panicked gave its place back: later lookups are answered.
        for k in [2u64, 3, 40] {
            assert_eq!(b.get(k).await.unwrap(), (k % 2 == 0).then_some(k * 2));
        }
        // …and every runner ends once nothing waits.
        for _ in 0..100 {
            if b.lock().runners == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} runners left with nothing to do", b.lock().runners);
    }
}
