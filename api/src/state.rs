//! The one application state passed to every handler.

use std::sync::Arc;

use scanq::config::Config;
use scanq::domain::ToolName;
use scanq::metrics::Metrics;
use scanq::queue::{Listener, Queue};
use scanq::reload::{Live, LiveCell};
use scanq::stats::Stats;

use crate::auth::Auth;
use crate::system::SystemProbe;

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    /// The configuration the process started with: the keys fixed at start are read here;
    /// the reloadable ones (catalog, target scope, …) through [`AppState::live`].
    pub cfg: Config,
    /// The reloadable set in force (SIGHUP swaps it whole).
    pub live: LiveCell,
    pub queue: Queue,
    pub listener: Listener,
    pub metrics: Metrics,
    pub stats: Stats,
    pub system: SystemProbe,
    pub auth: Auth,
    /// Fires due schedules (this process takes part like every other) and serves `trigger`.
    pub scheduler: scanq::schedule::Scheduler,
    /// Delivers due webhook events (this process takes part like every other).
    pub webhooks: scanq::webhook::Dispatcher,
    /// Emits the webhook events of a big scan's parent that a cancel or retry here finished
    /// (the worker's settler emits those of parents its chunks finish).
    pub job_events: scanq::webhook::JobEvents,
    /// Shared reads and kept answers of jobs and lists (DESIGN §15, `reads`).
    pub reads: crate::reads::Reads,
}

impl AppState {
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// The reloadable set in force: catalog, target scope and their configuration keys. Take
    /// it once per request and use that one set throughout.
    pub fn live(&self) -> Arc<Live> {
        self.inner.live.current()
    }

    /// Every catalog tool's name, in catalog order.
    pub fn tool_names(&self) -> Vec<ToolName> {
        self.live()
            .catalog
            .tools()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The zones of the zone map in force (DESIGN §13), without `default`.
    pub fn zones(&self) -> Vec<scanq::domain::Zone> {
        self.live().zones.zones()
    }

    /// Every queue (tool, zone) the fleet reports: each catalog tool in each zone of the map
    /// and in any zone that ever held one of its jobs.
    pub async fn places(
        &self,
    ) -> Result<Vec<(ToolName, scanq::domain::Zone)>, scanq::queue::QueueError> {
        self.inner
            .stats
            .places(&self.tool_names(), &self.zones())
            .await
    }

    /// Every zone with its live workers and queued jobs (`scanq::stats::ZoneView`); the zone
    /// map's entries only for `admin`. What `/v1/zones`, `/health` and `scanq://zones` show.
    pub async fn zone_views(
        &self,
        admin: bool,
    ) -> Result<Vec<scanq::stats::ZoneView>, scanq::queue::QueueError> {
        let live = self.live();
        let tools: Vec<ToolName> = live.catalog.tools().map(|(n, _)| n.clone()).collect();
        let views = self.inner.stats.zones(&live.zones, &tools).await?;
        Ok(if admin {
            views
        } else {
            views
                .into_iter()
                .map(scanq::stats::ZoneView::without_targets)
                .collect()
        })
    }
}
