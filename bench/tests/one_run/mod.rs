//! One `scanq-bench` at a time in a test binary: a run deletes, when it ends, the nftables tables
//! its workers created (`confine::host_tables`), which must not happen under another run's
//! workers. (Test binaries themselves run one after another.)

use tokio::sync::{Mutex, MutexGuard};

static ONE: Mutex<()> = Mutex::const_new(());

/// For a test without a runtime.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE.blocking_lock()
}

/// For a test on a runtime.
#[allow(dead_code)]
pub async fn one_at_a_time_async() -> MutexGuard<'static, ()> {
    ONE.lock().await
}
