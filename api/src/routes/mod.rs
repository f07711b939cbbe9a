//! HTTP routes, one module per resource, each exporting `router()`.

pub mod approvals;
pub mod breakers;
pub mod dashboard;
pub mod engagements;
pub mod events;
pub mod exports;
pub mod health;
pub mod jobs;
pub mod schedules;
pub mod stats;
pub mod tools;
pub mod webhooks;
pub mod whoami;
pub mod workers;
pub mod zones;
