//! The one application state passed to every handler.

use std::sync::Arc;

use scanq::catalog::Catalog;
use scanq::config::Config;
use scanq::domain::ToolName;
use scanq::metrics::Metrics;
use scanq::queue::{Listener, Queue};
use scanq::request::Policy;
use scanq::stats::Stats;
use scanq::validate::TargetPolicy;

use crate::auth::Auth;
use crate::system::SystemProbe;

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub cfg: Config,
    pub catalog: Catalog,
    pub targets: TargetPolicy,
    pub queue: Queue,
    pub listener: Listener,
    pub metrics: Metrics,
    pub breaker_cache: crate::gate::BreakerCache,
    pub stats: Stats,
    pub system: SystemProbe,
    pub auth: Auth,
    /// Fires due schedules (this process takes part like every other) and serves `trigger`.
    pub scheduler: scanq::schedule::Scheduler,
    /// Delivers due webhook events (this process takes part like every other).
    pub webhooks: scanq::webhook::Dispatcher,
}

impl AppState {
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// Every catalog tool's name, in catalog order.
    pub fn tool_names(&self) -> Vec<ToolName> {
        self.inner
            .catalog
            .tools()
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn policy(&self) -> Policy<'_> {
        Policy {
            catalog: &self.inner.catalog,
            targets: &self.inner.targets,
            allow_intrusive: self.inner.cfg.allow_intrusive,
            default_max_attempts: self.inner.cfg.default_max_attempts,
        }
    }
}
