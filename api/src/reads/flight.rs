//! Shared reads that never answer with the past, and the answers kept between them.
//!
//! Per [`ReadKey`] at most two reads exist at a time: `running`, and `next`, which starts when
//! `running` has finished. A request joins `next` when `running` is in flight (`running` may
//! have read the store before the request arrived), and `running` only when it starts it. So
//! whatever the number of clients polling one answer, its reads run back to back, one at a
//! time, and each request's answer comes from a read that began after the request did.
//!
//! The table is bounded: when it holds [`MAX_KEPT`] keys or [`MAX_KEPT_BYTES`] bytes of kept
//! bodies, every key without a read in flight is dropped (their next reads simply start from
//! nothing). A body larger than [`MAX_BODY`] is never kept.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::{Answer, Read, ReadKey};

/// Keys (answers and their reads) kept at most.
pub const MAX_KEPT: usize = 4096;
/// Bytes of kept bodies at most.
pub const MAX_KEPT_BYTES: usize = 64 << 20;
/// A body larger than this is not kept.
pub const MAX_BODY: usize = 1 << 20;

type Flight = Shared<BoxFuture<'static, Read>>;

#[derive(Default)]
struct Slot {
    running: Option<Flight>,
    next: Option<Flight>,
    kept: Option<Arc<Answer>>,
}

impl Slot {
    fn busy(&self) -> bool {
        self.running.as_ref().is_some_and(|f| f.peek().is_none())
    }

    /// Drops reads that have finished: `next` becomes `running` once `running` is done.
    fn settle(&mut self) {
        while self.running.as_ref().is_some_and(|f| f.peek().is_some()) {
            self.running = self.next.take();
        }
    }
}

#[derive(Default)]
struct Table {
    slots: HashMap<ReadKey, Slot>,
    bytes: usize,
}

impl Table {
    fn make_room(&mut self, key: &ReadKey) {
        if self.slots.contains_key(key)
            || (self.slots.len() < MAX_KEPT && self.bytes <= MAX_KEPT_BYTES)
        {
            return;
        }
        self.slots.retain(|_, s| s.busy());
        self.bytes = self
            .slots
            .values()
            .filter_map(|s| s.kept.as_ref())
            .map(|a| a.body.len())
            .sum();
    }
}

/// The table of shared reads and kept answers of one API process.
#[derive(Clone, Default)]
pub struct Reads {
    table: Arc<Mutex<Table>>,
}

impl Reads {
    /// The answer for `key`, from a read that starts after this call: `read` is given the kept
    /// answer (to reuse while its tag holds) and runs only if no read that this call can
    /// share is waiting to start.
    pub(super) async fn read<F, Fut>(&self, key: ReadKey, read: F) -> Read
    where
        F: FnOnce(Option<Arc<Answer>>) -> Fut + Send + 'static,
        Fut: Future<Output = Read> + Send + 'static,
    {
        let flight = {
            let mut t = self.table.lock().expect("reads lock");
            t.make_room(&key);
            let slot = t.slots.entry(key.clone()).or_default();
            slot.settle();
            match (&slot.running, &slot.next) {
                (Some(_), Some(next)) => next.clone(),
                (Some(running), None) => {
                    let f = self.flight(key, Some(running.clone()), read);
                    slot.next = Some(f.clone());
                    f
                }
                (None, _) => {
                    let f = self.flight(key, None, read);
                    slot.running = Some(f.clone());
                    f
                }
            }
        };
        flight.await
    }

    fn flight<F, Fut>(&self, key: ReadKey, after: Option<Flight>, read: F) -> Flight
    where
        F: FnOnce(Option<Arc<Answer>>) -> Fut + Send + 'static,
        Fut: Future<Output = Read> + Send + 'static,
    {
        let reads = self.clone();
        async move {
            if let Some(before) = after {
                let _ = before.await;
            }
            let kept = reads.kept(&key);
            let out = read(kept).await;
            reads.keep(&key, &out);
            out
        }
        .boxed()
        .shared()
    }

    fn kept(&self, key: &ReadKey) -> Option<Arc<Answer>> {
        let t = self.table.lock().expect("reads lock");
        t.slots.get(key).and_then(|s| s.kept.clone())
    }

    fn keep(&self, key: &ReadKey, out: &Read) {
        let mut guard = self.table.lock().expect("reads lock");
        let t = &mut *guard;
        let Some(slot) = t.slots.get_mut(key) else {
            return;
        };
        let new = match out {
            Ok(Some(a)) if a.body.len() <= MAX_BODY => Some(a.clone()),
            Ok(_) => None,
            Err(_) => return,
        };
        if let Some(old) = slot.kept.take() {
            t.bytes -= old.body.len();
        }
        if let Some(a) = &new {
            t.bytes += a.body.len();
        }
        slot.kept = new;
    }

    /// Keys held now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().expect("reads lock").slots.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use scanq::domain::{CorrelationId, Tagger, TenantId};
    use tokio::sync::Notify;

    use super::*;

    fn key(n: u64) -> ReadKey {
        ReadKey::Job {
            tenant: TenantId::parse("t").unwrap(),
            id: CorrelationId::parse(&format!("j-{n}")).unwrap(),
            summary: false,
        }
    }

    fn answer(n: u64) -> Arc<Answer> {
        Arc::new(Answer {
            etag: Tagger::new("j").num(n).finish(),
            body: axum::body::Bytes::from(n.to_string()),
        })
    }

    /// The store: a version that the test moves, and a count of the reads that ran.
    #[derive(Default)]
    struct Store {
        version: AtomicU64,
        reads: AtomicU64,
        gate: Notify,
    }

    #[tokio::test]
    async fn a_request_never_shares_a_read_that_started_before_it() {
        let reads = Reads::default();
        let store = Arc::new(Store::default());
        let read = |store: Arc<Store>, wait: bool| {
            move |_kept: Option<Arc<Answer>>| async move {
                let v = store.version.load(Ordering::SeqCst);
                store.reads.fetch_add(1, Ordering::SeqCst);
                if wait {
                    store.gate.notified().await;
                }
                Ok(Some(answer(v)))
            }
        };
        // A read of version 0 starts and is held.
        let first = tokio::spawn({
            let (reads, store) = (reads.clone(), store.clone());
            async move { reads.read(key(1), read(store, true)).await }
        });
        eventually(|| store.reads.load(Ordering::SeqCst) == 1).await;
        // The job changes; then two requests arrive while the old read is in flight.
        store.version.store(1, Ordering::SeqCst);
        let later: Vec<_> = (0..2)
            .map(|_| {
                let (reads, store) = (reads.clone(), store.clone());
                tokio::spawn(async move { reads.read(key(1), read(store, false)).await })
            })
            .collect();
        // Both wait on the one read queued behind the held one (the slot holds it too).
        eventually(|| {
            let t = reads.table.lock().unwrap();
            t.slots[&key(1)]
                .next
                .as_ref()
                .is_some_and(|n| n.strong_count() == Some(3))
        })
        .await;
        store.gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap().unwrap().etag, answer(0).etag);
        for l in later {
            // They see the change, from one read they shared.
            assert_eq!(l.await.unwrap().unwrap().unwrap().etag, answer(1).etag);
        }
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_kept_answer_is_offered_to_the_next_read_and_a_gone_job_drops_it() {
        let reads = Reads::default();
        let got = reads.read(key(1), |_| async { Ok(Some(answer(7))) }).await;
        assert!(got.unwrap().is_some());
        let offered = reads
            .read(key(1), |kept| async move {
                assert_eq!(
                    kept.as_ref().map(|k| k.etag.clone()),
                    Some(answer(7).etag.clone())
                );
                Ok(None)
            })
            .await;
        assert!(offered.unwrap().is_none());
        reads
            .read(key(1), |kept| async move {
                assert!(kept.is_none(), "a job that is gone keeps nothing");
                Ok(None)
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_full_table_drops_the_idle_keys() {
        let reads = Reads::default();
        for n in 0..MAX_KEPT as u64 {
            reads
                .read(key(n), move |_| async move { Ok(Some(answer(n))) })
                .await
                .unwrap();
        }
        assert_eq!(reads.len(), MAX_KEPT);
        reads
            .read(key(u64::MAX), |_| async { Ok(Some(answer(1))) })
            .await
            .unwrap();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads.table.lock().unwrap().bytes, 1);
    }

    async fn eventually(f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "condition not reached"
            );
            tokio::task::yield_now().await;
        }
    }
}
