//! Wake-ups from Redis pub/sub without polling: one subscriber connection per process listens on
//! a channel (job events for the API, cancellations for the worker) and wakes the local tasks
//! that wait on a tag. After a reconnect every waiter is woken, since messages may have been
//! missed; waiters re-read Redis after waking, so a lost message costs a re-read, never a lost
//! event.
//!
//! A message is a tag, or a tag, a newline and a job's hash at its end (a JSON array of field,
//! value, …: `publish_end` in `scripts/lua/common.lua`, followed there by the plain tag). A waiter
//! for that end takes it as its answer instead of reading the job again
//! ([`Subscription::end_after`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

/// Aborts the listening task when the last clone of the listener is dropped.
#[derive(Debug)]
struct CancelOnDrop(tokio::task::JoinHandle<()>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a tag's waiters have been told: how many messages (each wakes them), and the last end
/// document with the count it arrived at.
#[derive(Debug, Default)]
struct Told {
    n: u64,
    end: Option<(u64, Arc<str>)>,
}

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<Told>>>>;

/// Subscribes to one channel and dispatches messages (tags) to waiters.
#[derive(Debug, Clone)]
pub struct Listener {
    waiters: Waiters,
    all: watch::Sender<u64>,
    _task: Arc<CancelOnDrop>,
}

/// A registration for one tag; wakes when a message with that tag arrives.
#[derive(Debug)]
pub struct Subscription {
    rx: watch::Receiver<Told>,
    all: watch::Receiver<u64>,
    tag: String,
    waiters: Waiters,
    /// Messages for the tag before this subscription: an end among them is not its news.
    start: u64,
}

impl Subscription {
    /// Waits for the next message for this tag (or a reconnect), at most `timeout`.
    /// Returns false on timeout.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        let rx = &mut self.rx;
        let all = &mut self.all;
        tokio::time::timeout(timeout, async {
            tokio::select! {
                r = rx.changed() => r.is_ok(),
                r = all.changed() => r.is_ok(),
            }
        })
        .await
        .unwrap_or(false)
    }

    /// The job's hash as its end was published since this subscription began, when that end is
    /// later than the caller's last read of the job (`seen`: that read's `evseq`, the event
    /// position every change of the job moves on; 0 before any read). None when no such end
    /// arrived (not yet, too big to be sent, or from a release that sends tags only): read the
    /// job instead.
    pub fn end_after(&self, seen: u64) -> Option<HashMap<String, String>> {
        let told = self.rx.borrow();
        let (at, doc) = told.end.as_ref()?;
        if *at <= self.start {
            return None;
        }
        let flat: Vec<String> = serde_json::from_str(doc).ok()?;
        let mut hash = HashMap::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            hash.insert(k, v);
        }
        (event_position(&hash) > seen).then_some(hash)
    }
}

/// A job hash's event position (`evseq`; absent until its second event: 1).
pub fn event_position(hash: &HashMap<String, String>) -> u64 {
    hash.get("evseq").and_then(|s| s.parse().ok()).unwrap_or(1)
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self.waiters.lock().expect("waiters lock");
        if let Some(tx) = map.get(&self.tag)
            && tx.receiver_count() <= 1
        {
            map.remove(&self.tag);
        }
    }
}

impl Listener {
    /// Starts listening on `channel`. Reconnects with back-off for as long as the listener lives.
    pub fn start(pool: super::Pool, channel: String) -> Self {
        let waiters: Waiters = Arc::default();
        let (all, _) = watch::channel(0u64);
        let task = tokio::spawn(run(pool, channel, waiters.clone(), all.clone()));
        Self {
            waiters,
            all,
            _task: Arc::new(CancelOnDrop(task)),
        }
    }

    /// Registers interest in `tag` before the caller reads Redis, so nothing is missed between
    /// the read and the wait.
    pub fn subscribe(&self, tag: &str) -> Subscription {
        let mut map = self.waiters.lock().expect("waiters lock");
        let rx = map
            .entry(tag.to_owned())
            .or_insert_with(|| watch::channel(Told::default()).0)
            .subscribe();
        let start = rx.borrow().n;
        Subscription {
            rx,
            all: self.all.subscribe(),
            tag: tag.to_owned(),
            waiters: self.waiters.clone(),
            start,
        }
    }

    /// Wakes the waiters of `tag`, handing them `end` (a job's hash at its end, as published).
    fn wake(waiters: &Waiters, tag: &str, end: Option<&str>) {
        if let Some(tx) = waiters.lock().expect("waiters lock").get(tag) {
            tx.send_modify(|t| {
                t.n += 1;
                if let Some(doc) = end {
                    t.end = Some((t.n, Arc::from(doc)));
                }
            });
        }
    }

    /// Wakes every waiter (used after a reconnect).
    fn wake_all(all: &watch::Sender<u64>) {
        all.send_modify(|n| *n += 1);
    }

    /// Feeds a tag as if it had arrived on the channel (tests and local shortcuts).
    pub fn notify_local(&self, tag: &str) {
        Self::wake(&self.waiters, tag, None);
    }
}

async fn run(pool: super::Pool, channel: String, waiters: Waiters, all: watch::Sender<u64>) {
    let mut backoff = Duration::from_millis(100);
    let mut logged = false;
    loop {
        let pubsub = match pool.pubsub_client().await {
            Ok(client) => client.get_async_pubsub().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match pubsub {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    if logged {
                        tracing::info!(channel = %channel, "Subscription restored");
                    }
                    logged = false;
                    backoff = Duration::from_millis(100);
                    Listener::wake_all(&all);
                    let mut stream = pubsub.on_message();
                    while let Some(msg) = stream.next().await {
                        if let Ok(payload) = msg.get_payload::<String>() {
                            match payload.split_once('\n') {
                                Some((tag, end)) => Listener::wake(&waiters, tag, Some(end)),
                                None => Listener::wake(&waiters, &payload, None),
                            }
                        }
                    }
                }
            }
            Err(err) => {
                if !logged {
                    tracing::warn!(channel = %channel, error = %err, "Subscription lost; retrying");
                    logged = true;
                }
            }
        }
        Listener::wake_all(&all);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
