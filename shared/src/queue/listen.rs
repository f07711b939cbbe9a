//! Wake-ups from Redis pub/sub without polling: one subscriber connection per process listens on
//! a channel (job events for the API, cancellations for the worker) and wakes the local tasks
//! that wait on a tag. After a reconnect every waiter is woken, since messages may have been
//! missed; waiters always re-read Redis after waking, so a lost message costs a re-read, never
//! a lost event.

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

type Waiters = Arc<Mutex<HashMap<String, watch::Sender<u64>>>>;

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
    rx: watch::Receiver<u64>,
    all: watch::Receiver<u64>,
    tag: String,
    waiters: Waiters,
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
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            rx,
            all: self.all.subscribe(),
            tag: tag.to_owned(),
            waiters: self.waiters.clone(),
        }
    }

    fn wake(waiters: &Waiters, tag: &str) {
        if let Some(tx) = waiters.lock().expect("waiters lock").get(tag) {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Wakes every waiter (used after a reconnect).
    fn wake_all(all: &watch::Sender<u64>) {
        all.send_modify(|n| *n += 1);
    }

    /// Feeds a tag as if it had arrived on the channel (tests and local shortcuts).
    pub fn notify_local(&self, tag: &str) {
        Self::wake(&self.waiters, tag);
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
                        if let Ok(tag) = msg.get_payload::<String>() {
                            Listener::wake(&waiters, &tag);
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
